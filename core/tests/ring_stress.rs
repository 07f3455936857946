//! Ring behaviour under concurrency and at its edges: several producers and
//! one consumer wrapping around many times with records of random sizes,
//! each checked byte for byte and in per-producer order; a full ring; a
//! record too large; a writer that panics. Counts shrink under miri.

use otlpx::ring::{HEADER_BYTES, RecordKind, Ring, WriteError};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// splitmix64: the content of record `seq` of producer `p` is a pure
/// function of `(p, seq)`, so the consumer can check every byte.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn record_len(p: u32, seq: u64, max: usize) -> usize {
    (mix(u64::from(p) << 40 ^ seq) % (max as u64 + 1)) as usize
}

fn fill(p: u32, seq: u64, buf: &mut [u8]) {
    let base = mix(seq ^ u64::from(p) << 48);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (base.wrapping_add(i as u64).wrapping_mul(31) >> 7) as u8;
    }
}

fn stress(producers: u32, per_producer: u64, capacity: usize, max_len: usize) {
    let ring = Arc::new(Ring::with_capacity(capacity).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let fulls = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let (ring, fulls) = (Arc::clone(&ring), Arc::clone(&fulls));
            std::thread::spawn(move || {
                for seq in 0..per_producer {
                    let len = record_len(p, seq, max_len);
                    loop {
                        match ring.try_write(RecordKind::Span, p, len, |b| fill(p, seq, b)) {
                            Ok(()) => break,
                            Err(WriteError::Full) => {
                                fulls.fetch_add(1, Ordering::Relaxed);
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();

    let mut next = vec![0u64; producers as usize];
    let mut expected = vec![0u8; max_len];
    let mut consume = |ring: &Ring| {
        let mut c = ring.try_consume().expect("single consumer");
        let batch = c.peek(usize::MAX, usize::MAX);
        c.for_each(&batch, |r| {
            let p = r.tag;
            let seq = next[p as usize];
            let len = record_len(p, seq, max_len);
            assert_eq!(r.kind, Some(RecordKind::Span));
            assert_eq!(r.payload.len(), len, "producer {p} record {seq}: length");
            fill(p, seq, &mut expected[..len]);
            assert_eq!(
                r.payload,
                &expected[..len],
                "producer {p} record {seq}: bytes"
            );
            next[p as usize] += 1;
        });
        c.release(batch);
        batch.len()
    };
    // The watcher says "done" even when a producer panicked, so a failure
    // fails the test instead of leaving the consumer waiting forever.
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
            done.store(true, Ordering::Release);
            results
        })
    };
    while !done.load(Ordering::Acquire) {
        if consume(&ring) == 0 {
            std::thread::yield_now();
        }
    }
    for r in watcher.join().unwrap() {
        if let Err(panic) = r {
            std::panic::resume_unwind(panic);
        }
    }
    consume(&ring);
    assert!(
        next.iter().all(|&n| n == per_producer),
        "every record seen once, in order: {next:?}"
    );
    let c = ring.counters();
    let total = u64::from(producers) * per_producer;
    assert_eq!((c.committed, c.drained, c.in_ring()), (total, total, 0));
    assert_eq!(c.dropped_full, fulls.load(Ordering::Relaxed));
    assert_eq!(c.used_bytes, 0);
    // The ring wrapped: far more bytes went through than it holds.
    let bytes: usize = (0..producers)
        .flat_map(|p| {
            (0..per_producer).map(move |seq| (HEADER_BYTES + record_len(p, seq, max_len) + 7) & !7)
        })
        .sum();
    assert!(
        bytes > 2 * capacity,
        "{bytes} bytes through a {capacity}-byte ring"
    );
}

#[test]
fn ring_many_producers_one_consumer() {
    if cfg!(miri) {
        stress(2, 150, 256, 40);
    } else {
        stress(4, 200_000, 4096, 200);
    }
}

#[test]
fn ring_records_of_the_largest_size() {
    // Every record takes half the ring: constant padding and wrap-around.
    if cfg!(miri) {
        stress(2, 20, 128, 56);
    } else {
        stress(3, 50_000, 256, 120);
    }
}

#[test]
fn ring_full_keeps_exactly_what_fits_and_counts_the_rest() {
    let ring = Ring::with_capacity(64).unwrap();
    // 8-byte payload + 8-byte header: four fit in 64 bytes.
    let results: Vec<_> = (0u8..10)
        .map(|i| ring.try_write(RecordKind::Span, u32::from(i), 8, |b| b.fill(i)))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    assert!(results[4..].iter().all(|r| *r == Err(WriteError::Full)));
    let c = ring.counters();
    assert_eq!((c.committed, c.dropped_full, c.used_bytes), (4, 6, 64));

    let mut consumer = ring.try_consume().unwrap();
    let batch = consumer.peek(usize::MAX, usize::MAX);
    let mut seen = Vec::new();
    consumer.for_each(&batch, |r| {
        assert_eq!(r.payload, [r.tag as u8; 8]);
        seen.push(r.tag);
    });
    assert_eq!(seen, [0, 1, 2, 3]);
    consumer.release(batch);
    drop(consumer);
    // Room again after release.
    assert!(
        ring.try_write(RecordKind::Span, 9, 8, |b| b.fill(9))
            .is_ok()
    );
}

#[test]
fn ring_refuses_records_over_half_and_bad_capacities() {
    let ring = Ring::with_capacity(256).unwrap();
    assert_eq!(ring.max_payload_bytes(), 120);
    assert!(ring.try_write(RecordKind::Span, 0, 120, |_| {}).is_ok());
    assert_eq!(
        ring.try_write(RecordKind::Span, 0, 121, |_| {}),
        Err(WriteError::TooLarge)
    );
    assert_eq!(ring.counters().dropped_too_large, 1);
    for bad in [0, 1, 63, 100, 3 << 10, 1 << 31] {
        assert!(Ring::with_capacity(bad).is_err(), "{bad}");
    }
}

#[test]
fn ring_single_consumer_at_a_time() {
    let ring = Ring::with_capacity(64).unwrap();
    let c = ring.try_consume().unwrap();
    assert!(ring.try_consume().is_none());
    drop(c);
    assert!(ring.try_consume().is_some());
}

#[test]
fn ring_writer_panic_commits_a_discard_and_counts_it() {
    let ring = Ring::with_capacity(256).unwrap();
    ring.try_write(RecordKind::Span, 1, 4, |b| b.fill(1))
        .unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = ring.try_write(RecordKind::Span, 2, 4, |_| panic!("encoder bug"));
    }));
    assert!(panicked.is_err());
    ring.try_write(RecordKind::Span, 3, 4, |b| b.fill(3))
        .unwrap();
    let c = ring.try_consume().unwrap();
    let batch = c.peek(usize::MAX, usize::MAX);
    let mut tags = HashSet::new();
    c.for_each(&batch, |r| {
        tags.insert(r.tag);
    });
    assert_eq!(
        tags,
        HashSet::from([1, 3]),
        "the consumer is not stuck behind the aborted record"
    );
    let counters = ring.counters();
    assert_eq!((counters.committed, counters.dropped_aborted), (2, 1));
}

/// The long run: `.ci/run` runs it optimised with overflow checks
/// (`--profile stress --include-ignored`): 8M records, a few
/// seconds on two cores.
#[test]
#[ignore = "long; .ci/run runs it optimised, with overflow checks"]
fn ring_long_stress() {
    stress(4, 2_000_000, 8192, 300);
}
