//! `ProcessorError`: a processor could not do its job for one event.

use std::borrow::Cow;

use crate::BoxError;

/// A processor failed on one event. The router logs and counts it, and the
/// event goes on unchanged.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProcessorError {
    message: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl ProcessorError {
    /// An error with a message.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and the error that caused it.
    pub fn with_source(message: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}
