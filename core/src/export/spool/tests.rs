//! Unit tests of the spool: ordering, restart, locking, the size bound,
//! and recovery from torn and damaged files (including a property test).

use super::segment::{CORRUPT_SUFFIX, parse_segment_name};
use super::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// A unique scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        // Relaxed: the counter only has to hand out distinct numbers.
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("otlpx-spool-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn settings(&self, max_bytes: u64, drop_oldest: bool) -> SpoolSettings {
        SpoolSettings {
            dir: self.0.clone(),
            max_bytes,
            drop_oldest,
        }
    }

    /// Segment files (not set aside), oldest first.
    fn segments(&self) -> Vec<PathBuf> {
        let mut found: Vec<_> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                matches!(parse_segment_name(name), Some((_, false)))
            })
            .collect();
        found.sort();
        found
    }

    fn segment_bytes_on_disk(&self) -> u64 {
        self.segments()
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A body that says which record it is: `i` then a pattern without the
/// record magic in it.
fn body(i: usize, len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
    let tag = (i as u64).to_le_bytes();
    let n = tag.len().min(len);
    b[..n].copy_from_slice(&tag[..n]);
    b
}

fn take(spool: &Spool) -> Record {
    match spool.claim() {
        Claimed::Record(r) => r,
        other => panic!("expected a record, got {other:?}"),
    }
}

/// Claims until Empty; panics on Lost.
fn drain(spool: &Spool) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        match spool.claim() {
            Claimed::Record(r) => out.push(r),
            Claimed::Empty => return out,
            Claimed::Lost { items, .. } => panic!("lost a record of {items} items"),
        }
    }
}

fn flip(path: &Path, at: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[b[0] ^ 0x5A], at).unwrap();
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

const REC: u64 = RECORD_HEADER_BYTES as u64;

#[test]
fn append_claim_complete_in_order() {
    let scratch = Scratch::new("order");
    // 128 KiB segments: 20 records of 20 KB take four.
    let (spool, recovery) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    assert_eq!(recovery, Recovery::default());
    let bodies: Vec<_> = (0..20).map(|i| body(i, 20_000)).collect();
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(spool.append(1, 2, i as u32 + 1, b).unwrap().deleted, 0);
    }
    assert_eq!(spool.pending(), (20, (1..=20).sum()));
    assert_eq!(scratch.segments().len(), 4);
    assert_eq!(spool.disk_bytes(), scratch.segment_bytes_on_disk());

    let records = drain(&spool);
    assert_eq!(records.len(), 20);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.body, bodies[i]);
        assert_eq!((r.signal, r.compression, r.items), (1, 2, i as u32 + 1));
    }
    assert!(matches!(spool.claim(), Claimed::Empty));
    assert_eq!(spool.pending(), (20, (1..=20).sum()), "claimed still count");

    for r in &records {
        spool.complete(r.id).unwrap();
        spool.complete(r.id).unwrap(); // twice: no effect
    }
    assert_eq!(spool.pending(), (0, 0));
    assert_eq!(scratch.segments().len(), 1, "only the active segment stays");
    assert_eq!(spool.disk_bytes(), scratch.segment_bytes_on_disk());
    spool.sync().unwrap();
}

#[test]
fn a_rotation_leaves_the_sync_to_the_caller() {
    let scratch = Scratch::new("sync-due");
    // 64 KiB segments: one 40 KB record each.
    let (spool, _) = Spool::open(&scratch.settings(512 * 1024, true)).unwrap();
    let first = spool.append(0, 0, 1, &body(0, 40_000)).unwrap();
    assert!(!first.sync_due, "no rotation: nothing to sync");
    // Rotating away from a segment with a record in it: that segment is
    // left for `sync`, not synced inside `append`.
    let second = spool.append(0, 0, 1, &body(1, 40_000)).unwrap();
    assert!(second.sync_due);
    assert_eq!(spool.lock().unsynced.len(), 1);
    spool.sync().unwrap();
    assert!(spool.lock().unsynced.is_empty(), "sync took it");
    let state = spool.lock();
    assert_eq!(
        state.dir_synced, state.dir_changes,
        "the new segment's name too"
    );
    drop(state);
    // A segment whose records were all completed is deleted at rotation:
    // nothing to sync.
    for r in drain(&spool) {
        spool.complete(r.id).unwrap();
    }
    let third = spool.append(0, 0, 1, &body(2, 40_000)).unwrap();
    assert!(!third.sync_due);
    assert!(spool.lock().unsynced.is_empty());
    assert_eq!(scratch.segments().len(), 1);
    assert_eq!(take(&spool).body, body(2, 40_000));
}

#[test]
fn a_large_record_goes_alone_into_a_segment() {
    let scratch = Scratch::new("large");
    // 128 KiB segments.
    let (spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    spool.append(0, 0, 1, &body(0, 10)).unwrap();
    spool.append(0, 0, 1, &body(1, 200_000)).unwrap();
    spool.append(0, 0, 1, &body(2, 10)).unwrap();
    let sizes: Vec<_> = scratch
        .segments()
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    let small = FILE_HEADER_BYTES + REC + 10;
    assert_eq!(sizes, [small, FILE_HEADER_BYTES + REC + 200_000, small]);
    let got: Vec<_> = drain(&spool).iter().map(|r| r.body.len()).collect();
    assert_eq!(got, [10, 200_000, 10]);
}

#[test]
fn concurrent_appends_and_claims_hand_out_each_record_once() {
    let scratch = Scratch::new("threads");
    let (spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    const N: usize = 400;
    let seen = Mutex::new(vec![0u32; N]);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                spool.append(0, 0, 1, &body(i, 1000)).unwrap();
            }
        });
        for _ in 0..3 {
            s.spawn(|| {
                let mut done = 0;
                while seen.lock().unwrap().contains(&0) {
                    let Claimed::Record(r) = spool.claim() else {
                        std::thread::yield_now();
                        continue;
                    };
                    let i = u64::from_le_bytes(r.body[..8].try_into().unwrap()) as usize;
                    assert_eq!(r.body, body(i, 1000));
                    // Every other claim is given back once first.
                    done += 1;
                    if done % 2 == 0 {
                        spool.release(r.id);
                        continue;
                    }
                    seen.lock().unwrap()[i] += 1;
                    spool.complete(r.id).unwrap();
                }
            });
        }
    });
    assert!(seen.into_inner().unwrap().iter().all(|&n| n == 1));
    assert_eq!(spool.pending(), (0, 0));
    assert_eq!(scratch.segments().len(), 1);
    assert_eq!(spool.disk_bytes(), scratch.segment_bytes_on_disk());
}

#[test]
fn restart_recovers_oldest_first() {
    let scratch = Scratch::new("restart");
    let settings = scratch.settings(1 << 20, false);
    let bodies: Vec<_> = (0..20).map(|i| body(i, 20_000)).collect();
    {
        let (spool, _) = Spool::open(&settings).unwrap();
        for (i, b) in bodies.iter().enumerate() {
            spool.append(0, 0, i as u32, b).unwrap();
        }
        // Six records a segment: completing 0..8 empties the first one.
        for _ in 0..8 {
            let r = take(&spool);
            spool.complete(r.id).unwrap();
        }
        let _claimed_not_completed = take(&spool);
        spool.sync().unwrap();
    }
    let (spool, recovery) = Spool::open(&settings).unwrap();
    assert_eq!(
        recovery,
        Recovery {
            records: 12,
            items: (8..20).sum(),
            items_by_signal: [(8..20).sum(), 0, 0],
            ..Recovery::default()
        }
    );
    assert_eq!(spool.pending(), (12, (8..20).sum()));
    let records = drain(&spool);
    let got: Vec<_> = records.iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(got, bodies[8..]);
    // Three old segments with records plus the new active one.
    assert_eq!(scratch.segments().len(), 4);
    assert_eq!(spool.disk_bytes(), scratch.segment_bytes_on_disk());
}

#[test]
fn release_puts_a_record_back_first() {
    let scratch = Scratch::new("release");
    let (spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    for i in 0..3 {
        spool.append(0, 0, 1, &body(i, 100)).unwrap();
    }
    let a = take(&spool);
    let b = take(&spool);
    spool.release(a.id);
    spool.release(a.id); // not claimed any more: ignored
    assert_eq!(take(&spool).id, a.id);
    spool.release(b.id);
    assert_eq!(take(&spool).body, b.body);
    assert_eq!(take(&spool).body, body(2, 100));
    assert!(matches!(spool.claim(), Claimed::Empty));
    spool.release(RecordId {
        segment: 999,
        offset: 0,
    });
    assert_eq!(spool.pending(), (3, 3));
}

#[test]
fn a_second_open_is_refused_while_the_first_lives() {
    let scratch = Scratch::new("lock");
    let settings = scratch.settings(1 << 20, false);
    let (spool, _) = Spool::open(&settings).unwrap();
    match Spool::open(&settings) {
        Err(err @ SpoolError::Locked { .. }) => {
            let pid = format!("pid {}", std::process::id());
            assert!(err.to_string().contains(&pid), "{err}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(spool);
    let (_spool, _) = Spool::open(&settings).unwrap();
}

/// Three records of 100-byte bodies with 1, 2, 3 items in one segment.
fn three_records(scratch: &Scratch) -> PathBuf {
    let (spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    for i in 0..3 {
        spool.append(0, 0, i as u32 + 1, &body(i, 100)).unwrap();
    }
    scratch.segments().pop().unwrap()
}

/// Offset of record `i` of [`three_records`].
fn at(i: u64) -> u64 {
    FILE_HEADER_BYTES + i * (REC + 100)
}

fn recovered_bodies(scratch: &Scratch) -> (Recovery, Vec<Vec<u8>>) {
    let (spool, recovery) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    let bodies = drain(&spool).iter().map(|r| r.body.to_vec()).collect();
    (recovery, bodies)
}

#[test]
fn torn_tail_header() {
    let scratch = Scratch::new("torn-header");
    let path = three_records(&scratch);
    truncate(&path, at(2) + 10);
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!(
        recovery,
        Recovery {
            records: 2,
            items: 3,
            items_by_signal: [3, 0, 0],
            corrupt_records: 1,
            corrupt_items: 0,
            corrupt_items_by_signal: [0, 0, 0],
            corrupt_bytes: 10,
        }
    );
    assert_eq!(bodies, [body(0, 100), body(1, 100)]);
}

#[test]
fn torn_tail_body() {
    let scratch = Scratch::new("torn-body");
    let path = three_records(&scratch);
    truncate(&path, at(2) + REC + 50);
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!(
        recovery,
        Recovery {
            records: 2,
            items: 3,
            items_by_signal: [3, 0, 0],
            corrupt_records: 1,
            corrupt_items: 3,
            corrupt_items_by_signal: [3, 0, 0],
            corrupt_bytes: REC + 50,
        }
    );
    assert_eq!(bodies, [body(0, 100), body(1, 100)]);
}

#[test]
fn damaged_body_in_the_middle() {
    let scratch = Scratch::new("bad-body");
    let path = three_records(&scratch);
    flip(&path, at(1) + REC + 42);
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!(
        recovery,
        Recovery {
            records: 2,
            items: 4,
            items_by_signal: [4, 0, 0],
            corrupt_records: 1,
            corrupt_items: 2,
            corrupt_items_by_signal: [2, 0, 0],
            corrupt_bytes: REC + 100,
        }
    );
    assert_eq!(bodies, [body(0, 100), body(2, 100)]);
}

#[test]
fn garbage_header_in_the_middle_is_resynced() {
    let scratch = Scratch::new("bad-header");
    let path = three_records(&scratch);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xAA; RECORD_HEADER_BYTES], at(1))
        .unwrap();
    drop(file);
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!(
        recovery,
        Recovery {
            records: 2,
            items: 4,
            items_by_signal: [4, 0, 0],
            corrupt_records: 1,
            corrupt_items: 0,
            corrupt_items_by_signal: [0, 0, 0],
            corrupt_bytes: REC + 100,
        }
    );
    assert_eq!(bodies, [body(0, 100), body(2, 100)]);
}

#[test]
fn a_fully_damaged_segment_is_deleted() {
    let scratch = Scratch::new("all-bad");
    let path = three_records(&scratch);
    truncate(&path, at(0) + 5);
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!((recovery.records, recovery.corrupt_records), (0, 1));
    assert!(bodies.is_empty());
    assert!(!path.exists());
}

#[test]
fn a_damaged_file_header_sets_the_file_aside() {
    let scratch = Scratch::new("file-header");
    let path = three_records(&scratch);
    let len = fs::metadata(&path).unwrap().len();
    flip(&path, 3);
    fs::write(scratch.0.join("notes.txt"), "not a segment").unwrap();
    fs::write(scratch.0.join("42.spool"), "not a segment either").unwrap();
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!(
        recovery,
        Recovery {
            corrupt_records: 1,
            corrupt_bytes: len,
            ..Recovery::default()
        }
    );
    assert!(bodies.is_empty());
    let mut aside = path.clone().into_os_string();
    aside.push(CORRUPT_SUFFIX);
    assert!(Path::new(&aside).exists());
    assert!(scratch.0.join("notes.txt").exists());
    assert!(scratch.0.join("42.spool").exists());
    // The new active segment numbers past the one set aside.
    let (_spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    let newest = scratch.segments().pop().unwrap();
    assert!(newest > path);
}

#[test]
fn completed_records_stay_completed_across_restarts() {
    let scratch = Scratch::new("completed");
    let path = three_records(&scratch);
    {
        let (spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
        let r = take(&spool);
        spool.complete(r.id).unwrap();
    }
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!((recovery.records, recovery.corrupt_records), (2, 0));
    assert_eq!(bodies, [body(1, 100), body(2, 100)]);
    assert!(path.exists());
}

#[test]
fn a_record_damaged_after_open_is_lost() {
    let scratch = Scratch::new("lost");
    let settings = scratch.settings(1 << 20, false);
    {
        let (spool, _) = Spool::open(&settings).unwrap();
        spool.append(0, 0, 5, &body(0, 100)).unwrap();
        spool.append(0, 0, 6, &body(1, 100)).unwrap();
        flip(&scratch.segments()[0], at(0) + REC + 1);
        assert!(matches!(spool.claim(), Claimed::Lost { items: 5, .. }));
        assert_eq!(spool.pending(), (1, 6));
        assert_eq!(take(&spool).body, body(1, 100));
    }
    // The lost record was marked completed: not counted again.
    let (recovery, bodies) = recovered_bodies(&scratch);
    assert_eq!((recovery.records, recovery.corrupt_records), (1, 0));
    assert_eq!(bodies, [body(1, 100)]);
}

#[test]
fn drop_oldest_deletes_whole_old_segments() {
    let scratch = Scratch::new("drop-oldest");
    let max = 512 * 1024; // 64 KiB segments, two 30 KB records each
    let (spool, _) = Spool::open(&scratch.settings(max, true)).unwrap();
    spool.append(0, 0, 1000, &body(1000, 30_000)).unwrap();
    let held = take(&spool); // its segment may not be dropped
    let mut dropped = 0;
    for i in 0..40 {
        dropped += spool
            .append(0, 0, i + 1, &body(i as usize, 30_000))
            .unwrap()
            .deleted;
        assert!(spool.disk_bytes() <= max);
        assert_eq!(spool.disk_bytes(), scratch.segment_bytes_on_disk());
    }
    assert!(dropped > 0);
    spool.complete(held.id).unwrap();
    let records = drain(&spool);
    // Record 0 shared the held segment, so it survived; the rest that
    // survived are the newest, in order.
    assert_eq!(records[0].body, body(0, 30_000));
    let first = records[1].items as usize - 1;
    for (k, r) in records[1..].iter().enumerate() {
        assert_eq!(r.body, body(first + k, 30_000));
    }
    let kept: u64 = records.iter().map(|r| u64::from(r.items)).sum();
    assert_eq!(kept + dropped, (1..=40).sum());
}

#[test]
fn refuse_when_full_without_drop_oldest() {
    let scratch = Scratch::new("full");
    let max = 512 * 1024;
    let (spool, _) = Spool::open(&scratch.settings(max, false)).unwrap();
    let mut n = 0;
    let err = loop {
        match spool.append(0, 0, 1, &body(n, 30_000)) {
            Ok(appended) => assert_eq!(appended.deleted, 0),
            Err(err) => break err,
        }
        n += 1;
        assert!(spool.disk_bytes() <= max);
    };
    assert!(matches!(err, SpoolError::Full { max_bytes } if max_bytes == max));
    // Eight segments of two (60,064 bytes each), a ninth of one.
    assert_eq!(n, 17);
    let before = spool.disk_bytes();
    assert!(spool.append(0, 0, 1, &body(n, 30_000)).is_err());
    assert_eq!(spool.disk_bytes(), before);
    assert_eq!(spool.pending(), (17, 17));
    // Completing the first segment's records makes room.
    for _ in 0..2 {
        let r = take(&spool);
        spool.complete(r.id).unwrap();
    }
    spool.append(0, 0, 1, &body(n, 30_000)).unwrap();
    assert_eq!(spool.disk_bytes(), scratch.segment_bytes_on_disk());
}

#[test]
fn a_tiny_spool_keeps_the_newest_record() {
    let scratch = Scratch::new("tiny");
    let (spool, _) = Spool::open(&scratch.settings(1000, true)).unwrap();
    assert!(matches!(
        spool.append(0, 0, 1, &body(0, 2000)),
        Err(SpoolError::Full { .. })
    ));
    assert_eq!(spool.append(0, 0, 7, &body(1, 500)).unwrap().deleted, 0);
    assert_eq!(spool.append(0, 0, 8, &body(2, 500)).unwrap().deleted, 7);
    assert!(spool.disk_bytes() <= 1000);
    assert_eq!(take(&spool).body, body(2, 500));
    assert!(matches!(spool.claim(), Claimed::Empty));
    // A claimed record is not dropped for room.
    assert!(matches!(
        spool.append(0, 0, 9, &body(3, 500)),
        Err(SpoolError::Full { .. })
    ));
}

/// How the property test damages the spool it reopens.
#[derive(Clone, Debug)]
enum Damage {
    /// Cut the newest segment at this fraction (per mille) of its length.
    Truncate(u64),
    /// Overwrite bytes of the segment picked by `pick` at `at` (per
    /// mille of its length).
    Overwrite {
        pick: usize,
        at: u64,
        bytes: Vec<u8>,
    },
    /// Overwrite bytes `at` bytes into the record picked by `pick` (its
    /// header, mostly: where resynchronising is needed).
    OverwriteRecord {
        pick: usize,
        at: u64,
        bytes: Vec<u8>,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0u64..=1000).prop_map(Damage::Truncate),
        (
            any::<usize>(),
            0u64..1000,
            prop::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(pick, at, bytes)| Damage::Overwrite { pick, at, bytes }),
        (
            any::<usize>(),
            0u64..40,
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(pick, at, bytes)| Damage::OverwriteRecord { pick, at, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn recovery_survives_damage(
        records in prop::collection::vec((0usize..12_000, 0u32..50), 1..30),
        damage in damage(),
    ) {
        let scratch = Scratch::new("prop");
        // 512 KiB: 64 KiB segments, several of them.
        let settings = scratch.settings(512 * 1024, false);
        let ids;
        {
            let (spool, _) = Spool::open(&settings).unwrap();
            for (i, &(len, items)) in records.iter().enumerate() {
                spool.append(i as u8, 1, items, &body(i, len)).unwrap();
            }
            // Learn where each record went (claims are not persisted).
            ids = drain(&spool).iter().map(|r| r.id).collect::<Vec<_>>();
        }
        prop_assert_eq!(ids.len(), records.len());
        let files = scratch.segments();
        let seq_of = |p: &Path| {
            parse_segment_name(p.file_name().unwrap().to_str().unwrap()).unwrap().0
        };
        // Records that must survive the damage.
        let mut must = vec![true; records.len()];
        let mut truncated_on_boundary = None;
        let record_range = |i: usize| {
            let start = ids[i].offset;
            start..start + REC + records[i].0 as u64
        };
        match &damage {
            Damage::Truncate(per_mille) => {
                let path = files.last().unwrap();
                let len = fs::metadata(path).unwrap().len();
                let cut = len * per_mille / 1000;
                truncate(path, cut);
                let seq = seq_of(path);
                truncated_on_boundary = Some(
                    cut == 0
                        || cut == FILE_HEADER_BYTES
                        || (0..records.len())
                            .any(|i| ids[i].segment == seq && record_range(i).end == cut),
                );
                for i in 0..records.len() {
                    if ids[i].segment == seq
                        && (cut < FILE_HEADER_BYTES || record_range(i).end > cut)
                    {
                        must[i] = false;
                    }
                }
            }
            Damage::Overwrite { .. } | Damage::OverwriteRecord { .. } => {
                let (path, start, bytes) = match &damage {
                    Damage::Overwrite { pick, at, bytes } => {
                        let path = &files[pick % files.len()];
                        let len = fs::metadata(path).unwrap().len();
                        (path, len * at / 1000, bytes)
                    }
                    Damage::OverwriteRecord { pick, at, bytes } => {
                        let id = ids[pick % ids.len()];
                        let path = files
                            .iter()
                            .find(|p| seq_of(p) == id.segment)
                            .unwrap();
                        (path, id.offset + at, bytes)
                    }
                    Damage::Truncate(_) => unreachable!(),
                };
                let len = fs::metadata(path).unwrap().len();
                let start = start.min(len);
                let end = (start + bytes.len() as u64).min(len);
                let file = OpenOptions::new().write(true).open(path).unwrap();
                file.write_all_at(&bytes[..(end - start) as usize], start).unwrap();
                let seq = seq_of(path);
                for i in 0..records.len() {
                    let r = record_range(i);
                    if ids[i].segment == seq
                        && (start < FILE_HEADER_BYTES || (start < r.end && r.start < end))
                    {
                        must[i] = false;
                    }
                }
            }
        }

        let (spool, recovery) = Spool::open(&settings).unwrap();
        let got = drain(&spool);
        prop_assert_eq!(got.len() as u64, recovery.records);
        prop_assert_eq!(
            got.iter().map(|r| u64::from(r.items)).sum::<u64>(),
            recovery.items
        );
        let appended: u64 = records.iter().map(|&(_, items)| u64::from(items)).sum();
        prop_assert!(recovery.items + recovery.corrupt_items <= appended);
        // Every recovered record is one appended, in order.
        let mut next = 0;
        let mut recovered = vec![false; records.len()];
        for r in &got {
            let i = (next..records.len())
                .find(|&i| r.body == body(i, records[i].0))
                .expect("a recovered body that was appended, in order");
            prop_assert_eq!((r.signal, r.compression, r.items), (i as u8, 1, records[i].1));
            recovered[i] = true;
            next = i + 1;
        }
        for i in 0..records.len() {
            prop_assert!(!must[i] || recovered[i], "record {} not recovered", i);
        }
        if let Some(on_boundary) = truncated_on_boundary {
            // Truncated records cannot read as valid; a cut inside a
            // record is one corrupt region.
            prop_assert_eq!(&recovered, &must);
            let expected = u64::from(!on_boundary);
            prop_assert_eq!(recovery.corrupt_records, expected);
        }
        prop_assert_eq!(spool.disk_bytes(), scratch.segment_bytes_on_disk());
    }
}

/// Each signal's items are counted apart: found at open, deleted to make
/// room, lost when unreadable.
#[test]
fn items_are_counted_by_signal() {
    let scratch = Scratch::new("by-signal");
    {
        let (spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
        spool.append(0, 0, 3, &body(0, 100)).unwrap();
        spool.append(1, 0, 5, &body(1, 100)).unwrap();
        spool.append(1, 0, 7, &body(2, 100)).unwrap();
        spool.append(2, 0, 4, &body(3, 100)).unwrap();
        // A later version's signal counts where traces do.
        spool.append(9, 0, 2, &body(4, 100)).unwrap();
    }
    let (spool, recovery) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    assert_eq!(recovery.items, 21);
    assert_eq!(recovery.items_by_signal, [5, 12, 4]);
    let signals: Vec<u8> = drain(&spool).iter().map(|r| r.signal).collect();
    assert_eq!(signals, [0, 1, 1, 2, 9]);
}

/// A spool written before metrics existed (traces and logs only, signal
/// bytes 0 and 1, the same format version) reads as it did: every record
/// intact, each counted where it was, none as metrics.
#[test]
fn a_spool_from_before_metrics_reads_as_it_did() {
    let scratch = Scratch::new("before-metrics");
    {
        let (spool, _) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
        for i in 0..6usize {
            spool.append((i % 2) as u8, 1, 10, &body(i, 500)).unwrap();
        }
    }
    let (spool, recovery) = Spool::open(&scratch.settings(1 << 20, false)).unwrap();
    assert_eq!((recovery.records, recovery.corrupt_records), (6, 0));
    assert_eq!(recovery.items_by_signal, [30, 30, 0]);
    let read: Vec<(u8, u8, u32)> = drain(&spool)
        .iter()
        .map(|r| (r.signal, r.compression, r.items))
        .collect();
    assert_eq!(
        read,
        (0..6).map(|i| ((i % 2) as u8, 1, 10)).collect::<Vec<_>>()
    );
}

#[test]
fn deleted_items_are_counted_by_signal() {
    let scratch = Scratch::new("deleted-by-signal");
    let (spool, _) = Spool::open(&scratch.settings(1 << 20, true)).unwrap();
    let mut deleted = [0; 3];
    let mut appended = [0; 3];
    for i in 0..64usize {
        let signal = (i % 3) as u8;
        let a = spool.append(signal, 0, 1, &body(i, 40_000)).unwrap();
        appended[signal as usize] += 1;
        assert_eq!(a.deleted, a.deleted_by_signal.iter().sum::<u64>());
        for (d, n) in deleted.iter_mut().zip(a.deleted_by_signal) {
            *d += n;
        }
    }
    assert!(deleted.iter().all(|&d| d > 0), "{deleted:?}");
    let left = drain(&spool);
    for signal in 0..3u8 {
        let kept = left.iter().filter(|r| r.signal == signal).count() as u64;
        assert_eq!(kept + deleted[signal as usize], appended[signal as usize]);
    }
}
