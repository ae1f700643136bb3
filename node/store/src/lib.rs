//! The node's store, and the only crate that knows a storage engine.
//!
//! History that is written once — records, Merkle nodes, blocks with their
//! certificates — lives in checksummed append-only segment files ([`segments`]); derived
//! state, the indexes into the history, the write-ahead log and the tip live in the
//! key-value engine (sled); the [`anchor`] keeps the acknowledged height and the
//! signing high-water mark apart from both. A block is appended and synced to the
//! segments, then committed in one engine batch that also records the segments' new
//! ends, then acknowledged in the anchor (docs/storage.md § Write path). At open, the
//! segments are cut back to the ends the engine committed, the engine is compared with
//! the anchor, and the tip is checked against itself and the genesis, so a damaged or
//! rolled-back store is refused rather than served.

pub mod anchor;
pub mod segments;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
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

use anchor::{Anchor, AnchorError, Marks};
use segments::{FixedLog, LogEnd, LogShape, SegmentError, SegmentLog};

// 2: key bindings name the record that bound them.
// 3: the batch index (`z` nodes) and batch event chains.
// 4: headers name the next roster (`next_roster_hash`); governance state.
// 5: history in segment files, the anchor.
const FORMAT: u32 = 5;
const META_FORMAT: &[u8] = b"m/format";
const META_GENESIS: &[u8] = b"m/genesis";
const META_TIP: &[u8] = b"m/tip";
/// The committed ends of the three history logs ([`LogEnds`]).
const META_LOGS: &[u8] = b"m/logs";
/// Record `index` → its [`segments::Location`] in the records log.
const RECORD_AT: u8 = b'L';
/// Block `height` → its location in the blocks log.
const BLOCK_AT: u8 = b'B';
const STATE: u8 = b'S';
/// Write-ahead log of consensus inputs: `W` ‖ height ‖ sequence.
const WAL: u8 = b'W';
/// Headers whose parent links are re-checked at every open.
const OPEN_CHECK_DEPTH: u64 = 64;

/// Segment size of the records and blocks logs.
const SEGMENT_BYTES: u32 = 128 << 20;
/// Merkle node hashes per segment: 2^20 entries of 40 bytes (40 MiB and a header).
const NODE_SEGMENT_BYTES: u32 = segments::SEGMENT_HEADER_BYTES + (1 << 20) * 40;
/// The largest record the store keeps (the protocol's bound is far below).
const RECORD_MAX: u32 = 1 << 20;
/// A block entry: its header and its certificate.
const BLOCK_ENTRY_MAX: u32 = 2 << 20;

const RECORDS: LogShape = LogShape {
    name: "records",
    first_seq: 0,
    segment_bytes: SEGMENT_BYTES,
    max_entry: RECORD_MAX,
};
const BLOCKS: LogShape = LogShape {
    name: "blocks",
    first_seq: 1,
    segment_bytes: SEGMENT_BYTES,
    max_entry: BLOCK_ENTRY_MAX,
};

/// The ends of the history logs as the engine committed them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LogEnds {
    records: LogEnd,
    blocks: LogEnd,
    /// Merkle node hashes stored.
    nodes: u64,
}

impl LogEnds {
    fn empty() -> LogEnds {
        LogEnds {
            records: LogEnd::empty(RECORDS.first_seq),
            blocks: LogEnd::empty(BLOCKS.first_seq),
            nodes: 0,
        }
    }
}

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
    #[error(
        "{path} holds a store of an earlier format (before {FORMAT}: sled files at its top); re-sync this node into an empty data folder"
    )]
    OldLayout { path: String },
    #[error("store is damaged: {0}. Refusing to serve it; restore from a peer or a backup")]
    Damaged(String),
    #[error("store is damaged: {0}. Refusing to serve it; restore from a peer or a backup")]
    Segment(#[from] SegmentError),
    #[error("store is damaged: {0}. Refusing to serve it; restore from a peer or a backup")]
    Anchor(#[from] AnchorError),
    #[error(
        "store rolled back: this node acknowledged block {acknowledged} but the store holds only {found}. Refusing to open it; re-sync into an empty data folder or restore a newer backup"
    )]
    RolledBack { acknowledged: u64, found: u64 },
    #[error(
        "store lost its write-ahead log: this node signed at height {height} but no log of that height remains, so it could sign twice. Refusing to open it; restore the data folder or re-sync as a new node"
    )]
    GuardLost { height: u64 },
    #[error("the store failed during an earlier commit and must be reopened: {0}")]
    Failed(String),
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

/// Where Merkle node `(level, index)` sits in the nodes log: nodes are appended in the
/// order leaves complete them (the leaf, then each subtree it closes, upwards), and
/// leaves `0..m` complete `2m - popcount(m)` of them, so node `(l, j)`, completed by
/// leaf `m = (j + 1)·2^l - 1`, is number `2m - popcount(m) + l`.
pub fn node_position(level: u32, index: u64) -> Option<u64> {
    let m = index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(level)?)?
        .checked_sub(1)?;
    m.checked_mul(2)?
        .checked_sub(u64::from(m.count_ones()))?
        .checked_add(u64::from(level))
}

/// Merkle nodes stored for a tree of `size` leaves.
fn nodes_for(size: u64) -> u64 {
    2 * size - u64::from(size.count_ones())
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

/// The files of a store under its folder.
struct Paths {
    kv: PathBuf,
    anchor: PathBuf,
    records: PathBuf,
    blocks: PathBuf,
    nodes: PathBuf,
}

impl Paths {
    fn of(root: &Path) -> Paths {
        let history = root.join("history");
        Paths {
            kv: root.join("kv"),
            anchor: root.join("anchor"),
            records: history.join("records"),
            blocks: history.join("blocks"),
            nodes: history.join("nodes"),
        }
    }

    /// Whether any history or an anchor exists (a fresh engine must find neither).
    fn any_history(&self) -> Result<bool, StoreError> {
        Ok(self.anchor.exists()
            || SegmentLog::any_segments(&self.records)?
            || SegmentLog::any_segments(&self.blocks)?
            || SegmentLog::any_segments(&self.nodes)?)
    }
}

pub struct Store {
    db: sled::Db,
    records: SegmentLog,
    blocks: SegmentLog,
    nodes: FixedLog,
    anchor: Mutex<Anchor>,
    /// Set when a commit failed after the engine may have taken it: the logs and the
    /// engine can then disagree until the store is reopened, so nothing more is written.
    failed: AtomicBool,
    /// Held to write a block, and by readers that need several reads from one block
    /// (the engine makes each read and each batch atomic, not a sequence of reads).
    commit_lock: std::sync::RwLock<()>,
}

/// What a block entry in the blocks log holds.
#[derive(Serialize, Deserialize)]
struct BlockEntry {
    header: Header,
    certificate: Certificate,
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
        if path.join("db").exists() || path.join("conf").exists() {
            return Err(StoreError::OldLayout {
                path: path.display().to_string(),
            });
        }
        let paths = Paths::of(path);
        let db = sled::Config::new()
            .path(&paths.kv)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let fresh = match db.get(META_GENESIS)? {
            None => {
                if !db.is_empty() {
                    return Err(damaged("data present but no genesis marker"));
                }
                if paths.any_history()? {
                    let acknowledged = Anchor::open(&paths.anchor)
                        .map(|a| a.marks().acknowledged.to_string())
                        .unwrap_or_else(|e| format!("unknown ({e})"));
                    return Err(damaged(format!(
                        "the key-value store in {} is empty but the folder holds history (acknowledged height {acknowledged}): the engine lost its data",
                        paths.kv.display()
                    )));
                }
                true
            }
            Some(g) => {
                check_marker(&db, &g, c)?;
                false
            }
        };
        let ends = if fresh {
            LogEnds::empty()
        } else {
            let bytes = db
                .get(META_LOGS)?
                .ok_or_else(|| damaged("no history-log marker"))?;
            canonical::decode(&bytes, 1 << 10)
                .map_err(|e| damaged(format!("history-log marker: {e}")))?
        };
        let tip = if fresh {
            Tip::genesis(c)
        } else {
            read_tip(&db)?
        };
        let anchor = if fresh {
            None
        } else {
            let a = Anchor::open(&paths.anchor)?;
            check_anchor(&db, &a.marks(), c, &tip)?;
            Some(a)
        };
        // Only now, with the engine known not to be behind what was acknowledged, may
        // the logs' uncommitted tails be cut.
        let store = Store {
            records: SegmentLog::open(&paths.records, RECORDS, Some(ends.records))?,
            blocks: SegmentLog::open(&paths.blocks, BLOCKS, Some(ends.blocks))?,
            nodes: FixedLog::open(
                &paths.nodes,
                "nodes",
                32,
                NODE_SEGMENT_BYTES,
                Some(ends.nodes),
            )?,
            anchor: Mutex::new(match anchor {
                Some(a) => a,
                None => Anchor::create(
                    &paths.anchor,
                    Marks {
                        chain: c.chain,
                        acknowledged: 0,
                        acknowledged_hash: tip.hash,
                        signed: 0,
                    },
                )?,
            }),
            db,
            failed: AtomicBool::new(false),
            commit_lock: std::sync::RwLock::new(()),
        };
        if fresh {
            let mut b = sled::Batch::default();
            b.insert(META_FORMAT, &FORMAT.to_be_bytes());
            b.insert(META_GENESIS, &c.chain.0);
            b.insert(META_TIP, canonical::encode(&tip));
            b.insert(META_LOGS, canonical::encode(&ends));
            store.db.apply_batch(b)?;
            store.db.flush()?;
        }
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
        read_tip(&self.db)
    }

    /// What the anchor holds now.
    pub fn marks(&self) -> Marks {
        self.anchor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .marks()
    }

    /// Cheap consistency checks run at every open: the tip's header, certificate,
    /// records, Merkle frontier and recent parent links agree with each other and with
    /// the history logs' lengths.
    fn check_tip(&self, c: &Consortium, tip: &Tip) -> Result<(), StoreError> {
        let size = tip.frontier.size();
        if self.records.end().next_seq != size
            || self.nodes.len() != nodes_for(size)
            || self.blocks.end().next_seq != tip.height + 1
        {
            return Err(damaged(format!(
                "the history logs hold {} records, {} Merkle nodes and {} blocks, the tip {size} records and {} blocks",
                self.records.end().next_seq,
                self.nodes.len(),
                self.blocks.end().next_seq - 1,
                tip.height
            )));
        }
        let rebuilt = Frontier::from_subtrees(self, size)?;
        if rebuilt != tip.frontier {
            return Err(damaged(
                "stored Merkle nodes disagree with the tip's frontier",
            ));
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
        let block = self
            .block(tip.height)?
            .ok_or_else(|| damaged(format!("no block at tip height {}", tip.height)))?;
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

    /// Stores a finalized block and its certificate, durable on return (docs/storage.md
    /// § Write path): history appended and synced, then one engine batch, then the
    /// anchor. A failure before the engine batch rewinds the logs; one after it leaves
    /// the store failed until reopened, since the engine may hold the batch.
    pub fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed("an earlier commit".into()));
        }
        let h = &ex.header;
        if cert.height != h.height || cert.block != h.hash() {
            return Err(damaged(format!(
                "a certificate for block {} ({}) offered with block {}",
                cert.height, cert.block, h.height
            )));
        }
        let before = LogEnds {
            records: self.records.end(),
            blocks: self.blocks.end(),
            nodes: self.nodes.len(),
        };
        let mut b = sled::Batch::default();
        let appended = self.append_history(ex, cert, &mut b);
        let ends = match appended {
            Ok(ends) => ends,
            Err(e) => {
                self.rewind(before)?;
                return Err(e);
            }
        };
        for (key, v) in &ex.writes {
            match v {
                Some(v) => b.insert(state_key_of(key), v.as_slice()),
                None => b.remove(state_key_of(key)),
            }
        }
        b.insert(META_TIP, canonical::encode(&ex.tip));
        b.insert(META_LOGS, canonical::encode(&ends));
        // The log of this height (and any older leftovers) is spent with the block.
        for kv in self.db.range(&[WAL][..]..&k(WAL, h.height + 1)[..]) {
            match kv {
                Ok((key, _)) => b.remove(key),
                Err(e) => {
                    self.rewind(before)?;
                    return Err(e.into());
                }
            }
        }
        let engine = {
            let _guard = self
                .commit_lock
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.db.apply_batch(b).and_then(|()| self.db.flush())
        };
        if let Err(e) = engine {
            self.failed.store(true, Ordering::Release);
            return Err(e.into());
        }
        let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        let marks = Marks {
            acknowledged: h.height,
            acknowledged_hash: ex.tip.hash,
            ..anchor.marks()
        };
        anchor.set(marks).inspect_err(|_| {
            self.failed.store(true, Ordering::Release);
        })?;
        Ok(())
    }

    /// Steps 1 and 2 of a commit: the block's records, Merkle nodes and header with its
    /// certificate appended to the history and synced; their index entries into `b`.
    fn append_history(
        &self,
        ex: &Executed,
        cert: &Certificate,
        b: &mut sled::Batch,
    ) -> Result<LogEnds, StoreError> {
        let h = &ex.header;
        let first = h
            .ledger_size
            .checked_sub(ex.records.len() as u64)
            .ok_or_else(|| damaged("a block with more records than its ledger size"))?;
        for (i, r) in ex.records.iter().enumerate() {
            let index = first + i as u64;
            let at = self.records.append(index, r.bytes())?;
            b.insert(&k(RECORD_AT, index), &at.to_bytes());
        }
        for (level, index, hash) in &ex.merkle_nodes {
            let pos = node_position(*level, *index)
                .ok_or_else(|| damaged(format!("Merkle node ({level}, {index}) out of range")))?;
            self.nodes.append(pos, &hash.0)?;
        }
        let entry = canonical::encode(&BlockEntry {
            header: h.clone(),
            certificate: cert.clone(),
        });
        let at = self.blocks.append(h.height, &entry)?;
        b.insert(&k(BLOCK_AT, h.height), &at.to_bytes());
        Ok(LogEnds {
            records: self.records.sync()?,
            nodes: self.nodes.sync()?,
            blocks: self.blocks.sync()?,
        })
    }

    fn rewind(&self, to: LogEnds) -> Result<(), StoreError> {
        let undone = self
            .records
            .rewind(to.records)
            .and_then(|()| self.nodes.rewind(to.nodes))
            .and_then(|()| self.blocks.rewind(to.blocks));
        if let Err(e) = undone {
            self.failed.store(true, Ordering::Release);
            return Err(e.into());
        }
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

    fn block_entry(&self, height: u64) -> Result<Option<BlockEntry>, StoreError> {
        let Some(at) = self.db.get(k(BLOCK_AT, height))? else {
            return Ok(None);
        };
        let at = segments::Location::from_bytes(&at)
            .ok_or_else(|| damaged(format!("index entry of block {height}")))?;
        let bytes = self.blocks.read(height, at)?;
        let entry: BlockEntry = canonical::decode(&bytes, BLOCK_ENTRY_MAX as usize)
            .map_err(|e| damaged(format!("block entry {height}: {e}")))?;
        if entry.header.height != height || entry.certificate.height != height {
            return Err(damaged(format!(
                "block entry {height} holds block {}",
                entry.header.height
            )));
        }
        Ok(Some(entry))
    }

    pub fn header(&self, height: u64) -> Result<Option<Header>, StoreError> {
        Ok(self.block_entry(height)?.map(|e| e.header))
    }

    pub fn certificate(&self, height: u64) -> Result<Option<Certificate>, StoreError> {
        Ok(self.block_entry(height)?.map(|e| e.certificate))
    }

    /// The canonical bytes of the record at `index`, as stored (and as hashed into the
    /// ledger tree).
    pub fn record_bytes_at(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(at) = self.db.get(k(RECORD_AT, index))? else {
            return Ok(None);
        };
        let at = segments::Location::from_bytes(&at)
            .ok_or_else(|| damaged(format!("index entry of record {index}")))?;
        Ok(Some(self.records.read(index, at)?))
    }

    pub fn record_at(&self, index: u64) -> Result<Option<SignedRecord>, StoreError> {
        self.record_bytes_at(index)?
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
        let first = header
            .ledger_size
            .checked_sub(u64::from(header.records_count))
            .ok_or_else(|| {
                damaged(format!(
                    "header {height} counts more records than its ledger"
                ))
            })?;
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

    /// Where record `index`'s bytes lie on disk: the segment file, the offset of its
    /// payload and its length (for error reports and for damage tests).
    pub fn record_file_span(&self, index: u64) -> Result<Option<(PathBuf, u64, u64)>, StoreError> {
        let Some(at) = self.db.get(k(RECORD_AT, index))? else {
            return Ok(None);
        };
        let at = segments::Location::from_bytes(&at)
            .ok_or_else(|| damaged(format!("index entry of record {index}")))?;
        let len = self.records.read(index, at)?.len() as u64;
        Ok(Some((
            self.records.path_of(at),
            u64::from(at.offset) + u64::from(segments::FRAME_BYTES),
            len,
        )))
    }

    /// Bytes on disk by what they hold: each history log, and the engine's folder.
    pub fn disk_usage(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("history: records", self.records.bytes_on_disk()),
            (
                "history: blocks and certificates",
                self.blocks.bytes_on_disk(),
            ),
            ("history: Merkle nodes", self.nodes.bytes_on_disk()),
        ]
    }
}

/// The genesis marker must name this chain, and the format marker this format.
fn check_marker(db: &sled::Db, genesis: &[u8], c: &Consortium) -> Result<(), StoreError> {
    let found = Hash32(
        genesis
            .try_into()
            .map_err(|_| damaged("genesis marker has the wrong length"))?,
    );
    if found != c.chain {
        return Err(StoreError::OtherChain {
            expected: c.chain,
            found,
        });
    }
    let format = db
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
    Ok(())
}

fn read_tip(db: &sled::Db) -> Result<Tip, StoreError> {
    let bytes = db.get(META_TIP)?.ok_or_else(|| damaged("no tip marker"))?;
    canonical::decode(&bytes, 1 << 16).map_err(|e| damaged(format!("tip marker: {e}")))
}

/// The engine must not be behind what the anchor says was acknowledged, and must still
/// hold the write-ahead log of a height this node signed at and has not committed.
fn check_anchor(db: &sled::Db, marks: &Marks, c: &Consortium, tip: &Tip) -> Result<(), StoreError> {
    if marks.chain != c.chain {
        return Err(damaged(format!(
            "the anchor names chain {}, the store {}",
            marks.chain, c.chain
        )));
    }
    if marks.acknowledged > tip.height {
        return Err(StoreError::RolledBack {
            acknowledged: marks.acknowledged,
            found: tip.height,
        });
    }
    if marks.acknowledged == tip.height && marks.acknowledged_hash != tip.hash {
        return Err(damaged(format!(
            "block {} is {} in the anchor but {} in the store",
            tip.height, marks.acknowledged_hash, tip.hash
        )));
    }
    if marks.signed > tip.height && db.scan_prefix(k(WAL, marks.signed)).next().is_none() {
        return Err(StoreError::GuardLost {
            height: marks.signed,
        });
    }
    Ok(())
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
            // The signing high-water mark, kept where damage to the engine cannot
            // erase it: once per height, before the signature may be sent.
            let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
            let marks = anchor.marks();
            if height > marks.signed {
                anchor
                    .set(Marks {
                        signed: height,
                        ..marks
                    })
                    .map_err(|e| LedgerError(e.to_string()))?;
            }
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
        let missing = || damaged(format!("Merkle node ({level}, {index}) is missing"));
        let pos = node_position(level, index).ok_or_else(missing)?;
        if pos >= self.nodes.len() {
            return Err(missing());
        }
        let v = self.nodes.read(pos)?;
        Ok(Hash32(v.as_slice().try_into().map_err(|_| {
            damaged(format!(
                "Merkle node ({level}, {index}) has the wrong length"
            ))
        })?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_positions_follow_the_order_leaves_complete_them() {
        let mut f = Frontier::default();
        let mut n = 0u64;
        for i in 0..1000u64 {
            for (level, index, _) in f.append(Hash32([i as u8; 32])) {
                assert_eq!(node_position(level, index), Some(n), "({level}, {index})");
                n += 1;
            }
            assert_eq!(nodes_for(i + 1), n);
        }
        assert_eq!(node_position(64, 0), None);
        assert_eq!(node_position(1, u64::MAX), None);
    }
}
