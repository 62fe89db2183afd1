//! The broker URL: parsed once, shown only with its password replaced, and
//! the password scrubbed from any text a client library might echo it in.

use std::fmt;
use std::str::FromStr;
use tidings_core::RedactedUrl;

use lapin::uri::AMQPUri;

/// What replaces a password wherever the URL or an error is shown.
const MASK: &str = "***";

/// A parsed `amqp://` or `amqps://` URL and its redacted form.
#[derive(Clone)]
pub(crate) struct BrokerUrl {
    uri: AMQPUri,
    redacted: String,
    /// The password as written (possibly percent-encoded) and decoded, to
    /// scrub from error texts; empty strings are never scrubbed.
    secrets: Vec<String>,
}

impl BrokerUrl {
    /// Parses `text`; the error names the redacted URL and the reason with
    /// the password scrubbed.
    pub(crate) fn parse(text: &str) -> Result<Self, (String, String)> {
        let redacted = RedactedUrl::new(text).to_string();
        let mut secrets = Vec::new();
        if let Some(raw) = password_of(text).filter(|p| !p.is_empty()) {
            secrets.push(raw.to_owned());
            let decoded = percent_decode(raw);
            if decoded != raw {
                secrets.push(decoded);
            }
        }
        let scrub = |reason: String| scrub_with(&secrets, reason);
        let uri = AMQPUri::from_str(text).map_err(|reason| (redacted.clone(), scrub(reason)))?;
        if !uri.authority.userinfo.password.is_empty() {
            let password = uri.authority.userinfo.password.clone();
            if !secrets.contains(&password) {
                secrets.push(password);
            }
        }
        Ok(Self {
            uri,
            redacted,
            secrets,
        })
    }

    /// The parsed URI, to connect with.
    pub(crate) fn uri(&self) -> &AMQPUri {
        &self.uri
    }

    /// The URL with its password replaced by `***`.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    /// `text` with every occurrence of the password replaced by `***`.
    pub(crate) fn scrub(&self, text: impl fmt::Display) -> String {
        scrub_with(&self.secrets, text.to_string())
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

fn scrub_with(secrets: &[String], mut text: String) -> String {
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

/// The `user:password@host` part of `text`, if it has one.
fn userinfo_of(text: &str) -> Option<(usize, &str)> {
    let start = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let at = authority.rfind('@')?;
    Some((start, &authority[..at]))
}

/// The password of the URL `text`, as written, if it has one.
fn password_of(text: &str) -> Option<&str> {
    let (_, userinfo) = userinfo_of(text)?;
    userinfo.split_once(':').map(|(_, password)| password)
}

/// Decodes `%XX` escapes; invalid escapes are kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_urls_scrub_their_password_in_either_encoding() {
        let url = BrokerUrl::parse("amqp://app:p%40ss@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(url.redacted(), "amqp://***@127.0.0.1:5672/…");
        assert_eq!(format!("{url:?}"), "amqp://***@127.0.0.1:5672/…");
        assert_eq!(url.scrub("login p@ss and p%40ss"), "login *** and ***");
        assert_eq!(url.uri().authority.userinfo.password, "p@ss");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_its_password() {
        let (url, reason) = BrokerUrl::parse("http://app:hunter2@host/").unwrap_err();
        assert_eq!(url, "http://***@host");
        assert!(!reason.contains("hunter2"), "{reason}");
        let (_, reason) = BrokerUrl::parse("amqp://app:hunter2@host:notaport/").unwrap_err();
        assert!(!reason.contains("hunter2"), "{reason}");
    }
}
