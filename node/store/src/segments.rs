//! Append-only logs in segment files of our own, for history that is written once:
//! records, Merkle nodes, blocks with their certificates (docs/storage.md § Layout).
//!
//! A log is a folder of numbered segment files, each at most `segment_bytes` long. A
//! segment starts with a checksummed header (magic, log name, segment number, the
//! sequence number of its first entry); an entry is framed as length (u32 LE) ‖ CRC-32
//! (u32 LE) ‖ payload, the CRC taken over length ‖ sequence number (u64 LE) ‖ payload,
//! so an entry read from the wrong place or for the wrong number is refused as surely
//! as a flipped bit. An entry never spans two segments.
//!
//! The log does not decide what is committed: the caller keeps the committed end
//! ([`LogEnd`]) in its own atomic commit, and [`SegmentLog::open`] cuts whatever lies
//! beyond it (a torn or uncommitted tail) and refuses a log shorter than it. Reads go to
//! a [`Location`] the caller indexed, and check frame, bounds and checksum there; every
//! error names the file and the offset.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

const MAGIC: [u8; 8] = *b"xinlseg1";
/// magic 8 ‖ log name 16 (zero-padded) ‖ segment number u32 ‖ first sequence u64 ‖
/// previous segment's final length u32 ‖ reserved 4 ‖ CRC u32.
pub const SEGMENT_HEADER_BYTES: u32 = 48;
/// length u32 ‖ CRC u32.
pub const FRAME_BYTES: u32 = 8;
const NAME_BYTES: usize = 16;

/// Where an entry's frame starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub segment: u32,
    pub offset: u32,
}

impl Location {
    pub fn to_bytes(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&self.segment.to_be_bytes());
        out[4..].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<Location> {
        let b: &[u8; 8] = b.try_into().ok()?;
        Some(Location {
            segment: u32::from_be_bytes(b[..4].try_into().ok()?),
            offset: u32::from_be_bytes(b[4..].try_into().ok()?),
        })
    }
}

/// The end of a log: the sequence number the next entry gets and where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEnd {
    pub next_seq: u64,
    pub at: Location,
}

impl LogEnd {
    /// The end of an empty log whose first entry is numbered `first_seq`.
    pub fn empty(first_seq: u64) -> LogEnd {
        LogEnd {
            next_seq: first_seq,
            at: Location {
                segment: 0,
                offset: SEGMENT_HEADER_BYTES,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    #[error("{}: {source}", file.display())]
    Io { file: PathBuf, source: io::Error },
    #[error("{} at offset {offset}: {what}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },
    #[error(
        "{} holds {len} bytes but {committed} were committed: the segment was truncated",
        file.display()
    )]
    Truncated {
        file: PathBuf,
        len: u64,
        committed: u64,
    },
    #[error("{} is missing: log {log} was committed through segment {last}", file.display())]
    Missing {
        file: PathBuf,
        log: &'static str,
        last: u32,
    },
    #[error("log {log}: {what}")]
    Misuse { log: &'static str, what: String },
}

fn io_at(file: &Path) -> impl FnOnce(io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        file: file.to_path_buf(),
        source,
    }
}

fn corrupt(file: &Path, offset: u64, what: impl Into<String>) -> SegmentError {
    SegmentError::Corrupt {
        file: file.to_path_buf(),
        offset,
        what: what.into(),
    }
}

/// The CRC of one entry: over its length, its sequence number and its payload.
fn entry_crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// The sizes a log is made with.
#[derive(Clone, Copy, Debug)]
pub struct LogShape {
    /// The folder-level name (at most 16 bytes), also written into each segment header.
    pub name: &'static str,
    /// The sequence number of the log's first entry.
    pub first_seq: u64,
    /// A segment's size limit, headers and frames included.
    pub segment_bytes: u32,
    /// The largest payload an entry may have (a reader refuses a longer length).
    pub max_entry: u32,
}

impl LogShape {
    fn check(&self) -> Result<(), SegmentError> {
        let fits =
            u64::from(SEGMENT_HEADER_BYTES) + u64::from(FRAME_BYTES) + u64::from(self.max_entry)
                <= u64::from(self.segment_bytes);
        if self.name.is_empty() || self.name.len() > NAME_BYTES || !fits {
            return Err(SegmentError::Misuse {
                log: self.name,
                what: format!(
                    "shape: name of 1..={NAME_BYTES} bytes and an entry of {} bytes that fits a segment of {}",
                    self.max_entry, self.segment_bytes
                ),
            });
        }
        Ok(())
    }

    fn header(
        &self,
        segment: u32,
        first_seq: u64,
        prev_len: u32,
    ) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
        h[..8].copy_from_slice(&MAGIC);
        h[8..8 + self.name.len()].copy_from_slice(self.name.as_bytes());
        h[24..28].copy_from_slice(&segment.to_le_bytes());
        h[28..36].copy_from_slice(&first_seq.to_le_bytes());
        h[36..40].copy_from_slice(&prev_len.to_le_bytes());
        let crc = crc32fast::hash(&h[..44]);
        h[44..].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

struct Segment {
    path: PathBuf,
    file: File,
    /// The number of its first entry (from its header).
    first_seq: u64,
}

struct Tail {
    end: LogEnd,
    /// Segments written since the last `sync` (the last one at least, if any write).
    unsynced: Vec<u32>,
    /// A segment was created since the last `sync`, so the folder needs syncing too.
    created: bool,
    /// Reused for framing appends.
    buf: Vec<u8>,
}

/// One append-only log: appends by one writer, reads by many.
pub struct SegmentLog {
    dir: PathBuf,
    shape: LogShape,
    segments: RwLock<Vec<Arc<Segment>>>,
    tail: Mutex<Tail>,
    /// The end as readers see it: updated after each append, so that a read never
    /// waits for the writer's `sync`.
    written: Mutex<LogEnd>,
    /// Bytes beyond the committed end that opening removed (an interrupted commit's).
    cut_at_open: u64,
}

fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08}.seg"))
}

/// Segment numbers of the `*.seg` files in `dir`, in order; other names are refused.
fn list_segments(dir: &Path) -> Result<Vec<u32>, SegmentError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let e = e.map_err(io_at(dir))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let n = name
            .strip_suffix(".seg")
            .filter(|n| n.len() == 8)
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| corrupt(&e.path(), 0, "not a segment file of this log"))?;
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Creates `dir` if need be, and makes each created folder's entry durable in its
/// parent.
pub fn create_dir_synced(dir: &Path) -> Result<(), SegmentError> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.is_dir() {
        missing.push(d);
        match d.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => d = p,
            None => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    for m in missing.iter().rev() {
        if let Some(p) = m.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(p)?;
        }
    }
    Ok(())
}

/// Opens and checks segments `0..=end.at.segment` without changing any of them.
fn check_segments(
    dir: &Path,
    shape: &LogShape,
    found: &[u32],
    end: LogEnd,
) -> Result<Vec<Arc<Segment>>, SegmentError> {
    let last = end.at.segment;
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut prev: Option<(u64, u64)> = None; // (first seq, length) of the previous segment
    for n in 0..=last {
        let path = segment_path(dir, n);
        if !found.contains(&n) {
            return Err(SegmentError::Missing {
                file: path,
                log: shape.name,
                last,
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        let facts = check_header(&path, &file, shape, n)?;
        let len = file.metadata().map_err(io_at(&path))?.len();
        let in_order = match prev {
            None => facts.first_seq == shape.first_seq,
            Some((first, _)) => facts.first_seq > first && facts.first_seq < end.next_seq,
        };
        if !in_order {
            return Err(corrupt(
                &path,
                0,
                format!(
                    "segment header's first entry {} is out of order",
                    facts.first_seq
                ),
            ));
        }
        if let Some((_, prev_len)) = prev
            && prev_len != u64::from(facts.prev_len)
        {
            return Err(SegmentError::Truncated {
                file: segment_path(dir, n - 1),
                len: prev_len,
                committed: u64::from(facts.prev_len),
            });
        }
        if n == last && len < u64::from(end.at.offset) {
            return Err(SegmentError::Truncated {
                file: path,
                len,
                committed: u64::from(end.at.offset),
            });
        }
        prev = Some((facts.first_seq, len));
        segments.push(Arc::new(Segment {
            path,
            file,
            first_seq: facts.first_seq,
        }));
    }
    Ok(segments)
}

impl SegmentLog {
    /// Whether `dir` holds any segment file (a store uses this to tell an empty folder
    /// from a history its key-value store has lost).
    pub fn any_segments(dir: &Path) -> Result<bool, SegmentError> {
        if !dir.exists() {
            return Ok(false);
        }
        Ok(!list_segments(dir)?.is_empty())
    }

    /// Opens the log in `dir` at its committed end: `None` for a log that was never
    /// committed (its folder must hold no segment). Every segment through the end is
    /// checked first — present, its header intact, numbered in order, the previous
    /// segment as long as the next one's header says, the last at least as long as
    /// committed — and only then are segments beyond the end removed and the last one cut
    /// to it, so what an interrupted commit wrote is gone and nothing committed is.
    pub fn open(
        dir: &Path,
        shape: LogShape,
        committed: Option<LogEnd>,
    ) -> Result<SegmentLog, SegmentError> {
        shape.check()?;
        create_dir_synced(dir)?;
        let found = list_segments(dir)?;
        let end = match committed {
            Some(end) => end,
            None => {
                if let Some(n) = found.first() {
                    return Err(corrupt(
                        &segment_path(dir, *n),
                        0,
                        format!("log {} holds segments but none were committed", shape.name),
                    ));
                }
                LogEnd::empty(shape.first_seq)
            }
        };
        let empty = end == LogEnd::empty(shape.first_seq);
        if !empty
            && (end.next_seq <= shape.first_seq
                || end.at.offset <= SEGMENT_HEADER_BYTES
                || end.at.offset > shape.segment_bytes)
        {
            return Err(SegmentError::Misuse {
                log: shape.name,
                what: format!("a committed end no log can have: {end:?}"),
            });
        }
        let segments = if empty {
            Vec::new()
        } else {
            check_segments(dir, &shape, &found, end)?
        };
        // Checked: now what lies beyond the committed end may go.
        let keep = segments.len() as u32;
        let mut removed = false;
        let mut cut_at_open = 0;
        for n in found.iter().copied().filter(|n| *n >= keep) {
            let path = segment_path(dir, n);
            cut_at_open += std::fs::metadata(&path).map_err(io_at(&path))?.len();
            std::fs::remove_file(&path).map_err(io_at(&path))?;
            removed = true;
        }
        if let Some(last) = segments.last() {
            let len = last.file.metadata().map_err(io_at(&last.path))?.len();
            if len > u64::from(end.at.offset) {
                cut_at_open += len - u64::from(end.at.offset);
                last.file
                    .set_len(u64::from(end.at.offset))
                    .and_then(|()| last.file.sync_all())
                    .map_err(io_at(&last.path))?;
            }
        }
        if removed {
            sync_dir(dir)?;
        }
        Ok(SegmentLog {
            dir: dir.to_path_buf(),
            shape,
            segments: RwLock::new(segments),
            tail: Mutex::new(Tail {
                end,
                unsynced: Vec::new(),
                created: false,
                buf: Vec::new(),
            }),
            written: Mutex::new(end),
            cut_at_open,
        })
    }

    /// Bytes beyond the committed end that opening removed: what a commit interrupted
    /// after appending and before the engine's batch had written.
    pub fn cut_at_open(&self) -> u64 {
        self.cut_at_open
    }

    /// The file a location is in.
    pub fn path_of(&self, at: Location) -> PathBuf {
        segment_path(&self.dir, at.segment)
    }

    pub fn name(&self) -> &'static str {
        self.shape.name
    }

    /// The end after the last append (synced or not).
    pub fn end(&self) -> LogEnd {
        *self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, end: LogEnd) {
        *self.written.lock().unwrap_or_else(PoisonError::into_inner) = end;
    }

    fn lock_tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn segment(&self, n: u32) -> Option<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(n as usize)
            .cloned()
    }

    fn misuse(&self, what: String) -> SegmentError {
        SegmentError::Misuse {
            log: self.shape.name,
            what,
        }
    }

    /// Appends entry `seq` (which must be the next number); durable only after `sync`.
    pub fn append(&self, seq: u64, payload: &[u8]) -> Result<Location, SegmentError> {
        let mut tail = self.lock_tail();
        if seq != tail.end.next_seq {
            return Err(self.misuse(format!(
                "entry {seq} appended where {} is due",
                tail.end.next_seq
            )));
        }
        if payload.len() > self.shape.max_entry as usize {
            return Err(self.misuse(format!(
                "an entry of {} bytes is over the log's {}",
                payload.len(),
                self.shape.max_entry
            )));
        }
        let size = FRAME_BYTES as usize + payload.len();
        let mut at = tail.end.at;
        let current_exists = self.segment(at.segment).is_some();
        if current_exists && at.offset as usize + size > self.shape.segment_bytes as usize {
            at = Location {
                segment: at.segment + 1,
                offset: SEGMENT_HEADER_BYTES,
            };
        }
        if self.segment(at.segment).is_none() {
            let prev_len = if at.segment == tail.end.at.segment {
                0
            } else {
                tail.end.at.offset
            };
            self.create_segment(at.segment, seq, prev_len)?;
            tail.created = true;
        }
        let segment = self
            .segment(at.segment)
            .ok_or_else(|| self.misuse(format!("segment {} not open", at.segment)))?;
        tail.buf.clear();
        tail.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        tail.buf
            .extend_from_slice(&entry_crc(seq, payload).to_le_bytes());
        tail.buf.extend_from_slice(payload);
        segment
            .file
            .write_all_at(&tail.buf, u64::from(at.offset))
            .map_err(io_at(&segment.path))?;
        if tail.unsynced.last() != Some(&at.segment) {
            tail.unsynced.push(at.segment);
        }
        tail.end = LogEnd {
            next_seq: seq + 1,
            at: Location {
                segment: at.segment,
                offset: at.offset + size as u32,
            },
        };
        self.publish(tail.end);
        Ok(at)
    }

    fn create_segment(&self, n: u32, first_seq: u64, prev_len: u32) -> Result<(), SegmentError> {
        let mut segments = self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if segments.len() != n as usize {
            return Err(self.misuse(format!(
                "segment {n} created after {} segments",
                segments.len()
            )));
        }
        let path = segment_path(&self.dir, n);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_at(&path))?;
        file.write_all_at(&self.shape.header(n, first_seq, prev_len), 0)
            .map_err(io_at(&path))?;
        segments.push(Arc::new(Segment {
            path,
            file,
            first_seq,
        }));
        Ok(())
    }

    /// Makes every append so far durable; returns the end that may now be committed.
    pub fn sync(&self) -> Result<LogEnd, SegmentError> {
        let mut tail = self.lock_tail();
        for n in std::mem::take(&mut tail.unsynced) {
            if let Some(s) = self.segment(n) {
                s.file.sync_data().map_err(io_at(&s.path))?;
            }
        }
        if std::mem::take(&mut tail.created) {
            sync_dir(&self.dir)?;
        }
        Ok(tail.end)
    }

    /// Forgets every append after `to` (an end this log had): a commit that failed
    /// after appending must not leave its entries in the way of the retry.
    pub fn rewind(&self, to: LogEnd) -> Result<(), SegmentError> {
        let mut tail = self.lock_tail();
        if to.next_seq > tail.end.next_seq
            || to.at.segment > tail.end.at.segment
            || (to.at.segment == tail.end.at.segment && to.at.offset > tail.end.at.offset)
        {
            return Err(self.misuse(format!(
                "rewind to {} beyond the end {}",
                to.next_seq, tail.end.next_seq
            )));
        }
        let mut segments = self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let keep = if to.next_seq == self.shape.first_seq && to.at.segment == 0 {
            0
        } else {
            to.at.segment as usize + 1
        };
        let from = keep.min(segments.len());
        for s in segments.drain(from..) {
            std::fs::remove_file(&s.path).map_err(io_at(&s.path))?;
            tail.created = true;
        }
        if let Some(s) = segments.last() {
            s.file
                .set_len(u64::from(to.at.offset))
                .map_err(io_at(&s.path))?;
        }
        tail.unsynced = segments
            .last()
            .map(|_| keep as u32 - 1)
            .into_iter()
            .collect();
        tail.end = to;
        self.publish(to);
        Ok(())
    }

    /// The payload of entry `seq` at `at`, checked. Bytes past the current end are
    /// never read, so a location from a damaged index cannot reach a torn tail.
    pub fn read(&self, seq: u64, at: Location) -> Result<Vec<u8>, SegmentError> {
        let end = self.end();
        let Some(segment) = self.segment(at.segment) else {
            return Err(corrupt(
                &segment_path(&self.dir, at.segment),
                u64::from(at.offset),
                format!("entry {seq} points at a segment this log does not have"),
            ));
        };
        let path = &segment.path;
        let offset = u64::from(at.offset);
        let limit = if at.segment == end.at.segment {
            u64::from(end.at.offset)
        } else {
            segment.file.metadata().map_err(io_at(path))?.len()
        };
        if offset < u64::from(SEGMENT_HEADER_BYTES) || offset + u64::from(FRAME_BYTES) > limit {
            return Err(corrupt(path, offset, format!("entry {seq}: no frame here")));
        }
        let mut frame = [0u8; FRAME_BYTES as usize];
        segment
            .file
            .read_exact_at(&mut frame, offset)
            .map_err(io_at(path))?;
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > self.shape.max_entry || offset + u64::from(FRAME_BYTES) + u64::from(len) > limit {
            return Err(corrupt(
                path,
                offset,
                format!("entry {seq}: length {len} runs past the segment's data"),
            ));
        }
        let mut payload = vec![0u8; len as usize];
        segment
            .file
            .read_exact_at(&mut payload, offset + u64::from(FRAME_BYTES))
            .map_err(io_at(path))?;
        if entry_crc(seq, &payload) != crc {
            return Err(corrupt(
                path,
                offset,
                format!("entry {seq}: checksum mismatch"),
            ));
        }
        Ok(payload)
    }

    /// Writes entry `seq` again at `at`, where it was committed and found damaged, with
    /// `payload` (which the caller has checked against a hash it trusts) and syncs it.
    /// `next` is where the entry after it starts (or the log's end): the frame must
    /// fill exactly the space between, so a repair can never overlap a neighbour, and
    /// only committed bytes (before the end) are ever rewritten. Read back before it
    /// returns.
    pub fn rewrite(
        &self,
        seq: u64,
        at: Location,
        next: Location,
        payload: &[u8],
    ) -> Result<(), SegmentError> {
        let end = self.end();
        let Some(segment) = self.segment(at.segment) else {
            return Err(self.misuse(format!("entry {seq}: no segment {}", at.segment)));
        };
        let path = &segment.path;
        let stop = self.place_end(seq, at, next)?;
        let frame_end = u64::from(at.offset) + u64::from(FRAME_BYTES) + payload.len() as u64;
        let before_end = at.segment < end.at.segment
            || (at.segment == end.at.segment && stop <= u64::from(end.at.offset));
        if u64::from(at.offset) < u64::from(SEGMENT_HEADER_BYTES)
            || frame_end != stop
            || !before_end
        {
            return Err(corrupt(
                path,
                u64::from(at.offset),
                format!(
                    "entry {seq}: a repair of {} bytes does not fill its place ({} bytes)",
                    payload.len(),
                    stop.saturating_sub(u64::from(at.offset) + u64::from(FRAME_BYTES))
                ),
            ));
        }
        let mut frame = Vec::with_capacity(FRAME_BYTES as usize + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&entry_crc(seq, payload).to_le_bytes());
        frame.extend_from_slice(payload);
        segment
            .file
            .write_all_at(&frame, u64::from(at.offset))
            .map_err(io_at(path))?;
        segment.file.sync_data().map_err(io_at(path))?;
        if self.read(seq, at)? != payload {
            return Err(corrupt(
                path,
                u64::from(at.offset),
                format!("entry {seq}: reads back otherwise after its repair"),
            ));
        }
        Ok(())
    }

    /// The length its frame at `at` gives entry `seq` (read whatever the payload's
    /// checksum says; bounded by the segment's data like any read).
    pub fn stored_len(&self, seq: u64, at: Location) -> Result<u32, SegmentError> {
        let Some(segment) = self.segment(at.segment) else {
            return Err(self.misuse(format!("entry {seq}: no segment {}", at.segment)));
        };
        let offset = u64::from(at.offset);
        if offset < u64::from(SEGMENT_HEADER_BYTES) {
            return Err(corrupt(
                &segment.path,
                offset,
                format!("entry {seq}: no frame here"),
            ));
        }
        let mut len = [0u8; 4];
        segment
            .file
            .read_exact_at(&mut len, offset)
            .map_err(io_at(&segment.path))?;
        Ok(u32::from_le_bytes(len))
    }

    /// How many payload bytes the place of entry `seq` holds: from `at` to `next`, where
    /// the entry after it starts (or the log's end), less the frame. What a
    /// [`SegmentLog::rewrite`] of it must fill.
    pub fn room(&self, seq: u64, at: Location, next: Location) -> Result<u64, SegmentError> {
        let stop = self.place_end(seq, at, next)?;
        Ok(stop.saturating_sub(u64::from(at.offset) + u64::from(FRAME_BYTES)))
    }

    /// Where the place of entry `seq` at `at` ends in its segment file: at `next` in the
    /// same segment, or at the file's end when `next` is the next segment's first entry.
    fn place_end(&self, seq: u64, at: Location, next: Location) -> Result<u64, SegmentError> {
        let end = self.end();
        let Some(segment) = self.segment(at.segment) else {
            return Err(self.misuse(format!("entry {seq}: no segment {}", at.segment)));
        };
        if next.segment == at.segment {
            Ok(u64::from(next.offset))
        } else if next.segment == at.segment + 1 && at.segment < end.at.segment {
            Ok(segment.file.metadata().map_err(io_at(&segment.path))?.len())
        } else {
            Err(self.misuse(format!(
                "entry {seq}: the next entry is not in this segment or the next"
            )))
        }
    }

    /// Every entry from the log's start through its end, in order, checked: for full
    /// checks and for measuring. Calls `f(seq, location, payload)`. Each segment must
    /// end exactly after the entry before the next segment's first.
    pub fn scan(
        &self,
        mut f: impl FnMut(u64, Location, &[u8]) -> Result<(), SegmentError>,
    ) -> Result<(), SegmentError> {
        let end = self.end();
        let segments: Vec<Arc<Segment>> = self
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut seq = self.shape.first_seq;
        for (n, segment) in segments.iter().enumerate() {
            let stop = segments
                .get(n + 1)
                .map_or(end.next_seq, |next| next.first_seq);
            let mut at = Location {
                segment: n as u32,
                offset: SEGMENT_HEADER_BYTES,
            };
            while seq < stop {
                let payload = self.read(seq, at)?;
                f(seq, at, &payload)?;
                at.offset += FRAME_BYTES + payload.len() as u32;
                seq += 1;
            }
            let len = segment.file.metadata().map_err(io_at(&segment.path))?.len();
            if n + 1 < segments.len() && len != u64::from(at.offset) {
                return Err(corrupt(
                    &segment.path,
                    u64::from(at.offset),
                    format!("the segment's last entry ends here but the file holds {len} bytes"),
                ));
            }
        }
        Ok(())
    }

    /// Bytes in this log's segment files.
    pub fn bytes_on_disk(&self) -> u64 {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|s| s.file.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

/// What a segment's header says beyond its identity.
struct HeaderFacts {
    first_seq: u64,
    prev_len: u32,
}

fn check_header(
    path: &Path,
    file: &File,
    shape: &LogShape,
    n: u32,
) -> Result<HeaderFacts, SegmentError> {
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    file.read_exact_at(&mut h, 0)
        .map_err(|_| corrupt(path, 0, "segment header is cut short"))?;
    let crc = u32::from_le_bytes([h[44], h[45], h[46], h[47]]);
    if h[..8] != MAGIC || crc32fast::hash(&h[..44]) != crc {
        return Err(corrupt(path, 0, "bad segment header"));
    }
    let mut name = [0u8; NAME_BYTES];
    name[..shape.name.len()].copy_from_slice(shape.name.as_bytes());
    let number = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    if h[8..24] != name || number != n {
        return Err(corrupt(
            path,
            0,
            format!(
                "segment header names another log or number (segment {number}, expected {n} of {})",
                shape.name
            ),
        ));
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[28..36]);
    Ok(HeaderFacts {
        first_seq: u64::from_le_bytes(first),
        prev_len: u32::from_le_bytes([h[36], h[37], h[38], h[39]]),
    })
}

/// A log of fixed-size entries (Merkle node hashes): an entry's place is computed from
/// its number, so it needs no index.
pub struct FixedLog {
    log: SegmentLog,
    per_segment: u64,
    width: u32,
}

impl FixedLog {
    pub fn open(
        dir: &Path,
        name: &'static str,
        width: u32,
        segment_bytes: u32,
        committed: Option<u64>,
    ) -> Result<FixedLog, SegmentError> {
        let shape = LogShape {
            name,
            first_seq: 0,
            segment_bytes,
            max_entry: width,
        };
        shape.check()?;
        let per_segment =
            u64::from(segment_bytes - SEGMENT_HEADER_BYTES) / u64::from(FRAME_BYTES + width);
        let this = |log| FixedLog {
            log,
            per_segment,
            width,
        };
        let end = committed.map(|n| this_end(n, per_segment, width));
        Ok(this(SegmentLog::open(dir, shape, end)?))
    }

    fn location(&self, seq: u64) -> Location {
        location_of(seq, self.per_segment, self.width)
    }

    /// Entries appended so far (synced or not).
    pub fn len(&self) -> u64 {
        self.log.end().next_seq
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn append(&self, seq: u64, entry: &[u8]) -> Result<(), SegmentError> {
        if entry.len() != self.width as usize {
            return Err(self.log.misuse(format!(
                "an entry of {} bytes in a log of {}",
                entry.len(),
                self.width
            )));
        }
        let at = self.log.append(seq, entry)?;
        debug_assert_eq!(
            at,
            self.location(seq),
            "fixed entries fill segments exactly"
        );
        Ok(())
    }

    /// Makes every append durable; returns the number of entries that may be committed.
    pub fn sync(&self) -> Result<u64, SegmentError> {
        Ok(self.log.sync()?.next_seq)
    }

    pub fn rewind(&self, to: u64) -> Result<(), SegmentError> {
        self.log.rewind(this_end(to, self.per_segment, self.width))
    }

    pub fn read(&self, seq: u64) -> Result<Vec<u8>, SegmentError> {
        if seq >= self.len() {
            return Err(self.log.misuse(format!(
                "entry {seq} read from a log of {} entries",
                self.len()
            )));
        }
        self.log.read(seq, self.location(seq))
    }

    /// Writes entry `seq`, found damaged, again in its place with `entry` (which the
    /// caller computed from what it trusts), synced and read back
    /// ([`SegmentLog::rewrite`]).
    pub fn rewrite(&self, seq: u64, entry: &[u8]) -> Result<(), SegmentError> {
        if entry.len() != self.width as usize || seq >= self.len() {
            return Err(self.log.misuse(format!(
                "a rewrite of entry {seq} ({} bytes) in a log of {} entries of {}",
                entry.len(),
                self.len(),
                self.width
            )));
        }
        let next = this_end(seq + 1, self.per_segment, self.width).at;
        self.log.rewrite(seq, self.location(seq), next, entry)
    }

    pub fn bytes_on_disk(&self) -> u64 {
        self.log.bytes_on_disk()
    }

    pub fn cut_at_open(&self) -> u64 {
        self.log.cut_at_open()
    }
}

fn location_of(seq: u64, per_segment: u64, width: u32) -> Location {
    Location {
        segment: (seq / per_segment) as u32,
        offset: SEGMENT_HEADER_BYTES + ((seq % per_segment) as u32) * (FRAME_BYTES + width),
    }
}

/// The end of a fixed log holding `n` entries: just after the last one.
fn this_end(n: u64, per_segment: u64, width: u32) -> LogEnd {
    if n == 0 {
        return LogEnd::empty(0);
    }
    let last = location_of(n - 1, per_segment, width);
    LogEnd {
        next_seq: n,
        at: Location {
            segment: last.segment,
            offset: last.offset + FRAME_BYTES + width,
        },
    }
}
