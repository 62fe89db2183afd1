//! The console sink: writes events to stdout or stderr, as JSON lines or
//! pretty-printed JSON (tachyon's console reporter).
//!
//! Like every sink it runs behind a `SinkBackend` (tidings-routing),
//! so writing to the terminal never happens on the emitting thread.
//!
//! ```
//! use tidings_routing::{Backend, SinkBackend};
//! use tidings_sink_console::{ConsoleSink, Format, Stream};
//!
//! let console = SinkBackend::builder("console", ConsoleSink::new(Format::Json, Stream::Stderr)).build()?;
//! # console.shutdown(std::time::Duration::from_secs(1))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sink authors: this crate is also the smallest complete example of a
//! [`Sink`].

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
pub use config::{ConsoleOptions, ConsoleType};

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::Event;

/// How events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One compact JSON object per line, in the wire format. The default.
    #[default]
    Json,
    /// Indented JSON, for reading by people.
    Pretty,
}

/// Where events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    /// Standard output. The default.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// An unknown `format` or `stream` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}, expected {expected}")]
pub struct ParseError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for Format {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err(ParseError {
                what: "console format",
                value: s.to_owned(),
                expected: "\"json\" or \"pretty\"",
            }),
        }
    }
}

impl FromStr for Stream {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stdout" => Ok(Self::Stdout),
            "stderr" => Ok(Self::Stderr),
            _ => Err(ParseError {
                what: "console stream",
                value: s.to_owned(),
                expected: "\"stdout\" or \"stderr\"",
            }),
        }
    }
}

enum Target {
    Stream(Stream),
    Writer(Arc<Mutex<dyn Write + Send>>),
}

/// Writes each batch to the console (or any writer), one event after another.
pub struct ConsoleSink {
    format: Format,
    target: Target,
}

impl fmt::Debug for ConsoleSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Stream(stream) => format!("{stream:?}"),
            Target::Writer(_) => "writer".to_owned(),
        };
        f.debug_struct("ConsoleSink")
            .field("format", &self.format)
            .field("target", &target)
            .finish()
    }
}

impl ConsoleSink {
    /// A sink writing `format` to `stream`.
    #[must_use]
    pub fn new(format: Format, stream: Stream) -> Self {
        Self {
            format,
            target: Target::Stream(stream),
        }
    }

    /// A sink writing `format` to `writer` (a log file, a buffer in tests).
    #[must_use]
    pub fn to_writer(format: Format, writer: Arc<Mutex<dyn Write + Send>>) -> Self {
        Self {
            format,
            target: Target::Writer(writer),
        }
    }

    fn render(&self, batch: &[Event]) -> Vec<u8> {
        let mut out = Vec::with_capacity(batch.len() * 256);
        for event in batch {
            match self.format {
                Format::Json => event.write_json(&mut out),
                Format::Pretty => {
                    // Serializing an event to memory cannot fail.
                    let _ = serde_json::to_writer_pretty(&mut out, event);
                }
            }
            out.push(b'\n');
        }
        out
    }

    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        match &self.target {
            Target::Stream(Stream::Stdout) => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Target::Stream(Stream::Stderr) => io::stderr().lock().write_all(bytes),
            Target::Writer(writer) => {
                let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                writer.write_all(bytes)?;
                writer.flush()
            }
        }
    }
}

#[async_trait]
impl Sink for ConsoleSink {
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        // A closed pipe will not reopen: retrying would only repeat the failure.
        self.write(&self.render(batch))
            .map_err(|e| SinkError::fatal(format!("writing to the console failed: {e}")))
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tidings_event::EventName;

    use super::*;

    fn events() -> Vec<Event> {
        ["a.one", "b.two"]
            .into_iter()
            .map(|n| Event::new(EventName::new(n).unwrap(), json!({"k": n})))
            .collect()
    }

    fn written(format: Format) -> (String, Vec<Event>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = ConsoleSink::to_writer(format, buffer.clone());
        let events = events();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(sink.send_batch(&events))
            .unwrap();
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        (text, events)
    }

    #[test]
    fn json_writes_one_wire_format_line_per_event() {
        let (text, events) = written(Format::Json);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for (line, event) in lines.iter().zip(&events) {
            assert_eq!(line.as_bytes(), event.to_json_bytes());
        }
    }

    #[test]
    fn pretty_writes_indented_json_per_event() {
        let (text, events) = written(Format::Pretty);
        assert!(text.contains("\n  \"name\": \"a.one\""), "{text}");
        let parsed: Vec<Value> = serde_json::Deserializer::from_str(&text)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1]["id"], events[1].id().to_string());
    }

    #[test]
    fn format_and_stream_names_parse_and_errors_say_what_is_expected() {
        assert_eq!("pretty".parse::<Format>().unwrap(), Format::Pretty);
        assert_eq!("stderr".parse::<Stream>().unwrap(), Stream::Stderr);
        assert_eq!(
            "yaml".parse::<Format>().unwrap_err().to_string(),
            "unknown console format \"yaml\", expected \"json\" or \"pretty\""
        );
    }

    #[test]
    fn a_broken_writer_is_a_fatal_error() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = ConsoleSink::to_writer(Format::Json, Arc::new(Mutex::new(Broken)));
        let err = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(sink.send_batch(&events()))
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.to_string()
                .contains("writing to the console failed: pipe closed"),
            "{err}"
        );
    }
}
