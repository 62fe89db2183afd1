//! `type = "console"`.

use std::sync::Arc;

use serde::Deserialize;
use tidings_routing::{BoxError, Sink};
use tidings_sink_console::{ConsoleSink, Format, Stream};

use crate::{Delivery, SinkType};

/// `type = "console"`: `format = "json" | "pretty"`, `stream = "stdout" | "stderr"`.
#[derive(Debug)]
pub(crate) struct ConsoleType;

/// The options of `console`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsoleOptions {
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
