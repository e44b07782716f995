//! The fast path of [`super::decode`]: a hand-written, single-pass parser of the Summary API's
//! JSON into the same [`Summary`] the serde structs give, borrowing names from the input.
//!
//! The contract, checked by `testing::fuzz::summary` (fuzz target and proptests): whenever
//! [`decode`] returns `Some(s)`, `serde_json::from_str::<Summary>` on the same text returns
//! `Ok(t)` with `s == t`. Anything unusual returns `None` and the caller falls back to serde,
//! which also words the errors: escapes in keys or kept strings (serde would own them), control
//! characters and escapes in any string, duplicate known fields, wrong types (an array where a
//! struct is expected, which serde would accept, included), `null` names, u64 fields holding
//! signs, fractions, exponents, leading zeros or more than `u64::MAX`, timestamps that
//! [`parse_time`] refuses, a missing `node`, nesting deeper than [`MAX_SKIP_DEPTH`] in an
//! ignored value, trailing bytes, truncation. Ignored values (`psi`, `io`, `swap`, ...) are
//! skipped by a validating, iterative skipper that accepts only what serde's `IgnoredAny` does.
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

/// Decodes `text`, or `None` when serde must decide (see the module doc).
pub fn decode(text: &str) -> Option<Summary<'_>> {
    let b = text.as_bytes();
    let mut p = Parser {
        text,
        b,
        i: ws(b, 0),
        last_time: None,
    };
    let summary = p.summary()?;
    (ws(b, p.i) == b.len()).then_some(summary)
}

/// Marks field `bit` as seen; `None` when it already was (serde: "duplicate field").
#[inline]
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    let mask = 1 << bit;
    if *seen & mask != 0 {
        return None;
    }
    *seen |= mask;
    Some(())
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
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // The lowest flagged byte is exact (the classic "has zero / has less" tricks; false
        // positives only appear above a true one).
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
    loop {
        match *b.get(i)? {
            b'"' => return Some(i),
            b'\\' | 0..=0x1f => return None,
            _ => i += 1,
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
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let digits = |mut i: usize| {
        while digit(i) {
            i += 1;
        }
        i
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        if !digit(i + 1) {
            return None;
        }
        i = digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digit(i) {
            return None;
        }
        i = digits(i);
    }
    Some(i)
}

/// The index just past `word` (`true`, `false`, `null`) at `i`.
#[inline(always)]
fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// The counter structs: a `time` and `Option<u64>` fields (and, for volumes, a `name`).
trait Counters<'a>: Default {
    fn time(&mut self) -> &mut Option<Time>;
    /// The field named `key` and its bit for [`once`] (0 is `time`, 7 is `name`).
    fn counter(&mut self, key: &[u8]) -> Option<(u32, &mut Option<u64>)>;
    fn name(&mut self) -> Option<&mut Cow<'a, str>> {
        None
    }
}

impl Counters<'_> for CpuStats {
    fn time(&mut self) -> &mut Option<Time> {
        &mut self.time
    }
    fn counter(&mut self, key: &[u8]) -> Option<(u32, &mut Option<u64>)> {
        Some(match key {
            b"usageNanoCores" => (1, &mut self.usage_nano_cores),
            b"usageCoreNanoSeconds" => (2, &mut self.usage_core_nano_seconds),
            _ => return None,
        })
    }
}

impl Counters<'_> for MemoryStats {
    fn time(&mut self) -> &mut Option<Time> {
        &mut self.time
    }
    fn counter(&mut self, key: &[u8]) -> Option<(u32, &mut Option<u64>)> {
        Some(match key {
            b"availableBytes" => (1, &mut self.available_bytes),
            b"usageBytes" => (2, &mut self.usage_bytes),
            b"workingSetBytes" => (3, &mut self.working_set_bytes),
            b"rssBytes" => (4, &mut self.rss_bytes),
            b"pageFaults" => (5, &mut self.page_faults),
            b"majorPageFaults" => (6, &mut self.major_page_faults),
            _ => return None,
        })
    }
}

impl Counters<'_> for NetworkStats {
    fn time(&mut self) -> &mut Option<Time> {
        &mut self.time
    }
    fn counter(&mut self, key: &[u8]) -> Option<(u32, &mut Option<u64>)> {
        Some(match key {
            b"rxBytes" => (1, &mut self.rx_bytes),
            b"rxErrors" => (2, &mut self.rx_errors),
            b"txBytes" => (3, &mut self.tx_bytes),
            b"txErrors" => (4, &mut self.tx_errors),
            _ => return None,
        })
    }
}

/// The filesystem fields, shared by [`FsStats`] and [`VolumeStats`].
macro_rules! fs_counters {
    ($key:expr, $s:expr) => {
        Some(match $key {
            b"availableBytes" => (1, &mut $s.available_bytes),
            b"capacityBytes" => (2, &mut $s.capacity_bytes),
            b"usedBytes" => (3, &mut $s.used_bytes),
            b"inodesFree" => (4, &mut $s.inodes_free),
            b"inodes" => (5, &mut $s.inodes),
            b"inodesUsed" => (6, &mut $s.inodes_used),
            _ => return None,
        })
    };
}

impl Counters<'_> for FsStats {
    fn time(&mut self) -> &mut Option<Time> {
        &mut self.time
    }
    fn counter(&mut self, key: &[u8]) -> Option<(u32, &mut Option<u64>)> {
        fs_counters!(key, self)
    }
}

impl<'a> Counters<'a> for VolumeStats<'a> {
    fn time(&mut self) -> &mut Option<Time> {
        &mut self.time
    }
    fn counter(&mut self, key: &[u8]) -> Option<(u32, &mut Option<u64>)> {
        fs_counters!(key, self)
    }
    fn name(&mut self) -> Option<&mut Cow<'a, str>> {
        Some(&mut self.name)
    }
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    /// The next byte to read.
    i: usize,
    /// The last timestamp parsed (a payload repeats a handful of them many times).
    last_time: Option<(&'a [u8], i64)>,
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
        self.text.get(start..end).map(Cow::Borrowed)
    }

    /// `Option<Time>`. A payload repeats a few timestamps many times: the last one parsed is
    /// compared first.
    #[inline]
    fn time(&mut self) -> Option<Option<Time>> {
        if self.null()? {
            return Some(None);
        }
        if let Some((last, nanos)) = self.last_time {
            let start = self.i + 1;
            if self.b.get(self.i) == Some(&b'"')
                && self.b.get(start..start + last.len()) == Some(last)
                && self.b.get(start + last.len()) == Some(&b'"')
            {
                self.i = start + last.len() + 1;
                return Some(Some(Time(nanos)));
            }
        }
        let (start, end) = self.string()?;
        let nanos = parse_time(self.text.get(start..end)?)?;
        self.last_time = Some((self.b.get(start..end)?, nanos));
        Some(Some(Time(nanos)))
    }

    /// `Option<u64>`: `null`, or digits with no sign, fraction or exponent that fit.
    #[inline]
    fn counter(&mut self) -> Option<Option<u64>> {
        let b = self.b;
        let start = self.i;
        let first = *b.get(start)?;
        let mut v = u64::from(first.wrapping_sub(b'0'));
        if v > 9 {
            return if self.null()? { Some(None) } else { None };
        }
        let mut i = start + 1;
        if v != 0 {
            // Up to 19 digits cannot overflow.
            while let Some(&c) = b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                v = v.wrapping_mul(10).wrapping_add(u64::from(d));
                i += 1;
            }
            if i - start > 19 {
                v = 0;
                for &c in b.get(start..i)? {
                    v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                }
            }
        }
        // A float (serde refuses it for a u64), or a leading zero.
        if matches!(b.get(i), Some(b'0'..=b'9' | b'.' | b'e' | b'E')) {
            return None;
        }
        self.i = i;
        Some(Some(v))
    }

    /// An object, each member's value handed to `field` with its key (`self.i` at the value's
    /// first byte; whitespace around it is taken care of here).
    #[inline(always)]
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        let b = self.b;
        if b.get(self.i) != Some(&b'{') {
            return None;
        }
        let mut i = ws(b, self.i + 1);
        if b.get(i) == Some(&b'}') {
            self.i = i + 1;
            return Some(());
        }
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let end = string_end(b, i + 1)?;
            let key = b.get(i + 1..end)?;
            self.i = colon(b, end + 1)?;
            field(self, key)?;
            i = ws(b, self.i);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    self.i = i + 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A `null`-as-empty array of `item`s.
    #[inline(always)]
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
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
            out.push(item(self)?);
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
    #[inline(always)]
    fn opt<T>(&mut self, parse: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null()? {
            return Some(None);
        }
        parse(self).map(Some)
    }

    fn summary(&mut self) -> Option<Summary<'a>> {
        let (mut node, mut pods, mut seen) = (None, Vec::new(), 0);
        self.object(|p, key| {
            match key {
                b"node" => {
                    once(&mut seen, 0)?;
                    node = Some(p.node()?);
                }
                b"pods" => {
                    once(&mut seen, 1)?;
                    pods = p.list(Self::pod)?;
                }
                _ => p.skip()?,
            }
            Some(())
        })?;
        Some(Summary { node: node?, pods })
    }

    fn node(&mut self) -> Option<NodeStats<'a>> {
        let (mut n, mut seen) = (NodeStats::default(), 0);
        self.object(|p, key| {
            match key {
                b"nodeName" => {
                    once(&mut seen, 0)?;
                    n.node_name = p.name()?;
                }
                b"systemContainers" => {
                    once(&mut seen, 1)?;
                    n.system_containers = p.list(Self::container)?;
                }
                b"startTime" => {
                    once(&mut seen, 2)?;
                    n.start_time = p.time()?;
                }
                b"cpu" => {
                    once(&mut seen, 3)?;
                    n.cpu = p.opt(Self::counters)?;
                }
                b"memory" => {
                    once(&mut seen, 4)?;
                    n.memory = p.opt(Self::counters)?;
                }
                b"network" => {
                    once(&mut seen, 5)?;
                    n.network = p.opt(Self::counters)?;
                }
                b"fs" => {
                    once(&mut seen, 6)?;
                    n.fs = p.opt(Self::counters)?;
                }
                b"runtime" => {
                    once(&mut seen, 7)?;
                    n.runtime = p.opt(Self::runtime)?;
                }
                _ => p.skip()?,
            }
            Some(())
        })?;
        Some(n)
    }

    fn runtime(&mut self) -> Option<RuntimeStats> {
        let (mut r, mut seen) = (RuntimeStats::default(), 0);
        self.object(|p, key| {
            match key {
                b"imageFs" => {
                    once(&mut seen, 0)?;
                    r.image_fs = p.opt(Self::counters)?;
                }
                b"containerFs" => {
                    once(&mut seen, 1)?;
                    r.container_fs = p.opt(Self::counters)?;
                }
                _ => p.skip()?,
            }
            Some(())
        })?;
        Some(r)
    }

    fn pod(&mut self) -> Option<PodStats<'a>> {
        let (mut pod, mut seen) = (PodStats::default(), 0);
        self.object(|p, key| {
            match key {
                b"podRef" => {
                    once(&mut seen, 0)?;
                    pod.pod_ref = p.pod_ref()?;
                }
                b"startTime" => {
                    once(&mut seen, 1)?;
                    pod.start_time = p.time()?;
                }
                b"containers" => {
                    once(&mut seen, 2)?;
                    pod.containers = p.list(Self::container)?;
                }
                b"cpu" => {
                    once(&mut seen, 3)?;
                    pod.cpu = p.opt(Self::counters)?;
                }
                b"memory" => {
                    once(&mut seen, 4)?;
                    pod.memory = p.opt(Self::counters)?;
                }
                b"network" => {
                    once(&mut seen, 5)?;
                    pod.network = p.opt(Self::counters)?;
                }
                b"volume" => {
                    once(&mut seen, 6)?;
                    pod.volume = p.list(Self::counters)?;
                }
                b"ephemeral-storage" => {
                    once(&mut seen, 7)?;
                    pod.ephemeral_storage = p.opt(Self::counters)?;
                }
                _ => p.skip()?,
            }
            Some(())
        })?;
        Some(pod)
    }

    fn pod_ref(&mut self) -> Option<PodReference<'a>> {
        let (mut r, mut seen) = (PodReference::default(), 0);
        self.object(|p, key| {
            let (bit, slot) = match key {
                b"name" => (0, &mut r.name),
                b"namespace" => (1, &mut r.namespace),
                b"uid" => (2, &mut r.uid),
                _ => return p.skip(),
            };
            once(&mut seen, bit)?;
            *slot = p.name()?;
            Some(())
        })?;
        Some(r)
    }

    fn container(&mut self) -> Option<ContainerStats<'a>> {
        let (mut c, mut seen) = (ContainerStats::default(), 0);
        self.object(|p, key| {
            match key {
                b"name" => {
                    once(&mut seen, 0)?;
                    c.name = p.name()?;
                }
                b"startTime" => {
                    once(&mut seen, 1)?;
                    c.start_time = p.time()?;
                }
                b"cpu" => {
                    once(&mut seen, 2)?;
                    c.cpu = p.opt(Self::counters)?;
                }
                b"memory" => {
                    once(&mut seen, 3)?;
                    c.memory = p.opt(Self::counters)?;
                }
                b"rootfs" => {
                    once(&mut seen, 4)?;
                    c.rootfs = p.opt(Self::counters)?;
                }
                b"logs" => {
                    once(&mut seen, 5)?;
                    c.logs = p.opt(Self::counters)?;
                }
                _ => p.skip()?,
            }
            Some(())
        })?;
        Some(c)
    }

    /// A [`Counters`] struct.
    fn counters<T: Counters<'a>>(&mut self) -> Option<T> {
        let (mut v, mut seen) = (T::default(), 0);
        self.object(|p, key| {
            if key == b"time" {
                once(&mut seen, 0)?;
                *v.time() = p.time()?;
            } else if let Some((bit, slot)) = v.counter(key) {
                once(&mut seen, bit)?;
                *slot = p.counter()?;
            } else if key == b"name"
                && let Some(name) = v.name()
            {
                once(&mut seen, 7)?;
                *name = p.name()?;
            } else {
                p.skip()?;
            }
            Some(())
        })?;
        Some(v)
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
                b'-' | b'0'..=b'9' => i = number_end(b, i)?,
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
