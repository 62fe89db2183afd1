//! Helpers for the tests against the real NATS server: the service check,
//! unique names, an admin client that reads streams back and deletes them.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use serde_json::json;
use tidings_event::{Event, EventName};
use tokio::runtime::Runtime;

/// Where the server listens.
pub const NATS: &str = "127.0.0.1:4222";

/// How to start it.
pub const START: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";

/// Fails the test loudly unless NATS answers.
pub fn require_nats() {
    tidings_test::require_service("NATS JetStream", NATS, START);
}

/// A stream name and a subject prefix unique to this process and test.
pub fn names(test: &str) -> (String, String) {
    let pid = std::process::id();
    (format!("T{pid}_{test}"), format!("tt{pid}.{test}"))
}

/// An event named `name` whose data carries `n`.
pub fn event(name: &str, n: usize) -> Event {
    Event::new(
        EventName::new(name.to_owned()).unwrap(),
        json!({"n": n, "text": "\"quoted\" ünïcode"}),
    )
}

/// A message read back from a stream.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub msg_id: String,
    pub content_type: String,
    pub body: serde_json::Value,
}

/// A JetStream client of the test's own, on a runtime of its own.
pub struct Admin {
    runtime: Runtime,
    jetstream: jetstream::Context,
}

impl Admin {
    pub fn connect() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The context spawns a task: create it inside the runtime.
        let jetstream = runtime.block_on(async {
            jetstream::new(async_nats::connect(format!("nats://{NATS}")).await.unwrap())
        });
        Self { runtime, jetstream }
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The stream's configuration and state.
    pub fn info(&self, stream: &str) -> jetstream::stream::Info {
        self.block_on(async {
            let mut stream = self.jetstream.get_stream(stream).await.unwrap();
            stream.info().await.unwrap().clone()
        })
    }

    /// How many messages the stream holds.
    pub fn count(&self, stream: &str) -> u64 {
        self.info(stream).state.messages
    }

    /// Every message of the stream, in order, through an ephemeral pull
    /// consumer.
    pub fn read_all(&self, stream: &str) -> Vec<Stored> {
        let expected = usize::try_from(self.count(stream)).unwrap();
        self.block_on(async {
            let stream = self.jetstream.get_stream(stream).await.unwrap();
            let consumer: consumer::PullConsumer = stream
                .create_consumer(consumer::pull::Config {
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_policy: consumer::AckPolicy::None,
                    inactive_threshold: Duration::from_secs(30),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut stored = Vec::with_capacity(expected);
            let started = Instant::now();
            while stored.len() < expected && started.elapsed() < Duration::from_secs(10) {
                let mut batch = consumer
                    .fetch()
                    .max_messages(expected - stored.len())
                    .messages()
                    .await
                    .unwrap();
                while let Some(message) = batch.next().await {
                    let message = message.unwrap();
                    // Parsed, so that standard names such as `Nats-Msg-Id`
                    // match (a plain `&str` is taken as a custom name).
                    let header = |name: &str| {
                        let name: async_nats::HeaderName = name.parse().unwrap();
                        message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get(name))
                            .map(|v| v.as_str().to_owned())
                            .unwrap_or_default()
                    };
                    stored.push(Stored {
                        subject: message.subject.to_string(),
                        msg_id: header("Nats-Msg-Id"),
                        content_type: header("Content-Type"),
                        body: serde_json::from_slice(&message.payload).unwrap(),
                    });
                }
            }
            stored
        })
    }

    /// How many times each `Nats-Msg-Id` is in the stream.
    pub fn id_counts(&self, stream: &str) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for stored in self.read_all(stream) {
            *counts.entry(stored.msg_id).or_insert(0) += 1;
        }
        counts
    }

    /// Deletes `stream` when the returned guard is dropped (also when the
    /// test fails); deletes a leftover from an earlier run now.
    pub fn cleanup(&self, stream: &str) -> StreamGuard<'_> {
        self.delete(stream);
        StreamGuard {
            admin: self,
            stream: stream.to_owned(),
        }
    }

    pub fn delete(&self, stream: &str) {
        let _ = self.block_on(self.jetstream.delete_stream(stream));
    }
}

/// Deletes its stream when dropped.
pub struct StreamGuard<'a> {
    admin: &'a Admin,
    stream: String,
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.admin.delete(&self.stream);
    }
}
