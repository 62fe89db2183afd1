//! The config types of this crate (feature `config`): what a config file's
//! `type = ...` names, its options, their defaults and checks, and how
//! the sink is built from them. `tidings-config` registers them.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::{FlumeSink, HttpClient, HttpJsonSink, SegmentSink, SpadeSink};
use serde::Deserialize;
use tidings_core::RedactedUrl;
use tidings_core::{BoxError, Sink};

use tidings_core::{Delivery, SinkType};

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

/// `type = "spade"`: `url`, `rotator_url`, `refresh_seconds`.
#[derive(Debug)]
pub struct SpadeType;

/// The options of `spade`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpadeOptions {
    url: Option<String>,
    rotator_url: Option<String>,
    refresh_seconds: Option<u64>,
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

    fn build(options: &SpadeOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
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
            parts.push(format!("url={}", RedactedUrl::new(url)));
        }
        if let Some(url) = &options.rotator_url {
            parts.push(format!("rotator_url={}", RedactedUrl::new(url)));
        }
        if let Some(seconds) = options.refresh_seconds {
            parts.push(format!("refresh_seconds={seconds}"));
        }
        parts.join(" ")
    }
}

/// `type = "flume"`: `url`, `allowed_properties`.
#[derive(Debug)]
pub struct FlumeType;

/// The options of `flume`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlumeOptions {
    url: String,
    #[serde(default)]
    allowed_properties: Vec<String>,
}

impl SinkType for FlumeType {
    const NAME: &'static str = "flume";
    type Options = FlumeOptions;

    fn build(options: &FlumeOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
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
            RedactedUrl::new(&options.url),
            options.allowed_properties
        )
    }
}

/// `type = "http"`: `url`, `gzip`, `headers`.
#[derive(Debug)]
pub struct HttpType;

/// The options of `http`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    url: String,
    #[serde(default)]
    gzip: bool,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl SinkType for HttpType {
    const NAME: &'static str = "http";
    type Options = HttpOptions;

    fn build(options: &HttpOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
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
            RedactedUrl::new(&options.url),
            options.gzip,
            options.headers.keys().collect::<Vec<_>>()
        )
    }
}

/// `type = "segment"`: `url`, `write_key`, `gzip`, `user_id_context_key`.
#[derive(Debug)]
pub struct SegmentType;

/// The options of `segment`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentOptions {
    url: String,
    write_key: Option<String>,
    #[serde(default)]
    gzip: bool,
    user_id_context_key: Option<String>,
}

impl SinkType for SegmentType {
    const NAME: &'static str = "segment";
    type Options = SegmentOptions;

    fn validate(options: &SegmentOptions) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if options.write_key.as_deref() == Some("") {
            problems.push(("write_key".to_owned(), "must not be empty".to_owned()));
        }
        if options.user_id_context_key.as_deref() == Some("") {
            problems.push((
                "user_id_context_key".to_owned(),
                "must not be empty".to_owned(),
            ));
        }
        problems
    }

    fn build(options: &SegmentOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        let mut builder = SegmentSink::builder()
            .client(client()?)
            .url(options.url.clone())
            .gzip(options.gzip);
        if let Some(key) = &options.write_key {
            builder = builder.write_key(key.clone());
        }
        if let Some(key) = &options.user_id_context_key {
            builder = builder.user_id_context_key(key.clone());
        }
        Ok(Arc::new(builder.build()?))
    }

    fn describe(options: &SegmentOptions) -> String {
        let mut text = format!("url={}", RedactedUrl::new(&options.url));
        if options.write_key.is_some() {
            text.push_str(" write_key=***");
        }
        text.push_str(&format!(" gzip={}", options.gzip));
        if let Some(key) = &options.user_id_context_key {
            text.push_str(&format!(" user_id_context_key={key:?}"));
        }
        text
    }
}

/// Shown as [`SinkType::describe`] shows it: never a secret.
impl std::fmt::Debug for SpadeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&SpadeType::describe(self))
    }
}

/// Shown as [`SinkType::describe`] shows it: never a secret.
impl std::fmt::Debug for FlumeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&FlumeType::describe(self))
    }
}

/// Shown as [`SinkType::describe`] shows it: never a secret.
impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&HttpType::describe(self))
    }
}

/// Shown as [`SinkType::describe`] shows it: never a secret.
impl std::fmt::Debug for SegmentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&SegmentType::describe(self))
    }
}
