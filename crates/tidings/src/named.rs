//! Trackers registered by name, as edX's `register_tracker` and
//! `get_tracker`: a library looks up the tracker an application set up for
//! it, without the application passing it down.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};

use crate::Tracker;

static TRACKERS: LazyLock<RwLock<HashMap<String, Tracker>>> = LazyLock::new(RwLock::default);

/// Registers `tracker` under `name` for the rest of the process (edX's
/// `register_tracker(tracker, name)`), and returns the tracker it replaces.
///
/// The registry holds a clone, sharing the tree; the tracker
/// [`init`](crate::init) installs (what [`emit`](crate::emit) uses) is a
/// separate setting: edX's `register_tracker(tracker)` under the default
/// name is `tidings::init(tracker)`.
///
/// ```
/// use tidings::Tracker;
/// use tidings_test::RecordingBackend;
///
/// let audit = RecordingBackend::new();
/// let tracker = Tracker::builder().backend("audit", audit.clone()).build()?;
/// tidings::register_tracker("audit", tracker);
///
/// // Elsewhere, in a library:
/// if let Some(tracker) = tidings::tracker("audit") {
///     tracker.emit("audit.login", serde_json::json!({"user_id": 7}))?;
/// }
/// assert_eq!(audit.names(), ["audit.login"]);
/// assert!(tidings::tracker("nobody").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn register_tracker(name: impl Into<String>, tracker: Tracker) -> Option<Tracker> {
    TRACKERS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.into(), tracker)
}

/// The tracker registered under `name` (edX's `get_tracker(name)`), if any.
#[must_use]
pub fn tracker(name: &str) -> Option<Tracker> {
    TRACKERS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned()
}

/// Removes and returns the tracker registered under `name`. Shut it down
/// (or keep a clone that will be) so that what it queued is delivered.
pub fn unregister_tracker(name: &str) -> Option<Tracker> {
    TRACKERS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name)
}

/// The names trackers are registered under, sorted.
#[must_use]
pub fn tracker_names() -> Vec<String> {
    let mut names: Vec<String> = TRACKERS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .keys()
        .cloned()
        .collect();
    names.sort_unstable();
    names
}
