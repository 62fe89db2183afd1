//! The config loader: any text loads or fails with path-carrying errors,
//! never a panic. Nothing is built (no sink connects).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_config::{Registry, load};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match load(text, &Registry::default()) {
            Ok(config) => drop(config.to_string()),
            Err(errors) => assert!(!errors.errors().is_empty()),
        }
    }
});
