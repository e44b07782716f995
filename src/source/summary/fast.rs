//! The fast path of [`super::decode`]: a hand-written, single-pass parser of the Summary API's
//! JSON into the same [`Summary`] the serde structs give, borrowing names from the input.
//!
//! The contract, checked by `testing::fuzz::summary` (fuzz target and proptests): whenever
//! [`decode`] returns `Some(s)`, `serde_json::from_slice::<Summary>` on the same bytes returns
//! `Ok(t)` with `s == t`. Like serde reading bytes, the parser checks UTF-8 only where serde
//! does: in the strings it keeps (names, timestamps) and in the keys of structs, not in ignored
//! values (serde's `IgnoredAny` skips their strings unchecked), so the body is never validated
//! as a whole (a pass over every byte, mostly ignored ones). Anything unusual returns `None` and
//! the caller falls back to serde, which also words the errors: escapes in keys or kept strings
//! (serde would own them), control characters and escapes in any string, duplicate known
//! fields, wrong types (an array where a struct is expected, which serde would accept,
//! included), `null` names, u64 fields holding signs, fractions, exponents, leading zeros or
//! more than `u64::MAX`, timestamps that [`parse_time`] refuses, a missing `node`, nesting
//! deeper than [`MAX_SKIP_DEPTH`] in an ignored value, trailing bytes, truncation. Ignored
//! values (`psi`, `io`, `swap`, ...) are validated as serde's `IgnoredAny` does.
//!
//! Doing little per byte:
//! - strings and digit runs are scanned eight bytes at a time (SWAR on a `u64`), keys are
//!   compared as a few words ([`Key`]);
//! - shapes: a payload repeats the same objects (every container's `cpu` and `memory`) with
//!   other numbers. The parser remembers the bytes between the values of an object it parsed
//!   member by member (its [`Shape`]); the next object of that kind is parsed by comparing those
//!   pieces (keys, punctuation, whitespace) up to sixteen bytes at a time and parsing only the
//!   values between them. Where a shape stops fitting, parsing goes on member by member from
//!   there.
//!   Bytes equal to pieces of a valid object, with valid values between them, are valid JSON
//!   with the same members, so this validates exactly as the member-by-member path does;
//! - an ignored value is compared whole with an earlier one under the same key ([`Skipped`]),
//!   sixteen bytes at a time; only the numbers and value strings where they differ are parsed
//!   (in the simulator's payloads, a third of the bytes are ignored values: `psi`, `io`, `swap`);
//! - the few timestamps a payload repeats are parsed once.
//!
//! Every read is a checked `get`: no input can panic or read out of bounds.

use std::borrow::Cow;

use super::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NetworkStats, NodeStats, PodReference,
    PodStats, RuntimeStats, Summary, Time, VolumeStats, parse_time,
};

/// How deep the skipper follows arrays and objects inside an ignored value. serde_json itself has
/// no limit there (and 128 for the structs around it); this bound only keeps the skipper's stack
/// (one bit per level) small.
const MAX_SKIP_DEPTH: u32 = 100;

/// How many shapes the parser keeps of each struct, and of ignored values.
const MAX_STRUCT_SHAPES: usize = 4;
const MAX_SKIP_SHAPES: usize = 24;

/// Decodes `body`, or `None` when serde must decide (see the module doc).
pub fn decode(body: &[u8]) -> Option<Summary<'_>> {
    let b = body;
    let mut p = Parser {
        b,
        i: ws(b, 0),
        times: [None; 2],
        shapes: Default::default(),
        skip_shapes: Vec::new(),
    };
    let top: Top = p.parse_struct()?;
    (ws(b, p.i) == b.len()).then_some(Summary {
        node: top.node?,
        pods: top.pods,
    })
}

/// `bytes` as a `str` if they are UTF-8: only the strings kept (names, timestamps) and the keys
/// of structs are checked, as serde checks them; the body as a whole is not (see [`decode`]).
#[inline(always)]
fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// Marks field `bit` as seen; `None` when it already was (serde: "duplicate field").
#[inline(always)]
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    let mask = 1 << bit;
    if *seen & mask != 0 {
        return None;
    }
    *seen |= mask;
    Some(())
}

/// Powers of ten up to 10^8 (one per digit count of [`digits8`]).
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at `i` as a little-endian word; past the end of input, zero bytes.
#[inline(always)]
fn word(b: &[u8], i: usize) -> u64 {
    match b.get(i..i + 8) {
        Some(chunk) => {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            u64::from_le_bytes(w)
        }
        None => word_tail(b, i),
    }
}

#[cold]
fn word_tail(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    for (dst, src) in w.iter_mut().zip(b.get(i..).unwrap_or_default()) {
        *dst = *src;
    }
    u64::from_le_bytes(w)
}

/// Whether `b[i..]` starts with `lit`, compared a few bytes at a time.
#[inline(always)]
fn starts_with(b: &[u8], i: usize, lit: &[u8]) -> bool {
    let n = lit.len();
    let Some(s) = b.get(i..i + n) else {
        return false;
    };
    if n >= 16 {
        // Sixteen bytes at a time (SSE2 on x86-64), the last sixteen overlapping.
        let eq16 = |at: usize| match (s.get(at..at + 16), lit.get(at..at + 16)) {
            (Some(a), Some(b)) => <[u8; 16]>::try_from(a).ok() == <[u8; 16]>::try_from(b).ok(),
            _ => false,
        };
        let mut j = 0;
        while j + 16 < n {
            if !eq16(j) {
                return false;
            }
            j += 16;
        }
        eq16(n - 16)
    } else if n >= 8 {
        word(s, 0) == word(lit, 0) && word(s, n - 8) == word(lit, n - 8)
    } else if n >= 4 {
        let w4 = |x: &[u8], at: usize| x.get(at..at + 4).map(|c| [c[0], c[1], c[2], c[3]]);
        w4(s, 0) == w4(lit, 0) && w4(s, n - 4) == w4(lit, n - 4)
    } else {
        // Up to three bytes: the first, the middle and the last cover them all.
        let at = |x: &[u8], j: usize| x.get(j).copied();
        n == 0
            || (at(s, 0) == at(lit, 0)
                && at(s, n / 2) == at(lit, n / 2)
                && at(s, n - 1) == at(lit, n - 1))
    }
}

/// The index of the first byte from `i` on that is not JSON whitespace (space, tab, newline,
/// carriage return; nothing else), or `b.len()`.
#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if c > b' ' || !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// The index of the closing quote of the string whose contents start at `i`; `None` at a
/// backslash, a control character (< 0x20) or the end of input. Eight bytes at a time.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let w = word(b, i);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // The lowest flagged byte is exact (the classic "has zero / has less" tricks; false
        // positives only appear above a true one). Past the end, zero bytes are flagged.
        let found = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w)
            & HIGH;
        if found != 0 {
            let at = i + (found.trailing_zeros() / 8) as usize;
            return (b.get(at) == Some(&b'"')).then_some(at);
        }
        i += 8;
    }
}

/// How many ASCII digits start the eight bytes at `i` (0 to 8), and their value.
#[inline(always)]
fn digits8(b: &[u8], i: usize) -> (usize, u64) {
    let w = word(b, i);
    // A byte is a digit when its high nibble is 3 both before and after adding 6. Carries only
    // leave a byte that is not a digit, so the lowest flagged byte is exact.
    let high = 0xF0F0_F0F0_F0F0_F0F0;
    let three = ONES * 0x30;
    let not_digit = ((w & high) ^ three) | ((w.wrapping_add(ONES * 6) & high) ^ three);
    let n = (not_digit.trailing_zeros() / 8) as usize;
    if n == 0 {
        return (0, 0);
    }
    // The digits' values, moved to the top so that the bytes below are leading zeros, then
    // combined pairwise (the first digit is the lowest byte, the most significant one).
    let d = w.wrapping_sub(three) << (8 * (8 - n));
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    let d = (d.wrapping_mul(10_000) + (d >> 32)) & 0xFFFF_FFFF;
    (n, d)
}

/// The index just past the run of digits at `i`.
#[inline(always)]
fn digit_run(b: &[u8], mut i: usize) -> usize {
    loop {
        let (n, _) = digits8(b, i);
        i += n;
        if n < 8 {
            return i;
        }
    }
}

/// After a key's closing quote at `i - 1`: the `:` (whitespace around it allowed); the index of
/// the value's first byte.
#[inline(always)]
fn colon(b: &[u8], i: usize) -> Option<usize> {
    let i = if b.get(i) == Some(&b':') {
        i
    } else {
        let i = ws(b, i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i
    };
    Some(ws(b, i + 1))
}

/// The index just past the number starting at `i`:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
#[inline]
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let end = digit_run(b, i);
    // No digits, or a leading zero.
    if end == i || (end > i + 1 && b.get(i) == Some(&b'0')) {
        return None;
    }
    i = end;
    if b.get(i) == Some(&b'.') {
        let end = digit_run(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digit_run(b, i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// The index just past `word` (`true`, `false`, `null`) at `i`.
#[inline(always)]
fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// A key (or any short string), compared as words: its length, its first 8 bytes and, when
/// longer, its last 8 and then bytes 8..16. That identifies any string of up to 24 bytes; the
/// known keys are shorter, so a longer key never equals one of them.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    len: usize,
    first: u64,
    last: u64,
    mid: u64,
}

impl Key {
    /// The key of a known name (at compile time).
    const fn of(s: &[u8]) -> Key {
        /// `n` bytes of `s` from `at`, little-endian.
        const fn word(s: &[u8], at: usize, n: usize) -> u64 {
            let mut w = 0u64;
            let mut j = 0;
            while j < n {
                w |= (s[at + j] as u64) << (8 * j);
                j += 1;
            }
            w
        }
        let len = s.len();
        Key {
            len,
            first: word(s, 0, if len < 8 { len } else { 8 }),
            last: if len > 8 { word(s, len - 8, 8) } else { 0 },
            mid: if len > 16 { word(s, 8, 8) } else { 0 },
        }
    }

    /// The key of the string `b[start..end]`.
    #[inline(always)]
    fn at(b: &[u8], start: usize, end: usize) -> Key {
        let len = end - start;
        let first = word(b, start);
        Key {
            len,
            first: if len < 8 {
                first & ((1 << (8 * len)) - 1)
            } else {
                first
            },
            last: if len > 8 { word(b, end - 8) } else { 0 },
            mid: if len > 16 { word(b, start + 8) } else { 0 },
        }
    }
}

/// The known keys, as [`Key`] constants for `match`.
macro_rules! keys {
    ($($name:ident = $s:literal),* $(,)?) => {
        $(const $name: Key = Key::of($s);)*
    };
}

keys! {
    NODE = b"node", PODS = b"pods", NODE_NAME = b"nodeName",
    SYSTEM_CONTAINERS = b"systemContainers", START_TIME = b"startTime", CPU = b"cpu",
    MEMORY = b"memory", NETWORK = b"network", FS = b"fs", RUNTIME = b"runtime",
    IMAGE_FS = b"imageFs", CONTAINER_FS = b"containerFs", POD_REF = b"podRef",
    CONTAINERS = b"containers", VOLUME = b"volume", EPHEMERAL_STORAGE = b"ephemeral-storage",
    NAME = b"name", NAMESPACE = b"namespace", UID = b"uid", ROOTFS = b"rootfs", LOGS = b"logs",
    TIME = b"time", USAGE_NANO_CORES = b"usageNanoCores",
    USAGE_CORE_NANO_SECONDS = b"usageCoreNanoSeconds", AVAILABLE_BYTES = b"availableBytes",
    USAGE_BYTES = b"usageBytes", WORKING_SET_BYTES = b"workingSetBytes", RSS_BYTES = b"rssBytes",
    PAGE_FAULTS = b"pageFaults", MAJOR_PAGE_FAULTS = b"majorPageFaults", RX_BYTES = b"rxBytes",
    RX_ERRORS = b"rxErrors", TX_BYTES = b"txBytes", TX_ERRORS = b"txErrors",
    CAPACITY_BYTES = b"capacityBytes", USED_BYTES = b"usedBytes", INODES_FREE = b"inodesFree",
    INODES = b"inodes", INODES_USED = b"inodesUsed",
}

/// A struct the parser fills: which members are its fields, and how each one's value parses.
trait Struct<'a>: Default {
    /// Its index in [`Parser::shapes`].
    const KIND: usize;
    /// The field named `key` as a bit for [`once`], or `None` for a member to ignore.
    fn field(key: Key) -> Option<u32>;
    /// Parses the value at `p.i` into field `bit`.
    fn parse(&mut self, p: &mut Parser<'a>, bit: u32) -> Option<()>;
}

/// The number of struct kinds (of [`Struct::KIND`]).
const KINDS: usize = 11;

/// [`Struct::field`] and [`Struct::parse`] from one list of `bit KEY => field: parser`.
macro_rules! fields {
    ($($bit:literal $key:ident => $field:ident: $parse:expr),* $(,)?) => {
        #[inline(always)]
        fn field(key: Key) -> Option<u32> {
            match key {
                $($key => Some($bit),)*
                _ => None,
            }
        }
        #[inline(always)]
        fn parse(&mut self, p: &mut Parser<'a>, bit: u32) -> Option<()> {
            match bit {
                $($bit => self.$field = $parse(p)?,)*
                _ => return None,
            }
            Some(())
        }
    };
}

/// The filesystem fields, shared by [`FsStats`] and [`VolumeStats`] (and then more).
macro_rules! fs_fields {
    ($($more:tt)*) => {
        fields! {
            0 TIME => time: Parser::time,
            1 AVAILABLE_BYTES => available_bytes: Parser::counter,
            2 CAPACITY_BYTES => capacity_bytes: Parser::counter,
            3 USED_BYTES => used_bytes: Parser::counter,
            4 INODES_FREE => inodes_free: Parser::counter,
            5 INODES => inodes: Parser::counter,
            6 INODES_USED => inodes_used: Parser::counter,
            $($more)*
        }
    };
}

/// The top-level object (`node` is required: checked by [`decode`]).
#[derive(Default)]
struct Top<'a> {
    node: Option<NodeStats<'a>>,
    pods: Vec<PodStats<'a>>,
}

impl<'a> Struct<'a> for Top<'a> {
    const KIND: usize = 0;
    fields! {
        0 NODE => node: Parser::some_struct,
        1 PODS => pods: Parser::pods,
    }
}

impl<'a> Struct<'a> for NodeStats<'a> {
    const KIND: usize = 1;
    fields! {
        0 NODE_NAME => node_name: Parser::name,
        1 SYSTEM_CONTAINERS => system_containers: Parser::structs,
        2 START_TIME => start_time: Parser::time,
        3 CPU => cpu: Parser::opt_struct,
        4 MEMORY => memory: Parser::opt_struct,
        5 NETWORK => network: Parser::opt_struct,
        6 FS => fs: Parser::opt_struct,
        7 RUNTIME => runtime: Parser::opt_struct,
    }
}

impl<'a> Struct<'a> for RuntimeStats {
    const KIND: usize = 2;
    fields! {
        0 IMAGE_FS => image_fs: Parser::opt_struct,
        1 CONTAINER_FS => container_fs: Parser::opt_struct,
    }
}

impl<'a> Struct<'a> for PodStats<'a> {
    const KIND: usize = 3;
    fields! {
        0 POD_REF => pod_ref: Parser::parse_struct,
        1 START_TIME => start_time: Parser::time,
        2 CONTAINERS => containers: Parser::structs,
        3 CPU => cpu: Parser::opt_struct,
        4 MEMORY => memory: Parser::opt_struct,
        5 NETWORK => network: Parser::opt_struct,
        6 VOLUME => volume: Parser::structs,
        7 EPHEMERAL_STORAGE => ephemeral_storage: Parser::opt_struct,
    }
}

impl<'a> Struct<'a> for PodReference<'a> {
    const KIND: usize = 4;
    fields! {
        0 NAME => name: Parser::name,
        1 NAMESPACE => namespace: Parser::name,
        2 UID => uid: Parser::name,
    }
}

impl<'a> Struct<'a> for ContainerStats<'a> {
    const KIND: usize = 5;
    fields! {
        0 NAME => name: Parser::name,
        1 START_TIME => start_time: Parser::time,
        2 CPU => cpu: Parser::opt_struct,
        3 MEMORY => memory: Parser::opt_struct,
        4 ROOTFS => rootfs: Parser::opt_struct,
        5 LOGS => logs: Parser::opt_struct,
    }
}

impl<'a> Struct<'a> for CpuStats {
    const KIND: usize = 6;
    fields! {
        0 TIME => time: Parser::time,
        1 USAGE_NANO_CORES => usage_nano_cores: Parser::counter,
        2 USAGE_CORE_NANO_SECONDS => usage_core_nano_seconds: Parser::counter,
    }
}

impl<'a> Struct<'a> for MemoryStats {
    const KIND: usize = 7;
    fields! {
        0 TIME => time: Parser::time,
        1 AVAILABLE_BYTES => available_bytes: Parser::counter,
        2 USAGE_BYTES => usage_bytes: Parser::counter,
        3 WORKING_SET_BYTES => working_set_bytes: Parser::counter,
        4 RSS_BYTES => rss_bytes: Parser::counter,
        5 PAGE_FAULTS => page_faults: Parser::counter,
        6 MAJOR_PAGE_FAULTS => major_page_faults: Parser::counter,
    }
}

impl<'a> Struct<'a> for NetworkStats {
    const KIND: usize = 8;
    fields! {
        0 TIME => time: Parser::time,
        1 RX_BYTES => rx_bytes: Parser::counter,
        2 RX_ERRORS => rx_errors: Parser::counter,
        3 TX_BYTES => tx_bytes: Parser::counter,
        4 TX_ERRORS => tx_errors: Parser::counter,
    }
}

impl<'a> Struct<'a> for FsStats {
    const KIND: usize = 9;
    fs_fields!();
}

impl<'a> Struct<'a> for VolumeStats<'a> {
    const KIND: usize = 10;
    fs_fields!(7 NAME => name: Parser::name);
}

/// What stands between two pieces of a [`Shape`]: the value of a field (its bit), or an ignored
/// value under this key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Field(u32),
    Skip(Key),
}

/// The shape of an earlier struct: its bytes with the values of its members cut out, borrowed
/// from the input. Bytes equal to the pieces with valid values in the slots are valid JSON with
/// the same members in the same order.
struct Shape<'a> {
    pieces: Vec<(&'a [u8], Slot)>,
    end: &'a [u8],
}

impl Shape<'_> {
    /// Whether `b[i..]` goes on with piece `k` (or, past the last one, with the end).
    #[inline(always)]
    fn fits(&self, k: usize, b: &[u8], i: usize) -> bool {
        match self.pieces.get(k) {
            Some((lit, _)) => starts_with(b, i, lit),
            None => k == self.pieces.len() && starts_with(b, i, self.end),
        }
    }
}

/// Another of `shapes` than the `s`-th with the same first `k` pieces that goes on at `b[i..]`.
#[inline(never)]
fn switch(shapes: &[Shape<'_>], s: usize, k: usize, b: &[u8], i: usize) -> Option<usize> {
    let so_far = shapes.get(s)?.pieces.get(..k)?;
    shapes
        .iter()
        .position(|other| other.pieces.get(..k) == Some(so_far) && other.fits(k, b, i))
}

/// The shape of an earlier ignored value: the value itself, borrowed from the input, and where
/// its numbers and value strings (not its keys) lie in it.
struct Skipped<'a> {
    whole: &'a [u8],
    slots: Vec<Span>,
}

/// A number or a value string (with its quotes) in [`Skipped::whole`]: `whole[start..end]`.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    string: bool,
}

/// How many bytes from `b[i..]` on equal those of `w[j..]`: sixteen at a time, at most
/// `w.len() - j` and no more than `b` has.
#[inline(always)]
fn common_prefix(b: &[u8], i: usize, w: &[u8], j: usize) -> usize {
    let n = w.len().saturating_sub(j).min(b.len().saturating_sub(i));
    let (Some(x), Some(y)) = (b.get(i..i + n), w.get(j..j + n)) else {
        return 0;
    };
    let as_word = |c: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        u64::from_le_bytes(a)
    };
    // Sixteen bytes compared at once (SSE2 on x86-64), the difference found in eight.
    for (k, (p, q)) in x.chunks_exact(16).zip(y.chunks_exact(16)).enumerate() {
        if p != q {
            let (p, q) = (p.split_at(8), q.split_at(8));
            return 16 * k
                + match as_word(p.0) ^ as_word(q.0) {
                    0 => 8 + ((as_word(p.1) ^ as_word(q.1)).trailing_zeros() / 8) as usize,
                    d => (d.trailing_zeros() / 8) as usize,
                };
        }
    }
    if n % 16 >= 8 {
        let at = n - n % 16;
        if let (Some(p), Some(q)) = (x.get(at..at + 8), y.get(at..at + 8)) {
            let d = as_word(p) ^ as_word(q);
            if d != 0 {
                return at + (d.trailing_zeros() / 8) as usize;
            }
        }
    }
    // The last bytes: as the last eight, which overlap words found equal above, or one by one.
    match (x.get(n.wrapping_sub(8)..), y.get(n.wrapping_sub(8)..)) {
        (Some(p), Some(q)) if n >= 8 => match as_word(p) ^ as_word(q) {
            0 => n,
            d => n - 8 + (d.trailing_zeros() / 8) as usize,
        },
        _ => x.iter().zip(y).take_while(|(p, q)| p == q).count(),
    }
}

/// The end of the ignored value at `i` if it has `shape`: the bytes from `i` on equal the value
/// the shape was learned from, but for numbers and value strings in the same places, which are
/// validated where they differ. The bytes are compared sixteen at a time; only a number or
/// string where they differ is parsed, from its start. A difference anywhere else (a key,
/// punctuation, whitespace, a literal) and the shape does not fit. Equal bytes up to a
/// difference are valid as far as the learned value is, and a number that is followed by more
/// of one in the input differs at its end, so it is parsed again: the bytes taken are exactly
/// those that the learned pieces with valid numbers and strings between them would take.
#[inline]
fn skip_by_shape(b: &[u8], mut i: usize, shape: &Skipped<'_>) -> Option<usize> {
    let w = shape.whole;
    // `b[i..]` goes on as `w[j..]`; the spans before the `k`-th are behind.
    let (mut j, mut k) = (0, 0);
    loop {
        let p = j + common_prefix(b, i, w, j);
        if p == w.len() {
            let end = i + (p - j);
            // The learned value ends in `}`, `]` or `"`, or its number or literal is not followed
            // by more of one.
            if matches!(w.last(), Some(b'}' | b']' | b'"'))
                || !b
                    .get(end)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-'))
            {
                return Some(end);
            }
        }
        // The difference at `p` must be in a span, or just after one (a number that goes on).
        while shape.slots.get(k).is_some_and(|s| s.end < p) {
            k += 1;
        }
        let span = shape.slots.get(k)?;
        if p < span.start {
            return None;
        }
        let at = i + (span.start - j);
        i = if !span.string {
            number_end(b, at)?
        } else if b.get(at) == Some(&b'"') {
            string_end(b, at + 1)? + 1
        } else {
            return None;
        };
        j = span.end;
        k += 1;
    }
}

/// The shape of the (valid) ignored value `b[start..end]`: where its numbers and value strings
/// are (keys are not spans: they must be equal).
fn skipped_shape(b: &[u8], start: usize, end: usize) -> Option<Skipped<'_>> {
    let mut slots = Vec::with_capacity(16);
    let mut j = start;
    while j < end {
        match *b.get(j)? {
            b'"' => {
                let close = string_end(b, j + 1)?;
                if b.get(ws(b, close + 1)) != Some(&b':') {
                    slots.push(Span {
                        start: j - start,
                        end: close + 1 - start,
                        string: true,
                    });
                }
                j = close + 1;
            }
            b'-' | b'0'..=b'9' => {
                let number_start = j;
                j = number_end(b, j)?;
                slots.push(Span {
                    start: number_start - start,
                    end: j - start,
                    string: false,
                });
            }
            _ => j += 1,
        }
    }
    Some(Skipped {
        whole: b.get(start..end)?,
        slots,
    })
}

struct Parser<'a> {
    b: &'a [u8],
    /// The next byte to read.
    i: usize,
    /// The last two timestamps parsed (their text with its closing quote, and value).
    times: [Option<(&'a [u8], i64)>; 2],
    /// Shapes learned from earlier values, the most recent first: of each struct (by
    /// [`Struct::KIND`]), and of ignored values (by the key they were under).
    shapes: [Vec<Shape<'a>>; KINDS],
    skip_shapes: Vec<(Key, Skipped<'a>)>,
}

impl<'a> Parser<'a> {
    /// `null` → true (consumed); any other value → false (nothing consumed).
    #[inline(always)]
    fn null(&mut self) -> Option<bool> {
        if *self.b.get(self.i)? != b'n' {
            return Some(false);
        }
        self.i = literal(self.b, self.i, b"null")?;
        Some(true)
    }

    /// A string with no escapes: the span of its contents.
    #[inline(always)]
    fn string(&mut self) -> Option<(usize, usize)> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let end = string_end(self.b, start)?;
        self.i = end + 1;
        Some((start, end))
    }

    /// A name (`Cow<str>`, never `null`), borrowed.
    #[inline]
    fn name(&mut self) -> Option<Cow<'a, str>> {
        let (start, end) = self.string()?;
        utf8(self.b.get(start..end)?).map(Cow::Borrowed)
    }

    /// `Option<Time>`. A payload repeats a few timestamps many times: one whose text and closing
    /// quote equal either of the last two parsed is not parsed again.
    #[inline]
    fn time(&mut self) -> Option<Option<Time>> {
        let (b, start) = (self.b, self.i + 1);
        if b.get(self.i) != Some(&b'"') {
            return if self.null()? { Some(None) } else { None };
        }
        for (quoted, nanos) in self.times.into_iter().flatten() {
            if starts_with(b, start, quoted) {
                self.i = start + quoted.len();
                return Some(Some(Time(nanos)));
            }
        }
        let (start, end) = self.string()?;
        let nanos = parse_time(utf8(b.get(start..end)?)?)?;
        self.times = [Some((b.get(start..=end)?, nanos)), self.times[0]];
        Some(Some(Time(nanos)))
    }

    /// `Option<u64>`: `null`, or digits with no sign, fraction or exponent that fit.
    #[inline(always)]
    fn counter(&mut self) -> Option<Option<u64>> {
        let b = self.b;
        let start = self.i;
        let (n, mut v) = digits8(b, start);
        if n == 0 {
            return if self.null()? { Some(None) } else { None };
        }
        // A leading zero.
        if n > 1 && b.get(start) == Some(&b'0') {
            return None;
        }
        let mut i = start + n;
        if n == 8 {
            let (n, more) = digits8(b, i);
            v = v * POW10[n] + more;
            i += n;
            if n == 8 {
                // 16 digits so far: u64 holds 4 more at most.
                let (n, more) = digits8(b, i);
                if n > 4 {
                    return None;
                }
                v = v.checked_mul(POW10[n])?.checked_add(more)?;
                i += n;
            }
        }
        // A float (serde refuses it for a u64).
        if matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.i = i;
        Some(Some(v))
    }

    /// A `null`-as-empty array of structs.
    fn structs<T: Struct<'a>>(&mut self) -> Option<Vec<T>> {
        self.array(false)
    }

    /// [`Parser::structs`] for the pods, which run to about the end of the input: after the
    /// first one, room is made for as many more as the rest of the input holds of that length,
    /// instead of growing 4 → 8 → 16 → 32 (each step copying pods of about 500 bytes).
    fn pods<T: Struct<'a>>(&mut self) -> Option<Vec<T>> {
        self.array(true)
    }

    #[inline(always)]
    fn array<T: Struct<'a>>(&mut self, sized: bool) -> Option<Vec<T>> {
        let mut out = Vec::new();
        if self.null()? {
            return Some(out);
        }
        let b = self.b;
        if b.get(self.i) != Some(&b'[') {
            return None;
        }
        self.i = ws(b, self.i + 1);
        if b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(out);
        }
        loop {
            let start = self.i;
            out.push(self.parse_struct()?);
            if sized && out.len() == 1 {
                // Counted as at least 256 bytes each, so that a short first one reserves no
                // more than the input could fill.
                let each = (self.i - start).max(256);
                out.reserve_exact((b.len() - self.i) / each);
            }
            let i = ws(b, self.i);
            match b.get(i) {
                Some(b',') => self.i = ws(b, i + 1),
                Some(b']') => {
                    self.i = i + 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    /// `Option<T>`: `null` or a `T`.
    #[inline]
    fn opt_struct<T: Struct<'a>>(&mut self) -> Option<Option<T>> {
        if self.null()? {
            return Some(None);
        }
        self.parse_struct().map(Some)
    }

    /// A `T` that must be there (`null` is refused).
    fn some_struct<T: Struct<'a>>(&mut self) -> Option<Option<T>> {
        self.parse_struct().map(Some)
    }

    /// A struct: along the shapes learned from earlier ones as far as they fit (switching to
    /// another with the same pieces so far where the first stops fitting), then member by member
    /// (and that shape learned).
    fn parse_struct<T: Struct<'a>>(&mut self) -> Option<T> {
        // Nothing in a `T` is another `T`: its shapes can be taken out meanwhile.
        let mut shapes = std::mem::take(&mut self.shapes[T::KIND]);
        let mut v = T::default();
        let (b, mut k, mut s) = (self.b, 0, 0);
        'shapes: while let Some(shape) = shapes.get(s) {
            for &(lit, slot) in shape.pieces.get(k..).unwrap_or_default() {
                if !starts_with(b, self.i, lit) {
                    match switch(&shapes, s, k, b, self.i) {
                        Some(other) => {
                            s = other;
                            continue 'shapes;
                        }
                        None => break 'shapes,
                    }
                }
                self.i += lit.len();
                match slot {
                    // A shape's fields are distinct: no `once` here.
                    Slot::Field(bit) => v.parse(self, bit)?,
                    Slot::Skip(key) => self.skip_value(key)?,
                }
                k += 1;
            }
            if !starts_with(b, self.i, shape.end) {
                match switch(&shapes, s, k, b, self.i) {
                    Some(other) => {
                        s = other;
                        continue 'shapes;
                    }
                    None => break 'shapes,
                }
            }
            self.i += shape.end.len();
            // The shape that fitted goes first next time.
            if let Some(fitted) = shapes.get_mut(..=s) {
                fitted.rotate_right(1);
            }
            self.shapes[T::KIND] = shapes;
            return Some(v);
        }
        // Member by member from here on, the fields so far marked as seen.
        let mut pieces = Vec::with_capacity(k + 8);
        pieces.extend_from_slice(
            shapes
                .get(s)
                .and_then(|shape| shape.pieces.get(..k))
                .unwrap_or_default(),
        );
        let mut seen = pieces.iter().fold(0, |seen, (_, slot)| match slot {
            Slot::Field(bit) => seen | 1 << bit,
            _ => seen,
        });
        let end = self.members(&mut v, &mut seen, k > 0, &mut pieces)?;
        shapes.insert(0, Shape { pieces, end });
        shapes.truncate(MAX_STRUCT_SHAPES);
        self.shapes[T::KIND] = shapes;
        Some(v)
    }

    /// The members of the object at `self.i` (after a member's value when `resume`, else at its
    /// `{`) into `v`; appends their pieces to `pieces` and returns the end piece.
    fn members<T: Struct<'a>>(
        &mut self,
        v: &mut T,
        seen: &mut u32,
        resume: bool,
        pieces: &mut Vec<(&'a [u8], Slot)>,
    ) -> Option<&'a [u8]> {
        let b = self.b;
        let mut lit = self.i;
        let mut i = if resume {
            self.i
        } else {
            if b.get(self.i) != Some(&b'{') {
                return None;
            }
            let i = ws(b, self.i + 1);
            if b.get(i) == Some(&b'}') {
                self.i = i + 1;
                return b.get(lit..self.i);
            }
            i
        };
        loop {
            if resume || !pieces.is_empty() {
                // After a value.
                i = ws(b, i);
                match b.get(i) {
                    Some(b',') => i = ws(b, i + 1),
                    Some(b'}') => {
                        self.i = i + 1;
                        return b.get(lit..self.i);
                    }
                    _ => return None,
                }
            }
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let end = string_end(b, i + 1)?;
            let key = Key::at(b, i + 1, end);
            let value = colon(b, end + 1)?;
            self.i = value;
            let slot = match T::field(key) {
                Some(bit) => {
                    once(seen, bit)?;
                    v.parse(self, bit)?;
                    Slot::Field(bit)
                }
                None => {
                    // serde reads a struct's keys as strings (a known key is ASCII).
                    utf8(b.get(i + 1..end)?)?;
                    self.skip_value(key)?;
                    Slot::Skip(key)
                }
            };
            pieces.push((b.get(lit..value)?, slot));
            lit = self.i;
            i = self.i;
        }
    }

    /// Skips an ignored value (found under `key`): by a shape learned from an earlier value
    /// under that key when one fits, otherwise with [`Parser::skip`] (and its shape learned).
    fn skip_value(&mut self, key: Key) -> Option<()> {
        let start = self.i;
        for (k, shape) in &self.skip_shapes {
            if *k == key
                && let Some(end) = skip_by_shape(self.b, start, shape)
            {
                self.i = end;
                return Some(());
            }
        }
        self.skip()?;
        if let Some(shape) = skipped_shape(self.b, start, self.i) {
            self.skip_shapes.insert(0, (key, shape));
            self.skip_shapes.truncate(MAX_SKIP_SHAPES);
        }
        Some(())
    }

    /// Skips one value, validating it as serde_json's `IgnoredAny` does. Iterative: open
    /// containers are bits of `stack` (1 for an object).
    fn skip(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        let mut stack: u128 = 0;
        let mut depth = 0;
        loop {
            // `i` is at a value's first byte.
            match *b.get(i)? {
                b'"' => i = string_end(b, i + 1)? + 1,
                b'-' | b'0'..=b'9' => i = number_end(b, i)?,
                open @ (b'{' | b'[') => {
                    if depth == MAX_SKIP_DEPTH {
                        return None;
                    }
                    let is_object = open == b'{';
                    depth += 1;
                    stack = stack << 1 | u128::from(is_object);
                    i = ws(b, i + 1);
                    match *b.get(i)? {
                        b'}' if is_object => {}
                        b']' if !is_object => {}
                        b'"' if is_object => {
                            i = colon(b, string_end(b, i + 1)? + 1)?;
                            continue;
                        }
                        _ if is_object => return None,
                        _ => continue,
                    }
                    i += 1;
                    depth -= 1;
                    stack >>= 1;
                }
                b't' => i = literal(b, i, b"true")?,
                b'f' => i = literal(b, i, b"false")?,
                b'n' => i = literal(b, i, b"null")?,
                _ => return None,
            }
            // After a value: a comma before the next one, or closing brackets.
            loop {
                if depth == 0 {
                    self.i = i;
                    return Some(());
                }
                i = ws(b, i);
                let in_object = stack & 1 == 1;
                match *b.get(i)? {
                    b',' => {
                        i = ws(b, i + 1);
                        if in_object {
                            if b.get(i) != Some(&b'"') {
                                return None;
                            }
                            i = colon(b, string_end(b, i + 1)? + 1)?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                i += 1;
                depth -= 1;
                stack >>= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
