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

/// How a form body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormKind {
    /// `application/x-www-form-urlencoded`, or `text/plain` where the route
    /// takes a beacon's string (`data=...`), or an empty body.
    UrlEncoded,
    /// `multipart/form-data` (a `FormData` beacon).
    Multipart,
}

/// Requires a form body (or an empty one): url-encoded or multipart, and
/// `text/plain` holding url-encoded text when `text_plain` (what
/// `navigator.sendBeacon` sends for a string).
pub(crate) fn require_form(
    headers: &HeaderMap,
    body: &[u8],
    text_plain: bool,
) -> Result<FormKind, Reject> {
    match media_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(FormKind::UrlEncoded),
        Some("multipart/form-data") => Ok(FormKind::Multipart),
        Some("text/plain") if text_plain => Ok(FormKind::UrlEncoded),
        None if body.is_empty() => Ok(FormKind::UrlEncoded),
        other => Err(Reject::UnsupportedMediaType(format!(
            "content type {} is not supported here, use application/x-www-form-urlencoded{} or multipart/form-data",
            other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}")),
            if text_plain { ", text/plain" } else { "" }
        ))),
    }
}

/// The most parts a multipart body may have; the parts other than the one
/// wanted are skipped, but each costs a little parsing.
pub(crate) const MAX_PARTS: usize = 100;

/// The value of the last part named `name` of a `multipart/form-data`
/// body (`None` when there is none), as UTF-8. The body is already in
/// memory and within `max_body_bytes` (`max`), so parsing never waits.
///
/// # Errors
///
/// 400 naming what is wrong: no boundary, a malformed or cut body, more
/// than [`MAX_PARTS`] parts, a value that is not UTF-8; 413 for a part over
/// `max` (which the body limit already refuses before this).
pub(crate) fn multipart_field(
    headers: &HeaderMap,
    body: &Bytes,
    name: &str,
    max: usize,
) -> Result<Option<String>, Reject> {
    use futures_util::FutureExt;

    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| Reject::BadRequest(format!("multipart body: {e}")))?;
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::convert::Infallible>(
        body.clone(),
    )));
    let limit = multer::SizeLimit::new()
        .whole_stream(max as u64)
        .per_field(max as u64);
    let mut multipart = multer::Multipart::with_constraints(
        stream,
        boundary,
        multer::Constraints::new().size_limit(limit),
    );
    let parse = async move {
        let mut found = None;
        let mut parts = 0usize;
        while let Some(field) = multipart.next_field().await.map_err(multipart_reject)? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(Reject::BadRequest(format!(
                    "multipart body has more than {MAX_PARTS} parts"
                )));
            }
            if field.name() == Some(name) {
                found = Some(field.bytes().await.map_err(multipart_reject)?);
            }
        }
        Ok(found)
    };
    // The whole body is one ready chunk: the parse finishes in one poll.
    let found = parse.now_or_never().unwrap_or_else(|| {
        Err(Reject::BadRequest(
            "multipart body could not be parsed".to_owned(),
        ))
    })?;
    found
        .map(|bytes| {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| Reject::BadRequest(format!("multipart field `{name}` is not UTF-8")))
        })
        .transpose()
}

fn multipart_reject(err: multer::Error) -> Reject {
    match err {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Reject::TooLarge(format!("multipart body: {err}"))
        }
        other => Reject::BadRequest(format!("multipart body is malformed: {other}")),
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

    #[test]
    fn a_multipart_part_over_the_limit_is_too_large() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("multipart/form-data; boundary=b"),
        );
        let body = Bytes::from_static(
            b"--b\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n0123456789abcdef\r\n--b--\r\n",
        );
        let field = |max| multipart_field(&headers, &body, "data", max);
        assert_eq!(field(1000).unwrap().as_deref(), Some("0123456789abcdef"));
        assert!(matches!(field(20), Err(Reject::TooLarge(m)) if m.starts_with("multipart body: ")));
        assert!(
            matches!(multipart_field(&headers, &body, "other", 1000), Ok(None)),
            "no such part"
        );
    }
}
