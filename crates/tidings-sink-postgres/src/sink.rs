//! `PostgresSink`: each batch is copied (binary COPY) into a temporary
//! table and inserted from there with `ON CONFLICT (id) DO NOTHING`, in one
//! transaction.

use std::fmt;
use std::pin::pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt as _;
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::Event;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use crate::PostgresError;
use crate::builder::Sql;
use crate::encode::{COPY_HEADER, COPY_TRAILER, FieldTooLarge, Scratch};
use crate::error::{Class, classify, detail};
use crate::table::TableName;

/// How much longer than `statement_timeout_ms` the sink waits for a batch
/// before it gives the connection up (the server should have cancelled the
/// statement by then; if it has not, the network is gone).
const CLIENT_GRACE: Duration = Duration::from_secs(1);

/// How long `shutdown` waits for the connection to close politely.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Bytes of COPY data handed to the connection at a time: the server
/// parses one chunk while the sink encodes the next.
const CHUNK: usize = 64 * 1024;

/// The columns, in COPY order (`timestamp` is quoted: it is a type name).
pub(crate) const COLUMNS: &str = r#"id, name, "timestamp", received_at, context, data"#;

/// An open connection and the task that drives it.
struct Connection {
    client: Client,
    task: JoinHandle<()>,
    copy: Statement,
}

impl Connection {
    /// Gives a broken connection up at once.
    fn abandon(self) {
        self.task.abort();
    }

    /// Closes the connection politely (PostgreSQL's Terminate message),
    /// waiting for it at most `CLOSE_WAIT`.
    async fn close(self) {
        let Self {
            client, mut task, ..
        } = self;
        drop(client);
        if tokio::time::timeout(CLOSE_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    connection: Option<Connection>,
    /// Whether `create_table` has created (or found) the table.
    table_ready: bool,
    scratch: Scratch,
    /// The COPY data being encoded.
    buf: BytesMut,
}

/// Why writing a batch failed.
enum WriteError {
    Postgres(tokio_postgres::Error),
    /// The event at `index` cannot be stored.
    TooLarge {
        index: usize,
        field: FieldTooLarge,
    },
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Postgres(error)
    }
}

/// Writes events into a PostgreSQL table, durably and without duplicates.
///
/// The sink connects when it gets its first batch. Each batch is copied
/// with binary `COPY` into a temporary table of the sink's session, then
/// inserted into the target with `INSERT … SELECT … ON CONFLICT (id) DO
/// NOTHING`, in one transaction: a batch is stored whole or not at all, and
/// a batch retried after a lost acknowledgement adds nothing, since every
/// event's `id` (its primary key) is already there. A batch is acknowledged
/// once its transaction committed, so [`Sink::flush`] has nothing to do.
///
/// A failed connection is dropped and the failure is retryable; the next
/// batch reconnects. Failures of the server are classified by SQLSTATE:
/// transient ones (connection exceptions, serialization failures and
/// deadlocks, insufficient resources, lock timeouts, statement timeouts,
/// the server shutting down or starting up, I/O errors) are retryable, the
/// rest (a missing table, missing permissions, data the table refuses) are
/// fatal and drop the batch.
///
/// The target table needs these columns (what `create_table` creates) and
/// a unique index on `id`:
///
/// ```sql
/// CREATE TABLE tidings_events (
///     id uuid PRIMARY KEY,
///     name text NOT NULL,
///     "timestamp" timestamptz NOT NULL,
///     received_at timestamptz,
///     context jsonb NOT NULL,
///     data jsonb NOT NULL
/// );
/// ```
pub struct PostgresSink {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) target: String,
    pub(crate) table: TableName,
    pub(crate) create_table: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) sql: Sql,
    pub(crate) state: Mutex<State>,
}

impl fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSink")
            .field("target", &self.target)
            .field("table", &self.table)
            .field("create_table", &self.create_table)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// The outcome of a failed step: how to treat it, and the error to report.
type Failure = (Class, PostgresError);

impl PostgresSink {
    /// The table written into.
    #[must_use]
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The server, as `host=… port=… user=… dbname=…` (never the password).
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn connect(&self, state: &mut State) -> Result<Connection, Failure> {
        let connect_error = |error: &tokio_postgres::Error| {
            (
                classify(error),
                PostgresError::Connect {
                    target: self.target.clone(),
                    detail: detail(error),
                },
            )
        };
        let (client, connection) =
            match tokio::time::timeout(self.connect_timeout, self.config.connect(NoTls)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(error)) => return Err(connect_error(&error)),
                Err(_) => {
                    return Err((
                        Class::Retryable,
                        PostgresError::ConnectTimeout {
                            target: self.target.clone(),
                            timeout: self.connect_timeout,
                        },
                    ));
                }
            };
        let target = self.target.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(target: "tidings::sink::postgres", %target, error = %detail(&error), "connection ended");
            }
        });
        let prepared = tokio::time::timeout(self.write_timeout(), async {
            client
                .batch_execute(&self.sql.session)
                .await
                .map_err(|e| connect_error(&e))?;
            if self.create_table && !state.table_ready {
                self.create(&client).await?;
                state.table_ready = true;
            }
            client
                .prepare(&self.sql.copy)
                .await
                .map_err(|e| connect_error(&e))
        })
        .await;
        match prepared {
            Ok(Ok(copy)) => {
                tracing::debug!(target: "tidings::sink::postgres", target = %self.target, table = %self.table, "connected");
                Ok(Connection { client, task, copy })
            }
            Ok(Err(failure)) => {
                task.abort();
                Err(failure)
            }
            Err(_) => {
                task.abort();
                Err((
                    Class::Retryable,
                    PostgresError::ConnectTimeout {
                        target: self.target.clone(),
                        timeout: self.write_timeout(),
                    },
                ))
            }
        }
    }

    async fn create(&self, client: &Client) -> Result<(), Failure> {
        match client.batch_execute(&self.sql.create).await {
            Ok(()) => Ok(()),
            // Another session created it at the same moment.
            Err(error)
                if error.code() == Some(&SqlState::DUPLICATE_TABLE)
                    || error.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
            {
                Ok(())
            }
            Err(error) => Err((
                classify(&error),
                PostgresError::CreateTable {
                    table: self.table.to_string(),
                    target: self.target.clone(),
                    detail: detail(&error),
                },
            )),
        }
    }

    /// How long a batch may take before the connection is given up.
    fn write_timeout(&self) -> Duration {
        self.statement_timeout + CLIENT_GRACE
    }

    /// One transaction: BEGIN and COPY into the staging table (the caller
    /// then runs INSERT … ON CONFLICT DO NOTHING and COMMIT).
    async fn write(
        connection: &Connection,
        state: &mut State,
        batch: &[Event],
    ) -> Result<(), WriteError> {
        let client = &connection.client;
        client.batch_execute("BEGIN").await?;
        let mut sink = pin!(client.copy_in::<_, Bytes>(&connection.copy).await?);
        let buf = &mut state.buf;
        buf.clear();
        buf.extend_from_slice(COPY_HEADER);
        for (index, event) in batch.iter().enumerate() {
            state
                .scratch
                .encode_row(event, buf)
                .map_err(|field| WriteError::TooLarge { index, field })?;
            if buf.len() >= CHUNK {
                sink.send(buf.split().freeze()).await?;
            }
        }
        buf.extend_from_slice(COPY_TRAILER);
        sink.send(buf.split().freeze()).await?;
        sink.as_mut().finish().await?;
        Ok(())
    }

    /// Rolls back the transaction of a batch the server refused, keeping
    /// the connection if that works.
    async fn roll_back(&self, connection: Connection, state: &mut State) {
        let rollback = tokio::time::timeout(
            self.write_timeout(),
            connection.client.batch_execute("ROLLBACK"),
        )
        .await;
        if matches!(rollback, Ok(Ok(()))) {
            state.connection = Some(connection);
        } else {
            connection.abandon();
        }
    }

    fn write_error(&self, events: usize, detail: String) -> PostgresError {
        PostgresError::Write {
            events,
            table: self.table.to_string(),
            target: self.target.clone(),
            detail,
        }
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        // Taken out while in use: a call cancelled halfway drops the
        // connection with it instead of leaving it inside a transaction.
        let connection = match state.connection.take() {
            Some(connection) if !connection.client.is_closed() => connection,
            stale => {
                if let Some(connection) = stale {
                    connection.abandon();
                }
                self.connect(state)
                    .await
                    .map_err(|(class, error)| class.into_sink_error(error))?
            }
        };
        let written = tokio::time::timeout(self.write_timeout(), async {
            Self::write(&connection, state, batch).await?;
            Ok::<_, WriteError>(connection.client.batch_execute(&self.sql.insert).await?)
        })
        .await;
        let error = match written {
            Ok(Ok(())) => {
                state.connection = Some(connection);
                return Ok(());
            }
            Ok(Err(WriteError::Postgres(error))) => error,
            Ok(Err(WriteError::TooLarge { index, field })) => {
                self.roll_back(connection, state).await;
                return Err(SinkError::too_large(PostgresError::FieldTooLarge {
                    id: batch[index].id().to_string(),
                    field: field.field,
                    bytes: field.bytes,
                    table: self.table.to_string(),
                }));
            }
            Err(_) => {
                connection.abandon();
                return Err(SinkError::retryable(PostgresError::WriteTimeout {
                    events: batch.len(),
                    table: self.table.to_string(),
                    target: self.target.clone(),
                    timeout: self.write_timeout(),
                }));
            }
        };
        let mut class = classify(&error);
        if self.create_table && error.code() == Some(&SqlState::UNDEFINED_TABLE) {
            // The table was dropped: create it again on the next attempt.
            state.table_ready = false;
            class = Class::Retryable;
        }
        let failure = self.write_error(batch.len(), detail(&error));
        match class {
            Class::Retryable => connection.abandon(),
            // The server refused the statement; the connection is fine
            // once the transaction is rolled back.
            Class::Fatal | Class::Invalid => self.roll_back(connection, state).await,
        }
        Err(class.into_sink_error(failure))
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        let connection = self.state.lock().await.connection.take();
        if let Some(connection) = connection {
            connection.close().await;
        }
        Ok(())
    }

    /// PostgreSQL has no request size to respect: batches are not measured
    /// (only `max_events` applies).
    fn size_hint(&self, _event: &Event) -> usize {
        0
    }
}
