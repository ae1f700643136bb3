//! Reading derived state through layers of uncommitted writes: a block's writes over
//! the store, and one record's writes over the block's, so a rejected record leaves
//! nothing behind.

use std::collections::BTreeMap;

use serde::{Serialize, de::DeserializeOwned};
use xinlian_genesis::canonical;

/// A write set: `None` deletes the key.
pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("state value under key {key} does not decode: {reason}")]
    Corrupt { key: String, reason: String },
}

pub trait StateRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
}

/// State that exists nowhere yet: genesis, simulations, tests.
pub struct EmptyState;

impl StateRead for EmptyState {
    fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }
}

impl StateRead for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

pub struct Overlay<'a> {
    base: &'a dyn StateRead,
    writes: Writes,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn StateRead) -> Self {
        Overlay {
            base,
            writes: Writes::new(),
        }
    }

    pub fn into_writes(self) -> Writes {
        self.writes
    }

    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    fn merge(&mut self, writes: Writes) {
        self.writes.extend(writes);
    }

    /// Runs `f` on a child layer; keeps its writes only if it succeeds.
    pub fn atomically<T, E>(
        &mut self,
        f: impl FnOnce(&mut Overlay<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut child = Overlay {
            base: &*self,
            writes: Writes::new(),
        };
        let out = f(&mut child)?;
        let writes = child.writes;
        self.merge(writes);
        Ok(out)
    }

    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    pub fn get<T: Serialize + DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StateError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => canonical::decode(&bytes, usize::MAX)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    key: hex::encode(key),
                    reason: e.to_string(),
                }),
        }
    }

    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.writes.insert(key, Some(canonical::encode(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.get_raw(key)
    }
}

impl<T: StateRead + ?Sized> StateRead for std::sync::Arc<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        (**self).get(key)
    }
}
