//! Turning the body of each ingest route into events: pure functions, no I/O.

use std::net::IpAddr;

use base64::Engine;
use bytes::Bytes;
use http::Request;
use serde_json::Value;
use tidings_event::{Event, EventName, Limits, Map, Timestamp, WireError, decode};
use tidings_processors::PropertyAllowlist;

use crate::Route;
use crate::access::is_key;
use crate::body::{
    FormKind, form_fields, media_type, multipart_field, require_form, require_form_or_json,
};
use crate::reject::Reject;
use crate::segment::decode_segment;

/// The events of one request, decoded.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) events: Vec<Event>,
    /// `/flume`: the line for the flume log, written once accepted.
    pub(crate) flume_line: Option<String>,
    /// When the request was received, by the collector's clock: every
    /// event's `received_at`.
    pub(crate) received_at: Timestamp,
    /// How an accepted request is answered.
    pub(crate) answer: Accepted,
}

/// How an accepted request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// 202 `{"accepted": n}`: tidings' own routes.
    Count,
    /// 200 `{"success": true}`: Segment's routes, as Segment answers.
    Success,
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
        door: &Door<'_>,
    ) -> Result<Self, Reject> {
        let (headers, body) = (request.headers(), request.body());
        let events = match route {
            Route::Events => {
                require_json(headers)?;
                events(body, limits)?
            }
            Route::EventLog => {
                require_form_or_json(headers, body)?;
                let json = media_type(headers).as_deref() == Some("application/json");
                let params = EventLogParams {
                    query: request.uri().query(),
                    body,
                    json,
                };
                event_log(&params, limits, door)?
            }
            Route::Flume => {
                let kind = require_form(headers, body, false)?;
                let data = body_data_field(headers, body, kind, limits)?;
                let (event, line) = flume(&data, limits, flume_allowlist)?;
                return Ok(Self {
                    events: vec![event],
                    flume_line: Some(line),
                    received_at: Timestamp::now(),
                    answer: Accepted::Count,
                });
            }
            Route::Spade if is_pixel(request.method()) => {
                let query = request.uri().query().unwrap_or("");
                let data = data_field(query.as_bytes())
                    .map_err(|_| Reject::BadRequest("missing query parameter `data`".to_owned()))?;
                spade(&data, limits)?
            }
            Route::Spade => {
                let kind = require_form(headers, body, true)?;
                let data = body_data_field(headers, body, kind, limits)?;
                spade(&data, limits)?
            }
            Route::Segment(segment) => {
                require_json(headers)?;
                // Its events are timed from their receive time.
                let received_at = Timestamp::now();
                return Ok(Self {
                    events: decode_segment(segment, body, limits, door.key_in_body, received_at)?,
                    flume_line: None,
                    received_at,
                    answer: Accepted::Success,
                });
            }
            Route::Healthz | Route::Metrics | Route::Script => {
                return Err(Reject::MethodNotAllowed("GET"));
            }
        };
        Ok(Self {
            events,
            flume_line: None,
            // After the events were made: their `timestamp`, when the
            // client gave none, is not later.
            received_at: Timestamp::now(),
            answer: Accepted::Count,
        })
    }
}

/// Refuses a body that is not `application/json` or `text/plain` (JSON
/// sent without a CORS preflight, as beacons and analytics.js send it).
fn require_json(headers: &http::HeaderMap) -> Result<(), Reject> {
    match media_type(headers).as_deref() {
        Some("application/json" | "text/plain") => Ok(()),
        other => Err(Reject::UnsupportedMediaType(format!(
            "content type {} is not supported here, use application/json or text/plain",
            other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
        ))),
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

/// eventlib's data key for the client's address (`get_default_values` in
/// eventlib's `core.py`).
pub(crate) const IP_ADDRESS_KEY: &str = "__ip_address__";
/// eventlib's data key for the server's time; tidings keeps it in the
/// event's `received_at` instead.
pub(crate) const DATETIME_KEY: &str = "__datetime__";

/// What the request of `/event/log` carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventLogParams<'a> {
    /// The query string.
    pub(crate) query: Option<&'a str>,
    /// The body: a form, or a JSON object when `json`.
    pub(crate) body: &'a [u8],
    pub(crate) json: bool,
}

/// What the collector adds or checks, from the request's connection and
/// head, at the routes that need it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Door<'a> {
    /// `/event/log`: the client's address as the config records it
    /// (anonymised, whole), or `None` (`client_ip = "off"`, or no peer
    /// address known).
    pub(crate) client_ip: Option<IpAddr>,
    /// The write keys, when the request's head presented none: then the
    /// body's write key (`/event/log`'s `write_key` parameter, a Segment
    /// body's `writeKey`) must be one of them.
    pub(crate) key_in_body: Option<&'a [String]>,
}

/// `POST /event/log?__event__=NAME&k=v`, eventlib's endpoint: query and
/// body parameters become data (a later parameter of the same name wins,
/// so the body's win over the query's). A form's values are strings; a JSON
/// body is one object whose values are kept as JSON. `__event__` is the
/// name and `write_key` is never data; `__ip_address__` is the collector's
/// (the client's address as `door` says, or nothing), never the client's,
/// and a client's `__datetime__` is dropped: as eventlib, the server
/// stamps these, and tidings keeps its time in `received_at`.
fn event_log(
    params: &EventLogParams<'_>,
    limits: &Limits,
    door: &Door<'_>,
) -> Result<Vec<Event>, Reject> {
    let mut data = Map::new();
    for (key, value) in form_fields(params.query.unwrap_or("").as_bytes())? {
        data.insert(key, Value::String(value));
    }
    if params.json {
        data.extend(json_params(params.body, limits)?);
    } else {
        for (key, value) in form_fields(params.body)? {
            data.insert(key, Value::String(value));
        }
    }
    let name = match data.remove("__event__") {
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(Reject::BadRequest(format!(
                "parameter `__event__` must be a string, found {}",
                tidings_event::json_type_name(&other)
            )));
        }
        None => {
            return Err(Reject::BadRequest(
                "missing parameter `__event__` (the event name)".to_owned(),
            ));
        }
    };
    let key = data.remove("write_key");
    if let Some(keys) = door.key_in_body {
        let presented = key.as_ref().and_then(Value::as_str);
        if !presented.is_some_and(|k| is_key(keys, k)) {
            return Err(Reject::Unauthorized);
        }
    }
    let name = EventName::new(name)
        .map_err(|e| Reject::BadRequest(format!("parameter `__event__`: {e}")))?;
    data.remove(DATETIME_KEY);
    data.remove(IP_ADDRESS_KEY);
    if let Some(ip) = door.client_ip {
        data.insert(IP_ADDRESS_KEY.to_owned(), Value::String(ip.to_string()));
    }
    Ok(vec![Event::new(name, Value::Object(data))])
}

/// The start of the event a JSON body of `/event/log` is checked as: its
/// `data`.
const JSON_WRAPPER: &[u8] = br#"{"name":"event.log","data":"#;

/// A JSON body of `/event/log`: one object, its keys the parameters (an
/// empty body has none). It is
/// checked as the `data` of an event on `/events` is (UTF-8, nesting,
/// values no sink can store), by the same decoder.
fn json_params(body: &[u8], limits: &Limits) -> Result<Map, Reject> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new()); // the query's parameters alone
    }
    // One JSON value, nothing after it, and an object: checked before the
    // body is put inside the wrapper, so it cannot add fields to it.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(Reject::BadRequest(format!("body is not valid JSON: {e}")));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first != Some(b'{') {
        let found = serde_json::from_slice::<Value>(body)
            .map_or("not an object", |v| tidings_event::json_type_name(&v));
        return Err(Reject::BadRequest(format!(
            "a JSON body must be an object of parameters, found {found}"
        )));
    }
    let mut text = Vec::with_capacity(JSON_WRAPPER.len() + body.len() + 1);
    text.extend_from_slice(JSON_WRAPPER);
    text.extend_from_slice(body);
    text.push(b'}');
    let limits = (*limits).with_max_bytes(limits.max_bytes.saturating_add(JSON_WRAPPER.len() + 1));
    let mut events = decode(&text, &limits).map_err(|e| match e {
        WireError::Event { source, .. } => Reject::BadRequest(format!("body: {source}")),
        other => wire_reject(other),
    })?;
    match events.pop().map(|mut event| event.data_mut().take()) {
        Some(Value::Object(params)) => Ok(params),
        _ => Err(Reject::BadRequest(
            "a JSON body must be an object of parameters".to_owned(),
        )),
    }
}

/// Whether a request to `/spade` is a pixel's (`GET` or `HEAD`): its
/// `data` is in the query string.
pub(crate) fn is_pixel(method: &http::Method) -> bool {
    method == http::Method::GET || method == http::Method::HEAD
}

/// The last `data` field of url-encoded text.
fn data_field(text: &[u8]) -> Result<String, Reject> {
    form_fields(text)?
        .into_iter()
        .rev()
        .find(|(k, _)| k == "data")
        .map(|(_, v)| v)
        .ok_or_else(|| Reject::BadRequest("missing form field `data`".to_owned()))
}

/// The `data` field of a form body, url-encoded or multipart (other
/// fields and parts are ignored).
fn body_data_field(
    headers: &http::HeaderMap,
    body: &Bytes,
    kind: FormKind,
    limits: &Limits,
) -> Result<String, Reject> {
    match kind {
        FormKind::UrlEncoded => data_field(body),
        FormKind::Multipart => multipart_field(headers, body, "data", limits.max_bytes)?
            .ok_or_else(|| Reject::BadRequest("missing multipart field `data`".to_owned())),
    }
}

/// `POST /flume`: form field `data` = JSON `{"event": name, "properties": {...}}`.
/// Properties are filtered by `allowlist` (unset: kept whole). Returns the
/// event and the log line `{"message": name, "context": properties}`.
fn flume(
    data: &str,
    limits: &Limits,
    allowlist: Option<&PropertyAllowlist>,
) -> Result<(Event, String), Reject> {
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

/// `/spade`'s field `data` (of a form body or a pixel's query): base64
/// (standard or URL-safe, padded or not) of a JSON object or array of
/// `{"event", "properties"}`, or that JSON itself (url-encoded by the
/// client; base64 never starts with `{` or `[`). A `+` of standard base64
/// that the client did not percent-encode reaches here as a space, so
/// spaces are read as `+`.
fn spade(data: &str, limits: &Limits) -> Result<Vec<Event>, Reject> {
    let trimmed = data.trim();
    let plain_json = trimmed.starts_with(['{', '[']);
    let json = if plain_json {
        trimmed.as_bytes().to_vec()
    } else {
        let text = trimmed.replace(' ', "+");
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&text))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text))
            .map_err(|e| Reject::BadRequest(format!("field `data` is not base64: {e}")))?
    };
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

    fn log(query: &str, body: &[u8], json: bool, door: &Door<'_>) -> Result<Event, Reject> {
        let params = EventLogParams {
            query: Some(query),
            body,
            json,
        };
        event_log(&params, &Limits::default(), door).map(|mut events| events.remove(0))
    }

    fn form_log(query: &str, body: &[u8]) -> Result<Event, Reject> {
        log(query, body, false, &Door::default())
    }

    #[test]
    fn event_log_takes_query_and_form_params_as_string_data() {
        let event = form_log(
            "__event__=app.Clicked&button=ok&n=1",
            &form(&[("n", "2"), ("page", "/")]),
        )
        .unwrap();
        assert_eq!(event.name(), "app.Clicked");
        assert_eq!(
            event.data(),
            &json!({"button": "ok", "n": "2", "page": "/"})
        );
        assert!(
            matches!(form_log("a=1", b""), Err(Reject::BadRequest(m)) if m.contains("__event__"))
        );
        assert!(
            matches!(form_log("__event__=", b""), Err(Reject::BadRequest(m)) if m.contains("empty"))
        );
        let from_body = form_log("", &form(&[("__event__", "app.Body")])).unwrap();
        assert_eq!(from_body.name(), "app.Body");
        assert!(matches!(
            form_log("%", b""),
            Ok(_) | Err(Reject::BadRequest(_))
        ));
    }

    #[test]
    fn event_log_adds_the_collectors_address_and_drops_the_clients_reserved_keys() {
        let door = Door {
            client_ip: Some("203.0.113.0".parse().unwrap()),
            key_in_body: None,
        };
        let event = log(
            "__event__=app.A&__ip_address__=1.2.3.4&__datetime__=never&write_key=k",
            b"",
            false,
            &door,
        )
        .unwrap();
        assert_eq!(event.data(), &json!({"__ip_address__": "203.0.113.0"}));
        let event = form_log("__event__=app.A&__ip_address__=1.2.3.4", b"").unwrap();
        assert_eq!(event.data(), &json!({}), "no address known: none at all");
    }

    #[test]
    fn event_log_takes_a_json_object_whose_values_stay_json() {
        let door = Door::default();
        let body = br#"{"__event__": "app.Json", "n": 2, "tags": ["a"], "deep": {"x": null}, "q": "body"}"#;
        let event = log("q=query&only=query", body, true, &door).unwrap();
        assert_eq!(event.name(), "app.Json");
        assert_eq!(
            event.data(),
            &json!({"n": 2, "tags": ["a"], "deep": {"x": null}, "q": "body", "only": "query"})
        );
        let name_in_query = log("__event__=app.Q", br#"{"k": true}"#, true, &door).unwrap();
        assert_eq!(
            (name_in_query.name().as_str(), name_in_query.data()),
            ("app.Q", &json!({"k": true}))
        );
        let bad = |body: &[u8]| match log("__event__=app.Q", body, true, &door) {
            Err(Reject::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            bad(b"{").starts_with("body is not valid JSON"),
            "{}",
            bad(b"{")
        );
        assert!(bad(br#"{"a": 1} {"b": 2}"#).starts_with("body is not valid JSON"));
        assert!(bad(br#"{"a": 1}, "context": {}"#).starts_with("body is not valid JSON"));
        assert_eq!(
            bad(b"[1, 2]"),
            "a JSON body must be an object of parameters, found an array"
        );
        assert_eq!(
            bad(b"\"42\""),
            "a JSON body must be an object of parameters, found a string"
        );
        assert!(
            log("__event__=app.Q", b" ", true, &door).is_ok(),
            "no body: the query alone"
        );
        assert!(
            bad(br#"{"__event__": 7}"#).contains("`__event__` must be a string, found a number")
        );
        assert!(
            bad(br#"{"s": "\ud800"}"#).starts_with("body"),
            "lone surrogate"
        );
        let deep = format!("{{\"d\": {}1{}}}", "[".repeat(63), "]".repeat(63));
        assert!(
            bad(deep.as_bytes()).contains("nest"),
            "{}",
            bad(deep.as_bytes())
        );
        let fits = format!("{{\"d\": {}1{}}}", "[".repeat(62), "]".repeat(62));
        assert!(log("__event__=a", fits.as_bytes(), true, &door).is_ok());
        let small = Limits::default().with_max_bytes(10);
        let params = EventLogParams {
            query: Some("__event__=a"),
            body: br#"{"k": "0123456789"}"#,
            json: true,
        };
        assert!(matches!(
            event_log(&params, &small, &door),
            Err(Reject::TooLarge(_))
        ));
        let params = EventLogParams {
            query: Some("__event__=a"),
            body: br#"{"k":"01"}"#,
            json: true,
        };
        assert!(
            event_log(&params, &small, &door).is_ok(),
            "the wrapper is not counted"
        );
    }

    #[test]
    fn a_write_key_in_the_body_is_checked_when_the_head_presented_none() {
        let keys = ["k1".to_owned(), "k2".to_owned()];
        let door = Door {
            client_ip: None,
            key_in_body: Some(&keys),
        };
        assert!(log("__event__=a", &form(&[("write_key", "k2")]), false, &door).is_ok());
        assert!(log("__event__=a", br#"{"write_key": "k1"}"#, true, &door).is_ok());
        for (body, json) in [
            (form(&[("write_key", "k3")]), false),
            (Vec::new(), false),
            (br#"{"write_key": 1}"#.to_vec(), true),
            (br#"{"write_key": "k"}"#.to_vec(), true),
        ] {
            assert!(
                matches!(
                    log("__event__=a", &body, json, &door),
                    Err(Reject::Unauthorized)
                ),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        let event = log(
            "__event__=a",
            br#"{"write_key": "k1", "v": 1}"#,
            true,
            &door,
        )
        .unwrap();
        assert_eq!(event.data(), &json!({"v": 1}), "the key is never data");
    }

    #[test]
    fn flume_filters_properties_and_builds_the_log_line() {
        let allow = PropertyAllowlist::new(["url", "user.id"]).unwrap();
        let body = form(&[(
            "data",
            r#"{"event": "page.view", "properties": {"url": "/", "email": "x@y", "user": {"id": 1, "name": "n"}}}"#,
        )]);
        let (event, line) = flume(
            &data_field(&body).unwrap(),
            &Limits::default(),
            Some(&allow),
        )
        .unwrap();
        assert_eq!(event.name(), "page.view");
        assert_eq!(event.data(), &json!({"url": "/", "user": {"id": 1}}));
        let line: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            line,
            json!({"message": "page.view", "context": {"url": "/", "user": {"id": 1}}})
        );
        let (unfiltered, _) = flume(&data_field(&body).unwrap(), &Limits::default(), None).unwrap();
        assert_eq!(unfiltered.data()["email"], "x@y");
    }

    #[test]
    fn spade_decodes_base64_json_objects_and_arrays() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let one = spade(
            &encode(r#"{"event": "a", "properties": {"k": 1}}"#),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            (one[0].name().as_str(), one[0].data()),
            ("a", &json!({"k": 1}))
        );
        let two = spade(
            &encode(r#"[{"event": "a"}, {"event": "b"}]"#),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert!(
            matches!(spade("!!!", &Limits::default()), Err(Reject::BadRequest(m)) if m.contains("base64"))
        );
        assert!(
            matches!(spade(&encode("[1]"), &Limits::default()), Err(Reject::BadRequest(m)) if m.starts_with("field `data`: event 0"))
        );
    }

    #[test]
    fn spade_takes_plain_json_and_reads_a_space_as_the_plus_of_base64() {
        let plain = spade(
            r#" [{"event": "a", "properties": {"k": 1}}, {"event": "b"}] "#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[0].data(), &json!({"k": 1}));
        let object = spade(r#"{"event": "c"}"#, &Limits::default()).unwrap();
        assert_eq!(object[0].name(), "c");
        assert!(
            matches!(spade("{", &Limits::default()), Err(Reject::BadRequest(m)) if m.starts_with("field `data`: ")),
            "broken JSON is not read as base64"
        );
        // `{"event":"a>"}` has a `+` in its standard base64.
        let encoded = base64::engine::general_purpose::STANDARD.encode(r#"{"event":"a>"}"#);
        assert!(encoded.contains('+'), "{encoded}");
        let spaced = encoded.replace('+', " ");
        let events = spade(&spaced, &Limits::default()).unwrap();
        assert_eq!(events[0].name(), "a>");
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"event":"a>"}"#);
        assert_eq!(
            spade(&url_safe, &Limits::default()).unwrap()[0].name(),
            "a>"
        );
    }

    #[test]
    fn only_get_and_head_are_pixels() {
        assert!(is_pixel(&http::Method::GET));
        assert!(is_pixel(&http::Method::HEAD));
        assert!(!is_pixel(&http::Method::POST));
    }
}
