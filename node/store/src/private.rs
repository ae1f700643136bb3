//! The private-data store (docs/privacy.md § Private data): the sealed text of records,
//! one file per record under `DATA/private/`, kept apart from the ledger so that it can
//! be purged — overwritten, then removed — while the ledger keeps the commitment.
//! Written atomically (a temporary file synced, renamed, the folder synced); what is
//! read back is checked by the caller against its record, never trusted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use xinlian_client::private::{DATA_BYTES_MAX, PrivateData};
use xinlian_client::record::RecordId;

/// The folder's name in the data folder.
pub const DIR: &str = "private";

#[derive(Debug, thiserror::Error)]
pub enum PrivateStoreError {
    #[error("private-data store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("private-data file {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

pub struct PrivateStore {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PrivateStoreError + '_ {
    move |source| PrivateStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl PrivateStore {
    /// Opens (or creates) the store under `data_dir`; removes temporary files a crash
    /// left (they were never acknowledged).
    pub fn open(data_dir: &Path) -> Result<PrivateStore, PrivateStoreError> {
        let dir = data_dir.join(DIR);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = entry.map_err(io_err(&dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        Ok(PrivateStore { dir })
    }

    fn path(&self, id: &RecordId) -> PathBuf {
        self.dir.join(format!("{}.json", id.to_hex()))
    }

    /// Keeps `data` (replacing what was kept for its record), durably; the very same
    /// data already kept is not written again (no second copy on disk to purge).
    pub fn put(&self, data: &PrivateData) -> Result<(), PrivateStoreError> {
        if self.get(&data.record).ok().flatten().as_ref() == Some(data) {
            return Ok(());
        }
        let path = self.path(&data.record);
        // A name of its own for each write: two at once never share a file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            "{}.{}.{n}.tmp",
            data.record.to_hex(),
            std::process::id()
        ));
        let bytes = serde_json::to_vec(data).map_err(|e| PrivateStoreError::Damaged {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.sync_dir()
    }

    /// The data kept for `id`, if any.
    pub fn get(&self, id: &RecordId) -> Result<Option<PrivateData>, PrivateStoreError> {
        let path = self.path(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(DATA_BYTES_MAX as u64 * 2 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        let data: PrivateData =
            serde_json::from_slice(&bytes).map_err(|e| PrivateStoreError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if data.record != *id {
            return Err(PrivateStoreError::Damaged {
                path,
                reason: format!("holds the data of record {}", data.record),
            });
        }
        Ok(Some(data))
    }

    /// Purges the data of `id`: its file overwritten with zeros and synced, then
    /// removed and the folder synced. True if there was any.
    pub fn purge(&self, id: &RecordId) -> Result<bool, PrivateStoreError> {
        let path = self.path(id);
        let mut f = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = f.metadata().map_err(io_err(&path))?.len();
        f.write_all(&vec![0u8; len as usize])
            .map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
        drop(f);
        fs::remove_file(&path).map_err(io_err(&path))?;
        self.sync_dir()?;
        Ok(true)
    }

    fn sync_dir(&self) -> Result<(), PrivateStoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xinlian_client::private::PrivateField;
    use xinlian_genesis::Hash32;

    #[test]
    fn kept_read_back_and_purged_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = PrivateStore::open(dir.path()).unwrap();
        let data = PrivateData {
            record: RecordId([9; 32]),
            fields: vec![PrivateField {
                field: "content".into(),
                salt: Hash32([1; 32]),
                text: "a secret worth purging".into(),
            }],
        };
        s.put(&data).unwrap();
        assert_eq!(s.get(&data.record).unwrap(), Some(data.clone()));
        assert!(s.purge(&data.record).unwrap());
        assert_eq!(s.get(&data.record).unwrap(), None);
        assert!(!s.purge(&data.record).unwrap());
        assert_eq!(fs::read_dir(dir.path().join(DIR)).unwrap().count(), 0);
        // A file holding another record's data is damaged, not an answer.
        s.put(&data).unwrap();
        fs::rename(s.path(&data.record), s.path(&RecordId([8; 32]))).unwrap();
        assert!(matches!(
            s.get(&RecordId([8; 32])),
            Err(PrivateStoreError::Damaged { .. })
        ));
    }
}
