//! [`RedactedUrl`]: how every tidings crate shows a URL in logs, errors,
//! metrics labels and `tidings check`.

use std::fmt;

/// A URL (or a comma-separated list of them) as it may be shown anywhere:
/// `scheme://host:port`, with `***@` where it held user information (a
/// password, or a key sent as the user name) and `/…` where it had a path,
/// query or fragment (which may carry keys or tokens).
///
/// ```
/// use tidings_core::RedactedUrl;
///
/// let shown = RedactedUrl::new("amqps://app:s3cret@rabbit:5671/%2f?heartbeat=10");
/// assert_eq!(shown.to_string(), "amqps://***@rabbit:5671/…");
/// assert_eq!(
///     RedactedUrl::new("nats://a:4222, nats://tok@b:4222").as_str(),
///     "nats://a:4222,nats://***@b:4222"
/// );
/// assert_eq!(RedactedUrl::new("https://spade.example.com/").as_str(), "https://spade.example.com");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    /// Redacts `url`. Never fails: text that is not a URL is shown by the
    /// same rule (its part before any `/`, `?` or `#`, without `…@`).
    #[must_use]
    pub fn new(url: &str) -> Self {
        let shown: Vec<String> = url.split(',').map(|one| redact_one(one.trim())).collect();
        Self(shown.join(","))
    }

    /// The redacted text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn redact_one(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // User information ends at the last `@` before any fragment, even when
    // a password holds an unescaped `/` or `?`; hiding a path or query that
    // holds an `@` as well is the safe way to be wrong.
    let before_fragment = rest.split('#').next().unwrap_or(rest);
    let (userinfo, rest) = match before_fragment.rfind('@') {
        Some(at) => (true, &rest[at + 1..]),
        None => (false, rest),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if userinfo {
        out.push_str("***@");
    }
    out.push_str(host);
    if !tail.is_empty() && tail != "/" {
        out.push_str("/…");
    }
    out
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<&str> for RedactedUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

#[cfg(test)]
mod tests {
    use super::RedactedUrl;

    fn shown(url: &str) -> String {
        RedactedUrl::new(url).to_string()
    }

    #[test]
    fn user_information_never_shows_whatever_its_form() {
        for (url, expected) in [
            ("http://user:pass@h:8080/p", "http://***@h:8080/…"),
            (
                "https://WRITEKEY:@api.example.com",
                "https://***@api.example.com",
            ),
            ("nats://token@h:4222", "nats://***@h:4222"),
            ("amqp://a:b@c@h/%2f", "amqp://***@h/…"),
            ("u:p@h", "***@h"),
            ("amqp://user:pa/ss@host:5672/%2f", "amqp://***@host:5672/…"),
            ("http://u:p?w@h/x", "http://***@h/…"),
            ("http://h/x?email=a@b", "http://***@b"),
        ] {
            assert_eq!(shown(url), expected, "{url}");
        }
    }

    #[test]
    fn paths_queries_and_fragments_are_elided_and_a_bare_root_is_dropped() {
        for (url, expected) in [
            ("https://h/", "https://h"),
            ("https://h", "https://h"),
            ("https://h/track/KEY", "https://h/…"),
            ("https://h?key=1", "https://h/…"),
            ("https://h#frag", "https://h/…"),
            ("http://[::1]:8080/x", "http://[::1]:8080/…"),
            ("localhost:4222", "localhost:4222"),
            ("", ""),
        ] {
            assert_eq!(shown(url), expected, "{url}");
        }
    }

    #[test]
    fn each_url_of_a_list_is_redacted_and_the_list_kept() {
        assert_eq!(
            shown("nats://u:p@a:1/x , b:2,nats://c"),
            "nats://***@a:1/…,b:2,nats://c"
        );
        assert_eq!(
            format!("{:?}", RedactedUrl::new("http://u:p@h")),
            "\"http://***@h\""
        );
    }
}
