//! The PostgreSQL sink: a durable, deduplicating [`Sink`](tidings_core::Sink)
//! that writes each batch in one transaction, with binary `COPY` into a
//! temporary table and `INSERT … ON CONFLICT (id) DO NOTHING` from there.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//! use tidings_event::{Event, EventName};
//! use tidings_routing::{Backend, BatchConfig, SinkBackend};
//! use tidings_sink_postgres::PostgresSink;
//!
//! let sink = PostgresSink::builder("host=127.0.0.1 port=5432 user=postgres dbname=test")
//!     .table("analytics.events")
//!     .create_table(true)
//!     .build()?; // validates the options; connects on the first batch
//! let backend = SinkBackend::builder("warehouse", sink)
//!     .batch(BatchConfig::default().with_max_events(2_000))
//!     .build()?;
//! backend.send(Event::new(EventName::new("signup.completed")?, json!({"plan": "pro"})))?;
//! backend.shutdown(Duration::from_secs(5))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Options
//!
//! Each builder setter is named after its key in a config file
//! (`type = "postgres"`, behind the `postgres` feature of `tidings-config`):
//!
//! | key | default | |
//! |---|---|---|
//! | `url` | required | libpq key/value string (`host=… port=… user=… dbname=… password=…`) or URL (`postgres://user:password@host:port/dbname`); no TLS |
//! | `table` | `tidings_events` | `table` or `schema.table`: ASCII letters, digits, underscores, folded to lower case ([`TableName`]) |
//! | `create_table` | `false` | `CREATE TABLE IF NOT EXISTS` on connecting (the schema must exist) |
//! | `connect_timeout_ms` | `5000` | bounds connecting, start-up and authentication |
//! | `statement_timeout_ms` | `30000` | the session's `statement_timeout`; a batch taking a second longer gives its connection up |
//!
//! # The table
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS tidings_events (
//!     id uuid PRIMARY KEY,            -- the event's UUID v7
//!     name text NOT NULL,
//!     "timestamp" timestamptz NOT NULL,
//!     received_at timestamptz,        -- set by the collector only
//!     context jsonb NOT NULL,
//!     data jsonb NOT NULL
//! );
//! ```
//!
//! A table of your own needs these columns (more are fine if they have
//! defaults) and a unique index on `id`. `jsonb` cannot hold U+0000: such
//! characters in context or data are stored as U+FFFD.
//!
//! # Delivery
//!
//! - **Exactly once at rest.** A batch is committed whole or not at all;
//!   the engine retries failed batches, and a retry of a batch that was
//!   committed after all (its acknowledgement lost with the connection)
//!   adds nothing, as every event's `id` is already in the table.
//! - **Reconnects.** The sink connects on its first batch and keeps one
//!   connection. A failed connection is dropped and its error is
//!   retryable; the next attempt connects again, so delivery resumes as
//!   soon as the server is back and the engine's backoff allows.
//! - **Errors.** Connection failures, timeouts and transient SQLSTATE
//!   classes (`08`, `40`, `53`, `55`, `57`, `58`) are retryable. A row the
//!   table refuses (classes `22` data exception, `23` constraint violation,
//!   `54` program limit) is invalid: the engine splits the batch until the
//!   events at fault are alone, delivers the others and dead-letters those.
//!   Other answers of the server (failed authentication, a missing database
//!   or table, missing permissions) are fatal and the batch is given up as
//!   `non_retryable`. With `create_table`, a table
//!   dropped while the sink runs is created again. An event whose context
//!   or data exceeds PostgreSQL's 1 GiB per field is `too_large`: the
//!   engine splits the batch and drops that event alone.
//! - **Secrets.** `Debug`, errors and [`redacted`] show the server as
//!   `host=… port=… user=… dbname=…`, never the password.
//! - **Batches.** [`Sink::size_hint`](tidings_core::Sink::size_hint) is
//!   0, so only the engine's `max_events` bounds a batch; 1000 to 5000
//!   events per batch is a good range.
//!
//! # Requirements on the server
//!
//! The sink keeps one session per sink: a temporary staging table and a
//! prepared `COPY` live in it, so the role needs the `TEMPORARY` privilege
//! on the database (granted to everyone by default), and a pooler in front
//! of the server must hand out whole sessions (PgBouncer's transaction
//! pooling will not do). The sink sets `application_name` to `tidings`
//! unless the URL sets it, and `statement_timeout` for its session.
//!
//! # Performance
//!
//! Rows are encoded straight into PostgreSQL's binary `COPY` format (uuid
//! as 16 bytes, timestamps as microseconds, context and data copied as the
//! JSON text of [`Event::write_json`](tidings_event::Event::write_json)
//! without being parsed) and streamed in 64 KiB chunks, so the server parses
//! one chunk while the sink encodes the next. On a 2-core machine with the
//! server on it, `benches/throughput.rs` stores about 125 000 (batches of
//! 1000) to 160 000 (batches of 5000) events per second end to end, each
//! batch committed durably before the next is sent: the
//! server's work per row (parsing the `jsonb`, the staging row, the insert
//! with its index check) and one commit per batch dominate, so larger
//! batches go faster.

mod builder;
#[cfg(feature = "config")]
mod config;
mod encode;
mod error;
mod sink;
mod table;
mod target;

pub use builder::{DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, PostgresSinkBuilder};
#[cfg(feature = "config")]
pub use config::{PostgresOptions, PostgresType};
pub use error::PostgresError;
pub use sink::PostgresSink;
pub use table::{DEFAULT_TABLE, TableName};
pub use target::redacted;
