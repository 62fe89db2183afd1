//! The PostgreSQL sink through the delivery engine (`SinkBackend`) against
//! the real server: the shared compliance checks, and an outage of the
//! server (a TCP proxy cutting every connection) that loses and duplicates
//! nothing.

mod support;

use std::sync::Arc;

use support::{Db, URL, require_postgres};
use tidings_sink_postgres::PostgresSink;
use tidings_test::{Compliance, CuttableProxy as Proxy, Outage, assert_sink_compliance};

#[test]
fn the_sink_passes_the_compliance_checks() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("compliance");
    let sink = PostgresSink::builder(URL)
        .table(&table.name)
        .create_table(true)
        .build()
        .unwrap();
    let report = assert_sink_compliance(Arc::new(sink), || db.ids(&table.name));
    assert_eq!(report.events, 1000);

    // Larger batches, as the sink is meant to be run.
    db.execute(&format!("DROP TABLE {}", table.name));
    let sink = PostgresSink::builder(URL)
        .table(&table.name)
        .create_table(true)
        .build()
        .unwrap();
    let mut checks = Compliance::default();
    checks.events = 10_000;
    checks.max_events = 2_000;
    checks.check(Arc::new(sink), || db.ids(&table.name));
}

#[test]
fn an_outage_loses_and_duplicates_nothing_and_delivery_resumes_by_itself() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("outage");
    let proxy = Proxy::start(support::ADDR);
    let sink = PostgresSink::builder(format!(
        "host=127.0.0.1 port={} user=postgres dbname=test",
        proxy.port()
    ))
    .table(&table.name)
    .create_table(true)
    .connect_timeout_ms(500)
    .statement_timeout_ms(2_000)
    .build()
    .unwrap();
    let report = Outage::default().check(&proxy, Arc::new(sink), || db.ids(&table.name));
    eprintln!("{report:?}");
}
