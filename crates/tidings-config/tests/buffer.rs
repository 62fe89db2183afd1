//! An `async_router`'s `buffer` table: checked with located errors,
//! printed by `tidings check`, and built into a disk-buffered router.
//! (That the buffer survives a crash is tested in `tidings`'s
//! `tests/disk_buffer.rs` and `tidings-routing`'s.)

use std::time::Duration;

use tidings_config::{ConfigErrorKind, ConfigErrors, Registry, load};
use tidings_event::{Event, EventName};
use tidings_routing::Backend;
use tidings_test::{MemorySinkType, memory_sink};

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_sink::<MemorySinkType>();
    registry
}

fn with_buffer(buffer: &str, id: &str) -> String {
    format!(
        "[backends.a]\ntype = \"async_router\"\nbuffer = {buffer}\n\
         [backends.a.backends.out]\ntype = \"memory\"\nid = \"{id}\"\n"
    )
}

fn errors(text: &str) -> Vec<(String, ConfigErrorKind, String)> {
    let ConfigErrors(errors) = load(text, &registry()).unwrap_err();
    errors
        .into_iter()
        .map(|e| (e.path, e.kind, e.message))
        .collect()
}

#[test]
fn a_disk_buffer_is_printed_built_and_keeps_nothing_once_delivered() {
    let dir = std::env::temp_dir().join(format!("tidings-config-buffer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = with_buffer(
        &format!(
            "{{ type = \"disk\", path = \"{}\", max_bytes = 1000000 }}",
            dir.display()
        ),
        "buffered",
    );
    let config = load(&text, &registry()).unwrap();
    let printed = config.to_string();
    let expected = format!(
        "buffer=disk(path={}, max_bytes=1000000, sync=write)",
        dir.display()
    );
    assert!(printed.contains(&expected), "{printed}");

    let (root, _stages) = config.build().unwrap().into_parts();
    // A second tree on the directory while this one holds it: refused,
    // naming the directory.
    let second = load(&text, &registry()).unwrap().build().unwrap_err();
    let message = second.to_string();
    assert!(message.contains("backends.a.buffer.path"), "{message}");
    assert!(message.contains("in use"), "{message}");

    for _ in 0..3 {
        root.send(Event::new(
            EventName::new("a.b").unwrap(),
            serde_json::json!({}),
        ))
        .unwrap();
    }
    root.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(memory_sink("buffered").events().len(), 3);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    assert!(left.is_empty(), "delivered, so deleted: {left:?}");
}

#[test]
fn a_memory_buffer_is_the_default_and_takes_no_disk_keys() {
    let printed = load(&with_buffer("{ type = \"memory\" }", "m"), &registry())
        .unwrap()
        .to_string();
    assert!(
        printed.contains("a: async_router queue_capacity=10000 when_full=backpressure\n"),
        "{printed}"
    );
    assert_eq!(
        errors(&with_buffer(
            "{ type = \"memory\", path = \"/tmp/x\", sync = \"fsync\" }",
            "m"
        )),
        [
            (
                "backends.a.buffer.path".to_owned(),
                ConfigErrorKind::Invalid,
                "`path` is for `type = \"disk\"`; a memory buffer takes no other key".to_owned()
            ),
            (
                "backends.a.buffer.sync".to_owned(),
                ConfigErrorKind::Invalid,
                "`sync` is for `type = \"disk\"`; a memory buffer takes no other key".to_owned()
            ),
        ]
    );
}

#[test]
fn a_disk_buffer_without_a_path_or_with_a_bad_key_is_refused_where_it_is() {
    let missing = errors(&with_buffer("{ type = \"disk\" }", "m"));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].0, "backends.a.buffer.path");
    assert_eq!(missing[0].1, ConfigErrorKind::Missing);

    let bad = errors(&with_buffer(
        "{ type = \"disk\", path = \"x\", sync = \"never\" }",
        "m",
    ));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].0.starts_with("backends.a"), "{bad:?}");
    assert!(bad[0].2.contains("never"), "{bad:?}");

    let typo = errors(&with_buffer(
        "{ type = \"disk\", path = \"x\", max_byte = 1 }",
        "m",
    ));
    assert_eq!(typo.len(), 1, "{typo:?}");
    assert!(
        typo[0].2.contains("max_bytes"),
        "suggests the key: {typo:?}"
    );
}
