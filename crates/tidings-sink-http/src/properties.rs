//! The tachyon shape `{"event": name, "properties": {...}}` shared by the
//! spade and flume sinks: properties are the event's context with its data
//! merged on top, then the event's id as `event_id` and its time as `time`
//! (seconds since the Unix epoch, as Spade's Mixpanel-style events carry
//! it) unless the properties already hold those keys. A retried batch is
//! thus recognisable: the same `event_id`s, the same `time`s.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use tidings_event::{Event, Map, Value};

/// One event as `{"event": name, "properties": properties}`.
#[derive(Serialize)]
pub(crate) struct Element<'a, P> {
    pub(crate) event: &'a str,
    pub(crate) properties: P,
}

/// The key of the event's id in the properties.
pub(crate) const EVENT_ID: &str = "event_id";
/// The key of the event's time in the properties.
pub(crate) const TIME: &str = "time";

/// The event's time in seconds since the Unix epoch (microseconds kept).
fn seconds(event: &Event) -> f64 {
    let nanos = event.timestamp().as_datetime().unix_timestamp_nanos();
    (nanos / 1_000) as f64 / 1_000_000.0
}

/// The properties of `event`, serialized without building the merged map:
/// context keys the data does not have, then the data's keys (data that is
/// not an object goes under `data`), then `event_id` and `time` unless
/// already there.
pub(crate) struct Properties<'a>(pub(crate) &'a Event);

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let context = self.0.context();
        let data = self.0.data();
        let mut map = serializer.serialize_map(None)?;
        let has = |key: &str| {
            context.contains_key(key)
                || data
                    .as_object()
                    .map_or(key == "data", |object| object.contains_key(key))
        };
        match data.as_object() {
            Some(object) => {
                for (key, value) in context.iter().filter(|(key, _)| !object.contains_key(*key)) {
                    map.serialize_entry(key, value)?;
                }
                for (key, value) in object {
                    map.serialize_entry(key, value)?;
                }
            }
            None => {
                for (key, value) in context.iter().filter(|(key, _)| *key != "data") {
                    map.serialize_entry(key, value)?;
                }
                map.serialize_entry("data", data)?;
            }
        }
        if !has(EVENT_ID) {
            map.serialize_entry(EVENT_ID, &self.0.id().to_string())?;
        }
        if !has(TIME) {
            map.serialize_entry(TIME, &seconds(self.0))?;
        }
        map.end()
    }
}

/// The properties of `event` as a map: the merge of [`Properties`], without
/// `event_id` and `time` (see [`identify`]).
pub(crate) fn merged(event: &Event) -> Map {
    let mut map = event.context().clone();
    match event.data() {
        Value::Object(object) => map.extend(object.iter().map(|(k, v)| (k.clone(), v.clone()))),
        data => {
            map.insert("data".to_owned(), data.clone());
        }
    }
    map
}

/// Adds `event`'s `event_id` and `time` to `properties` unless there.
pub(crate) fn identify(event: &Event, properties: &mut Map) {
    properties
        .entry(EVENT_ID)
        .or_insert_with(|| event.id().to_string().into());
    properties
        .entry(TIME)
        .or_insert_with(|| seconds(event).into());
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tidings_event::EventName;

    use super::*;

    fn event(data: Value) -> Event {
        let context = json!({"user_id": 7, "url": "/ctx", "data": "ctx"});
        Event::new(EventName::new("page.view").unwrap(), data)
            .with_context(context.as_object().unwrap().clone())
    }

    /// `expected` with the event's id and time added.
    fn identified(event: &Event, expected: Value) -> Value {
        let mut map = expected.as_object().unwrap().clone();
        identify(event, &mut map);
        Value::Object(map)
    }

    #[test]
    fn data_keys_win_over_context_keys() {
        let event = event(json!({"url": "/data", "n": 1}));
        let expected = json!({"user_id": 7, "url": "/data", "data": "ctx", "n": 1});
        assert_eq!(
            serde_json::to_value(Properties(&event)).unwrap(),
            identified(&event, expected.clone())
        );
        assert_eq!(Value::Object(merged(&event)), expected);
    }

    #[test]
    fn the_id_and_time_are_added_unless_the_properties_hold_them() {
        let event = event(json!({"n": 1}));
        let properties = serde_json::to_value(Properties(&event)).unwrap();
        assert_eq!(properties["event_id"], event.id().to_string());
        let nanos = event.timestamp().as_datetime().unix_timestamp_nanos();
        let seconds = properties["time"].as_f64().unwrap();
        assert!((seconds - nanos as f64 / 1e9).abs() < 1e-5, "{seconds}");
        assert!(
            seconds.fract() != 0.0 || nanos % 1_000_000_000 == 0,
            "sub-second kept"
        );

        let own = event_with(json!({"event_id": "mine", "time": 5}), json!({}));
        let properties = serde_json::to_value(Properties(&own)).unwrap();
        assert_eq!(
            (&properties["event_id"], &properties["time"]),
            (&json!("mine"), &json!(5))
        );
        let in_context = event_with(json!({}), json!({"time": 7}));
        assert_eq!(
            serde_json::to_value(Properties(&in_context)).unwrap()["time"],
            7
        );
        let mut map = merged(&in_context);
        identify(&in_context, &mut map);
        assert_eq!(map["time"], 7);
        assert_eq!(map["event_id"], in_context.id().to_string());
    }

    fn event_with(data: Value, context: Value) -> Event {
        Event::new(EventName::new("page.view").unwrap(), data)
            .with_context(context.as_object().unwrap().clone())
    }

    #[test]
    fn data_that_is_not_an_object_goes_under_data() {
        let event = event(json!([1, 2]));
        let expected = json!({"user_id": 7, "url": "/ctx", "data": [1, 2]});
        assert_eq!(Value::Object(merged(&event)), expected);
        let expected = identified(&event, expected);
        assert_eq!(serde_json::to_value(Properties(&event)).unwrap(), expected);
        let element = Element {
            event: event.name().as_str(),
            properties: Properties(&event),
        };
        let text = serde_json::to_string(&element).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"event": "page.view", "properties": expected})
        );
        assert!(
            text.len() < event.encoded_len(),
            "the wire length bounds an element's length"
        );
    }
}
