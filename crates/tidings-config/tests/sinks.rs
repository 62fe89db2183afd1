//! The stock sink types, loaded and described through the config crate:
//! every option's path in errors, no secret in descriptions, nothing
//! connected at build. Each sink crate owns its type (feature `config`).

/// Asserts that `config` describes each of `lines`, shows no `s3cret`
/// (in its description or `Debug`), and builds without connecting (its
/// servers are on port 1, where nothing listens).
#[allow(dead_code)]
fn described_without_secrets_and_built_offline(config: tidings_config::Config, lines: &[&str]) {
    use tidings_routing::Backend as _;
    let tree = config.to_string();
    for line in lines {
        assert!(tree.contains(line), "missing {line:?} in\n{tree}");
    }
    assert!(!tree.contains("s3cret") && !format!("{config:?}").contains("s3cret"));
    let (root, _stages) = config.build().unwrap().into_parts();
    root.shutdown(std::time::Duration::from_secs(5)).unwrap();
}

/// The path and message of every mistake in `text`.
#[allow(dead_code)]
fn problems(text: &str) -> Vec<(String, String)> {
    tidings_config::load(text, &tidings_config::Registry::default())
        .unwrap_err()
        .errors()
        .iter()
        .map(|e| (e.path.clone(), e.message.clone()))
        .collect()
}

#[cfg(feature = "postgres")]
mod postgres {

    use super::problems;
    use tidings_config::{Registry, load};

    #[test]
    fn postgres_sinks_load_describe_without_the_password_and_build_without_connecting() {
        let config = load(
            r#"
            [backends.warehouse]
            type = "postgres"
            url = "host=127.0.0.1 port=1 user=app password=s3cret dbname=events"
            table = "analytics.events"
            create_table = true
            statement_timeout_ms = 1000
            max_events = 2000
            [backends.url]
            type = "postgres"
            url = "postgres://app:s3cret@127.0.0.1:1/events"
            "#,
            &Registry::default(),
        )
        .unwrap();
        super::described_without_secrets_and_built_offline(
            config,
            &[
                r#"warehouse: postgres url="host=127.0.0.1 port=1 user=app dbname=events" table=analytics.events create_table=true connect_timeout_ms=5000 statement_timeout_ms=1000"#,
                r#"url: postgres url="host=127.0.0.1 port=1 user=app dbname=events" table=tidings_events create_table=false"#,
            ],
        );
    }

    #[test]
    fn every_bad_postgres_option_is_reported_with_its_path() {
        let found = problems(
            r#"
            [backends.a]
            type = "postgres"
            [backends.b]
            type = "postgres"
            url = "host=h password='s3cret"
            table = "events; drop table users"
            connect_timeout_ms = 0
            statement_timeout_ms = 0
            [backends.c]
            type = "postgres"
            url = "host=h"
            tabel = "x"
            "#,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "backends.a",
                "backends.b.url",
                "backends.b.table",
                "backends.b.connect_timeout_ms",
                "backends.b.statement_timeout_ms",
                "backends.c.tabel",
            ],
            "{found:?}"
        );
        assert_eq!(found[0].1, "the required key `url` is missing");
        assert!(
            found[1].1.starts_with("invalid connection string"),
            "{found:?}"
        );
        assert!(
            found[2].1.starts_with("may contain only ASCII letters"),
            "{found:?}"
        );
        assert_eq!(found[3].1, "must be at least 1");
        assert!(found.iter().all(|(_, m)| !m.contains("s3cret")));
    }
}

#[cfg(feature = "amqp")]
mod amqp {

    use super::problems;
    use tidings_config::{Registry, load};

    #[test]
    fn amqp_sinks_load_describe_without_the_password_and_build_without_connecting() {
        let config = load(
            r#"
            [backends.rabbit]
            type = "amqp"
            url = "amqp://app:s3cret@127.0.0.1:1/%2f"
            exchange = "analytics"
            routing_key = "tidings.{name}"
            declare = true
            queue = "analytics.all"
            binding_key = "tidings.#"
            publish_timeout_ms = 1000
            max_events = 500
            [backends.defaults]
            type = "amqp"
            "#,
            &Registry::default(),
        )
        .unwrap();
        super::described_without_secrets_and_built_offline(
            config,
            &[
                r#"rabbit: amqp url=amqp://***@127.0.0.1:1/… exchange="analytics" routing_key="tidings.{name}" declare=true queue="analytics.all" binding_key="tidings.#" publish_timeout_ms=1000"#,
                r#"defaults: amqp url=amqp://***@127.0.0.1:5672/… exchange="tidings.events" routing_key="events.{name}" declare=false publish_timeout_ms=5000"#,
            ],
        );
    }

    #[test]
    fn every_bad_amqp_option_is_reported_with_its_path() {
        let found = problems(
            r#"
            [backends.a]
            type = "amqp"
            url = "http://app:s3cret@host/"
            [backends.b]
            type = "amqp"
            routing_key = "events.{id}"
            [backends.c]
            type = "amqp"
            queue = "q"
            [backends.d]
            type = "amqp"
            publish_timeout_ms = 0
            [backends.e]
            type = "amqp"
            exchnage = "x"
            "#,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "backends.a.url",
                "backends.b.routing_key",
                "backends.c.queue",
                "backends.d.publish_timeout_ms",
                "backends.e.exchnage",
            ],
            "{found:?}"
        );
        assert!(found[0].1.starts_with("invalid AMQP url"), "{found:?}");
        assert_eq!(found[2].1, "queue requires declare = true");
        assert!(
            found.iter().all(|(_, m)| !m.contains("s3cret")),
            "{found:?}"
        );
    }
}

#[cfg(feature = "nats")]
mod nats {
    use tidings_config::{Registry, load};

    #[test]
    fn nats_options_load_with_defaults_and_print_without_credentials() {
        let config = load(
            r#"
            [backends.js]
            type = "nats"
            url = "nats://user:hunter2@127.0.0.1:4222"
            stream = "EVENTS"
            create_stream = true
            "#,
            &Registry::default(),
        )
        .unwrap();
        let tree = config.to_string();
        assert!(
            tree.contains(
                "js: nats url=nats://***@127.0.0.1:4222 subject=events.{name} stream=EVENTS \
                 create_stream=true duplicate_window_seconds=120 max_in_flight=256 \
                 ack_timeout_ms=5000"
            ),
            "{tree}"
        );
        assert!(!tree.contains("hunter2"), "{tree}");
    }

    #[test]
    fn invalid_nats_options_are_reported_with_their_paths() {
        let errors = |text: &str| {
            load(text, &Registry::default())
                .unwrap_err()
                .0
                .into_iter()
                .map(|e| (e.path, e.message))
                .collect::<Vec<_>>()
        };
        let found = errors(
            r#"
            [backends.js]
            type = "nats"
            subject = "events {name}"
            max_in_flight = 0
            ack_timeout_ms = 0
            "#,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "backends.js.subject",
                "backends.js.max_in_flight",
                "backends.js.ack_timeout_ms"
            ],
            "{found:?}"
        );
        assert!(found[0].1.contains("whitespace"), "{found:?}");
        let found = errors("[backends.js]\ntype = \"nats\"\ncreate_stream = true\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "backends.js.stream");
        assert!(found[0].1.contains("create_stream"), "{found:?}");
    }

    #[test]
    fn building_against_an_unreachable_server_names_it_without_credentials() {
        let config = load(
            "[backends.js]\ntype = \"nats\"\nurl = \"nats://u:hunter2@127.0.0.1:1\"\nack_timeout_ms = 1000\n",
            &Registry::default(),
        )
        .unwrap();
        let message = config.build().unwrap_err().to_string();
        assert!(
            message.contains("cannot connect to NATS at nats://***@127.0.0.1:1"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}
