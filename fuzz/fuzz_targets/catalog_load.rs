//! The catalog loader, then everything done with a loaded catalog: lint,
//! docs and a check of each example. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_catalog::{Catalog, docs, lint};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Catalog::from_toml_str(text, "fuzz.toml") {
        Ok(catalog) => {
            let _ = lint(&catalog);
            let _ = docs::markdown_index(&catalog);
            for spec in catalog.events() {
                let _ = docs::markdown_page(spec);
                let _ = docs::json_schema(spec);
                for example in spec.examples() {
                    let _ = catalog.check_data(&spec.name().to_string(), example, true);
                }
            }
        }
        Err(error) => assert!(!error.problems().is_empty()),
    }
});
