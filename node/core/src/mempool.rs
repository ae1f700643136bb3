//! Records waiting for a block. Admission runs the full checks (stateless, signature,
//! and against state as it would be after everything already pending), so a submitter
//! learns at once why a record is refused, and a record that depends on a pending one
//! (a receipt after a shipment) is accepted in order. Bounded by count and bytes.

use std::collections::{HashMap, HashSet, VecDeque};

use xinlian_client::checks::{check_stateless, check_unsigned};
use xinlian_client::merkle::leaf_hash;
use xinlian_client::record::{EncodedRecord, RecordId};
use xinlian_genesis::Hash32;

use crate::chain::Tip;
use crate::execute::{BlockContext, Consortium, ExecError, Rejection, execute_record};
use crate::overlay::{Overlay, StateError, StateRead, Writes};

/// Whether a record's signature still needs checking on admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Check it here, alone.
    Needed,
    /// The caller checked this very record's signature under the same rule (in a batch).
    Done,
}

/// Why the mempool did not take a record: the record was refused by the rules (the
/// same refusal on every node), or this node cannot take it now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("replay: record {0} is already pending")]
    Pending(RecordId),
    #[error("mempool is full ({0})")]
    Full(String),
    /// The node could not read its own state; the record itself may be fine.
    #[error("node storage error, try again or another node: {0}")]
    Storage(String),
}

impl AdmissionError {
    /// A stable machine code for APIs and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            AdmissionError::Rejected(r) => r.code(),
            AdmissionError::Pending(_) => "duplicate",
            AdmissionError::Full(_) => "mempool_full",
            AdmissionError::Storage(_) => "storage",
        }
    }
}

pub struct Mempool {
    /// Admission order, which is also block order.
    order: VecDeque<RecordId>,
    records: HashMap<RecordId, EncodedRecord>,
    /// Each pending record's RFC 9162 leaf hash (of its canonical bytes, signature
    /// included: two signatures of one envelope are two leaves), by which proposals
    /// name the records of their blocks.
    by_leaf: HashMap<Hash32, RecordId>,
    leaf_of: HashMap<RecordId, Hash32>,
    bytes: usize,
    /// State writes of every pending record, applied in order over the store.
    speculative: Writes,
    records_max: usize,
    bytes_max: usize,
}

/// The store with the pending records' writes on top.
struct Speculative<'a> {
    base: &'a dyn StateRead,
    writes: &'a Writes,
}

impl StateRead for Speculative<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
}

impl Mempool {
    pub fn new(records_max: usize, bytes_max: usize) -> Self {
        assert!(records_max > 0 && bytes_max > 0);
        Mempool {
            order: VecDeque::new(),
            records: HashMap::new(),
            by_leaf: HashMap::new(),
            leaf_of: HashMap::new(),
            bytes: 0,
            speculative: Writes::new(),
            records_max,
            bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn contains(&self, id: &RecordId) -> bool {
        self.records.contains_key(id)
    }

    pub fn get(&self, id: &RecordId) -> Option<&EncodedRecord> {
        self.records.get(id)
    }

    /// The pending record whose canonical bytes have this leaf hash.
    pub fn by_leaf(&self, leaf: &Hash32) -> Option<&EncodedRecord> {
        self.records.get(self.by_leaf.get(leaf)?)
    }

    /// Pending records in admission order.
    pub fn records(&self) -> impl Iterator<Item = &EncodedRecord> {
        self.order.iter().map(|id| &self.records[id])
    }

    fn context(tip: &Tip, now_ms: i64) -> BlockContext {
        BlockContext {
            height: tip.height + 1,
            time_ms: now_ms.max(tip.time_ms + 1),
        }
    }

    fn push(&mut self, rec: EncodedRecord, leaf: Hash32) {
        self.bytes += rec.bytes().len();
        self.order.push_back(rec.id());
        self.by_leaf.insert(leaf, rec.id());
        self.leaf_of.insert(rec.id(), leaf);
        self.records.insert(rec.id(), rec);
    }

    /// Admits a record or says precisely why not; a refusal changes nothing. With
    /// [`SignatureCheck::Done`], the caller has already checked this very
    /// record's signature under the same rule (in a batch), so it is not checked again.
    pub fn admit(
        &mut self,
        base: &dyn StateRead,
        c: &Consortium,
        tip: &Tip,
        now_ms: i64,
        rec: EncodedRecord,
        signature: SignatureCheck,
    ) -> Result<RecordId, AdmissionError> {
        let id = rec.id();
        if self.records.contains_key(&id) {
            return Err(AdmissionError::Pending(id));
        }
        if self.order.len() >= self.records_max || self.bytes + rec.bytes().len() > self.bytes_max {
            return Err(AdmissionError::Full(format!(
                "{} records, {} bytes pending",
                self.order.len(),
                self.bytes
            )));
        }
        match signature {
            SignatureCheck::Done => check_unsigned(rec.record(), &c.chain),
            SignatureCheck::Needed => check_stateless(&rec, &c.chain),
        }
        .map_err(Rejection::from)?;
        let spec = Speculative {
            base,
            writes: &self.speculative,
        };
        let mut overlay = Overlay::new(&spec);
        let index = tip.frontier.size() + self.order.len() as u64;
        execute_record(&mut overlay, c, &Self::context(tip, now_ms), &rec, index).map_err(|e| {
            match e {
                ExecError::Rejected(r) => AdmissionError::Rejected(r),
                ExecError::State(e) => AdmissionError::Storage(e.to_string()),
            }
        })?;
        let writes = overlay.into_writes();
        self.speculative.extend(writes);
        let leaf = leaf_hash(rec.bytes());
        self.push(rec, leaf);
        Ok(id)
    }

    /// After a block: drops what it included, re-checks the rest against the new state
    /// (in order), and returns the records that no longer fit with their reasons.
    pub fn recheck(
        &mut self,
        base: &dyn StateRead,
        c: &Consortium,
        tip: &Tip,
        now_ms: i64,
        included: &HashSet<RecordId>,
    ) -> Result<Vec<(RecordId, Rejection)>, StateError> {
        let order = std::mem::take(&mut self.order);
        let mut records = std::mem::take(&mut self.records);
        let mut leaf_of = std::mem::take(&mut self.leaf_of);
        self.by_leaf.clear();
        self.bytes = 0;
        self.speculative.clear();
        let ctx = Self::context(tip, now_ms);
        let mut dropped = Vec::new();
        let mut overlay = Overlay::new(base);
        for id in order {
            let (Some(rec), Some(leaf)) = (records.remove(&id), leaf_of.remove(&id)) else {
                continue; // never: `push` files an id in all three
            };
            if included.contains(&id) {
                continue;
            }
            let index = tip.frontier.size() + self.order.len() as u64;
            match execute_record(&mut overlay, c, &ctx, &rec, index) {
                Ok(()) => self.push(rec, leaf),
                Err(ExecError::Rejected(r)) => dropped.push((id, r)),
                Err(ExecError::State(e)) => return Err(e),
            }
        }
        self.speculative = overlay.into_writes();
        Ok(dropped)
    }
}
