//! The key-value engine under the store's derived state, indexes, write-ahead log and
//! markers: the one file that names the engine (docs/storage.md § Engine), behind the
//! few operations the store needs — point reads, bounded ordered scans, and atomic
//! batches, durable when asked. The engine is fjall 3 (an LSM tree: a journal, then
//! sorted tables with checksummed blocks, LZ4), chosen by the comparison in
//! docs/storage.md; everything is in one keyspace, as the store's keys carry their
//! own one-byte prefixes.

use std::path::{Path, PathBuf};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

/// The engine's bound on a key's length (its tables store key lengths in 16 bits).
pub const MAX_KEY_BYTES: usize = u16::MAX as usize;
/// Our bound on a value's length: far above any value the store writes (records and
/// blocks live in the history segments), well below the engine's own.
pub const MAX_VALUE_BYTES: usize = 1 << 26;

/// The fewest bytes one write takes in the engine's journal besides its key and value:
/// fjall 3.1's item header (tag, value type, compression, keyspace id u64, key length
/// u16, value length u32, stored length u32).
pub const JOURNAL_BYTES_PER_WRITE_AT_LEAST: u64 = 21;

/// A failure of the engine itself (I/O, or damage it detected), with its message.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("key-value engine: {0}")]
    Engine(String),
    #[error(
        "key-value engine: a key of {0} bytes (1 to {MAX_KEY_BYTES}) or a value of {1} bytes (at most {MAX_VALUE_BYTES}); nothing was written"
    )]
    TooLarge(usize, usize),
}

impl From<fjall::Error> for KvError {
    fn from(e: fjall::Error) -> KvError {
        KvError::Engine(e.to_string())
    }
}

/// Writes applied together or not at all.
#[derive(Default)]
pub struct Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Batch {
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.0.push((key.to_vec(), Some(value.to_vec())));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.0.push((key.to_vec(), None));
    }
}

/// Whether a write must be on disk when it returns, or may wait for the next durable
/// one (which makes it durable too: the engine's journal keeps writes in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    Durable,
    Buffered,
}

impl Sync {
    fn mode(self) -> PersistMode {
        match self {
            // fsync, not fdatasync: the journal's files grow and are created.
            Sync::Durable => PersistMode::SyncAll,
            // Into the OS's buffers: survives the process being killed.
            Sync::Buffered => PersistMode::Buffer,
        }
    }
}

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

pub struct Kv {
    db: Database,
    state: Keyspace,
    journal_bytes_at_open: u64,
}

fn check_sizes(key: &[u8], value: &[u8]) -> Result<(), KvError> {
    // Empty keys too: the engine asserts against them, at every later open.
    if key.is_empty() || key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
        return Err(KvError::TooLarge(key.len(), value.len()));
    }
    Ok(())
}

/// The bytes of every journal file (`*.jnl`) in the engine's folder, two levels deep.
fn journal_bytes(path: &Path) -> Result<u64, KvError> {
    let io = |e: std::io::Error, at: &Path| KvError::Engine(format!("{}: {e}", at.display()));
    let mut total = 0;
    let mut dirs: Vec<(PathBuf, u8)> = vec![(path.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e, &dir)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(e, &dir))?;
            let kind = entry.file_type().map_err(|e| io(e, &entry.path()))?;
            if kind.is_dir() && depth < 2 {
                dirs.push((entry.path(), depth + 1));
            } else if kind.is_file() && entry.path().extension().is_some_and(|x| x == "jnl") {
                total += entry.metadata().map_err(|e| io(e, &entry.path()))?.len();
            }
        }
    }
    Ok(total)
}

impl Kv {
    /// Opens (or creates) the engine's folder, its block cache bounded to `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Kv, KvError> {
        let journal_bytes_at_open = journal_bytes(path)?;
        let db = Database::builder(path)
            .cache_size(cache_bytes)
            // Every write's durability is said by the caller (`Sync`), none is implied.
            .manual_journal_persist(true)
            // Small memtables (below) and a short journal, which forces the oldest ones
            // to be flushed: with the defaults (64 MiB, 512 MiB) the engine alone grew
            // from 280 to 567 MiB over 10 M records while compaction lagged; so, it
            // stayed at 140-235 MiB (docs/storage.md § Engine). fjall 3.1's
            // `max_write_buffer_size` is deprecated and never read, so not used.
            .max_journaling_size(128 << 20)
            .open()?;
        let state = db.keyspace("state", || {
            KeyspaceCreateOptions::default().max_memtable_size(16 << 20)
        })?;
        Ok(Kv {
            db,
            state,
            journal_bytes_at_open,
        })
    }

    /// The size of the engine's journals when it was opened, before it replayed (and
    /// perhaps cut) them: the writes that were not yet in its tables took at most
    /// this much, [`JOURNAL_BYTES_PER_WRITE_AT_LEAST`] and more each. A journal it
    /// cut at a damaged batch, though not its last, loses the batches after the damage
    /// without an error, so the store checks that what those could have held is there.
    pub fn journal_bytes_at_open(&self) -> u64 {
        self.journal_bytes_at_open
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.state.get(key)?.map(|v| v.to_vec()))
    }

    pub fn is_empty(&self) -> Result<bool, KvError> {
        Ok(self.state.is_empty()?)
    }

    /// Entries whose keys start with `prefix`, in key order, from the first key at or
    /// above `from` (the prefix itself if none), at most `limit`.
    pub fn scan(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, KvError> {
        let start = from.unwrap_or(prefix);
        let mut out = Vec::new();
        for guard in self.state.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = guard.into_inner()?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Keys in `start..end`, in order.
    pub fn keys_between(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>, KvError> {
        let mut out = Vec::new();
        for guard in self.state.range(start..end) {
            out.push(guard.key()?.to_vec());
        }
        Ok(out)
    }

    /// How many keys lie in `start..end`, and the first of them at which `expected`
    /// (given the number of keys before it) returns false, if any.
    pub fn first_unexpected_key(
        &self,
        start: &[u8],
        end: &[u8],
        mut expected: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(u64, Option<Vec<u8>>), KvError> {
        let mut n = 0;
        for guard in self.state.range(start..end) {
            let key = guard.key()?;
            if !expected(n, &key) {
                return Ok((n, Some(key.to_vec())));
            }
            n += 1;
        }
        Ok((n, None))
    }

    /// The greatest key that starts with `prefix`.
    pub fn last_key_with_prefix(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        match self.state.prefix(prefix).next_back() {
            Some(guard) => Ok(Some(guard.key()?.to_vec())),
            None => Ok(None),
        }
    }

    /// Writes one entry (cheaper than a batch of one); durable as [`Kv::write`] says.
    pub fn put(&self, key: &[u8], value: &[u8], sync: Sync) -> Result<(), KvError> {
        check_sizes(key, value)?;
        self.state.insert(key, value)?;
        Ok(self.db.persist(sync.mode())?)
    }

    /// Applies `batch` atomically; with [`Sync::Durable`], it and every earlier write
    /// are on disk when this returns.
    pub fn write(&self, batch: Batch, sync: Sync) -> Result<(), KvError> {
        for (key, value) in &batch.0 {
            check_sizes(key, value.as_deref().unwrap_or_default())?;
        }
        if batch.0.is_empty() {
            // The engine returns early on an empty batch without syncing; the promise
            // about earlier writes still holds.
            return Ok(self.db.persist(sync.mode())?);
        }
        let mut writes = self.db.batch().durability(Some(sync.mode()));
        for (key, value) in batch.0 {
            match value {
                Some(value) => writes.insert(&self.state, key, value),
                None => writes.remove(&self.state, key),
            }
        }
        Ok(writes.commit()?)
    }

    /// Calls `f` with every entry, in key order, one at a time (for figures and tools).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), KvError> {
        for guard in self.state.iter() {
            let (k, v) = guard.into_inner()?;
            f(&k, &v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv() -> (tempfile::TempDir, Kv) {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path(), 1 << 20).unwrap();
        (dir, kv)
    }

    #[test]
    fn scans_stop_at_the_prefix_and_the_limit() {
        let (_d, kv) = kv();
        let mut b = Batch::default();
        for k in [&b"a1"[..], b"b1", b"b2", b"b3", b"c1"] {
            b.put(k, k);
        }
        kv.write(b, Sync::Durable).unwrap();
        let keys = |e: Entries| e.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(kv.scan(b"b", None, 10).unwrap()),
            [b"b1", b"b2", b"b3"]
        );
        assert_eq!(keys(kv.scan(b"b", Some(b"b2"), 1).unwrap()), [b"b2"]);
        assert_eq!(kv.keys_between(b"a1", b"b2").unwrap(), [b"a1", b"b1"]);
        assert_eq!(kv.last_key_with_prefix(b"b").unwrap().unwrap(), b"b3");
        assert_eq!(kv.last_key_with_prefix(b"d").unwrap(), None);
    }

    #[test]
    fn a_batch_with_an_oversized_key_writes_nothing() {
        let (_d, kv) = kv();
        let mut b = Batch::default();
        b.put(b"fine", b"1");
        b.put(&vec![7u8; MAX_KEY_BYTES + 1], b"2");
        assert!(matches!(
            kv.write(b, Sync::Durable),
            Err(KvError::TooLarge(n, 1)) if n == MAX_KEY_BYTES + 1
        ));
        assert!(kv.is_empty().unwrap());
        assert!(matches!(
            kv.put(b"k", &vec![0u8; MAX_VALUE_BYTES + 1], Sync::Buffered),
            Err(KvError::TooLarge(1, _))
        ));
        assert!(matches!(
            kv.put(b"", b"v", Sync::Durable),
            Err(KvError::TooLarge(0, 1))
        ));
        assert!(kv.is_empty().unwrap());
    }

    #[test]
    fn deletes_in_a_batch_apply_with_its_puts_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = Kv::open(dir.path(), 1 << 20).unwrap();
            kv.put(b"gone", b"x", Sync::Buffered).unwrap();
            let mut b = Batch::default();
            b.delete(b"gone");
            b.put(b"kept", b"y");
            kv.write(b, Sync::Durable).unwrap();
        }
        let kv = Kv::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(kv.get(b"gone").unwrap(), None);
        assert_eq!(kv.get(b"kept").unwrap().unwrap(), b"y");
    }
}
