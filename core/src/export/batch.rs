//! Batching: taking one signal's records out of its rings and framing them
//! as one request of that signal, and deciding when a batch is due.
//!
//! A batch is bounded by spans and by payload bytes, and by age: records
//! wait in their rings (the rings are the queue; nothing is copied before
//! the request is framed) until enough are there to fill a request or the
//! oldest may have waited the schedule delay. Records are released only
//! after their bytes were copied into the request.

use crate::export::frame::{Catalog, Framer, OneScope};
use crate::ring::{Batch, Consumer, Ring, Signal};
use bytes::BytesMut;
#[cfg(feature = "export")]
use std::time::Duration;

#[cfg(feature = "export")]
/// When a batch is sent. Built from the engine's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// Spans per request, at most.
    pub(crate) max_spans: usize,
    /// Span bytes per request, at most (a single larger span still goes,
    /// alone).
    pub(crate) max_bytes: usize,
    /// How long a span may wait for its batch to fill.
    pub(crate) delay: Duration,
    /// Whether the signal's first record wakes its worker (metrics: a
    /// collection writes a burst of records, then nothing for an
    /// interval; see `config::METRIC_SCHEDULE_DELAY_MS`). While such a
    /// signal's rings are empty its worker does not look at them: the
    /// first record rings the doorbell ([`Self::sleep_wake_bytes`]), and
    /// the batch's age counts from when the worker sees it. The other
    /// signals' records trickle in, and ringing for the first of each
    /// batch would cost a wake-up per batch on the recording thread (an
    /// `unpark`); their worker looks every `delay` instead.
    pub(crate) prompt: bool,
}

#[cfg(feature = "export")]
/// What is waiting in a set of rings.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pending {
    pub(crate) spans: u64,
    pub(crate) bytes: u64,
    /// Some ring is filled past its wake level: send now, before it
    /// overflows, whatever the batch size.
    pub(crate) pressing: bool,
}

#[cfg(feature = "export")]
impl Pending {
    /// Sums the counters of `rings`.
    pub(crate) fn of<'r>(rings: impl IntoIterator<Item = &'r Ring>, policy: &Policy) -> Self {
        rings.into_iter().fold(Self::default(), |p, ring| {
            let c = ring.counters();
            Self {
                spans: p.spans + c.in_ring(),
                bytes: p.bytes + c.used_bytes,
                pressing: p.pressing || c.used_bytes >= policy.wake_bytes(ring),
            }
        })
    }
}

#[cfg(feature = "export")]
impl Policy {
    /// The fill level at which a ring's producers wake its worker, and at
    /// which a batch is due whatever its size: an eighth of the ring (room
    /// left for the worker to catch up), or a full request's bytes if less.
    pub(crate) fn wake_bytes(&self, ring: &Ring) -> u64 {
        (ring.capacity_bytes() as u64 / 8).min(self.max_bytes as u64)
    }

    /// The fill level at which `ring`'s producers wake its sleeping
    /// worker: any record (one byte) while a prompt signal's rings are
    /// `empty`, else [`Self::wake_bytes`].
    pub(crate) fn sleep_wake_bytes(&self, ring: &Ring, empty: bool) -> u64 {
        if self.prompt && empty {
            1
        } else {
            self.wake_bytes(ring)
        }
    }

    /// Whether a request should be sent now: a full one is waiting, a ring
    /// is filling up, spans have been waiting at least `waited` ≥ the
    /// delay, or a flush wants everything.
    pub(crate) fn due(&self, pending: Pending, waited: Duration, flushing: bool) -> bool {
        pending.spans > 0 && (flushing || self.is_full(pending) || waited >= self.delay)
    }

    /// Whether traffic alone makes a batch due: a full request is waiting
    /// or a ring is filling up.
    pub(crate) fn is_full(&self, pending: Pending) -> bool {
        pending.pressing
            || pending.spans >= self.max_spans as u64
            || pending.bytes >= self.max_bytes as u64
    }
}

/// The most one request takes: items, and payload bytes (a single larger
/// item still goes, alone).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Max {
    pub(crate) items: usize,
    pub(crate) bytes: usize,
}

/// Takes records out of rings and frames them. One per consumer thread;
/// reused, it allocates only when a batch needs more room than any before.
#[derive(Debug, Default)]
pub(crate) struct Batcher {
    framer: Framer,
    /// Records of another signal found in the last `take` (a bug upstream:
    /// each signal has its own rings), released but not framed.
    foreign: usize,
}

impl Batcher {
    /// Frames up to `max_items` of `signal`'s items and about `max_bytes`
    /// of them from `rings` (that signal's) into `out` (cleared first) as
    /// one request, and returns how many. With `release`, the items leave
    /// the rings; without, they stay (benchmarks frame the same items
    /// again). Rings another consumer holds are skipped.
    ///
    /// A record of another kind than the signal's is never framed, in any
    /// build: it is released and counted in [`Self::take_foreign`].
    pub(crate) fn take<'r>(
        &mut self,
        signal: Signal,
        rings: impl IntoIterator<Item = &'r Ring>,
        catalog: &Catalog,
        max: Max,
        out: &mut BytesMut,
        release: bool,
    ) -> usize {
        let mut taken: Vec<(Consumer<'r>, Batch)> = Vec::new();
        let (mut items_left, mut bytes_left) = (max.items, max.bytes);
        for ring in rings {
            if items_left == 0 || bytes_left == 0 {
                break;
            }
            if let Some(consumer) = ring.try_consume() {
                let batch = consumer.peek(items_left, bytes_left);
                items_left -= batch.len();
                bytes_left = bytes_left.saturating_sub(batch.payload_bytes());
                taken.push((consumer, batch));
            }
        }
        let kind = signal.record_kind();
        let pure = taken.iter().all(|(_, batch)| batch.all_of_kind(kind));
        debug_assert!(pure, "a record of another kind in the {signal} rings");
        let scopes = catalog.scopes();
        let framed = self.framer.frame(
            &catalog.resource,
            &scopes.list,
            // The ring's summary sizes the request only when it holds
            // nothing to leave out.
            one_scope(taken.iter().map(|(_, batch)| batch)).filter(|_| pure),
            |sink| {
                for (consumer, batch) in &taken {
                    consumer.for_each(batch, |r| {
                        if r.kind == Some(kind) {
                            sink(r.tag, r.payload);
                        }
                    });
                }
            },
            out,
        );
        drop(scopes);
        self.foreign = if pure {
            0
        } else {
            taken.iter().map(|(_, b)| b.len()).sum::<usize>() - framed
        };
        if release {
            for (mut consumer, batch) in taken {
                consumer.release(batch);
            }
        }
        framed
    }

    /// Records of another signal the last `take` released without framing
    /// them (always 0 unless a bug put them there).
    #[cfg(feature = "export")]
    pub(crate) fn take_foreign(&mut self) -> usize {
        std::mem::take(&mut self.foreign)
    }
}

/// When every record of `batches` carries one scope (the usual case), the
/// request's sizes follow from the rings' summaries and the framer skips
/// its sizing walk.
fn one_scope<'b>(batches: impl Iterator<Item = &'b Batch>) -> Option<OneScope> {
    let (mut tag, mut spans, mut bytes) = (None, 0, 0);
    for batch in batches.filter(|b| !b.is_empty()) {
        let t = batch.single_tag()?;
        if *tag.get_or_insert(t) != t {
            return None;
        }
        spans += batch.len();
        bytes += batch.payload_bytes();
    }
    OneScope::new(tag?, spans, bytes)
}

#[cfg(all(test, feature = "export"))]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_spans: 10,
            max_bytes: 1000,
            delay: Duration::from_millis(100),
            prompt: false,
        }
    }

    #[test]
    fn a_prompt_signals_empty_rings_ring_on_any_record() {
        let ring = Ring::with_capacity(1 << 16).unwrap();
        let usual = policy();
        let prompt = Policy {
            prompt: true,
            ..usual
        };
        // An eighth of the ring, or a request's bytes if less.
        assert_eq!(usual.wake_bytes(&ring), 1000);
        assert_eq!(usual.sleep_wake_bytes(&ring, true), 1000);
        assert_eq!(prompt.sleep_wake_bytes(&ring, true), 1);
        // Once a record waits, the rest of its burst rings no more.
        assert_eq!(prompt.sleep_wake_bytes(&ring, false), 1000);
    }

    #[test]
    fn due_when_full_pressing_old_or_flushing_and_never_when_empty() {
        let p = policy();
        let some = Pending {
            spans: 3,
            bytes: 90,
            pressing: false,
        };
        let short = Duration::from_millis(5);
        assert!(!p.due(some, short, false));
        assert!(p.due(some, Duration::from_millis(100), false));
        assert!(p.due(some, short, true));
        assert!(p.due(Pending { spans: 10, ..some }, short, false));
        assert!(p.due(
            Pending {
                bytes: 1000,
                ..some
            },
            short,
            false
        ));
        assert!(p.due(
            Pending {
                pressing: true,
                ..some
            },
            short,
            false
        ));
        assert!(!p.due(Pending::default(), Duration::MAX, true));
    }
}
