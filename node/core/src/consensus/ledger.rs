//! What a replica needs from storage: derived state to execute against, atomic commit
//! of a finalized block, finalized blocks to serve to laggards, and a write-ahead log
//! of consensus inputs per height. The node's sled `Store` implements it; `MemLedger`
//! is the in-memory one the simulator uses (with crashes that lose what was not yet
//! made durable).

use std::collections::BTreeMap;
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
#[error("ledger storage: {0}")]
pub struct LedgerError(pub String);

pub trait Ledger: StateRead {
    /// Stores a finalized block atomically and durably, dropping the write-ahead log of
    /// its height and below.
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError>;
    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError>;
    /// Appends to the log of `height`. With [`Durability::Synced`], returns only once
    /// this entry and every one before it survive a crash.
    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult;
    fn wal(&self, height: u64) -> Result<Vec<WalEntry>, LedgerError>;
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
            return Err(LedgerError("injected fault: killed mid-commit".into()));
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

    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError> {
        Ok(self
            .inner
            .lock()
            .expect("not poisoned")
            .blocks
            .get(&height)
            .cloned())
    }

    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult {
        let mut m = self.inner.lock().expect("not poisoned");
        if durability == Durability::Synced && m.fault == Some(FaultPoint::SyncedAppend) {
            m.fault = None;
            return Err(LedgerError(
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
}

impl<T: Ledger + ?Sized> Ledger for std::sync::Arc<T> {
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError> {
        (**self).commit(ex, cert)
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
}
