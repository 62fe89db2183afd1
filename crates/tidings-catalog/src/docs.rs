//! Generated documentation: a Markdown page per event, an index, and a
//! JSON Schema (draft 2020-12) per event.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::Catalog;
use crate::spec::{EventSpec, NamePattern, Property, PropertyType, Shape};

/// The JSON Schema dialect of the generated schemas.
pub const SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The file stem for `spec`'s pages and schema: the name with characters
/// other than ASCII letters, digits, `.`, `-` and `_` replaced by `_`; a
/// family `edx.video.*` becomes `edx.video._family_`.
#[must_use]
pub fn file_stem(spec: &EventSpec) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    match spec.name() {
        NamePattern::Exact(name) => clean(name),
        NamePattern::Family(prefix) => format!("{}_family_", clean(prefix)),
    }
}

fn property_schema(property: &Property) -> Value {
    let mut schema = Map::new();
    if let Some(description) = property.description() {
        schema.insert("description".into(), description.into());
    }
    let nullable = !property.is_required();
    let kind = property.kind().map(|kind| match kind {
        PropertyType::Timestamp => {
            schema.insert("format".into(), "date-time".into());
            "string"
        }
        other => other.as_str(),
    });
    if let Some(kind) = kind {
        schema.insert(
            "type".into(),
            if nullable {
                json!([kind, "null"])
            } else {
                json!(kind)
            },
        );
    }
    if let Some(pattern) = property.pattern() {
        schema.insert("pattern".into(), pattern.as_str().into());
    }
    if !property.values().is_empty() {
        let mut values = property.values().to_vec();
        if nullable {
            values.push(Value::Null);
        }
        schema.insert("enum".into(), Value::Array(values));
    }
    if property.is_pii() {
        schema.insert("x-tidings-pii".into(), true.into());
    }
    if property.kind() == Some(PropertyType::Object) {
        object_schema(property.shape(), &mut schema);
    }
    Value::Object(schema)
}

fn object_schema(shape: &Shape, schema: &mut Map<String, Value>) {
    if shape.properties().next().is_some() {
        let properties = shape
            .properties()
            .map(|(name, p)| (name.to_owned(), property_schema(p)))
            .collect();
        schema.insert("properties".into(), Value::Object(properties));
        let required: Vec<Value> = shape
            .properties()
            .filter(|(_, p)| p.is_required())
            .map(|(name, _)| name.into())
            .collect();
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
    }
    if !shape.allows_additional() {
        schema.insert("additionalProperties".into(), false.into());
    }
}

/// The JSON Schema of `spec`'s data.
#[must_use]
pub fn json_schema(spec: &EventSpec) -> Value {
    let mut schema = Map::new();
    schema.insert("$schema".into(), SCHEMA_DIALECT.into());
    schema.insert("title".into(), spec.name().to_string().into());
    if let Some(description) = spec.description() {
        schema.insert("description".into(), description.into());
    }
    schema.insert("type".into(), "object".into());
    object_schema(spec.shape(), &mut schema);
    if !spec.examples().is_empty() {
        schema.insert("examples".into(), Value::Array(spec.examples().to_vec()));
    }
    schema.insert("x-tidings-version".into(), spec.version().into());
    if let Some(owner) = spec.owner_name() {
        schema.insert("x-tidings-owner".into(), owner.into());
    }
    Value::Object(schema)
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn constraints(property: &Property) -> String {
    let mut parts = Vec::new();
    if let Some(pattern) = property.pattern() {
        parts.push(format!("pattern `{}`", pattern.as_str()));
    }
    if !property.values().is_empty() {
        let values: Vec<String> = property.values().iter().map(|v| format!("`{v}`")).collect();
        parts.push(format!("one of {}", values.join(", ")));
    }
    if property.kind() == Some(PropertyType::Object) && !property.shape().allows_additional() {
        parts.push("no other properties".to_owned());
    }
    cell(&parts.join("; "))
}

fn property_rows(shape: &Shape, prefix: &str, out: &mut String) {
    for (name, property) in shape.properties() {
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            cell(&path),
            property.kind().map_or("any", PropertyType::as_str),
            if property.is_required() { "yes" } else { "no" },
            if property.is_pii() { "**yes**" } else { "no" },
            constraints(property),
            cell(property.description().unwrap_or("")),
        );
        property_rows(property.shape(), &path, out);
    }
}

/// The Markdown page of `spec`.
#[must_use]
pub fn markdown_page(spec: &EventSpec) -> String {
    let stem = file_stem(spec);
    let mut out = format!("# `{}`\n\n", spec.name());
    if let Some(description) = spec.description() {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    out.push_str("| | |\n|---|---|\n");
    let _ = writeln!(
        out,
        "| Owner | {} |",
        cell(spec.owner_name().unwrap_or("(none)"))
    );
    let _ = writeln!(out, "| Version | {} |", spec.version());
    if let NamePattern::Family(prefix) = spec.name() {
        let _ = writeln!(
            out,
            "| Family | every event whose name starts with `{prefix}` |"
        );
    }
    let _ = writeln!(
        out,
        "| Other properties | {} |",
        if spec.shape().allows_additional() {
            "allowed"
        } else {
            "refused"
        }
    );
    let _ = writeln!(
        out,
        "| JSON Schema | [`{stem}.json`](../schemas/{stem}.json) |\n"
    );
    out.push_str("## Properties\n\n");
    if spec.shape().properties().next().is_none() {
        out.push_str("None declared.\n");
    } else {
        out.push_str("| Property | Type | Required | PII | Constraints | Description |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        property_rows(spec.shape(), "", &mut out);
    }
    if !spec.examples().is_empty() {
        out.push_str("\n## Examples\n");
        for example in spec.examples() {
            let pretty = serde_json::to_string_pretty(example).unwrap_or_default();
            let _ = write!(out, "\n```json\n{pretty}\n```\n");
        }
    }
    out
}

/// The Markdown index of `catalog`: one row per event, linking its page.
#[must_use]
pub fn markdown_index(catalog: &Catalog) -> String {
    let mut out = format!("# {}\n\n", catalog.title().unwrap_or("Event catalog"));
    if let Some(description) = catalog.description() {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    out.push_str("Generated by `tidings catalog docs`; do not edit.\n\n");
    out.push_str("| Event | Version | Owner | PII properties | Description |\n");
    out.push_str("|---|---|---|---|---|\n");
    for spec in catalog.events() {
        let pii: Vec<String> = spec.pii_paths().iter().map(|p| format!("`{p}`")).collect();
        let summary = spec
            .description()
            .and_then(|d| d.lines().next())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "| [`{}`](events/{}.md) | {} | {} | {} | {} |",
            spec.name(),
            file_stem(spec),
            spec.version(),
            cell(spec.owner_name().unwrap_or("")),
            pii.join(", "),
            cell(summary),
        );
    }
    out
}

/// Writes the documentation of `catalog` under `dir`: `index.md`,
/// `events/<name>.md` and `schemas/<name>.json`. Returns the files written.
///
/// # Errors
///
/// The first I/O error, with the file it concerns.
pub fn write_docs(catalog: &Catalog, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let write = |path: PathBuf, text: String, written: &mut Vec<PathBuf>| -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        written.push(path);
        Ok(())
    };
    let mut written = Vec::new();
    write(dir.join("index.md"), markdown_index(catalog), &mut written)?;
    for spec in catalog.events() {
        let stem = file_stem(spec);
        write(
            dir.join("events").join(format!("{stem}.md")),
            markdown_page(spec),
            &mut written,
        )?;
        let schema = serde_json::to_string_pretty(&json_schema(spec)).unwrap_or_default() + "\n";
        write(
            dir.join("schemas").join(format!("{stem}.json")),
            schema,
            &mut written,
        )?;
    }
    Ok(written)
}
