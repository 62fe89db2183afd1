//! Support for the tests against the real PostgreSQL: a direct client with
//! its own runtime, per-test tables dropped afterwards, and (in `tidings_test::CuttableProxy`) a TCP proxy in
//! front of the server that can cut every connection and refuse new ones.

#![allow(dead_code, unreachable_pub)] // each test file uses part of it

use std::future::Future;

use tidings_event::EventId;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

/// Where the tests' PostgreSQL listens.
pub const ADDR: &str = "127.0.0.1:5432";

/// The connection string of the tests' PostgreSQL.
pub const URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

/// Fails the test loudly unless PostgreSQL is reachable.
pub fn require_postgres() {
    tidings_test::require_service(
        "PostgreSQL",
        ADDR,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    );
}

/// A name unique to this test process and `test`.
pub fn unique(test: &str) -> String {
    format!("tidings_t{}_{test}", std::process::id())
}

/// A runtime with one worker, so spawned connection tasks progress between
/// calls.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A direct connection to the tests' PostgreSQL, used to set up and read
/// back; blocking, with a runtime of its own.
pub struct Db {
    pub rt: Runtime,
    client: Client,
}

impl Db {
    pub fn connect() -> Self {
        require_postgres();
        let rt = runtime();
        let client = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(URL, NoTls)
                .await
                .expect("connect to PostgreSQL");
            tokio::spawn(connection);
            client
        });
        Self { rt, client }
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    pub fn execute(&self, sql: &str) {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.rt
            .block_on(self.client.query(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    pub fn count(&self, table: &str) -> i64 {
        self.query(&format!("SELECT count(*) FROM {table}"), &[])[0].get(0)
    }

    /// Every id in `table`, as many times as it is there.
    pub fn ids(&self, table: &str) -> Vec<EventId> {
        self.query(&format!("SELECT id FROM {table}"), &[])
            .iter()
            .map(|row| EventId::from_uuid(row.get(0)))
            .collect()
    }

    /// A table name for `test`, dropped (if it exists) now and at the end.
    pub fn table(&self, test: &str) -> TestTable<'_> {
        let name = unique(test);
        self.execute(&format!("DROP TABLE IF EXISTS {name}"));
        TestTable { db: self, name }
    }
}

/// A per-test table, dropped when this goes out of scope.
pub struct TestTable<'a> {
    db: &'a Db,
    pub name: String,
}

impl Drop for TestTable<'_> {
    fn drop(&mut self) {
        let sql = format!("DROP TABLE IF EXISTS {}", self.name);
        let _ = self.db.rt.block_on(self.db.client.batch_execute(&sql));
    }
}
