//! `Reject`: why a request was refused, with its status and JSON body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use tidings_catalog::Violation;

/// A refused request. The whole request is refused: nothing of it was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    /// 400: bad JSON, bad shape, bad name, too deep.
    BadRequest(String),
    /// 400: event `index` of the request does not match the catalog.
    Invalid {
        /// The event's position in the request.
        index: usize,
        /// What is wrong with it.
        violation: Violation,
    },
    /// 401: a write key is required and was missing or wrong.
    Unauthorized,
    /// 401: the live view's admin key was missing or wrong.
    AdminKeyRequired,
    /// 503: no live-view stream can open now (`max_streams` are open, or
    /// the collector is stopping).
    StreamsUnavailable(String),
    /// 413: body or batch over the limits.
    TooLarge(String),
    /// 415: a content type the route does not take.
    UnsupportedMediaType(String),
    /// 414: a pixel's query string (`GET /spade`) over its bound.
    UriTooLong(String),
    /// 404.
    NotFound,
    /// 405, with the methods the route allows.
    MethodNotAllowed(&'static str),
    /// 408: the body did not arrive in time.
    Timeout,
    /// 503: the pipeline's queue has no room for the whole batch.
    QueueFull,
    /// 503: the collector holds as many request bodies as
    /// `max_inflight_body_bytes` allows; refused before reading this one.
    Busy,
    /// 503: durable mode could not make the batch durable (the
    /// write-ahead log is full or cannot be written).
    LogUnavailable {
        /// `wal_full` or `wal_failed`.
        reason: &'static str,
        /// What the client is told (no paths: those go to the log).
        message: String,
    },
}

impl Reject {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::AdminKeyRequired => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::QueueFull
            | Self::Busy
            | Self::LogUnavailable { .. }
            | Self::StreamsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The label of this rejection in metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Invalid { .. } => "invalid_event",
            Self::Unauthorized => "unauthorized",
            Self::AdminKeyRequired => "admin_key",
            Self::StreamsUnavailable(_) => "ui_streams",
            Self::TooLarge(_) => "too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::UriTooLong(_) => "uri_too_long",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Timeout => "timeout",
            Self::QueueFull => "queue_full",
            Self::Busy => "body_budget",
            Self::LogUnavailable { reason, .. } => reason,
        }
    }

    /// What the live view's list of refused requests shows: the message,
    /// without the values a catalog violation quotes (they may be personal).
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Invalid { index, violation } => format!(
                "event {index} ({:?}): {} at {:?}",
                violation.event(),
                violation.kind().code(),
                violation.path()
            ),
            _ => self.message(),
        }
    }

    fn message(&self) -> String {
        match self {
            Self::BadRequest(m)
            | Self::TooLarge(m)
            | Self::UnsupportedMediaType(m)
            | Self::UriTooLong(m)
            | Self::StreamsUnavailable(m) => m.clone(),
            Self::LogUnavailable { message, .. } => {
                format!("{message}, retry later; nothing of this request was accepted")
            }
            Self::Invalid { index, violation } => {
                format!("event {index}: {violation}; nothing of this request was accepted")
            }
            Self::Unauthorized => "a valid write key is required".to_owned(),
            Self::AdminKeyRequired => "the live view needs its admin key: send `Authorization: Bearer KEY` (the event stream also takes `?key=KEY`)".to_owned(),
            Self::NotFound => "no such route".to_owned(),
            Self::MethodNotAllowed(allow) => format!("method not allowed, use {allow}"),
            Self::Timeout => "the request body did not arrive in time".to_owned(),
            Self::QueueFull => {
                "the pipeline is full, retry later; nothing of this request was accepted".to_owned()
            }
            Self::Busy => "the collector is reading as many request bodies as it may hold at once, retry later; nothing of this request was accepted".to_owned(),
        }
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        self.into_response_with(|_| {})
    }

    /// The answer at a Segment route: the usual body with Segment's
    /// `{"success": false, "code", "message"}` beside it (Segment's Python
    /// library reads `code` and `message` from an error's body).
    pub(crate) fn into_segment_response(self) -> Response<Full<Bytes>> {
        let (code, message) = (self.reason(), self.message());
        self.into_response_with(|body| {
            body["success"] = false.into();
            body["code"] = code.into();
            body["message"] = message.into();
        })
    }

    fn into_response_with(self, add: impl FnOnce(&mut serde_json::Value)) -> Response<Full<Bytes>> {
        let mut body =
            serde_json::json!({"error": self.message(), "status": self.status().as_u16()});
        add(&mut body);
        if let Self::Invalid { index, violation } = &self {
            body["index"] = (*index).into();
            body["event"] = violation.event().into();
            body["property"] = violation.path().into();
            body["reason"] = violation.kind().code().into();
        }
        let mut response = json_response(self.status(), &body);
        let headers = response.headers_mut();
        match self {
            Self::QueueFull | Self::Busy | Self::LogUnavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::StreamsUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unauthorized | Self::AdminKeyRequired => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
