//! The request-context layer: ids kept and generated, context in events
//! from the handler and from tasks it spawns, address anonymisation.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{Request, Response};
use serde_json::{Value, json};
use tidings::{Tracker, WithContextExt};
use tidings_test::RecordingBackend;
use tidings_tower::{RequestContextLayer, TrustedProxies, anonymize};
use tower::{Service, ServiceExt, service_fn};
use tower_layer::Layer;

fn tracker() -> (Tracker, RecordingBackend) {
    let recorder = RecordingBackend::new();
    (
        Tracker::builder()
            .backend("memory", recorder.clone())
            .build()
            .unwrap(),
        recorder,
    )
}

/// A handler that emits once itself, once after an await, and once from a
/// task it spawns with the current context.
fn handler(
    tracker: Tracker,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    service_fn(move |_request: Request<()>| {
        let tracker = tracker.clone();
        async move {
            tracker.emit("handler.start", json!({})).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            tracker.emit("handler.after_await", json!({})).unwrap();
            let spawned = tokio::spawn({
                let tracker = tracker.clone();
                async move {
                    tokio::task::yield_now().await;
                    tracker.emit("task.spawned", json!({})).unwrap();
                }
                .with_current_context()
            });
            spawned.await.unwrap();
            Ok::<_, Infallible>(Response::new(()))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_reaches_events_from_the_handler_after_awaits_and_from_spawned_tasks() {
    let (tracker, recorder) = tracker();
    let mut service = RequestContextLayer::new().layer(handler(tracker.clone()));
    let mut request = Request::post("/cart/add?item=3")
        .header("x-request-id", "req-42")
        .header("user-agent", "test-agent/1.0")
        .body(())
        .unwrap();
    request
        .extensions_mut()
        .insert(SocketAddr::from(([203, 0, 113, 77], 5555)));
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");

    let expected = json!({"request_id": "req-42", "method": "POST", "path": "/cart/add",
                          "user_agent": "test-agent/1.0", "client_ip": "203.0.113.0"});
    let events = recorder.events();
    assert_eq!(
        recorder.names(),
        ["handler.start", "handler.after_await", "task.spawned"]
    );
    for event in &events {
        assert_eq!(
            Value::Object(event.context().clone()),
            expected,
            "{}",
            event.name()
        );
    }
    // Outside the request, no request context.
    tracker.emit("after.request", json!({})).unwrap();
    assert!(recorder.events()[3].context().is_empty());
}

#[tokio::test]
async fn a_missing_or_unusable_request_id_is_replaced_by_a_fresh_uuid() {
    let (tracker, recorder) = tracker();
    let mut service = RequestContextLayer::new().layer(handler(tracker));
    for header in [None, Some("has space"), Some(""), Some(&*"x".repeat(200))] {
        let mut request = Request::get("/").body(()).unwrap();
        if let Some(value) = header {
            request
                .headers_mut()
                .insert("x-request-id", value.parse().unwrap());
        }
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let parsed: tidings::EventId = id.parse().unwrap();
        assert_eq!(parsed.as_uuid().get_version_num(), 7);
        assert_eq!(
            recorder.events().last().unwrap().context()["request_id"],
            id.as_str()
        );
    }
}

#[test]
fn addresses_are_anonymised_by_zeroing_the_host_part() {
    let v4: IpAddr = "192.0.2.201".parse().unwrap();
    assert_eq!(anonymize(v4).to_string(), "192.0.2.0");
    let v6: IpAddr = "2001:db8:85a3:1234:5678:8a2e:370:7334".parse().unwrap();
    assert_eq!(anonymize(v6).to_string(), "2001:db8:85a3::");
}

#[tokio::test]
async fn anonymisation_can_be_turned_off_and_the_address_source_changed() {
    let (tracker, recorder) = tracker();
    let layer = RequestContextLayer::new()
        .anonymize_ip(false)
        .client_addr_from(|_, headers| {
            headers
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()
        });
    let mut service = layer.layer(handler(tracker));
    let request = Request::get("/")
        .header("x-forwarded-for", "198.51.100.9, 10.0.0.1")
        .body(())
        .unwrap();
    service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(recorder.events()[0].context()["client_ip"], "198.51.100.9");
}

#[tokio::test]
async fn behind_trusted_proxies_the_forwarded_address_is_taken_and_a_spoof_is_not() {
    let (tracker, recorder) = tracker();
    let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
    let mut service = RequestContextLayer::new()
        .trusted_proxies(proxies)
        .layer(handler(tracker));
    let from = |peer: &str| {
        let mut request = Request::get("/")
            .header("x-forwarded-for", "198.51.100.9, 203.0.113.77")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert(SocketAddr::new(peer.parse().unwrap(), 4711));
        request
    };
    service
        .ready()
        .await
        .unwrap()
        .call(from("10.0.0.1"))
        .await
        .unwrap();
    service
        .ready()
        .await
        .unwrap()
        .call(from("192.0.2.44"))
        .await
        .unwrap();
    let ips: Vec<Value> = recorder
        .events()
        .iter()
        .filter(|e| e.name() == "handler.start")
        .map(|e| e.context()["client_ip"].clone())
        .collect();
    assert_eq!(
        ips,
        [json!("203.0.113.0"), json!("192.0.2.0")],
        "the proxy's header, anonymised; an untrusted peer's header ignored"
    );
}
