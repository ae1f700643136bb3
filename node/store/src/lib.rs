//! The node's store, and the only crate that knows a storage engine.
//!
//! History that is written once — records, Merkle nodes, blocks with their
//! certificates — lives in checksummed append-only segment files ([`segments`]); derived
//! state, the indexes into the history, the write-ahead log and the tip live in the
//! key-value engine ([`kv`]); the [`anchor`] keeps the acknowledged height and the
//! signing high-water mark apart from both. A block is appended and synced to the
//! segments, then committed in one engine batch that also records the segments' new
//! ends, then acknowledged in the anchor (docs/storage.md § Write path). At open, the
//! segments are cut back to the ends the engine committed, the engine is compared with
//! the anchor, and the tip is checked against itself and the genesis, so a damaged or
//! rolled-back store is refused rather than served.

pub mod anchor;
pub mod kv;
pub mod private;
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
use xinlian_core::consensus::ledger::{
    Durability, Ledger, LedgerError, LedgerResult, RepairOutcome,
};
use xinlian_core::consensus::wire::WalEntry;
use xinlian_core::execute::Consortium;
use xinlian_core::overlay::{StateError, StateRead};

use anchor::{Anchor, AnchorError, Marks, SignedEntry};
use kv::{Batch, Kv, KvError};
use segments::{FixedLog, LogEnd, LogShape, SegmentError, SegmentLog};

// 2: key bindings name the record that bound them.
// 3: the batch index (`z` nodes) and batch event chains.
// 4: headers name the next roster (`next_roster_hash`); governance state.
// 5: history in segment files, the anchor.
const FORMAT: u32 = 6;
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
    Io(#[from] KvError),
    #[error("this data folder belongs to chain {found}, not {expected}; use another folder")]
    OtherChain { expected: Hash32, found: Hash32 },
    #[error(
        "store format {found} is not the supported {FORMAT}; re-sync this node into an empty data folder"
    )]
    Format { found: u32 },
    #[error(
        "{path} holds a store of an earlier format ({what}); re-sync this node into an empty data folder"
    )]
    OldLayout { path: String, what: &'static str },
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
        "store lost its write-ahead log: this node signed at height {height}, but {what}, so it could sign twice. Refusing to open it; restore the data folder or re-sync as a new node"
    )]
    GuardLost { height: u64, what: String },
    #[error("the store failed during an earlier commit and must be reopened: {0}")]
    Failed(String),
}

impl StoreError {
    /// Whether this is damage found in what is stored (a checksum, a frame, an index
    /// entry that does not hold), as opposed to a failure to read or write at all.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Damaged(_)
                | StoreError::Segment(
                    SegmentError::Corrupt { .. }
                        | SegmentError::Truncated { .. }
                        | SegmentError::Missing { .. }
                )
        )
    }
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

/// Merkle nodes stored for a tree of `size` leaves (`None` past any real tree).
fn nodes_for(size: u64) -> Option<u64> {
    size.checked_mul(2)
        .map(|n| n - u64::from(size.count_ones()))
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

/// The engine's cache unless told otherwise.
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

    /// Whether any history segment exists (a new store has none).
    fn any_history(&self) -> Result<bool, StoreError> {
        Ok(SegmentLog::any_segments(&self.records)?
            || SegmentLog::any_segments(&self.blocks)?
            || SegmentLog::any_segments(&self.nodes)?)
    }
}

pub struct Store {
    db: Kv,
    records: SegmentLog,
    blocks: SegmentLog,
    nodes: FixedLog,
    anchor: Mutex<Anchor>,
    /// The logs' ends as the engine last committed them (reads below them must find
    /// their index entries).
    committed: std::sync::RwLock<LogEnds>,
    /// Set when a commit failed: after a failed sync nothing on disk can be trusted
    /// until the store is reopened (which decides from what is on disk), and after the
    /// engine took the batch the logs and the engine may disagree, so nothing more is
    /// written.
    failed: AtomicBool,
    /// One commit at a time (the host is the only writer; this makes it a rule).
    writer: Mutex<()>,
    /// Held to write a block, and by readers that need several reads from one block
    /// (the engine makes each read and each batch atomic, not a sequence of reads).
    commit_lock: std::sync::RwLock<()>,
}

/// What reading one block's history back found ([`Store::block_health`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockHealth {
    Intact,
    /// No such block here.
    Absent,
    /// A record of it is damaged; a peer's copy can repair it.
    RecordsDamaged(String),
    /// Its header and certificate entry is damaged: a peer's certified copy can repair
    /// it, unless the entry after it is damaged too.
    EntryDamaged(String),
}

/// What a block entry in the blocks log holds: canonical, followed by zero bytes where
/// it was written again after damage with a certificate shorter than the first one
/// (`Store::repair_from_copy`), so that it fills the place of that one exactly.
#[derive(Serialize, Deserialize)]
struct BlockEntry {
    header: Header,
    certificate: Certificate,
}

/// The file, payload offset and length of entry `seq` of `log` at `at`.
fn file_span(
    log: &SegmentLog,
    seq: u64,
    at: Option<segments::Location>,
) -> Result<Option<(PathBuf, u64, u64)>, StoreError> {
    let Some(at) = at else {
        return Ok(None);
    };
    let len = log.read(seq, at)?.len() as u64;
    Ok(Some((
        log.path_of(at),
        u64::from(at.offset) + u64::from(segments::FRAME_BYTES),
        len,
    )))
}

/// Whether `e` is a history entry failing its frame or checksum: bytes changed on
/// disk, which a peer's checked copy repairs (not an entry that reads whole and is
/// wrong, nor a missing index entry).
fn fails_its_checksum(e: &StoreError) -> bool {
    matches!(e, StoreError::Segment(SegmentError::Corrupt { .. }))
}

fn decode_block_entry(bytes: &[u8]) -> Result<BlockEntry, canonical::CanonicalError> {
    match canonical::decode(bytes, BLOCK_ENTRY_MAX as usize) {
        Err(canonical::CanonicalError::Trailing(padding))
            if bytes[bytes.len().saturating_sub(padding)..]
                .iter()
                .all(|b| *b == 0) =>
        {
            let value = &bytes[..bytes.len().saturating_sub(padding)];
            canonical::decode(value, BLOCK_ENTRY_MAX as usize)
        }
        decoded => decoded,
    }
}

impl Store {
    /// Opens (or creates) the store for this consortium and checks it.
    pub fn open(path: &Path, c: &Consortium) -> Result<(Store, Tip), StoreError> {
        Self::open_with_cache(path, c, CACHE_BYTES_DEFAULT)
    }

    /// As `open`, with the engine's cache bounded to `cache_bytes`. The recovery rules
    /// of docs/storage.md, in order.
    pub fn open_with_cache(
        path: &Path,
        c: &Consortium,
        cache_bytes: u64,
    ) -> Result<(Store, Tip), StoreError> {
        // sled's files, at the top (format 4 and earlier) or under kv/ (format 5).
        for (folder, what) in [
            (
                path.to_path_buf(),
                "format 4 or earlier: sled files at its top",
            ),
            (path.join("kv"), "format 5: a sled engine under kv/"),
        ] {
            if folder.join("db").exists() || folder.join("conf").exists() {
                return Err(StoreError::OldLayout {
                    path: path.display().to_string(),
                    what,
                });
            }
        }
        segments::create_dir_synced(path)?;
        let paths = Paths::of(path);
        let db = Kv::open(&paths.kv, cache_bytes).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let (tip, ends, anchor) = match db.get(META_GENESIS)? {
            None => begin(&db, &paths, c)?,
            Some(g) => {
                check_marker(&db, &g, c)?;
                let tip = read_tip(&db)?;
                let bytes = db
                    .get(META_LOGS)?
                    .ok_or_else(|| damaged("no history-log marker"))?;
                let ends: LogEnds = canonical::decode(&bytes, 1 << 10)
                    .map_err(|e| damaged(format!("history-log marker: {e}")))?;
                check_ends(&ends, &tip)?;
                if !paths.anchor.exists() {
                    return Err(damaged(format!(
                        "the anchor {} is missing",
                        paths.anchor.display()
                    )));
                }
                let anchor = Anchor::open(&paths.anchor)?;
                check_anchor(&db, &anchor.marks(), c, &tip)?;
                check_recent_blocks_indexed(&db, &tip)?;
                (tip, ends, anchor)
            }
        };
        // Only now, with the engine known not to be behind what was acknowledged and its
        // ends agreeing with its tip, may the logs' uncommitted tails be cut.
        let marks = anchor.marks();
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
            anchor: Mutex::new(anchor),
            committed: std::sync::RwLock::new(ends),
            db,
            failed: AtomicBool::new(false),
            writer: Mutex::new(()),
            commit_lock: std::sync::RwLock::new(()),
        };
        store.check_tip(c, &tip, &marks)?;
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

    /// Bytes of history an interrupted commit had appended that this open removed (in
    /// all three logs).
    pub fn cut_at_open(&self) -> u64 {
        self.records.cut_at_open() + self.blocks.cut_at_open() + self.nodes.cut_at_open()
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
    fn check_tip(&self, c: &Consortium, tip: &Tip, marks: &Marks) -> Result<(), StoreError> {
        let size = tip.frontier.size();
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
        // A block entry that fails its checksum is, like a record, damage a peer's
        // certified copy repairs while the node runs (the scrub finds it): what cannot be
        // read is not checked here, and not a reason to refuse to start. What reads whole
        // but disagrees is refused.
        let tip_header = self.header_unless_damaged(tip.height)?;
        if let Some(header) = &tip_header {
            self.check_tip_block(c, tip, header)?;
        }
        let mut child = tip_header;
        for h in (tip.height.saturating_sub(OPEN_CHECK_DEPTH).max(1)..tip.height).rev() {
            let hd = self.header_unless_damaged(h)?;
            if let (Some(child), Some(hd)) = (&child, &hd)
                && child.parent != hd.hash()
            {
                return Err(damaged(format!(
                    "header {} does not link to header {h}",
                    h + 1
                )));
            }
            child = hd;
        }
        if marks.acknowledged > 0 && marks.acknowledged < tip.height {
            // The acknowledged block's hash, or if its entry fails its checksum, the
            // hash the next header names for it.
            let stored = match self.header_unless_damaged(marks.acknowledged)? {
                Some(acknowledged) => Some(acknowledged.hash()),
                None => self
                    .header_unless_damaged(marks.acknowledged + 1)?
                    .map(|next| next.parent),
            };
            if let Some(stored) = stored
                && stored != marks.acknowledged_hash
            {
                return Err(damaged(format!(
                    "block {} is {} in the anchor but {stored} in the store",
                    marks.acknowledged, marks.acknowledged_hash
                )));
            }
        }
        Ok(())
    }

    /// The header of committed block `height`, or none if its entry fails its checksum
    /// (bit rot, repaired from a peer while the node runs). Anything else — a missing
    /// entry or index entry, one that reads whole but does not decode or names another
    /// height — is an error.
    fn header_unless_damaged(&self, height: u64) -> Result<Option<Header>, StoreError> {
        match self.header(height) {
            Ok(Some(header)) => Ok(Some(header)),
            Ok(None) => Err(damaged(format!("no header at height {height}"))),
            Err(e) if fails_its_checksum(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks at open that the tip's header (read whole) is the tip, agrees with the
    /// ledger tree and state, is certified, and that its records hash to it.
    fn check_tip_block(
        &self,
        c: &Consortium,
        tip: &Tip,
        header: &Header,
    ) -> Result<(), StoreError> {
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
        verify_certificate(header, &cert, &at.validators)
            .map_err(|e| damaged(format!("certificate at height {}: {e}", tip.height)))?;
        // Records that fail their checksum are repaired while the node runs; records
        // that read whole but do not hash to the header are a store that disagrees
        // with itself.
        match self.block(tip.height) {
            Ok(Some(block)) => {
                if xinlian_client::block::records_root(&block.records) != header.records_root {
                    return Err(damaged(format!(
                        "records of block {} do not match its header",
                        tip.height
                    )));
                }
            }
            Ok(None) => return Err(damaged(format!("no block at tip height {}", tip.height))),
            Err(e) if e.is_damage() => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Stores a finalized block and its certificate, durable on return (docs/storage.md
    /// § Write path): history appended and synced, then one engine batch, then the
    /// anchor. A failure before the engine batch rewinds the logs; one after it leaves
    /// the store failed until reopened, since the engine may hold the batch.
    pub fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), StoreError> {
        self.commit_blocks(&[(ex, cert)])
    }

    /// Stores consecutive finalized blocks at once, as [`Store::commit`] stores one but
    /// with one sync of the history, one engine batch and one anchor write for them all
    /// (blocks synced from a peer: the per-block syncs were most of a fresh node's
    /// time). All of them or none are committed.
    pub fn commit_blocks(&self, blocks: &[(&Executed, &Certificate)]) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed("an earlier commit".into()));
        }
        let Some((last, _)) = blocks.last() else {
            return Ok(());
        };
        for (i, (ex, cert)) in blocks.iter().enumerate() {
            let h = &ex.header;
            if cert.height != h.height || cert.block != h.hash() {
                return Err(damaged(format!(
                    "a certificate for block {} ({}) offered with block {}",
                    cert.height, cert.block, h.height
                )));
            }
            if i > 0 && h.height != blocks[i - 1].0.header.height + 1 {
                return Err(damaged(format!(
                    "block {} committed after block {}",
                    h.height,
                    blocks[i - 1].0.header.height
                )));
            }
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut b = Batch::default();
        // The log of these heights (and any older leftovers) is spent with the blocks.
        for key in self
            .db
            .keys_between(&[WAL], &k(WAL, last.header.height.saturating_add(1)))?
        {
            b.delete(&key);
        }
        let before = LogEnds {
            records: self.records.end(),
            blocks: self.blocks.end(),
            nodes: self.nodes.len(),
        };
        let appended = blocks
            .iter()
            .try_for_each(|(ex, cert)| self.append_block(ex, cert, &mut b))
            .and_then(|()| self.sync_history());
        let ends = match appended {
            Ok(ends) => ends,
            Err(e) => {
                // After a failed write or sync, trust nothing until reopened; the rewind
                // only tidies (an open would cut the same tail).
                self.failed.store(true, Ordering::Release);
                let _ = self.rewind(before);
                return Err(e);
            }
        };
        // A key several blocks write gets the last one's value (one batch holds each
        // key once).
        let mut writes: std::collections::BTreeMap<&[u8], Option<&[u8]>> = Default::default();
        for (ex, _) in blocks {
            for (key, v) in &ex.writes {
                writes.insert(key, v.as_deref());
            }
        }
        for (key, v) in writes {
            match v {
                Some(v) => b.put(&state_key_of(key), v),
                None => b.delete(&state_key_of(key)),
            }
        }
        b.put(META_TIP, &canonical::encode(&last.tip));
        b.put(META_LOGS, &canonical::encode(&ends));
        let engine = {
            let _guard = self
                .commit_lock
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.db.write(b, kv::Sync::Durable).inspect(|()| {
                // Acknowledged only after the anchor.
                *self
                    .committed
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = ends;
            })
        };
        if let Err(e) = engine {
            self.failed.store(true, Ordering::Release);
            return Err(e.into());
        }
        let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        let marks = Marks {
            acknowledged: last.header.height,
            acknowledged_hash: last.tip.hash,
            ..anchor.marks()
        };
        anchor.set(marks).inspect_err(|_| {
            self.failed.store(true, Ordering::Release);
        })?;
        Ok(())
    }

    /// Step 1 of a commit for one block: its records, Merkle nodes and header with its
    /// certificate appended to the history (not yet synced); their index entries into
    /// `b`.
    fn append_block(
        &self,
        ex: &Executed,
        cert: &Certificate,
        b: &mut Batch,
    ) -> Result<(), StoreError> {
        let h = &ex.header;
        let first = h
            .ledger_size
            .checked_sub(ex.records.len() as u64)
            .ok_or_else(|| damaged("a block with more records than its ledger size"))?;
        for (i, r) in ex.records.iter().enumerate() {
            let index = first + i as u64;
            let at = self.records.append(index, r.bytes())?;
            b.put(&k(RECORD_AT, index), &at.to_bytes());
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
        b.put(&k(BLOCK_AT, h.height), &at.to_bytes());
        Ok(())
    }

    /// Step 2: what was appended made durable; the logs' ends to commit.
    fn sync_history(&self) -> Result<LogEnds, StoreError> {
        Ok(LogEnds {
            records: self.records.sync()?,
            nodes: self.nodes.sync()?,
            blocks: self.blocks.sync()?,
        })
    }

    fn rewind(&self, to: LogEnds) -> Result<(), StoreError> {
        self.records.rewind(to.records)?;
        self.nodes.rewind(to.nodes)?;
        self.blocks.rewind(to.blocks)?;
        Ok(())
    }

    fn wal_entries(&self, height: u64) -> Result<Vec<WalEntry>, StoreError> {
        let mut out = Vec::new();
        for (_, v) in self.db.scan(&k(WAL, height), None, usize::MAX)? {
            let e = canonical::decode(&v, 64 << 20)
                .map_err(|e| damaged(format!("write-ahead log entry: {e}")))?;
            out.push(e);
        }
        Ok(out)
    }

    fn committed(&self) -> LogEnds {
        *self
            .committed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn block_entry(&self, height: u64) -> Result<Option<BlockEntry>, StoreError> {
        let Some(at) = self.block_location(height)? else {
            if height >= BLOCKS.first_seq && height < self.committed().blocks.next_seq {
                return Err(damaged(format!("block {height} has no index entry")));
            }
            return Ok(None);
        };
        let bytes = self.blocks.read(height, at)?;
        let entry = decode_block_entry(&bytes)
            .map_err(|e| damaged(format!("block entry {height}: {e}")))?;
        if entry.header.height != height || entry.certificate.height != height {
            return Err(damaged(format!(
                "block entry {height} holds block {}",
                entry.header.height
            )));
        }
        Ok(Some(entry))
    }

    /// Where block `height`'s entry starts, from its index entry (none if absent).
    fn block_location(&self, height: u64) -> Result<Option<segments::Location>, StoreError> {
        self.location(BLOCK_AT, height, "block")
    }

    /// Where entry `n` of a history log starts, from its index entry under `prefix`
    /// (none if absent; one that does not decode is damage).
    fn location(
        &self,
        prefix: u8,
        n: u64,
        what: &str,
    ) -> Result<Option<segments::Location>, StoreError> {
        self.db
            .get(&k(prefix, n))?
            .map(|b| {
                segments::Location::from_bytes(&b)
                    .ok_or_else(|| damaged(format!("index entry of {what} {n}")))
            })
            .transpose()
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
        let Some(at) = self.record_location(index)? else {
            if index < self.committed().records.next_seq {
                return Err(damaged(format!("record {index} has no index entry")));
            }
            return Ok(None);
        };
        Ok(Some(self.records.read(index, at)?))
    }

    /// Where record `index`'s entry starts, from its index entry (none if absent).
    fn record_location(&self, index: u64) -> Result<Option<segments::Location>, StoreError> {
        self.location(RECORD_AT, index, "record")
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
        // Bounded by the records the log holds, whatever the header says.
        let mut records = Vec::with_capacity((header.records_count as usize).min(1 << 16));
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
            .get(&state_key_of(key))?
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
        let start = after.map(|a| {
            let mut start = full.clone();
            start.extend_from_slice(a);
            // The smallest key above `start`.
            start.push(0);
            start
        });
        let mut out = Vec::new();
        for (k, v) in self.db.scan(&full, start.as_deref(), limit)? {
            let key = &k[1..];
            out.push((key[prefix.len()..].to_vec(), decode_state(key, &v)?));
        }
        Ok(out)
    }

    /// All derived state, for full checks.
    pub fn state_all(&self) -> Result<std::collections::BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in self.db.scan(&[STATE], None, usize::MAX)? {
            out.insert(k[1..].to_vec(), v);
        }
        Ok(out)
    }

    /// Whether block `height`'s history reads back whole: its entry in the blocks log
    /// (header and certificate) and each of its records. Damage is the answer, not an
    /// error; an error is a failure to read at all.
    pub fn block_health(&self, height: u64) -> Result<BlockHealth, StoreError> {
        let header = match self.header(height) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(BlockHealth::Absent),
            Err(e) if e.is_damage() => return Ok(BlockHealth::EntryDamaged(e.to_string())),
            Err(e) => return Err(e),
        };
        let first = header
            .ledger_size
            .saturating_sub(u64::from(header.records_count));
        for i in first..header.ledger_size {
            match self.record_bytes_at(i) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Ok(BlockHealth::RecordsDamaged(format!(
                        "record {i} is missing"
                    )));
                }
                Err(e) if e.is_damage() => return Ok(BlockHealth::RecordsDamaged(e.to_string())),
                Err(e) => return Err(e),
            }
        }
        Ok(BlockHealth::Intact)
    }

    /// Writes the damaged history of block `copy.header.height` again from `copy` and
    /// `certificate`, a peer's, each entry into exactly the place its index entry
    /// names, and only once the copy is shown to be the block committed here:
    /// - its header is ours, read from our own blocks log (checked when it was
    ///   committed); where that entry is damaged, the copy's header must hash to what
    ///   our chain names for it (the next header's parent, or the tip's hash), and the
    ///   entry is written again with `certificate`, which the caller has verified and
    ///   trimmed to a quorum so that it fits the place of ours, zero-padded;
    /// - its records hash to that header's root, and each damaged one is written again.
    ///
    /// A copy that is not ours is refused, one whose certificate does not fit the place
    /// of ours is `Unfit`, and a block entry whose next block's entry (which names its
    /// hash) fails its checksum too `Waits` for that one: each changes nothing. Damage
    /// of our own that keeps the copy from being checked or placed is an error
    /// (`is_damage`): a damaged index entry in the engine, an entry that reads whole but
    /// is wrong, a place that its frame's length does not fill. Serialised with
    /// commits, so the logs' ends do not move meanwhile.
    pub fn repair_from_copy(
        &self,
        copy: &Block,
        certificate: &Certificate,
    ) -> Result<RepairOutcome, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed("an earlier commit".into()));
        }
        let height = copy.header.height;
        // Only the copy's faults are `Refused` (they are the peer's); what keeps us
        // from checking or placing it is our damage, an error. Each is found before
        // anything is written.
        if copy.records.len() != copy.header.records_count as usize
            || xinlian_client::block::records_root(&copy.records) != copy.header.records_root
        {
            return Ok(RepairOutcome::Refused(format!(
                "the copy's records of block {height} do not hash to its header's root"
            )));
        }
        // A record's sealed copy hashes to the opened one's leaf, but is not the record
        // this node stored (nor one any node executes).
        if (copy.records.iter()).any(|r| r.envelope.body.has_sealed_amount()) {
            return Ok(RepairOutcome::Refused(format!(
                "the copy of block {height} has a record's sealed copy"
            )));
        }
        let mut entries = 0;
        match self.block_entry(height) {
            Ok(Some(ours)) if ours.header == copy.header => {}
            Ok(Some(_)) => {
                return Ok(RepairOutcome::Refused(format!(
                    "the copy's header of block {height} is not ours"
                )));
            }
            Ok(None) => return Err(damaged(format!("no block {height} here to repair"))),
            Err(e) if fails_its_checksum(&e) => {
                if let Some(not_written) = self.repair_block_entry(copy, certificate)? {
                    return Ok(not_written);
                }
                entries += 1;
            }
            Err(e) => return Err(e),
        }
        entries += self.repair_records(copy)?;
        Ok(match entries {
            0 => RepairOutcome::Intact,
            entries => RepairOutcome::Repaired { entries },
        })
    }

    /// Writes block `copy.header.height`'s damaged entry again from the copy's header
    /// and `certificate`, once the header hashes to what our chain names for it. What
    /// keeps the copy from being written, if anything (it is refused, or waits for the
    /// next block's entry, or its certificate does not fit): nothing is written then.
    fn repair_block_entry(
        &self,
        copy: &Block,
        certificate: &Certificate,
    ) -> Result<Option<RepairOutcome>, StoreError> {
        let height = copy.header.height;
        let tip = self.tip()?;
        let named = if height == tip.height {
            tip.hash
        } else if height < tip.height {
            match self.block_entry(height + 1) {
                Ok(Some(next)) => next.header.parent,
                Ok(None) => return Err(damaged(format!("block {} is missing", height + 1))),
                Err(e) if fails_its_checksum(&e) => {
                    return Ok(Some(RepairOutcome::Waits { on: height + 1 }));
                }
                Err(e) => {
                    return Err(damaged(format!(
                        "block {height}'s entry cannot be checked: the entry after it, \
                         which names its hash, is damaged too ({e})"
                    )));
                }
            }
        } else {
            return Err(damaged(format!("no block {height} here to repair")));
        };
        let hash = copy.header.hash();
        if hash != named {
            return Ok(Some(RepairOutcome::Refused(format!(
                "the copy's header of block {height} is not the one our chain names"
            ))));
        }
        if certificate.height != height || certificate.block != hash {
            return Ok(Some(RepairOutcome::Refused(format!(
                "the copy's certificate is not for its header of block {height}"
            ))));
        }
        let at = self
            .block_location(height)?
            .ok_or_else(|| damaged(format!("block {height} has no index entry")))?;
        let end = self.committed().blocks;
        let next = if height + 1 < end.next_seq {
            self.block_location(height + 1)?
                .ok_or_else(|| damaged(format!("block {} has no index entry", height + 1)))?
        } else {
            end.at
        };
        let room = self.blocks.room(height, at, next)?;
        // The place must be the one frame its own length says (a flipped byte in the
        // payload leaves the length whole): padding never reaches past our own entry,
        // whatever a damaged location says.
        if u64::from(self.blocks.stored_len(height, at)?) != room {
            return Err(damaged(format!(
                "block {height}'s entry: its place and its frame's length disagree \
                 (the location or the length is damaged)"
            )));
        }
        let mut entry = canonical::encode(&BlockEntry {
            header: copy.header.clone(),
            certificate: certificate.clone(),
        });
        if entry.len() as u64 > room {
            return Ok(Some(RepairOutcome::Unfit(format!(
                "block {height}'s entry: the copy's certificate, trimmed to a quorum, needs \
                 {} bytes and its place holds {room}",
                entry.len()
            ))));
        }
        entry.resize(room as usize, 0);
        self.rewrite_history(|| self.blocks.rewrite(height, at, next, &entry))?;
        Ok(None)
    }

    /// Writes the damaged records of block `copy` again from it, once its header is
    /// shown to be ours and its records to hash to that header's root. How many it
    /// wrote.
    fn repair_records(&self, copy: &Block) -> Result<usize, StoreError> {
        let first = copy
            .header
            .ledger_size
            .saturating_sub(u64::from(copy.header.records_count));
        let end = self.committed().records;
        let mut entries = 0;
        for (index, record) in (first..).zip(&copy.records) {
            match self.record_bytes_at(index) {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) if e.is_damage() => {}
                Err(e) => return Err(e),
            }
            let at = self
                .record_location(index)?
                .ok_or_else(|| damaged(format!("record {index} has no index entry")))?;
            let next = if index + 1 < end.next_seq {
                self.record_location(index + 1)?
                    .ok_or_else(|| damaged(format!("record {} has no index entry", index + 1)))?
            } else {
                end.at
            };
            let bytes = record.canonical_bytes();
            self.rewrite_history(|| self.records.rewrite(index, at, next, &bytes))?;
            entries += 1;
        }
        Ok(entries)
    }

    /// Runs one rewrite of a history entry. After a failed write or sync nothing of the
    /// file can be trusted until it is reopened, as after a failed commit.
    fn rewrite_history(
        &self,
        rewrite: impl FnOnce() -> Result<(), SegmentError>,
    ) -> Result<(), StoreError> {
        match rewrite() {
            Ok(()) => Ok(()),
            Err(e @ SegmentError::Corrupt { .. }) => Err(e.into()),
            Err(e) => {
                self.failed.store(true, Ordering::Release);
                Err(e.into())
            }
        }
    }

    /// Where record `index`'s bytes lie on disk: the segment file, the offset of its
    /// payload and its length (for error reports and for damage tests).
    pub fn record_file_span(&self, index: u64) -> Result<Option<(PathBuf, u64, u64)>, StoreError> {
        file_span(&self.records, index, self.record_location(index)?)
    }

    /// Where block `height`'s entry (header and certificate) lies on disk: the segment
    /// file, the offset of its payload and its length (for damage tests).
    pub fn block_file_span(&self, height: u64) -> Result<Option<(PathBuf, u64, u64)>, StoreError> {
        file_span(&self.blocks, height, self.block_location(height)?)
    }

    /// Bytes on disk of each history log, by what it holds (the engine's folder is not
    /// counted here).
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

/// The anchor of a store that has acknowledged nothing and signed nothing.
fn new_store_marks(c: &Consortium, tip: &Tip) -> Marks {
    Marks {
        chain: c.chain,
        acknowledged: 0,
        acknowledged_hash: tip.hash,
        signed: 0,
        last_signed: None,
    }
}

/// An engine with no genesis marker: a new store, if the folder holds no history and at
/// most the anchor of a new store (a first start interrupted after creating it);
/// otherwise an engine that lost its data. The anchor is made durable before the
/// engine's markers, so a store with markers always has one.
fn begin(db: &Kv, paths: &Paths, c: &Consortium) -> Result<(Tip, LogEnds, Anchor), StoreError> {
    if !db.is_empty()? {
        return Err(damaged("data present but no genesis marker"));
    }
    let tip = Tip::genesis(c);
    let history = paths.any_history()?;
    let lost = |acknowledged: String| {
        damaged(format!(
            "the key-value store in {} is empty but the folder holds history (acknowledged height {acknowledged}): the engine lost its data",
            paths.kv.display()
        ))
    };
    let anchor = if paths.anchor.exists() {
        match Anchor::open(&paths.anchor) {
            Ok(a) if !history && a.marks() == new_store_marks(c, &tip) => a,
            Ok(a) => return Err(lost(a.marks().acknowledged.to_string())),
            Err(e) => return Err(lost(format!("unknown: {e}"))),
        }
    } else if history {
        return Err(lost("unknown: the anchor is missing too".into()));
    } else {
        Anchor::create(&paths.anchor, new_store_marks(c, &tip))?
    };
    let ends = LogEnds::empty();
    let mut b = Batch::default();
    b.put(META_FORMAT, &FORMAT.to_be_bytes());
    b.put(META_GENESIS, &c.chain.0);
    b.put(META_TIP, &canonical::encode(&tip));
    b.put(META_LOGS, &canonical::encode(&ends));
    db.write(b, kv::Sync::Durable)?;
    Ok((tip, ends, anchor))
}

/// The history logs' committed ends must be those of the tip: as many records as the
/// ledger, the Merkle nodes of a tree that size, a block per height. Checked before the
/// logs are opened, since opening cuts them to these ends.
fn check_ends(ends: &LogEnds, tip: &Tip) -> Result<(), StoreError> {
    let size = tip.frontier.size();
    let expected = (
        Some(size),
        nodes_for(size),
        tip.height.checked_add(BLOCKS.first_seq),
    );
    let found = (
        Some(ends.records.next_seq),
        Some(ends.nodes),
        Some(ends.blocks.next_seq),
    );
    if expected != found {
        return Err(damaged(format!(
            "the history-log marker ({} records, {} Merkle nodes, next block {}) disagrees with the tip ({size} records, height {})",
            ends.records.next_seq, ends.nodes, ends.blocks.next_seq, tip.height
        )));
    }
    Ok(())
}

/// The genesis marker must name this chain, and the format marker this format.
fn check_marker(db: &Kv, genesis: &[u8], c: &Consortium) -> Result<(), StoreError> {
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
        <[u8; 4]>::try_from(format.as_slice()).map_err(|_| damaged("format marker"))?,
    );
    if found != FORMAT {
        return Err(StoreError::Format { found });
    }
    Ok(())
}

fn read_tip(db: &Kv) -> Result<Tip, StoreError> {
    let bytes = db.get(META_TIP)?.ok_or_else(|| damaged("no tip marker"))?;
    canonical::decode(&bytes, 1 << 16).map_err(|e| damaged(format!("tip marker: {e}")))
}

/// The engine must not be behind what the anchor says was acknowledged, and must still
/// hold the write-ahead log of a height this node signed at and has not committed.
fn check_anchor(db: &Kv, marks: &Marks, c: &Consortium, tip: &Tip) -> Result<(), StoreError> {
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
    if marks.signed > tip.height {
        check_signed_log(db, marks)?;
    }
    Ok(())
}

/// Every height the engine's journal could still hold must have its block's index
/// entry. Each height committed writes at least its block's location (a 9-byte key, an
/// 8-byte value, 21 bytes of item header: 38; several synced blocks share one batch's
/// tip and logs' ends), so the journal held at most `bytes / 38` heights; a batch
/// the engine dropped from the middle of its journals (it cuts a damaged journal at
/// the damage and replays the later ones) leaves its height without one.
fn check_recent_blocks_indexed(db: &Kv, tip: &Tip) -> Result<(), StoreError> {
    let per_height = kv::JOURNAL_BYTES_PER_WRITE_AT_LEAST + 9 + 8;
    let in_journal = db.journal_bytes_at_open() / per_height + 1;
    let from = tip.height.saturating_sub(in_journal).max(1);
    if tip.height == 0 {
        return Ok(());
    }
    let (found, unexpected) = db.first_unexpected_key(
        &k(BLOCK_AT, from),
        &k(BLOCK_AT, tip.height.saturating_add(1)),
        |n, key| key == k(BLOCK_AT, from + n),
    )?;
    if unexpected.is_none() && found == tip.height - from + 1 {
        return Ok(());
    }
    Err(damaged(format!(
        "the engine holds no index entry of block {}, below its tip {}: it lost that block's writes, as when it cuts a damaged journal; re-sync this node into an empty data folder",
        from + found,
        tip.height
    )))
}

/// The write-ahead log of the height this node signed at last must hold, numbered from
/// 0 without a gap, every entry through the one the anchor names, and that entry must
/// be the one it was (an anchor of the first layout names none: then at least one).
fn check_signed_log(db: &Kv, marks: &Marks) -> Result<(), StoreError> {
    let height = marks.signed;
    let lost = |what: String| StoreError::GuardLost { height, what };
    let entries = db.keys_between(&k(WAL, height), &k(WAL, height.saturating_add(1)))?;
    for (n, key) in entries.iter().enumerate() {
        let number = key.get(9..13).and_then(|b| <[u8; 4]>::try_from(b).ok());
        if number.map(u32::from_be_bytes) != u32::try_from(n).ok() {
            return Err(lost(format!(
                "that height's log lacks entry {n} (found key {})",
                hex::encode(key)
            )));
        }
    }
    match marks.last_signed {
        None if entries.is_empty() => Err(lost("that height's log holds no entry".into())),
        None => Ok(()),
        Some(last) => match entries.get(last.number as usize) {
            None => Err(lost(format!(
                "that height's log holds {} entries, and entry {} was durable when the node signed",
                entries.len(),
                last.number
            ))),
            Some(key) => match db.get(key)? {
                Some(v) if canonical::sha256(&v) == last.digest => Ok(()),
                _ => Err(lost(format!(
                    "entry {} of that height's log is not the one durable when the node signed",
                    last.number
                ))),
            },
        },
    }
}

fn ledger(e: StoreError) -> LedgerError {
    LedgerError::Storage(e.to_string())
}

/// A read of block `height`'s history that failed: damage is reported as such (the
/// node goes on and repairs it), anything else as a storage failure.
fn ledger_at(height: u64) -> impl FnOnce(StoreError) -> LedgerError {
    move |e| match e.is_damage() {
        true => LedgerError::Damaged {
            height,
            what: e.to_string(),
        },
        false => ledger(e),
    }
}

impl Ledger for Store {
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError> {
        Store::commit(self, ex, cert).map_err(ledger)
    }

    fn commit_many(&self, blocks: &[(Executed, Certificate)]) -> Result<(), LedgerError> {
        let blocks: Vec<(&Executed, &Certificate)> = blocks.iter().map(|(e, c)| (e, c)).collect();
        self.commit_blocks(&blocks).map_err(ledger)
    }

    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError> {
        let Some(b) = self.block(height).map_err(ledger_at(height))? else {
            return Ok(None);
        };
        let c = self
            .certificate(height)
            .map_err(ledger_at(height))?
            .ok_or_else(|| LedgerError::Damaged {
                height,
                what: "no certificate".into(),
            })?;
        Ok(Some((b, c)))
    }

    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult {
        if self.failed.load(Ordering::Acquire) {
            return Err(ledger(StoreError::Failed("an earlier commit".into())));
        }
        let last = self
            .db
            .last_key_with_prefix(&k(WAL, height))
            .map_err(|e| LedgerError::Storage(e.to_string()))?;
        let seq = match last {
            None => 0,
            Some(key) => key
                .get(9..13)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .and_then(|b| u32::from_be_bytes(b).checked_add(1))
                .ok_or_else(|| {
                    ledger(damaged(format!(
                        "write-ahead log key {} of height {height}",
                        hex::encode(&key)
                    )))
                })?,
        };
        let mut key = k(WAL, height).to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        let sync = match durability {
            Durability::Synced => kv::Sync::Durable,
            Durability::Buffered => kv::Sync::Buffered,
        };
        // A failed write or sync may have left the entry visible but not durable:
        // like a failed commit, it fails the store until it is reopened.
        let fail = |e: String| {
            self.failed.store(true, Ordering::Release);
            LedgerError::Storage(e)
        };
        let bytes = canonical::encode(entry);
        self.db
            .put(&key, &bytes, sync)
            .map_err(|e| fail(e.to_string()))?;
        if durability == Durability::Synced {
            // The signing high-water mark and the entry this flush made durable, kept
            // where damage to the engine cannot erase them, before the signature may
            // be sent: an engine that loses this entry, or any before it, is refused.
            let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
            let marks = anchor.marks();
            if height >= marks.signed {
                anchor
                    .set(Marks {
                        signed: height,
                        last_signed: Some(SignedEntry {
                            number: seq,
                            digest: canonical::sha256(&bytes),
                        }),
                        ..marks
                    })
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn wal(&self, height: u64) -> Result<Vec<WalEntry>, LedgerError> {
        self.wal_entries(height).map_err(ledger)
    }

    fn repair(
        &self,
        block: &Block,
        certificate: &Certificate,
    ) -> Result<RepairOutcome, LedgerError> {
        let height = block.header.height;
        let outcome = self
            .repair_from_copy(block, certificate)
            .map_err(ledger_at(height))?;
        if let RepairOutcome::Repaired { .. } = outcome {
            // Leaves of the mended records may be damaged too: computable now. A node
            // that is not (its leaves lie in another damaged block) is no failure of
            // this repair: reads compute it meanwhile, the next scrub writes it.
            match self.mend_nodes(height) {
                Err(e) if !e.is_damage() => return Err(ledger(e)),
                _ => {}
            }
        }
        Ok(outcome)
    }
}

impl StateRead for Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.db
            .get(&state_key_of(key))
            .map_err(|e| StateError::Storage(e.to_string()))
    }
}

/// Damaged Merkle nodes one read may compute again from their children.
const NODE_RECOMPUTE_MAX: u32 = 4096;

impl Store {
    /// Merkle node `(level, index)` as stored, at `pos` in the nodes log.
    fn stored_node(&self, pos: u64, level: u32, index: u64) -> Result<Hash32, StoreError> {
        let v = self.nodes.read(pos)?;
        Ok(Hash32(v.as_slice().try_into().map_err(|_| {
            damaged(format!(
                "Merkle node ({level}, {index}) has the wrong length"
            ))
        })?))
    }

    /// Merkle node `(level, index)`, which must be in the log: as stored or, where its
    /// entry is damaged, computed again from its children (a leaf from its record,
    /// read under its checksum), each child the same way, at most `budget` of them.
    fn node(&self, level: u32, index: u64, budget: &mut u32) -> Result<Hash32, StoreError> {
        let missing = || damaged(format!("Merkle node ({level}, {index}) is missing"));
        let pos = node_position(level, index).ok_or_else(missing)?;
        if pos >= self.nodes.len() {
            return Err(missing());
        }
        match self.stored_node(pos, level, index) {
            Err(e) if e.is_damage() && *budget > 0 => {
                *budget -= 1;
                if level == 0 {
                    let record = self.record_at(index)?.ok_or_else(missing)?;
                    Ok(record.leaf())
                } else {
                    let left = self.node(level - 1, 2 * index, budget)?;
                    let right = self.node(level - 1, 2 * index + 1, budget)?;
                    Ok(xinlian_client::merkle::node_hash(&left, &right))
                }
            }
            read => read,
        }
    }

    /// The Merkle nodes block `height`'s records completed whose entries fail their
    /// read (damage, not an I/O failure), with what the read found: `(level, index,
    /// what)`.
    pub fn damaged_nodes(&self, height: u64) -> Result<Vec<(u32, u64, String)>, StoreError> {
        let Some(header) = self.header(height)? else {
            return Ok(Vec::new());
        };
        let first = header
            .ledger_size
            .saturating_sub(u64::from(header.records_count));
        let mut damaged_nodes = Vec::new();
        for leaf in first..header.ledger_size {
            for level in 0..=leaf.trailing_ones() {
                let index = leaf >> level;
                let pos = node_position(level, index)
                    .ok_or_else(|| damaged(format!("Merkle node ({level}, {index})")))?;
                match self.stored_node(pos, level, index) {
                    Ok(_) => {}
                    Err(e) if e.is_damage() => damaged_nodes.push((level, index, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(damaged_nodes)
    }

    /// Writes again, in place, each damaged Merkle node of block `height`
    /// ([`Store::damaged_nodes`]), computed from its children (docs/storage.md §
    /// Repair): the tree is ours to recompute, no peer is needed. Returns how many
    /// were written; a node that cannot be computed (its record is damaged too, until
    /// a peer's copy mends it) does not stop the others, and the first such is the
    /// error (one that `is_damage`). Serialised with commits.
    pub fn mend_nodes(&self, height: u64) -> Result<usize, StoreError> {
        let found = self.damaged_nodes(height)?;
        let mut not_computable = None;
        for (level, index, _) in &found {
            let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if self.failed.load(Ordering::Acquire) {
                return Err(StoreError::Failed("an earlier commit".into()));
            }
            let mut budget = NODE_RECOMPUTE_MAX;
            let hash = match self.node(*level, *index, &mut budget) {
                Ok(hash) => hash,
                Err(e) if e.is_damage() => {
                    not_computable.get_or_insert(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let pos = node_position(*level, *index)
                .ok_or_else(|| damaged(format!("Merkle node ({level}, {index})")))?;
            self.rewrite_history(|| self.nodes.rewrite(pos, &hash.0))?;
        }
        match not_computable {
            Some(e) => Err(e),
            None => Ok(found.len()),
        }
    }
}

/// Every root and proof the store answers reads its Merkle nodes here: a damaged node
/// is computed again from below rather than failing the read, until `mend_nodes`
/// writes it back.
impl Subtrees for Store {
    type Error = StoreError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash32, StoreError> {
        let mut budget = NODE_RECOMPUTE_MAX;
        self.node(level, index, &mut budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xinlian_genesis::keys::{SigningKey, public_key};
    use xinlian_genesis::{Genesis, Member, Policy, Role};

    fn consortium() -> Consortium {
        let key = |tag: u8| public_key(&SigningKey::from_bytes(&[tag; 32]));
        let genesis = Genesis {
            chain_id: "store-test".into(),
            genesis_time_ms: 1_795_000_000_000,
            policy: Policy::default(),
            members: vec![Member {
                id: "v0".into(),
                name: "Validator 0".into(),
                region: "310000".into(),
                roles: vec![Role::Validator],
                voting_power: 1,
                node_key: Some(key(1)),
                signing_key: key(3),
            }],
        };
        Consortium::new(genesis.to_file().validate().expect("valid genesis"))
    }

    #[test]
    fn a_first_start_interrupted_after_the_anchor_opens_as_a_new_store() {
        let c = consortium();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ledger");
        std::fs::create_dir_all(&root).unwrap();
        // The anchor was made durable, the engine's markers never written; a half
        // written anchor of an earlier attempt lies beside it.
        std::fs::write(root.join("anchor.new"), [9; 10]).unwrap();
        Anchor::create(&root.join("anchor"), new_store_marks(&c, &Tip::genesis(&c))).unwrap();
        let (store, tip) = Store::open(&root, &c).expect("a new store");
        assert_eq!(tip, Tip::genesis(&c));
        assert_eq!(store.marks(), new_store_marks(&c, &tip));
        drop(store);
        assert!(Store::open(&root, &c).is_ok(), "and reopens");
    }

    #[test]
    fn an_empty_engine_beside_an_anchor_that_acknowledged_blocks_is_refused() {
        let c = consortium();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ledger");
        std::fs::create_dir_all(&root).unwrap();
        let mut anchor =
            Anchor::create(&root.join("anchor"), new_store_marks(&c, &Tip::genesis(&c))).unwrap();
        anchor
            .set(Marks {
                acknowledged: 5,
                ..anchor.marks()
            })
            .unwrap();
        drop(anchor);
        let err = Store::open(&root, &c).err().expect("refused").to_string();
        assert!(
            err.contains("is empty but the folder holds history (acknowledged height 5)"),
            "{err}"
        );
        // Refused again, not turned into a new store by the first attempt.
        assert!(Store::open(&root, &c).is_err());
    }

    #[test]
    fn a_store_of_the_earlier_layout_is_refused_with_how_to_resync() {
        let c = consortium();
        // sled's `conf` file in `sled_at` (relative to the store's folder): the answer.
        let refusal = |sled_at: &str| {
            let dir = tempfile::tempdir().unwrap();
            let folder = dir.path().join(sled_at);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("conf"), b"segment_size: 524288").unwrap();
            let err = Store::open(dir.path(), &c)
                .err()
                .expect("refused")
                .to_string();
            assert!(
                !dir.path().join("kv").join("version").exists(),
                "nothing created"
            );
            err
        };
        let top = refusal("");
        assert!(
            top.contains("earlier format (format 4") && top.contains("re-sync"),
            "{top}"
        );
        // Format 5: history segments beside a sled engine.
        let kv = refusal("kv");
        assert!(
            kv.contains("earlier format (format 5: a sled engine") && kv.contains("re-sync"),
            "{kv}"
        );
    }

    #[test]
    fn node_positions_follow_the_order_leaves_complete_them() {
        let mut f = Frontier::default();
        let mut n = 0u64;
        for i in 0..1000u64 {
            for (level, index, _) in f.append(Hash32([i as u8; 32])) {
                assert_eq!(node_position(level, index), Some(n), "({level}, {index})");
                n += 1;
            }
            assert_eq!(nodes_for(i + 1), Some(n));
        }
        assert_eq!(node_position(64, 0), None);
        assert_eq!(node_position(1, u64::MAX), None);
    }

    /// A block entry written again with a shorter certificate is zero-padded to fill
    /// the place of the first one: it reads back as the entry; bytes after it that are
    /// not zeros, or an entry that is not canonical, are damage.
    #[test]
    fn a_block_entry_padded_with_zeros_reads_back_and_other_trailing_bytes_do_not() {
        let c = consortium();
        let tip = Tip::genesis(&c);
        let header = Header {
            chain: c.chain,
            height: 1,
            parent: tip.hash,
            time_ms: tip.time_ms + 1,
            proposer: c.validators.validators()[0].key,
            records_root: Hash32([1; 32]),
            records_count: 0,
            ledger_root: Hash32([2; 32]),
            ledger_size: 0,
            state_hash: tip.state_hash,
            trace_root: Hash32([3; 32]),
            credit_root: Hash32([3; 32]),
            validators_hash: c.validators.hash(),
            next_roster_hash: Hash32([4; 32]),
        };
        let entry = BlockEntry {
            certificate: Certificate {
                height: 1,
                round: 0,
                block: header.hash(),
                signatures: Vec::new(),
            },
            header,
        };
        let bytes = canonical::encode(&entry);
        let mut padded = bytes.clone();
        padded.resize(bytes.len() + 70, 0);
        let read = decode_block_entry(&padded).unwrap();
        assert_eq!(read.header, entry.header);
        assert_eq!(read.certificate, entry.certificate);
        let mut spoiled = padded.clone();
        *spoiled.last_mut().unwrap() = 1;
        assert_eq!(
            decode_block_entry(&spoiled).err(),
            Some(canonical::CanonicalError::Trailing(70))
        );
        // The round as an over-long varint (0x80 0x00 for 0), then padding.
        // The entry ends with the round, the block hash and the empty signatures' length.
        let mut long = bytes[..bytes.len() - 33].to_vec();
        assert_eq!(long.pop(), Some(0), "the round, 0, before the block hash");
        long.extend_from_slice(&[0x80, 0x00]);
        long.extend_from_slice(&bytes[bytes.len() - 33..]);
        long.extend_from_slice(&[0; 8]);
        assert!(decode_block_entry(&long).is_err());
    }
}
