//! A `file` sink with `path = "s3://bucket/prefix"` from a config file:
//! checked, printed without its credentials, built, and writing to a
//! real S3-compatible server (moto, started by the test).

#![cfg(feature = "s3")]

use std::time::Duration;

use serde_json::json;
use tidings_config::{ConfigErrors, Registry, load};
use tidings_event::{Event, EventName};
use tidings_routing::Backend;
use tidings_test::{S3_TEST_KEY, S3Server};

fn config(endpoint: &str, staging: &std::path::Path) -> String {
    format!(
        r#"
[backends.archive]
type = "file"
path = "s3://archive/events/web"
staging = "{}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "{}"
secret_access_key = "{}"
allow_http = true
roll_events = 5
"#,
        staging.display(),
        S3_TEST_KEY.0,
        S3_TEST_KEY.1
    )
}

#[test]
fn an_s3_path_is_printed_without_secrets_built_and_written_to() {
    let server = S3Server::start("archive");
    let staging = std::env::temp_dir().join(format!("tidings-config-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let config = load(&config(&server.endpoint(), &staging), &Registry::default()).unwrap();
    let printed = config.to_string();
    assert!(
        printed.contains(&format!(
            "archive: file path=s3://archive/events/web staging={} endpoint={} region=us-east-1 \
             credentials=config (redacted) roll_events=5",
            staging.display(),
            server.endpoint()
        )),
        "{printed}"
    );
    assert!(!printed.contains(S3_TEST_KEY.1) && !printed.contains(S3_TEST_KEY.0));

    let (root, _) = config.build().unwrap().into_parts();
    for i in 0..12 {
        root.send(Event::new(
            EventName::new("page.view").unwrap(),
            json!({ "i": i }),
        ))
        .unwrap();
    }
    root.shutdown(Duration::from_secs(10)).unwrap();
    let mut options = tidings_sink_file::StoreOptions::default();
    options.endpoint = Some(server.endpoint());
    options.region = Some("us-east-1".to_owned());
    options.access_key_id = Some(S3_TEST_KEY.0.to_owned());
    options.secret_access_key = Some(S3_TEST_KEY.1.to_owned());
    options.allow_http = Some(true);
    let target = tidings_sink_file::ObjectTarget::s3("s3://archive/events/web", &options).unwrap();
    let names = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(target.list())
        .unwrap();
    assert_eq!(names.len(), 3, "5 + 5 + 2 events: {names:?}");
}

fn errors(text: &str) -> Vec<(String, String)> {
    let ConfigErrors(errors) = load(text, &Registry::default()).unwrap_err();
    errors.into_iter().map(|e| (e.path, e.message)).collect()
}

#[test]
fn store_keys_need_an_s3_path_and_an_s3_path_needs_a_bucket() {
    let local = errors("[backends.f]\ntype = \"file\"\npath = \"out\"\nendpoint = \"http://x\"\n");
    assert_eq!(
        local,
        [(
            "backends.f.endpoint".to_owned(),
            "is for an object store path (s3://bucket/prefix)".to_owned()
        )]
    );
    let bucketless = errors("[backends.f]\ntype = \"file\"\npath = \"s3:///prefix\"\n");
    assert_eq!(bucketless.len(), 1, "{bucketless:?}");
    assert_eq!(bucketless[0].0, "backends.f.path");
    assert!(
        bucketless[0].1.contains("s3://bucket/prefix"),
        "{bucketless:?}"
    );
}

#[test]
fn without_credentials_in_the_config_they_come_from_the_environment() {
    let text = "[backends.f]\ntype = \"file\"\npath = \"s3://b/p\"\n";
    let printed = load(text, &Registry::default()).unwrap().to_string();
    assert!(printed.contains("credentials=environment"), "{printed}");
    assert!(
        printed.contains("tidings-staging/b/p"),
        "the default staging: {printed}"
    );
}
