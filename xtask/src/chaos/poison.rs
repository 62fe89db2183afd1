//! The `poison-*` faults: one event in `POISON_EVERY` refused by the
//! sink (PostgreSQL, HTTP, Spade, JetStream, RabbitMQ), each its own way;
//! the batch is split until the culprit is alone, every other event is
//! delivered, and the culprits are dead-lettered.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::receiver::Receiver;
use super::trial::{
    End, Plan, Run, Sink, Stored, Trial, backend, check_no_drops, distinct, paced, postgres_backend,
};
use super::{Context, PADDING, POISON_EVERY, Row, Service, Single};
use crate::brokers::{AmqpQueue, JetStream};
use crate::harness::{LoadSpec, NATS_ADDR, PgTable, Poison, event_id, is_poison};

/// PostgreSQL refusing one event in `POISON_EVERY` (a `CHECK` on the name,
/// SQLSTATE 23514): the batch is split until the culprit is alone.
pub(super) const POSTGRES: Single<PoisonTrial> = Single {
    name: "poison-postgres",
    needs: &[Service::Postgres],
    set_up: |context| {
        let table = PgTable::create(&format!("tidings_chaos_poison_{:08x}", context.run))?;
        crate::harness::psql(&format!(
            "ALTER TABLE {} ADD CONSTRAINT no_poison CHECK (name NOT LIKE '%.poison')",
            table.name
        ))?;
        Ok(PoisonTrial {
            file: "poison-postgres",
            description: format!("PostgreSQL refuses 1 event in {POISON_EVERY} (CHECK constraint)"),
            stage: "backends.warehouse",
            backend: postgres_backend(&table.name, 5432, 100),
            spec: poison_load("chaos.poison_pg", PADDING, 0),
            reason: "invalid",
            sink: Box::new(table),
        })
    },
};

/// An HTTP receiver answering 400 to any batch holding a poison event.
pub(super) const HTTP: Single<PoisonTrial> = Single {
    name: "poison-http",
    needs: &[],
    set_up: |_| {
        let receiver = Receiver::start()?;
        receiver.refuse_poison.store(true, Ordering::SeqCst);
        Ok(PoisonTrial {
            file: "poison-http",
            description: format!(
                "HTTP receiver answers 400 to a batch holding 1 event in {POISON_EVERY}"
            ),
            stage: "backends.receiver",
            backend: receiver.backend(),
            spec: poison_load("chaos.poison_http", PADDING, 0),
            reason: "invalid",
            sink: Box::new(receiver),
        })
    },
};

/// A Spade receiver answering 400 to any batch holding a poison event.
pub(super) const SPADE: Single<PoisonTrial> = Single {
    name: "poison-spade",
    needs: &[],
    set_up: |context| {
        let receiver = Receiver::spade(context.run)?;
        receiver.refuse_poison.store(true, Ordering::SeqCst);
        Ok(PoisonTrial {
            file: "poison-spade",
            description: format!(
                "Spade receiver answers 400 to a batch holding 1 event in {POISON_EVERY}"
            ),
            stage: "backends.spade",
            backend: backend(
                "spade",
                "spade",
                &format!("url = \"http://{}/spade\"", receiver.addr),
            ),
            spec: poison_load("chaos.poison_spade", PADDING, 0),
            reason: "invalid",
            sink: Box::new(receiver),
        })
    },
};

/// A JetStream stream refusing one event in `POISON_EVERY`: its
/// `max_message_size` is below the poison events' size.
pub(super) const NATS: Single<PoisonTrial> = Single {
    name: "poison-nats",
    needs: &[Service::Nats],
    set_up: |context| {
        const MAX_MESSAGE_SIZE: i32 = 2048;
        const POISON_PADDING: usize = 4096;
        // The sink's retry horizon (the default `max_batch_age`), so that the
        // sink has no duplicate window to warn about.
        const DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);
        let name = format!("tidings_chaos_poison_{:08x}", context.run);
        let stream = JetStream::create(&name, &name, MAX_MESSAGE_SIZE, DUPLICATE_WINDOW)?;
        Ok(PoisonTrial {
            file: "poison-nats",
            description: format!(
                "JetStream refuses 1 event in {POISON_EVERY} (over max_message_size {MAX_MESSAGE_SIZE} B)"
            ),
            stage: "backends.jetstream",
            backend: backend(
                "jetstream",
                "nats",
                &format!(
                    "url = \"nats://{NATS_ADDR}\"\nsubject = \"{name}.{{name}}\"\nstream = \"{}\"",
                    stream.name
                ),
            ),
            spec: poison_load("chaos.poison_nats", POISON_PADDING, 0),
            reason: "too_large",
            sink: Box::new(stream),
        })
    },
};

/// RabbitMQ refusing one event in `POISON_EVERY`: its name makes a routing
/// key (`events.{name}`, the default) longer than AMQP allows.
pub(super) const AMQP: Single<PoisonTrial> = Single {
    name: "poison-amqp",
    needs: &[Service::RabbitMq],
    set_up: |context| {
        // The longest event name (`MAX_NAME_LEN`): `events.` makes 262 bytes.
        const NAME_LEN: usize = 255;
        let queue = AmqpQueue::declare(&format!("tidings_chaos_poison_{:08x}", context.run))?;
        let name = "chaos.poison_amqp";
        let name_padding = NAME_LEN - name.len() - ".".len() - ".poison".len();
        Ok(PoisonTrial {
            file: "poison-amqp",
            description: format!(
                "RabbitMQ refuses 1 event in {POISON_EVERY} (routing key over 255 bytes)"
            ),
            stage: "backends.rabbitmq",
            backend: backend(
                "rabbitmq",
                "amqp",
                &format!(
                    "url = \"{}\"\nexchange = \"{}\"",
                    AmqpQueue::url(),
                    queue.name
                ),
            ),
            spec: poison_load(name, PADDING, name_padding),
            reason: "too_large",
            sink: Box::new(queue),
        })
    },
};

/// The messages of the stream, by id.
impl Sink for JetStream {
    fn stored(&self) -> Result<Stored, String> {
        Ok(distinct(&self.ids()?))
    }
}

/// The messages of the queue, by id.
impl Sink for AmqpQueue {
    fn stored(&self) -> Result<Stored, String> {
        Ok(distinct(&self.ids()?))
    }
}

/// One run of a `poison-*` fault: 6 s of its load, 1 s to settle.
pub(super) struct PoisonTrial {
    /// The name of its config and log files.
    file: &'static str,
    /// The row's description.
    description: String,
    /// The sink's stage, `backends.NAME`.
    stage: &'static str,
    /// The sink's table in TOML.
    backend: String,
    /// The load.
    spec: LoadSpec,
    /// The dead-letter reason of every poison event.
    reason: &'static str,
    sink: Box<dyn Sink>,
}

impl Trial for PoisonTrial {
    fn plan(&self) -> Plan {
        Plan {
            settle: Duration::from_secs(1),
            ..Plan::new(
                self.file,
                self.description.clone(),
                self.backend.clone(),
                self.spec.clone(),
            )
        }
    }

    fn sink(&self) -> &dyn Sink {
        &*self.sink
    }

    fn disturb(&mut self, _run: &mut Run<'_>) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(6));
        Ok(())
    }

    /// Every innocent event delivered, every poison event in the
    /// dead-letter file with the fault's reason.
    fn account(&self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        let (context, report, stored) = (end.context, &end.report, &end.stored.ids);
        let reason = self.reason;
        let poison: HashSet<String> = report
            .accepted
            .iter()
            .filter(|seq| is_poison(&self.spec, **seq))
            .map(|seq| event_id(context.run, *seq))
            .collect();
        let dead = dead_letters(context, self.stage)?;
        let dead_ids: HashSet<String> = dead.iter().map(|(id, _)| id.clone()).collect();
        row.sent = report.sent;
        row.accepted = report.accepted.len() as u64;
        row.delivered = stored.len() as u64;
        row.dead_lettered = dead.len() as u64;
        row.lost = report
            .accepted
            .iter()
            .map(|seq| event_id(context.run, *seq))
            .filter(|id| !stored.contains(id) && !dead_ids.contains(id))
            .count() as u64;
        if dead_ids != poison {
            row.failures.push(format!(
                "{} poison events accepted, {} dead-lettered",
                poison.len(),
                dead_ids.len()
            ));
        }
        if let Some((id, found)) = dead.iter().find(|(_, found)| found != reason) {
            row.failures.push(format!(
                "dead letter {id} has reason {found:?}, not {reason}"
            ));
        }
        if stored.iter().any(|id| poison.contains(id)) {
            row.failures
                .push("a poison event reached the sink".to_owned());
        }
        row.notes.push(format!(
            "one event in {POISON_EVERY} refused by the sink; {} batches held one",
            poison.len()
        ));
        Ok(())
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        check_no_drops(row, end.metrics()?, self.stage);
        Ok(())
    }
}

/// The ids and reasons of the events in the default dead-letter files of
/// the sink at `stage` (under the collector's working directory).
fn dead_letters(context: &Context, stage: &str) -> Result<Vec<(String, String)>, String> {
    let dir = context.work.join("tidings-dead-letter").join(stage);
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(found);
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path())
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        for line in text.lines() {
            let event: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                format!("{}: a dead letter is not JSON: {e}", entry.path().display())
            })?;
            found.push((
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["context"]["dead_letter"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    Ok(found)
}

/// 500 events/s of which one in `POISON_EVERY` is poison, with `padding`
/// bytes of padding and `name_padding` more bytes in its name (see
/// [`Poison`]).
fn poison_load(name: &str, padding: usize, name_padding: usize) -> LoadSpec {
    LoadSpec {
        poison: Some(Poison {
            every: POISON_EVERY,
            padding,
            name_padding,
        }),
        ..paced(name, 500.0, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_names_can_be_made_as_long_as_an_event_name_may_be() {
        let spec = poison_load("chaos.poison_amqp", PADDING, 230);
        let poison = spec.poison.as_ref().unwrap();
        assert_eq!(poison.name(&spec.name).len(), 255);
        assert!(poison.name(&spec.name).ends_with(".poison"));
        let plain = poison_load("chaos.p", PADDING, 0);
        assert_eq!(plain.poison.unwrap().name("chaos.p"), "chaos.p.poison");
    }
}
