//! The config types of this crate (feature `config`): what a config file's
//! `type = ...` names, its options, their defaults and checks, and how
//! the sink is built from them. `tidings-config` registers them.

use std::sync::Arc;

use crate::{ConsoleSink, Format, Stream};
use serde::Deserialize;
use tidings_core::{BoxError, Sink};

use tidings_core::{Delivery, SinkType};

/// `type = "console"`: `format = "json" | "pretty"`, `stream = "stdout" | "stderr"`.
#[derive(Debug)]
pub struct ConsoleType;

/// The options of `console`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOptions {
    #[serde(default)]
    format: ConsoleFormat,
    #[serde(default)]
    stream: ConsoleStream,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConsoleFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConsoleStream {
    #[default]
    Stdout,
    Stderr,
}

impl SinkType for ConsoleType {
    const NAME: &'static str = "console";
    type Options = ConsoleOptions;

    fn build(options: &Self::Options, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        let format = match options.format {
            ConsoleFormat::Json => Format::Json,
            ConsoleFormat::Pretty => Format::Pretty,
        };
        let stream = match options.stream {
            ConsoleStream::Stdout => Stream::Stdout,
            ConsoleStream::Stderr => Stream::Stderr,
        };
        Ok(Arc::new(ConsoleSink::new(format, stream)))
    }

    fn describe(options: &Self::Options) -> String {
        format!("format={:?} stream={:?}", options.format, options.stream).to_lowercase()
    }
}
