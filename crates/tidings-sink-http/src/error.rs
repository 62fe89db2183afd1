//! `BuildError`: what can be wrong with a sink's or a client's options.

use tidings_processors::AllowlistError;

/// A sink or an [`HttpClient`](crate::HttpClient) could not be built from its
/// options.
///
/// Messages name the sink type (`spade`, `flume`, `http`, `segment`) and the option (as
/// spelled in the TOML config) and say what is wrong with it. They never
/// contain a URL or a header value, which may carry credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required option is not set.
    #[error("the {sink} sink needs `{option}`")]
    Missing {
        /// The sink type.
        sink: &'static str,
        /// The missing option.
        option: &'static str,
    },
    /// A URL option is not an absolute `http` or `https` URL.
    #[error("invalid `{option}` of the {sink} sink: {reason}")]
    InvalidUrl {
        /// The sink type.
        sink: &'static str,
        /// The option holding the URL.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An extra header has an invalid name or value, or is one the sink sets
    /// itself.
    #[error("invalid header {name:?} of the {sink} sink: {reason}")]
    InvalidHeader {
        /// The sink type.
        sink: &'static str,
        /// The header's name, as given.
        name: String,
        /// What is wrong with it (the value itself is never shown).
        reason: &'static str,
    },
    /// Another option has a value the sink cannot use, or options conflict.
    #[error("invalid `{option}` of the {sink} sink: {reason}")]
    InvalidOption {
        /// The sink type.
        sink: &'static str,
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry of the flume sink's `allowed_properties` is not a usable
    /// dotted path.
    #[error("invalid `allowed_properties` of the flume sink: {0}")]
    AllowedProperties(#[from] AllowlistError),
    /// The HTTP client's TLS configuration could not be made.
    #[error("could not configure TLS for the HTTP client: {0}")]
    Tls(#[source] rustls::Error),
    /// The HTTP client's I/O thread or its runtime could not be started.
    #[error("could not start the HTTP client's I/O thread: {0}")]
    Io(#[source] std::io::Error),
}
