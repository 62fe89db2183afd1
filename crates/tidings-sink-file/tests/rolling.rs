//! The file sink against the real file system: exact rolls, gzip, time
//! rolls, crash recovery and compaction.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_routing::{Backend, BatchConfig, SinkBackend};
use tidings_sink_file::{FileSink, Period, compact};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-file-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn event(n: usize) -> Event {
    Event::new(EventName::new("file.test").unwrap(), json!({"n": n}))
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    if path.to_string_lossy().ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(fs::File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
    } else {
        fs::File::open(path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
    }
    text
}

/// Finished event files, sorted by name.
fn finished(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("events-") && (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
        })
        .collect();
    files.sort();
    files
}

fn ns(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn files_roll_at_exactly_roll_events_and_keep_order() {
    for gzip in [false, true] {
        let dir = temp_dir(&format!("exact-{gzip}"));
        let sink = FileSink::builder(&dir)
            .roll_events(3)
            .roll_seconds(3600)
            .gzip(gzip)
            .build()
            .unwrap();
        let backend = SinkBackend::builder("file", sink)
            .batch(BatchConfig::default().with_max_events(4))
            .build()
            .unwrap();
        for n in 0..10 {
            backend.send(event(n)).unwrap();
        }
        backend.flush(Duration::from_secs(5)).unwrap();
        assert_eq!(
            finished(&dir).len(),
            3,
            "three full files; the fourth is still open"
        );
        backend.shutdown(Duration::from_secs(5)).unwrap();
        let files = finished(&dir);
        let counts: Vec<usize> = files.iter().map(|f| ns(&read(f)).len()).collect();
        assert_eq!(counts, [3, 3, 3, 1]);
        let all: Vec<u64> = files.iter().flat_map(|f| ns(&read(f))).collect();
        assert_eq!(
            all,
            (0..10).collect::<Vec<u64>>(),
            "names sort in write order"
        );
        assert!(files.iter().all(|f| f.to_string_lossy().ends_with(if gzip {
            ".jsonl.gz"
        } else {
            ".jsonl"
        })));
        assert!(
            !fs::read_dir(&dir).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }
}

#[test]
fn an_open_file_is_only_visible_under_its_temporary_name_and_rolls_after_roll_seconds() {
    let dir = temp_dir("seconds");
    let sink = FileSink::builder(&dir)
        .roll_events(1000)
        .roll_seconds(1)
        .build()
        .unwrap();
    let backend = SinkBackend::builder("file", sink)
        .batch(BatchConfig::default().with_max_events(1))
        .build()
        .unwrap();
    backend.send(event(1)).unwrap();
    backend.flush(Duration::from_secs(5)).unwrap();
    assert!(finished(&dir).is_empty());
    let tmp: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(tmp.len() == 1 && tmp[0].ends_with(".jsonl.tmp"), "{tmp:?}");
    let started = Instant::now();
    while finished(&dir).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the file never rolled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(ns(&read(&finished(&dir)[0])), [1]);
    backend.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn temporary_files_left_by_a_crash_are_finished_or_quarantined() {
    let dir = temp_dir("orphans");
    let line = |n: usize| String::from_utf8(event(n).to_json_bytes()).unwrap() + "\n";
    // A clean plain file, a torn plain file, and a truncated gzip file.
    fs::write(
        dir.join("events-20260101T000000.000000Z-1-000001.jsonl.tmp"),
        line(1) + &line(2),
    )
    .unwrap();
    fs::write(
        dir.join("events-20260101T000001.000000Z-1-000002.jsonl.tmp"),
        line(3) + &line(4)[..20],
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((line(5) + &line(6)).as_bytes()).unwrap();
    let mut member = gz.finish().unwrap();
    let mut second = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    second.write_all(line(7).as_bytes()).unwrap();
    let second = second.finish().unwrap();
    member.extend_from_slice(&second[..second.len() / 2]);
    fs::write(
        dir.join("events-20260101T000002.000000Z-1-000003.jsonl.gz.tmp"),
        member,
    )
    .unwrap();

    let _sink = FileSink::builder(&dir).build().unwrap();
    let files = finished(&dir);
    let all: Vec<u64> = files.iter().flat_map(|f| ns(&read(f))).collect();
    assert_eq!(
        all,
        [1, 2, 3, 5, 6],
        "complete lines are kept, torn ones dropped"
    );
    let quarantined = fs::read_dir(dir.join("quarantine")).unwrap().count();
    assert_eq!(quarantined, 2, "the two damaged originals are kept aside");
    assert!(
        !fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
}

fn write_finished(dir: &Path, time: &str, seq: usize, lines: &[usize]) {
    let text: String = lines
        .iter()
        .map(|&n| String::from_utf8(event(n).to_json_bytes()).unwrap() + "\n")
        .collect();
    fs::write(dir.join(format!("events-{time}-1-{seq:06}.jsonl")), text).unwrap();
}

#[test]
fn compaction_merges_each_hour_into_one_file_without_losing_or_duplicating_lines() {
    let dir = temp_dir("compact");
    write_finished(&dir, "20261124T190000.000001Z", 1, &[1, 2]);
    write_finished(&dir, "20261124T191500.000000Z", 2, &[3]);
    write_finished(&dir, "20261124T195959.999999Z", 3, &[4, 5]);
    write_finished(&dir, "20261124T200000.000000Z", 4, &[6]);
    fs::write(
        dir.join("events-20261124T210000.000000Z-1-000009.jsonl.tmp"),
        "",
    )
    .unwrap();
    let report = compact(&dir, Period::Hour).unwrap();
    assert_eq!(
        (report.outputs.len(), report.merged_files, report.lines),
        (1, 3, 5)
    );
    assert_eq!(
        (
            report.finished_files,
            report.periods,
            report.periods_alone,
            report.in_progress
        ),
        (4, 2, 1, 1)
    );
    assert_eq!(
        report.to_string(),
        "merged 3 files into 1 (5 lines); 1 file still being written left alone"
    );
    let files = finished(&dir);
    assert_eq!(files.len(), 2);
    assert_eq!(ns(&read(&files[0])), [1, 2, 3, 4, 5]);
    assert_eq!(ns(&read(&files[1])), [6]);
    // New files of the same hour merge with the compacted one next time.
    write_finished(&dir, "20261124T193000.000000Z", 5, &[7]);
    compact(&dir, Period::Hour).unwrap();
    let files = finished(&dir);
    let mut all: Vec<u64> = files.iter().flat_map(|f| ns(&read(f))).collect();
    all.sort_unstable();
    assert_eq!(all, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(files.len(), 2);
}

#[test]
fn compaction_says_why_nothing_merged() {
    let dir = temp_dir("compact-nothing");
    assert_eq!(
        compact(&dir, Period::Hour).unwrap().to_string(),
        "merged 0 files into 0 (0 lines): no finished event files here"
    );
    write_finished(&dir, "20261124T010000.000000Z", 1, &[1]);
    write_finished(&dir, "20261124T020000.000000Z", 2, &[2]);
    assert_eq!(
        compact(&dir, Period::Hour).unwrap().to_string(),
        "merged 0 files into 0 (0 lines): 2 finished files in 2 periods, one each; \
         a period needs two or more to merge"
    );
}

#[test]
fn compaction_by_day_merges_every_hour_of_a_day() {
    let dir = temp_dir("compact-day");
    write_finished(&dir, "20261124T010000.000000Z", 1, &[1]);
    write_finished(&dir, "20261124T230000.000000Z", 2, &[2]);
    write_finished(&dir, "20261125T000000.000000Z", 3, &[3]);
    let report = compact(&dir, Period::Day).unwrap();
    assert_eq!(
        (report.outputs.len(), report.merged_files, report.lines),
        (1, 2, 2)
    );
    let files = finished(&dir);
    assert_eq!(files.len(), 2);
    assert_eq!(ns(&read(&files[0])), [1, 2]);
    assert_eq!(ns(&read(&files[1])), [3]);
}

#[test]
fn an_interrupted_compaction_is_completed_or_rolled_back_by_the_next_run() {
    // Interrupted after the output became visible: the inputs must go.
    let dir = temp_dir("journal-done");
    write_finished(&dir, "20261124T190000.000000Z", 1, &[1]);
    write_finished(&dir, "20261124T191000.000000Z", 2, &[2]);
    let inputs: Vec<String> = finished(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let merged = inputs
        .iter()
        .map(|i| fs::read_to_string(dir.join(i)).unwrap())
        .collect::<String>();
    let output = "events-20261124T190000.000000Z-1-c0000.jsonl";
    fs::write(dir.join(output), &merged).unwrap();
    fs::write(
        dir.join("compact-20261124T19.journal"),
        format!("{output}\n{}\n", inputs.join("\n")),
    )
    .unwrap();
    compact(&dir, Period::Hour).unwrap();
    let files = finished(&dir);
    assert_eq!(files.len(), 1);
    assert_eq!(ns(&read(&files[0])), [1, 2]);

    // Interrupted before: the inputs stay and are merged now.
    let dir = temp_dir("journal-not-done");
    write_finished(&dir, "20261124T190000.000000Z", 1, &[1]);
    write_finished(&dir, "20261124T191000.000000Z", 2, &[2]);
    let output = "events-20261124T190000.000000Z-1-c0000.jsonl.gz";
    fs::write(dir.join(format!("{output}.tmp")), b"partial").unwrap();
    fs::write(
        dir.join("compact-20261124T19.journal"),
        format!("{output}\nwhatever\n"),
    )
    .unwrap();
    compact(&dir, Period::Hour).unwrap();
    let files = finished(&dir);
    assert_eq!(files.len(), 1);
    assert_eq!(ns(&read(&files[0])), [1, 2]);
    assert!(!dir.join(format!("{output}.tmp")).exists());
}

#[test]
fn period_names_parse_and_unknown_ones_are_errors() {
    assert_eq!("hour".parse::<Period>().unwrap(), Period::Hour);
    assert_eq!("day".parse::<Period>().unwrap(), Period::Day);
    assert_eq!(
        "week".parse::<Period>().unwrap_err().to_string(),
        "unknown period \"week\", expected \"hour\" or \"day\""
    );
}

#[test]
fn zero_roll_events_is_refused() {
    let err = FileSink::builder(temp_dir("zero"))
        .roll_events(0)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "roll_events must be at least 1");
}

/// A lease that counts its drops, standing in for durable mode's segment.
struct Settled(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Settled {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn written_events_keep_their_leases_until_their_file_is_synced() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tidings_event::Lease;
    use tidings_routing::Sink;

    let dir = temp_dir("leases");
    let sink = FileSink::builder(&dir)
        .roll_events(5)
        .roll_seconds(3600)
        .build()
        .unwrap();
    let settled = Arc::new(AtomicUsize::new(0));
    let leased = |n| {
        let mut e = event(n);
        e.set_lease(Lease::new(Arc::new(Settled(settled.clone()))));
        e
    };
    // Written, not yet synced: the sink keeps the leases past send_batch.
    sink.send_batch(&[leased(0), leased(1)]).await.unwrap();
    assert_eq!(settled.load(Ordering::SeqCst), 0);
    sink.flush().await.unwrap();
    assert_eq!(settled.load(Ordering::SeqCst), 2, "synced by the flush");
    // A roll (fsync, rename) lets go too.
    sink.send_batch(&[leased(2), leased(3)]).await.unwrap();
    assert_eq!(settled.load(Ordering::SeqCst), 2);
    sink.send_batch(&[event(4)]).await.unwrap(); // the fifth: the file rolls
    assert_eq!(settled.load(Ordering::SeqCst), 4, "rolled: fsynced");
    sink.shutdown().await.unwrap();
}
