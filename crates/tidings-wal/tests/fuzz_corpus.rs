//! Replays the committed fuzz corpus of `wal_scan` (`fuzz/corpus/`) on
//! stable, so inputs the fuzzer kept (and any crash it found, once added)
//! stay regression tests: every input is scanned without a panic, into
//! records and damaged regions that cover it exactly once.

use std::path::Path;

use tidings_wal::{Item, decode_record, scan};

#[test]
fn the_wal_scan_corpus_scans_cleanly_and_covers_every_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wal_scan");
    let mut inputs = 0;
    let mut records = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        inputs += 1;
        let mut covered = if bytes.starts_with(b"TIDWAL01") { 8 } else { 0 };
        for item in scan(&bytes) {
            match item {
                Item::Record { offset, payload } => {
                    assert_eq!(offset, covered);
                    covered += 12 + payload.len();
                    records += usize::from(decode_record(payload).is_ok());
                }
                Item::Damaged { offset, len } => {
                    assert_eq!(offset, covered);
                    assert!(len > 0, "an empty damaged region");
                    covered += len;
                }
            }
        }
        assert_eq!(covered, bytes.len());
    }
    assert!(inputs > 0, "no corpus under {}", dir.display());
    assert!(
        records > 0,
        "no input of the corpus holds an intact record of events"
    );
}
