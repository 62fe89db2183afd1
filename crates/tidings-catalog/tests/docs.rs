//! Generated documentation: golden files for the example catalog, JSON
//! Schemas that a standard validator accepts and that agree with the
//! catalog's own validation, and the linter.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tidings_catalog::{Catalog, Level, docs, lint};

fn example_catalog_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog/catalog.toml")
}

fn example_catalog() -> Catalog {
    Catalog::from_file(example_catalog_path()).unwrap()
}

/// Every file under `base`, relative to it, sorted.
fn files_under(base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![base.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

/// The committed docs under `examples/catalog/docs` are exactly what the
/// generator writes. `UPDATE_GOLDEN=1 cargo test -p tidings-catalog --test docs`
/// rewrites them after a deliberate change.
#[test]
fn generated_docs_match_the_golden_files() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog/docs");
    let catalog = example_catalog();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        docs::write_docs(&catalog, &golden).unwrap();
    }
    let out = std::env::temp_dir().join(format!("tidings-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let written = docs::write_docs(&catalog, &out).unwrap();
    assert_eq!(written.len(), 1 + 2 * catalog.events().len());
    let generated = files_under(&out);
    assert_eq!(
        generated,
        files_under(&golden),
        "the set of generated files changed"
    );
    for file in &generated {
        let want = std::fs::read_to_string(golden.join(file)).unwrap();
        let got = std::fs::read_to_string(out.join(file)).unwrap();
        assert_eq!(got, want, "{} differs from the golden file", file.display());
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn pages_show_properties_pii_families_and_examples() {
    let catalog = example_catalog();
    let page = docs::markdown_page(catalog.lookup("address.create").unwrap());
    assert!(page.starts_with("# `address.create`\n\nA user saved a postal address.\n"));
    assert!(
        page.contains("| `address` | object | yes | **yes** |"),
        "{page}"
    );
    assert!(
        page.contains(
            "| `address.zipcode` | string | no | no | pattern `^[0-9]{5}$` | US ZIP code. |"
        ),
        "{page}"
    );
    assert!(page.contains("```json\n{\n  \"address\": {"), "{page}");
    let family = docs::markdown_page(catalog.lookup("edx.internal.cache.miss").unwrap());
    assert!(family.contains("| Family | every event whose name starts with `edx.internal.` |"));
    let index = docs::markdown_index(&catalog);
    assert!(
        index.contains("| [`edx.internal.*`](events/edx.internal._family_.md) |"),
        "{index}"
    );
    assert!(index.contains("`email`"));
}

fn schema_of(catalog: &Catalog, name: &str) -> Value {
    docs::json_schema(catalog.lookup(name).unwrap())
}

#[test]
fn schemas_are_valid_draft_2020_12_and_accept_the_examples() {
    let catalog = example_catalog();
    for spec in catalog.events() {
        let schema = docs::json_schema(spec);
        assert!(
            jsonschema::meta::is_valid(&schema),
            "schema of {} is not a valid JSON Schema: {schema:#}",
            spec.name()
        );
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        for example in spec.examples() {
            assert!(
                validator.is_valid(example),
                "{}: example {example} refused",
                spec.name()
            );
        }
    }
}

/// The schema and the catalog's own validator agree on valid and invalid data.
#[test]
fn schemas_and_the_catalog_agree() {
    let catalog = example_catalog();
    let cases = [
        ("navigation.request", json!({"url": "https://a/"}), true),
        ("navigation.request", json!({"url": "ftp://a/"}), false),
        (
            "navigation.request",
            json!({"url": "https://a/", "referrer": null}),
            true,
        ),
        ("navigation.request", json!({}), false),
        ("navigation.request", json!([]), false),
        (
            "edx.course.enrollment.activated",
            json!({"course_id": "course-v1:x", "mode": "audit"}),
            true,
        ),
        (
            "edx.course.enrollment.activated",
            json!({"course_id": "course-v1:x", "mode": "paid"}),
            false,
        ),
        (
            "address.create",
            json!({"name": "n", "address": {"zipcode": "1234"}}),
            false,
        ),
        (
            "address.create",
            json!({"name": "n", "address": {"zipcode": "12345"}}),
            true,
        ),
        ("checkout.started", json!({"items": 2.5}), false),
        ("checkout.started", json!({"items": 2}), true),
        ("app.hello.served", json!({"greeting": "hey"}), false),
        (
            "video.played",
            json!({"video_id": "v", "position_s": 1}),
            true,
        ),
        (
            "video.played",
            json!({"video_id": "v", "position_s": "1"}),
            false,
        ),
    ];
    for (name, data, valid) in cases {
        let ours = catalog.check_data(name, &data, true);
        assert_eq!(ours.is_ok(), valid, "{name} {data}: {ours:?}");
        let schema = schema_of(&catalog, name);
        let theirs = jsonschema::draft202012::new(&schema)
            .unwrap()
            .is_valid(&data);
        assert_eq!(theirs, valid, "{name} {data}: the JSON Schema disagrees");
    }
}

#[test]
fn the_example_catalog_lints_clean_and_bad_examples_are_errors() {
    assert_eq!(lint(&example_catalog()), vec![]);
    let catalog = Catalog::from_toml_str(
        r#"
[events."a.b"]
examples = [{ n = "one" }]
properties.n = { type = "integer", required = true }
"#,
        "t.toml",
    )
    .unwrap();
    let lints = lint(&catalog);
    assert_eq!(lints[0].level, Level::Error);
    assert_eq!(lints[0].path, r#"events."a.b".examples[0]"#);
    assert_eq!(
        lints[0].message,
        r#"event "a.b": property "n": expected integer, found string"#
    );
    let warnings: Vec<String> = lints[1..].iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            r#"warning: events."a.b": no description"#,
            r#"warning: events."a.b": no owner"#,
            r#"warning: events."a.b".properties.n: no description"#,
        ]
    );
}
