//! Compression of framed requests, done by the worker that framed them so
//! the I/O runtime only moves bytes.
//!
//! A [`Compressor`] keeps its codec state (deflate window, zstd context)
//! across requests: after the first request it allocates nothing but the
//! output buffer it is handed. gzip is written as RFC 1952 around a raw
//! deflate stream, so the same `flate2::Compress` is reset and reused
//! instead of building a new encoder (and its ~300 KiB of state) per
//! request.

use crate::config::Compression;

/// Compresses request bodies with one algorithm, reusing its state.
pub(crate) struct Compressor {
    codec: Codec,
}

enum Codec {
    None,
    Gzip(flate2::Compress),
    Zstd(zstd::bulk::Compressor<'static>),
}

/// gzip member header: magic, deflate, no flags, no mtime, no extra flags,
/// OS "unknown" (RFC 1952 §2.3).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Compressor {
    /// A compressor for `compression` at `level` (gzip 0-9, zstd 1-22;
    /// `None` takes the default level).
    ///
    /// # Errors
    ///
    /// A message naming the level when the codec refuses it.
    pub(crate) fn new(compression: Compression, level: Option<i32>) -> Result<Self, String> {
        let codec = match compression {
            Compression::None => Codec::None,
            Compression::Gzip => {
                let level = level.unwrap_or(crate::config::GZIP_LEVEL_DEFAULT as i32);
                if !(0..=9).contains(&level) {
                    return Err(format!("gzip level {level} is not in 0..=9"));
                }
                Codec::Gzip(flate2::Compress::new(
                    flate2::Compression::new(level as u32),
                    false,
                ))
            }
            Compression::Zstd => {
                let level = level.unwrap_or(crate::config::ZSTD_LEVEL_DEFAULT);
                if !zstd::compression_level_range().contains(&level) {
                    return Err(format!("zstd level {level} is out of range"));
                }
                Codec::Zstd(
                    zstd::bulk::Compressor::new(level)
                        .map_err(|e| format!("zstd level {level}: {e}"))?,
                )
            }
        };
        Ok(Self { codec })
    }

    /// Whether this compressor changes its input at all.
    pub(crate) fn is_identity(&self) -> bool {
        matches!(self.codec, Codec::None)
    }

    /// Compresses `input` into `out` (cleared first).
    ///
    /// # Errors
    ///
    /// The codec's error, which for valid state means memory ran out; the
    /// caller counts the batch as failed.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        match &mut self.codec {
            Codec::None => out.extend_from_slice(input),
            Codec::Gzip(deflate) => {
                // Deflate's worst case is the input plus 5 bytes per 16 KiB
                // block; header and trailer add 18.
                out.reserve(input.len() + input.len() / 16_384 * 5 + 64);
                out.extend_from_slice(&GZIP_HEADER);
                deflate.reset();
                loop {
                    let consumed = deflate.total_in() as usize;
                    let status = deflate
                        .compress_vec(&input[consumed..], out, flate2::FlushCompress::Finish)
                        .map_err(|e| format!("gzip: {e}"))?;
                    if status == flate2::Status::StreamEnd {
                        break;
                    }
                    // Out of room despite the bound: grow and go on.
                    out.reserve(out.capacity().max(4096));
                }
                let mut crc = flate2::Crc::new();
                crc.update(input);
                out.extend_from_slice(&crc.sum().to_le_bytes());
                out.extend_from_slice(&(input.len() as u32).to_le_bytes());
            }
            Codec::Zstd(zstd) => {
                out.reserve(zstd::zstd_safe::compress_bound(input.len()));
                zstd.compress_to_buffer(input, out)
                    .map_err(|e| format!("zstd: {e}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        // Repetitive like OTLP spans, with some noise.
        let mut v = Vec::new();
        for i in 0..20_000u32 {
            v.extend_from_slice(b"http.route/api/v1/orders/");
            v.extend_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
        }
        v
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    #[test]
    fn gzip_round_trips_and_reuses_state() {
        let mut c = Compressor::new(Compression::Gzip, None).unwrap();
        let mut out = Vec::new();
        for input in [sample(), Vec::new(), b"x".to_vec(), sample()] {
            c.compress(&input, &mut out).unwrap();
            assert_eq!(gunzip(&out), input);
        }
    }

    #[test]
    fn gzip_of_incompressible_input_grows_and_round_trips() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let input: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut c = Compressor::new(Compression::Gzip, Some(9)).unwrap();
        let mut out = Vec::new();
        c.compress(&input, &mut out).unwrap();
        assert_eq!(gunzip(&out), input);
    }

    #[test]
    fn zstd_round_trips_and_reuses_state() {
        let mut c = Compressor::new(Compression::Zstd, None).unwrap();
        let mut out = Vec::new();
        for input in [sample(), Vec::new(), sample()] {
            c.compress(&input, &mut out).unwrap();
            assert_eq!(zstd::decode_all(&out[..]).unwrap(), input);
            assert!(input.is_empty() || out.len() < input.len() / 2);
        }
    }

    #[test]
    fn bad_levels_are_errors_naming_the_level() {
        assert!(
            Compressor::new(Compression::Gzip, Some(10))
                .err()
                .unwrap()
                .contains("10")
        );
        assert!(Compressor::new(Compression::Zstd, Some(99)).is_err());
        assert!(
            Compressor::new(Compression::None, None)
                .unwrap()
                .is_identity()
        );
    }
}
