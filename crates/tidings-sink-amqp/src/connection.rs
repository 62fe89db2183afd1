//! The session a sink publishes on (a connection and its confirm-mode
//! channel), and the stages of a send, which timeout messages name. The
//! sink opens the session lazily and again after an outage.

use lapin::{Channel, Connection};

/// An open connection and its confirm-mode channel.
pub(crate) struct Session {
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
}

impl Session {
    pub(crate) fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// What a `send_batch` was doing, for timeout messages.
#[derive(Clone, Copy)]
pub(crate) enum Stage {
    Connecting,
    Declaring,
    Publishing,
    Confirming,
}

impl Stage {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::Connecting => "connecting",
            Stage::Declaring => "declaring the exchange and queue",
            Stage::Publishing => "publishing",
            Stage::Confirming => "waiting for publisher confirms",
        }
    }
}
