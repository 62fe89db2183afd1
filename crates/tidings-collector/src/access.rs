//! Write keys (constant-time, never logged) and CORS (exact origins).

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// Compares without an early exit, so the time taken does not tell how much
/// of a guess was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The write key a request presents: `Authorization: Bearer KEY`,
/// `Authorization: Basic` with the key as the user name (Segment's
/// libraries; the password is taken when the user name is empty), an
/// `X-Write-Key` header, or a `write_key` query parameter (for beacons,
/// which cannot set headers).
fn presented_key<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(key) = value.strip_prefix("Bearer ") {
            return Some(key.trim().into());
        }
        if let Some(credentials) = value.strip_prefix("Basic ") {
            return Some(basic_key(credentials.trim()).into());
        }
    }
    if let Some(value) = headers.get("x-write-key").and_then(|v| v.to_str().ok()) {
        return Some(value.trim().into());
    }
    let query = query?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "write_key")
        .map(|(_, v)| v.into())
}

/// The write key of Basic credentials (`base64("user:password")`): the
/// user name, or the password when the user name is empty. Credentials
/// that are not base64 of UTF-8 present a key that matches none (an empty
/// one), so the request is refused rather than treated as keyless.
fn basic_key(credentials: &str) -> String {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    match decoded.split_once(':') {
        Some(("", password)) => password.to_owned(),
        Some((user, _)) => user.to_owned(),
        None => decoded,
    }
}

/// What a request's head says about its right to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No keys are configured, or the request presents one of them.
    Granted,
    /// The request presents a key that is not one of them.
    Denied,
    /// Keys are configured and the request's head presents none.
    NotPresented,
}

/// Whether the request may write: always when no keys are configured,
/// else when it presents one of them. Every key is compared, in constant time.
pub(crate) fn access(keys: &[String], headers: &HeaderMap, query: Option<&str>) -> Access {
    if keys.is_empty() {
        return Access::Granted;
    }
    match presented_key(headers, query) {
        None => Access::NotPresented,
        Some(presented) if is_key(keys, &presented) => Access::Granted,
        Some(_) => Access::Denied,
    }
}

/// Whether `presented` is one of `keys`; every key is compared, in
/// constant time.
pub(crate) fn is_key(keys: &[String], presented: &str) -> bool {
    keys.iter().fold(false, |ok, key| {
        constant_time_eq(key.as_bytes(), presented.as_bytes()) | ok
    })
}

/// [`access`] as a yes or no.
#[cfg(test)]
fn authorized(keys: &[String], headers: &HeaderMap, query: Option<&str>) -> bool {
    access(keys, headers, query) == Access::Granted
}

/// The request's `Origin` if it is one of `allowed` (exact match).
pub(crate) fn allowed_origin<'a>(
    allowed: &[String],
    headers: &'a HeaderMap,
) -> Option<&'a HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    let text = origin.to_str().ok()?;
    allowed.iter().any(|a| a == text).then_some(origin)
}

/// Adds the CORS headers for an allowed origin.
pub(crate) fn add_cors(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a CORS preflight: 204 with the allowed methods and headers
/// for an allowed origin, 403 otherwise.
pub(crate) fn preflight(origin: Option<HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    match origin {
        Some(origin) => {
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            add_cors(headers, origin);
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            );
            headers.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "content-type, content-encoding, authorization, x-write-key",
                ),
            );
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        None => {
            return crate::reject::json_response(
                StatusCode::FORBIDDEN,
                &serde_json::json!({
                    "error": "this origin is not in the collector's allowed_origins",
                    "status": 403
                }),
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn keys_are_taken_from_bearer_header_or_query() {
        let keys = vec!["k1".to_owned(), "k2".to_owned()];
        assert!(authorized(
            &keys,
            &headers(&[("authorization", "Bearer k2")]),
            None
        ));
        assert!(authorized(&keys, &headers(&[("x-write-key", "k1")]), None));
        assert!(authorized(
            &keys,
            &HeaderMap::new(),
            Some("a=1&write_key=k1")
        ));
        assert!(!authorized(
            &keys,
            &headers(&[("authorization", "Bearer k3")]),
            None
        ));
        assert!(!authorized(&keys, &HeaderMap::new(), Some("write_key=k")));
        assert!(!authorized(&keys, &HeaderMap::new(), None));
        assert!(authorized(&[], &HeaderMap::new(), None), "no keys: open");
        assert_eq!(access(&keys, &HeaderMap::new(), None), Access::NotPresented);
        assert_eq!(
            access(&keys, &HeaderMap::new(), Some("a=1")),
            Access::NotPresented
        );
        assert_eq!(
            access(&keys, &HeaderMap::new(), Some("write_key=k3")),
            Access::Denied
        );
        assert!(is_key(&keys, "k2") && !is_key(&keys, "k") && !is_key(&[], ""));
    }

    #[test]
    fn basic_credentials_present_the_user_name_or_else_the_password() {
        let keys = vec!["k1".to_owned()];
        // base64("k1:"), base64(":k1"), base64("k1:secret"), base64("k2:").
        for (value, granted) in [
            ("Basic azE6", true),
            ("Basic OmsxOg==", false),
            ("Basic Omsx", true),
            ("Basic azE6c2VjcmV0", true),
            ("Basic azI6", false),
            ("Basic !!!", false),
            ("Basic azE", false),
        ] {
            let mut map = HeaderMap::new();
            map.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(
                access(&keys, &map, None),
                if granted {
                    Access::Granted
                } else {
                    Access::Denied
                },
                "{value}"
            );
        }
        assert_eq!(basic_key("azE6"), "k1");
        assert_eq!(basic_key("azE="), "k1", "no colon: the whole is the key");
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn origins_match_exactly() {
        let allowed = vec!["https://app.example".to_owned()];
        assert!(allowed_origin(&allowed, &headers(&[("origin", "https://app.example")])).is_some());
        assert!(
            allowed_origin(
                &allowed,
                &headers(&[("origin", "https://app.example.evil")])
            )
            .is_none()
        );
        assert!(allowed_origin(&allowed, &headers(&[("origin", "http://app.example")])).is_none());
    }
}
