//! Replays the committed fuzz corpus of `config_load` (`fuzz/corpus/`) on
//! stable: every input loads or fails with path-carrying errors, never a
//! panic, as the fuzz target checks.

use std::path::Path;

use tidings_config::{Registry, load};

#[test]
fn the_config_load_corpus_loads_or_fails_with_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config_load");
    let registry = Registry::default();
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        inputs += 1;
        let Ok(text) = String::from_utf8(std::fs::read(&path).unwrap()) else {
            continue;
        };
        match load(&text, &registry) {
            Ok(config) => drop(config.to_string()),
            Err(errors) => assert!(!errors.errors().is_empty(), "{}", path.display()),
        }
    }
    assert!(inputs > 0, "no corpus under {}", dir.display());
}
