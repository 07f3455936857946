//! The spool's on-disk format: segment names, the file header, the record
//! header, reading one record back, and the recovery scan of a segment.
//!
//! # Format (all integers little-endian)
//!
//! A segment is a file named `{seq:020}.spool` (twenty decimal digits, so
//! names sort like their numbers). It starts with a 16-byte file header:
//!
//! | bytes  | field                                          |
//! |--------|------------------------------------------------|
//! | 0..8   | magic `b"OTLPXSPL"`                            |
//! | 8..12  | format version, u32 = 1                        |
//! | 12..16 | reserved, written 0, ignored by readers        |
//!
//! then records back to back, each a 24-byte header and its body:
//!
//! | bytes  | field                                                  |
//! |--------|--------------------------------------------------------|
//! | 0..4   | record magic `b"OXR1"` (resynchronises after damage)   |
//! | 4..8   | body length, u32, at most [`MAX_BODY_BYTES`]           |
//! | 8..12  | items, u32                                             |
//! | 12     | signal, u8: 0 traces, 1 logs, 2 metrics (see below)    |
//! | 13     | compression, u8                                        |
//! | 14     | state, u8: 0 pending, 1 completed (see below)          |
//! | 15     | pad, written 0                                         |
//! | 16..20 | CRC-32 (IEEE, `crc32fast`) of the body                 |
//! | 20..24 | CRC-32 of bytes 0..14 followed by bytes 15..20         |
//! | 24..   | body                                                   |
//!
//! The state byte is the only byte ever rewritten in place (0 → 1, one
//! positional write, by `complete`), so both checksums exclude it. A
//! one-byte write cannot tear; a state byte that reads as neither 0 nor 1
//! (a bit flip) is taken as pending: sending a record twice beats losing
//! it.
//!
//! Signal numbers are never reused, and a new signal takes the next one
//! without a new format version (metrics took 2 after traces and logs):
//! an older spool holds only numbers this version knows, and a version
//! that does not know a number counts its records where traces are and
//! drops them as damaged, rather than send them as another signal's.
//!
//! # Invariants
//!
//! * A header is trusted only when its magic and header CRC match and its
//!   body length is at most [`MAX_BODY_BYTES`]; only then is its length
//!   used to find the next record. Everything else is damage, skipped by
//!   searching byte by byte for the next trusted header.
//! * Nothing read from disk can make this code panic: lengths are checked
//!   before they are added or used to size a buffer.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// First bytes of every segment file.
const FILE_MAGIC: [u8; 8] = *b"OTLPXSPL";
/// The format this code writes and reads.
const FORMAT_VERSION: u32 = 1;
/// Length of the segment file header.
pub(super) const FILE_HEADER_BYTES: u64 = 16;

/// First bytes of every record header.
const RECORD_MAGIC: [u8; 4] = *b"OXR1";
/// Length of a record header.
pub(super) const RECORD_HEADER_BYTES: usize = 24;
/// Position of the state byte in a record header.
pub(super) const STATE_OFFSET: u64 = 14;
/// State byte of a record still to send.
const STATE_PENDING: u8 = 0;
/// State byte of a record delivered or given up on.
pub(super) const STATE_COMPLETED: u8 = 1;
/// Sanity bound on a record body (1 GiB): a longer length read from disk
/// is damage, and a longer body is refused by `append`.
pub(super) const MAX_BODY_BYTES: u32 = 1 << 30;

/// Read size of the recovery scan (checksumming bodies, resynchronising).
const SCAN_CHUNK_BYTES: usize = 64 * 1024;

/// The file header written at the start of every new segment.
pub(super) fn file_header() -> [u8; FILE_HEADER_BYTES as usize] {
    let mut h = [0u8; FILE_HEADER_BYTES as usize];
    h[..8].copy_from_slice(&FILE_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Whether `h` is a file header this code can read.
pub(super) fn file_header_ok(h: &[u8; FILE_HEADER_BYTES as usize]) -> bool {
    h[..8] == FILE_MAGIC && h[8..12] == FORMAT_VERSION.to_le_bytes()
}

/// The file name of segment `seq`.
pub(super) fn segment_name(seq: u64) -> String {
    format!("{seq:020}.spool")
}

/// The suffix a segment with a damaged file header is renamed with.
pub(super) const CORRUPT_SUFFIX: &str = ".corrupt";

/// The sequence number in a segment's file name, and whether it is a
/// segment set aside as damaged (`….spool.corrupt`); `None` for any other
/// name.
pub(super) fn parse_segment_name(name: &str) -> Option<(u64, bool)> {
    let (stem, corrupt) = match name.strip_suffix(CORRUPT_SUFFIX) {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let digits = stem.strip_suffix(".spool")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, corrupt))
}

/// A decoded, checksum-verified record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordHeader {
    pub(super) body_len: u32,
    pub(super) items: u32,
    pub(super) signal: u8,
    pub(super) compression: u8,
    pub(super) state: u8,
    pub(super) body_crc: u32,
}

/// CRC-32 of a header's bytes other than the state byte and the CRC.
fn header_crc(h: &[u8; RECORD_HEADER_BYTES]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..STATE_OFFSET as usize]);
    crc.update(&h[STATE_OFFSET as usize + 1..20]);
    crc.finalize()
}

fn u32_at(b: &[u8; RECORD_HEADER_BYTES], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl RecordHeader {
    /// The header of a new (pending) record holding `body`.
    pub(super) fn new(signal: u8, compression: u8, items: u32, body_len: u32, body: &[u8]) -> Self {
        Self {
            body_len,
            items,
            signal,
            compression,
            state: STATE_PENDING,
            body_crc: crc32fast::hash(body),
        }
    }

    /// Header plus body length.
    pub(super) fn record_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES as u64 + u64::from(self.body_len)
    }

    pub(super) fn encode(&self) -> [u8; RECORD_HEADER_BYTES] {
        let mut h = [0u8; RECORD_HEADER_BYTES];
        h[..4].copy_from_slice(&RECORD_MAGIC);
        h[4..8].copy_from_slice(&self.body_len.to_le_bytes());
        h[8..12].copy_from_slice(&self.items.to_le_bytes());
        h[12] = self.signal;
        h[13] = self.compression;
        h[14] = self.state;
        h[15] = 0;
        h[16..20].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = header_crc(&h);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The header in `h` if it is trustworthy (magic, header CRC, sane
    /// body length).
    pub(super) fn decode(h: &[u8; RECORD_HEADER_BYTES]) -> Option<Self> {
        if h[..4] != RECORD_MAGIC || u32_at(h, 20) != header_crc(h) {
            return None;
        }
        let body_len = u32_at(h, 4);
        if body_len > MAX_BODY_BYTES {
            return None;
        }
        Some(Self {
            body_len,
            items: u32_at(h, 8),
            signal: h[12],
            compression: h[13],
            state: h[14],
            body_crc: u32_at(h, 16),
        })
    }
}

/// Reads the record of `bytes` bytes (header and body) at `offset` and
/// verifies both checksums.
///
/// # Errors
///
/// The read's error, or `InvalidData` when the record is not what the
/// index says (damaged since it was scanned, or replaced).
pub(super) fn read_record(
    file: &File,
    offset: u64,
    bytes: u64,
) -> io::Result<(RecordHeader, Bytes)> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "spool record damaged");
    let len = usize::try_from(bytes).map_err(|_| invalid())?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    let head = buf
        .first_chunk::<RECORD_HEADER_BYTES>()
        .ok_or_else(invalid)?;
    let header = RecordHeader::decode(head).ok_or_else(invalid)?;
    if header.record_bytes() != bytes
        || crc32fast::hash(&buf[RECORD_HEADER_BYTES..]) != header.body_crc
    {
        return Err(invalid());
    }
    Ok((header, Bytes::from(buf).slice(RECORD_HEADER_BYTES..)))
}

/// An intact pending record found by [`scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) offset: u64,
    /// Header plus body.
    pub(super) bytes: u64,
    pub(super) items: u32,
    pub(super) signal: u8,
}

/// What [`scan`] found in one segment.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Intact pending records, in file order.
    pub(super) pending: Vec<Found>,
    pub(super) corrupt_records: u64,
    /// By signal ([`super::signal_of`]); a damaged header's items are
    /// unknown and counted as none.
    pub(super) corrupt_items: super::BySignal,
    pub(super) corrupt_bytes: u64,
}

impl Scan {
    fn damaged(&mut self, signal: u8, items: u32, bytes: u64) {
        self.corrupt_records += 1;
        self.corrupt_items[super::signal_of(signal).index()] += u64::from(items);
        self.corrupt_bytes += bytes;
    }
}

/// Scans the records of a segment of `len` bytes whose file header was
/// checked. Never fails: a read error counts the unread rest as damage.
pub(super) fn scan(file: &File, len: u64) -> Scan {
    let mut out = Scan::default();
    let mut chunk = vec![0u8; SCAN_CHUNK_BYTES];
    let mut pos = FILE_HEADER_BYTES;
    while pos < len {
        let mut head = [0u8; RECORD_HEADER_BYTES];
        let header = if len - pos >= RECORD_HEADER_BYTES as u64 {
            if file.read_exact_at(&mut head, pos).is_err() {
                out.damaged(0, 0, len - pos);
                break;
            }
            RecordHeader::decode(&head)
        } else {
            None // a header torn at the end of the file
        };
        let Some(header) = header else {
            // Damaged header: skip to the next trustworthy one, as one
            // corrupt region.
            let next = resync(file, pos + 1, len).unwrap_or(len);
            out.damaged(0, 0, next - pos);
            pos = next;
            continue;
        };
        let pending = header.state != STATE_COMPLETED;
        let end = match pos.checked_add(header.record_bytes()) {
            Some(end) if end <= len => end,
            _ => {
                // Body torn at the end of the file; a completed record
                // lost nothing to send, so its items are not counted.
                let items = if pending { header.items } else { 0 };
                out.damaged(header.signal, items, len - pos);
                break;
            }
        };
        if pending {
            let body_at = pos + RECORD_HEADER_BYTES as u64;
            match body_crc(file, body_at, header.body_len, &mut chunk) {
                Ok(crc) if crc == header.body_crc => out.pending.push(Found {
                    offset: pos,
                    bytes: header.record_bytes(),
                    items: header.items,
                    signal: header.signal,
                }),
                // Bad body or unreadable body: its length is trustworthy,
                // so carry on after it.
                _ => out.damaged(header.signal, header.items, header.record_bytes()),
            }
        }
        pos = end;
    }
    out
}

/// CRC-32 of `len` bytes at `offset`, read in chunks.
fn body_crc(file: &File, mut offset: u64, len: u32, chunk: &mut [u8]) -> io::Result<u32> {
    let mut crc = crc32fast::Hasher::new();
    let mut left = len as usize; // u32 fits in usize on every unix target
    while left > 0 {
        let n = left.min(chunk.len());
        let part = &mut chunk[..n];
        file.read_exact_at(part, offset)?;
        crc.update(part);
        left -= n;
        offset += n as u64;
    }
    Ok(crc.finalize())
}

/// The first offset at or after `from` holding a trustworthy record
/// header, or `len` when there is none before the end of the file.
fn resync(file: &File, from: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; SCAN_CHUNK_BYTES + RECORD_HEADER_BYTES];
    let mut start = from;
    while len.saturating_sub(start) >= RECORD_HEADER_BYTES as u64 {
        // At least one header fits; `n` is at most `buf.len()`.
        let n = usize::try_from((len - start).min(buf.len() as u64)).unwrap_or(buf.len());
        let window = &mut buf[..n];
        file.read_exact_at(window, start)?;
        // Headers starting at 0..=n - HEADER lie wholly in the window; the
        // next window starts right after the last of them.
        let last = n - RECORD_HEADER_BYTES;
        for i in 0..=last {
            if window[i..i + 4] == RECORD_MAGIC
                && let Some(h) = window[i..].first_chunk::<RECORD_HEADER_BYTES>()
                && RecordHeader::decode(h).is_some()
            {
                return Ok(start + i as u64);
            }
        }
        start += last as u64 + 1;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_excludes_state_from_crc() {
        let body = b"hello";
        let h = RecordHeader::new(2, 1, 7, 5, body);
        let mut bytes = h.encode();
        assert_eq!(RecordHeader::decode(&bytes), Some(h));
        bytes[STATE_OFFSET as usize] = STATE_COMPLETED;
        let done = RecordHeader::decode(&bytes).unwrap();
        assert_eq!(done.state, STATE_COMPLETED);
        for i in (0..RECORD_HEADER_BYTES).filter(|&i| i != STATE_OFFSET as usize) {
            let mut bad = bytes;
            bad[i] ^= 0x40;
            assert_eq!(RecordHeader::decode(&bad), None, "byte {i}");
        }
    }

    #[test]
    fn oversized_length_is_damage() {
        let mut h = RecordHeader::new(0, 0, 1, 0, b"");
        h.body_len = u32::MAX;
        assert_eq!(RecordHeader::decode(&h.encode()), None);
    }

    #[test]
    fn names() {
        assert_eq!(segment_name(42), "00000000000000000042.spool");
        assert_eq!(parse_segment_name(&segment_name(42)), Some((42, false)));
        assert_eq!(
            parse_segment_name("00000000000000000042.spool.corrupt"),
            Some((42, true))
        );
        for bad in [
            "42.spool",
            "0000000000000000004x.spool",
            "99999999999999999999.spool",
            "00000000000000000042.spool.tmp",
            "LOCK",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
