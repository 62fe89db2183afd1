//! Building sinks: option errors say what and where, and credentials in
//! URLs and headers never reach error messages or `Debug` output.

mod support;

use std::time::Duration;

use tidings_routing::Sink;
use tidings_sink_http::{BuildError, FlumeSink, HttpClient, HttpJsonSink, SpadeSink, UrlProvider};

use support::{Reply, TestServer};

#[test]
fn spade_option_errors_name_the_option() {
    let cases: Vec<(Result<SpadeSink, BuildError>, &str)> = vec![
        (SpadeSink::builder().build(), "the spade sink needs `url`"),
        (
            SpadeSink::builder().url("127.0.0.1:9000/track").build(),
            "invalid `url` of the spade sink: not a valid URL",
        ),
        (
            SpadeSink::builder().url("/track").build(),
            "invalid `url` of the spade sink: not an absolute URL (it needs http:// or https://)",
        ),
        (
            SpadeSink::builder()
                .url("http://h/")
                .rotator_url("ftp://h/")
                .build(),
            "invalid `rotator_url` of the spade sink: the scheme must be http or https",
        ),
        (
            SpadeSink::builder()
                .rotator_url("http://h/")
                .refresh_seconds(0)
                .build(),
            "invalid `refresh_seconds` of the spade sink: it must be at least 1",
        ),
        (
            SpadeSink::builder()
                .url("http://h/")
                .refresh_seconds(5)
                .build(),
            "invalid `refresh_seconds` of the spade sink: it needs `rotator_url`",
        ),
        (
            SpadeSink::builder()
                .url("http://h/")
                .url_provider(UrlProvider::fixed("http://h/").unwrap())
                .build(),
            "invalid `url` of the spade sink: `url_provider` replaces `url`, `rotator_url` and `refresh_seconds`: set one or the other",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result.unwrap_err().to_string(), message);
    }
}

#[test]
fn flume_and_json_option_errors_name_the_option_and_never_the_value() {
    let missing = FlumeSink::builder()
        .allowed_properties(["a"])
        .build()
        .unwrap_err();
    assert_eq!(missing.to_string(), "the flume sink needs `url`");
    let path = FlumeSink::builder()
        .url("http://h/")
        .allowed_properties(["a..b"])
        .build()
        .unwrap_err();
    assert!(matches!(path, BuildError::AllowedProperties(_)), "{path:?}");
    assert!(
        path.to_string()
            .starts_with("invalid `allowed_properties` of the flume sink: "),
        "{path}"
    );

    let name = HttpJsonSink::builder()
        .url("http://h/")
        .header("X Key", "s3cret")
        .build()
        .unwrap_err();
    assert_eq!(
        name.to_string(),
        "invalid header \"X Key\" of the http sink: not a valid header name"
    );
    let value = HttpJsonSink::builder()
        .url("http://h/")
        .header("X-Key", "s3cret\n")
        .build()
        .unwrap_err();
    assert_eq!(
        value.to_string(),
        "invalid header \"X-Key\" of the http sink: the value has characters a header cannot carry"
    );
    let own = HttpJsonSink::builder()
        .url("http://h/")
        .header("Content-Length", "1")
        .build()
        .unwrap_err();
    assert_eq!(
        own.to_string(),
        "invalid header \"Content-Length\" of the http sink: the sink sets this header itself"
    );
    for error in [&name, &value, &own] {
        assert!(!format!("{error} {error:?}").contains("s3cret"));
    }
}

#[tokio::test]
async fn url_credentials_become_basic_auth_and_never_appear_in_errors_or_debug() {
    let server = TestServer::start();
    server.script([Reply::status(500)]);
    let url = format!("http://ingest:s3cret@{}/track?token=t0ken", server.addr());
    let client = HttpClient::builder()
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let sink = HttpJsonSink::builder()
        .url(&url)
        .client(client.clone())
        .build()
        .unwrap();
    let spade = SpadeSink::builder()
        .url(&url)
        .client(client)
        .build()
        .unwrap();
    let refused = SpadeSink::builder()
        .url(support::refused_url("/track?token=t0ken").replace("http://", "http://ingest:s3cret@"))
        .build()
        .unwrap();

    let error = sink.send_batch(&support::events(1)).await.unwrap_err();
    spade.send_batch(&support::events(1)).await.unwrap();
    let refused_error = refused.send_batch(&support::events(1)).await.unwrap_err();

    for request in server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some("Basic aW5nZXN0OnMzY3JldA=="),
            "ingest:s3cret"
        );
        assert_eq!(request.path, "/track?token=t0ken");
    }
    let shown = format!(
        "{error} {error:?} {refused_error} {refused_error:?} {sink:?} {spade:?} {refused:?} {:?} {:?}",
        spade.url_provider().current_url(),
        SpadeSink::builder().url(&url),
    );
    for secret in ["s3cret", "t0ken", "aW5nZXN0"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}
