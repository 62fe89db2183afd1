//! The example sink, named from TOML after one registration line: its
//! events arrive, and a mistake in its options is reported with its path.

use std::net::UdpSocket;
use std::time::Duration;

use tidings::{Registry, Tracker};
use tidings_example_sink_udp::UdpType;

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_sink::<UdpType>();
    registry
}

#[test]
fn events_named_in_toml_arrive_as_datagrams() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let config = format!(
        "[backends.metrics]\ntype = \"udp\"\naddr = \"{}\"\nflush_interval_ms = 10\n",
        receiver.local_addr().unwrap()
    );
    let tracker = Tracker::from_config_str_with(&config, &registry()).unwrap();
    for i in 0..3 {
        tracker
            .emit("page.view", serde_json::json!({ "i": i }))
            .unwrap();
    }
    tracker.shutdown(Duration::from_secs(5)).unwrap();
    let mut seen = Vec::new();
    let mut datagram = [0; 2048];
    for _ in 0..3 {
        let len = receiver.recv(&mut datagram).unwrap();
        let event = tidings::decode(&datagram[..len], &Default::default())
            .unwrap()
            .remove(0);
        seen.push(event.data()["i"].as_u64().unwrap());
    }
    assert_eq!(seen, [0, 1, 2]);
}

#[test]
fn a_bad_option_is_reported_with_its_path_and_the_type_is_described() {
    let errors = Tracker::from_config_str_with(
        "[backends.metrics]\ntype = \"udp\"\naddr = \"localhost\"\n",
        &registry(),
    )
    .unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("`backends.metrics.addr`"), "{text}");
    assert!(text.contains("expected an IP address and port"), "{text}");

    let unknown =
        Tracker::from_config_str("[backends.metrics]\ntype = \"udp\"\naddr = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
    assert!(
        unknown.contains("udp"),
        "an unregistered type is named: {unknown}"
    );

    let config = tidings_config::load(
        "[backends.metrics]\ntype = \"udp\"\naddr = \"127.0.0.1:8125\"\n",
        &registry(),
    )
    .unwrap();
    assert!(
        config
            .to_string()
            .contains("metrics: udp addr=127.0.0.1:8125"),
        "{config}"
    );
}
