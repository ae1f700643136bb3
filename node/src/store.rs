//! The only module that touches sled. One tree, prefixed keys, and one atomic batch
//! per block (header, certificate, records, Merkle nodes, derived state, tip), flushed
//! to disk before the block is acknowledged. At open, the store is checked against
//! itself and the genesis, so a damaged store is refused rather than served.

use std::path::Path;

use xinlian_client::block::{Block, Certificate, Header, verify_certificate};
use xinlian_client::merkle::{Frontier, Subtrees};
use xinlian_client::record::{RecordId, SignedRecord};
use xinlian_client::state::key as state_key;
use xinlian_genesis::{Hash32, canonical};

use xinlian_core::chain::{Executed, Tip};
use xinlian_core::consensus::ledger::{Durability, Ledger, LedgerError, LedgerResult};
use xinlian_core::consensus::wire::WalEntry;
use xinlian_core::execute::Consortium;
use xinlian_core::overlay::{StateError, StateRead};

// 2: key bindings name the record that bound them.
// 3: the batch index (`z` nodes) and batch event chains.
// 4: headers name the next roster (`next_roster_hash`); governance state.
const FORMAT: u32 = 4;
const META_FORMAT: &[u8] = b"m/format";
const META_GENESIS: &[u8] = b"m/genesis";
const META_TIP: &[u8] = b"m/tip";
const HEADER: u8 = b'H';
const CERT: u8 = b'C';
const RECORD: u8 = b'R';
const NODE: u8 = b'N';
const STATE: u8 = b'S';
/// Write-ahead log of consensus inputs: `W` ‖ height ‖ sequence.
const WAL: u8 = b'W';
/// Headers whose parent links are re-checked at every open.
const OPEN_CHECK_DEPTH: u64 = 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("storage I/O: {0}")]
    Io(#[from] sled::Error),
    #[error("this data folder belongs to chain {found}, not {expected}; use another folder")]
    OtherChain { expected: Hash32, found: Hash32 },
    #[error(
        "store format {found} is not the supported {FORMAT}; re-sync this node into an empty data folder"
    )]
    Format { found: u32 },
    #[error("store is damaged: {0}. Refusing to serve it; restore from a peer or a backup")]
    Damaged(String),
}

fn damaged(s: impl Into<String>) -> StoreError {
    StoreError::Damaged(s.into())
}

fn k(tag: u8, n: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = tag;
    out[1..].copy_from_slice(&n.to_be_bytes());
    out
}

fn node_key(level: u32, index: u64) -> [u8; 10] {
    let mut out = [0u8; 10];
    out[0] = NODE;
    out[1] = level as u8;
    out[2..].copy_from_slice(&index.to_be_bytes());
    out
}

fn state_key_of(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(STATE);
    out.extend_from_slice(key);
    out
}

fn decode_state<T: serde::Serialize + serde::de::DeserializeOwned>(
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    canonical::decode(value, usize::MAX)
        .map_err(|e| damaged(format!("state {}: {e}", hex::encode(key))))
}

/// sled's page cache unless told otherwise.
pub const CACHE_BYTES_DEFAULT: u64 = 64 << 20;

pub struct Store {
    db: sled::Db,
    /// Held to write a block, and by readers that need several reads from one block
    /// (sled makes each read and each batch atomic, not a sequence of reads).
    commit_lock: std::sync::RwLock<()>,
}

impl Store {
    /// Opens (or creates) the store for this consortium and checks it.
    pub fn open(path: &Path, c: &Consortium) -> Result<(Store, Tip), StoreError> {
        Self::open_with_cache(path, c, CACHE_BYTES_DEFAULT)
    }

    /// As `open`, with sled's page cache bounded to `cache_bytes`.
    pub fn open_with_cache(
        path: &Path,
        c: &Consortium,
        cache_bytes: u64,
    ) -> Result<(Store, Tip), StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let store = Store {
            db,
            commit_lock: std::sync::RwLock::new(()),
        };
        match store.db.get(META_GENESIS)? {
            None => {
                if !store.db.is_empty() {
                    return Err(damaged("data present but no genesis marker"));
                }
                let mut b = sled::Batch::default();
                b.insert(META_FORMAT, &FORMAT.to_be_bytes());
                b.insert(META_GENESIS, &c.chain.0);
                b.insert(META_TIP, canonical::encode(&Tip::genesis(c)));
                store.db.apply_batch(b)?;
                store.db.flush()?;
            }
            Some(g) => {
                let found = Hash32(
                    g.as_ref()
                        .try_into()
                        .map_err(|_| damaged("genesis marker has the wrong length"))?,
                );
                if found != c.chain {
                    return Err(StoreError::OtherChain {
                        expected: c.chain,
                        found,
                    });
                }
                let format = store
                    .db
                    .get(META_FORMAT)?
                    .ok_or_else(|| damaged("no format marker"))?;
                let found = u32::from_be_bytes(
                    format
                        .as_ref()
                        .try_into()
                        .map_err(|_| damaged("format marker"))?,
                );
                if found != FORMAT {
                    return Err(StoreError::Format { found });
                }
            }
        }
        let tip = store.tip()?;
        store.check_tip(c, &tip)?;
        Ok((store, tip))
    }

    /// Runs `f` with no block committed meanwhile: all its reads see one tip.
    pub fn consistent<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        let _guard = self
            .commit_lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(self)
    }

    /// The last committed block's tip, as stored.
    pub fn tip(&self) -> Result<Tip, StoreError> {
        let bytes = self
            .db
            .get(META_TIP)?
            .ok_or_else(|| damaged("no tip marker"))?;
        canonical::decode(&bytes, 1 << 16).map_err(|e| damaged(format!("tip marker: {e}")))
    }

    /// Cheap consistency checks run at every open: the tip's header, certificate,
    /// records, Merkle frontier and recent parent links agree with each other.
    fn check_tip(&self, c: &Consortium, tip: &Tip) -> Result<(), StoreError> {
        let rebuilt = Frontier::from_subtrees(self, tip.frontier.size())?;
        if rebuilt != tip.frontier {
            return Err(damaged(
                "stored Merkle nodes disagree with the tip's frontier",
            ));
        }
        if self.db.get(k(RECORD, tip.frontier.size()))?.is_some() {
            return Err(damaged(format!(
                "a record exists beyond the ledger size {}",
                tip.frontier.size()
            )));
        }
        if tip.height == 0 {
            return if tip == &Tip::genesis(c) {
                Ok(())
            } else {
                Err(damaged("empty chain with a non-genesis tip"))
            };
        }
        let header = self
            .header(tip.height)?
            .ok_or_else(|| damaged(format!("no header at tip height {}", tip.height)))?;
        if header.hash() != tip.hash {
            return Err(damaged(format!(
                "header at height {} does not hash to the tip",
                tip.height
            )));
        }
        if header.ledger_root != tip.frontier.root()
            || header.ledger_size != tip.frontier.size()
            || header.state_hash != tip.state_hash
        {
            return Err(damaged(format!(
                "tip header {} disagrees with the stored ledger tree or state",
                tip.height
            )));
        }
        let cert = self
            .certificate(tip.height)?
            .ok_or_else(|| damaged(format!("no certificate at height {}", tip.height)))?;
        let at = xinlian_core::governance::consortium_at(self, &c.genesis, tip.height)
            .map_err(|e| damaged(format!("roster at height {}: {e}", tip.height)))?;
        verify_certificate(&header, &cert, &at.validators)
            .map_err(|e| damaged(format!("certificate at height {}: {e}", tip.height)))?;
        let block = self.block(tip.height)?.expect("header exists");
        if xinlian_client::block::records_root(&block.records) != header.records_root {
            return Err(damaged(format!(
                "records of block {} do not match its header",
                tip.height
            )));
        }
        let mut child = header;
        for h in (tip.height.saturating_sub(OPEN_CHECK_DEPTH).max(1)..tip.height).rev() {
            let hd = self
                .header(h)?
                .ok_or_else(|| damaged(format!("no header at height {h}")))?;
            if child.parent != hd.hash() {
                return Err(damaged(format!(
                    "header {} does not link to header {h}",
                    h + 1
                )));
            }
            child = hd;
        }
        Ok(())
    }

    /// Stores a finalized block and its certificate atomically, durable on return.
    pub fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), StoreError> {
        let h = &ex.header;
        assert_eq!(cert.height, h.height, "certificate for this block");
        assert_eq!(cert.block, h.hash(), "certificate for this block");
        let mut b = sled::Batch::default();
        b.insert(&k(HEADER, h.height), canonical::encode(h));
        b.insert(&k(CERT, h.height), canonical::encode(cert));
        let first = h.ledger_size - ex.records.len() as u64;
        for (i, r) in ex.records.iter().enumerate() {
            b.insert(&k(RECORD, first + i as u64), r.bytes());
        }
        for (level, index, hash) in &ex.merkle_nodes {
            b.insert(&node_key(*level, *index), &hash.0);
        }
        for (key, v) in &ex.writes {
            match v {
                Some(v) => b.insert(state_key_of(key), v.as_slice()),
                None => b.remove(state_key_of(key)),
            }
        }
        b.insert(META_TIP, canonical::encode(&ex.tip));
        // The log of this height (and any older leftovers) is spent with the block.
        for kv in self.db.range(&[WAL][..]..&k(WAL, h.height + 1)[..]) {
            b.remove(kv?.0);
        }
        {
            let _guard = self
                .commit_lock
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.db.apply_batch(b)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn wal_entries(&self, height: u64) -> Result<Vec<(sled::IVec, WalEntry)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(k(WAL, height)) {
            let (key, v) = kv?;
            let e = canonical::decode(&v, 64 << 20)
                .map_err(|e| damaged(format!("write-ahead log entry: {e}")))?;
            out.push((key, e));
        }
        Ok(out)
    }

    pub fn header(&self, height: u64) -> Result<Option<Header>, StoreError> {
        self.db
            .get(k(HEADER, height))?
            .map(|v| {
                canonical::decode(&v, 1 << 16).map_err(|e| damaged(format!("header {height}: {e}")))
            })
            .transpose()
    }

    pub fn certificate(&self, height: u64) -> Result<Option<Certificate>, StoreError> {
        self.db
            .get(k(CERT, height))?
            .map(|v| {
                canonical::decode(&v, 1 << 20)
                    .map_err(|e| damaged(format!("certificate {height}: {e}")))
            })
            .transpose()
    }

    /// The canonical bytes of the record at `index`, as stored (and as hashed into the
    /// ledger tree).
    pub fn record_bytes_at(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(k(RECORD, index))?.map(|v| v.to_vec()))
    }

    pub fn record_at(&self, index: u64) -> Result<Option<SignedRecord>, StoreError> {
        self.db
            .get(k(RECORD, index))?
            .map(|v| {
                SignedRecord::decode(&v, usize::MAX)
                    .map_err(|e| damaged(format!("record {index}: {e}")))
            })
            .transpose()
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let Some(header) = self.header(height)? else {
            return Ok(None);
        };
        let first = header.ledger_size - u64::from(header.records_count);
        let mut records = Vec::with_capacity(header.records_count as usize);
        for i in first..header.ledger_size {
            records.push(
                self.record_at(i)?
                    .ok_or_else(|| damaged(format!("record {i} of block {height} is missing")))?,
            );
        }
        Ok(Some(Block { header, records }))
    }

    /// Height and ledger index of a finalized record.
    pub fn locate(&self, id: &RecordId) -> Result<Option<(u64, u64)>, StoreError> {
        self.state_value(&state_key::seen(id))
    }

    pub fn state_value<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.db
            .get(state_key_of(key))?
            .map(|v| decode_state(key, &v))
            .transpose()
    }

    /// Derived-state entries under `prefix`, in key order, at most `limit`: each as the
    /// rest of its key after the prefix, and its decoded value.
    pub fn state_scan<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.state_scan_after(prefix, None, limit)
    }

    /// As `state_scan`, starting after the entry whose key rest is `after`: one page.
    pub fn state_scan_after<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        let full = state_key_of(prefix);
        let iter = match after {
            None => self.db.scan_prefix(&full),
            Some(a) => {
                let mut start = full.clone();
                start.extend_from_slice(a);
                // The smallest key above `start`.
                start.push(0);
                self.db.range(start..)
            }
        };
        let mut out = Vec::new();
        for kv in iter.take(limit) {
            let (k, v) = kv?;
            if !k.starts_with(&full) {
                break;
            }
            let key = &k[1..];
            out.push((key[prefix.len()..].to_vec(), decode_state(key, &v)?));
        }
        Ok(out)
    }

    /// All derived state, for full checks.
    pub fn state_all(&self) -> Result<std::collections::BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for kv in self.db.scan_prefix([STATE]) {
            let (k, v) = kv?;
            out.insert(k[1..].to_vec(), v.to_vec());
        }
        Ok(out)
    }

    /// Test hook: overwrite a raw entry, to simulate corruption on disk.
    #[doc(hidden)]
    pub fn corrupt_record_for_tests(&self, index: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.db.insert(k(RECORD, index), bytes)?;
        self.db.flush()?;
        Ok(())
    }
}

fn ledger(e: StoreError) -> LedgerError {
    LedgerError(e.to_string())
}

impl Ledger for Store {
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError> {
        Store::commit(self, ex, cert).map_err(ledger)
    }

    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError> {
        let Some(b) = self.block(height).map_err(ledger)? else {
            return Ok(None);
        };
        let c = self
            .certificate(height)
            .map_err(ledger)?
            .ok_or_else(|| LedgerError(format!("block {height} has no certificate")))?;
        Ok(Some((b, c)))
    }

    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult {
        let seq = self
            .db
            .scan_prefix(k(WAL, height))
            .keys()
            .next_back()
            .transpose()
            .map_err(|e| LedgerError(e.to_string()))?
            .map_or(0, |key| {
                u32::from_be_bytes(key[9..13].try_into().expect("log keys are 13 bytes")) + 1
            });
        let mut key = k(WAL, height).to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        self.db
            .insert(key, canonical::encode(entry))
            .map_err(|e| LedgerError(e.to_string()))?;
        if durability == Durability::Synced {
            self.db.flush().map_err(|e| LedgerError(e.to_string()))?;
        }
        Ok(())
    }

    fn wal(&self, height: u64) -> Result<Vec<WalEntry>, LedgerError> {
        Ok(self
            .wal_entries(height)
            .map_err(ledger)?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }
}

impl StateRead for Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.db
            .get(state_key_of(key))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StateError::Storage(e.to_string()))
    }
}

impl Subtrees for Store {
    type Error = StoreError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash32, StoreError> {
        let v = self
            .db
            .get(node_key(level, index))?
            .ok_or_else(|| damaged(format!("Merkle node ({level}, {index}) is missing")))?;
        Ok(Hash32(v.as_ref().try_into().map_err(|_| {
            damaged(format!(
                "Merkle node ({level}, {index}) has the wrong length"
            ))
        })?))
    }
}
