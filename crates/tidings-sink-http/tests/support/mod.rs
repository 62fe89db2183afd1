//! A real loopback HTTP server for the sink tests (hyper's server on
//! 127.0.0.1:0, on a thread of its own), which records every request and
//! answers from a script; plus decoders of the sinks' bodies.

#![allow(dead_code, unreachable_pub)] // each test file uses part of it

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tidings_event::{Event, EventName};
use tidings_routing::RetryPolicy;
use tidings_sink_http::HttpClient;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// How long a test waits for something the server should see.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// What the server answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A status, headers and a body.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Read the request, then never answer (the connection stays open).
    BlackHole,
    /// Read the request, then reset the connection (TCP RST).
    Reset,
}

impl Reply {
    /// `200 OK`.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// An empty answer with `status`.
    pub fn status(status: u16) -> Self {
        Self::Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// `status` with `Retry-After: seconds`.
    pub fn retry_after(status: u16, seconds: u64) -> Self {
        Self::Answer {
            status,
            headers: vec![("retry-after", seconds.to_string())],
            body: String::new(),
        }
    }

    /// `status` with `body`.
    pub fn body(status: u16, body: impl Into<String>) -> Self {
        Self::Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Whether this reply accepted the request (a 2xx answer).
    pub fn accepted(&self) -> bool {
        matches!(self, Self::Answer { status, .. } if (200..300).contains(status))
    }
}

/// One request as the server received it, and what it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When its head arrived.
    pub at: Instant,
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub reply: Reply,
}

impl Recorded {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Rule = Box<dyn Fn(&Recorded) -> Option<Reply> + Send>;

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    otherwise: Option<Reply>,
    rule: Option<Rule>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Chooses the reply (rule, then script, then the default) and records.
    fn record(&self, mut request: Recorded) -> Reply {
        let mut state = self.lock();
        let reply = state
            .rule
            .as_ref()
            .and_then(|rule| rule(&request))
            .or_else(|| state.script.pop_front())
            .or_else(|| state.otherwise.clone())
            .unwrap_or_else(Reply::ok);
        request.reply = reply.clone();
        state.requests.push(request);
        drop(state);
        self.changed.notify_all();
        reply
    }
}

/// A loopback HTTP/1.1 server, stopped (with every connection) when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    /// Starts a server that answers `200 OK` unless told otherwise.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::sync_channel(1);
        let state = shared.clone();
        std::thread::Builder::new()
            .name("test-server".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    bound.send(listener.local_addr().unwrap()).unwrap();
                    tokio::select! {
                        _ = stopped => {}
                        () = accept(listener, state) => {}
                    }
                });
                // Dropping the runtime here closes every connection.
            })
            .unwrap();
        let addr = addr.recv().unwrap();
        Self {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.shared.lock().script.extend(replies);
        self
    }

    /// Answers with `reply` once the script is used up (instead of `200`).
    pub fn otherwise(&self, reply: Reply) -> &Self {
        self.shared.lock().otherwise = Some(reply);
        self
    }

    /// Consults `rule` before the script: its `Some` answers the request.
    pub fn rule(&self, rule: impl Fn(&Recorded) -> Option<Reply> + Send + 'static) -> &Self {
        self.shared.lock().rule = Some(Box::new(rule));
        self
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.reply.accepted())
            .collect()
    }

    /// Waits until at least `n` requests arrived (panicking after
    /// [`PATIENCE`]) and returns them all.
    pub fn wait_for_requests(&self, n: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + PATIENCE;
        let mut state = self.shared.lock();
        while state.requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {PATIENCE:?} for {n} requests, got {}",
                state.requests.len()
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.requests.clone()
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(stream, shared.clone()));
    }
}

/// Serves one connection until it closes or a `Reset` reply resets it.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to make its close a reset (SO_LINGER 0)
    // while hyper owns the first.
    let std_stream = stream.into_std().unwrap();
    let spare = std_stream.try_clone().unwrap();
    let stream = TcpStream::from_std(std_stream).unwrap();
    let (reset, reset_requested) = oneshot::channel::<()>();
    let reset = Arc::new(Mutex::new(Some(reset)));
    let service = service_fn(move |request| handle(request, shared.clone(), reset.clone()));
    let serving = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = serving => {}
        Ok(()) = reset_requested => {
            let spare = TcpStream::from_std(spare).unwrap();
            spare.set_zero_linger().unwrap();
            // Both handles close here: the peer gets a RST.
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    reset: Arc<Mutex<Option<oneshot::Sender<()>>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let (head, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        at,
        method: head.method,
        path: head
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: head.headers,
        body,
        reply: Reply::ok(),
    };
    match shared.record(recorded) {
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            Ok(response)
        }
        Reply::BlackHole => std::future::pending().await,
        Reply::Reset => {
            if let Some(reset) = reset.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _ = reset.send(());
            }
            std::future::pending().await
        }
    }
}

/// A URL on which nothing listens (connections are refused).
pub fn refused_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}{path}")
}

/// The fields of a form body.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).expect("a form body")
}

/// The only field of a form body, which must be `data`.
pub fn data_field(body: &[u8]) -> String {
    let mut fields = form(body);
    assert_eq!(fields.len(), 1, "one field: {fields:?}");
    let (name, value) = fields.remove(0);
    assert_eq!(name, "data");
    value
}

/// The JSON text inside a spade body (form → base64 → JSON).
pub fn spade_json(body: &[u8]) -> Vec<u8> {
    STANDARD.decode(data_field(body)).expect("standard base64")
}

/// The elements of a spade body.
pub fn spade_events(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice(&spade_json(body)).expect("a JSON body") {
        Value::Array(elements) => elements,
        other => panic!("not an array: {other}"),
    }
}

/// The element of a flume body.
pub fn flume_event(body: &[u8]) -> Value {
    serde_json::from_str(&data_field(body)).expect("JSON in `data`")
}

/// The uncompressed body of a request (gunzipped if so encoded).
pub fn plain_body(request: &Recorded) -> Vec<u8> {
    if request.header("content-encoding") == Some("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&request.body[..])
            .read_to_end(&mut out)
            .expect("gzip");
        out
    } else {
        request.body.to_vec()
    }
}

/// The `seq` of each element of a spade body.
pub fn spade_seqs(request: &Recorded) -> Vec<u64> {
    spade_events(&request.body)
        .iter()
        .map(|e| e["properties"]["seq"].as_u64().expect("seq"))
        .collect()
}

/// An event named `name` whose data is `{"seq": seq}` plus `extra`'s keys.
pub fn event(name: &str, seq: u64, extra: Value) -> Event {
    let mut data = json!({ "seq": seq });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    Event::new(EventName::new(name.to_owned()).unwrap(), data)
}

/// Events `0..n` named `test.event`.
pub fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|seq| event("test.event", seq, json!({})))
        .collect()
}

/// A retry policy with millisecond backoffs.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(50))
}

/// A client whose requests time out after `timeout`.
pub fn client(timeout: Duration) -> HttpClient {
    HttpClient::builder()
        .request_timeout(timeout)
        .build()
        .unwrap()
}

/// Asserts that `seqs` holds each of `0..n` except `missing` exactly once.
pub fn assert_each_once(mut seqs: Vec<u64>, n: u64, missing: &[u64]) {
    seqs.sort_unstable();
    let expected: Vec<u64> = (0..n).filter(|s| !missing.contains(s)).collect();
    assert_eq!(seqs, expected, "every event exactly once");
}

/// `element` without the `event_id` and `time` every spade and flume
/// element carries, after checking they are `event`'s.
pub fn without_identity(mut element: Value, event: &Event) -> Value {
    let properties = element["properties"].as_object_mut().unwrap();
    let id = properties.remove("event_id").unwrap();
    assert_eq!(id, event.id().to_string());
    let time = properties.remove("time").unwrap().as_f64().unwrap();
    let nanos = event.timestamp().as_datetime().unix_timestamp_nanos() as f64;
    assert!((time - nanos / 1e9).abs() < 1e-5, "{time}");
    element
}
