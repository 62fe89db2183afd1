//! Turning the body of each ingest route into events: pure functions, no I/O.

use base64::Engine;
use bytes::Bytes;
use http::Request;
use serde_json::Value;
use tidings_event::{Event, EventName, Limits, Map, WireError, decode};
use tidings_processors::PropertyAllowlist;

use crate::Route;
use crate::body::{form_fields, media_type, require_form};
use crate::reject::Reject;

/// The events of one request, decoded.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) events: Vec<Event>,
    /// `/flume`: the line for the flume log, written once accepted.
    pub(crate) flume_line: Option<String>,
}

impl Batch {
    /// Decodes `request`'s body in `route`'s format.
    ///
    /// # Errors
    ///
    /// 415 for a content type the route does not take, 400 for a body that
    /// is not in its format, 413 for one over `limits`.
    pub(crate) fn decode(
        route: Route,
        request: &Request<Bytes>,
        limits: &Limits,
        flume_allowlist: Option<&PropertyAllowlist>,
    ) -> Result<Self, Reject> {
        let (headers, body) = (request.headers(), request.body());
        let events = match route {
            Route::Events => {
                match media_type(headers).as_deref() {
                    Some("application/json" | "text/plain") => {}
                    other => {
                        return Err(Reject::UnsupportedMediaType(format!(
                            "content type {} is not supported here, use application/json or text/plain",
                            other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
                        )));
                    }
                }
                events(body, limits)?
            }
            Route::EventLog => {
                require_form(headers, body)?;
                event_log(request.uri().query(), body)?
            }
            Route::Flume => {
                require_form(headers, body)?;
                let (event, line) = flume(body, limits, flume_allowlist)?;
                return Ok(Self {
                    events: vec![event],
                    flume_line: Some(line),
                });
            }
            Route::Spade => {
                require_form(headers, body)?;
                spade(body, limits)?
            }
            Route::Healthz | Route::Metrics | Route::Script => {
                return Err(Reject::MethodNotAllowed("GET"));
            }
        };
        Ok(Self {
            events,
            flume_line: None,
        })
    }
}

fn wire_reject(err: WireError) -> Reject {
    match err {
        WireError::TooLarge { .. } | WireError::TooManyEvents { .. } => {
            Reject::TooLarge(err.to_string())
        }
        other => Reject::BadRequest(other.to_string()),
    }
}

/// `POST /events`: a JSON event or array of events.
fn events(body: &[u8], limits: &Limits) -> Result<Vec<Event>, Reject> {
    decode(body, limits).map_err(wire_reject)
}

/// `POST /event/log?__event__=NAME&k=v`: query and form parameters become
/// string data (a later parameter of the same name wins).
fn event_log(query: Option<&str>, body: &[u8]) -> Result<Vec<Event>, Reject> {
    let mut params = form_fields(query.unwrap_or("").as_bytes())?;
    params.extend(form_fields(body)?);
    let mut name = None;
    let mut data = Map::new();
    for (key, value) in params {
        match key.as_str() {
            "__event__" => name = Some(value),
            "write_key" => {}
            _ => {
                data.insert(key, Value::String(value));
            }
        }
    }
    let name = name.ok_or_else(|| {
        Reject::BadRequest("missing parameter `__event__` (the event name)".to_owned())
    })?;
    let name = EventName::new(name)
        .map_err(|e| Reject::BadRequest(format!("parameter `__event__`: {e}")))?;
    Ok(vec![Event::new(name, Value::Object(data))])
}

fn form_data_field(body: &[u8]) -> Result<String, Reject> {
    form_fields(body)?
        .into_iter()
        .rev()
        .find(|(k, _)| k == "data")
        .map(|(_, v)| v)
        .ok_or_else(|| Reject::BadRequest("missing form field `data`".to_owned()))
}

/// `POST /flume`: form field `data` = JSON `{"event": name, "properties": {...}}`.
/// Properties are filtered by `allowlist` (unset: kept whole). Returns the
/// event and the log line `{"message": name, "context": properties}`.
fn flume(
    body: &[u8],
    limits: &Limits,
    allowlist: Option<&PropertyAllowlist>,
) -> Result<(Event, String), Reject> {
    let data = form_data_field(body)?;
    let mut events = decode(data.as_bytes(), limits)
        .map_err(|e| Reject::BadRequest(format!("field `data`: {e}")))?;
    let mut event = match events.len() {
        1 => events.remove(0),
        n => {
            return Err(Reject::BadRequest(format!(
                "field `data` must hold one event, found {n}"
            )));
        }
    };
    if let Some(allowlist) = allowlist {
        allowlist.filter_value(event.data_mut());
    }
    let line =
        serde_json::json!({"message": event.name().as_str(), "context": event.data()}).to_string();
    Ok((event, line))
}

/// `POST /spade`: form field `data` = base64 of a JSON object or array of
/// `{"event", "properties"}`.
fn spade(body: &[u8], limits: &Limits) -> Result<Vec<Event>, Reject> {
    let data = form_data_field(body)?;
    let trimmed = data.trim();
    let json = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(trimmed))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|e| Reject::BadRequest(format!("field `data` is not base64: {e}")))?;
    decode(&json, limits).map_err(|e| match wire_reject(e) {
        Reject::BadRequest(m) => Reject::BadRequest(format!("field `data`: {m}")),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        serde_urlencoded::to_string(pairs).unwrap().into_bytes()
    }

    #[test]
    fn event_log_takes_query_and_form_params_as_string_data() {
        let events = event_log(
            Some("__event__=app.Clicked&button=ok&n=1"),
            &form(&[("n", "2"), ("page", "/")]),
        )
        .unwrap();
        assert_eq!(events[0].name(), "app.Clicked");
        assert_eq!(
            events[0].data(),
            &json!({"button": "ok", "n": "2", "page": "/"})
        );
        assert!(
            matches!(event_log(Some("a=1"), b""), Err(Reject::BadRequest(m)) if m.contains("__event__"))
        );
        assert!(
            matches!(event_log(Some("__event__="), b""), Err(Reject::BadRequest(m)) if m.contains("empty"))
        );
    }

    #[test]
    fn flume_filters_properties_and_builds_the_log_line() {
        let allow = PropertyAllowlist::new(["url", "user.id"]).unwrap();
        let body = form(&[(
            "data",
            r#"{"event": "page.view", "properties": {"url": "/", "email": "x@y", "user": {"id": 1, "name": "n"}}}"#,
        )]);
        let (event, line) = flume(&body, &Limits::default(), Some(&allow)).unwrap();
        assert_eq!(event.name(), "page.view");
        assert_eq!(event.data(), &json!({"url": "/", "user": {"id": 1}}));
        let line: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            line,
            json!({"message": "page.view", "context": {"url": "/", "user": {"id": 1}}})
        );
        let (unfiltered, _) = flume(&body, &Limits::default(), None).unwrap();
        assert_eq!(unfiltered.data()["email"], "x@y");
    }

    #[test]
    fn spade_decodes_base64_json_objects_and_arrays() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let one = spade(
            &form(&[("data", &encode(r#"{"event": "a", "properties": {"k": 1}}"#))]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            (one[0].name().as_str(), one[0].data()),
            ("a", &json!({"k": 1}))
        );
        let two = spade(
            &form(&[("data", &encode(r#"[{"event": "a"}, {"event": "b"}]"#))]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert!(
            matches!(spade(&form(&[("data", "!!!")]), &Limits::default()), Err(Reject::BadRequest(m)) if m.contains("base64"))
        );
        assert!(
            matches!(spade(&form(&[("data", &encode("[1]"))]), &Limits::default()), Err(Reject::BadRequest(m)) if m.starts_with("field `data`: event 0"))
        );
    }
}
