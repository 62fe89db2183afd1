//! The wire decoder (`POST /events`): any bytes decode or fail with an
//! error, never a panic; what decodes re-encodes and decodes to the same events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_event::{Limits, decode};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(events) = decode(data, &limits) {
        for event in events {
            let bytes = event.to_json_bytes();
            let again = decode(&bytes, &limits).expect("an encoded event decodes");
            assert_eq!(again.len(), 1);
            assert_eq!(again[0], event, "the round trip changed the event");
        }
    }
});
