//! Settling the messages a [`NatsSource`](crate::NatsSource) read: each
//! event holds a lease on its message, whose drop (the event settled) tells
//! the settler task, which acknowledges the message (or, for an undecodable
//! one the dead letters took, terminates it). The task also keeps every
//! unsettled message alive at the server with progress notes, so a slow
//! tree never makes JetStream redeliver what it still holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{Client, Subject};
use bytes::Bytes;
use tidings_core::{Outcome, Settlements};
use tokio::sync::{mpsc, oneshot};

use crate::builder::TARGET;

/// What the settler task is told, in order.
#[derive(Debug)]
pub(crate) enum Note {
    /// Message `seq` was read, for the `delivery`th time; its
    /// acknowledgements go to `reply`.
    Fetched {
        seq: u64,
        delivery: u64,
        reply: Subject,
    },
    /// Every event of delivery `delivery` of message `seq` is settled:
    /// acknowledge it (or terminate it: `term`). A settlement of an older
    /// delivery than the one read last settles nothing.
    Settled { seq: u64, delivery: u64, term: bool },
    /// Message `seq` goes back to the server at once (never admitted), or
    /// after `delay`.
    Nak { seq: u64, delay: Option<Duration> },
    /// Keep settled messages unacknowledged from now on.
    Hold,
    /// Acknowledge what was kept, and stop keeping.
    Release,
    /// Flush what was sent, then answer.
    Flush(oneshot::Sender<()>),
}

/// The counters the settler and the source share.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetched: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) unsettled: AtomicU64,
    pub(crate) lag: AtomicU64,
}

/// The lease value of one message's events.
#[derive(Debug)]
pub(crate) struct Settle {
    pub(crate) seq: u64,
    pub(crate) delivery: u64,
    /// Terminate instead of acknowledging (a dead-lettered message).
    pub(crate) term: bool,
    pub(crate) notes: mpsc::UnboundedSender<Note>,
}

impl Drop for Settle {
    fn drop(&mut self) {
        // The task is gone only once the source is closed: the message is
        // then redelivered, which is what an unsettled one needs.
        let _ = self.notes.send(Note::Settled {
            seq: self.seq,
            delivery: self.delivery,
            term: self.term,
        });
    }
}

/// The settler task: runs until every sender of `notes` is gone. The
/// bookkeeping is [`Settlements`]; this does what it answers.
pub(crate) async fn run(
    client: Client,
    mut notes: mpsc::UnboundedReceiver<Note>,
    counters: Arc<Counters>,
    ack_wait: Duration,
) {
    let mut book: Settlements<Subject> = Settlements::default();
    let mut progress = tokio::time::interval(ack_wait / 2);
    progress.tick().await;
    loop {
        tokio::select! {
            note = notes.recv() => {
                let Some(note) = note else { break };
                match note {
                    Note::Fetched { seq, delivery, reply } => book.fetched(seq, delivery, reply),
                    Note::Settled { seq, delivery, term } => {
                        let outcome = if term { Outcome::Term } else { Outcome::Ack };
                        if let Some((reply, outcome)) = book.settled(seq, delivery, outcome) {
                            settle(&client, reply, outcome, &counters).await;
                        }
                    }
                    Note::Nak { seq, delay } => {
                        if let Some(reply) = book.give_back(seq) {
                            let body = match delay {
                                Some(delay) => format!("-NAK {{\"delay\": {}}}", delay.as_nanos()),
                                None => "-NAK".to_owned(),
                            };
                            publish(&client, reply, Bytes::from(body)).await;
                        }
                    }
                    Note::Hold => book.hold(),
                    Note::Release => {
                        for (reply, outcome) in book.release() {
                            settle(&client, reply, outcome, &counters).await;
                        }
                    }
                    Note::Flush(done) => {
                        if let Err(error) = client.flush().await {
                            tracing::warn!(target: TARGET, %error, "cannot flush the acknowledgements");
                        }
                        let _ = done.send(());
                    }
                }
                counters.unsettled.store(book.unsettled() as u64, Ordering::Relaxed);
            }
            _ = progress.tick() => {
                // Still being delivered (or kept): tell the server to wait
                // another `ack_wait` before it redelivers.
                for reply in book.waiting() {
                    publish(&client, reply.clone(), Bytes::from_static(b"+WPI")).await;
                }
            }
        }
    }
}

async fn settle(client: &Client, reply: Subject, outcome: Outcome, counters: &Counters) {
    let body: &'static [u8] = match outcome {
        Outcome::Ack => b"+ACK",
        Outcome::Term => b"+TERM",
    };
    publish(client, reply, Bytes::from_static(body)).await;
    if outcome == Outcome::Ack {
        counters.acked.fetch_add(1, Ordering::Relaxed);
    }
}

async fn publish(client: &Client, reply: Subject, body: Bytes) {
    // A lost acknowledgement means a redelivery, which the id deduplicates.
    if let Err(error) = client.publish(reply, body).await {
        tracing::debug!(target: TARGET, %error, "cannot send an acknowledgement");
    }
}
