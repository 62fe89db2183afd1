//! Typed events: a struct that serializes as the event's data, with its
//! name and checks declared once.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tidings_event::Event;

use tidings_core::BoxError;

use crate::Violation;

/// An event type: its data is the struct, serialized; its name is [`TypedEvent::NAME`].
///
/// Emit one with `tidings::Tracker::emit_typed`, which runs
/// [`TypedEvent::validate`] first and refuses the event when it fails.
///
/// ```
/// use serde::Serialize;
/// use tidings_catalog::{TypedEvent, Violation};
///
/// #[derive(Serialize)]
/// struct VideoPlayed {
///     video_id: String,
///     position_s: f64,
/// }
///
/// impl TypedEvent for VideoPlayed {
///     const NAME: &'static str = "edx.video.played";
///
///     fn validate(&self) -> Result<(), Violation> {
///         if self.position_s < 0.0 {
///             return Err(Violation::custom(Self::NAME, "position_s", "must not be negative"));
///         }
///         Ok(())
///     }
/// }
///
/// let bad = VideoPlayed { video_id: "v1".into(), position_s: -1.0 };
/// assert_eq!(
///     bad.validate().unwrap_err().to_string(),
///     r#"event "edx.video.played": property "position_s": must not be negative"#
/// );
/// ```
pub trait TypedEvent: Serialize {
    /// The event's name.
    const NAME: &'static str;

    /// Checks beyond what the type itself guarantees (ranges, formats,
    /// relations between fields). The default accepts everything.
    ///
    /// # Errors
    ///
    /// A [`Violation`] naming the failing property.
    fn validate(&self) -> Result<(), Violation> {
        Ok(())
    }
}

/// A typed event with a handler declared on the type (eventlib's handler
/// methods). Registered with [`HandlersBuilder::on_type`](crate::HandlersBuilder::on_type),
/// it runs before the function handlers of the same event.
pub trait HandleEvent: TypedEvent + DeserializeOwned + 'static {
    /// Handles one event, read back from its data; `event` is the whole event
    /// (id, context, timestamps).
    ///
    /// # Errors
    ///
    /// Anything; it is logged and counted, and the other handlers still run.
    fn handle(&self, event: &Event) -> Result<(), BoxError>;
}
