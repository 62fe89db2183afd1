//! The NATS sink's errors, how a failed publish is classified for retry,
//! and the scrubbing of credentials from what the client says.

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use tidings_core::SinkError;

/// The NATS sink could not be configured or could not start.
///
/// Messages never contain credentials: URLs are shown without their user
/// information.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The subject template is not usable.
    #[error("invalid subject template {template:?}: {reason}")]
    InvalidSubject {
        /// The template.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range or missing.
    #[error("invalid NATS sink option `{option}`: {reason}")]
    InvalidOption {
        /// The option (its builder setter and config key).
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server URL, without credentials.
        url: String,
        /// What the client reported.
        reason: String,
    },
    /// The stream could not be found, created or read.
    #[error("cannot use JetStream stream {stream:?} at {url}: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// The server URL, without credentials.
        url: String,
        /// What the server or client reported.
        reason: String,
    },
    /// No stream captures the template's subjects, and none was named.
    #[error(
        "no JetStream stream at {url} captures subject {subject:?} ({reason}); create one, \
         name it with `stream`, or set `create_stream`"
    )]
    NoStream {
        /// The server URL, without credentials.
        url: String,
        /// The sample subject that was looked up.
        subject: String,
        /// What the lookup answered.
        reason: String,
    },
    /// The sink's I/O thread could not be started.
    #[error("cannot start the NATS sink's I/O thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Sorts a publish failure into the engine's kinds: timeouts, a lost
/// connection and "no stream for the subject" (a stream being created or
/// electing a leader) are retryable; a JetStream refusal is classified by
/// its HTTP-like code, a message over the stream's size limit being too
/// large.
pub(crate) fn classify(error: &PublishError, what: &str) -> SinkError {
    let message = format!("{what}: {error}");
    match error.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending
        | PublishErrorKind::StreamNotFound => SinkError::retryable(message),
        _ => {
            let refusal = std::error::Error::source(error)
                .and_then(|source| source.downcast_ref::<jetstream::Error>());
            match refusal {
                Some(refusal)
                    if refusal.error_code() == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM =>
                {
                    SinkError::too_large(message)
                }
                Some(refusal) => match refusal.code() {
                    408 | 429 | 500 | 502 | 503 | 504 => SinkError::retryable(message),
                    413 => SinkError::too_large(message),
                    _ => SinkError::fatal(message),
                },
                None => SinkError::retryable(message),
            }
        }
    }
}

/// Removes the user information of `url` from `text`, should a client
/// message quote it.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut text = text.to_owned();
    for one in url.split(',') {
        let rest = one.trim().split_once("://").map_or(one.trim(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && !userinfo.is_empty()
        {
            text = text.replace(userinfo, "***");
        }
    }
    text
}

pub(crate) fn scrub_error(error: NatsError, url: &str) -> NatsError {
    match error {
        NatsError::Connect { url: shown, reason } => NatsError::Connect {
            url: shown,
            reason: scrub(&reason, url),
        },
        NatsError::Stream {
            stream,
            url: shown,
            reason,
        } => NatsError::Stream {
            stream,
            url: shown,
            reason: scrub(&reason, url),
        },
        NatsError::NoStream {
            url: shown,
            subject,
            reason,
        } => NatsError::NoStream {
            url: shown,
            subject,
            reason: scrub(&reason, url),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_quoting_the_url_lose_its_user_information() {
        assert_eq!(
            scrub("bad auth for user:secret here", "nats://user:secret@h:1"),
            "bad auth for *** here"
        );
    }
}
