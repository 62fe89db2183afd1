//! The cost of validating one event against the catalog, alone (the emit
//! path's share is measured by `cargo bench -p tidings --bench emit`), next
//! to deserializing the same data into a struct.

#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Serialize;
use tidings_catalog::Catalog;
use tidings_event::{Event, EventName};

#[derive(Serialize)]
struct Click<'a> {
    url: &'a str,
    button_text: &'a str,
    depth: u32,
}

const CATALOG: &str = r#"
[events."edx.course.enrollment.activated".properties]
url = { type = "string", required = true, pattern = '^https?://' }
button_text = { type = "string", required = true }
depth = { type = "integer", required = true }

[events."navigation.*".properties]
url = { type = "string", required = true }
button_text = { type = "string", required = true }
depth = { type = "integer", required = true }
"#;

fn bench(c: &mut Criterion) {
    let catalog = Catalog::from_toml_str(CATALOG, "bench").unwrap();
    let click = Click {
        url: "http://www.edx.org/some/path/1",
        button_text: "Enroll now",
        depth: 3,
    };
    let exact = Event::from_serializable(
        EventName::new("edx.course.enrollment.activated").unwrap(),
        &click,
    )
    .unwrap();
    let family =
        Event::from_serializable(EventName::new("navigation.request").unwrap(), &click).unwrap();
    let mut group = c.benchmark_group("catalog");
    group.bench_function("lookup_exact", |b| {
        b.iter(|| black_box(catalog.lookup(black_box("edx.course.enrollment.activated"))))
    });
    group.bench_function("lookup_family", |b| {
        b.iter(|| black_box(catalog.lookup(black_box("navigation.request"))))
    });
    group.bench_function("check_exact_with_pattern", |b| {
        b.iter(|| catalog.check(black_box(&exact), true).unwrap())
    });
    group.bench_function("check_family", |b| {
        b.iter(|| catalog.check(black_box(&family), true).unwrap())
    });
    let processor =
        tidings_catalog::CatalogProcessor::new(std::sync::Arc::new(catalog.clone())).strict(true);
    group.bench_function("processor_exact", |b| {
        b.iter_batched_ref(
            || exact.clone(),
            |event| black_box(tidings_processors::Processor::process(&processor, event).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    // The baseline: deserializing the same data into a struct with serde.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Borrowed<'a> {
        url: &'a str,
        button_text: &'a str,
        depth: u32,
    }
    group.bench_function("parse_to_struct", |b| {
        b.iter(|| {
            black_box(
                exact
                    .deserialize_data(std::marker::PhantomData::<Borrowed>)
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
