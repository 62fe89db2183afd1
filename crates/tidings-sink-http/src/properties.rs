//! The tachyon shape `{"event": name, "properties": {...}}` shared by the
//! spade and flume sinks: properties are the event's context with its data
//! merged on top.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use tidings_event::{Event, Map, Value};

/// One event as `{"event": name, "properties": properties}`.
#[derive(Serialize)]
pub(crate) struct Element<'a, P> {
    pub(crate) event: &'a str,
    pub(crate) properties: P,
}

/// The properties of `event`, serialized without building the merged map:
/// context keys the data does not have, then the data's keys. Data that is
/// not an object goes under `data`.
pub(crate) struct Properties<'a>(pub(crate) &'a Event);

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let context = self.0.context();
        let data = self.0.data();
        let mut map = serializer.serialize_map(None)?;
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
        map.end()
    }
}

/// The properties of `event` as a map (the same merge as [`Properties`]).
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

    #[test]
    fn data_keys_win_over_context_keys() {
        let event = event(json!({"url": "/data", "n": 1}));
        let expected = json!({"user_id": 7, "url": "/data", "data": "ctx", "n": 1});
        assert_eq!(serde_json::to_value(Properties(&event)).unwrap(), expected);
        assert_eq!(Value::Object(merged(&event)), expected);
    }

    #[test]
    fn data_that_is_not_an_object_goes_under_data() {
        let event = event(json!([1, 2]));
        let expected = json!({"user_id": 7, "url": "/ctx", "data": [1, 2]});
        assert_eq!(serde_json::to_value(Properties(&event)).unwrap(), expected);
        assert_eq!(Value::Object(merged(&event)), expected);
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
