//! Gzip for line protocol without a match search.
//!
//! A general-purpose deflater spends most of its time looking for repeats. Line protocol's
//! repeats are known to whoever writes it: a set's tags repeat on each of its lines, the batch
//! timestamp ends every line, and a metric's name repeats from the previous set. [`LineGzip`]
//! is told where to look ("this range may equal that earlier one"), checks the bytes, and
//! writes what matches as a deflate back-reference and the rest as literals, in one
//! fixed-Huffman block (RFC 1951 §3.2.6) inside one gzip member (RFC 1952). Hints given to
//! [`LineGzip::copy`] are checked against the bytes, so a wrong one costs compression, never
//! correctness. [`LineGzip::repeat`] is for the repeats the encoder wrote itself from the same
//! bytes (a timestamp and a name, an unchanged tag block): their reach is checked, their bytes
//! only in debug builds (every test), which saves a comparison per line.

/// Deflate's window: the farthest a back-reference may reach.
pub const WINDOW: usize = 32 * 1024;
/// Shortest and longest back-reference.
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;

/// The fixed Huffman code of literal/length symbol `sym` as (bits in LSB-first order, length).
const fn fixed_code(sym: u32) -> (u32, u32) {
    let (code, len) = match sym {
        0..=143 => (0x30 + sym, 8),
        144..=255 => (0x190 + sym - 144, 9),
        256..=279 => (sym - 256, 7),
        _ => (0xc0 + sym - 280, 8),
    };
    (code.reverse_bits() >> (32 - len), len)
}

const fn literal_table() -> [(u16, u8); 288] {
    let mut t = [(0u16, 0u8); 288];
    let mut s = 0;
    while s < 288 {
        let (c, l) = fixed_code(s as u32);
        t[s] = (c as u16, l as u8);
        s += 1;
    }
    t
}

static LITERALS: [(u16, u8); 288] = literal_table();

/// The literal codes of bytes 0..=255 packed as `code | length << 16`, for the literal loop.
static PACKED_LITERALS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut s = 0;
    while s < 256 {
        let (c, l) = fixed_code(s as u32);
        t[s] = c | (l << 16);
        s += 1;
    }
    t
};

/// The 8-bit literal codes of the bytes below 128 (indexed by any byte; 0 above 127).
static ASCII_CODES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut s = 0;
    while s < 128 {
        t[s] = fixed_code(s as u32).0 as u8;
        s += 1;
    }
    t
};

/// Distances 1..=`SHORT_DISTANCES`: the 5-bit code followed by its extra bits, packed as
/// `bits | count << 24` (at most 5 + 9 bits).
const SHORT_DISTANCES: usize = 1024;
static PACKED_DISTANCES: [u32; SHORT_DISTANCES + 1] = {
    let mut t = [0u32; SHORT_DISTANCES + 1];
    let mut d = 1;
    while d <= SHORT_DISTANCES {
        let (sym, extra, extra_len) = distance_symbol(d);
        t[d] = (sym.reverse_bits() >> 27) | (extra << 5) | ((5 + extra_len) << 24);
        d += 1;
    }
    t
};

/// For each match length 3..=258: its length symbol's code followed by its extra bits, packed
/// as `bits | count << 24` (at most 8 + 5 bits).
static PACKED_LENGTHS: [u32; MAX_MATCH + 1] = {
    let mut t = [0u32; MAX_MATCH + 1];
    let mut len = MIN_MATCH;
    while len <= MAX_MATCH {
        let (sym, extra, extra_len) = length_symbol(len);
        let (code, code_len) = fixed_code(sym);
        t[len] = (code | (extra << code_len)) | ((code_len + extra_len) << 24);
        len += 1;
    }
    t
};

/// The 5-bit fixed distance codes, bit-reversed for LSB-first output.
static DISTANCES: [u8; 30] = {
    let mut t = [0u8; 30];
    let mut s = 0;
    while s < 30 {
        t[s] = ((s as u32).reverse_bits() >> 27) as u8;
        s += 1;
    }
    t
};

/// The length symbol for `len` (3..=258) as (symbol, extra bits, extra length).
const fn length_symbol(len: usize) -> (u32, u32, u32) {
    let x = (len - MIN_MATCH) as u32;
    if x < 8 {
        (257 + x, 0, 0)
    } else if x == 255 {
        (285, 0, 0)
    } else {
        let nb = 31 - x.leading_zeros();
        let extra_len = nb - 2;
        (
            257 + 4 * (nb - 1) + ((x >> extra_len) & 3),
            x & ((1 << extra_len) - 1),
            extra_len,
        )
    }
}

/// The length symbol for `len` (3..=258) as (code bits, code length, extra bits, extra length).
fn length_code(len: usize) -> (u32, u32, u32, u32) {
    let (sym, extra, extra_len) = length_symbol(len);
    let (code, code_len) = LITERALS[sym as usize];
    (u32::from(code), u32::from(code_len), extra, extra_len)
}

/// The distance code for `dist` (1..=32768) as (code bits, extra bits, extra length); fixed
/// distance codes are 5 bits.
fn distance_code(dist: usize) -> (u32, u32, u32) {
    let (sym, extra, extra_len) = distance_symbol(dist);
    (u32::from(DISTANCES[sym as usize]), extra, extra_len)
}

/// The distance symbol for `dist` (1..=32768) as (symbol, extra bits, extra length).
const fn distance_symbol(dist: usize) -> (u32, u32, u32) {
    let x = (dist - 1) as u32;
    if x < 4 {
        (x, 0, 0)
    } else {
        let nb = 31 - x.leading_zeros();
        let extra_len = nb - 1;
        (
            2 * nb + ((x >> extra_len) & 1),
            x & ((1 << extra_len) - 1),
            extra_len,
        )
    }
}

/// Length of the common prefix of two slices, eight bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or_default());
        let diff = word(x) ^ word(y);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// A gzip member being written alongside an uncompressed buffer of lines.
///
/// The caller appends to its buffer, then describes the new bytes with [`LineGzip::copy`] and
/// [`LineGzip::literals`], in order; [`LineGzip::finish`] ends the member.
pub struct LineGzip {
    out: Vec<u8>,
    bits: u64,
    nbits: u32,
    /// How much of the caller's buffer is already described.
    done: usize,
}

impl Default for LineGzip {
    fn default() -> Self {
        LineGzip::new(Vec::new())
    }
}

impl LineGzip {
    /// Starts a member, writing into `out` (cleared; its capacity is kept).
    pub fn new(mut out: Vec<u8>) -> LineGzip {
        out.clear();
        // ID1 ID2, CM=deflate, no flags, no mtime, no extra flags, OS unknown.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut z = LineGzip {
            out,
            bits: 0,
            nbits: 0,
            done: 0,
        };
        // BFINAL=1, BTYPE=01 (fixed Huffman).
        z.put(0b011, 3);
        z
    }

    #[inline]
    fn put(&mut self, bits: u32, n: u32) {
        self.bits |= u64::from(bits) << self.nbits;
        self.nbits += n;
        if self.nbits >= 32 {
            self.out
                .extend_from_slice(&(self.bits as u32).to_le_bytes());
            self.bits >>= 32;
            self.nbits -= 32;
        }
    }

    /// Describes `buf[done..end]` as literal bytes.
    pub fn literals(&mut self, buf: &[u8], end: usize) {
        let (mut bits, mut nbits) = (self.bits, self.nbits);
        // Fewer than 32 bits are pending between groups of four bytes. Four ASCII bytes have
        // 8-bit codes: 32 bits in byte order, then one flush; otherwise byte by byte.
        let mut groups = buf[self.done..end].chunks_exact(4);
        for g in &mut groups {
            let g: [u8; 4] = [g[0], g[1], g[2], g[3]];
            if u32::from_le_bytes(g) & 0x8080_8080 == 0 {
                let c = g.map(|b| ASCII_CODES[usize::from(b)]);
                bits |= u64::from(u32::from_le_bytes(c)) << nbits;
                nbits += 32;
            } else {
                for b in g {
                    let e = PACKED_LITERALS[usize::from(b)];
                    bits |= u64::from(e & 0xffff) << nbits;
                    nbits += e >> 16;
                    if nbits >= 32 {
                        self.out.extend_from_slice(&(bits as u32).to_le_bytes());
                        bits >>= 32;
                        nbits -= 32;
                    }
                }
                continue;
            }
            self.out.extend_from_slice(&(bits as u32).to_le_bytes());
            bits >>= 32;
            nbits -= 32;
        }
        // At most three left: 27 bits.
        for &b in groups.remainder() {
            let e = PACKED_LITERALS[usize::from(b)];
            bits |= u64::from(e & 0xffff) << nbits;
            nbits += e >> 16;
        }
        if nbits >= 32 {
            self.out.extend_from_slice(&(bits as u32).to_le_bytes());
            bits >>= 32;
            nbits -= 32;
        }
        (self.bits, self.nbits) = (bits, nbits);
        self.done = end;
    }

    /// Describes the next `len` bytes of `buf` (from `done`) as a back-reference to `dist`
    /// bytes earlier, unchecked: for callers that wrote both copies from the same bytes.
    /// Debug builds check it.
    pub fn repeat(&mut self, buf: &[u8], dist: usize, len: usize) {
        let at = self.done;
        if !(1..=WINDOW.min(at)).contains(&dist) || len < MIN_MATCH {
            // Out of deflate's reach: a caller's bug, but the output stays valid.
            debug_assert!(
                false,
                "repeat out of reach: {dist} back, {len} long, at {at}"
            );
            self.literals(buf, at + len);
            return;
        }
        debug_assert!(
            buf[at - dist..at - dist + len] == buf[at..at + len],
            "wrong repeat: {dist} back, {len} long, at {at}"
        );
        self.back_reference(dist, len);
        self.done = at + len;
    }

    /// Describes `buf[done..end]`, using as much of it as equals the bytes at `from` (an earlier
    /// position) as a back-reference and literals for the rest.
    pub fn copy(&mut self, buf: &[u8], from: usize, end: usize) {
        let at = self.done;
        let dist = at.wrapping_sub(from);
        if from < at && dist <= WINDOW {
            let want = &buf[at..end];
            // Usually the whole range repeats: one memcmp decides.
            let len = match buf.get(from..from + want.len()) {
                Some(src) if src == want => want.len(),
                _ => common_prefix(&buf[from..], want),
            };
            if len >= MIN_MATCH {
                self.back_reference(dist, len);
                self.done = at + len;
            }
        }
        self.literals(buf, end);
    }

    /// Describes `buf[done..end]`, a new version of the earlier `buf[from..from_end]` (a tag
    /// block with some values changed): the longest common prefix and then the longest common
    /// suffix of what is left as back-references, the middle as literals.
    pub fn copy_ends(&mut self, buf: &[u8], from: usize, from_end: usize, end: usize) {
        let at = self.done;
        if from >= from_end || from_end > at || at - from > WINDOW {
            self.literals(buf, end);
            return;
        }
        let (old, new) = (&buf[from..from_end], &buf[at..end]);
        let prefix = common_prefix(old, new);
        let room = old.len().min(new.len()) - prefix;
        let suffix = old[old.len() - room..]
            .iter()
            .rev()
            .zip(new[new.len() - room..].iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        if prefix >= MIN_MATCH {
            self.back_reference(at - from, prefix);
            self.done = at + prefix;
        }
        if suffix >= MIN_MATCH && end - from_end <= WINDOW {
            self.literals(buf, end - suffix);
            self.back_reference(end - from_end, suffix);
            self.done = end;
        } else {
            self.literals(buf, end);
        }
    }

    fn back_reference(&mut self, dist: usize, mut len: usize) {
        if len <= MAX_MATCH && dist <= SHORT_DISTANCES {
            // One put from two tables: at most 13 length bits and 14 distance bits.
            let l = PACKED_LENGTHS[len];
            let d = PACKED_DISTANCES[dist];
            let lbits = l >> 24;
            self.put(
                (l & 0xff_ffff) | ((d & 0xff_ffff) << lbits),
                lbits + (d >> 24),
            );
            return;
        }
        let (dcode, dextra, dextra_len) = distance_code(dist);
        if len <= MAX_MATCH {
            // One put: at most 13 length bits and 18 distance bits.
            let l = PACKED_LENGTHS[len];
            let lbits = l >> 24;
            self.put(
                (l & 0xff_ffff) | ((dcode | (dextra << 5)) << lbits),
                lbits + 5 + dextra_len,
            );
            return;
        }
        while len > 0 {
            let mut take = len.min(MAX_MATCH);
            if len - take > 0 && len - take < MIN_MATCH {
                take = len - MIN_MATCH;
            }
            let (lcode, lcode_len, lextra, lextra_len) = length_code(take);
            self.put(lcode | (lextra << lcode_len), lcode_len + lextra_len);
            self.put(dcode | (dextra << 5), 5 + dextra_len);
            len -= take;
        }
    }

    /// Ends the member: any undescribed bytes of `buf` as literals, the end-of-block symbol,
    /// then the CRC-32 and size of `buf`. Returns the gzip bytes.
    pub fn finish(mut self, buf: &[u8]) -> Vec<u8> {
        self.literals(buf, buf.len());
        let (code, len) = LITERALS[256];
        self.put(u32::from(code), u32::from(len));
        let tail = self.bits.to_le_bytes();
        self.out
            .extend_from_slice(&tail[..self.nbits.div_ceil(8) as usize]);
        let mut crc = flate2::Crc::new();
        crc.update(buf);
        self.out.extend_from_slice(&crc.sum().to_le_bytes());
        self.out
            .extend_from_slice(&(buf.len() as u32).to_le_bytes());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn codes_match_rfc1951() {
        // Lengths: 3 → 257, 10 → 264, 11 → 265 +0, 12 → 265 +1, 227 → 284 +0, 257 → 284 +30.
        let sym = |len| {
            let (code, n, extra, extra_len) = length_code(len);
            let s = (257..286)
                .find(|s| LITERALS[*s as usize] == (code as u16, n as u8))
                .expect("a length symbol");
            (s, extra, extra_len)
        };
        assert_eq!(sym(3), (257, 0, 0));
        assert_eq!(sym(10), (264, 0, 0));
        assert_eq!(sym(11), (265, 0, 1));
        assert_eq!(sym(12), (265, 1, 1));
        assert_eq!(sym(227), (284, 0, 5));
        assert_eq!(sym(257), (284, 30, 5));
        assert_eq!(sym(258), (285, 0, 0));
        let dist = |d| {
            let (code, extra, extra_len) = distance_code(d);
            (code.reverse_bits() >> 27, extra, extra_len)
        };
        assert_eq!(dist(1), (0, 0, 0));
        assert_eq!(dist(4), (3, 0, 0));
        assert_eq!(dist(5), (4, 0, 1));
        assert_eq!(dist(8), (5, 1, 1));
        assert_eq!(dist(24577), (29, 0, 13));
        assert_eq!(dist(32768), (29, 8191, 13));
        for (d, &p) in PACKED_DISTANCES.iter().enumerate().skip(1) {
            let (code, extra, extra_len) = distance_code(d);
            assert_eq!(
                (p & 0xff_ffff, p >> 24),
                (code | (extra << 5), 5 + extra_len)
            );
        }
        for (len, &p) in PACKED_LENGTHS.iter().enumerate().skip(MIN_MATCH) {
            let (code, n, extra, extra_len) = length_code(len);
            assert_eq!(
                (p & 0xff_ffff, p >> 24),
                (code | (extra << n), n + extra_len)
            );
        }
        for b in 0..128 {
            assert_eq!(u16::from(ASCII_CODES[b]), LITERALS[b].0);
            assert_eq!(LITERALS[b].1, 8);
        }
    }

    #[test]
    fn round_trips_with_hints_right_and_wrong() {
        let mut buf = Vec::new();
        let mut z = LineGzip::new(Vec::new());
        let head = b",cluster_name=default,nodename=n1,type=node value=";
        // (line start, name end, timestamp start) of the last two lines.
        let mut prev = [(usize::MAX, usize::MAX, usize::MAX); 2];
        for i in 0..2000u32 {
            let start = buf.len();
            buf.extend_from_slice(if i % 2 == 0 { b"cpu/usage" } else { b"uptime" });
            let name_end = buf.len();
            buf.extend_from_slice(head);
            let values = buf.len();
            buf.extend_from_slice(format!("{}i", i * 7919).as_bytes());
            let ts = buf.len();
            buf.extend_from_slice(b" 1700000000000000000\n");
            // Right hints (the same name two lines back, the previous line's tags and
            // timestamp), then wrong ones: arbitrary, too far back for the window, and not
            // earlier at all.
            z.copy(&buf, prev[0].0, name_end);
            z.copy(&buf, prev[1].1, values);
            z.copy(&buf, (i as usize * 31) % (start + 1), values + 1);
            z.copy(&buf, values.saturating_sub(40_000), values + 2);
            z.copy(&buf, values + 2, ts);
            z.copy(&buf, prev[1].2, buf.len());
            prev = [prev[1], (start, name_end, ts)];
        }
        // A run: one literal, then an overlapping back-reference at distance 1, cut into
        // several (at most 258 bytes each).
        let run = buf.len();
        buf.extend_from_slice(&[b'x'; 1000]);
        z.literals(&buf, run + 1);
        z.copy(&buf, run, buf.len());
        let gz = z.finish(&buf);
        assert_eq!(gunzip(&gz), buf);
        assert!(gz.len() * 5 < buf.len(), "{} of {}", gz.len(), buf.len());
    }

    #[test]
    fn repeats_and_changed_blocks_round_trip() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..300 {
            let mut buf = Vec::new();
            let mut z = LineGzip::new(Vec::new());
            // A "block" that changes in random places now and then, written again and again
            // with random bytes between; described with repeat, copy_ends and literals.
            let mut block: Vec<u8> = (0..rng.random_range(0..400))
                .map(|_| rng.random_range(b'a'..=b'e'))
                .collect();
            let mut last: Option<(usize, usize)> = None;
            for _ in 0..rng.random_range(1..60) {
                let changed = rng.random_bool(0.3);
                if changed {
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(0..=block.len());
                        let cut = rng.random_range(0..=(block.len() - i).min(20));
                        let add: Vec<u8> =
                            (0..rng.random_range(0..20)).map(|_| rng.random()).collect();
                        block.splice(i..i + cut, add);
                    }
                }
                let at = buf.len();
                buf.extend_from_slice(&block);
                match last {
                    Some((from, len)) if !changed && len >= MIN_MATCH && at - from <= WINDOW => {
                        z.repeat(&buf, at - from, len)
                    }
                    Some((from, len)) => z.copy_ends(&buf, from, from + len, buf.len()),
                    None => z.literals(&buf, buf.len()),
                }
                last = Some((at, block.len()));
                let far = rng.random_bool(0.05);
                let gap = rng.random_range(0..if far { 40_000 } else { 30 });
                buf.extend((0..gap).map(|_| rng.random::<u8>()));
                z.literals(&buf, buf.len());
            }
            assert_eq!(gunzip(&z.finish(&buf)), buf);
        }
    }

    #[test]
    fn literals_of_any_bytes_in_any_pieces_round_trip() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..200 {
            let mut buf = Vec::new();
            let mut z = LineGzip::new(Vec::new());
            for _ in 0..rng.random_range(0..50) {
                let ascii = rng.random_bool(0.7);
                let n = rng.random_range(0..40);
                buf.extend((0..n).map(|_| {
                    let b: u8 = rng.random();
                    if ascii { b & 0x7f } else { b }
                }));
                z.literals(&buf, buf.len());
            }
            assert_eq!(gunzip(&z.finish(&buf)), buf);
        }
    }

    #[test]
    fn every_length_and_empty_input_round_trip() {
        assert_eq!(gunzip(&LineGzip::new(Vec::new()).finish(b"")), b"");
        let pattern: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut buf = Vec::new();
        let mut z = LineGzip::new(Vec::new());
        for len in 1..600 {
            let from = buf.len();
            buf.extend_from_slice(&pattern[..len]);
            z.literals(&buf, buf.len());
            buf.extend_from_slice(&pattern[..len]);
            z.copy(&buf, from, buf.len());
        }
        assert_eq!(gunzip(&z.finish(&buf)), buf);
    }
}
