//! [`Violation`]: why an event does not match the catalog, with the
//! codes of its kinds (what the collector's 400 and metrics name).

use std::fmt;

use tidings_core::EmitError;

use crate::spec::PropertyType;

/// Why an event does not match the catalog: the event, the property (a
/// dotted path into the data; empty for the data as a whole) and what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    event: String,
    path: String,
    kind: ViolationKind,
}

/// What is wrong, in a [`Violation`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViolationKind {
    /// The name is not declared (strict mode; eventlib's `EventNotFound`).
    UnknownEvent,
    /// The data is not a JSON object.
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// A required property is absent or `null`.
    Missing,
    /// A property has the wrong type.
    WrongType {
        /// The declared type.
        expected: PropertyType,
        /// The JSON type found.
        found: &'static str,
    },
    /// A property's value is not one of the allowed values.
    NotAllowed {
        /// The value found, as JSON.
        value: String,
        /// The allowed values, as JSON, comma separated.
        allowed: String,
    },
    /// A string does not match the declared pattern.
    PatternMismatch {
        /// The value found, as JSON.
        value: String,
        /// The pattern.
        pattern: String,
    },
    /// A timestamp property is not an RFC 3339 date and time.
    NotTimestamp {
        /// The value found, as JSON.
        value: String,
    },
    /// A property that is not declared, where none are allowed.
    UnknownProperty,
    /// A check of the event's own code failed ([`TypedEvent::validate`](crate::TypedEvent::validate)).
    Custom(String),
    /// The data could not be read (not JSON).
    Malformed(String),
}

impl ViolationKind {
    /// A short label, used in metrics and counters: `unknown_event`,
    /// `not_an_object`, `missing`, `wrong_type`, `not_allowed`, `pattern`,
    /// `not_timestamp`, `unknown_property`, `custom`, `malformed`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UnknownEvent => "unknown_event",
            Self::NotAnObject { .. } => "not_an_object",
            Self::Missing => "missing",
            Self::WrongType { .. } => "wrong_type",
            Self::NotAllowed { .. } => "not_allowed",
            Self::PatternMismatch { .. } => "pattern",
            Self::NotTimestamp { .. } => "not_timestamp",
            Self::UnknownProperty => "unknown_property",
            Self::Custom(_) => "custom",
            Self::Malformed(_) => "malformed",
        }
    }

    /// Every code, in the order of [`ViolationKind::index`].
    pub const CODES: [&'static str; 10] = [
        "unknown_event",
        "not_an_object",
        "missing",
        "wrong_type",
        "not_allowed",
        "pattern",
        "not_timestamp",
        "unknown_property",
        "custom",
        "malformed",
    ];

    /// The position of this kind's code in [`ViolationKind::CODES`].
    #[must_use]
    pub fn index(&self) -> usize {
        Self::CODES
            .iter()
            .position(|c| *c == self.code())
            .unwrap_or(Self::CODES.len() - 1)
    }
}

impl Violation {
    /// A violation of `event` at `path` (dotted; empty for the whole data).
    #[must_use]
    pub fn new(event: impl Into<String>, path: impl Into<String>, kind: ViolationKind) -> Self {
        Self {
            event: event.into(),
            path: path.into(),
            kind,
        }
    }

    /// A failed check of an event's own code, at `path`.
    #[must_use]
    pub fn custom(
        event: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(event, path, ViolationKind::Custom(message.into()))
    }

    /// The event's name.
    #[must_use]
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The property, as a dotted path into the data (empty: the data itself).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    #[must_use]
    pub fn kind(&self) -> &ViolationKind {
        &self.kind
    }

    /// The violation an emit was refused for, if it was refused for one:
    /// by a strict catalog at the call, or by a typed event's own
    /// [`validate`](crate::TypedEvent::validate) (both are
    /// [`EmitError::Invalid`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tidings_catalog::{Catalog, CatalogProcessor, Violation, ViolationKind};
    /// use tidings_core::Dispatch;
    /// use tidings_routing::RoutingBackend;
    ///
    /// let catalog = Catalog::from_toml_str(r#"
    ///     [events."navigation.request"]
    ///     properties.url = { type = "string", required = true }
    /// "#, "catalog.toml")?;
    /// let check = Arc::new(CatalogProcessor::new(Arc::new(catalog)).strict(true));
    /// let dispatch = Dispatch::new(RoutingBackend::default()).with_check(check);
    ///
    /// let error = dispatch.emit("navigation.requst", serde_json::json!({})).unwrap_err();
    /// let violation = Violation::of(&error).unwrap();
    /// assert_eq!(violation.kind(), &ViolationKind::UnknownEvent);
    /// assert_eq!(error.to_string(), r#"event "navigation.requst" is not in the catalog"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn of(error: &EmitError) -> Option<&Self> {
        match error {
            EmitError::Invalid(source) => source.downcast_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = &self.event;
        let path = &self.path;
        match &self.kind {
            ViolationKind::UnknownEvent => write!(f, "event {event:?} is not in the catalog"),
            ViolationKind::NotAnObject { found } => {
                write!(f, "event {event:?}: data must be an object, found {found}")
            }
            ViolationKind::Missing => write!(f, "event {event:?}: property {path:?} is required"),
            ViolationKind::WrongType { expected, found } => write!(
                f,
                "event {event:?}: property {path:?}: expected {expected}, found {found}"
            ),
            ViolationKind::NotAllowed { value, allowed } => write!(
                f,
                "event {event:?}: property {path:?}: {value} is not one of {allowed}"
            ),
            ViolationKind::PatternMismatch { value, pattern } => write!(
                f,
                "event {event:?}: property {path:?}: {value} does not match the pattern {pattern}"
            ),
            ViolationKind::NotTimestamp { value } => write!(
                f,
                "event {event:?}: property {path:?}: {value} is not an RFC 3339 timestamp"
            ),
            ViolationKind::UnknownProperty => write!(
                f,
                "event {event:?}: property {path:?} is not declared (no additional properties are allowed)"
            ),
            ViolationKind::Custom(message) if path.is_empty() => {
                write!(f, "event {event:?}: {message}")
            }
            ViolationKind::Custom(message) => {
                write!(f, "event {event:?}: property {path:?}: {message}")
            }
            ViolationKind::Malformed(message) => {
                write!(f, "event {event:?}: data is not valid JSON: {message}")
            }
        }
    }
}

impl std::error::Error for Violation {}
