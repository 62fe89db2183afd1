//! The mapping from events to Segment messages, the body, the limits and
//! the builder's checks.

use serde_json::json;
use tidings_core::SinkErrorKind;
use tidings_event::EventName;

use super::*;

fn sink() -> SegmentSink {
    SegmentSink::builder()
        .url("http://127.0.0.1:9/v1/batch")
        .build()
        .unwrap()
}

fn event(name: &str, data: Value, context: Value) -> Event {
    Event::new(EventName::new(name.to_owned()).unwrap(), data)
        .with_context(context.as_object().unwrap().clone())
        .with_timestamp("2026-12-03T13:29:12.123456Z".parse().unwrap())
}

fn message_of(sink: &SegmentSink, event: &Event) -> Value {
    serde_json::from_slice(&sink.message(event)).unwrap()
}

/// What the collector's Segment ingest makes of
/// `analytics.track("Order Completed", {"revenue": 9.5}, user_id="u1")`.
fn ingested_track() -> Event {
    event(
        "Order Completed",
        json!({
            "type": "track", "userId": "u1", "properties": {"revenue": 9.5},
            "integrations": {}, "originalTimestamp": "2026-12-03T13:29:12.123+00:00",
            "sentAt": "2026-12-03T13:29:12.201+00:00"
        }),
        json!({"library": {"name": "analytics-python", "version": "2.3.4"}}),
    )
}

#[test]
fn an_event_from_a_segment_client_becomes_its_call_again() {
    let event = ingested_track();
    assert_eq!(
        message_of(&sink(), &event),
        json!({
            "type": "track", "event": "Order Completed",
            "messageId": event.id().to_string(),
            "timestamp": "2026-12-03T13:29:12.123456Z",
            "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
            "userId": "u1", "properties": {"revenue": 9.5}, "integrations": {}
        }),
        "no originalTimestamp nor sentAt: the timestamp is already corrected"
    );
}

#[test]
fn the_other_calls_keep_their_type_and_have_no_event() {
    for call in ["page", "screen", "identify", "group", "alias"] {
        let name = format!("segment.{call}");
        let data = json!({"type": call, "anonymousId": "a1", "name": "Home", "event": "kept"});
        let message = message_of(&sink(), &event(&name, data, json!({})));
        assert_eq!(message["type"], call);
        assert_eq!(message["event"], "kept", "only a track's event is its name");
        assert_eq!(message["name"], "Home");
        assert_eq!(message["anonymousId"], "a1");
        assert_eq!(message.get("properties"), None);
    }
}

#[test]
fn the_type_comes_from_the_data_then_the_name_then_is_track() {
    let kind = |name: &str, data: Value| {
        let message = message_of(&sink(), &event(name, data, json!({})));
        (
            message["type"].as_str().unwrap().to_owned(),
            message.get("properties").cloned(),
        )
    };
    // `data.type` wins over the name.
    assert_eq!(
        kind("segment.page", json!({"type": "screen", "name": "s"})),
        ("screen".to_owned(), None)
    );
    // A `segment.*` name, data without a type: the data are the fields.
    assert_eq!(
        kind("segment.identify", json!({"userId": "u", "traits": {}})),
        ("identify".to_owned(), None)
    );
    // A type that is not a call, a track's name, an unknown call, data that
    // is not an object: a plain event, whose data are the properties.
    for (name, data) in [
        ("ui.click", json!({"type": "button"})),
        ("ui.click", json!({"type": 3})),
        ("segment.track", json!({"userId": "u"})),
        ("segment.pages", json!({"userId": "u"})),
        ("segmentXpage", json!({"userId": "u"})),
    ] {
        assert_eq!(
            kind(name, data.clone()),
            ("track".to_owned(), Some(data.clone())),
            "{name} {data}"
        );
    }
    assert_eq!(
        kind("segment.page", json!([1])),
        ("track".to_owned(), Some(json!({"data": [1]})))
    );
}

#[test]
fn a_plain_event_becomes_a_track_with_its_data_as_properties() {
    let plain = event("page.view", json!({"url": "/"}), json!({"app": "web"}));
    assert_eq!(
        message_of(&sink(), &plain),
        json!({
            "type": "track", "event": "page.view",
            "messageId": plain.id().to_string(),
            "timestamp": "2026-12-03T13:29:12.123456Z",
            "context": {"app": "web"},
            "properties": {"url": "/"},
            "anonymousId": plain.id().to_string()
        })
    );
    // Its own messageId, type or timestamp are properties like any other.
    let odd = event(
        "page.view",
        json!({"messageId": "m1", "type": "x", "timestamp": 1}),
        json!({}),
    );
    let message = message_of(&sink(), &odd);
    assert_eq!(message["messageId"], odd.id().to_string());
    assert_eq!(
        message["properties"],
        json!({"messageId": "m1", "type": "x", "timestamp": 1})
    );
}

#[test]
fn data_that_is_not_an_object_goes_under_properties_data() {
    for (data, properties) in [
        (json!([1, 2]), json!({"data": [1, 2]})),
        (json!("text"), json!({"data": "text"})),
        (json!(7), json!({"data": 7})),
        (json!(false), json!({"data": false})),
        (Value::Null, json!({})),
    ] {
        let message = message_of(&sink(), &event("e", data.clone(), json!({})));
        assert_eq!(message["properties"], properties, "{data}");
    }
}

#[test]
fn the_user_id_comes_from_the_context_else_the_event_id_is_anonymous() {
    let identity = |sink: &SegmentSink, context: Value| {
        let event = event("e", json!({}), context);
        let message = message_of(sink, &event);
        let id = event.id().to_string();
        match (message.get("userId"), message.get("anonymousId")) {
            (Some(user), None) => format!("user {}", user.as_str().unwrap()),
            (None, Some(anonymous)) if anonymous == &json!(id) => "anonymous".to_owned(),
            other => panic!("{other:?}"),
        }
    };
    let default = sink();
    assert_eq!(default.user_id_context_key(), "user_id");
    assert_eq!(identity(&default, json!({"user_id": "u7"})), "user u7");
    assert_eq!(identity(&default, json!({"user_id": 7})), "user 7");
    assert_eq!(identity(&default, json!({"user_id": 7.5})), "user 7.5");
    for context in [
        json!({}),
        json!({"user_id": ""}),
        json!({"user_id": null}),
        json!({"user_id": {"id": 1}}),
        json!({"user": "u7"}),
    ] {
        assert_eq!(
            identity(&default, context.clone()),
            "anonymous",
            "{context}"
        );
    }
    let custom = SegmentSink::builder()
        .url("http://127.0.0.1:9/v1/batch")
        .user_id_context_key("account")
        .build()
        .unwrap();
    assert_eq!(custom.user_id_context_key(), "account");
    assert_eq!(identity(&custom, json!({"account": "acc"})), "user acc");
    assert_eq!(identity(&custom, json!({"user_id": "u7"})), "anonymous");
}

#[test]
fn a_segment_message_keeps_its_own_identity_or_gets_one() {
    let with =
        |data: Value, context: Value| message_of(&sink(), &event("segment.page", data, context));
    let own = with(
        json!({"type": "page", "userId": "u1"}),
        json!({"user_id": "ctx"}),
    );
    assert_eq!(
        (own["userId"].clone(), own.get("anonymousId")),
        (json!("u1"), None)
    );
    let numeric = with(
        json!({"type": "page", "userId": 5}),
        json!({"user_id": "ctx"}),
    );
    assert_eq!(numeric["userId"], 5, "kept as sent");
    let anonymous = with(
        json!({"type": "page", "anonymousId": "a1", "userId": null}),
        json!({"user_id": "ctx"}),
    );
    assert_eq!(
        (
            anonymous["anonymousId"].clone(),
            anonymous["userId"].clone()
        ),
        (json!("a1"), Value::Null)
    );
    // Neither (an empty or null one is none): the context's, the unusable
    // one dropped rather than sent twice.
    let text = String::from_utf8(sink().message(&event(
        "segment.page",
        json!({"type": "page", "userId": "", "anonymousId": null}),
        json!({"user_id": "ctx"}),
    )))
    .unwrap();
    assert_eq!(text.matches("\"userId\"").count(), 1, "{text}");
    let given: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (given["userId"].clone(), given.get("anonymousId")),
        (json!("ctx"), None)
    );
}

#[test]
fn the_message_id_is_the_datas_string_else_the_event_id() {
    let with = |id: Value| {
        let event = event(
            "Signed Up",
            json!({"type": "track", "userId": "u", "messageId": id}),
            json!({}),
        );
        (message_of(&sink(), &event)["messageId"].clone(), event.id())
    };
    assert_eq!(with(json!("ajs-next-1")).0, "ajs-next-1");
    for id in [json!(12), Value::Null, json!({"a": 1})] {
        let (message_id, event_id) = with(id.clone());
        assert_eq!(message_id, event_id.to_string(), "{id}");
    }
}

#[test]
fn fields_the_sink_sets_are_never_sent_twice() {
    let event = event(
        "Clicked",
        json!({
            "type": "track", "userId": "u", "event": "other", "timestamp": "1999-01-01T00:00:00Z",
            "context": {"x": 1}, "messageId": "m", "originalTimestamp": "o", "sentAt": "s",
            "receivedAt": "r"
        }),
        json!({"y": 2}),
    );
    let text = String::from_utf8(sink().message(&event)).unwrap();
    for key in [
        "type",
        "event",
        "timestamp",
        "context",
        "messageId",
        "userId",
    ] {
        assert_eq!(
            text.matches(&format!("\"{key}\"")).count(),
            1,
            "{key}: {text}"
        );
    }
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["event"], "Clicked");
    assert_eq!(message["timestamp"], "2026-12-03T13:29:12.123456Z");
    assert_eq!(message["context"], json!({"y": 2}));
    assert_eq!(message["messageId"], "m");
    assert_eq!(message["receivedAt"], "r", "anything else is a field");
    assert_eq!(message.get("originalTimestamp"), None);
    assert_eq!(message.get("sentAt"), None);
}

#[test]
fn a_body_is_the_batch_and_sent_at() {
    let sink = sink();
    let events = [
        ingested_track(),
        event("page.view", json!({"url": "/"}), json!({})),
    ];
    let sent_at: Timestamp = "2026-12-03T13:30:00.5Z".parse().unwrap();
    let body = sink.encode(&events, sent_at).unwrap();
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        parsed,
        json!({
            "batch": [message_of(&sink, &events[0]), message_of(&sink, &events[1])],
            "sentAt": "2026-12-03T13:30:00.500000Z"
        })
    );
    let messages: usize = events.iter().map(|e| sink.size_hint(e)).sum();
    let envelope = r#"{"batch":],"sentAt":"2026-12-03T13:30:00.500000Z"}"#.len();
    assert_eq!(
        body.len(),
        messages + envelope,
        "size_hint is a message and its comma"
    );
    for event in &events {
        assert_eq!(sink.size_hint(event), sink.message(event).len() + 1);
    }
}

/// A plain event whose message is exactly `bytes` long.
fn event_of_length(sink: &SegmentSink, bytes: usize) -> Event {
    let mut event = event("big", json!({"pad": ""}), json!({}));
    let short = sink.message(&event).len();
    *event.data_mut() = json!({"pad": "x".repeat(bytes - short)});
    assert_eq!(sink.message(&event).len(), bytes);
    event
}

#[test]
fn a_message_over_32_kib_is_refused_unsent() {
    let sink = sink();
    let now = Timestamp::now();
    let fits = event_of_length(&sink, MAX_MESSAGE_BYTES);
    let over = event_of_length(&sink, MAX_MESSAGE_BYTES + 1);
    assert!(sink.encode(std::slice::from_ref(&fits), now).is_ok());
    let small = event("small", json!({}), json!({}));
    assert_eq!(
        sink.encode(&[small.clone(), over.clone(), small], now),
        Err(SegmentLimitError::Message {
            index: 1,
            name: "big".to_owned(),
            bytes: MAX_MESSAGE_BYTES + 1
        })
    );
    assert_eq!(
        SegmentLimitError::Message {
            index: 1,
            name: "big".to_owned(),
            bytes: 32769
        }
        .to_string(),
        "the message of event 1 of the batch (big) is 32769 bytes, over Segment's limit of 32768 bytes a message"
    );
}

#[test]
fn a_body_over_500_kib_is_refused_unsent() {
    let sink = sink();
    let now: Timestamp = "2026-12-03T13:30:00Z".parse().unwrap();
    // 16 messages of 32000 bytes: 512 000 bytes and the envelope.
    let message = event_of_length(&sink, 32_000);
    let batch = vec![message; 16];
    let bytes = sink.encode(&batch[..15], now).unwrap().len();
    let full = MAX_REQUEST_BYTES - bytes - 1;
    let mut batch = batch[..15].to_vec();
    batch.push(event_of_length(&sink, full));
    assert_eq!(sink.encode(&batch, now).unwrap().len(), MAX_REQUEST_BYTES);
    batch.pop();
    batch.push(event_of_length(&sink, full + 1));
    assert_eq!(
        sink.encode(&batch, now),
        Err(SegmentLimitError::Request {
            events: 16,
            bytes: MAX_REQUEST_BYTES + 1
        })
    );
    assert_eq!(
        SegmentLimitError::Request {
            events: 16,
            bytes: 512_001
        }
        .to_string(),
        "the batch of 16 messages is 512001 bytes, over Segment's limit of 512000 bytes a request"
    );
}

#[tokio::test]
async fn batches_over_the_limits_fail_as_too_large_without_a_request() {
    // Nothing listens on port 9: a request would fail as retryable.
    let sink = sink();
    let over = event_of_length(&sink, MAX_MESSAGE_BYTES + 1);
    let error = sink.send_batch(&[over]).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::TooLarge);
    assert!(error.to_string().contains("32769 bytes"), "{error}");
    let big = event_of_length(&sink, 30_000);
    let error = sink.send_batch(&vec![big; 20]).await.unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::TooLarge);
    assert!(
        sink.send_batch(&[]).await.is_ok(),
        "an empty batch sends nothing"
    );
}

#[test]
fn the_write_key_is_basic_auth_and_never_shown() {
    let sink = SegmentSink::builder()
        .url("http://127.0.0.1:9/v1/batch")
        .write_key("s3cret-key")
        .build()
        .unwrap();
    assert!(sink.has_write_key());
    let header = &sink.headers[AUTHORIZATION];
    assert_eq!(header, &format!("Basic {}", STANDARD.encode("s3cret-key:")));
    assert!(header.is_sensitive());
    assert!(!self::sink().has_write_key());
    let shown = format!("{sink:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains(&STANDARD.encode("s3cret-key:")),
        "{shown}"
    );
    assert!(shown.contains("write_key: Some(\"…\")"), "{shown}");
    let builder = SegmentSink::builder().write_key("s3cret-key");
    assert!(!format!("{builder:?}").contains("s3cret"));
}

#[test]
fn the_builder_explains_what_is_wrong() {
    let error = |builder: SegmentSinkBuilder| builder.build().unwrap_err().to_string();
    assert_eq!(
        error(SegmentSink::builder()),
        "the segment sink needs `url`"
    );
    let url = || SegmentSink::builder().url("http://127.0.0.1:9/v1/batch");
    assert_eq!(
        error(url().write_key("")),
        "invalid `write_key` of the segment sink: it must not be empty"
    );
    assert_eq!(
        error(
            SegmentSink::builder()
                .url("http://k:@127.0.0.1:9/v1/batch")
                .write_key("k")
        ),
        "invalid `write_key` of the segment sink: the URL carries credentials too: give the write key one way"
    );
    assert_eq!(
        error(url().user_id_context_key("")),
        "invalid `user_id_context_key` of the segment sink: it must not be empty"
    );
    assert_eq!(
        error(SegmentSink::builder().url("/v1/batch")),
        "invalid `url` of the segment sink: not an absolute URL (it needs http:// or https://)"
    );
    // A key in the URL alone is Basic auth too (the endpoint's).
    assert!(
        SegmentSink::builder()
            .url("http://k:@127.0.0.1:9/v1/batch")
            .build()
            .is_ok()
    );
}
