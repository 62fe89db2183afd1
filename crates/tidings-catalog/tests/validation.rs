//! Loading catalogs and validating events against them.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tidings_catalog::{
    Catalog, CatalogError, CatalogProcessor, EventSpec, OnInvalid, PiiFilter, Property,
    PropertyType, VIOLATION_KEY, ViolationKind,
};
use tidings_event::{Event, EventName};
use tidings_processors::{Processor, Verdict};

const CATALOG: &str = r#"
[events."navigation.request"]
description = "A page was requested."
owner = "web"
version = 2
additional_properties = false
properties.url = { type = "string", required = true, pattern = '^https?://' }
properties.method = { type = "string", values = ["GET", "POST"] }
properties.status = { type = "integer" }
properties.duration_s = { type = "number" }
properties.cached = { type = "boolean" }
properties.tags = { type = "array" }
properties.at = { type = "timestamp" }
properties.anything = {}

[events."navigation.request".properties.user]
type = "object"
properties.id = { type = "integer", required = true }
properties.email = { type = "string", pii = true }

[events."edx.video.*"]
properties.video_id = { type = "string", required = true }

[events."edx.video.loaded.*"]
properties.duration = { type = "number", required = true }

[events."edx.video.special"]
properties.special = { type = "boolean", required = true }
"#;

fn catalog() -> Catalog {
    Catalog::from_toml_str(CATALOG, "test.toml").unwrap()
}

fn event(name: &str, data: Value) -> Event {
    Event::new(EventName::new(name.to_owned()).unwrap(), data)
}

/// The violation message for `data`, checked both over a parsed value and
/// over JSON text (the path a typed emit takes): they must agree.
fn message(name: &str, data: Value) -> Option<String> {
    let catalog = catalog();
    let over_value = catalog.check(&event(name, data.clone()), true);
    let as_text =
        Event::from_serializable(EventName::new(name.to_owned()).unwrap(), &data).unwrap();
    let over_text = catalog.check(&as_text, true);
    assert_eq!(
        over_value, over_text,
        "value and text validation disagree for {data}"
    );
    over_value.err().map(|v| v.to_string())
}

const URL: &str = "https://example.com/";

#[test]
fn a_valid_event_passes() {
    let data = json!({
        "url": URL, "method": "GET", "status": 200, "duration_s": 0.25, "cached": false,
        "tags": ["a", 1], "at": "2026-11-24T19:09:08.123456Z", "anything": [null],
        "user": {"id": 7, "email": "a@b.c", "other": true}
    });
    assert_eq!(message("navigation.request", data), None);
    // Integers are numbers too.
    assert_eq!(
        message("navigation.request", json!({"url": URL, "duration_s": 3})),
        None
    );
}

#[test]
fn each_failure_has_its_message() {
    let cases = [
        (json!({}), r#"property "url" is required"#),
        (json!({"url": null}), r#"property "url" is required"#),
        (
            json!({"url": 7}),
            r#"property "url": expected string, found integer"#,
        ),
        (
            json!({"url": "ftp://x"}),
            r#"property "url": "ftp://x" does not match the pattern ^https?://"#,
        ),
        (
            json!({"url": URL, "method": "PUT"}),
            r#"property "method": "PUT" is not one of "GET", "POST""#,
        ),
        (
            json!({"url": URL, "status": 1.5}),
            r#"property "status": expected integer, found number"#,
        ),
        (
            json!({"url": URL, "cached": "yes"}),
            r#"property "cached": expected boolean, found string"#,
        ),
        (
            json!({"url": URL, "tags": {}}),
            r#"property "tags": expected array, found object"#,
        ),
        (
            json!({"url": URL, "at": "yesterday"}),
            r#"property "at": "yesterday" is not an RFC 3339 timestamp"#,
        ),
        (
            json!({"url": URL, "user": {}}),
            r#"property "user.id" is required"#,
        ),
        (
            json!({"url": URL, "user": {"id": "7"}}),
            r#"property "user.id": expected integer, found string"#,
        ),
        (
            json!({"url": URL, "extra": 1}),
            r#"property "extra" is not declared (no additional properties are allowed)"#,
        ),
        (json!([1]), "data must be an object, found array"),
        (json!("text"), "data must be an object, found string"),
    ];
    for (data, expected) in cases {
        let message = message("navigation.request", data.clone())
            .unwrap_or_else(|| panic!("{data} should be invalid"));
        assert_eq!(
            message,
            format!(r#"event "navigation.request": {expected}"#),
            "for {data}"
        );
    }
}

#[test]
fn null_is_absent_for_optional_properties() {
    assert_eq!(
        message("navigation.request", json!({"url": URL, "status": null})),
        None
    );
}

#[test]
fn violations_carry_event_path_and_kind() {
    let violation = catalog()
        .check_data(
            "navigation.request",
            &json!({"url": URL, "user": {"id": true}}),
            false,
        )
        .unwrap_err();
    assert_eq!(violation.event(), "navigation.request");
    assert_eq!(violation.path(), "user.id");
    assert_eq!(
        violation.kind(),
        &ViolationKind::WrongType {
            expected: PropertyType::Integer,
            found: "boolean"
        }
    );
    assert_eq!(violation.kind().code(), "wrong_type");
}

#[test]
fn strict_mode_rejects_unknown_names_and_lenient_mode_passes_them() {
    let catalog = catalog();
    let unknown = event("navigation.typo", json!({"whatever": 1}));
    let violation = catalog.check(&unknown, true).unwrap_err();
    assert_eq!(violation.kind(), &ViolationKind::UnknownEvent);
    assert_eq!(
        violation.to_string(),
        r#"event "navigation.typo" is not in the catalog"#
    );
    assert_eq!(catalog.check(&unknown, false), Ok(()));
}

#[test]
fn families_match_by_longest_prefix_and_exact_names_win() {
    let catalog = catalog();
    let name = |n: &str| catalog.lookup(n).map(|s| s.name().to_string());
    assert_eq!(name("edx.video.played").as_deref(), Some("edx.video.*"));
    assert_eq!(
        name("edx.video.loaded.fast").as_deref(),
        Some("edx.video.loaded.*")
    );
    assert_eq!(
        name("edx.video.special").as_deref(),
        Some("edx.video.special")
    );
    assert_eq!(name("edx.videos"), None);
    assert_eq!(
        message("edx.video.played", json!({})).as_deref(),
        Some(r#"event "edx.video.played": property "video_id" is required"#)
    );
    assert_eq!(
        message("edx.video.loaded.fast", json!({"video_id": "v"})).as_deref(),
        Some(r#"event "edx.video.loaded.fast": property "duration" is required"#)
    );
    assert_eq!(message("edx.video.special", json!({"special": true})), None);
}

#[test]
fn the_processor_drops_or_annotates_and_counts_by_reason() {
    let catalog = Arc::new(catalog());
    let dropper = CatalogProcessor::new(catalog.clone());
    let mut bad = event("navigation.request", json!({"url": 1}));
    let mut unknown = event("nope", json!({}));
    let mut good = event("navigation.request", json!({"url": URL}));
    assert_eq!(dropper.process(&mut bad).unwrap(), Verdict::Drop);
    assert_eq!(
        dropper.process(&mut unknown).unwrap(),
        Verdict::Keep,
        "lenient"
    );
    assert_eq!(dropper.process(&mut good).unwrap(), Verdict::Keep);
    let stats = dropper.stats();
    assert_eq!(stats.checked, 3);
    assert_eq!(
        stats.invalid.into_iter().collect::<Vec<_>>(),
        vec![("wrong_type", 1)]
    );

    let annotator = CatalogProcessor::new(catalog)
        .strict(true)
        .on_invalid(OnInvalid::Annotate);
    let mut bad = event("navigation.request", json!({"url": 1}));
    assert_eq!(annotator.process(&mut bad).unwrap(), Verdict::Keep);
    assert_eq!(
        bad.context()[VIOLATION_KEY],
        r#"event "navigation.request": property "url": expected string, found integer"#
    );
    assert_eq!(bad.data(), &json!({"url": 1}), "the data is left as it was");
    assert_eq!(annotator.process(&mut unknown).unwrap(), Verdict::Keep);
    assert_eq!(annotator.stats().invalid["unknown_event"], 1);
    assert!(!good.context().contains_key(VIOLATION_KEY));
}

#[test]
fn pii_properties_are_removed_at_any_depth() {
    let filter = PiiFilter::new(Arc::new(catalog()));
    let mut e = event(
        "navigation.request",
        json!({"url": URL, "user": {"id": 1, "email": "a@b.c"}, "undeclared": 1}),
    );
    assert_eq!(filter.process(&mut e).unwrap(), Verdict::Keep);
    assert_eq!(
        e.data(),
        &json!({"url": URL, "user": {"id": 1}, "undeclared": 1})
    );
    let mut unknown = event("other", json!({"email": "a@b.c"}));
    assert_eq!(filter.process(&mut unknown).unwrap(), Verdict::Keep);
    assert_eq!(
        unknown.data(),
        &json!({"email": "a@b.c"}),
        "nothing declared, nothing removed"
    );
}

#[test]
fn drop_undeclared_keeps_only_declared_non_pii_properties() {
    let filter = PiiFilter::new(Arc::new(catalog())).drop_undeclared();
    let mut e = event(
        "navigation.request",
        json!({"url": URL, "user": {"id": 1, "email": "a@b.c", "x": 2}, "undeclared": 1}),
    );
    assert_eq!(filter.process(&mut e).unwrap(), Verdict::Keep);
    assert_eq!(e.data(), &json!({"url": URL, "user": {"id": 1}}));
    let mut unknown = event("other", json!({"email": "a@b.c"}));
    assert_eq!(filter.process(&mut unknown).unwrap(), Verdict::Drop);
}

#[test]
fn catalogs_built_in_code_validate_the_same_way() {
    #[derive(Serialize)]
    struct Clicked<'a> {
        button: Option<&'a str>,
        page: &'a str,
    }
    // eventlib's require_data_keys, as a one-liner.
    let catalog = Catalog::from_events([
        EventSpec::new("app.Clicked")
            .unwrap()
            .require_data_keys(["button", "page"]),
        EventSpec::new("app.Paid")
            .unwrap()
            .property("amount", Property::new(PropertyType::Integer).required())
            .property("card", Property::new(PropertyType::String).pii()),
    ])
    .unwrap();
    let clicked = |button| {
        Event::from_serializable(
            EventName::new("app.Clicked").unwrap(),
            &Clicked { button, page: "/" },
        )
        .unwrap()
    };
    assert_eq!(catalog.check(&clicked(Some("ok")), true), Ok(()));
    assert_eq!(
        catalog.check(&clicked(None), true).unwrap_err().to_string(),
        r#"event "app.Clicked": property "button" is required"#
    );
    assert_eq!(catalog.lookup("app.Paid").unwrap().pii_paths(), ["card"]);
    let twice = Catalog::from_events([EventSpec::new("a").unwrap(), EventSpec::new("a").unwrap()]);
    assert!(matches!(twice, Err(CatalogError::Invalid { .. })));
}

#[test]
fn loading_reports_every_problem_with_its_path() {
    let bad = r#"
[events."a.b"]
version = 0
properties.p = { type = "string", pattern = "(" }
properties.n = { type = "integer", pattern = "x", values = [1, 1.5, "s"] }
properties.s = { type = "string", properties.x = { type = "string" } }

[events."a.*.b"]
"#;
    let err = Catalog::from_toml_str(bad, "bad.toml").unwrap_err();
    let problems: Vec<(String, String)> = err
        .problems()
        .iter()
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect();
    let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    // In the order of the file.
    assert_eq!(
        paths,
        [
            r#"events."a.b".version"#,
            r#"events."a.b".properties.p.pattern"#,
            r#"events."a.b".properties.n.pattern"#,
            r#"events."a.b".properties.n.values[1]"#,
            r#"events."a.b".properties.n.values[2]"#,
            r#"events."a.b".properties.s"#,
            r#"events."a.*.b""#,
        ],
        "{problems:#?}"
    );
    assert!(problems[6].1.contains("only at the end"));
    assert_eq!(problems[3].1, "1.5 is not an integer value");
    let lines: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines[0],
        "line 3, column 1: `events.\"a.b\".version`: versions start at 1"
    );
    assert!(
        lines[3].starts_with("line 5, column 64: `events.\"a.b\".properties.n.values[1]`"),
        "{}",
        lines[3]
    );
    assert!(
        err.to_string()
            .starts_with("catalog bad.toml is invalid:\n  - line 3, column 1: "),
        "{err}"
    );

    // Every mistake serde sees, each with the nearest key and all of them.
    let typo = Catalog::from_toml_str(
        "[events.a]\nowner = 'x'\ndescriptoin = 'y'\nversion = 'one'\n",
        "t.toml",
    )
    .unwrap_err();
    let lines: Vec<String> = typo.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "line 3, column 1: `events.a.descriptoin`: unknown key `descriptoin`; did you mean \
             `description`? The keys here are: description, owner, version, properties, \
             additional_properties, examples",
            "line 4, column 1: `events.a.version`: expected a whole number, like 100, found the \
             string \"one\"",
        ],
        "{typo}"
    );

    let wrong_type =
        Catalog::from_toml_str("[events.a]\nproperties.p = { type = 'text' }\n", "t.toml")
            .unwrap_err();
    assert_eq!(wrong_type.problems()[0].path, "events.a.properties.p.type");

    let missing = Catalog::from_file("/nonexistent/catalog.toml").unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/catalog.toml"),
        "{missing}"
    );
}

#[test]
fn escapes_and_undeclared_nesting_are_read_the_same_from_text() {
    let data = json!({
        "url": "https://example.com/\"quoted\"\\path\u{e9}",
        "ur\nl": 1,
        "user": {"id": 1, "x": [[], {}]},
    });
    // `additional_properties = false` refuses the escaped key by its real name.
    assert_eq!(
        message("navigation.request", data).as_deref(),
        Some(
            r#"event "navigation.request": property "ur\nl" is not declared (no additional properties are allowed)"#
        )
    );
    // Past 64 bits an integer is read as a float, from text as from a value.
    let huge: Value = serde_json::from_str("18446744073709551616").unwrap();
    assert_eq!(
        message("navigation.request", json!({"url": URL, "status": huge})).as_deref(),
        Some(r#"event "navigation.request": property "status": expected integer, found number"#)
    );
    assert_eq!(
        message(
            "edx.video.played",
            json!({"deep": {"a": [1, {"b": "\"}"}], "c": null, "d": -1.5e3}, "video_id": "a\"b"})
        ),
        None
    );
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("https://example.com/".to_owned()),
            Just("GET".to_owned()),
            Just("2026-11-24T19:09:08Z".to_owned()),
            ".*",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("url".to_owned()),
                    Just("method".to_owned()),
                    Just("status".to_owned()),
                    Just("user".to_owned()),
                    Just("id".to_owned()),
                    Just("at".to_owned()),
                    ".{0,4}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    /// Scanning the text and walking the parsed value find the same violation.
    /// (Top-level `null` is left out: an emit stores it as `{}`.)
    #[test]
    fn text_and_value_validation_always_agree(data in arbitrary_json().prop_filter("not null", |v| !v.is_null())) {
        let _ = message("navigation.request", data.clone());
        let _ = message("edx.video.loaded.x", data);
    }
}
