//! The log against its promises: durable before the answer, group commit,
//! retirement once settled, replay of the rest, damage skipped and counted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tidings_event::{Event, EventName};
use tidings_wal::{AppendError, SyncMode, Wal, WalError, WalOptions};

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-wal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn events(n: usize, tag: &str) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(
                EventName::new("page.view").unwrap(),
                json!({"tag": tag, "i": i, "nested": {"deep": [1, 2, {"x": "é\n"}]}}),
            )
        })
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn replay_all(dir: &Path) -> (Wal, Vec<Event>) {
    let (wal, replay) = Wal::open(WalOptions::new(dir)).unwrap();
    let events = replay.flatten().collect();
    (wal, events)
}

/// An earlier run on `dir` that appended one batch per `(tag, count)`,
/// each as one record, and died before settling any: its events are
/// forgotten, never dropped, as a killed process leaves them. Returns
/// copies of the batches (holding no lease) to compare the replay with.
async fn died_after_appending(dir: &Path, batches: &[(&str, usize)]) -> Vec<Vec<Event>> {
    let (wal, replay) = Wal::open(WalOptions::new(dir)).unwrap();
    assert_eq!(replay.count(), 0, "the directory starts empty");
    let mut copies = Vec::new();
    for (tag, count) in batches {
        let mut batch = events(*count, tag);
        wal.append(&mut batch).await.unwrap();
        let mut copy = batch.clone();
        copy.iter_mut().for_each(|e| drop(e.take_lease()));
        copies.push(copy);
        std::mem::forget(batch);
    }
    wal.close();
    copies
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn unsettled_events_are_replayed_after_a_restart_exactly_as_appended() {
    let dir = dir("replay");
    let appended = died_after_appending(&dir, &[("a", 3), ("b", 2)])
        .await
        .concat();
    let (wal, replayed) = replay_all(&dir);
    assert_eq!(replayed, appended);
    assert_eq!(
        replayed.iter().map(Event::id).collect::<Vec<_>>(),
        appended.iter().map(Event::id).collect::<Vec<_>>()
    );
    assert!(replayed.iter().all(|e| e.lease().is_held()));
    assert_eq!(wal.stats().replayed_events, 5);
    assert_eq!(wal.stats().damaged_regions, 0);
}

#[tokio::test]
async fn a_segment_is_deleted_once_its_events_are_settled_and_the_writer_moved_on() {
    let dir = dir("retire");
    let options = WalOptions::new(&dir).segment_age(Duration::from_millis(50));
    let (wal, _) = Wal::open(options).unwrap();
    let mut batch = events(4, "x");
    wal.append(&mut batch).await.unwrap();
    let copy = batch[0].clone(); // another branch's copy
    drop(batch);
    std::thread::sleep(Duration::from_millis(150)); // the writer moved on
    assert_eq!(segments(&dir).len(), 1, "a copy is still alive");
    drop(copy);
    // The writer thread deletes the file, then counts it retired.
    wait_for("the segment to be deleted and counted", || {
        segments(&dir).is_empty() && wal.stats().retired_segments == 1
    });
    let stats = wal.stats();
    assert_eq!((stats.live_segments, stats.live_bytes), (0, 0));
    assert_eq!(stats.retired_segments, 1);
    wal.close();
    let (_wal, replayed) = replay_all(&dir);
    assert!(replayed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs_and_all_arrive() {
    let dir = dir("group");
    let (wal, _) = Wal::open(WalOptions::new(&dir)).unwrap();
    let wal = Arc::new(wal);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let mut batch = events(5, &i.to_string());
                wal.append(&mut batch).await.unwrap();
                batch
            })
        })
        .collect();
    let mut kept = Vec::new();
    for task in tasks {
        kept.extend(task.await.unwrap());
    }
    let stats = wal.stats();
    assert_eq!((stats.appends, stats.appended_events), (200, 1000));
    assert!(stats.syncs < 200, "no group commit: {stats:?}");
    assert_eq!(stats.fsyncs, stats.syncs, "one fsync per group commit");
    wal.close();
    let (_wal, replayed) = replay_all(&dir);
    let mut want: Vec<_> = kept.iter().map(Event::id).collect();
    let mut got: Vec<_> = replayed.iter().map(Event::id).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn under_sync_write_blocking_appends_cost_no_fsync_and_survive_the_process() {
    let dir = dir("sync-write");
    let options = WalOptions::new(&dir)
        .sync(SyncMode::Write)
        .segment_age(Duration::from_secs(60));
    let (wal, _) = Wal::open(options).unwrap();
    let mut appended = Vec::new();
    for i in 0..10 {
        let mut batch = events(1, &i.to_string());
        wal.append_blocking(&mut batch).unwrap();
        assert!(batch[0].lease().is_held());
        appended.extend(batch);
    }
    let stats = wal.stats();
    assert_eq!((stats.appends, stats.appended_events), (10, 10));
    assert_eq!(stats.fsyncs, 0, "answered after the write alone: {stats:?}");
    // The events are alive (a process killed now never settles them); the
    // file holds them without an fsync, which only a machine crash needs.
    let on_disk: u64 = segments(&dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, stats.live_bytes);
    let copies: Vec<Event> = appended.iter().map(without_lease).collect();
    std::mem::forget(appended);
    wal.close();
    assert_eq!(wal.stats().fsyncs, 1, "the segment is fsynced as it closes");
    let (_wal, replayed) = replay_all(&dir);
    assert_eq!(replayed, copies);
}

#[tokio::test]
async fn a_blocking_append_inside_a_runtime_blocks_and_does_not_panic() {
    let dir = dir("blocking-in-runtime");
    let (wal, _) = Wal::open(WalOptions::new(&dir)).unwrap();
    let mut batch = events(3, "rt");
    wal.append_blocking(&mut batch).unwrap();
    assert!(batch.iter().all(|e| e.lease().is_held()));
    wal.close();
    assert!(matches!(
        wal.append_blocking(&mut events(1, "late")),
        Err(AppendError::Closed)
    ));
}

fn without_lease(event: &Event) -> Event {
    let mut copy = event.clone();
    drop(copy.take_lease());
    copy
}

#[tokio::test]
async fn a_torn_tail_is_skipped_and_counted_and_the_records_before_it_replayed() {
    let dir = dir("torn");
    let kept = died_after_appending(&dir, &[("kept", 2), ("torn", 2)])
        .await
        .remove(0);
    let segment = &segments(&dir)[0];
    let len = std::fs::metadata(segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap();
    file.set_len(len - 7).unwrap(); // the last write was cut short
    drop(file);
    let (wal, replayed) = replay_all(&dir);
    assert_eq!(replayed, kept);
    assert_eq!(wal.stats().damaged_regions, 1);
    assert!(wal.stats().damaged_bytes > 0);
}

#[tokio::test]
async fn a_corrupt_record_inside_is_skipped_and_the_ones_after_it_replayed() {
    let dir = dir("corrupt");
    let [a, b, c]: [Vec<Event>; 3] = died_after_appending(&dir, &[("a", 1), ("b", 1), ("c", 1)])
        .await
        .try_into()
        .unwrap();
    let segment = &segments(&dir)[0];
    let mut bytes = std::fs::read(segment).unwrap();
    let b_text = b.iter().map(|e| e.id().to_string()).next().unwrap();
    let at = bytes
        .windows(b_text.len())
        .position(|w| w == b_text.as_bytes())
        .unwrap();
    bytes[at] ^= 0x01; // a flipped bit inside b's record
    std::fs::write(segment, &bytes).unwrap();
    let (wal, replayed) = replay_all(&dir);
    assert_eq!(replayed, [a, c].concat());
    assert_eq!(wal.stats().damaged_regions, 1);
}

#[tokio::test]
async fn a_segment_of_garbage_is_counted_and_never_fatal() {
    let dir = dir("garbage");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("00000000000000000007.wal"), b"not a log at all").unwrap();
    std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
    let (wal, replayed) = replay_all(&dir);
    assert!(replayed.is_empty());
    assert_eq!(wal.stats().damaged_regions, 1);
    // The damaged segment held no event: it is deleted once read (by the
    // writer thread); the log goes on with the next sequence number.
    wait_for("the damaged segment to be deleted", || {
        !dir.join("00000000000000000007.wal").exists()
    });
    let mut batch = events(1, "after");
    wal.append(&mut batch).await.unwrap();
    assert!(dir.join("00000000000000000008.wal").exists());
    assert!(dir.join("notes.txt").exists());
}

#[tokio::test]
async fn replayed_events_once_settled_retire_their_segment() {
    let dir = dir("replay-retire");
    died_after_appending(&dir, &[("r", 3)]).await;
    let (wal, replayed) = replay_all(&dir);
    assert_eq!(replayed.len(), 3);
    assert_eq!(segments(&dir).len(), 1);
    drop(replayed); // delivered
    wait_for("the replayed segment to be deleted and counted", || {
        segments(&dir).is_empty() && wal.stats().retired_segments == 1
    });
    assert_eq!(wal.stats().retired_segments, 1);
}

#[tokio::test]
async fn a_replay_dropped_midway_leaves_its_segment_for_the_next_start() {
    let dir = dir("replay-abort");
    died_after_appending(&dir, &[("first", 2), ("second", 2)]).await;
    {
        let (_wal, mut replay) = Wal::open(WalOptions::new(&dir)).unwrap();
        let one = replay.next().unwrap();
        drop(one); // delivered, but the replay stops here (a shutdown)
    }
    assert_eq!(segments(&dir).len(), 1, "the half-replayed segment stays");
    let (_wal, replayed) = replay_all(&dir);
    assert_eq!(
        replayed.len(),
        4,
        "both records again; the first is a duplicate by id"
    );
}

#[tokio::test]
async fn over_its_budget_the_log_refuses_appends_until_segments_retire() {
    let dir = dir("budget");
    let options = WalOptions::new(&dir)
        .max_bytes(4096)
        .segment_age(Duration::from_millis(20));
    let (wal, _) = Wal::open(options).unwrap();
    let mut held = Vec::new();
    let error = loop {
        let mut batch = events(2, "fill");
        match wal.append(&mut batch).await {
            Ok(()) => held.push(batch),
            Err(error) => break error,
        }
        assert!(held.len() < 100, "the budget was never enforced");
    };
    assert!(
        matches!(error, AppendError::Full { max_bytes: 4096 }),
        "{error}"
    );
    assert!(error.is_retryable());
    assert!(wal.stats().refused_full >= 1);
    assert!(wal.stats().live_bytes <= 4096);
    drop(held); // delivered: the segments retire
    std::thread::sleep(Duration::from_millis(50));
    wait_for("room in the log", || wal.stats().live_bytes < 1024);
    let mut batch = events(2, "after");
    wal.append(&mut batch).await.unwrap();
}

#[tokio::test]
async fn held_deletions_keep_settled_segments_until_released() {
    let dir = dir("hold");
    let (wal, _) = Wal::open(WalOptions::new(&dir).segment_age(Duration::from_millis(1))).unwrap();
    wal.hold_deletions();
    let mut batch = events(2, "h");
    wal.append(&mut batch).await.unwrap();
    drop(batch);
    wal.close(); // the writer lets go of its segment too
    assert_eq!(segments(&dir).len(), 1, "held");
    assert_eq!(wal.held_deletions(), 1);
    drop(wal); // never released (a drain that dropped events): kept for the next start

    let (wal, replayed) = replay_all(&dir);
    assert_eq!(replayed.len(), 2);
    wal.hold_deletions();
    drop(replayed);
    assert_eq!(segments(&dir).len(), 1);
    assert_eq!(wal.release_deletions(), 1);
    assert!(segments(&dir).is_empty());
    assert_eq!(wal.held_deletions(), 0);
}

#[tokio::test]
async fn a_closed_log_refuses_appends() {
    let dir = dir("closed");
    let (wal, _) = Wal::open(WalOptions::new(&dir)).unwrap();
    wal.close();
    let mut batch = events(1, "late");
    assert!(matches!(
        wal.append(&mut batch).await,
        Err(AppendError::Closed)
    ));
    assert!(!batch[0].lease().is_held());
}

#[test]
fn an_unusable_directory_is_an_error_naming_it() {
    let file = std::env::temp_dir().join(format!("tidings-wal-file-{}", std::process::id()));
    std::fs::write(&file, b"a file, not a directory").unwrap();
    let error = Wal::open(WalOptions::new(&file)).unwrap_err();
    assert!(
        error.to_string().contains(&*file.to_string_lossy()),
        "{error}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn segments_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir("modes");
    let (wal, _) = Wal::open(WalOptions::new(&dir)).unwrap();
    let mut batch = events(1, "private");
    wal.append(&mut batch).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&segments(&dir)[0]), 0o600);
}

#[test]
fn a_directory_is_used_by_one_log_at_a_time() {
    let dir = dir("locked");
    let (first, _) = Wal::open(WalOptions::new(&dir)).unwrap();
    let error = Wal::open(WalOptions::new(&dir)).unwrap_err();
    assert!(matches!(error, WalError::Locked { .. }), "{error}");
    assert!(
        error.to_string().contains("in use by another process"),
        "{error}"
    );
    first.close();
    let (_second, _) = Wal::open(WalOptions::new(&dir)).unwrap();
}

#[tokio::test]
async fn an_intact_record_that_is_not_events_is_quarantined_not_lost() {
    let dir = dir("quarantine");
    std::fs::create_dir_all(&dir).unwrap();
    // A segment holding one intact record (checksum and all) that does not
    // decode as events, then one that does.
    let mut segment = b"TIDWAL01".to_vec();
    for payload in [&b"[1]"[..], br#"[{"name": "kept.one"}]"#] {
        segment.extend_from_slice(b"TWR1");
        segment.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        segment.extend_from_slice(&crc(payload).to_le_bytes());
        segment.extend_from_slice(payload);
    }
    std::fs::write(dir.join("00000000000000000003.wal"), &segment).unwrap();
    let (wal, replayed) = replay_all(&dir);
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].name(), "kept.one");
    assert_eq!(wal.stats().damaged_regions, 1);
    let kept = dir.join("quarantine/00000000000000000003-8.json");
    assert_eq!(std::fs::read(&kept).unwrap(), b"[1]");
}

/// CRC-32 (IEEE), bit by bit: the log's checksum, computed independently.
fn crc(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn an_append_larger_than_the_whole_budget_is_too_large_not_full() {
    let dir = dir("too-large");
    let (wal, _) = Wal::open(WalOptions::new(&dir).max_bytes(200)).unwrap();
    let mut big = vec![Event::new(
        EventName::new("big").unwrap(),
        json!({"pad": "x".repeat(500)}),
    )];
    let error = wal.append(&mut big).await.unwrap_err();
    assert!(
        matches!(error, AppendError::TooLarge { max: 200, .. }),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_event_that_outlives_the_log_retires_its_segment_when_it_is_dropped() {
    let dir = dir("outlives");
    let (wal, _) = Wal::open(WalOptions::new(&dir)).unwrap();
    let mut batch = events(3, "late");
    wal.append(&mut batch).await.unwrap();
    let survivor = batch[0].clone(); // still in a sink's queue
    drop(batch);
    wal.close(); // the writer is gone; the segment is still needed
    assert_eq!(segments(&dir).len(), 1);
    drop(survivor); // delivered: settled on this thread, deleted here
    assert!(segments(&dir).is_empty(), "{:?}", segments(&dir));
    assert_eq!(wal.stats().retired_segments, 1);
}
