//! Reading request bodies within limits, gzip included, and form fields.

use std::io::Read;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::BodyExt;

use crate::reject::Reject;

/// How long a client may take to send its body.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the whole body, refusing more than `max` bytes (after gzip
/// decompression, when the body is gzip-encoded).
pub(crate) async fn read<B>(
    headers: &HeaderMap,
    head: &BodyHead,
    body: B,
    max: usize,
) -> Result<Bytes, Reject>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = tokio::time::timeout(BODY_TIMEOUT, collect(head.declared, body, max))
        .await
        .map_err(|_| Reject::Timeout)??;
    match headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => Ok(bytes),
        Some(encoding) if encoding == "identity" => Ok(bytes),
        Some(encoding) if encoding == "gzip" => {
            let mut out = Vec::with_capacity((bytes.len() * 4).min(max + 1));
            // Every member of a concatenated body; bytes after the last member
            // that are not one are an error, as they would be without gzip.
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Reject::BadRequest(format!("body is not valid gzip: {e}")))?;
            if out.len() > max {
                return Err(Reject::TooLarge(format!(
                    "body is over {max} bytes once decompressed"
                )));
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(Reject::UnsupportedMediaType(format!(
            "content encoding {other:?} is not supported, use gzip or none"
        ))),
    }
}

/// Reads the body's frames, refusing more than `max` bytes. A body of one
/// frame is kept as it came (no copy); the frames of a longer one are
/// copied into one buffer as they arrive, sized by the declared length, so
/// that what is held is the body itself, not the connection's read
/// buffers the frames were cut from (which would double it).
async fn collect<B>(declared: Option<usize>, body: B, max: usize) -> Result<Bytes, Reject>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = declared.unwrap_or(0);
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| Reject::BadRequest(format!("could not read the body: {}", e.into())))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.remaining();
        if total > max {
            return Err(Reject::TooLarge(format!("body is over {max} bytes")));
        }
        if first.is_none() && joined.is_empty() {
            first = Some(data.copy_to_bytes(data.remaining()));
            continue;
        }
        if let Some(first) = first.take() {
            joined.reserve(declared.max(total));
            joined.extend_from_slice(&first);
        }
        joined.put(data);
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// What a request's head says of its body, read once before the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyHead {
    /// Its `Content-Length`, if any (at most `max_body_bytes`).
    declared: Option<usize>,
    /// Whether it is gzip-encoded.
    gzip: bool,
}

impl BodyHead {
    /// Reads `headers`.
    ///
    /// # Errors
    ///
    /// 413 when the declared length is over `max`: refused before reading.
    pub(crate) fn of(headers: &HeaderMap, max: usize) -> Result<Self, Reject> {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(Reject::TooLarge(format!("body is over {max} bytes")));
        }
        let gzip = headers.get(CONTENT_ENCODING).is_some_and(|v| {
            v.to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
        });
        Ok(Self {
            declared: declared.map(|n| n as usize),
            gzip,
        })
    }

    /// The body bytes the request may make the collector hold, taken from
    /// the budget before it is read: its declared length (or `max` when it
    /// does not declare one), and `max` more for a gzip body's decompressed
    /// copy.
    pub(crate) fn budget(&self, max: usize) -> usize {
        self.declared.unwrap_or(max) + if self.gzip { max } else { 0 }
    }
}

/// The media type of the request, lowercased, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Parses `application/x-www-form-urlencoded` text into its fields, in order.
pub(crate) fn form_fields(text: &[u8]) -> Result<Vec<(String, String)>, Reject> {
    serde_urlencoded::from_bytes(text)
        .map_err(|e| Reject::BadRequest(format!("body is not a valid form: {e}")))
}

/// Requires a form body (or an empty one).
pub(crate) fn require_form(headers: &HeaderMap, body: &[u8]) -> Result<(), Reject> {
    match media_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(()),
        None if body.is_empty() => Ok(()),
        other => Err(Reject::UnsupportedMediaType(format!(
            "content type {} is not supported here, use application/x-www-form-urlencoded",
            other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
        ))),
    }
}

/// Requires a form body (or an empty one), or JSON: for `/event/log`.
pub(crate) fn require_form_or_json(headers: &HeaderMap, body: &[u8]) -> Result<(), Reject> {
    match media_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded" | "application/json") => Ok(()),
        None if body.is_empty() => Ok(()),
        other => Err(Reject::UnsupportedMediaType(format!(
            "content type {} is not supported here, use application/x-www-form-urlencoded or application/json",
            other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&'static str, &'static str)]) -> Result<BodyHead, Reject> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, http::HeaderValue::from_static(value));
        }
        BodyHead::of(&headers, 1000)
    }

    #[test]
    fn a_body_is_budgeted_by_its_declared_length_and_its_gzip_copy() {
        assert_eq!(
            head(&[("content-length", "250")]).unwrap().budget(1000),
            250
        );
        assert_eq!(
            head(&[]).unwrap().budget(1000),
            1000,
            "undeclared: the most"
        );
        let gzip = head(&[("content-length", "250"), ("content-encoding", " GZip ")]);
        assert_eq!(gzip.unwrap().budget(1000), 1250);
        assert_eq!(
            head(&[("content-length", "1000")]).unwrap().budget(1000),
            1000
        );
        assert!(matches!(
            head(&[("content-length", "1001")]),
            Err(Reject::TooLarge(_))
        ));
        // Unparsable: as if undeclared (hyper refuses it before this).
        assert_eq!(head(&[("content-length", "x")]).unwrap().budget(1000), 1000);
    }
}
