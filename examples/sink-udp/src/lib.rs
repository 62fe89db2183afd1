//! An example third-party sink: each event as one UDP datagram (its wire
//! format, JSON), for a statsd-like collector on the same host. Everything
//! a sink crate needs is here: the [`Sink`] (the I/O), and its [`SinkType`]
//! (`type = "udp"` in a config file: options, checks, `describe`). A
//! program registers it with one line and names it from TOML:
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::Duration;
//! use tidings::{Registry, Tracker};
//! use tidings_example_sink_udp::UdpType;
//!
//! let receiver = UdpSocket::bind("127.0.0.1:0")?;
//! let mut registry = Registry::default();
//! registry.register_sink::<UdpType>(); // the one registration line
//! let config = format!(
//!     "[backends.metrics]\ntype = \"udp\"\naddr = \"{}\"\nflush_interval_ms = 10\n",
//!     receiver.local_addr()?
//! );
//! let tracker = Tracker::from_config_str_with(&config, &registry)?;
//! tracker.emit("page.view", serde_json::json!({"path": "/"}))?;
//! tracker.shutdown(Duration::from_secs(5))?;
//!
//! let mut datagram = [0; 2048];
//! let len = receiver.recv(&mut datagram)?;
//! let event = tidings::decode(&datagram[..len], &Default::default())?.remove(0);
//! assert_eq!(event.name(), "page.view");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use serde::Deserialize;
use tidings_core::{BoxError, Delivery, Event, Sink, SinkError, SinkType, async_trait};

/// The largest datagram sent; a larger event is refused as too large (and
/// dead-lettered by the delivery engine).
pub const MAX_DATAGRAM: usize = 65_000;

/// Sends each event as one UDP datagram to `addr`.
#[derive(Debug)]
pub struct UdpSink {
    socket: UdpSocket,
    addr: SocketAddr,
}

impl UdpSink {
    /// A sink sending to `addr` from an ephemeral local port.
    ///
    /// # Errors
    ///
    /// When no local socket can be bound.
    pub fn new(addr: SocketAddr) -> std::io::Result<Self> {
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        Ok(Self {
            socket: UdpSocket::bind(local)?,
            addr,
        })
    }
}

#[async_trait]
impl Sink for UdpSink {
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        let mut datagram = Vec::new();
        for event in batch {
            datagram.clear();
            event.write_json(&mut datagram);
            if datagram.len() > MAX_DATAGRAM {
                // `TooLarge` on a batch of one: the engine dead-letters it.
                return Err(SinkError::too_large(format!(
                    "event {} is {} bytes, more than a datagram carries",
                    event.id(),
                    datagram.len()
                )));
            }
            // A UDP send does not wait for the receiver; a refusal from the
            // local stack (no route) is worth retrying.
            self.socket
                .send_to(&datagram, self.addr)
                .map_err(SinkError::retryable)?;
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        Ok(())
    }

    fn size_hint(&self, event: &Event) -> usize {
        event.encoded_len()
    }
}

/// `type = "udp"`: `addr` (required, `host:port`).
#[derive(Debug)]
pub struct UdpType;

/// The options of `type = "udp"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpOptions {
    addr: String,
}

impl fmt::Debug for UdpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&UdpType::describe(self))
    }
}

impl SinkType for UdpType {
    const NAME: &'static str = "udp";
    type Options = UdpOptions;

    fn validate(options: &UdpOptions) -> Vec<(String, String)> {
        match options.addr.parse::<SocketAddr>() {
            Ok(_) => Vec::new(),
            Err(_) => vec![(
                "addr".to_owned(),
                format!(
                    "expected an IP address and port, like 127.0.0.1:8125, found {:?}",
                    options.addr
                ),
            )],
        }
    }

    fn build(options: &UdpOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        let addr: SocketAddr = options.addr.parse()?;
        Ok(Arc::new(UdpSink::new(addr)?))
    }

    fn describe(options: &UdpOptions) -> String {
        format!("addr={}", options.addr)
    }
}
