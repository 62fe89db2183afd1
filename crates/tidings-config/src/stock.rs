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
    #[cfg(feature = "postgres")]
    registry.register_sink::<postgres::PostgresType>();
    #[cfg(feature = "amqp")]
    registry.register_sink::<amqp::AmqpType>();
    #[cfg(feature = "nats")]
    registry.register_sink::<nats::NatsType>();
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

#[cfg(feature = "postgres")]
mod postgres {
    //! `type = "postgres"`.

    use std::sync::Arc;

    use serde::Deserialize;
    use tidings_routing::{BoxError, Sink};
    use tidings_sink_postgres::{
        DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, DEFAULT_TABLE, PostgresError,
        PostgresSink, PostgresSinkBuilder, TableName, redacted,
    };

    use crate::SinkType;

    /// `type = "postgres"`: `url` (required), `table`, `create_table`,
    /// `connect_timeout_ms`, `statement_timeout_ms`.
    #[derive(Debug)]
    pub(crate) struct PostgresType;

    /// The options of `postgres`; `Debug` never shows the password.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct PostgresOptions {
        url: String,
        #[serde(default = "table")]
        table: String,
        #[serde(default)]
        create_table: bool,
        #[serde(default = "connect_timeout_ms")]
        connect_timeout_ms: u64,
        #[serde(default = "statement_timeout_ms")]
        statement_timeout_ms: u64,
    }

    fn table() -> String {
        DEFAULT_TABLE.to_owned()
    }

    fn connect_timeout_ms() -> u64 {
        DEFAULT_CONNECT_TIMEOUT_MS
    }

    fn statement_timeout_ms() -> u64 {
        DEFAULT_STATEMENT_TIMEOUT_MS
    }

    impl std::fmt::Debug for PostgresOptions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&PostgresType::describe(self))
        }
    }

    fn builder(options: &PostgresOptions) -> PostgresSinkBuilder {
        PostgresSink::builder(options.url.clone())
            .table(options.table.clone())
            .create_table(options.create_table)
            .connect_timeout_ms(options.connect_timeout_ms)
            .statement_timeout_ms(options.statement_timeout_ms)
    }

    impl SinkType for PostgresType {
        const NAME: &'static str = "postgres";
        type Options = PostgresOptions;

        fn validate(options: &PostgresOptions) -> Vec<(String, String)> {
            let mut problems = Vec::new();
            // Building parses and checks without connecting; `url` first.
            if let Err(error) = PostgresSink::builder(options.url.clone()).build() {
                let message = match error {
                    PostgresError::Url { reason } => reason,
                    other => other.to_string(),
                };
                problems.push(("url".to_owned(), message));
            }
            if let Err(error) = TableName::parse(&options.table) {
                let message = match error {
                    PostgresError::Table { reason, .. } => reason.to_owned(),
                    other => other.to_string(),
                };
                problems.push(("table".to_owned(), message));
            }
            for (key, ms) in [
                ("connect_timeout_ms", options.connect_timeout_ms),
                ("statement_timeout_ms", options.statement_timeout_ms),
            ] {
                if ms == 0 {
                    problems.push((key.to_owned(), "must be at least 1".to_owned()));
                }
            }
            problems
        }

        fn build(options: &PostgresOptions) -> Result<Arc<dyn Sink>, BoxError> {
            Ok(Arc::new(builder(options).build()?))
        }

        fn describe(options: &PostgresOptions) -> String {
            format!(
                "url={:?} table={} create_table={} connect_timeout_ms={} statement_timeout_ms={}",
                redacted(&options.url),
                options.table,
                options.create_table,
                options.connect_timeout_ms,
                options.statement_timeout_ms
            )
        }
    }

    #[cfg(test)]
    mod tests {
        use tidings_routing::Backend as _;

        use crate::{Registry, load};

        fn problems(text: &str) -> Vec<(String, String)> {
            load(text, &Registry::default())
                .unwrap_err()
                .errors()
                .iter()
                .map(|e| (e.path.clone(), e.message.clone()))
                .collect()
        }

        #[test]
        fn postgres_sinks_load_describe_without_the_password_and_build_without_connecting() {
            let config = load(
                r#"
                [backends.warehouse]
                type = "postgres"
                url = "host=127.0.0.1 port=1 user=app password=s3cret dbname=events"
                table = "analytics.events"
                create_table = true
                statement_timeout_ms = 1000
                max_events = 2000
                [backends.url]
                type = "postgres"
                url = "postgres://app:s3cret@127.0.0.1:1/events"
                "#,
                &Registry::default(),
            )
            .unwrap();
            let tree = config.to_string();
            assert!(
                tree.contains(
                    r#"warehouse: postgres url="host=127.0.0.1 port=1 user=app dbname=events" table=analytics.events create_table=true connect_timeout_ms=5000 statement_timeout_ms=1000"#
                ),
                "{tree}"
            );
            assert!(
                tree.contains(
                    r#"url: postgres url="host=127.0.0.1 port=1 user=app dbname=events" table=tidings_events create_table=false"#
                ),
                "{tree}"
            );
            assert!(!tree.contains("s3cret") && !format!("{config:?}").contains("s3cret"));
            // Nothing listens on port 1: building must not connect.
            let pipeline = config.build().unwrap();
            let (root, _stages) = pipeline.into_parts();
            root.shutdown(std::time::Duration::from_secs(5)).unwrap();
        }

        #[test]
        fn every_bad_postgres_option_is_reported_with_its_path() {
            let found = problems(
                r#"
                [backends.a]
                type = "postgres"
                [backends.b]
                type = "postgres"
                url = "host=h password='s3cret"
                table = "events; drop table users"
                connect_timeout_ms = 0
                statement_timeout_ms = 0
                [backends.c]
                type = "postgres"
                url = "host=h"
                tabel = "x"
                "#,
            );
            let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "backends.a",
                    "backends.b.url",
                    "backends.b.table",
                    "backends.b.connect_timeout_ms",
                    "backends.b.statement_timeout_ms",
                    "backends.c.tabel",
                ],
                "{found:?}"
            );
            assert_eq!(found[0].1, "missing field `url`");
            assert!(
                found[1].1.starts_with("invalid connection string"),
                "{found:?}"
            );
            assert!(
                found[2].1.starts_with("may contain only ASCII letters"),
                "{found:?}"
            );
            assert_eq!(found[3].1, "must be at least 1");
            assert!(found.iter().all(|(_, m)| !m.contains("s3cret")));
        }
    }
}

#[cfg(feature = "amqp")]
mod amqp {
    //! `type = "amqp"`.

    use std::sync::Arc;

    use serde::Deserialize;
    use tidings_routing::{BoxError, Sink};
    use tidings_sink_amqp::{
        AmqpSink, AmqpSinkBuilder, BuildError, DEFAULT_EXCHANGE, DEFAULT_PUBLISH_TIMEOUT_MS,
        DEFAULT_ROUTING_KEY, DEFAULT_URL, redact_url,
    };

    use crate::SinkType;

    /// `type = "amqp"`: `url`, `exchange`, `routing_key`, `declare`, `queue`,
    /// `binding_key`, `publish_timeout_ms`.
    #[derive(Debug)]
    pub(crate) struct AmqpType;

    /// The options of `amqp`; `Debug` never shows the password.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct AmqpOptions {
        #[serde(default = "url")]
        url: String,
        #[serde(default = "exchange")]
        exchange: String,
        #[serde(default = "routing_key")]
        routing_key: String,
        #[serde(default)]
        declare: bool,
        queue: Option<String>,
        binding_key: Option<String>,
        #[serde(default = "publish_timeout_ms")]
        publish_timeout_ms: u64,
    }

    fn url() -> String {
        DEFAULT_URL.to_owned()
    }

    fn exchange() -> String {
        DEFAULT_EXCHANGE.to_owned()
    }

    fn routing_key() -> String {
        DEFAULT_ROUTING_KEY.to_owned()
    }

    fn publish_timeout_ms() -> u64 {
        DEFAULT_PUBLISH_TIMEOUT_MS
    }

    impl std::fmt::Debug for AmqpOptions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&AmqpType::describe(self))
        }
    }

    fn builder(options: &AmqpOptions) -> AmqpSinkBuilder {
        let mut builder = AmqpSink::builder()
            .url(options.url.clone())
            .exchange(options.exchange.clone())
            .routing_key(options.routing_key.clone())
            .declare(options.declare)
            .publish_timeout_ms(options.publish_timeout_ms);
        if let Some(queue) = &options.queue {
            builder = builder.queue(queue.clone());
        }
        if let Some(binding_key) = &options.binding_key {
            builder = builder.binding_key(binding_key.clone());
        }
        builder
    }

    impl SinkType for AmqpType {
        const NAME: &'static str = "amqp";
        type Options = AmqpOptions;

        fn validate(options: &AmqpOptions) -> Vec<(String, String)> {
            // Building checks every option without connecting.
            let Err(error) = builder(options).build() else {
                return Vec::new();
            };
            let key = match &error {
                BuildError::Url { .. } => "url",
                BuildError::RoutingKey { .. } => "routing_key",
                BuildError::TooLong { option, .. } | BuildError::Requires { option, .. } => option,
                BuildError::DeclareDefaultExchange => "exchange",
                BuildError::ZeroTimeout => "publish_timeout_ms",
                _ => "",
            };
            vec![(key.to_owned(), error.to_string())]
        }

        fn build(options: &AmqpOptions) -> Result<Arc<dyn Sink>, BoxError> {
            Ok(Arc::new(builder(options).build()?))
        }

        fn describe(options: &AmqpOptions) -> String {
            let mut text = format!(
                "url={} exchange={:?} routing_key={:?} declare={}",
                redact_url(&options.url),
                options.exchange,
                options.routing_key,
                options.declare
            );
            if let Some(queue) = &options.queue {
                text.push_str(&format!(" queue={queue:?}"));
            }
            if let Some(binding_key) = &options.binding_key {
                text.push_str(&format!(" binding_key={binding_key:?}"));
            }
            text.push_str(&format!(
                " publish_timeout_ms={}",
                options.publish_timeout_ms
            ));
            text
        }
    }

    #[cfg(test)]
    mod tests {
        use tidings_routing::Backend;

        use crate::{Registry, load};

        fn problems(text: &str) -> Vec<(String, String)> {
            load(text, &Registry::default())
                .unwrap_err()
                .errors()
                .iter()
                .map(|e| (e.path.clone(), e.message.clone()))
                .collect()
        }

        #[test]
        fn amqp_sinks_load_describe_without_the_password_and_build_without_connecting() {
            let config = load(
                r#"
                [backends.rabbit]
                type = "amqp"
                url = "amqp://app:s3cret@127.0.0.1:1/%2f"
                exchange = "analytics"
                routing_key = "tidings.{name}"
                declare = true
                queue = "analytics.all"
                binding_key = "tidings.#"
                publish_timeout_ms = 1000
                max_events = 500
                [backends.defaults]
                type = "amqp"
                "#,
                &Registry::default(),
            )
            .unwrap();
            let tree = config.to_string();
            assert!(
                tree.contains(
                    r#"rabbit: amqp url=amqp://app:***@127.0.0.1:1/%2f exchange="analytics" routing_key="tidings.{name}" declare=true queue="analytics.all" binding_key="tidings.#" publish_timeout_ms=1000"#
                ),
                "{tree}"
            );
            assert!(
                tree.contains(
                    r#"defaults: amqp url=amqp://guest:***@127.0.0.1:5672/%2f exchange="tidings.events" routing_key="events.{name}" declare=false publish_timeout_ms=5000"#
                ),
                "{tree}"
            );
            assert!(!tree.contains("s3cret") && !format!("{config:?}").contains("s3cret"));
            // Nothing listens on port 1: building must not connect.
            let pipeline = config.build().unwrap();
            let (root, _stages) = pipeline.into_parts();
            root.shutdown(std::time::Duration::from_secs(5)).unwrap();
        }

        #[test]
        fn every_bad_amqp_option_is_reported_with_its_path() {
            let found = problems(
                r#"
                [backends.a]
                type = "amqp"
                url = "http://app:s3cret@host/"
                [backends.b]
                type = "amqp"
                routing_key = "events.{id}"
                [backends.c]
                type = "amqp"
                queue = "q"
                [backends.d]
                type = "amqp"
                publish_timeout_ms = 0
                [backends.e]
                type = "amqp"
                exchnage = "x"
                "#,
            );
            let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "backends.a.url",
                    "backends.b.routing_key",
                    "backends.c.queue",
                    "backends.d.publish_timeout_ms",
                    "backends.e.exchnage",
                ],
                "{found:?}"
            );
            assert!(found[0].1.starts_with("invalid AMQP url"), "{found:?}");
            assert_eq!(found[2].1, "queue requires declare = true");
            assert!(
                found.iter().all(|(_, m)| !m.contains("s3cret")),
                "{found:?}"
            );
        }
    }
}

#[cfg(feature = "nats")]
mod nats {
    //! `type = "nats"`.

    use std::sync::Arc;

    use serde::Deserialize;
    use tidings_routing::{BoxError, Sink};
    use tidings_sink_nats::{
        DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DUPLICATE_WINDOW_SECONDS, DEFAULT_MAX_IN_FLIGHT,
        DEFAULT_SUBJECT, DEFAULT_URL, NatsError, NatsSink, NatsSinkBuilder, SubjectTemplate,
        redacted,
    };

    use crate::SinkType;

    /// `type = "nats"`: `url`, `subject`, `stream`, `create_stream`,
    /// `duplicate_window_seconds`, `max_in_flight`, `ack_timeout_ms`.
    #[derive(Debug)]
    pub(crate) struct NatsType;

    /// The options of `nats`; `Debug` never shows credentials.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct NatsOptions {
        #[serde(default = "url")]
        url: String,
        #[serde(default = "subject")]
        subject: String,
        #[serde(default)]
        stream: Option<String>,
        #[serde(default)]
        create_stream: bool,
        #[serde(default = "duplicate_window_seconds")]
        duplicate_window_seconds: u64,
        #[serde(default = "max_in_flight")]
        max_in_flight: usize,
        #[serde(default = "ack_timeout_ms")]
        ack_timeout_ms: u64,
    }

    fn url() -> String {
        DEFAULT_URL.to_owned()
    }

    fn subject() -> String {
        DEFAULT_SUBJECT.to_owned()
    }

    fn duplicate_window_seconds() -> u64 {
        DEFAULT_DUPLICATE_WINDOW_SECONDS
    }

    fn max_in_flight() -> usize {
        DEFAULT_MAX_IN_FLIGHT
    }

    fn ack_timeout_ms() -> u64 {
        DEFAULT_ACK_TIMEOUT_MS
    }

    impl std::fmt::Debug for NatsOptions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&NatsType::describe(self))
        }
    }

    fn builder(options: &NatsOptions) -> NatsSinkBuilder {
        let builder = NatsSink::builder()
            .url(options.url.clone())
            .subject(options.subject.clone())
            .create_stream(options.create_stream)
            .duplicate_window_seconds(options.duplicate_window_seconds)
            .max_in_flight(options.max_in_flight)
            .ack_timeout_ms(options.ack_timeout_ms);
        match &options.stream {
            Some(stream) => builder.stream(stream.clone()),
            None => builder,
        }
    }

    impl SinkType for NatsType {
        const NAME: &'static str = "nats";
        type Options = NatsOptions;

        fn validate(options: &NatsOptions) -> Vec<(String, String)> {
            let mut problems = Vec::new();
            if let Err(NatsError::InvalidSubject { reason, .. }) =
                SubjectTemplate::new(options.subject.clone())
            {
                problems.push(("subject".to_owned(), reason));
            }
            for (key, value) in [
                ("duplicate_window_seconds", options.duplicate_window_seconds),
                ("max_in_flight", options.max_in_flight as u64),
                ("ack_timeout_ms", options.ack_timeout_ms),
            ] {
                if value == 0 {
                    problems.push((key.to_owned(), "must be at least 1".to_owned()));
                }
            }
            if problems.is_empty() {
                // What is left: `url`, `stream` and `create_stream` together.
                match builder(options).check() {
                    Ok(()) => {}
                    Err(NatsError::InvalidOption { option, reason }) => {
                        problems.push((option.to_owned(), reason));
                    }
                    Err(NatsError::InvalidSubject { reason, .. }) => {
                        problems.push(("subject".to_owned(), reason));
                    }
                    Err(other) => problems.push((String::new(), other.to_string())),
                }
            }
            problems
        }

        fn build(options: &NatsOptions) -> Result<Arc<dyn Sink>, BoxError> {
            Ok(Arc::new(builder(options).build()?))
        }

        fn describe(options: &NatsOptions) -> String {
            let mut parts = vec![
                format!("url={}", redacted(&options.url)),
                format!("subject={}", options.subject),
            ];
            if let Some(stream) = &options.stream {
                parts.push(format!("stream={stream}"));
            }
            if options.create_stream {
                parts.push(format!(
                    "create_stream=true duplicate_window_seconds={}",
                    options.duplicate_window_seconds
                ));
            }
            parts.push(format!(
                "max_in_flight={} ack_timeout_ms={}",
                options.max_in_flight, options.ack_timeout_ms
            ));
            parts.join(" ")
        }
    }

    #[cfg(test)]
    mod tests {
        use crate::{Registry, load};

        #[test]
        fn nats_options_load_with_defaults_and_print_without_credentials() {
            let config = load(
                r#"
                [backends.js]
                type = "nats"
                url = "nats://user:hunter2@127.0.0.1:4222"
                stream = "EVENTS"
                create_stream = true
                "#,
                &Registry::default(),
            )
            .unwrap();
            let tree = config.to_string();
            assert!(
                tree.contains(
                    "js: nats url=nats://127.0.0.1:4222 subject=events.{name} stream=EVENTS \
                     create_stream=true duplicate_window_seconds=120 max_in_flight=256 \
                     ack_timeout_ms=5000"
                ),
                "{tree}"
            );
            assert!(!tree.contains("hunter2"), "{tree}");
        }

        #[test]
        fn invalid_nats_options_are_reported_with_their_paths() {
            let errors = |text: &str| {
                load(text, &Registry::default())
                    .unwrap_err()
                    .0
                    .into_iter()
                    .map(|e| (e.path, e.message))
                    .collect::<Vec<_>>()
            };
            let found = errors(
                r#"
                [backends.js]
                type = "nats"
                subject = "events {name}"
                max_in_flight = 0
                ack_timeout_ms = 0
                "#,
            );
            let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "backends.js.subject",
                    "backends.js.max_in_flight",
                    "backends.js.ack_timeout_ms"
                ],
                "{found:?}"
            );
            assert!(found[0].1.contains("whitespace"), "{found:?}");
            let found = errors("[backends.js]\ntype = \"nats\"\ncreate_stream = true\n");
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].0, "backends.js.stream");
            assert!(found[0].1.contains("create_stream"), "{found:?}");
        }

        #[test]
        fn building_against_an_unreachable_server_names_it_without_credentials() {
            let config = load(
                "[backends.js]\ntype = \"nats\"\nurl = \"nats://u:hunter2@127.0.0.1:1\"\nack_timeout_ms = 1000\n",
                &Registry::default(),
            )
            .unwrap();
            let message = config.build().unwrap_err().to_string();
            assert!(
                message.contains("cannot connect to NATS at nats://127.0.0.1:1"),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
