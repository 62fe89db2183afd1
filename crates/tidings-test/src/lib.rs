//! Test support for tidings: a [`RecordingBackend`] that keeps every event it
//! receives, a [`RecordingSink`] that records batches and plays a script of
//! failures, [`require_service`], which makes a test that needs a real
//! service fail loudly (never skip) when that service is down, and
//! [`assert_sink_compliance`], the checks every sink must pass against its
//! real destination.
//!
//! Add it as a dev-dependency to test your own instrumentation:
//!
//! ```
//! use serde_json::json;
//! use tidings_event::{Event, EventName};
//! use tidings_routing::Backend;
//! use tidings_test::RecordingBackend;
//!
//! let recorder = RecordingBackend::new();
//! let backend = recorder.clone(); // give this one to the tracker or router
//! backend.send(Event::new(EventName::new("signup.completed")?, json!({"plan": "pro"})))?;
//! assert_eq!(recorder.names(), ["signup.completed"]);
//! assert_eq!(recorder.events()[0].data()["plan"], "pro");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod buffer;
mod compliance;
#[cfg(feature = "config")]
mod memory;
mod outage;
mod proxy;
mod s3;
mod sink;

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use buffer::SharedBuffer;
pub use compliance::{Compliance, ComplianceReport, assert_sink_compliance};
#[cfg(feature = "config")]
pub use memory::{MemoryOptions, MemorySinkType, install_memory_sink, memory_sink};
pub use outage::{Outage, OutageReport};
pub use proxy::CuttableProxy;
pub use s3::{S3_TEST_KEY, S3Server, free_port};
pub use sink::{Answer, RecordingSink};
use tidings_event::Event;
use tidings_routing::{Backend, SendError};

/// A backend that records every event it receives, in order.
///
/// Clones share the same record, so keep one clone to inspect while the
/// other is owned by a tracker or router. Recorded events hold no
/// [`Lease`](tidings_event::Lease): recording them counts as delivering them.
#[derive(Debug, Clone, Default)]
pub struct RecordingBackend {
    events: Arc<Mutex<Vec<Event>>>,
}

impl RecordingBackend {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        // A panicking test thread must not hide what was recorded.
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the events received so far.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// The names of the events received so far.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|e| e.name().to_string()).collect()
    }

    /// How many events were received.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no event was received.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Removes and returns the events received so far.
    #[must_use]
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.lock())
    }
}

impl Backend for RecordingBackend {
    fn send(&self, mut event: Event) -> Result<(), SendError> {
        drop(event.take_lease()); // recorded means delivered
        self.lock().push(event);
        Ok(())
    }
}

/// Panics, naming the service and how to start it, unless a TCP connection
/// to `addr` succeeds within two seconds.
///
/// Tests of sinks run against real services; this makes a missing service a
/// loud failure instead of a silently skipped test.
///
/// # Panics
///
/// When `addr` does not resolve or does not accept a connection.
pub fn require_service(name: &str, addr: &str, how_to_start: &str) {
    let reachable = addr.to_socket_addrs().ok().and_then(|mut addrs| {
        addrs.find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
    });
    assert!(
        reachable.is_some(),
        "{name} is required by this test but is not reachable at {addr}; start it with: {how_to_start} \
         (or run `scripts/test`, which installs and starts every service the tests need)"
    );
}

/// The headless browser the browser tests drive: `$CHROMIUM` when set,
/// else Debian's `/usr/bin/chromium`.
///
/// # Panics
///
/// When no browser is at that path, naming the path and how to install
/// one (`scripts/test` installs it).
#[must_use]
pub fn chromium() -> std::path::PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .filter(|path| !path.is_empty())
        .map_or_else(|| "/usr/bin/chromium".into(), std::path::PathBuf::from);
    assert!(
        path.exists(),
        "Chromium is not installed at {} and the browser tests need it: install it with \
         `sudo apt-get install -y chromium` (Debian and Ubuntu; `scripts/test` does this), \
         or set CHROMIUM to the path of a Chromium or Chrome binary",
        path.display()
    );
    path
}

/// A headless [`chromium`] command for a test, its profile and home under
/// `dir` (created): headless, no sandbox, GPU, first-run, background
/// networking, component updates, sync or crash reporter (on a machine
/// without internet, Chromium otherwise keeps trying to reach Google),
/// logging to stderr, stdin closed, in a process group of its own (kill
/// the group to stop it and its helpers). Add arguments, stdout and stderr,
/// then spawn.
///
/// # Panics
///
/// As [`chromium`], or when `dir` cannot be created.
#[cfg(unix)]
#[must_use]
pub fn chromium_command(dir: &std::path::Path) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let home = dir.join("home");
    std::fs::create_dir_all(&home)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", home.display()));
    let mut command = std::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-crash-reporter",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        // Nothing written outside `dir`.
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env("XDG_CACHE_HOME", &home)
        .stdin(std::process::Stdio::null())
        .process_group(0);
    command
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use serde_json::json;
    use tidings_event::EventName;

    use super::*;

    #[test]
    fn records_in_order_and_clones_share_the_record() {
        let recorder = RecordingBackend::new();
        let other = recorder.clone();
        for name in ["a", "b", "c"] {
            other
                .send(Event::new(EventName::new(name).unwrap(), json!({})))
                .unwrap();
        }
        assert_eq!(recorder.names(), ["a", "b", "c"]);
        assert_eq!(recorder.take().len(), 3);
        assert!(recorder.is_empty());
    }

    #[test]
    fn require_service_passes_when_something_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        require_service(
            "test listener",
            &listener.local_addr().unwrap().to_string(),
            "nothing",
        );
    }

    #[test]
    fn require_service_fails_loudly_naming_the_service() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        }; // closed again: nothing listens there now
        let err = std::panic::catch_unwind(|| {
            require_service("PostgreSQL", &addr, "pg_ctlcluster 15 main start")
        })
        .unwrap_err();
        let message = err.downcast_ref::<String>().unwrap();
        assert!(
            message.starts_with("PostgreSQL is required by this test but is not reachable at"),
            "{message}"
        );
        assert!(
            message.ends_with(
                "start it with: pg_ctlcluster 15 main start \
                 (or run `scripts/test`, which installs and starts every service the tests need)"
            ),
            "{message}"
        );
    }
}
