//! `GET /tidings.js`: the browser snippet, embedded in the binary.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

/// The snippet's text (`src/tidings.js`).
pub(crate) const SCRIPT: &str = include_str!("tidings.js");

/// How long browsers and proxies may keep the snippet, in seconds.
const CACHE_CONTROL: &str = "public, max-age=300";

/// The answer to `GET` or `HEAD /tidings.js` (hyper leaves the body out of
/// an answer to `HEAD`).
pub(crate) fn response() -> Response<Full<Bytes>> {
    embedded(
        SCRIPT,
        "application/javascript; charset=utf-8",
        CACHE_CONTROL,
    )
}

/// A file embedded in the binary, as served: its type, how long it may be
/// kept, and `nosniff` (the live view's page adds its own headers).
pub(crate) fn embedded(
    text: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_keeps_its_delivery_paths_limits_and_reporters() {
        for needle in [
            ".sendBeacon(",
            "'visibilitychange'",
            "'pagehide'",
            "keepalive: keepalive",
            "MAX_EVENTS = 20;",
            "FLUSH_MS = 5000;",
            "MAX_BYTES = 65536;",
            "'text/plain;charset=UTF-8'",
            "'write_key='",
            "context.transport = transport",
            ".currentScript",
            "'data-write-key'",
            "console.warn(",
            "reportEvent: reportEvent",
            "'application/x-www-form-urlencoded'",
            "'data=' + encodeURIComponent(",
            "url.origin !== location.origin",
            "console.info(",
        ] {
            assert!(SCRIPT.contains(needle), "tidings.js lost {needle:?}");
        }
    }

    #[test]
    fn the_response_is_cacheable_javascript() {
        let response = response();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/javascript; charset=utf-8"
        );
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "public, max-age=300"
        );
    }
}
