//! `Endpoint`: a validated target URL, its credentials moved into a header,
//! and the redacted form used in logs and errors.

use std::fmt;
use tidings_core::RedactedUrl;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use http::uri::{Authority, Scheme, Uri};
use http::{Method, Request};

use crate::BuildError;

const AGENT: &str = concat!("tidings/", env!("CARGO_PKG_VERSION"));

/// The `Content-Type` of form bodies.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// An absolute `http`/`https` URL to send requests to.
///
/// Credentials in the URL (`https://user:secret@host/`) are taken out of it
/// and sent as a basic `Authorization` header marked sensitive, since hyper
/// does not send URL credentials. `Debug` and [`Endpoint::redacted`] show only
/// the scheme, host and port, so no credential, token in a query or secret
/// path segment reaches a log line or an error message.
#[derive(Clone)]
pub(crate) struct Endpoint {
    uri: Uri,
    authorization: Option<HeaderValue>,
    redacted: String,
}

impl Endpoint {
    /// Parses the URL option `option` of the sink `sink`.
    pub(crate) fn from_option(
        sink: &'static str,
        option: &'static str,
        url: &str,
    ) -> Result<Self, BuildError> {
        Self::parse(url).map_err(|reason| BuildError::InvalidUrl {
            sink,
            option,
            reason,
        })
    }

    /// Parses the required URL option `option` of the sink `sink`.
    pub(crate) fn required(
        sink: &'static str,
        option: &'static str,
        url: Option<&str>,
    ) -> Result<Self, BuildError> {
        let url = url.ok_or(BuildError::Missing { sink, option })?;
        Self::from_option(sink, option, url)
    }

    /// Parses `text`; the error says what is wrong without repeating `text`.
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("the URL is empty");
        }
        if text.chars().any(char::is_whitespace) {
            return Err("a URL must not contain whitespace");
        }
        let uri: Uri = text.parse().map_err(|_| "not a valid URL")?;
        let parts = uri.into_parts();
        let scheme = match parts.scheme {
            Some(scheme) if scheme == Scheme::HTTP || scheme == Scheme::HTTPS => scheme,
            Some(_) => return Err("the scheme must be http or https"),
            None => return Err("not an absolute URL (it needs http:// or https://)"),
        };
        let authority = parts.authority.ok_or("the URL has no host")?;
        let (authorization, authority) = match authority.as_str().rsplit_once('@') {
            Some((userinfo, host)) => {
                let host: Authority = host.parse().map_err(|_| "the URL has an invalid host")?;
                (Some(basic_authorization(userinfo)?), host)
            }
            None => (None, authority),
        };
        if authority.host().is_empty() {
            return Err("the URL has no host");
        }
        let path = parts
            .path_and_query
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|_| "not a valid URL")?;
        let redacted = RedactedUrl::new(&uri.to_string()).to_string();
        Ok(Self {
            uri,
            authorization,
            redacted,
        })
    }

    /// Whether the URL carried credentials (sent as Basic auth).
    pub(crate) fn has_credentials(&self) -> bool {
        self.authorization.is_some()
    }

    /// The URL without credentials, query or path: safe to log.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    /// A request to this endpoint with the sink's standard headers, then
    /// `extra` (which replace standard ones of the same name).
    pub(crate) fn request(
        &self,
        method: Method,
        content_type: Option<&'static str>,
        extra: &HeaderMap,
        body: Bytes,
    ) -> Request<Bytes> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        request
    }

    /// A `POST` of `body` as `content_type`.
    pub(crate) fn post(
        &self,
        content_type: &'static str,
        extra: &HeaderMap,
        body: Bytes,
    ) -> Request<Bytes> {
        self.request(Method::POST, Some(content_type), extra, body)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// `Basic base64(user:password)` from the percent-encoded userinfo of a URL.
fn basic_authorization(userinfo: &str) -> Result<HeaderValue, &'static str> {
    const BAD: &str = "the credentials in the URL are not validly percent-encoded";
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let mut plain = percent_decode(user).ok_or(BAD)?;
    plain.push(b':');
    plain.extend(percent_decode(password).ok_or(BAD)?);
    let mut value =
        HeaderValue::try_from(format!("Basic {}", STANDARD.encode(plain))).map_err(|_| BAD)?;
    value.set_sensitive(true);
    Ok(value)
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_are_kept_and_redacted_to_scheme_host_and_port() {
        let endpoint = Endpoint::parse("http://127.0.0.1:9000/track?key=s3cret").unwrap();
        assert_eq!(
            endpoint.uri.to_string(),
            "http://127.0.0.1:9000/track?key=s3cret"
        );
        assert_eq!(endpoint.redacted(), "http://127.0.0.1:9000/…");
        assert!(endpoint.authorization.is_none());
        assert_eq!(
            Endpoint::parse("https://example.com").unwrap().redacted(),
            "https://example.com"
        );
    }

    #[test]
    fn credentials_move_to_a_sensitive_basic_authorization_header() {
        let endpoint = Endpoint::parse("https://ingest:p%40ss@example.com/x").unwrap();
        assert_eq!(endpoint.uri.to_string(), "https://example.com/x");
        let header = endpoint.authorization.as_ref().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header, &format!("Basic {}", STANDARD.encode("ingest:p@ss")));
        assert!(!format!("{endpoint:?}").contains("p%40ss"));
        assert!(
            !format!("{header:?}").contains("Basic"),
            "sensitive values are not debug-printed"
        );
    }

    #[test]
    fn bad_urls_are_explained_without_being_repeated() {
        for (text, reason) in [
            ("", "the URL is empty"),
            (
                "/track",
                "not an absolute URL (it needs http:// or https://)",
            ),
            ("ftp://example.com/", "the scheme must be http or https"),
            ("http://a b/", "a URL must not contain whitespace"),
            ("http://user:x@/", "not a valid URL"),
            (
                "http://u:%zz@host/",
                "the credentials in the URL are not validly percent-encoded",
            ),
        ] {
            assert_eq!(Endpoint::parse(text).err(), Some(reason), "{text:?}");
        }
    }
}
