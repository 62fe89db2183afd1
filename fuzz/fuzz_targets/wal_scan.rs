//! The write-ahead log's reader (what a restart replays): any bytes as a
//! segment are scanned into records and damaged regions covering them
//! exactly once, never a panic; every record's payload decodes to events
//! or fails with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_wal::{Item, decode_record, scan};

fuzz_target!(|data: &[u8]| {
    let mut covered = if data.starts_with(b"TIDWAL01") { 8 } else { 0 };
    for item in scan(data) {
        match item {
            Item::Record { offset, payload } => {
                assert_eq!(offset, covered);
                covered += 12 + payload.len();
                let _ = decode_record(payload);
            }
            Item::Damaged { offset, len } => {
                assert_eq!(offset, covered);
                assert!(len > 0);
                covered += len;
            }
        }
    }
    assert_eq!(covered, data.len());
});
