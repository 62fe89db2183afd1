//! `SpadeSink`: batches as a form whose `data` field is base64 of a JSON
//! array of `{"event", "properties"}`, posted to a URL that a
//! [`UrlProvider`] supplies (fixed, or refreshed from a rotator).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::Method;
use http::header::{ACCEPT, HeaderMap, HeaderValue};
use tidings_core::{Sink, SinkError, async_trait};
use tidings_event::{Event, Value};
use tokio::sync::watch;

use crate::client::{AbortOnDrop, Exec};
use crate::endpoint::{Endpoint, FORM};
use crate::properties::{Element, Properties};
use crate::{BuildError, HttpClient};

const SINK: &str = "spade";

/// Default for [`SpadeSinkBuilder::refresh_seconds`]: 300 s.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// Delivers batches the way Twitch's Spade ingest expects (tachyon's Spade
/// reporter).
///
/// Each batch is one `POST` of `application/x-www-form-urlencoded` with a
/// single field, `data`: standard base64 of a JSON array with one
/// `{"event": name, "properties": {...}}` per event, where the properties
/// are the event's context with its data merged on top (data keys win; data
/// that is not an object goes under `data`). The event's id and timestamp
/// are not sent.
///
/// The URL comes from a [`UrlProvider`]: fixed (`url`), or fetched from a
/// rotator (`rotator_url`, `refresh_seconds`) with `url` as the fallback.
///
/// `max_bytes` of the `SinkBackend`'s batch config bounds the JSON array
/// before base64: the sink keeps the default
/// [`size_hint`](Sink::size_hint), each event's wire-format length, which is
/// always longer than the event's element in the array. Base64 and form
/// encoding make the body about 4/3 of that, more when the base64 text holds
/// many `+` and `/`.
pub struct SpadeSink {
    client: HttpClient,
    provider: UrlProvider,
}

/// Builds a [`SpadeSink`]. Created by [`SpadeSink::builder`]; the setters
/// are named after the keys of a `type = "spade"` backend in the TOML
/// config.
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Default)]
pub struct SpadeSinkBuilder {
    url: Option<String>,
    rotator_url: Option<String>,
    refresh: Option<Duration>,
    provider: Option<UrlProvider>,
    client: Option<HttpClient>,
}

impl SpadeSinkBuilder {
    /// The ingest URL: used as is without a `rotator_url`, and as the
    /// fallback until the rotator has answered once with one. No default;
    /// `url` or `rotator_url` is required.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// A URL answering the current ingest URL, as JSON `{"url": "..."}` or
    /// as a bare URL in the body; fetched when the sink is built and then
    /// every `refresh_seconds`. Unset by default (the URL is fixed).
    pub fn rotator_url(mut self, url: impl Into<String>) -> Self {
        self.rotator_url = Some(url.into());
        self
    }

    /// How often the rotator is asked, in seconds; at least 1. Defaults to
    /// 300. Only valid with `rotator_url`.
    pub fn refresh_seconds(self, seconds: u64) -> Self {
        self.refresh_interval(Duration::from_secs(seconds))
    }

    /// [`SpadeSinkBuilder::refresh_seconds`] with a finer resolution; not
    /// zero. Defaults to 300 s.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh = Some(interval);
        self
    }

    /// Uses `provider` for the URL, instead of `url`, `rotator_url` and
    /// `refresh_seconds` (setting both is an error). Unset by default.
    pub fn url_provider(mut self, provider: UrlProvider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The HTTP client to send with (and to ask the rotator with). Defaults
    /// to a new [`HttpClient`] with default timeouts; pass a clone of one
    /// client to share its connections and I/O thread between sinks.
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the sink, and starts the rotator if there is one.
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming the option: no `url` nor `rotator_url`, a URL
    /// that is not absolute `http(s)`, a zero `refresh_seconds` or one without
    /// `rotator_url`, `url_provider` set together with those options, or a
    /// client that cannot start.
    pub fn build(self) -> Result<SpadeSink, BuildError> {
        // The client (an I/O thread) is made only once the options are known good.
        let mut client = self.client;
        let provider = match (self.provider, self.url, self.rotator_url) {
            (Some(provider), None, None) if self.refresh.is_none() => provider,
            (Some(_), url, _) => {
                let option = if url.is_some() {
                    "url"
                } else if self.refresh.is_some() {
                    "refresh_seconds"
                } else {
                    "rotator_url"
                };
                return Err(BuildError::InvalidOption {
                    sink: SINK,
                    option,
                    reason: "`url_provider` replaces `url`, `rotator_url` and `refresh_seconds`: set one or the other",
                });
            }
            (None, None, None) => {
                return Err(BuildError::Missing {
                    sink: SINK,
                    option: "url",
                });
            }
            (None, Some(url), None) => {
                if self.refresh.is_some() {
                    return Err(BuildError::InvalidOption {
                        sink: SINK,
                        option: "refresh_seconds",
                        reason: "it needs `rotator_url`",
                    });
                }
                UrlProvider::fixed(&url)?
            }
            (None, url, Some(rotator)) => {
                let rotating = HttpClient::or_new(client.take())?;
                client = Some(rotating.clone());
                let refresh = self.refresh.unwrap_or(DEFAULT_REFRESH_INTERVAL);
                UrlProvider::rotator(&rotating, &rotator, url.as_deref(), refresh)?
            }
        };
        let client = HttpClient::or_new(client)?;
        Ok(SpadeSink { client, provider })
    }
}

impl fmt::Debug for SpadeSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpadeSinkBuilder")
            .field("url", &self.url.as_ref().map(|_| "…"))
            .field("rotator_url", &self.rotator_url.as_ref().map(|_| "…"))
            .field("refresh", &self.refresh)
            .field("provider", &self.provider)
            .field("client", &self.client)
            .finish()
    }
}

impl SpadeSink {
    /// A builder; `url` or `rotator_url` is required.
    pub fn builder() -> SpadeSinkBuilder {
        SpadeSinkBuilder::default()
    }

    /// Where the URL comes from, and the URL in use.
    #[must_use]
    pub fn url_provider(&self) -> &UrlProvider {
        &self.provider
    }

    /// The request body for `batch`: the form `data=<base64 of the JSON
    /// array>`.
    #[must_use]
    pub fn encode(batch: &[Event]) -> Vec<u8> {
        let elements: Vec<_> = batch
            .iter()
            .map(|event| Element {
                event: event.name().as_str(),
                properties: Properties(event),
            })
            .collect();
        // Serializing JSON values into memory cannot fail.
        let json = serde_json::to_vec(&elements).unwrap_or_default();
        let data = STANDARD.encode(json);
        serde_urlencoded::to_string([("data", data)])
            .unwrap_or_default()
            .into_bytes()
    }
}

impl fmt::Debug for SpadeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpadeSink")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for SpadeSink {
    /// One `POST` of the whole batch to the provider's current URL. Before
    /// the rotator's first answer (or failure), waits for it.
    async fn send_batch(&self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let endpoint = self.provider.endpoint().await?;
        let body = Bytes::from(Self::encode(batch));
        self.client
            .deliver(endpoint.post(FORM, &HeaderMap::new(), body))
            .await
    }

    /// Stops the rotator, if any.
    async fn shutdown(&self) -> Result<(), SinkError> {
        self.provider.stop();
        Ok(())
    }
}

/// Where a [`SpadeSink`] sends: a fixed URL, or the URL a rotator answers.
///
/// A rotator is a task on the [`HttpClient`]'s I/O thread, started when the
/// provider is made: it asks the rotator URL at once, then every refresh
/// interval. An answer is JSON `{"url": "..."}`, a JSON string, or a bare
/// URL (surrounding whitespace ignored), with a `2xx` status. When an answer
/// is an error status, garbage, a URL that is not absolute `http(s)`, or
/// does not come within the client's request timeout, the last known-good
/// URL stays in use; until a first good answer, the default URL is used.
/// The first batch waits for the rotator's first answer (at most the
/// request timeout), so that it is not sent to the default when the rotator
/// is up. The task runs until [`UrlProvider::stop`] (which the sink's
/// `shutdown` calls) or until the provider is dropped; the provider keeps
/// the client's I/O thread running until then.
pub struct UrlProvider {
    source: Source,
}

enum Source {
    Fixed(Arc<Endpoint>),
    Rotator(Rotator),
}

struct Rotator {
    rotator: Endpoint,
    default: Option<Arc<Endpoint>>,
    refresh: Duration,
    state: watch::Receiver<Fetched>,
    task: AbortOnDrop<()>,
    /// Keeps the I/O thread the task runs on alive.
    _client: HttpClient,
}

/// What the rotator has learnt so far.
#[derive(Debug, Clone, Default)]
struct Fetched {
    /// The last known-good URL.
    url: Option<Arc<Endpoint>>,
    /// Whether the first fetch has finished, well or not.
    settled: bool,
}

impl UrlProvider {
    /// Always `url`.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidUrl`] (option `url`) unless `url` is an absolute
    /// `http` or `https` URL.
    pub fn fixed(url: &str) -> Result<Self, BuildError> {
        Ok(Self {
            source: Source::Fixed(Arc::new(Endpoint::from_option(SINK, "url", url)?)),
        })
    }

    /// The URL answered by `rotator_url`, asked at once and then every
    /// `refresh` with `client`; `default_url` until the first good answer.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidUrl`] for a URL that is not absolute `http(s)`,
    /// [`BuildError::InvalidOption`] for a zero `refresh`.
    pub fn rotator(
        client: &HttpClient,
        rotator_url: &str,
        default_url: Option<&str>,
        refresh: Duration,
    ) -> Result<Self, BuildError> {
        let rotator = Endpoint::from_option(SINK, "rotator_url", rotator_url)?;
        let default = default_url
            .map(|url| Endpoint::from_option(SINK, "url", url))
            .transpose()?
            .map(Arc::new);
        if refresh.is_zero() {
            return Err(BuildError::InvalidOption {
                sink: SINK,
                option: "refresh_seconds",
                reason: "it must be at least 1",
            });
        }
        let (tx, state) = watch::channel(Fetched::default());
        let task = client.spawn_task(rotate(client.exec(), rotator.clone(), refresh, tx));
        Ok(Self {
            source: Source::Rotator(Rotator {
                rotator,
                default,
                refresh,
                state,
                task,
                _client: client.clone(),
            }),
        })
    }

    /// The URL that a batch sent now would go to, redacted to
    /// `scheme://host:port` (plus `/…` if it has a path or query), since it
    /// may carry credentials; `None` when a rotator has not answered yet and
    /// there is no default.
    #[must_use]
    pub fn current_url(&self) -> Option<String> {
        match &self.source {
            Source::Fixed(endpoint) => Some(endpoint.redacted().to_owned()),
            Source::Rotator(rotator) => rotator
                .state
                .borrow()
                .url
                .as_ref()
                .or(rotator.default.as_ref())
                .map(|endpoint| endpoint.redacted().to_owned()),
        }
    }

    /// Whether the URL comes from a rotator.
    #[must_use]
    pub fn is_rotating(&self) -> bool {
        matches!(self.source, Source::Rotator(_))
    }

    /// Stops asking the rotator; the last known URL stays in use. Does
    /// nothing for a fixed URL.
    pub fn stop(&self) {
        if let Source::Rotator(rotator) = &self.source {
            rotator.task.abort();
        }
    }

    /// The endpoint to send to now.
    async fn endpoint(&self) -> Result<Arc<Endpoint>, SinkError> {
        let rotator = match &self.source {
            Source::Fixed(endpoint) => return Ok(endpoint.clone()),
            Source::Rotator(rotator) => rotator,
        };
        let mut state = rotator.state.clone();
        // An error means the task is gone (stopped): use what it learnt.
        let _ = state.wait_for(|fetched| fetched.settled).await;
        let known = state.borrow().url.clone();
        known.or_else(|| rotator.default.clone()).ok_or_else(|| {
            SinkError::retryable("no ingest URL yet: the rotator has not answered with one and no default `url` is set")
        })
    }
}

impl fmt::Debug for UrlProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Fixed(endpoint) => f.debug_tuple("Fixed").field(endpoint).finish(),
            Source::Rotator(rotator) => f
                .debug_struct("Rotator")
                .field("rotator_url", &rotator.rotator)
                .field("default", &rotator.default)
                .field("refresh", &rotator.refresh)
                .field("current", &rotator.state.borrow().url)
                .finish(),
        }
    }
}

/// The rotator task: fetch, publish, sleep, forever (until aborted).
async fn rotate(exec: Exec, rotator: Endpoint, refresh: Duration, state: watch::Sender<Fetched>) {
    let mut failing = false;
    loop {
        match fetch(exec.clone(), &rotator).await {
            Ok(endpoint) => {
                if failing {
                    tracing::info!(target: "tidings::sink::spade", rotator = rotator.redacted(), "rotator answers again");
                }
                failing = false;
                state.send_modify(|fetched| {
                    fetched.url = Some(Arc::new(endpoint));
                    fetched.settled = true;
                });
            }
            Err(reason) => {
                if failing {
                    tracing::debug!(target: "tidings::sink::spade", rotator = rotator.redacted(), %reason, "rotator failed again");
                } else {
                    tracing::warn!(
                        target: "tidings::sink::spade",
                        rotator = rotator.redacted(),
                        %reason,
                        "rotator failed; keeping the last known-good ingest URL"
                    );
                }
                failing = true;
                state.send_modify(|fetched| fetched.settled = true);
            }
        }
        tokio::time::sleep(refresh).await;
    }
}

/// Asks the rotator once; the error says why its answer is not usable.
async fn fetch(exec: Exec, rotator: &Endpoint) -> Result<Endpoint, String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/json, text/plain"),
    );
    let request = rotator.request(Method::GET, None, &headers, Bytes::new());
    let exchange = exec
        .run(request, rotator.redacted().to_owned())
        .await
        .map_err(|error| error.to_string())?;
    if !exchange.status.is_success() {
        return Err(format!("it answered HTTP {}", exchange.status.as_u16()));
    }
    let body = exchange.body?;
    parse_rotator_answer(&body).map_err(str::to_owned)
}

/// The URL in a rotator's answer: `{"url": "..."}`, `"..."` or a bare URL.
fn parse_rotator_answer(body: &[u8]) -> Result<Endpoint, &'static str> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "its answer is not UTF-8")?
        .trim();
    let url = if text.starts_with('{') || text.starts_with('"') {
        let value: Value =
            serde_json::from_str(text).map_err(|_| "its answer is not valid JSON")?;
        match value {
            Value::String(url) => url,
            Value::Object(mut object) => match object.remove("url") {
                Some(Value::String(url)) => url,
                _ => return Err("its JSON answer has no string `url`"),
            },
            _ => return Err("its JSON answer has no string `url`"),
        }
    } else {
        text.to_owned()
    };
    Endpoint::parse(&url).map_err(|_| "its answer is not an absolute http(s) URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotator_answers_may_be_json_or_bare_urls() {
        for body in [
            &br#"{"url": "http://10.0.0.1:9000/track"}"#[..],
            br#"  {"url":"http://10.0.0.1:9000/track","ttl":60}"#,
            br#""http://10.0.0.1:9000/track""#,
            b"http://10.0.0.1:9000/track\n",
        ] {
            let endpoint = parse_rotator_answer(body).unwrap();
            assert_eq!(endpoint.redacted(), "http://10.0.0.1:9000/…", "{body:?}");
        }
        for (body, reason) in [
            (&b""[..], "its answer is not an absolute http(s) URL"),
            (
                b"<html>down</html>",
                "its answer is not an absolute http(s) URL",
            ),
            (b"{\"url\": 3}", "its JSON answer has no string `url`"),
            (b"{\"url\": ", "its answer is not valid JSON"),
            (
                b"[\"http://a/\"]",
                "its answer is not an absolute http(s) URL",
            ),
            (b"\xff", "its answer is not UTF-8"),
        ] {
            assert_eq!(parse_rotator_answer(body).err(), Some(reason), "{body:?}");
        }
    }
}
