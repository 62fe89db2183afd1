//! The event tap of the live view: a broadcast of the events the collector
//! accepts, fed only while a stream is open, and the server-sent-event
//! streams (`/ui/events`) reading it.
//!
//! Ingestion never waits on a viewer: the broadcast keeps the last
//! `tail_buffer` events whatever the viewers read, so a stream that falls
//! behind skips what was overwritten and is told how many it missed. With
//! no stream open the tap is one atomic load per request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tidings_catalog::PiiFilter;
use tidings_event::Event;
use tidings_processors::Processor;
use tokio::sync::{broadcast, mpsc, watch};

/// The largest event shown whole, in bytes of JSON; a larger one is shown
/// as its id, name and times, so the broadcast holds at most
/// `tail_buffer` times this much.
pub(crate) const MAX_SHOWN_BYTES: usize = 8 * 1024;
/// How often an idle stream sends a comment, so proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Chunks waiting for a stream's connection; past them the stream's pump
/// stops reading the broadcast, and that stream (only) falls behind.
const STREAM_CHUNKS: usize = 8;
/// The longest name filter, in bytes (names are at most 255).
pub(crate) const MAX_FILTER_LEN: usize = 255;

/// One accepted event, ready to send: its name, for the filters, and its
/// server-sent-event chunk (`data: JSON\n\n`), encoded once for every
/// stream.
#[derive(Debug)]
pub(crate) struct Tapped {
    name: Box<str>,
    chunk: Bytes,
}

/// The broadcast of accepted events and the count of streams reading it.
#[derive(Debug)]
pub(crate) struct Tap {
    sender: broadcast::Sender<Arc<Tapped>>,
    /// Streams open. The tap does nothing while it is zero.
    watchers: AtomicUsize,
    max_streams: usize,
    buffer: usize,
    /// Set when the server stops: every stream says goodbye and ends.
    closing: watch::Sender<bool>,
    /// Removes the properties the catalog marks `pii` from what is shown.
    pii: Option<PiiFilter>,
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_streams` are open.
    TooMany,
    /// The server is stopping.
    Closing,
}

impl Tap {
    pub(crate) fn new(buffer: usize, max_streams: usize, pii: Option<PiiFilter>) -> Self {
        // The config keeps it within 1..=65536; options built in code too.
        let buffer = buffer.clamp(1, 1 << 16);
        let (sender, _) = broadcast::channel(buffer);
        let (closing, _) = watch::channel(false);
        Self {
            sender,
            watchers: AtomicUsize::new(0),
            max_streams,
            buffer,
            closing,
            pii,
        }
    }

    /// Streams open now.
    pub(crate) fn streams(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }

    /// The most streams open at once.
    pub(crate) fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// The events of a request, encoded for the streams, if any is open
    /// (else `None`, at the cost of one atomic load). Call before the
    /// events are admitted, [`Tap::publish`] once they are.
    pub(crate) fn prepare(&self, events: &[Event]) -> Option<Vec<Arc<Tapped>>> {
        if self.watchers.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(events.iter().map(|e| Arc::new(self.encode(e))).collect())
    }

    /// Hands accepted events to the open streams. Never waits: the
    /// broadcast overwrites what the slowest stream has not read.
    pub(crate) fn publish(&self, tapped: Vec<Arc<Tapped>>) {
        for item in tapped {
            // No receiver left (the last stream just closed): nothing to do.
            let _ = self.sender.send(item);
        }
    }

    fn encode(&self, event: &Event) -> Tapped {
        let json = match &self.pii {
            Some(filter) => {
                let mut shown = event.clone();
                // A failing filter shows nothing of the data rather than all of it.
                if filter.process(&mut shown).is_err() {
                    *shown.data_mut() = serde_json::Value::Null;
                }
                shown.to_json_bytes()
            }
            None => event.to_json_bytes(),
        };
        let json = if json.len() > MAX_SHOWN_BYTES {
            serde_json::to_vec(&serde_json::json!({
                "id": event.id(),
                "name": event.name().as_str(),
                "timestamp": event.timestamp(),
                "received_at": event.received_at(),
                "truncated": true,
                "bytes": json.len(),
            }))
            .unwrap_or_default()
        } else {
            json
        };
        let mut chunk = Vec::with_capacity(json.len() + 8);
        chunk.extend_from_slice(b"data: ");
        chunk.extend_from_slice(&json);
        chunk.extend_from_slice(b"\n\n");
        Tapped {
            name: event.name().as_str().into(),
            chunk: Bytes::from(chunk),
        }
    }

    /// Opens a stream of the events whose names `filter` matches, within
    /// `max_streams`. Must be called within a tokio runtime: the stream is
    /// pumped by a task of its own.
    pub(crate) fn open(self: &Arc<Self>, filter: NameFilter) -> Result<SseBody, Refused> {
        if *self.closing.borrow() {
            return Err(Refused::Closing);
        }
        let mut open = self.watchers.load(Ordering::Relaxed);
        loop {
            if open >= self.max_streams {
                return Err(Refused::TooMany);
            }
            match self.watchers.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => open = now,
            }
        }
        let watcher = Watcher { tap: self.clone() };
        let receiver = self.sender.subscribe();
        let closing = self.closing.subscribe();
        let (chunks, body) = mpsc::channel(STREAM_CHUNKS);
        let hello = serde_json::json!({"filter": filter.text(), "buffer": self.buffer});
        tokio::spawn(pump(
            receiver,
            filter,
            chunks,
            closing,
            format!("retry: 5000\nevent: hello\ndata: {hello}\n\n"),
            watcher,
        ));
        Ok(SseBody { chunks: body })
    }

    /// Ends every stream (the server is stopping) and refuses new ones.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// Counts a stream as open while it lives.
struct Watcher {
    tap: Arc<Tap>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.tap.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Moves one stream's events from the broadcast to its connection, until
/// the client goes away or the server stops.
async fn pump(
    mut events: broadcast::Receiver<Arc<Tapped>>,
    filter: NameFilter,
    chunks: mpsc::Sender<Bytes>,
    mut closing: watch::Receiver<bool>,
    hello: String,
    _watcher: Watcher,
) {
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if *closing.borrow_and_update() {
        return;
    }
    let mut next = Some(Bytes::from(hello));
    loop {
        if let Some(chunk) = next.take() {
            tokio::select! {
                sent = chunks.send(chunk) => if sent.is_err() { return },
                _ = closing.changed() => break,
            }
        }
        next = tokio::select! {
            received = events.recv() => match received {
                Ok(item) if filter.matches(&item.name) => Some(item.chunk.clone()),
                Ok(_) => None,
                Err(broadcast::error::RecvError::Lagged(missed)) => Some(Bytes::from(format!(
                    "event: lagged\ndata: {{\"missed\":{missed}}}\n\n"
                ))),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keepalive.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
            _ = closing.changed() => break,
            () = chunks.closed() => return,
        };
    }
    // The server is stopping: say so, if there is room, and end the body.
    let _ = chunks.try_send(Bytes::from_static(
        b"event: bye\ndata: {\"reason\":\"the collector is shutting down\"}\n\n",
    ));
}

/// The body of a `/ui/events` response: the chunks its pump sends, until
/// the pump ends.
#[derive(Debug)]
pub(crate) struct SseBody {
    chunks: mpsc::Receiver<Bytes>,
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// Which events a stream shows, by name: all (an empty filter), those
/// whose name contains the text, or, when the text has `*` or `?`, those
/// whose whole name matches it as a glob (`*` any run of characters, `?`
/// one character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameFilter {
    /// Every event.
    All,
    /// Names containing this.
    Contains(String),
    /// Names matching this glob.
    Glob(String),
}

impl NameFilter {
    pub(crate) fn new(text: &str) -> Self {
        if text.is_empty() {
            Self::All
        } else if text.contains(['*', '?']) {
            Self::Glob(text.to_owned())
        } else {
            Self::Contains(text.to_owned())
        }
    }

    fn text(&self) -> &str {
        match self {
            Self::All => "",
            Self::Contains(text) | Self::Glob(text) => text,
        }
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Contains(text) => name.contains(text.as_str()),
            Self::Glob(pattern) => glob(pattern, name),
        }
    }
}

/// Whether `name` matches `pattern` whole: `*` matches any run of
/// characters (none included), `?` exactly one, anything else itself.
/// Backtracks to the last `*` only, so it runs in O(pattern × name).
fn glob(pattern: &str, name: &str) -> bool {
    let (mut p, mut n) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and where in the
    // name that `*`'s run ends so far.
    let mut star: Option<(usize, usize)> = None;
    while let Some(nc) = name[n..].chars().next() {
        match pattern[p..].chars().next() {
            Some('*') => {
                p += 1;
                star = Some((p, n));
                continue;
            }
            Some(pc) if pc == '?' || pc == nc => {
                p += pc.len_utf8();
                n += nc.len_utf8();
                continue;
            }
            _ => {}
        }
        let Some((resume, run_end)) = star else {
            return false;
        };
        // Let the `*` take one more character and try again from there.
        let next = run_end + name[run_end..].chars().next().map_or(0, char::len_utf8);
        star = Some((resume, next));
        p = resume;
        n = next;
    }
    pattern[p..].chars().all(|c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_substrings_or_globs() {
        let cases = [
            ("", "anything", true),
            ("view", "page.view", true),
            ("View", "page.view", false),
            ("page.*", "page.view", true),
            ("page.*", "page", false),
            ("*.view", "page.view", true),
            ("*.view", "page.views", false),
            ("p?ge.*", "page.view", true),
            ("p?ge", "page.view", false),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("é?.*", "éa.x", true),
            ("??", "é", false),
            ("?", "é", true),
            ("**x", "abx", true),
        ];
        for (filter, name, expected) in cases {
            assert_eq!(
                NameFilter::new(filter).matches(name),
                expected,
                "{filter:?} on {name:?}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_tap_is_idle_without_streams_and_counts_them() {
        let tap = Arc::new(Tap::new(4, 1, None));
        let event = Event::new(
            tidings_event::EventName::new("a.b").unwrap(),
            serde_json::json!({"k": 1}),
        );
        assert!(tap.prepare(std::slice::from_ref(&event)).is_none());
        let body = tap.open(NameFilter::All).unwrap();
        assert_eq!(tap.streams(), 1);
        assert_eq!(
            tap.open(NameFilter::All).unwrap_err(),
            Refused::TooMany,
            "max_streams = 1"
        );
        let tapped = tap.prepare(std::slice::from_ref(&event)).unwrap();
        assert!(tapped[0].chunk.starts_with(b"data: {"));
        assert!(tapped[0].chunk.ends_with(b"}\n\n"));
        drop(body);
        // The pump notices the body is gone and closes the stream.
        for _ in 0..100 {
            if tap.streams() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(tap.streams(), 0);
    }

    #[test]
    fn large_events_are_shown_without_their_data() {
        let tap = Tap::new(4, 1, None);
        let big = "x".repeat(MAX_SHOWN_BYTES);
        let event = Event::new(
            tidings_event::EventName::new("big.one").unwrap(),
            serde_json::json!({ "pad": big }),
        );
        let tapped = tap.encode(&event);
        assert!(tapped.chunk.len() < 1024, "{}", tapped.chunk.len());
        let json: serde_json::Value =
            serde_json::from_slice(&tapped.chunk[6..tapped.chunk.len() - 2]).unwrap();
        assert_eq!(json["name"], "big.one");
        assert_eq!(json["truncated"], true);
    }
}
