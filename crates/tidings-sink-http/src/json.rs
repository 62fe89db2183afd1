//! `HttpJsonSink`: batches as a JSON array of events in the tidings wire
//! format, optionally gzipped, with optional extra headers.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::Event;

use crate::endpoint::Endpoint;
use crate::{BuildError, HttpClient};

const SINK: &str = "http";
/// The `Content-Type` of JSON bodies.
pub(crate) const JSON: &str = "application/json";

/// `json`, gzip-compressed.
pub(crate) fn gzip(json: &[u8]) -> Result<Vec<u8>, SinkError> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(json.len() / 4 + 64),
        Compression::default(),
    );
    encoder
        .write_all(json)
        .and_then(|()| encoder.finish())
        .map_err(|error| SinkError::fatal(format!("could not gzip the batch: {error}")))
}

/// A `POST` of the JSON text `json` to `endpoint` with `headers`,
/// gzip-compressed (with `Content-Encoding: gzip`) when `gzip` is set.
pub(crate) fn json_post(
    endpoint: &Endpoint,
    headers: &HeaderMap,
    json: Vec<u8>,
    gzip_it: bool,
) -> Result<http::Request<Bytes>, SinkError> {
    if !gzip_it {
        return Ok(endpoint.post(JSON, headers, Bytes::from(json)));
    }
    let mut request = endpoint.post(JSON, headers, Bytes::from(gzip(&json)?));
    request
        .headers_mut()
        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    Ok(request)
}

/// Posts batches to any HTTP endpoint as a JSON array of events in the
/// tidings wire format (what a tidings collector's `POST /events` takes).
///
/// The body is `[event,event,...]`, each event written by
/// [`Event::write_json`]; with `gzip` it is compressed and sent with
/// `Content-Encoding: gzip`. Extra headers (an API key, say) are sent with
/// every request and marked sensitive; their values never appear in
/// `Debug` output, logs or errors.
///
/// [`size_hint`](Sink::size_hint) is an event's wire length plus one (its
/// comma or bracket), so an uncompressed body is at most the batch config's
/// `max_bytes` plus one.
pub struct HttpJsonSink {
    client: HttpClient,
    endpoint: Arc<Endpoint>,
    gzip: bool,
    headers: HeaderMap,
}

/// Builds an [`HttpJsonSink`]. Created by [`HttpJsonSink::builder`]; the
/// setters are named after the keys of a `type = "http"` backend in the
/// TOML config.
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Default)]
pub struct HttpJsonSinkBuilder {
    url: Option<String>,
    gzip: bool,
    headers: Vec<(String, String)>,
    client: Option<HttpClient>,
}

impl HttpJsonSinkBuilder {
    /// The endpoint. Required.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Whether bodies are gzipped (`Content-Encoding: gzip`). Defaults to
    /// `false`.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// Sends header `name: value` with every request (replacing the sink's
    /// own `Content-Type` or `User-Agent` if named so; a second value for
    /// the same name replaces the first). None by default. `Host`,
    /// `Content-Length`, `Content-Encoding` and `Transfer-Encoding` are the
    /// sink's and cannot be set.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// [`HttpJsonSinkBuilder::header`] for each pair (the `headers` table of
    /// the config).
    pub fn headers<I, K, V>(self, headers: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        headers
            .into_iter()
            .fold(self, |builder, (name, value)| builder.header(name, value))
    }

    /// The HTTP client to send with. Defaults to a new [`HttpClient`] with
    /// default timeouts.
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the sink.
    ///
    /// # Errors
    ///
    /// [`BuildError`]: no `url`, a `url` that is not absolute `http(s)`, a
    /// header with an invalid name or value (the message names the header,
    /// never its value) or one the sink sets itself, or a client that cannot
    /// start.
    pub fn build(self) -> Result<HttpJsonSink, BuildError> {
        let endpoint = Endpoint::required(SINK, "url", self.url.as_deref())?;
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers {
            let invalid = |reason| BuildError::InvalidHeader {
                sink: SINK,
                name: name.clone(),
                reason,
            };
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| invalid("not a valid header name"))?;
            if [HOST, CONTENT_LENGTH, CONTENT_ENCODING, TRANSFER_ENCODING].contains(&header) {
                return Err(invalid("the sink sets this header itself"));
            }
            let mut value = HeaderValue::try_from(value)
                .map_err(|_| invalid("the value has characters a header cannot carry"))?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let client = HttpClient::or_new(self.client)?;
        Ok(HttpJsonSink {
            client,
            endpoint: Arc::new(endpoint),
            gzip: self.gzip,
            headers,
        })
    }
}

impl fmt::Debug for HttpJsonSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpJsonSinkBuilder")
            .field("url", &self.url.as_ref().map(|_| "…"))
            .field("gzip", &self.gzip)
            .field("headers", &names)
            .field("client", &self.client)
            .finish()
    }
}

impl HttpJsonSink {
    /// A builder; `url` is required.
    pub fn builder() -> HttpJsonSinkBuilder {
        HttpJsonSinkBuilder::default()
    }

    /// The uncompressed body for `batch`: a JSON array of its events.
    #[must_use]
    pub fn encode(batch: &[Event]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(batch.iter().map(|e| e.encoded_len() + 1).sum::<usize>() + 1);
        tidings_event::write_json_array(batch, &mut out);
        out
    }
}

impl fmt::Debug for HttpJsonSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("HttpJsonSink")
            .field("url", &self.endpoint)
            .field("gzip", &self.gzip)
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for HttpJsonSink {
    /// One `POST` of the whole batch.
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let json = Self::encode(batch);
        let request = json_post(&self.endpoint, &self.headers, json, self.gzip)?;
        self.client.deliver(request).await
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        Ok(())
    }

    fn size_hint(&self, event: &Event) -> usize {
        event.encoded_len() + 1
    }
}
