//! Records waiting for a block. Admission runs the full checks (stateless, signature,
//! and against state as it would be after everything already pending), so a submitter
//! learns at once why a record is refused, and a record that depends on a pending one
//! (a receipt after a shipment) is accepted in order. Bounded by count and bytes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use xinlian_client::checks::{check_stateless, check_unsigned};
use xinlian_client::record::{EncodedRecord, Kind, RecordId};
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
    /// Pending records by admission sequence number: admission order, which is also
    /// block order.
    order: BTreeMap<u64, RecordId>,
    records: HashMap<RecordId, Pending>,
    /// Each pending record's RFC 9162 leaf hash (of its ledger form's canonical bytes,
    /// signature included: two signatures of one envelope are two leaves), by which proposals
    /// name the records of their blocks.
    by_leaf: HashMap<Hash32, RecordId>,
    bytes: usize,
    /// The state writes of every pending record, by key, by admission number: a record
    /// sees the writes of those admitted before it, a new one all of them.
    speculative: HashMap<Vec<u8>, BTreeMap<u64, Option<Vec<u8>>>>,
    /// Which pending records (by admission number) read or wrote each key: after a
    /// block, only the records touching a key it changed are executed again.
    touching: HashMap<Vec<u8>, BTreeSet<u64>>,
    /// Pending records whose validity ends at a height (a governance proposal or vote
    /// past its deadline is refused) though no key changes then: executed again at
    /// every recheck.
    height_bound: BTreeSet<u64>,
    next_seq: u64,
    records_max: usize,
    bytes_max: usize,
}

/// What executing a record wrote, and the keys it read from outside its own writes.
type Effects = (Writes, Vec<Vec<u8>>);

/// A pending record with what its execution read and wrote.
struct Pending {
    rec: EncodedRecord,
    leaf: Hash32,
    seq: u64,
    /// The ledger index it was executed at (where it would land had the blocks taken
    /// everything pending in order): kept when it is executed again.
    index: u64,
    writes: Writes,
    /// Keys it read from outside its own writes (state or earlier pending records').
    reads: Vec<Vec<u8>>,
}

impl Pending {
    fn touched(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.writes.keys().chain(&self.reads)
    }
}

/// The store with the writes of the pending records admitted before `before` on top,
/// recording every key read through it.
struct Speculative<'a> {
    base: &'a dyn StateRead,
    writes: &'a HashMap<Vec<u8>, BTreeMap<u64, Option<Vec<u8>>>>,
    before: u64,
    reads: RefCell<Vec<Vec<u8>>>,
}

impl StateRead for Speculative<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.reads.borrow_mut().push(key.to_vec());
        let pending = self
            .writes
            .get(key)
            .and_then(|by_seq| by_seq.range(..self.before).next_back());
        match pending {
            Some((_, v)) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
}

impl Mempool {
    pub fn new(records_max: usize, bytes_max: usize) -> Self {
        assert!(records_max > 0 && bytes_max > 0);
        Mempool {
            order: BTreeMap::new(),
            records: HashMap::new(),
            by_leaf: HashMap::new(),
            bytes: 0,
            speculative: HashMap::new(),
            touching: HashMap::new(),
            height_bound: BTreeSet::new(),
            next_seq: 0,
            records_max,
            bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn contains(&self, id: &RecordId) -> bool {
        self.records.contains_key(id)
    }

    pub fn get(&self, id: &RecordId) -> Option<&EncodedRecord> {
        self.records.get(id).map(|p| &p.rec)
    }

    /// The pending record whose canonical bytes have this leaf hash.
    pub fn by_leaf(&self, leaf: &Hash32) -> Option<&EncodedRecord> {
        self.get(self.by_leaf.get(leaf)?)
    }

    /// Pending records in admission order.
    pub fn records(&self) -> impl Iterator<Item = &EncodedRecord> {
        self.order.values().filter_map(|id| self.get(id))
    }

    fn context(tip: &Tip, now_ms: i64) -> BlockContext {
        BlockContext {
            height: tip.height + 1,
            time_ms: now_ms.max(tip.time_ms + 1),
        }
    }

    /// Executes `rec` as the pending record numbered `seq`, over `base` and the writes
    /// of the records pending before it: its writes and the keys it read.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        base: &dyn StateRead,
        c: &Consortium,
        ctx: &BlockContext,
        rec: &EncodedRecord,
        seq: u64,
        index: u64,
    ) -> Result<Result<Effects, Rejection>, StateError> {
        let spec = Speculative {
            base,
            writes: &self.speculative,
            before: seq,
            reads: RefCell::new(Vec::new()),
        };
        let mut overlay = Overlay::new(&spec);
        match execute_record(&mut overlay, c, ctx, rec, index) {
            Ok(()) => {
                let writes = overlay.into_writes();
                let mut reads = spec.reads.into_inner();
                reads.sort_unstable();
                reads.dedup();
                reads.retain(|k| !writes.contains_key(k));
                Ok(Ok((writes, reads)))
            }
            Err(ExecError::Rejected(r)) => Ok(Err(r)),
            Err(ExecError::State(e)) => Err(e),
        }
    }

    /// Files a record executed as number `seq` at ledger index `index`.
    fn insert(
        &mut self,
        rec: EncodedRecord,
        leaf: Hash32,
        (seq, index): (u64, u64),
        (writes, reads): Effects,
    ) {
        let p = Pending {
            rec,
            leaf,
            seq,
            index,
            writes,
            reads,
        };
        self.file_effects(&p);
        if matches!(p.rec.kind(), Kind::Propose | Kind::Vote) {
            self.height_bound.insert(seq);
        }
        self.bytes += p.rec.bytes().len();
        self.order.insert(seq, p.rec.id());
        self.by_leaf.insert(leaf, p.rec.id());
        self.records.insert(p.rec.id(), p);
    }

    /// Its writes into the speculative state and its keys into `touching`.
    fn file_effects(&mut self, p: &Pending) {
        for (k, v) in &p.writes {
            self.speculative
                .entry(k.clone())
                .or_default()
                .insert(p.seq, v.clone());
        }
        for k in p.touched() {
            self.touching.entry(k.clone()).or_default().insert(p.seq);
        }
    }

    /// Takes its writes out of the speculative state and its keys out of `touching`.
    fn unfile_effects(&mut self, p: &Pending) {
        for k in p.writes.keys() {
            if let Some(by_seq) = self.speculative.get_mut(k) {
                by_seq.remove(&p.seq);
                if by_seq.is_empty() {
                    self.speculative.remove(k);
                }
            }
        }
        for k in p.touched() {
            if let Some(seqs) = self.touching.get_mut(k) {
                seqs.remove(&p.seq);
                if seqs.is_empty() {
                    self.touching.remove(k);
                }
            }
        }
    }

    /// Removes a pending record and its effects.
    fn remove(&mut self, id: &RecordId) -> Option<Pending> {
        let p = self.records.remove(id)?;
        self.unfile_effects(&p);
        self.bytes -= p.rec.bytes().len();
        self.order.remove(&p.seq);
        self.height_bound.remove(&p.seq);
        self.by_leaf.remove(&p.leaf);
        Some(p)
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
        if self.records.len() >= self.records_max || self.bytes + rec.bytes().len() > self.bytes_max
        {
            return Err(AdmissionError::Full(format!(
                "{} records, {} bytes pending",
                self.records.len(),
                self.bytes
            )));
        }
        match signature {
            SignatureCheck::Done => check_unsigned(rec.record(), &c.chain),
            SignatureCheck::Needed => check_stateless(&rec, &c.chain),
        }
        .map_err(Rejection::from)?;
        let seq = self.next_seq;
        let index = tip.frontier.size() + self.records.len() as u64;
        let done = self
            .execute(base, c, &Self::context(tip, now_ms), &rec, seq, index)
            .map_err(|e| AdmissionError::Storage(e.to_string()))?
            .map_err(AdmissionError::Rejected)?;
        self.next_seq += 1;
        let leaf = rec.leaf();
        self.insert(rec, leaf, (seq, index), done);
        Ok(id)
    }

    /// After blocks: drops what they included, and executes again, in order, only the
    /// pending records that read or wrote a key the blocks `changed` — and, as each
    /// one's writes change, the later ones touching those keys — returning those that
    /// no longer fit with their reasons. With `rules_changed` (a new roster or policy),
    /// every pending record is executed again.
    ///
    /// A record touching no changed key would read exactly what it read before, so its
    /// verdict stands: the block time only grows, and no rule refuses a record for
    /// being older (`not_dated_after`, a repair's earliest date) except governance's
    /// deadlines, whose records are executed again every time. What such a record
    /// wrote speculatively keeps the height and ledger index it was admitted at; those
    /// values decide nothing at admission, and the block that takes the record
    /// executes it afresh.
    #[allow(clippy::too_many_arguments)]
    pub fn recheck(
        &mut self,
        base: &dyn StateRead,
        c: &Consortium,
        tip: &Tip,
        now_ms: i64,
        included: &HashSet<RecordId>,
        changed: &HashSet<Vec<u8>>,
        rules_changed: bool,
    ) -> Result<Recheck, StateError> {
        // What the included records wrote speculatively is gone too (the block may have
        // written less): those keys changed as well.
        let mut gone: Vec<Vec<u8>> = Vec::new();
        for id in included {
            if let Some(p) = self.remove(id) {
                gone.extend(p.writes.into_keys());
            }
        }
        // Each key's later touchers are put due once, from the earliest record that
        // changed it: a busy key (one batch's many events) costs its touchers once a
        // recheck, not once per record that wrote it.
        let mut due_from: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut due: BTreeSet<u64> = self.height_bound.clone();
        if rules_changed {
            due.extend(self.order.keys().copied());
        } else {
            for k in changed.iter().chain(&gone) {
                if due_from.insert(k.clone(), 0).is_none()
                    && let Some(seqs) = self.touching.get(k)
                {
                    due.extend(seqs.iter().copied());
                }
            }
        }
        let ctx = Self::context(tip, now_ms);
        let mut dropped = Vec::new();
        let mut executed = 0;
        while let Some(seq) = due.pop_first() {
            let Some(id) = self.order.get(&seq).copied() else {
                continue;
            };
            let Some(old) = self.remove(&id) else {
                continue;
            };
            let verdict = self.execute(base, c, &ctx, &old.rec, seq, old.index)?;
            executed += 1;
            // Later records touching what it wrote before or writes now see a change.
            let mut keys: Vec<Vec<u8>> = old.writes.keys().cloned().collect();
            match verdict {
                Ok(done) => {
                    keys.extend(done.0.keys().cloned());
                    self.insert(old.rec, old.leaf, (seq, old.index), done);
                }
                Err(r) => dropped.push((id, r)),
            }
            for k in keys {
                if due_from.get(&k).is_some_and(|from| *from <= seq + 1) {
                    continue;
                }
                if let Some(seqs) = self.touching.get(&k) {
                    due.extend(seqs.range(seq + 1..).copied());
                }
                due_from.insert(k, seq + 1);
            }
        }
        Ok(Recheck { dropped, executed })
    }
}

/// What a [`Mempool::recheck`] did.
#[derive(Debug)]
pub struct Recheck {
    /// The records that no longer fit, with their reasons.
    pub dropped: Vec<(RecordId, Rejection)>,
    /// How many pending records it executed again.
    pub executed: usize,
}
