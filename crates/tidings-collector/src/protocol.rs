//! `JsonErrors`: the connection's I/O, rewriting the bodiless error
//! responses hyper writes by itself (431 for too many or too large
//! headers, 414 for a long URI, 400 for a malformed request line, header or
//! `Content-Length`) into JSON ones like every other refusal of the
//! collector, and answering a JSON 408 when hyper drops a connection that
//! sent part of a request and got no answer (its header timeout).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Wraps a connection's socket; see the module docs. Every response of the
/// collector's own has a body, so a 4xx or 5xx head with `content-length:
/// 0` can only be one of hyper's.
#[derive(Debug)]
pub(crate) struct JsonErrors {
    inner: TcpStream,
    /// A rewritten response still to be written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
    /// Bytes were read since the last response was written: a request
    /// (or part of one) is waiting for its answer.
    unanswered: bool,
}

impl JsonErrors {
    pub(crate) fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            pending: None,
            unanswered: false,
        }
    }
}

impl JsonErrors {
    /// Writes what is left of a rewritten response.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for JsonErrors {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.unanswered = true;
        }
        read
    }
}

impl AsyncWrite for JsonErrors {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        this.unanswered = false;
        match rewrite(buf) {
            Some(response) => {
                this.pending = Some((response, 0));
                // Taken whole: what is left is written by the next calls
                // (hyper flushes and shuts down after such an answer).
                let _ = this.poll_pending(cx)?;
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A connection dropped while its request had no answer (hyper's header
/// timeout drops it without a word) answers it 408 first, if the socket
/// takes the few bytes at once; a client already gone gets nothing.
impl Drop for JsonErrors {
    fn drop(&mut self) {
        if self.unanswered && self.pending.is_none() {
            let _ = self.inner.try_write(&timeout_response());
        }
    }
}

/// The 408 for a request whose head did not arrive in time.
fn timeout_response() -> Vec<u8> {
    let body = serde_json::json!({
        "error": "the request's headers did not arrive in time",
        "status": 408
    })
    .to_string();
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON version of `head`, if it is a bodiless error response.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    if status < 400 || !text.ends_with("\r\n\r\n") {
        return None;
    }
    let (status_line, headers) = text.split_once("\r\n")?;
    let mut lines: Vec<&str> = headers.split("\r\n").filter(|l| !l.is_empty()).collect();
    let empty = lines
        .iter()
        .position(|l| l.eq_ignore_ascii_case("content-length: 0"))?;
    lines.remove(empty);
    let error = match status {
        431 => "the request's headers are too large or too many (at most 64)".to_owned(),
        414 => "the request's URI is too long".to_owned(),
        400 => {
            "the request is malformed: its request line, a header or its Content-Length".to_owned()
        }
        _ => status_line.get(13..).unwrap_or("refused").to_owned(),
    };
    let body = serde_json::json!({"error": error, "status": status}).to_string();
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for line in lines {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bodiless_errors_become_json_and_nothing_else_changes() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 18:59:29 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(head).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(head.contains("\r\nconnection: close\r\n") && head.contains("\r\ndate: "));
        assert!(!head.contains("content-length: 0"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 431);
        assert!(body["error"].as_str().unwrap().contains("headers"));

        for (status, word) in [(414, "URI"), (400, "malformed"), (408, "Request Timeout")] {
            let head = format!("HTTP/1.1 {status} Request Timeout\r\ncontent-length: 0\r\n\r\n");
            let out = String::from_utf8(rewrite(head.as_bytes()).unwrap()).unwrap();
            assert!(out.contains(word), "{out}");
        }
        // Responses with a body, successes and partial writes pass as they are.
        for head in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n"[..],
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"{\"error\": \"HTTP/1.1 400\"}",
        ] {
            assert!(rewrite(head).is_none(), "{}", String::from_utf8_lossy(head));
        }
    }
}
