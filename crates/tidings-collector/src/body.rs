//! Reading request bodies within limits, gzip included, and form fields.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Limited};

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
    let too_large = || Reject::TooLarge(format!("body is over {max} bytes"));
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max).collect())
        .await
        .map_err(|_| Reject::Timeout)?;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large());
        }
        Err(err) => {
            return Err(Reject::BadRequest(format!(
                "could not read the body: {err}"
            )));
        }
    };
    match headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => Ok(bytes),
        Some(encoding) if encoding == "identity" => Ok(bytes),
        Some(encoding) if encoding == "gzip" => {
            let mut out = Vec::with_capacity(bytes.len() * 4);
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

/// The body bytes a request may make the collector hold, taken from the
/// budget before it is read: its declared length (or `max` when it does
/// not declare one), and `max` more for a gzip body's decompressed copy.
///
/// # Errors
///
/// 413 when the declared length is over `max`: refused before reading.
pub(crate) fn budget(headers: &HeaderMap, max: usize) -> Result<usize, Reject> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let raw = match declared {
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
