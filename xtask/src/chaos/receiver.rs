//! The receiver of the HTTP faults (`stall`, `retry-after`,
//! `sigterm-down`, `poison-http`, `poison-spade`, `uploads`): a server in
//! this process that records the ids of what it accepted, and can answer
//! 503, hold requests, or refuse poison batches on the fault's command.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::trial::{Sink, Stored, backend, distinct};
use crate::harness::{event_id, locked};

/// The receiver of the HTTP faults: answers 503 with `Retry-After` while
/// `unavailable`, else 200, recording the ids of what it accepted.
pub(super) struct Receiver {
    pub(super) addr: SocketAddr,
    /// What its requests carry.
    format: Format,
    pub(super) unavailable: AtomicBool,
    /// While set, every request is held unanswered.
    pub(super) stalled: AtomicBool,
    /// Answer 400 to a batch holding an event named `*.poison`.
    pub(super) refuse_poison: AtomicBool,
    ids: Mutex<Vec<String>>,
    /// When each request answered 503 arrived.
    pub(super) refused: Mutex<Vec<Instant>>,
    /// When the first request answered 200 after an outage arrived.
    pub(super) first_ok: Mutex<Option<Instant>>,
    requests: AtomicU64,
}

/// Seconds of `Retry-After` the receiver asks for.
pub(super) const RETRY_AFTER_SECONDS: u64 = 2;

/// What a [`Receiver`]'s requests carry.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// The HTTP JSON sink's: a JSON array of events.
    Json,
    /// The Spade sink's: a form whose `data` is base64 of a JSON array of
    /// `{"event": name, "properties": {...}}`, the event's data (`seq`,
    /// `pad`) among the properties. Ids are not sent: each is the
    /// `event_id` of run `run` and the event's `seq`.
    Spade { run: u32 },
}

impl Format {
    /// The id and name of each event in `body`; none when it cannot be decoded.
    fn events(self, body: &[u8]) -> Vec<(String, String)> {
        let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
        match self {
            Self::Json => serde_json::from_slice::<Vec<serde_json::Value>>(body)
                .unwrap_or_default()
                .iter()
                .filter_map(|event| Some((text(&event["id"])?, text(&event["name"])?)))
                .collect(),
            Self::Spade { run } => {
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(body).unwrap_or_default();
                let json = form
                    .iter()
                    .find(|(key, _)| key == "data")
                    .and_then(|(_, data)| STANDARD.decode(data).ok())
                    .unwrap_or_default();
                serde_json::from_slice::<Vec<serde_json::Value>>(&json)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|element| {
                        let seq = element["properties"]["seq"].as_u64()?;
                        Some((event_id(run, seq), text(&element["event"])?))
                    })
                    .collect()
            }
        }
    }
}

/// The ids it accepted.
impl Sink for Receiver {
    fn stored(&self) -> Result<Stored, String> {
        Ok(distinct(&locked(&self.ids)))
    }
}

impl Receiver {
    /// The HTTP JSON sink to this receiver, with the defaults but `FAST_RETRY`.
    pub(super) fn backend(&self) -> String {
        backend(
            "receiver",
            "http",
            &format!("url = \"http://{}/ingest\"", self.addr),
        )
    }

    /// A receiver of the HTTP JSON sink.
    pub(super) fn start() -> Result<Arc<Self>, String> {
        Self::listen(Format::Json)
    }

    /// A receiver of the Spade sink, for the events of run `run`.
    pub(super) fn spade(run: u32) -> Result<Arc<Self>, String> {
        Self::listen(Format::Spade { run })
    }

    fn listen(format: Format) -> Result<Arc<Self>, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind the receiver: {e}"))?;
        let receiver = Arc::new(Self {
            addr: listener.local_addr().map_err(|e| e.to_string())?,
            format,
            unavailable: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            refuse_poison: AtomicBool::new(false),
            ids: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            first_ok: Mutex::new(None),
            requests: AtomicU64::new(0),
        });
        let shared = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream));
            }
        });
        Ok(receiver)
    }

    fn serve(&self, stream: TcpStream) {
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            self.requests.fetch_add(1, Ordering::SeqCst);
            while self.stalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let events = self.format.events(&body);
            let poisoned = self.refuse_poison.load(Ordering::SeqCst)
                && events.iter().any(|(_, name)| name.ends_with(".poison"));
            let answer = if poisoned {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_owned()
            } else if self.unavailable.load(Ordering::SeqCst) {
                locked(&self.refused).push(Instant::now());
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\nContent-Length: 0\r\n\r\n"
                )
            } else {
                locked(&self.ids).extend(events.into_iter().map(|(id, _)| id));
                let mut first = locked(&self.first_ok);
                if first.is_none() && !locked(&self.refused).is_empty() {
                    *first = Some(Instant::now());
                }
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
            };
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spade_receiver_maps_each_event_to_its_id_by_its_seq() {
        // As the Spade sink sends them: context keys, then the data's.
        let elements = serde_json::json!([
            {"event": "chaos.a", "properties": {"received_at": "x", "seq": 7, "pad": "xx"}},
            {"event": "chaos.a.poison", "properties": {"seq": 8, "pad": "xx"}},
            {"event": "chaos.no_seq", "properties": {"pad": "xx"}},
        ]);
        let data = STANDARD.encode(elements.to_string());
        let body = serde_urlencoded::to_string([("data", data)]).unwrap();
        assert_eq!(
            Format::Spade { run: 3 }.events(body.as_bytes()),
            [
                (event_id(3, 7), "chaos.a".to_owned()),
                (event_id(3, 8), "chaos.a.poison".to_owned())
            ]
        );
        assert!(Format::Spade { run: 3 }.events(b"data=%%%").is_empty());
    }
}
