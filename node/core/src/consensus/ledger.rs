//! What a replica needs from storage: derived state to execute against, atomic commit
//! of a finalized block, finalized blocks to serve to laggards, and a write-ahead log
//! of consensus inputs per height. The node's sled `Store` implements it; `MemLedger`
//! is the in-memory one the simulator uses (with crashes that lose what was not yet
//! made durable).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use xinlian_client::block::{Block, Certificate};

use super::wire::WalEntry;
use crate::chain::{Executed, Tip};
use crate::overlay::{StateError, StateRead};

/// What a ledger operation answers.
pub type LedgerResult<T = ()> = Result<T, LedgerError>;

/// Whether a write-ahead-log append must survive a crash before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Our own vote or proposal: flushed before it may be sent.
    Synced,
    /// Others' messages: made durable by the next synced append or commit.
    Buffered,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The storage failed: the node cannot go on safely and stops.
    #[error("ledger storage: {0}")]
    Storage(String),
    /// Block `height`'s history is damaged (a checksum or a frame that does not hold):
    /// it is not served, and is repaired from a peer where it can be. The node goes on.
    #[error("ledger storage: the history of block {height} is damaged: {what}")]
    Damaged { height: u64, what: String },
}

/// What a repair of one block's history from a peer's copy did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// Nothing of it was damaged.
    Intact,
    /// This many damaged entries were written again from the copy.
    Repaired { entries: usize },
    /// The copy is not the block we hold, or this damage cannot be repaired from a
    /// copy; nothing was written.
    Refused(String),
    /// The copy is the block, but its certificate does not fit the place of ours
    /// (another peer's may); nothing was written.
    Unfit(String),
    /// Our entry of this block can be checked only against block `on`'s, which is
    /// damaged too: that one first. Nothing was written.
    Waits { on: u64 },
}

pub trait Ledger: StateRead {
    /// Stores a finalized block atomically and durably, dropping the write-ahead log of
    /// its height and below.
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError>;
    /// Stores consecutive finalized blocks, all or none, as `commit` stores one (synced
    /// blocks: a store shares its syncs between them). By default one at a time.
    fn commit_many(&self, blocks: &[(Executed, Certificate)]) -> Result<(), LedgerError> {
        blocks
            .iter()
            .try_for_each(|(ex, cert)| self.commit(ex, cert))
    }
    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError>;
    /// Appends to the log of `height`. With [`Durability::Synced`], returns only once
    /// this entry and every one before it survive a crash.
    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult;
    fn wal(&self, height: u64) -> Result<Vec<WalEntry>, LedgerError>;
    /// Writes the damaged history of block `block.header.height` again from `block` and
    /// `certificate`, a peer's copy, once the copy is shown to be the block committed
    /// here (its header equal to ours, or where ours is damaged hashing to what our
    /// chain names for it; its records hashing to that header's root). `certificate`
    /// has been verified by the caller and trimmed to a quorum; it replaces ours only
    /// where our block entry is damaged. A lying peer's copy is
    /// [`RepairOutcome::Refused`] and changes nothing.
    fn repair(
        &self,
        block: &Block,
        certificate: &Certificate,
    ) -> Result<RepairOutcome, LedgerError>;
}

/// A storage operation a simulation can make fail once, as a process killed in the
/// middle of it would: nothing of it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// The next write-ahead-log append that must be durable (our own vote or proposal,
    /// between signing it and sending it).
    SyncedAppend,
    /// The next block commit.
    Commit,
}

#[derive(Default)]
struct Mem {
    /// An operation armed to fail.
    fault: Option<FaultPoint>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    blocks: BTreeMap<u64, (Block, Certificate)>,
    tip: Option<Tip>,
    wal: Vec<(u64, WalEntry)>,
    /// Entries at or after this index are lost in a crash.
    wal_durable: usize,
    /// Heights whose block entry reads as damaged (`damage_block_entry`).
    damaged_entries: BTreeSet<u64>,
    /// Heights whose damage no copy mends (`damage_beyond_repair`).
    beyond_repair: BTreeSet<u64>,
    /// What the next repair of a height answers, whatever the copy (`answer_repair`).
    repair_answers: BTreeMap<u64, RepairOutcome>,
}

/// An in-memory ledger. Blocks are durable once committed; log entries once an entry is
/// appended with [`Durability::Synced`] (as a flush would make them).
#[derive(Default)]
pub struct MemLedger {
    inner: Mutex<Mem>,
}

impl MemLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// What a process crash leaves: the log loses its non-durable tail.
    pub fn crash(&self) {
        let mut m = self.inner.lock().expect("not poisoned");
        let keep = m.wal_durable;
        m.wal.truncate(keep);
    }

    /// Arms `point` to fail once with a [`LedgerError`], storing nothing; the
    /// simulator then treats the replica as crashed at that point.
    pub fn fail_next(&self, point: FaultPoint) {
        self.inner.lock().expect("not poisoned").fault = Some(point);
    }

    /// Makes block `height`'s own entry (header and certificate) read as damaged, as a
    /// flipped byte in a store's would: not served until a peer's certified copy
    /// mends it.
    pub fn damage_block_entry(&self, height: u64) {
        self.inner
            .lock()
            .expect("not poisoned")
            .damaged_entries
            .insert(height);
    }

    /// Makes the next repair of block `height` answer `outcome` (as a store does when a
    /// copy's certificate does not fit, or its entry waits for the next one's).
    pub fn answer_repair(&self, height: u64, outcome: RepairOutcome) {
        self.inner
            .lock()
            .expect("not poisoned")
            .repair_answers
            .insert(height, outcome);
    }

    /// Makes block `height` read as damaged in a way no copy mends (a store's index
    /// entry of it, say).
    pub fn damage_beyond_repair(&self, height: u64) {
        let mut m = self.inner.lock().expect("not poisoned");
        m.damaged_entries.insert(height);
        m.beyond_repair.insert(height);
    }

    /// Whether an armed fault has not fired yet.
    pub fn fault_armed(&self) -> bool {
        self.inner.lock().expect("not poisoned").fault.is_some()
    }

    /// The tip as last committed (for restarting a replica on this ledger).
    pub fn tip(&self) -> Option<Tip> {
        self.inner.lock().expect("not poisoned").tip.clone()
    }

    pub fn height(&self) -> u64 {
        self.inner
            .lock()
            .expect("not poisoned")
            .tip
            .as_ref()
            .map_or(0, |t| t.height)
    }
}

impl StateRead for MemLedger {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .inner
            .lock()
            .expect("not poisoned")
            .state
            .get(key)
            .cloned())
    }
}

impl Ledger for MemLedger {
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError> {
        let mut m = self.inner.lock().expect("not poisoned");
        if m.fault == Some(FaultPoint::Commit) {
            m.fault = None;
            return Err(LedgerError::Storage(
                "injected fault: killed mid-commit".into(),
            ));
        }
        for (k, v) in &ex.writes {
            match v {
                Some(v) => m.state.insert(k.clone(), v.clone()),
                None => m.state.remove(k),
            };
        }
        m.blocks
            .insert(ex.header.height, (ex.block(), cert.clone()));
        m.tip = Some(ex.tip.clone());
        let h = ex.header.height;
        m.wal.retain(|(eh, _)| *eh > h);
        m.wal_durable = m.wal.len();
        Ok(())
    }

    /// All or none, as a store's one batch: an armed commit fault stores nothing.
    fn commit_many(&self, blocks: &[(Executed, Certificate)]) -> Result<(), LedgerError> {
        {
            let mut m = self.inner.lock().expect("not poisoned");
            if m.fault == Some(FaultPoint::Commit) {
                m.fault = None;
                return Err(LedgerError::Storage(
                    "injected fault: killed mid-commit".into(),
                ));
            }
        }
        blocks
            .iter()
            .try_for_each(|(ex, cert)| self.commit(ex, cert))
    }

    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError> {
        let m = self.inner.lock().expect("not poisoned");
        if m.damaged_entries.contains(&height) {
            return Err(entry_damaged(height));
        }
        Ok(m.blocks.get(&height).cloned())
    }

    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult {
        let mut m = self.inner.lock().expect("not poisoned");
        if durability == Durability::Synced && m.fault == Some(FaultPoint::SyncedAppend) {
            m.fault = None;
            return Err(LedgerError::Storage(
                "injected fault: killed before the flush".into(),
            ));
        }
        m.wal.push((height, entry.clone()));
        if durability == Durability::Synced {
            m.wal_durable = m.wal.len();
        }
        Ok(())
    }

    fn wal(&self, height: u64) -> Result<Vec<WalEntry>, LedgerError> {
        Ok(self
            .inner
            .lock()
            .expect("not poisoned")
            .wal
            .iter()
            .filter(|(h, _)| *h == height)
            .map(|(_, e)| e.clone())
            .collect())
    }

    /// Records in memory are never damaged: a copy equal to ours is intact, another one
    /// refused; a damaged block entry takes the copy's certificate.
    fn repair(
        &self,
        block: &Block,
        certificate: &Certificate,
    ) -> Result<RepairOutcome, LedgerError> {
        let height = block.header.height;
        let mut m = self.inner.lock().expect("not poisoned");
        if let Some(outcome) = m.repair_answers.remove(&height) {
            return Ok(outcome);
        }
        if m.beyond_repair.contains(&height) {
            return Err(entry_damaged(height));
        }
        let damaged = m.damaged_entries.contains(&height);
        let outcome = match m.blocks.get_mut(&height) {
            Some((ours, _)) if ours != block => {
                RepairOutcome::Refused("not the block stored here".into())
            }
            Some((_, ours)) if damaged => {
                *ours = certificate.clone();
                RepairOutcome::Repaired { entries: 1 }
            }
            Some(_) => RepairOutcome::Intact,
            None => return Err(entry_damaged(height)),
        };
        if matches!(outcome, RepairOutcome::Repaired { .. }) {
            m.damaged_entries.remove(&height);
        }
        Ok(outcome)
    }
}

fn entry_damaged(height: u64) -> LedgerError {
    LedgerError::Damaged {
        height,
        what: format!("the entry of block {height}"),
    }
}

impl<T: Ledger + ?Sized> Ledger for std::sync::Arc<T> {
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError> {
        (**self).commit(ex, cert)
    }
    fn commit_many(&self, blocks: &[(Executed, Certificate)]) -> Result<(), LedgerError> {
        (**self).commit_many(blocks)
    }
    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError> {
        (**self).block_and_certificate(height)
    }
    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult {
        (**self).wal_append(height, entry, durability)
    }
    fn wal(&self, height: u64) -> Result<Vec<WalEntry>, LedgerError> {
        (**self).wal(height)
    }
    fn repair(
        &self,
        block: &Block,
        certificate: &Certificate,
    ) -> Result<RepairOutcome, LedgerError> {
        (**self).repair(block, certificate)
    }
}
