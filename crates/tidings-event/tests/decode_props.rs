//! Property tests: decoding never panics, and encode → decode round-trips.

use proptest::prelude::*;
use serde_json::Value;
use tidings_event::{Event, EventName, Limits, Map, Timestamp, decode};

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        "[^\\p{Cc}]{1,40}",
        prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..4),
        json_value(),
        0i64..253_402_300_799, // up to 9999-12-31
        0u32..1_000_000,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, context, data, secs, micros, received, typed)| {
            let at = time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::microseconds(i64::from(micros));
            let name = EventName::new(name).unwrap();
            // Typed emits keep data as JSON text; decoded events hold a value.
            let event = if typed {
                Event::from_serializable(name, &data).unwrap()
            } else {
                Event::new(name, data)
            };
            let mut event = event
                .with_context(context.into_iter().collect::<Map>())
                .with_timestamp(Timestamp::from_datetime(at));
            if received {
                event.set_received_at(Timestamp::now());
            }
            event
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&body, &Limits::default());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        let _ = decode(&body, &Limits::default().with_max_depth(3));
        let _ = decode(&body, &Limits::default());
    }

    #[test]
    fn decode_never_panics_on_event_like_objects(
        fields in prop::collection::btree_map(
            prop_oneof![Just("name".to_owned()), Just("event".to_owned()), Just("id".to_owned()),
                        Just("timestamp".to_owned()), Just("context".to_owned()), Just("data".to_owned()),
                        Just("properties".to_owned()), Just("received_at".to_owned()), "[a-z]{1,5}"],
            json_value(), 0..8),
    ) {
        let body = serde_json::to_vec(&fields).unwrap();
        let _ = decode(&body, &Limits::default());
    }

    #[test]
    fn encode_then_decode_round_trips(events in prop::collection::vec(event(), 1..5)) {
        for event in &events {
            prop_assert_eq!(event.encoded_len(), event.to_json_bytes().len());
            let back = decode(&event.to_json_bytes(), &Limits::default()).unwrap();
            prop_assert_eq!(back, vec![event.clone()]);
        }
        let batch = serde_json::to_vec(&events).unwrap();
        prop_assert_eq!(decode(&batch, &Limits::default()).unwrap(), events);
    }
}

#[test]
fn deeply_nested_garbage_is_an_error_not_a_stack_overflow() {
    let body = "[".repeat(100_000);
    assert!(
        decode(
            body.as_bytes(),
            &Limits::default().with_max_bytes(usize::MAX)
        )
        .is_err()
    );
    let body = format!("{}{}", "{\"a\":".repeat(50_000), "1");
    assert!(
        decode(
            body.as_bytes(),
            &Limits::default().with_max_bytes(usize::MAX)
        )
        .is_err()
    );
}
