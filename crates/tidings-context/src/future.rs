//! `WithContext`: a future that carries its own context stack across polls.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use std::borrow::Cow;

use crate::stack::{Stack, Swap};
use crate::{Context, IntoContextMap};

pin_project_lite::pin_project! {
    /// A future that runs every poll of `F` inside its own context stack.
    ///
    /// Created by [`WithContextExt::with_context`] and
    /// [`WithContextExt::with_current_context`]. The stack starts from a
    /// snapshot; contexts entered inside the future stay with it across
    /// `.await` points and threads, and never leak to the polling thread.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        stack: Stack,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _swapped = Swap::new(this.stack);
        this.inner.poll(cx)
    }
}

/// Attaches contexts to futures. Implemented for every future.
///
/// ```
/// # async fn demo() {
/// use serde_json::json;
/// use tidings_context::{self as context, WithContextExt};
///
/// let _g = context::enter("request", json!({"request_id": "r1"}));
/// let task = async { context::current().get("request_id").cloned() }.with_current_context();
/// drop(_g);
/// assert_eq!(task.await, Some(json!("r1")));
/// # }
/// ```
pub trait WithContextExt: Sized {
    /// Runs this future inside the snapshot `context`.
    fn with_context(self, context: Context) -> WithContext<Self> {
        WithContext {
            inner: self,
            stack: Stack::with_base(context),
        }
    }

    /// Runs this future inside the context current at this call, for example
    /// `tokio::spawn(fut.with_current_context())`.
    fn with_current_context(self) -> WithContext<Self> {
        self.with_context(crate::stack::current_local())
    }

    /// Runs this future inside the context current at this call plus the
    /// context `name` with `values`: the async form of [`in_scope`](crate::in_scope),
    /// safe across `.await` where a [`ContextGuard`](crate::ContextGuard) is not.
    fn in_context(
        self,
        name: impl Into<Cow<'static, str>>,
        values: impl IntoContextMap,
    ) -> WithContext<Self> {
        let name = name.into();
        let values = values.into_context_map(&name);
        let mut stack = Stack::with_base(crate::stack::current_local());
        stack.push(name, values);
        WithContext { inner: self, stack }
    }
}

impl<F: Future> WithContextExt for F {}
