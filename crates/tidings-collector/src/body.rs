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
pub(crate) async fn read<B>(headers: &HeaderMap, body: B, max: usize) -> Result<Bytes, Reject>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = tokio::time::timeout(BODY_TIMEOUT, collect(headers, body, max))
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
async fn collect<B>(headers: &HeaderMap, body: B, max: usize) -> Result<Bytes, Reject>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = declared_length(headers).unwrap_or(0).min(max as u64) as usize;
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

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The body bytes a request may make the collector hold, taken from the
/// budget before it is read: its declared length (or `max` when it does
/// not declare one), and `max` more for a gzip body's decompressed copy.
///
/// # Errors
///
/// 413 when the declared length is over `max`: refused before reading.
pub(crate) fn budget(headers: &HeaderMap, max: usize) -> Result<usize, Reject> {
    let raw = match declared_length(headers) {
        Some(n) if n > max as u64 => {
            return Err(Reject::TooLarge(format!("body is over {max} bytes")));
        }
        Some(n) => n as usize,
        None => max,
    };
    let gzip = headers.get(CONTENT_ENCODING).is_some_and(|v| {
        v.to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
    });
    Ok(if gzip { raw + max } else { raw })
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
