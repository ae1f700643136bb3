//! Records waiting for a block. Admission runs the full checks (stateless, signature,
//! and against state as it would be after everything already pending), so a submitter
//! learns at once why a record is refused, and a record that depends on a pending one
//! (a receipt after a shipment) is accepted in order. Bounded by count and bytes.

use std::collections::{HashSet, VecDeque};

use xinlian_client::checks::check_stateless;
use xinlian_client::record::{RecordId, SignedRecord};

use crate::chain::Tip;
use crate::execute::{BlockContext, Consortium, ExecError, Rejection, execute_record};
use crate::overlay::{Overlay, StateError, StateRead, Writes};

pub struct Mempool {
    queue: VecDeque<(RecordId, SignedRecord, usize)>,
    ids: HashSet<RecordId>,
    bytes: usize,
    /// State writes of every pending record, applied in queue order over the store.
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
            queue: VecDeque::new(),
            ids: HashSet::new(),
            bytes: 0,
            speculative: Writes::new(),
            records_max,
            bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn contains(&self, id: &RecordId) -> bool {
        self.ids.contains(id)
    }

    pub fn get(&self, id: &RecordId) -> Option<&SignedRecord> {
        self.queue
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, r, _)| r)
    }

    pub fn records(&self) -> impl Iterator<Item = &SignedRecord> {
        self.queue.iter().map(|(_, r, _)| r)
    }

    fn context(tip: &Tip, now_ms: i64) -> BlockContext {
        BlockContext {
            height: tip.height + 1,
            time_ms: now_ms.max(tip.time_ms + 1),
        }
    }

    /// Admits a record or says precisely why not; a refusal changes nothing.
    pub fn admit(
        &mut self,
        base: &dyn StateRead,
        c: &Consortium,
        tip: &Tip,
        now_ms: i64,
        rec: SignedRecord,
    ) -> Result<RecordId, ExecError> {
        let id = rec.id();
        if self.ids.contains(&id) {
            return Err(Rejection::DuplicatePending(id).into());
        }
        let len = rec.canonical_bytes().len();
        if self.queue.len() >= self.records_max || self.bytes + len > self.bytes_max {
            return Err(Rejection::MempoolFull(format!(
                "{} records, {} bytes pending",
                self.queue.len(),
                self.bytes
            ))
            .into());
        }
        check_stateless(&rec, &c.chain).map_err(Rejection::from)?;
        let spec = Speculative {
            base,
            writes: &self.speculative,
        };
        let mut overlay = Overlay::new(&spec);
        let index = tip.frontier.size() + self.queue.len() as u64;
        execute_record(&mut overlay, c, &Self::context(tip, now_ms), &rec, index)?;
        let writes = overlay.into_writes();
        self.speculative.extend(writes);
        self.ids.insert(id);
        self.bytes += len;
        self.queue.push_back((id, rec, len));
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
        let old = std::mem::take(&mut self.queue);
        self.ids.clear();
        self.bytes = 0;
        self.speculative.clear();
        let ctx = Self::context(tip, now_ms);
        let mut dropped = Vec::new();
        let mut overlay = Overlay::new(base);
        for (id, rec, len) in old {
            if included.contains(&id) {
                continue;
            }
            let index = tip.frontier.size() + self.queue.len() as u64;
            match execute_record(&mut overlay, c, &ctx, &rec, index) {
                Ok(()) => {
                    self.ids.insert(id);
                    self.bytes += len;
                    self.queue.push_back((id, rec, len));
                }
                Err(ExecError::Rejected(r)) => dropped.push((id, r)),
                Err(ExecError::State(e)) => return Err(e),
            }
        }
        self.speculative = overlay.into_writes();
        Ok(dropped)
    }
}
