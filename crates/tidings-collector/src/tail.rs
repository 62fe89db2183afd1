//! `tidings tail`: the live view's event stream (`/ui/events`) in a
//! terminal, one JSON line per event on stdout, read over plain HTTP with
//! hyper. Notices (events skipped because the terminal fell behind, the
//! collector stopping) go to stderr.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Read when `--key` is not given (a key on the command line shows in `ps`).
pub(crate) const KEY_ENV: &str = "TIDINGS_ADMIN_KEY";
/// How long connecting and the response's head may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The stream sends a comment every 15 s; this long without anything means
/// the connection is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// The longest line of the stream (events shown whole are at most 8 KiB).
const MAX_LINE: usize = 1024 * 1024;

/// Runs `tidings tail`.
pub(crate) fn run(url: &str, name: Option<&str>, key: Option<String>) -> ExitCode {
    let key = key
        .or_else(|| std::env::var(KEY_ENV).ok())
        .filter(|key| !key.trim().is_empty());
    let Some(key) = key else {
        eprintln!("tidings tail: no admin key: pass --key KEY or set {KEY_ENV}");
        return ExitCode::FAILURE;
    };
    let target = match Target::new(url, name) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("tidings tail: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tidings tail: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tail(&target, key.trim())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tidings tail: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Where the stream is.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port`, for the `Host` header and messages.
    authority: String,
    /// The host to connect to (without an IPv6 address's brackets).
    host: String,
    port: u16,
    /// `/ui/events?name=...`.
    path: String,
}

impl Target {
    /// The stream of the collector at `url` (`http://HOST:PORT`, a path
    /// prefix where it is mounted, or the stream's own URL).
    fn new(url: &str, name: Option<&str>) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "{url:?}: only plain http is supported, not {other} (reach a TLS-terminated \
                     collector through a tunnel, or run tail next to it)"
                ));
            }
            None => return Err(format!("{url:?} has no scheme: write http://{url}")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        let base = uri.path().trim_end_matches('/');
        let mut path = if base.ends_with("/ui/events") {
            base.to_owned()
        } else if base.ends_with("/ui") {
            format!("{base}/events")
        } else {
            format!("{base}/ui/events")
        };
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            let query = serde_urlencoded::to_string([("name", name)])
                .map_err(|e| format!("bad --name: {e}"))?;
            path = format!("{path}?{query}");
        }
        Ok(Self {
            authority: authority.as_str().to_owned(),
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            path,
        })
    }
}

/// Reads the stream until the collector ends it (or stdout is closed).
async fn tail(target: &Target, key: &str) -> Result<(), String> {
    let authority = &target.authority;
    let response = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("cannot talk HTTP to {authority}: {e}"))?;
        tokio::spawn(connection);
        let request = Request::get(target.path.as_str())
            .header(header::HOST, authority.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::ACCEPT, "text/event-stream")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad request: {e}"))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("{authority} did not answer: {e}"))
    })
    .await
    .map_err(|_| format!("{authority} did not answer within {CONNECT_TIMEOUT:?}"))??;

    let status = response.status();
    if status != StatusCode::OK {
        let body = tokio::time::timeout(CONNECT_TIMEOUT, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let said = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into());
        let hint = match status {
            StatusCode::NOT_FOUND => " (is [collector.ui] enabled on that collector?)",
            StatusCode::UNAUTHORIZED => " (check the admin key)",
            _ => "",
        };
        return Err(format!("{authority} answered {status}: {said}{hint}"));
    }

    let mut body = response.into_body();
    let mut parser = Parser::default();
    let stdout = std::io::stdout();
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(format!("nothing from {authority} for {IDLE_TIMEOUT:?}")),
            Ok(None) => return Err(format!("{authority} closed the stream")),
            Ok(Some(Err(error))) => {
                return Err(format!("the stream from {authority} broke: {error}"));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let mut out = stdout.lock();
        for message in parser.push(data)? {
            match message.event.as_str() {
                "message" => {
                    let written = writeln!(out, "{}", message.data);
                    if written.is_err() {
                        return Ok(()); // stdout closed (`| head`): done
                    }
                }
                "lagged" => {
                    let missed = serde_json::from_str::<serde_json::Value>(&message.data)
                        .ok()
                        .and_then(|v| v["missed"].as_u64())
                        .unwrap_or(0);
                    eprintln!(
                        "tidings tail: skipped {missed} events: this terminal fell behind the collector"
                    );
                }
                "bye" => {
                    let _ = out.flush();
                    eprintln!("tidings tail: the collector is shutting down");
                    return Ok(());
                }
                _ => {}
            }
        }
        if out.flush().is_err() {
            return Ok(());
        }
    }
}

/// One server-sent event.
#[derive(Debug, PartialEq, Eq)]
struct Message {
    /// `message` unless the event names another type.
    event: String,
    data: String,
}

/// Server-sent events from chunks of the stream.
#[derive(Debug, Default)]
struct Parser {
    line: Vec<u8>,
    event: String,
    data: Option<String>,
}

impl Parser {
    /// The events completed by `chunk`.
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<Message>, String> {
        let mut done = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                self.line.push(byte);
                if self.line.len() > MAX_LINE {
                    return Err(format!("a line of the stream is over {MAX_LINE} bytes"));
                }
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line));
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    let event = std::mem::take(&mut self.event);
                    done.push(Message {
                        event: if event.is_empty() {
                            "message".to_owned()
                        } else {
                            event
                        },
                        data,
                    });
                }
                self.event.clear();
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_owned(),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {} // comments (`: keepalive`), `retry`, `id`
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_the_stream() {
        let t = Target::new("http://127.0.0.1:8080", Some("page.*")).unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.path, "/ui/events?name=page.*");
        let t = Target::new("http://[::1]/api/", None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        assert_eq!(t.path, "/api/ui/events");
        assert_eq!(
            Target::new("http://h:1/ui", None).unwrap().path,
            "/ui/events"
        );
        assert_eq!(
            Target::new("http://h:1/ui/events", Some("a b"))
                .unwrap()
                .path,
            "/ui/events?name=a+b"
        );
        assert!(
            Target::new("https://h", None)
                .unwrap_err()
                .contains("plain http")
        );
        assert!(Target::new("h:8080", None).is_err());
    }

    #[test]
    fn the_parser_splits_events_across_chunks() {
        let mut parser = Parser::default();
        assert!(
            parser
                .push(b"retry: 5000\nevent: hello\nda")
                .unwrap()
                .is_empty()
        );
        let got = parser
            .push(b"ta: {}\n\n: keepalive\n\ndata: {\"name\":\"a\"}\r\n\r\nevent: lagged\ndata: {\"missed\":3}\n\n")
            .unwrap();
        assert_eq!(
            got,
            [
                Message {
                    event: "hello".into(),
                    data: "{}".into()
                },
                Message {
                    event: "message".into(),
                    data: "{\"name\":\"a\"}".into()
                },
                Message {
                    event: "lagged".into(),
                    data: "{\"missed\":3}".into()
                },
            ]
        );
    }
}
