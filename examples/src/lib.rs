//! Runnable examples for tidings; see `examples/` and run them with
//! `cargo run -p tidings-examples --example NAME`.
