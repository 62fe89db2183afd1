//! Replays the committed fuzz corpus of `catalog_load` (`fuzz/corpus/`) on
//! the stable toolchain: every input loads or fails with its problems, and
//! what loads lints and renders without panicking.

use std::path::Path;

use tidings_catalog::{Catalog, docs, lint};

#[test]
fn the_catalog_load_corpus_loads_or_fails_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/catalog_load");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        inputs += 1;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        match Catalog::from_toml_str(text, "corpus") {
            Ok(catalog) => {
                let _ = lint(&catalog);
                for spec in catalog.events() {
                    let _ = docs::json_schema(spec);
                    let _ = docs::markdown_page(spec);
                }
            }
            Err(error) => assert!(!error.problems().is_empty(), "{error}"),
        }
    }
    assert!(inputs > 0, "no corpus under {}", dir.display());
}
