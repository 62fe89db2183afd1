//! The stock processor and sink types, registered by `Registry::default()`.

use std::sync::Arc;

use serde::Deserialize;
use tidings_processors::{FilterMode, Processor, PropertyAllowlist, RegexFilter};

use crate::{ProcessorType, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.register_processor::<RegexFilterType>();
    registry.register_processor::<PropertyAllowlistType>();
    #[cfg(feature = "console")]
    registry.register_sink::<console::ConsoleType>();
    #[cfg(feature = "file")]
    registry.register_sink::<file::FileType>();
    #[cfg(feature = "http")]
    {
        registry.register_sink::<http::SpadeType>();
        registry.register_sink::<http::FlumeType>();
        registry.register_sink::<http::HttpType>();
    }
}

/// `type = "regex_filter"`: `filter = "allowlist" | "blocklist"`, `patterns`.
#[derive(Debug)]
pub struct RegexFilterType;

/// The options of `regex_filter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexFilterOptions {
    filter: Filter,
    patterns: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Filter {
    Allowlist,
    Blocklist,
}

impl ProcessorType for RegexFilterType {
    const NAME: &'static str = "regex_filter";
    type Options = RegexFilterOptions;

    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)> {
        let mode = match options.filter {
            Filter::Allowlist => FilterMode::Allowlist,
            Filter::Blocklist => FilterMode::Blocklist,
        };
        RegexFilter::new(mode, options.patterns)
            .map(|f| Arc::new(f) as Arc<dyn Processor>)
            .map_err(|e| (format!("patterns[{}]", e.index), e.to_string()))
    }

    fn describe(options: &Self::Options) -> String {
        let mode = match options.filter {
            Filter::Allowlist => "allowlist",
            Filter::Blocklist => "blocklist",
        };
        format!("{mode} {:?}", options.patterns)
    }
}

/// `type = "property_allowlist"`: `allowed` (dotted paths).
#[derive(Debug)]
pub struct PropertyAllowlistType;

/// The options of `property_allowlist`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyAllowlistOptions {
    allowed: Vec<String>,
}

impl ProcessorType for PropertyAllowlistType {
    const NAME: &'static str = "property_allowlist";
    type Options = PropertyAllowlistOptions;

    fn build(options: Self::Options) -> Result<Arc<dyn Processor>, (String, String)> {
        PropertyAllowlist::new(options.allowed)
            .map(|p| Arc::new(p) as Arc<dyn Processor>)
            .map_err(|e| (format!("allowed[{}]", e.index), e.to_string()))
    }

    fn describe(options: &Self::Options) -> String {
        format!("allowed {:?}", options.allowed)
    }
}

#[cfg(feature = "console")]
mod console {
    //! `type = "console"`.

    use std::sync::Arc;

    use serde::Deserialize;
    use tidings_routing::{BoxError, Sink};
    use tidings_sink_console::{ConsoleSink, Format, Stream};

    use crate::SinkType;

    /// `type = "console"`: `format = "json" | "pretty"`, `stream = "stdout" | "stderr"`.
    #[derive(Debug)]
    pub(crate) struct ConsoleType;

    /// The options of `console`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct ConsoleOptions {
        #[serde(default)]
        format: ConsoleFormat,
        #[serde(default)]
        stream: ConsoleStream,
    }

    #[derive(Debug, Clone, Copy, Default, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum ConsoleFormat {
        #[default]
        Json,
        Pretty,
    }

    #[derive(Debug, Clone, Copy, Default, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum ConsoleStream {
        #[default]
        Stdout,
        Stderr,
    }

    impl SinkType for ConsoleType {
        const NAME: &'static str = "console";
        type Options = ConsoleOptions;

        fn build(options: &Self::Options) -> Result<Arc<dyn Sink>, BoxError> {
            let format = match options.format {
                ConsoleFormat::Json => Format::Json,
                ConsoleFormat::Pretty => Format::Pretty,
            };
            let stream = match options.stream {
                ConsoleStream::Stdout => Stream::Stdout,
                ConsoleStream::Stderr => Stream::Stderr,
            };
            Ok(Arc::new(ConsoleSink::new(format, stream)))
        }

        fn describe(options: &Self::Options) -> String {
            format!("format={:?} stream={:?}", options.format, options.stream).to_lowercase()
        }
    }
}

#[cfg(feature = "file")]
mod file {
    //! `type = "file"`.

    use std::path::PathBuf;
    use std::sync::Arc;

    use serde::Deserialize;
    use tidings_routing::{BoxError, Sink};
    use tidings_sink_file::{DEFAULT_ROLL_EVENTS, DEFAULT_ROLL_SECONDS, FileSink};

    use crate::SinkType;

    /// `type = "file"`: `path` (required), `roll_events`, `roll_seconds`, `gzip`.
    #[derive(Debug)]
    pub(crate) struct FileType;

    /// The options of `file`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct FileOptions {
        path: PathBuf,
        #[serde(default = "roll_events")]
        roll_events: u64,
        #[serde(default = "roll_seconds")]
        roll_seconds: u64,
        #[serde(default)]
        gzip: bool,
    }

    fn roll_events() -> u64 {
        DEFAULT_ROLL_EVENTS
    }

    fn roll_seconds() -> u64 {
        DEFAULT_ROLL_SECONDS
    }

    impl SinkType for FileType {
        const NAME: &'static str = "file";
        type Options = FileOptions;

        fn validate(options: &FileOptions) -> Vec<(String, String)> {
            let mut problems = Vec::new();
            if options.roll_events == 0 {
                problems.push(("roll_events".to_owned(), "must be at least 1".to_owned()));
            }
            if options.roll_seconds == 0 {
                problems.push(("roll_seconds".to_owned(), "must be at least 1".to_owned()));
            }
            if options.path.as_os_str().is_empty() {
                problems.push(("path".to_owned(), "must not be empty".to_owned()));
            }
            problems
        }

        fn build(options: &FileOptions) -> Result<Arc<dyn Sink>, BoxError> {
            let sink = FileSink::builder(&options.path)
                .roll_events(options.roll_events)
                .roll_seconds(options.roll_seconds)
                .gzip(options.gzip)
                .build()?;
            Ok(Arc::new(sink))
        }

        fn describe(options: &FileOptions) -> String {
            format!(
                "path={} roll_events={} roll_seconds={} gzip={}",
                options.path.display(),
                options.roll_events,
                options.roll_seconds,
                options.gzip
            )
        }
    }
}

#[cfg(feature = "http")]
mod http {
    //! `type = "spade"`, `"flume"` and `"http"`, sharing one HTTP client.

    use std::collections::BTreeMap;
    use std::sync::{Arc, OnceLock};

    use serde::Deserialize;
    use tidings_routing::{BoxError, Sink};
    use tidings_sink_http::{FlumeSink, HttpClient, HttpJsonSink, SpadeSink};

    use crate::SinkType;

    /// The one client (connection pool, I/O thread) of every HTTP sink a
    /// config builds.
    fn client() -> Result<HttpClient, BoxError> {
        static CLIENT: OnceLock<HttpClient> = OnceLock::new();
        if let Some(client) = CLIENT.get() {
            return Ok(client.clone());
        }
        let client = HttpClient::new()?;
        Ok(CLIENT.get_or_init(|| client).clone())
    }

    /// Shows a URL without credentials, path or query.
    fn redact(url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit('@').next().unwrap_or(host);
        format!("{scheme}://{host}/…")
    }

    /// `type = "spade"`: `url`, `rotator_url`, `refresh_seconds`.
    #[derive(Debug)]
    pub(crate) struct SpadeType;

    /// The options of `spade`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct SpadeOptions {
        url: Option<String>,
        rotator_url: Option<String>,
        refresh_seconds: Option<u64>,
    }

    impl std::fmt::Debug for SpadeOptions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&SpadeType::describe(self))
        }
    }

    impl std::fmt::Debug for FlumeOptions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&FlumeType::describe(self))
        }
    }

    impl SinkType for SpadeType {
        const NAME: &'static str = "spade";
        type Options = SpadeOptions;

        fn validate(options: &SpadeOptions) -> Vec<(String, String)> {
            let mut problems = Vec::new();
            if options.url.is_none() && options.rotator_url.is_none() {
                problems.push((
                    String::new(),
                    "needs `url`, `rotator_url`, or both".to_owned(),
                ));
            }
            if options.refresh_seconds.is_some() && options.rotator_url.is_none() {
                problems.push((
                    "refresh_seconds".to_owned(),
                    "only applies with `rotator_url`".to_owned(),
                ));
            }
            problems
        }

        fn build(options: &SpadeOptions) -> Result<Arc<dyn Sink>, BoxError> {
            let mut builder = SpadeSink::builder().client(client()?);
            if let Some(url) = &options.url {
                builder = builder.url(url.clone());
            }
            if let Some(url) = &options.rotator_url {
                builder = builder.rotator_url(url.clone());
            }
            if let Some(seconds) = options.refresh_seconds {
                builder = builder.refresh_seconds(seconds);
            }
            Ok(Arc::new(builder.build()?))
        }

        fn describe(options: &SpadeOptions) -> String {
            let mut parts = Vec::new();
            if let Some(url) = &options.url {
                parts.push(format!("url={}", redact(url)));
            }
            if let Some(url) = &options.rotator_url {
                parts.push(format!("rotator_url={}", redact(url)));
            }
            if let Some(seconds) = options.refresh_seconds {
                parts.push(format!("refresh_seconds={seconds}"));
            }
            parts.join(" ")
        }
    }

    /// `type = "flume"`: `url`, `allowed_properties`.
    #[derive(Debug)]
    pub(crate) struct FlumeType;

    /// The options of `flume`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct FlumeOptions {
        url: String,
        #[serde(default)]
        allowed_properties: Vec<String>,
    }

    impl SinkType for FlumeType {
        const NAME: &'static str = "flume";
        type Options = FlumeOptions;

        fn build(options: &FlumeOptions) -> Result<Arc<dyn Sink>, BoxError> {
            let sink = FlumeSink::builder()
                .client(client()?)
                .url(options.url.clone())
                .allowed_properties(options.allowed_properties.iter().cloned())
                .build()?;
            Ok(Arc::new(sink))
        }

        fn describe(options: &FlumeOptions) -> String {
            format!(
                "url={} allowed_properties={:?}",
                redact(&options.url),
                options.allowed_properties
            )
        }
    }

    /// `type = "http"`: `url`, `gzip`, `headers`.
    #[derive(Debug)]
    pub(crate) struct HttpType;

    /// The options of `http`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct HttpOptions {
        url: String,
        #[serde(default)]
        gzip: bool,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    }

    impl std::fmt::Debug for HttpOptions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpOptions")
                .field("url", &redact(&self.url))
                .field("gzip", &self.gzip)
                .field("headers", &self.headers.keys().collect::<Vec<_>>())
                .finish()
        }
    }

    impl SinkType for HttpType {
        const NAME: &'static str = "http";
        type Options = HttpOptions;

        fn build(options: &HttpOptions) -> Result<Arc<dyn Sink>, BoxError> {
            let sink = HttpJsonSink::builder()
                .client(client()?)
                .url(options.url.clone())
                .gzip(options.gzip)
                .headers(options.headers.clone())
                .build()?;
            Ok(Arc::new(sink))
        }

        fn describe(options: &HttpOptions) -> String {
            format!(
                "url={} gzip={} headers={:?}",
                redact(&options.url),
                options.gzip,
                options.headers.keys().collect::<Vec<_>>()
            )
        }
    }
}
