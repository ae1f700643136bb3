//! The key-value engine under the store's derived state, indexes, write-ahead log and
//! markers: the one file that names the engine (docs/storage.md § Engine), behind the
//! few operations the store needs — point reads, bounded ordered scans, and atomic
//! batches, durable when asked.

use std::path::Path;

/// A failure of the engine itself (I/O, or damage it detected), with its message.
#[derive(Debug, thiserror::Error)]
#[error("key-value engine: {0}")]
pub struct KvError(String);

impl From<sled::Error> for KvError {
    fn from(e: sled::Error) -> KvError {
        KvError(e.to_string())
    }
}

/// Writes applied together or not at all.
#[derive(Default)]
pub struct Batch(sled::Batch);

impl Batch {
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.0.insert(key, value);
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.0.remove(key);
    }
}

/// Whether a write must be on disk when it returns, or may wait for the next durable
/// one (which makes it durable too: the engine keeps writes in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    Durable,
    Buffered,
}

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

pub struct Kv(sled::Db);

impl Kv {
    /// Opens (or creates) the engine's folder, its cache bounded to `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Kv, KvError> {
        Ok(Kv(sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()?))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.0.get(key)?.map(|v| v.to_vec()))
    }

    pub fn is_empty(&self) -> Result<bool, KvError> {
        Ok(self.0.first()?.is_none())
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
        for kv in self.0.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv?;
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
        for kv in self.0.range(start..end) {
            out.push(kv?.0.to_vec());
        }
        Ok(out)
    }

    /// The greatest key that starts with `prefix`.
    pub fn last_key_with_prefix(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .0
            .scan_prefix(prefix)
            .keys()
            .next_back()
            .transpose()?
            .map(|k| k.to_vec()))
    }

    /// Writes one entry (cheaper than a batch of one); durable as [`Kv::write`] says.
    pub fn put(&self, key: &[u8], value: &[u8], sync: Sync) -> Result<(), KvError> {
        self.0.insert(key, value)?;
        if sync == Sync::Durable {
            self.0.flush()?;
        }
        Ok(())
    }

    /// Applies `batch` atomically; with [`Sync::Durable`], it and every earlier write
    /// are on disk when this returns.
    pub fn write(&self, batch: Batch, sync: Sync) -> Result<(), KvError> {
        self.0.apply_batch(batch.0)?;
        if sync == Sync::Durable {
            self.0.flush()?;
        }
        Ok(())
    }
}
