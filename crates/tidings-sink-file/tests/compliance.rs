//! The file sink passes the shared sink compliance checks of `tidings-test`,
//! read back from the files on disk (finished, open and gzip alike).

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use tidings_event::EventId;
use tidings_sink_file::FileSink;
use tidings_test::assert_sink_compliance;

/// The id of every line of every event file under `dir`.
fn ids(dir: &Path) -> Vec<EventId> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let mut text = String::new();
        if path.to_string_lossy().contains(".gz") {
            flate2::read::MultiGzDecoder::new(fs::File::open(&path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
        } else {
            text = fs::read_to_string(&path).unwrap();
        }
        for line in text.lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(event["id"].as_str().unwrap().parse().unwrap());
        }
    }
    ids
}

#[test]
fn the_file_sink_passes_the_compliance_checks() {
    for gzip in [false, true] {
        let dir = std::env::temp_dir().join(format!(
            "tidings-file-{}-compliance-{gzip}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        let sink = FileSink::builder(&dir)
            .roll_events(300)
            .gzip(gzip)
            .build()
            .unwrap();
        assert_sink_compliance(Arc::new(sink), || ids(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }
}
