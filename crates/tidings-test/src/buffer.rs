//! `SharedBuffer`: an in-memory writer whose clones share one buffer.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// An in-memory [`Write`] whose clones share one buffer: hand one clone to
/// whatever writes (a `tracing` subscriber's `with_writer(move ||
/// buffer.clone())`, the collector's `/flume` log) and read the other.
///
/// ```
/// use std::io::Write;
/// let buffer = tidings_test::SharedBuffer::default();
/// let mut writer = buffer.clone();
/// writeln!(writer, "hello").unwrap();
/// assert_eq!(buffer.text(), "hello\n");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// What was written so far, as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// A `tracing` subscriber writing plain lines (no colours) up to
    /// `level` into this buffer: what a test that reads the logs installs,
    /// globally when worker threads log (`set_global_default`) or for one
    /// thread (`with_default`).
    #[must_use]
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .finish()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
