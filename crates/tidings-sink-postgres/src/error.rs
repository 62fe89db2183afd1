//! `PostgresError`, and how failures of the server or the connection are
//! classified into the engine's retryable and fatal `SinkError`s.

use std::error::Error as _;
use std::time::Duration;

use tidings_core::SinkError;

/// The PostgreSQL sink could not be built, or could not deliver a batch.
///
/// Messages name the option or the operation at fault and the server as
/// `host=… port=… user=… dbname=…`; they never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The `url` option is not a valid connection string.
    #[error("invalid option `url`: {reason}")]
    Url {
        /// What is wrong with it (never the password).
        reason: String,
    },
    /// The `table` option is not a safe SQL identifier.
    #[error("invalid option `table` {table:?}: {reason}")]
    Table {
        /// The rejected name.
        table: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A timeout option is zero.
    #[error("invalid option `{option}`: must be at least 1 ms")]
    ZeroTimeout {
        /// The option (`connect_timeout_ms` or `statement_timeout_ms`).
        option: &'static str,
    },
    /// Connecting to the server, or preparing the new connection, failed.
    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect {
        /// The server, without the password.
        target: String,
        /// What failed.
        detail: String,
    },
    /// Connecting took longer than `connect_timeout_ms`.
    #[error("cannot connect to PostgreSQL at {target}: timed out after {timeout:?}")]
    ConnectTimeout {
        /// The server, without the password.
        target: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// `create_table` could not create the table.
    #[error("cannot create table {table} in PostgreSQL at {target}: {detail}")]
    CreateTable {
        /// The table.
        table: String,
        /// The server, without the password.
        target: String,
        /// What the server answered.
        detail: String,
    },
    /// Writing a batch failed (it was rolled back).
    #[error("cannot write {events} events into table {table} in PostgreSQL at {target}: {detail}")]
    Write {
        /// The batch's size.
        events: usize,
        /// The table.
        table: String,
        /// The server, without the password.
        target: String,
        /// What failed.
        detail: String,
    },
    /// An event's context or data is larger than PostgreSQL's limit of
    /// 1 GiB per field; the engine splits the batch and drops that event
    /// alone as too large.
    #[error(
        "cannot write event {id} into table {table}: its {field} is {bytes} bytes, over PostgreSQL's limit of 1 GiB per field"
    )]
    FieldTooLarge {
        /// The event's id.
        id: String,
        /// `context` or `data`.
        field: &'static str,
        /// The field's size in bytes.
        bytes: usize,
        /// The table.
        table: String,
    },
    /// Writing a batch took longer than `statement_timeout_ms` plus a
    /// second of grace; the connection is dropped and the batch retried.
    #[error(
        "cannot write {events} events into table {table} in PostgreSQL at {target}: no answer within {timeout:?}"
    )]
    WriteTimeout {
        /// The batch's size.
        events: usize,
        /// The table.
        table: String,
        /// The server, without the password.
        target: String,
        /// How long the sink waited.
        timeout: Duration,
    },
}

impl PostgresError {
    /// The option at fault, for errors of configuration (`url`, `table`,
    /// `connect_timeout_ms`, `statement_timeout_ms`); `None` for failures
    /// of the server or the connection.
    #[must_use]
    pub fn option(&self) -> Option<&'static str> {
        match self {
            Self::Url { .. } => Some("url"),
            Self::Table { .. } => Some("table"),
            Self::ZeroTimeout { option } => Some(option),
            _ => None,
        }
    }
}

/// Whether a failure is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The connection or the server failed for now: drop the connection,
    /// retry the batch.
    Retryable,
    /// The server refused the statement for good (missing table,
    /// permissions): drop the batch, keep the connection.
    Fatal,
    /// The server refused a value of some row (a data exception, a
    /// constraint, a program limit): the engine splits the batch to find
    /// the events at fault; keep the connection.
    Invalid,
}

impl Class {
    pub(crate) fn into_sink_error(self, error: PostgresError) -> SinkError {
        match self {
            Self::Retryable => SinkError::retryable(error),
            Self::Fatal => SinkError::fatal(error),
            Self::Invalid => SinkError::invalid(error),
        }
    }
}

/// Classifies a failure reported by tokio-postgres.
///
/// Anything that is not an answer of the server (I/O errors, a closed
/// connection, timeouts, protocol errors) is retryable; so are the SQLSTATE
/// classes of transient conditions: `08` connection exception, `40`
/// transaction rollback (serialization failure, deadlock), `53`
/// insufficient resources (disk full, too many connections), `55` object
/// not in prerequisite state (lock not available), `57` operator
/// intervention (statement timeout, server shutting down or starting up)
/// and `58` system error. The classes of a refused row are invalid: `22`
/// data exception (a value jsonb or a column cannot hold), `23` integrity
/// constraint violation (a `CHECK`, `NOT NULL`), `54` program limit
/// exceeded (a value too large). Every other answer of the server is fatal.
pub(crate) fn classify(error: &tokio_postgres::Error) -> Class {
    match error.code() {
        None => Class::Retryable,
        Some(code) => match code.code().get(..2) {
            Some("08" | "40" | "53" | "55" | "57" | "58") => Class::Retryable,
            Some("22" | "23" | "54") => Class::Invalid,
            _ => Class::Fatal,
        },
    }
}

/// Describes a tokio-postgres failure: the server's SQLSTATE and message,
/// or the client's error and its cause (tokio-postgres's own `Display`
/// shows only the kind, such as "db error").
pub(crate) fn detail(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(" (");
            text.push_str(detail);
            text.push(')');
        }
        return text;
    }
    match error.source() {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}
