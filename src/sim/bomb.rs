//! A gzip bomb for [`super::KubeletFault::GzipBomb`]: a valid gzip stream of zeros, about a
//! thousand times smaller on the wire than inflated, built without compressing gigabytes.
//!
//! One MiB of zeros is deflated twice with a sync flush in between. The second segment only
//! refers back into a window of zeros, so it can be repeated any number of times; a final empty
//! block and the gzip trailer (CRC-32 combined per MiB, size mod 2^32) close the stream.

use std::sync::OnceLock;

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress};

const MIB: usize = 1 << 20;

/// The pieces every bomb is assembled from.
struct Segments {
    /// Gzip header and the first MiB.
    first: Bytes,
    /// One more MiB, repeatable.
    repeat: Bytes,
    /// The final (empty) block.
    last: Bytes,
    /// CRC-32 of one MiB of zeros.
    crc: Crc,
}

fn deflate(c: &mut Compress, input: &[u8], flush: FlushCompress) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let before = c.total_in();
        // Only a buffer error (no progress) is possible here, and the loop handles it.
        let _ = c.compress_vec(&input[consumed..], &mut out, flush);
        consumed += usize::try_from(c.total_in() - before).unwrap_or(0);
        if consumed == input.len() && out.capacity() - out.len() >= 1024 {
            return out;
        }
    }
}

fn segments() -> &'static Segments {
    static SEGMENTS: OnceLock<Segments> = OnceLock::new();
    SEGMENTS.get_or_init(|| {
        let zeros = vec![0u8; MIB];
        let mut c = Compress::new(Compression::best(), false);
        let mut first = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];
        first.extend(deflate(&mut c, &zeros, FlushCompress::Sync));
        let repeat = deflate(&mut c, &zeros, FlushCompress::Sync);
        let last = deflate(&mut c, &[], FlushCompress::Finish);
        let mut crc = Crc::new();
        crc.update(&zeros);
        Segments {
            first: first.into(),
            repeat: repeat.into(),
            last: last.into(),
            crc,
        }
    })
}

/// The chunks of a gzip stream that inflates to `inflated` zero bytes, rounded up to whole
/// MiB (at least one). Lazy: a client that stops reading costs nothing more.
pub fn chunks(inflated: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    let s = segments();
    let mibs = inflated.div_ceil(MIB as u64).max(1);
    let mut crc = Crc::new();
    let mut trailer = Vec::with_capacity(8);
    // Combining is cheap (no data is hashed again), so the trailer is ready up front.
    for _ in 0..mibs {
        crc.combine(&s.crc);
    }
    trailer.extend(crc.sum().to_le_bytes());
    trailer.extend(((mibs * MIB as u64) as u32).to_le_bytes());
    let mut tail = s.last.to_vec();
    tail.extend(trailer);
    std::iter::once(s.first.clone())
        .chain((1..mibs).map(|_| s.repeat.clone()))
        .chain(std::iter::once(Bytes::from(tail)))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_small_bomb_inflates_exactly_and_checks_out() {
        let body: Vec<u8> = chunks(3 * MIB as u64).flatten().collect();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("valid gzip, CRC and size included");
        assert_eq!(out.len(), 3 * MIB);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_big_bomb_is_small_on_the_wire() {
        let wire: usize = chunks(4 << 30).map(|c| c.len()).sum();
        assert!(wire < 8 * MIB, "{wire} bytes for 4 GiB");
        // Its start inflates to zeros like the whole would.
        let body: Vec<u8> = chunks(4 << 30).take(3).flatten().collect();
        let mut out = vec![0u8; 2 * MIB];
        flate2::read::GzDecoder::new(&body[..])
            .read_exact(&mut out)
            .expect("inflates");
        assert!(out.iter().all(|&b| b == 0));
    }
}
