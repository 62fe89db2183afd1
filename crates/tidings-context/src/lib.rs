//! Named, nested contexts whose merge is attached to every event emitted
//! inside them.
//!
//! A context is a named JSON object. Entering one pushes it on the current
//! thread's stack; every event emitted while it is entered carries the shallow
//! merge of all entered contexts, later ones overriding earlier keys (edX
//! `event-tracking` semantics). The stack is per thread; [`WithContextExt`]
//! carries it into futures and spawned tasks, as `tracing`'s `Instrument`
//! does for spans. This crate does no I/O and needs no async runtime.
//!
//! ```
//! use serde_json::json;
//! use tidings_context as context;
//!
//! let _outer = context::enter("outer", json!({"user_id": 10938, "org": "edx"}));
//! {
//!     let _inner = context::enter("session", json!({"user_id": 11111, "session_id": "s1"}));
//!     assert_eq!(
//!         context::current().to_value(),
//!         json!({"user_id": 11111, "org": "edx", "session_id": "s1"})
//!     );
//! } // `_inner` exits here, even on panic or early return
//! assert_eq!(context::current().to_value(), json!({"user_id": 10938, "org": "edx"}));
//! ```
//!
//! # Rules
//!
//! - [`enter`] returns a [`ContextGuard`] that exits the context when dropped;
//!   [`in_scope`] runs a closure inside a context.
//! - [`exit`] removes the most recently entered context with a name, wherever
//!   it sits in the stack (not blindly the innermost one).
//! - Entering a name that is already entered replaces that context's values,
//!   keeping its position in the merge order; when the newer entry exits, the
//!   older values are visible again.
//! - [`enter_global`] enters a context for the whole process: every thread
//!   and task sees it, beneath its own contexts (which override its keys).
//!   Enter application-wide values (release, host, service) there once at
//!   start-up; edX's default tracker keeps its contexts this way.
//!
//! # Async code
//!
//! Do not hold a [`ContextGuard`] across an `.await`: the task may resume on
//! another thread, whose stack does not hold the context. Wrap the future
//! instead, with [`WithContextExt::with_current_context`] (for
//! `tokio::spawn`) or [`WithContextExt::with_context`]; the wrapper installs
//! its own stack around every poll, so guards inside it are safe. Clippy can
//! enforce this with `await-holding-invalid-types` in `clippy.toml`:
//!
//! ```toml
//! await-holding-invalid-types = ["tidings_context::ContextGuard"]
//! ```

mod context;
mod future;
mod global;
mod stack;

pub use context::{Context, IntoContextMap};
pub use future::{WithContext, WithContextExt};
pub use global::{GlobalContextGuard, current_global, enter_global, exit_global};
pub use stack::{ContextGuard, current, enter, exit, in_scope};
