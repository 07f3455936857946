//! The current span context: what a span started with no explicit parent
//! takes as its parent, what a log record is correlated with and what an
//! outgoing request propagates.
//!
//! Each thread keeps a stack of contexts. Making one current
//! ([`SpanContext::attach`], [`Span::attach`](crate::Span::attach),
//! [`Tracer::in_span`](crate::Tracer::in_span)) pushes it and returns a
//! guard; dropping the guard takes it off again. Guards are not `Send`: a
//! context is current on the thread that attached it, and goes to another
//! thread only when carried there explicitly (clone the context, attach it
//! there). Across `.await`, the future wrappers of [`FutureExt`] attach a
//! context for each poll, so it follows a task from thread to thread.
//!
//! Invariants of the stack: every entry belongs to a live guard or has
//! been marked dead by a guard dropped out of order; the top entry is
//! always live (dead entries are popped as soon as they reach the top), so
//! the current context is the top entry, found without a search. A guard
//! records the index of its entry; entries below a live one are never
//! popped, so the index stays right for the guard's lifetime. A guard
//! forgotten with `mem::forget` leaves its entry current for the rest of
//! the thread's life: a leak, never unsoundness.
//!
//! Cost: attaching is a thread-local access, a borrow flag and a push of
//! the context (a copy, plus a reference count only when the context has a
//! trace state); reading the current context for a new span's parent is a
//! thread-local access and a length check.

// Pin projection in the future wrappers (`WithSpan`, `WithContext`).
#![allow(unsafe_code)]

use crate::context::{SpanContext, SpanId, TraceFlags, TraceId};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

struct Entry {
    context: SpanContext,
    /// False once its guard was dropped while entries above it lived.
    live: bool,
}

/// Entries a thread keeps room for before its stack grows: deep enough for
/// ordinary nesting without a reallocation.
const STACK_ENTRIES_INITIAL: usize = 16;

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// How many entries `STACK` holds, kept beside it so that a thread with
    /// nothing attached (most spans of most threads are roots or have
    /// explicit parents) finds that out with one plain thread-local load:
    /// `Cell<usize>` needs no destructor, so reading it skips the
    /// registration check that `STACK`, a `Vec`, costs on every access.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// A copy of this thread's current context (`None`: nothing is attached,
/// or the thread is being torn down). A small value rather than a closure
/// run inside the stack's borrow, so that a span is built once, in place,
/// and not moved out through closures.
#[inline]
fn current() -> Option<SpanContext> {
    if DEPTH.try_with(Cell::get).unwrap_or(0) == 0 {
        return None;
    }
    STACK
        .try_with(|stack| Some(stack.try_borrow().ok()?.last()?.context.clone()))
        .ok()
        .flatten()
}

/// The ids and flags of the current context, if valid: what a log record
/// correlates with. Unlike [`current_parent`], it leaves the trace state
/// (a reference count) alone.
#[inline]
pub(crate) fn current_ids() -> Option<(TraceId, SpanId, TraceFlags)> {
    if DEPTH.try_with(Cell::get).unwrap_or(0) == 0 {
        return None;
    }
    STACK
        .try_with(|stack| {
            let stack = stack.try_borrow().ok()?;
            let c = &stack.last()?.context;
            c.is_valid()
                .then_some((c.trace_id, c.span_id, c.trace_flags))
        })
        .ok()
        .flatten()
}

/// What a new span takes as its parent: the current context, if valid.
#[inline]
pub(crate) fn current_parent() -> Option<SpanContext> {
    current().filter(SpanContext::is_valid)
}

/// Pushes `context` as this thread's current context.
fn push(context: SpanContext) -> ContextGuard {
    let index = STACK
        .try_with(|stack| {
            let mut stack = stack.borrow_mut();
            if stack.capacity() == 0 {
                stack.reserve(STACK_ENTRIES_INITIAL);
            }
            stack.push(Entry {
                context,
                live: true,
            });
            let _ = DEPTH.try_with(|d| d.set(stack.len()));
            stack.len() - 1
        })
        // Thread teardown: nothing is current, and the guard does nothing.
        .unwrap_or(usize::MAX);
    ContextGuard {
        index,
        _not_send: PhantomData,
    }
}

fn pop(index: usize) {
    let _ = STACK.try_with(|stack| {
        let mut stack = stack.borrow_mut();
        if index + 1 == stack.len() {
            stack.pop();
            while stack.last().is_some_and(|e| !e.live) {
                stack.pop();
            }
        } else if let Some(e) = stack.get_mut(index) {
            e.live = false;
        }
        let _ = DEPTH.try_with(|d| d.set(stack.len()));
    });
}

/// Keeps a context current on this thread until dropped; from
/// [`SpanContext::attach`]. Not `Send`: drop it on the thread that made it.
///
/// Guards may be dropped in any order: the current context is always the
/// most recently attached one whose guard still lives.
#[must_use = "the context is current only while the guard lives"]
#[derive(Debug)]
pub struct ContextGuard {
    /// The entry's index in this thread's stack; `usize::MAX` when none
    /// was pushed (thread teardown).
    index: usize,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        if self.index != usize::MAX {
            pop(self.index);
        }
    }
}

impl SpanContext {
    /// The context of the span current on this thread; an invalid context
    /// (see [`is_valid`](Self::is_valid)) when none is.
    ///
    /// ```
    /// use otlpx::SpanContext;
    /// let remote = SpanContext::from_traceparent(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    /// )?;
    /// assert!(!SpanContext::current().is_valid());
    /// {
    ///     let _guard = remote.attach();
    ///     assert_eq!(SpanContext::current(), remote);
    /// }
    /// assert!(!SpanContext::current().is_valid());
    /// # Ok::<(), otlpx::TraceparentError>(())
    /// ```
    pub fn current() -> SpanContext {
        current().unwrap_or_default()
    }

    /// Makes this context current on this thread until the guard drops:
    /// spans started meanwhile without an explicit parent are its children
    /// (a remote context from a `traceparent` header, typically). An invalid
    /// context makes new spans roots while it is current.
    pub fn attach(&self) -> ContextGuard {
        push(self.clone())
    }
}

/// Wraps futures so that a span context is current whenever they run,
/// whichever thread polls them. Implemented for every future.
///
/// ```
/// use otlpx::FutureExt as _;
/// # async fn query() {}
/// # fn demo(tracer: &'static otlpx::Tracer) {
/// let span = tracer.start("GET /orders");
/// // `query` and the spans it starts are children of the request span,
/// // across every `.await`; the span ends when the future completes.
/// let task = async { query().await }.with_span(span);
/// # drop(task);
/// # }
/// ```
pub trait FutureExt: Future + Sized {
    /// Makes `span` current while this future runs, and ends it when the
    /// future completes (or is dropped).
    fn with_span(self, span: crate::Span<'_>) -> WithSpan<'_, Self> {
        WithSpan {
            future: self,
            span: Some(span),
        }
    }

    /// Makes `context` current while this future runs.
    fn with_context(self, context: SpanContext) -> WithContext<Self> {
        WithContext {
            future: self,
            context,
        }
    }

    /// Makes the context current now (at this call) current while this
    /// future runs: for a task spawned onto another thread.
    fn in_current_span(self) -> WithContext<Self> {
        self.with_context(SpanContext::current())
    }
}

impl<F: Future> FutureExt for F {}

/// A future with a span current while it runs; from
/// [`FutureExt::with_span`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WithSpan<'t, F> {
    future: F,
    /// `None` once the future completed and the span ended.
    span: Option<crate::Span<'t>>,
}

impl<F: Future> Future for WithSpan<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self` nor exposed unpinned, and `WithSpan` has no `Drop` or
        // `Unpin` impl of its own that could move it. `span` is not pinned
        // and only touched through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        let _guard = this.span.as_ref().map(|s| s.context().attach());
        // SAFETY: see above; `this.future` stays where it is.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let out = future.poll(cx);
        if out.is_ready() {
            drop(_guard);
            // Ends the span: the work it stands for is done.
            this.span = None;
        }
        out
    }
}

/// A future with a context current while it runs; from
/// [`FutureExt::with_context`] and [`FutureExt::in_current_span`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WithContext<F> {
    future: F,
    context: SpanContext,
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: as in `WithSpan::poll`: `future` is structurally pinned,
        // never moved; `context` is only read.
        let this = unsafe { self.get_unchecked_mut() };
        let _guard = this.context.attach();
        // SAFETY: see above.
        unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{SpanId, TraceId};

    fn ctx(n: u8) -> SpanContext {
        SpanContext {
            trace_id: TraceId([n; 16]),
            span_id: SpanId([n; 8]),
            ..SpanContext::default()
        }
    }

    fn current_id() -> Option<u8> {
        current().map(|c| c.span_id.0[0])
    }

    #[test]
    fn guards_nest_and_unwind() {
        assert_eq!(current_id(), None);
        let a = ctx(1).attach();
        let b = ctx(2).attach();
        assert_eq!(current_id(), Some(2));
        drop(b);
        assert_eq!(current_id(), Some(1));
        drop(a);
        assert_eq!(current_id(), None);
    }

    #[test]
    fn guards_dropped_out_of_order_keep_the_newest_current() {
        let a = ctx(1).attach();
        let b = ctx(2).attach();
        drop(a); // not the top: marked dead, b stays current
        assert_eq!(current_id(), Some(2));
        let c = ctx(3).attach();
        drop(b);
        assert_eq!(current_id(), Some(3));
        drop(c); // pops c, then the dead b and a
        assert_eq!(current_id(), None);
        STACK.with(|s| assert!(s.borrow().is_empty()));
    }

    #[test]
    fn a_forgotten_guard_only_leaks_its_entry() {
        std::mem::forget(ctx(7).attach());
        let g = ctx(8).attach();
        assert_eq!(current_id(), Some(8));
        drop(g);
        assert_eq!(current_id(), Some(7));
        STACK.with(|s| s.borrow_mut().clear());
        DEPTH.with(|d| d.set(0));
    }

    #[test]
    fn other_threads_see_nothing_until_given_the_context() {
        let _g = ctx(4).attach();
        let carried = SpanContext::current();
        std::thread::spawn(move || {
            assert_eq!(current_id(), None, "not inherited implicitly");
            let _g = carried.attach();
            assert_eq!(current_id(), Some(4));
        })
        .join()
        .unwrap();
    }

    /// Polls `f` to completion on this thread with a no-op waker.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = TaskContext::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// Pending once, then ready: a stand-in for an `.await` that yields.
    struct YieldOnce(bool);
    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<()> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn with_context_is_current_in_every_poll_and_not_between() {
        let fut = async {
            assert_eq!(current_id(), Some(5));
            YieldOnce(false).await;
            assert_eq!(current_id(), Some(5));
            current_id()
        }
        .with_context(ctx(5));
        let mut fut = std::pin::pin!(fut);
        let mut cx = TaskContext::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(current_id(), None, "detached between polls");
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Some(5)));
        assert_eq!(block_on(async { current_id() }), None);
    }

    #[test]
    fn in_current_span_captures_the_context_at_the_call() {
        let fut = {
            let _g = ctx(6).attach();
            async { current_id() }.in_current_span()
        };
        assert_eq!(current_id(), None);
        assert_eq!(block_on(fut), Some(6));
    }
}
