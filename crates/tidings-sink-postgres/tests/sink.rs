//! The PostgreSQL sink against the real server, called directly: what is
//! stored, deduplication, the table it creates, option validation, error
//! classification, timeouts and closing the connection.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Db, URL, require_postgres, unique};
use tidings_event::{Event, EventId, EventName, Timestamp};
use tidings_routing::{Sink, SinkError, SinkErrorKind};
use tidings_sink_postgres::{PostgresError, PostgresSink};

fn name(name: &'static str) -> EventName {
    EventName::new(name).unwrap()
}

fn context(value: Value) -> tidings_event::Map {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn sink(table: &str) -> PostgresSink {
    PostgresSink::builder(URL)
        .table(table)
        .create_table(true)
        .build()
        .unwrap()
}

fn plain_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new(name("pg.test"), json!({"n": i})))
        .collect()
}

fn sort(mut ids: Vec<EventId>) -> Vec<EventId> {
    ids.sort();
    ids
}

#[test]
fn every_event_is_stored_with_its_id_name_timestamps_context_and_data() {
    require_postgres();
    #[derive(serde::Serialize)]
    struct Typed<'a> {
        url: &'a str,
        depth: u8,
        tags: [&'a str; 2],
    }
    let db = Db::connect();
    let table = db.table("fields");
    let shared = std::sync::Arc::new(context(json!({"user_id": 10938, "org": "edX"})));
    let mut events = vec![
        Event::new(name("navigation.request"), json!({"url": "/a"})).with_context(shared.clone()),
        Event::new(
            name("with \"quotes\" \\ and ünïcode ✓"),
            json!([1, "two", null, 3.5]),
        )
        .with_context(context(
            json!({"nested": {"a": [1, {"b": "}"}]}, "data": "not data"}),
        )),
        Event::new(name("scalar.data"), json!("just a string")),
        Event::new(name("null.data"), json!(null)),
        Event::new(
            name("big.numbers"),
            json!({"i": i64::MIN, "u": u64::MAX, "f": 1.0e300}),
        ),
        Event::from_serializable(
            name("typed.emit"),
            &Typed {
                url: "http://www.edx.org/some/path/1",
                depth: 3,
                tags: ["a", "b"],
            },
        )
        .unwrap()
        .with_context(shared),
        Event::new(name("collected"), json!({"k": "v"}))
            .with_received_at(Timestamp::now())
            .with_timestamp(Timestamp::from_unix_micros(-123_456_789)),
        Event::new(name("far.future"), json!({}))
            .with_timestamp("9999-12-31T23:59:59.999999Z".parse().unwrap()),
    ];
    events.extend(plain_events(500));
    let sink = sink(&table.name);
    db.block_on(sink.send_batch(&events)).unwrap();

    let rows = db.query(
        &format!(
            r#"SELECT id, name, "timestamp", received_at, context, data FROM {}"#,
            table.name
        ),
        &[],
    );
    assert_eq!(rows.len(), events.len());
    let stored: std::collections::HashMap<EventId, &tokio_postgres::Row> = rows
        .iter()
        .map(|row| (EventId::from_uuid(row.get(0)), row))
        .collect();
    for event in &events {
        let row = stored
            .get(&event.id())
            .unwrap_or_else(|| panic!("event {} missing", event.id()));
        assert_eq!(row.get::<_, &str>(1), event.name().as_str());
        let timestamp: time::OffsetDateTime = row.get(2);
        assert_eq!(Timestamp::from_datetime(timestamp), event.timestamp());
        let received_at: Option<time::OffsetDateTime> = row.get(3);
        assert_eq!(
            received_at.map(Timestamp::from_datetime),
            event.received_at()
        );
        assert_eq!(
            row.get::<_, Value>(4),
            Value::Object(event.context().clone())
        );
        assert_eq!(&row.get::<_, Value>(5), event.data(), "{}", event.name());
    }
    db.block_on(sink.shutdown()).unwrap();
}

#[test]
fn a_nul_character_which_jsonb_cannot_hold_is_stored_as_the_replacement_character() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("nul");
    let event = Event::new(name("nul"), json!({"s": "a\u{0}b", "\u{0}": 1}))
        .with_context(context(json!({"c": "\u{0}"})));
    let other = Event::new(name("fine"), json!({"s": "ok"}));
    let sink = sink(&table.name);
    db.block_on(sink.send_batch(&[event.clone(), other]))
        .unwrap();
    let rows = db.query(
        &format!("SELECT context, data FROM {} WHERE id = $1", table.name),
        &[event.id().as_uuid()],
    );
    assert_eq!(rows[0].get::<_, Value>(0), json!({"c": "\u{fffd}"}));
    assert_eq!(
        rows[0].get::<_, Value>(1),
        json!({"s": "a\u{fffd}b", "\u{fffd}": 1})
    );
    assert_eq!(db.count(&table.name), 2, "the rest of the batch is stored");
}

#[test]
fn a_batch_sent_again_adds_nothing_and_duplicates_within_a_batch_are_stored_once() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("dedupe");
    let sink = sink(&table.name);
    let batch = plain_events(300);
    db.block_on(sink.send_batch(&batch)).unwrap();
    db.block_on(sink.send_batch(&batch)).unwrap();
    assert_eq!(db.count(&table.name), 300);

    // A retry overlapping new events, with one event twice in the batch.
    let mut overlapping: Vec<Event> = batch[200..].to_vec();
    overlapping.extend(plain_events(100));
    overlapping.push(overlapping[150].clone());
    db.block_on(sink.send_batch(&overlapping)).unwrap();
    let mut expected: Vec<EventId> = batch.iter().map(Event::id).collect();
    expected.extend(overlapping[100..200].iter().map(Event::id));
    assert_eq!(sort(db.ids(&table.name)), sort(expected));
}

#[test]
fn create_table_creates_the_documented_schema_and_qualified_names_work() {
    require_postgres();
    let db = Db::connect();
    let schema = unique("schema");
    db.execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ));
    let qualified = format!("{schema}.Events"); // folded to lower case
    let sink = sink(&qualified);
    assert_eq!(sink.table().to_string(), format!("{schema}.events"));
    db.block_on(sink.send_batch(&plain_events(3))).unwrap();

    let columns: Vec<(String, String, String)> = db
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text \
             FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'events' ORDER BY ordinal_position",
            &[&schema],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("id", "uuid", "NO"),
        ("name", "text", "NO"),
        ("timestamp", "timestamp with time zone", "NO"),
        ("received_at", "timestamp with time zone", "YES"),
        ("context", "jsonb", "NO"),
        ("data", "jsonb", "NO"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(columns, expected);
    let primary_key: Vec<String> = db
        .query(
            "SELECT k.column_name::text FROM information_schema.table_constraints c \
             JOIN information_schema.key_column_usage k \
               ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema \
             WHERE c.table_schema = $1 AND c.table_name = 'events' \
               AND c.constraint_type = 'PRIMARY KEY'",
            &[&schema],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(primary_key, ["id"]);
    assert_eq!(db.count(&format!("{schema}.events")), 3);

    // A second sink finds the table there and appends.
    let again = self::sink(&qualified);
    db.block_on(again.send_batch(&plain_events(2))).unwrap();
    assert_eq!(db.count(&format!("{schema}.events")), 5);
    db.execute(&format!("DROP SCHEMA {schema} CASCADE"));
}

#[test]
fn invalid_options_are_rejected_naming_the_option() {
    require_postgres();
    for table in [
        "",
        "events; DROP TABLE users",
        "a.b.c",
        "1st",
        "my-events",
        "\"events\"",
        "évents",
    ] {
        let error = PostgresSink::builder(URL).table(table).build().unwrap_err();
        assert_eq!(error.option(), Some("table"), "{table:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("invalid option `table` {table:?}: ")),
            "{error}"
        );
    }
    for (builder, option) in [
        (
            PostgresSink::builder(URL).connect_timeout_ms(0),
            "connect_timeout_ms",
        ),
        (
            PostgresSink::builder(URL).statement_timeout_ms(0),
            "statement_timeout_ms",
        ),
        (PostgresSink::builder("port=5432 password=s3cret"), "url"),
        (PostgresSink::builder("host=h password='s3cret"), "url"),
    ] {
        let error = builder.build().unwrap_err();
        assert_eq!(error.option(), Some(option));
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("invalid option `{option}`")),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
}

#[test]
fn nothing_shows_the_password() {
    require_postgres();
    for url in [
        "host=127.0.0.1 port=5432 user=postgres password=s3cret dbname=test",
        "postgres://postgres:s3cret@127.0.0.1:5432/test",
    ] {
        let builder = PostgresSink::builder(url);
        assert!(!format!("{builder:?}").contains("s3cret"));
        let sink = builder.build().unwrap();
        assert_eq!(
            sink.target(),
            "host=127.0.0.1 port=5432 user=postgres dbname=test"
        );
        assert!(!format!("{sink:?}").contains("s3cret"), "{sink:?}");
    }
}

fn assert_retryable_naming(error: &SinkError, what: &str) {
    let text = error.to_string();
    assert_eq!(error.kind(), SinkErrorKind::Retryable, "{text}");
    assert!(text.contains(what), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn connection_failures_are_retryable_bounded_and_never_show_the_password() {
    require_postgres();
    let rt = support::runtime();
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = PostgresSink::builder(format!(
        "host=127.0.0.1 port={port} user=postgres password=s3cret dbname=test"
    ))
    .build()
    .unwrap();
    let error = rt
        .block_on(refused.send_batch(&plain_events(1)))
        .unwrap_err();
    assert_retryable_naming(
        &error,
        &format!(
            "cannot connect to PostgreSQL at host=127.0.0.1 port={port} user=postgres dbname=test: error connecting to server"
        ),
    );

    // Something accepts but never answers: the connect timeout bounds it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hanging =
        PostgresSink::builder(format!("postgres://postgres:s3cret@127.0.0.1:{port}/test"))
            .connect_timeout_ms(200)
            .build()
            .unwrap();
    let started = Instant::now();
    let error = rt
        .block_on(hanging.send_batch(&plain_events(1)))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_retryable_naming(&error, "timed out after 200ms");
}

#[test]
fn a_missing_table_is_fatal_and_a_refused_batch_is_rolled_back_whole() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("fatal");
    let sink = PostgresSink::builder(URL)
        .table(&table.name)
        .build()
        .unwrap();
    let error = db.block_on(sink.send_batch(&plain_events(5))).unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Fatal, "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "cannot write 5 events into table {} in PostgreSQL at host=127.0.0.1 port=5432 user=postgres dbname=test: ERROR 42P01",
            table.name
        )),
        "{text}"
    );
    let source = std::error::Error::source(&error).unwrap();
    assert!(source.downcast_ref::<PostgresError>().is_some());

    // A table of its own, which refuses one event of the next batch.
    db.execute(&format!(
        r#"CREATE TABLE {} (id uuid PRIMARY KEY, name text NOT NULL CHECK (name <> 'refused'),
           "timestamp" timestamptz NOT NULL, received_at timestamptz,
           context jsonb NOT NULL, data jsonb NOT NULL, extra int DEFAULT 7)"#,
        table.name
    ));
    let mut batch = plain_events(10);
    batch.push(Event::new(name("refused"), json!({})));
    let error = db.block_on(sink.send_batch(&batch)).unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Invalid, "{error}");
    assert!(error.to_string().contains("23514"), "{error}");
    assert_eq!(db.count(&table.name), 0, "all or nothing");

    // The connection is still usable after the rollback.
    batch.pop();
    db.block_on(sink.send_batch(&batch)).unwrap();
    assert_eq!(db.count(&table.name), 10);
    let extra: i32 = db.query(&format!("SELECT extra FROM {} LIMIT 1", table.name), &[])[0].get(0);
    assert_eq!(extra, 7, "columns of its own keep their defaults");
}

#[test]
fn one_row_the_table_refuses_never_costs_its_batch() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("poison");
    db.execute(&format!(
        r#"CREATE TABLE {} (id uuid PRIMARY KEY, name text NOT NULL CHECK (name <> 'refused'),
           "timestamp" timestamptz NOT NULL, received_at timestamptz,
           context jsonb NOT NULL, data jsonb NOT NULL)"#,
        table.name
    ));
    let dead = tidings_test::RecordingBackend::new();
    let backend = tidings_routing::SinkBackend::builder(
        "pg",
        PostgresSink::builder(URL)
            .table(&table.name)
            .build()
            .unwrap(),
    )
    .batch(tidings_routing::BatchConfig::default().with_max_events(100))
    .dead_letter(std::sync::Arc::new(dead.clone()))
    .build()
    .unwrap();
    let mut sent = plain_events(100);
    sent[41] = Event::new(name("refused"), json!({"n": 41}));
    sent[77] = Event::new(name("refused"), json!({"n": 77}));
    for event in &sent {
        tidings_routing::Backend::send(&backend, event.clone()).unwrap();
    }
    tidings_routing::Backend::shutdown(&backend, Duration::from_secs(20)).unwrap();
    assert_eq!(db.count(&table.name), 98, "every innocent event stored");
    let culprits: Vec<EventId> = dead.events().iter().map(Event::id).collect();
    assert_eq!(culprits, [sent[41].id(), sent[77].id()]);
    assert_eq!(
        dead.events()[0].context()["dead_letter"]["reason"],
        "invalid"
    );
    let error = dead.events()[0].context()["dead_letter"]["error"].to_string();
    assert!(error.contains("23514"), "{error}");
    let m = backend.metrics();
    assert_eq!(
        (
            m.delivered,
            m.dead_lettered(tidings_routing::DropReason::Invalid),
            m.dropped_total()
        ),
        (98, 2, 0)
    );
}

#[test]
fn with_create_table_a_table_dropped_while_running_is_created_again() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("recreate");
    let sink = sink(&table.name);
    db.block_on(sink.send_batch(&plain_events(3))).unwrap();
    db.execute(&format!("DROP TABLE {}", table.name));
    let batch = plain_events(4);
    let error = db.block_on(sink.send_batch(&batch)).unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Retryable, "{error}");
    db.block_on(sink.send_batch(&batch)).unwrap();
    assert_eq!(db.count(&table.name), 4);
}

#[test]
fn a_statement_blocked_past_the_statement_timeout_is_retryable_and_the_retry_succeeds() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("blocked");
    let sink = PostgresSink::builder(URL)
        .table(&table.name)
        .create_table(true)
        .statement_timeout_ms(300)
        .build()
        .unwrap();
    db.block_on(sink.send_batch(&plain_events(1))).unwrap();

    // Another session holds a lock the insert needs.
    let locker = Db::connect();
    locker.execute(&format!(
        "BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        table.name
    ));
    let batch = plain_events(20);
    let started = Instant::now();
    let error = db.block_on(sink.send_batch(&batch)).unwrap_err();
    let waited = started.elapsed();
    assert_eq!(error.kind(), SinkErrorKind::Retryable, "{error}");
    assert!(error.to_string().contains("57014"), "{error}"); // query_canceled
    assert!(waited < Duration::from_millis(1300), "{waited:?}");
    locker.execute("ROLLBACK");

    db.block_on(sink.send_batch(&batch)).unwrap();
    assert_eq!(db.count(&table.name), 21);
}

#[test]
fn shutdown_closes_the_connection() {
    require_postgres();
    let db = Db::connect();
    let table = db.table("close");
    let app = unique("close_app");
    let sink = PostgresSink::builder(format!("{URL} application_name={app}"))
        .table(&table.name)
        .create_table(true)
        .build()
        .unwrap();
    let sessions = || -> i64 {
        db.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )[0]
        .get(0)
    };
    assert_eq!(sessions(), 0, "no connection before the first batch");
    db.block_on(sink.send_batch(&plain_events(2))).unwrap();
    db.block_on(sink.send_batch(&plain_events(2))).unwrap();
    assert_eq!(sessions(), 1, "one connection, kept between batches");
    db.block_on(sink.shutdown()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while sessions() > 0 {
        assert!(Instant::now() < deadline, "the connection is still open");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_empty_batch_does_not_connect() {
    require_postgres();
    let rt = support::runtime();
    let sink = PostgresSink::builder("host=127.0.0.1 port=1 user=nobody")
        .build()
        .unwrap();
    rt.block_on(sink.send_batch(&[])).unwrap();
}
