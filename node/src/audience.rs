//! Who may read a record, by what this node's store says about it: the facts
//! `xinlian_client::disclosure` needs, gathered here for every answer (records, proofs,
//! pending records, enterprises, credit records, event streams). The rule itself is the
//! client's, written once; this module only reads the store. Days are the newest
//! block's date: publication windows open and close by the chain's clock.

use std::sync::Arc;

use xinlian_client::disclosure::{self, Audience, CommitmentFacts, Reader};
use xinlian_client::record::{Body, RecordId, SignedRecord};
use xinlian_client::state::{self as st, key};
use xinlian_client::when::Date;
use xinlian_core::consortium::Consortium;

use crate::host::Shared;
use crate::store::{Store, StoreError};

/// A reader's view of the ledger as of the newest block.
pub struct View<'a> {
    store: &'a Store,
    consortium: Arc<Consortium>,
    pub reader: &'a Reader,
    /// The newest block's date (Beijing).
    pub today: Date,
}

impl<'a> View<'a> {
    pub fn new(s: &'a Shared, reader: &'a Reader) -> Result<View<'a>, StoreError> {
        let tip = s.store.tip()?;
        Ok(View::with(
            &s.store,
            s.consortium(),
            reader,
            Date::of_ms_beijing(tip.time_ms),
        ))
    }

    pub fn with(
        store: &'a Store,
        consortium: Arc<Consortium>,
        reader: &'a Reader,
        today: Date,
    ) -> View<'a> {
        View {
            store,
            consortium,
            reader,
            today,
        }
    }

    /// Whether the reader may read `record`, final (`pending` false) or not yet.
    pub fn admits(&self, record: &SignedRecord, pending: bool) -> Result<bool, StoreError> {
        let a = self.audience(record)?;
        let a = if pending { a.pending() } else { a };
        Ok(a.admits(self.reader, self.today))
    }

    /// Who may hold and read the record's private data: its audience, never the
    /// public (sealed text is not published, whatever the record's level).
    pub fn private_audience(&self, record: &SignedRecord) -> Result<Audience, StoreError> {
        Ok(self.audience(record)?.never_public())
    }

    /// The record's audience.
    pub fn audience(&self, record: &SignedRecord) -> Result<Audience, StoreError> {
        let facts = self.facts(record)?;
        let signer = self
            .consortium
            .member_by_signing_key(&record.envelope.signer)
            .map(|m| m.id.as_str());
        Ok(disclosure::audience(
            record,
            facts.as_ref(),
            &self.consortium.policy().publication,
            signer,
        ))
    }

    /// The facts about the commitment a credit record concerns; `None` when the store
    /// does not know it (a pending record's commitment not yet final: the record is
    /// then the consortium's only).
    fn facts(&self, record: &SignedRecord) -> Result<Option<CommitmentFacts>, StoreError> {
        let commitment = match &record.envelope.body {
            Body::Commitment(c) => {
                let state = self.commitment_state(&record.id())?;
                return Ok(Some(match state {
                    Some(s) => self.facts_of(&s, c)?,
                    // Pending: what the record itself says, with no outcome yet.
                    None => CommitmentFacts {
                        subject: c.subject.clone(),
                        accepting_agency: c.accepting_agency.clone(),
                        domain: c.domain.clone(),
                        disclosure: c.disclosure.clone(),
                        publication_consent: c.publication_consent,
                        breach: None,
                        repair_approved_on: None,
                    },
                }));
            }
            Body::Outcome(o) => Some(o.commitment),
            Body::Erase(e) => self.commitment_of(&e.record)?,
            Body::RepairApplication(a) => self
                .store
                .state_value::<RecordId>(&key::outcome(&a.outcome))?,
            Body::RepairDecision(d) => self
                .store
                .state_value::<st::RepairState>(&key::repair(&d.application))?
                .map(|r| r.commitment),
            _ => return Ok(None),
        };
        let Some(id) = commitment else {
            return Ok(None);
        };
        let Some(state) = self.commitment_state(&id)? else {
            return Ok(None);
        };
        let Some(Body::Commitment(c)) = self.final_record(&id)?.map(|r| r.envelope.body) else {
            return Ok(None);
        };
        Ok(Some(self.facts_of(&state, &c)?))
    }

    fn facts_of(
        &self,
        s: &st::CommitmentState,
        c: &xinlian_client::record::Commitment,
    ) -> Result<CommitmentFacts, StoreError> {
        let breach = match (s.status, s.outcome_date) {
            (
                st::CommitmentStatus::Breached(sev) | st::CommitmentStatus::Repaired(sev),
                Some(d),
            ) => Some((sev, d)),
            _ => None,
        };
        let repair_approved_on = match s.repaired_by {
            Some(decision) => match self.final_record(&decision)?.map(|r| r.envelope.body) {
                Some(Body::RepairDecision(d)) => Some(d.date),
                _ => None,
            },
            None => None,
        };
        Ok(CommitmentFacts {
            subject: s.subject.clone(),
            accepting_agency: s.accepting_agency.clone(),
            domain: s.domain.clone(),
            disclosure: c.disclosure.clone(),
            publication_consent: c.publication_consent,
            breach,
            repair_approved_on,
        })
    }

    /// The commitment a record with sealed text concerns: itself, or the one its repair
    /// application is about.
    pub fn commitment_of(&self, id: &RecordId) -> Result<Option<RecordId>, StoreError> {
        if self.commitment_state(id)?.is_some() {
            return Ok(Some(*id));
        }
        Ok(self
            .store
            .state_value::<st::RepairState>(&key::repair(id))?
            .map(|r| r.commitment))
    }

    fn commitment_state(&self, id: &RecordId) -> Result<Option<st::CommitmentState>, StoreError> {
        self.store.state_value(&key::commitment(id))
    }

    fn final_record(&self, id: &RecordId) -> Result<Option<SignedRecord>, StoreError> {
        match self.store.locate(id)? {
            Some((_, index)) => self.store.record_at(index),
            None => Ok(None),
        }
    }
}
