//! The console sink passes the compliance checks every sink must pass,
//! writing JSON lines into a buffer read back line by line.

use std::sync::{Arc, Mutex};

use tidings_event::EventId;
use tidings_sink_console::{ConsoleSink, Format};
use tidings_test::{SharedBuffer, assert_sink_compliance};

#[test]
fn the_sink_passes_the_compliance_checks() {
    let buffer = SharedBuffer::default();
    let sink = ConsoleSink::to_writer(Format::Json, Arc::new(Mutex::new(buffer.clone())));
    let report = assert_sink_compliance(Arc::new(sink), || {
        buffer
            .text()
            .lines()
            .map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                event["id"].as_str().unwrap().parse::<EventId>().unwrap()
            })
            .collect()
    });
    assert_eq!(report.events, 1000);
}
