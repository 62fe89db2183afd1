//! The file sink writing to an S3-compatible store (moto, started by each
//! test): rolls uploaded with the same rules, uploads retried while the
//! store is away, staged files uploaded by the next sink, and compaction
//! in the store.

#![cfg(feature = "s3")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, SinkBackend};
use tidings_sink_file::{FileSink, ObjectTarget, Period, StoreOptions};
use tidings_test::{S3_TEST_KEY, S3Server, free_port};

fn staging(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-s3-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(endpoint: String) -> StoreOptions {
    let mut options = StoreOptions::default();
    options.endpoint = Some(endpoint);
    options.region = Some("us-east-1".to_owned());
    options.access_key_id = Some(S3_TEST_KEY.0.to_owned());
    options.secret_access_key = Some(S3_TEST_KEY.1.to_owned());
    options.allow_http = Some(true);
    options
}

fn target(endpoint: String, bucket: &str) -> ObjectTarget {
    ObjectTarget::s3(&format!("s3://{bucket}/events/app"), &options(endpoint)).unwrap()
}

fn event(i: usize) -> Event {
    Event::new(EventName::new("app.tick").unwrap(), json!({ "i": i }))
}

fn sink(dir: &Path, target: ObjectTarget) -> SinkBackend {
    let sink = FileSink::builder(dir)
        .roll_events(10)
        .roll_seconds(3600)
        .upload_to(target)
        .build()
        .unwrap();
    SinkBackend::builder("s3", sink).build().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The objects under the prefix and the `i` of every line in them.
fn stored(target: &ObjectTarget) -> (Vec<String>, Vec<u64>) {
    runtime().block_on(async {
        let mut names = target.list().await.unwrap();
        names.sort();
        let mut seen = Vec::new();
        for name in &names {
            let raw = target.get(name).await.unwrap();
            let mut text = String::new();
            if name.ends_with(".gz") {
                MultiGzDecoder::new(&raw[..])
                    .read_to_string(&mut text)
                    .unwrap();
            } else {
                text = String::from_utf8(raw).unwrap();
            }
            for line in text.lines() {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                seen.push(event["data"]["i"].as_u64().unwrap());
            }
        }
        seen.sort_unstable();
        (names, seen)
    })
}

fn finished_here(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("events-") && name.ends_with(".jsonl")
        })
        .count()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_roll_is_uploaded_under_the_prefix_and_removed_from_staging() {
    let server = S3Server::start("rolls");
    let dir = staging("rolls");
    let backend = sink(&dir, target(server.endpoint(), "rolls"));
    for i in 0..25 {
        backend.send(event(i)).unwrap();
    }
    backend.shutdown(Duration::from_secs(10)).unwrap();
    let (names, seen) = stored(&target(server.endpoint(), "rolls"));
    assert_eq!(
        names.len(),
        3,
        "two rolls of 10, the rest at shutdown: {names:?}"
    );
    assert!(names.iter().all(|n| n.starts_with("events-")));
    assert_eq!(seen, (0..25).collect::<Vec<u64>>(), "each event once");
    assert_eq!(finished_here(&dir), 0, "nothing left staged");
}

#[test]
fn while_the_store_is_away_rolls_stay_staged_and_are_uploaded_when_it_returns() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = staging("away");
    let backend = sink(&dir, target(endpoint.clone(), "away"));
    for i in 0..20 {
        backend.send(event(i)).unwrap();
    }
    wait_for("two staged rolls", || finished_here(&dir) == 2);
    let server = S3Server::start_on(port, "away");
    // The sink retries at its next roll check (every second).
    wait_for("the staged rolls to be uploaded", || {
        finished_here(&dir) == 0
    });
    backend.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(
        stored(&target(server.endpoint(), "away")).1,
        (0..20).collect::<Vec<u64>>()
    );
}

#[test]
fn what_a_stopped_sink_left_staged_is_uploaded_by_the_next_one() {
    let dir = staging("restart");
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let first = sink(&dir, target(nowhere, "restart"));
    for i in 0..15 {
        first.send(event(i)).unwrap();
    }
    let log = tidings_test::SharedBuffer::default();
    let subscriber = log.subscriber(tracing::Level::INFO);
    // The sink logs from its worker thread: the subscriber must be global.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    first.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(finished_here(&dir), 2, "staged, not lost");
    assert!(
        log.text()
            .contains("2 finished files could not be uploaded before the sink stopped"),
        "the stop says what stays staged: {}",
        log.text()
    );

    let server = S3Server::start("restart");
    let second = sink(&dir, target(server.endpoint(), "restart"));
    wait_for("the staged files to be uploaded", || {
        finished_here(&dir) == 0
    });
    second.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(
        stored(&target(server.endpoint(), "restart")).1,
        (0..15).collect::<Vec<u64>>()
    );
}

#[test]
fn compaction_merges_a_periods_objects_into_one_and_finishes_an_interrupted_merge() {
    let server = S3Server::start("compact");
    let dir = staging("compact");
    let backend = sink(&dir, target(server.endpoint(), "compact"));
    for i in 0..35 {
        backend.send(event(i)).unwrap();
    }
    backend.shutdown(Duration::from_secs(10)).unwrap();
    let store = target(server.endpoint(), "compact");
    assert_eq!(stored(&store).0.len(), 4);

    let report = runtime().block_on(store.compact(Period::Hour)).unwrap();
    assert_eq!((report.merged_files, report.lines), (4, 35), "{report}");
    let (names, seen) = stored(&store);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".jsonl.gz"));
    assert_eq!(seen, (0..35).collect::<Vec<u64>>());

    // A merge interrupted after its output was written and before its
    // inputs were deleted: the next run deletes the inputs its journal
    // names, so no line is stored twice.
    let backend = sink(&dir, target(server.endpoint(), "compact"));
    backend.send(event(99)).unwrap();
    backend.shutdown(Duration::from_secs(10)).unwrap();
    let (with_new, _) = stored(&store);
    let input = with_new.iter().find(|n| **n != names[0]).unwrap().clone();
    let period = &input["events-".len().."events-".len() + 11];
    let output = format!("events-{period}0000.000000Z-1-c0042.jsonl.gz");
    runtime().block_on(async {
        let content = store.get(&input).await.unwrap();
        let gz = gzip(&content);
        store.put(&output, gz).await.unwrap();
        let journal = format!("{output}\n{input}\n");
        store
            .put(&format!("compact-{period}.journal"), journal.into_bytes())
            .await
            .unwrap();
    });
    let report = runtime().block_on(store.compact(Period::Hour)).unwrap();
    assert_eq!(
        report.merged_files, 2,
        "the old merge and the finished one: {report}"
    );
    let (names, seen) = stored(&store);
    assert_eq!(names.len(), 1, "{names:?}");
    let mut want: Vec<u64> = (0..35).collect();
    want.push(99);
    assert_eq!(seen, want, "each line once");
}

fn gzip(plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(plain).unwrap();
    encoder.finish().unwrap()
}
