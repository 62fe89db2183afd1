//! [`PostgresSinkBuilder`]: the options of a [`PostgresSink`], checked
//! without connecting, and the SQL it runs, written once per sink.

use std::fmt;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::sink::{COLUMNS, PostgresSink, State};
use crate::table::{DEFAULT_TABLE, STAGING_TABLE, TableName};
use crate::{PostgresError, target};

/// Default for [`PostgresSinkBuilder::connect_timeout_ms`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default for [`PostgresSinkBuilder::statement_timeout_ms`].
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;

/// Builds a [`PostgresSink`]. Created by [`PostgresSink::builder`].
///
/// Each setter is named after its key in a config file.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PostgresSinkBuilder {
    url: String,
    table: String,
    create_table: bool,
    connect_timeout_ms: u64,
    statement_timeout_ms: u64,
}

impl fmt::Debug for PostgresSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSinkBuilder")
            .field("url", &target::redacted(&self.url))
            .field("table", &self.table)
            .field("create_table", &self.create_table)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

impl PostgresSinkBuilder {
    /// The table to write into: `table` or `schema.table`, ASCII letters,
    /// digits and underscores (see [`TableName`]). Defaults to
    /// `tidings_events`.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Creates the table (`CREATE TABLE IF NOT EXISTS`) when the sink first
    /// connects, and again should it disappear. The schema of a qualified
    /// name must exist. Defaults to false.
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// How long connecting (TCP, start-up and authentication) may take.
    /// Defaults to 5000 ms.
    pub fn connect_timeout_ms(mut self, ms: u64) -> Self {
        self.connect_timeout_ms = ms;
        self
    }

    /// The server's `statement_timeout` for the sink's session; the sink
    /// also gives up on a batch (and its connection) that takes a second
    /// longer than this. Defaults to 30 000 ms.
    pub fn statement_timeout_ms(mut self, ms: u64) -> Self {
        self.statement_timeout_ms = ms;
        self
    }

    /// Validates the options, without connecting: the sink connects when
    /// it gets its first batch.
    ///
    /// # Errors
    ///
    /// [`PostgresError`] naming the invalid option (see
    /// [`PostgresError::option`]): `url` does not parse or names no host,
    /// `table` is not a safe identifier, a timeout is zero.
    pub fn build(self) -> Result<PostgresSink, PostgresError> {
        let mut config = target::parse(&self.url)?;
        let table = TableName::parse(&self.table)?;
        for (option, ms) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("statement_timeout_ms", self.statement_timeout_ms),
        ] {
            if ms == 0 {
                return Err(PostgresError::ZeroTimeout { option });
            }
        }
        let connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("tidings");
        }
        let quoted = table.quoted();
        let sql = Sql {
            session: format!(
                "SET statement_timeout = {}; \
                 CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} \
                 (id uuid, name text, \"timestamp\" timestamptz, received_at timestamptz, \
                 context jsonb, data jsonb) ON COMMIT DELETE ROWS",
                self.statement_timeout_ms
            ),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {quoted} (\
                 id uuid PRIMARY KEY, \
                 name text NOT NULL, \
                 \"timestamp\" timestamptz NOT NULL, \
                 received_at timestamptz, \
                 context jsonb NOT NULL, \
                 data jsonb NOT NULL)"
            ),
            copy: format!("COPY pg_temp.{STAGING_TABLE} ({COLUMNS}) FROM STDIN (FORMAT binary)"),
            insert: format!(
                "INSERT INTO {quoted} ({COLUMNS}) SELECT {COLUMNS} FROM pg_temp.{STAGING_TABLE} \
                 ON CONFLICT (id) DO NOTHING; COMMIT"
            ),
        };
        Ok(PostgresSink {
            target: target::describe(&config),
            config,
            table,
            create_table: self.create_table,
            connect_timeout,
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            sql,
            state: Mutex::new(State::default()),
        })
    }
}

impl PostgresSink {
    /// A builder connecting with `url`: a libpq key/value string
    /// (`host=127.0.0.1 port=5432 user=postgres dbname=test`) or a URL
    /// (`postgres://user:password@host:5432/dbname`). TLS is not supported.
    pub fn builder(url: impl Into<String>) -> PostgresSinkBuilder {
        PostgresSinkBuilder {
            url: url.into(),
            table: DEFAULT_TABLE.to_owned(),
            create_table: false,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            statement_timeout_ms: DEFAULT_STATEMENT_TIMEOUT_MS,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Sql {
    /// Run once per connection: session settings and the staging table.
    pub(crate) session: String,
    pub(crate) create: String,
    pub(crate) copy: String,
    pub(crate) insert: String,
}
