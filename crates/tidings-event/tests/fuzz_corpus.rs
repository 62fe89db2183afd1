//! Replays the committed fuzz corpus of `wire_decode` (`fuzz/corpus/`)
//! through the decoder on the stable toolchain, so every `cargo test` run
//! checks that no input found by fuzzing panics or breaks the round trip.

use std::path::Path;

use tidings_event::{Limits, decode};

#[test]
fn the_wire_decode_corpus_decodes_or_fails_cleanly_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wire_decode");
    let limits = Limits::default();
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        inputs += 1;
        if let Ok(events) = decode(&bytes, &limits) {
            for event in events {
                let again = decode(&event.to_json_bytes(), &limits).unwrap();
                assert_eq!(again, [event], "{} does not round-trip", path.display());
            }
        }
    }
    assert!(inputs > 0, "no corpus under {}", dir.display());
}
