//! The config types of this crate (feature `config`): what a config file's
//! `type = ...` names, its options, their defaults and checks, and how
//! the sink is built from them. `tidings-config` registers them.

use std::sync::Arc;

use crate::{
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, DEFAULT_TABLE, PostgresError,
    PostgresSink, PostgresSinkBuilder, TableName, redacted,
};
use serde::Deserialize;
use tidings_core::{BoxError, Sink};

use tidings_core::{Delivery, SinkType};

/// `type = "postgres"`: `url` (required), `table`, `create_table`,
/// `connect_timeout_ms`, `statement_timeout_ms`.
#[derive(Debug)]
pub struct PostgresType;

/// The options of `postgres`; `Debug` never shows the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresOptions {
    url: String,
    #[serde(default = "table")]
    table: String,
    #[serde(default)]
    create_table: bool,
    #[serde(default = "connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "statement_timeout_ms")]
    statement_timeout_ms: u64,
}

fn table() -> String {
    DEFAULT_TABLE.to_owned()
}

fn connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

fn statement_timeout_ms() -> u64 {
    DEFAULT_STATEMENT_TIMEOUT_MS
}

fn builder(options: &PostgresOptions) -> PostgresSinkBuilder {
    PostgresSink::builder(options.url.clone())
        .table(options.table.clone())
        .create_table(options.create_table)
        .connect_timeout_ms(options.connect_timeout_ms)
        .statement_timeout_ms(options.statement_timeout_ms)
}

impl SinkType for PostgresType {
    const NAME: &'static str = "postgres";
    type Options = PostgresOptions;

    fn validate(options: &PostgresOptions) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        // Building parses and checks without connecting; `url` first.
        if let Err(error) = PostgresSink::builder(options.url.clone()).build() {
            let message = match error {
                PostgresError::Url { reason } => reason,
                other => other.to_string(),
            };
            problems.push(("url".to_owned(), message));
        }
        if let Err(error) = TableName::parse(&options.table) {
            let message = match error {
                PostgresError::Table { reason, .. } => reason.to_owned(),
                other => other.to_string(),
            };
            problems.push(("table".to_owned(), message));
        }
        for (key, ms) in [
            ("connect_timeout_ms", options.connect_timeout_ms),
            ("statement_timeout_ms", options.statement_timeout_ms),
        ] {
            if ms == 0 {
                problems.push((key.to_owned(), "must be at least 1".to_owned()));
            }
        }
        problems
    }

    fn build(options: &PostgresOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        Ok(Arc::new(builder(options).build()?))
    }

    fn describe(options: &PostgresOptions) -> String {
        format!(
            "url={:?} table={} create_table={} connect_timeout_ms={} statement_timeout_ms={}",
            redacted(&options.url),
            options.table,
            options.create_table,
            options.connect_timeout_ms,
            options.statement_timeout_ms
        )
    }
}

/// Shown as [`SinkType::describe`] shows it: never a secret.
impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&PostgresType::describe(self))
    }
}
