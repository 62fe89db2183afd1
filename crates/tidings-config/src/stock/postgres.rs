//! `type = "postgres"`.

use std::sync::Arc;

use serde::Deserialize;
use tidings_routing::{BoxError, Sink};
use tidings_sink_postgres::{
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, DEFAULT_TABLE, PostgresError,
    PostgresSink, PostgresSinkBuilder, TableName, redacted,
};

use crate::{Delivery, SinkType};

/// `type = "postgres"`: `url` (required), `table`, `create_table`,
/// `connect_timeout_ms`, `statement_timeout_ms`.
#[derive(Debug)]
pub(crate) struct PostgresType;

/// The options of `postgres`; `Debug` never shows the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresOptions {
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

#[cfg(test)]
mod tests {
    use tidings_routing::Backend as _;

    use super::super::tests::problems;
    use crate::{Registry, load};

    #[test]
    fn postgres_sinks_load_describe_without_the_password_and_build_without_connecting() {
        let config = load(
            r#"
            [backends.warehouse]
            type = "postgres"
            url = "host=127.0.0.1 port=1 user=app password=s3cret dbname=events"
            table = "analytics.events"
            create_table = true
            statement_timeout_ms = 1000
            max_events = 2000
            [backends.url]
            type = "postgres"
            url = "postgres://app:s3cret@127.0.0.1:1/events"
            "#,
            &Registry::default(),
        )
        .unwrap();
        let tree = config.to_string();
        assert!(
            tree.contains(
                r#"warehouse: postgres url="host=127.0.0.1 port=1 user=app dbname=events" table=analytics.events create_table=true connect_timeout_ms=5000 statement_timeout_ms=1000"#
            ),
            "{tree}"
        );
        assert!(
            tree.contains(
                r#"url: postgres url="host=127.0.0.1 port=1 user=app dbname=events" table=tidings_events create_table=false"#
            ),
            "{tree}"
        );
        assert!(!tree.contains("s3cret") && !format!("{config:?}").contains("s3cret"));
        // Nothing listens on port 1: building must not connect.
        let pipeline = config.build().unwrap();
        let (root, _stages) = pipeline.into_parts();
        root.shutdown(std::time::Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn every_bad_postgres_option_is_reported_with_its_path() {
        let found = problems(
            r#"
            [backends.a]
            type = "postgres"
            [backends.b]
            type = "postgres"
            url = "host=h password='s3cret"
            table = "events; drop table users"
            connect_timeout_ms = 0
            statement_timeout_ms = 0
            [backends.c]
            type = "postgres"
            url = "host=h"
            tabel = "x"
            "#,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "backends.a",
                "backends.b.url",
                "backends.b.table",
                "backends.b.connect_timeout_ms",
                "backends.b.statement_timeout_ms",
                "backends.c.tabel",
            ],
            "{found:?}"
        );
        assert_eq!(found[0].1, "the required key `url` is missing");
        assert!(
            found[1].1.starts_with("invalid connection string"),
            "{found:?}"
        );
        assert!(
            found[2].1.starts_with("may contain only ASCII letters"),
            "{found:?}"
        );
        assert_eq!(found[3].1, "must be at least 1");
        assert!(found.iter().all(|(_, m)| !m.contains("s3cret")));
    }
}
