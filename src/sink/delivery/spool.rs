//! The disk spool: encoded (compressed) bodies in append-only segment files, delivered oldest
//! first, kept across restarts of the collector (`kill -9` included).
//!
//! A segment is `<seq as 16 hex digits>.seg`, a sequence of records: a 29-byte header (magic
//! `HSP1`, body length, points, timestamp, flags, CRC-32 of everything after the magic but the
//! CRC itself, body included) and the body. Each record is one `write` call, so a killed
//! process leaves at most the last record of the segment being written torn; the page cache
//! keeps the rest. A segment is fsynced when it is sealed (full, or at shutdown).
//!
//! At open every segment is checked: a torn or damaged record is counted (its points, when its
//! header can be read) and the file cut to its valid prefix. Segments are delivered whole, one
//! at a time: the oldest is read into memory and its records handed out; when every one is
//! delivered or dropped the file is removed. A crash mid-segment sends that segment's
//! delivered records again: the stores this writes to (InfluxDB, Prometheus-compatible) keep
//! one value per series and timestamp, so a resend changes nothing.
//!
//! Disk use is capped: when the segments pass `cap` bytes, the oldest whole segments go (their
//! points counted), never the one being written; so the directory exceeds the cap by at most
//! one segment.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::Body;

const MAGIC: &[u8; 4] = b"HSP1";
/// Magic, length (u32), points (u64), timestamp (i64), flags (u8), CRC-32 (u32).
const HEADER: usize = 4 + 4 + 8 + 8 + 1 + 4;
const COMPRESSED: u8 = 1;

#[derive(Clone, Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    points: u64,
    oldest: i64,
}

impl Segment {
    fn new(seq: u64) -> Segment {
        Segment {
            seq,
            bytes: 0,
            points: 0,
            oldest: i64::MAX,
        }
    }
}

/// The segment being delivered: its records not yet handed out, and how many are out.
struct Reading {
    seg: Segment,
    records: VecDeque<Body>,
    out: usize,
}

/// Points the spool lost, by cause, since the last [`Spool::take_losses`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Oldest segments removed to stay within the cap.
    pub full: u64,
    /// Torn or damaged records.
    pub corrupt: u64,
}

pub struct Spool {
    dir: PathBuf,
    cap: u64,
    segment_bytes: u64,
    sealed: VecDeque<Segment>,
    writing: Option<(Segment, File)>,
    reading: Option<Reading>,
    next_seq: u64,
    losses: Losses,
}

impl Spool {
    /// Opens (creating) the directory and checks the segments a previous run left.
    pub fn open(dir: &Path, cap: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| segment_seq(&e.file_name().to_string_lossy()))
            .collect();
        seqs.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_owned(),
            cap: cap.max(1),
            segment_bytes: (cap / 16).clamp(64 << 10, 16 << 20),
            sealed: VecDeque::new(),
            writing: None,
            reading: None,
            next_seq: seqs.last().map_or(0, |s| s + 1),
            losses: Losses::default(),
        };
        for seq in seqs {
            let path = spool.path(seq);
            let data = Bytes::from(fs::read(&path)?);
            let parsed = parse(&data);
            spool.losses.corrupt += parsed.corrupt;
            if parsed.records.is_empty() {
                fs::remove_file(&path)?;
                continue;
            }
            if parsed.valid < data.len() {
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(parsed.valid as u64)?;
            }
            let mut seg = Segment::new(seq);
            seg.bytes = parsed.valid as u64;
            for r in &parsed.records {
                seg.points += r.points as u64;
                seg.oldest = seg.oldest.min(r.timestamp);
            }
            spool.sealed.push_back(seg);
        }
        let over = spool.enforce_cap();
        spool.losses.full += over;
        Ok(spool)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:016x}.seg"))
    }

    /// Appends a body (one `write` call). When the spool passes its cap, the oldest segments
    /// go (counted in [`Spool::take_losses`]).
    pub fn append(&mut self, body: &Body) -> io::Result<()> {
        let record = encode(body);
        if let Some((seg, _)) = &self.writing
            && seg.bytes > 0
            && seg.bytes + record.len() as u64 > self.segment_bytes
        {
            self.seal()?;
        }
        if self.writing.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.path(seq))?;
            self.writing = Some((Segment::new(seq), file));
        }
        if let Some((seg, file)) = &mut self.writing {
            file.write_all(&record)?;
            seg.bytes += record.len() as u64;
            seg.points += body.points as u64;
            seg.oldest = seg.oldest.min(body.timestamp);
        }
        let over = self.enforce_cap();
        self.losses.full += over;
        Ok(())
    }

    /// Closes the segment being written (fsynced): the next append starts a new one.
    pub fn seal(&mut self) -> io::Result<()> {
        if let Some((seg, file)) = self.writing.take() {
            self.sealed.push_back(seg);
            file.sync_data()?;
        }
        Ok(())
    }

    /// Removes the oldest segments (not the one being written) while over the cap; returns
    /// the points they held.
    fn enforce_cap(&mut self) -> u64 {
        let mut dropped = 0;
        while self.bytes() > self.cap {
            let seg = if let Some(r) = self.reading.take() {
                dropped += r.records.iter().map(|b| b.points as u64).sum::<u64>();
                r.seg
            } else if let Some(seg) = self.sealed.pop_front() {
                dropped += seg.points;
                seg
            } else {
                break;
            };
            let _ = fs::remove_file(self.path(seg.seq));
        }
        dropped
    }

    /// Up to `n` records of the oldest segment, each with its segment's number for
    /// [`Spool::done`] or [`Spool::put_back`]. Loads the next segment when the current one is
    /// finished (sealing the one being written if it is the last).
    pub fn take(&mut self, n: usize) -> io::Result<Vec<(u64, Body)>> {
        loop {
            if let Some(r) = &mut self.reading {
                if !r.records.is_empty() || r.out > 0 {
                    let k = n.min(r.records.len());
                    r.out += k;
                    let seq = r.seg.seq;
                    return Ok(r.records.drain(..k).map(|b| (seq, b)).collect());
                }
                self.finish_reading();
            }
            let seg = match self.sealed.pop_front() {
                Some(seg) => seg,
                None if self.writing.as_ref().is_some_and(|(s, _)| s.bytes > 0) => {
                    self.seal()?;
                    continue;
                }
                None => return Ok(Vec::new()),
            };
            let data = match fs::read(self.path(seg.seq)) {
                Ok(d) => Bytes::from(d),
                Err(e) => {
                    self.losses.corrupt += seg.points;
                    return Err(e);
                }
            };
            let parsed = parse(&data);
            self.losses.corrupt += parsed.corrupt;
            self.reading = Some(Reading {
                seg,
                records: parsed.records.into(),
                out: 0,
            });
        }
    }

    /// A record handed out is finished (delivered or dropped); a segment whose records are all
    /// finished is removed.
    pub fn done(&mut self, seq: u64) {
        if let Some(r) = &mut self.reading
            && r.seg.seq == seq
        {
            r.out = r.out.saturating_sub(1);
            if r.out == 0 && r.records.is_empty() {
                self.finish_reading();
            }
        }
    }

    /// A record handed out comes back (a failed attempt; or, after a 413, its halves), to be
    /// taken again first. If its segment was removed for the cap meanwhile, its points are
    /// counted lost.
    pub fn put_back(&mut self, seq: u64, bodies: Vec<Body>) {
        match &mut self.reading {
            Some(r) if r.seg.seq == seq => {
                r.out = r.out.saturating_sub(1);
                for b in bodies.into_iter().rev() {
                    r.records.push_front(b);
                }
            }
            _ => self.losses.full += bodies.iter().map(|b| b.points as u64).sum::<u64>(),
        }
    }

    fn finish_reading(&mut self) {
        if let Some(r) = self.reading.take() {
            let _ = fs::remove_file(self.path(r.seg.seq));
        }
    }

    /// Points lost since the last call.
    pub fn take_losses(&mut self) -> Losses {
        std::mem::take(&mut self.losses)
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        let reading = self.reading.as_ref().map(|r| &r.seg);
        let writing = self.writing.as_ref().map(|(s, _)| s);
        reading.into_iter().chain(&self.sealed).chain(writing)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments().map(|s| s.bytes).sum()
    }

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments().count()
    }

    /// Whether records wait to be taken.
    pub fn has_records(&self) -> bool {
        self.reading.as_ref().is_some_and(|r| !r.records.is_empty())
            || !self.sealed.is_empty()
            || self.writing.as_ref().is_some_and(|(s, _)| s.bytes > 0)
    }

    /// The timestamp of the oldest spooled point.
    pub fn oldest(&self) -> Option<i64> {
        let reading = self
            .reading
            .as_ref()
            .and_then(|r| r.records.iter().map(|b| b.timestamp).min());
        let rest = self
            .sealed
            .iter()
            .chain(self.writing.as_ref().map(|(s, _)| s))
            .map(|s| s.oldest)
            .min();
        reading.into_iter().chain(rest).min()
    }
}

fn segment_seq(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

fn encode(body: &Body) -> Vec<u8> {
    let len = u32::try_from(body.bytes.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER + body.bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(body.points as u64).to_le_bytes());
    out.extend_from_slice(&body.timestamp.to_le_bytes());
    out.push(if body.compressed { COMPRESSED } else { 0 });
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[4..]);
    crc.update(&body.bytes);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&body.bytes);
    out
}

struct Parsed {
    records: Vec<Body>,
    /// Length of the valid prefix.
    valid: usize,
    /// Points of the records found torn or damaged (those whose header could be read).
    corrupt: u64,
}

/// The records of a segment, up to the first torn one; a complete record whose checksum fails
/// is skipped (counted) and reading goes on after it.
fn parse(data: &Bytes) -> Parsed {
    let mut p = Parsed {
        records: Vec::new(),
        valid: 0,
        corrupt: 0,
    };
    let mut at = 0;
    while at < data.len() {
        let Some(h) = data.get(at..at + HEADER) else {
            break;
        };
        if &h[..4] != MAGIC {
            break;
        }
        let word =
            |r: std::ops::Range<usize>| h[r].iter().rev().fold(0u64, |a, b| a << 8 | *b as u64);
        let len = word(4..8) as usize;
        let points = word(8..16);
        let end = at + HEADER + len;
        let Some(body) = data.get(at + HEADER..end) else {
            p.corrupt += points;
            break;
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[4..HEADER - 4]);
        crc.update(body);
        if u64::from(crc.finalize()) != word(HEADER - 4..HEADER) {
            p.corrupt += points;
        } else {
            p.records.push(Body {
                bytes: data.slice(at + HEADER..end),
                points: points as usize,
                timestamp: word(16..24) as i64,
                compressed: h[24] & COMPRESSED != 0,
            });
            p.valid = end;
        }
        at = end;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(points: usize, ts: i64, len: usize) -> Body {
        Body {
            bytes: Bytes::from(vec![b'x'; len]),
            points,
            timestamp: ts,
            compressed: ts % 2 == 0,
        }
    }

    fn drain(s: &mut Spool) -> Vec<i64> {
        let mut out = Vec::new();
        loop {
            let taken = s.take(3).expect("take");
            if taken.is_empty() {
                return out;
            }
            for (seq, b) in taken {
                out.push(b.timestamp);
                s.done(seq);
            }
        }
    }

    #[test]
    fn records_survive_a_reopen_oldest_first() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = Spool::open(dir.path(), 1 << 30).expect("open");
        for ts in 1..=5 {
            s.append(&body(10, ts, 100)).expect("append");
        }
        assert_eq!(s.oldest(), Some(1));
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 30).expect("reopen");
        let (seq, first) = s.take(1).expect("take").remove(0);
        assert_eq!(
            (first.points, first.compressed, first.bytes.len()),
            (10, false, 100)
        );
        s.put_back(seq, vec![first]);
        assert_eq!(drain(&mut s), [1, 2, 3, 4, 5]);
        assert_eq!((s.bytes(), s.segment_count()), (0, 0));
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_and_counted() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = Spool::open(dir.path(), 1 << 30).expect("open");
        for ts in 1..=3 {
            s.append(&body(7, ts, 50)).expect("append");
        }
        drop(s);
        let file = fs::read_dir(dir.path())
            .expect("ls")
            .next()
            .expect("a segment")
            .expect("entry");
        let len = file.metadata().expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(file.path())
            .expect("open")
            .set_len(len - 10)
            .expect("truncate");
        let mut s = Spool::open(dir.path(), 1 << 30).expect("reopen");
        assert_eq!(
            s.take_losses(),
            Losses {
                full: 0,
                corrupt: 7
            }
        );
        assert_eq!(drain(&mut s), [1, 2]);
    }

    #[test]
    fn a_damaged_record_is_skipped_and_counted() {
        let data = [
            encode(&body(1, 1, 20)),
            encode(&body(2, 2, 20)),
            encode(&body(3, 3, 20)),
        ]
        .concat();
        let mut data = data;
        data[HEADER + 20 + HEADER + 5] ^= 0xff;
        let p = parse(&Bytes::from(data));
        let ts: Vec<i64> = p.records.iter().map(|b| b.timestamp).collect();
        assert_eq!((ts, p.corrupt), (vec![1, 3], 2));
    }

    #[test]
    fn the_cap_removes_the_oldest_segments_and_counts_them() {
        let dir = tempfile::tempdir().expect("dir");
        // 64 KiB segments; a record of 10 KiB: six a segment.
        let cap = 200 << 10;
        let mut s = Spool::open(dir.path(), cap).expect("open");
        let mut lost = 0;
        for ts in 0..100 {
            s.append(&body(1, ts, 10 << 10)).expect("append");
            lost += s.take_losses().full;
            let on_disk: u64 = fs::read_dir(dir.path())
                .expect("ls")
                .map(|e| e.expect("entry").metadata().expect("meta").len())
                .sum();
            assert_eq!(on_disk, s.bytes());
            assert!(on_disk <= cap + s.segment_bytes, "{on_disk}");
        }
        let left = drain(&mut s);
        assert_eq!(lost + left.len() as u64, 100);
        // What is left is the newest, in order.
        assert!(left.windows(2).all(|w| w[1] == w[0] + 1) && left.last() == Some(&99));
    }
}
