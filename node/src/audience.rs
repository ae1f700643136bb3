//! Who may read a record, by what this node's store says about it: the facts
//! `xinlian_client::disclosure` needs, gathered here for every answer (records, proofs,
//! pending records, enterprises, credit records, event streams); and what of a trace
//! record a reader sees — its hidden amounts opened, or their commitments only
//! (`View::shown`, docs/privacy.md § Trace events). The rules themselves are the
//! client's, written once; this module only reads the store. Days are the newest
//! block's date: publication windows open and close by the chain's clock.

use std::borrow::Cow;
use std::sync::Arc;

use xinlian_client::party::Party;
use xinlian_genesis::TraceField;

use xinlian_client::api::RecordView;
use xinlian_client::disclosure::{self, Audience, CommitmentFacts, Reader};
use xinlian_client::proof::{HexBytes, LedgerEntry};
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

    /// The record as this reader may see it: opened amounts (docs/privacy.md § Trace
    /// events) kept only for a reader [`disclosure::reveals_amounts`] admits, else
    /// replaced by their commitments. Borrowed when nothing changes.
    pub fn shown<'r>(&self, record: &'r SignedRecord) -> Result<Cow<'r, SignedRecord>, StoreError> {
        if matches!(self.reader, Reader::Member(_)) {
            return Ok(Cow::Borrowed(record));
        }
        let stripped = record.ledger_form();
        if matches!(stripped, Cow::Borrowed(_)) {
            return Ok(stripped);
        }
        // Only a party may be the signer: no store read for the public. A custody key
        // is its own party.
        let signer = match self.reader {
            Reader::Enterprise(_) => self
                .store
                .state_value::<st::KeyBinding>(&key::key_binding(&record.envelope.signer))?
                .map(|b| Party::Enterprise(b.uscc)),
            Reader::Custody(_) => Some(Party::Custody(record.envelope.signer)),
            _ => None,
        };
        Ok(
            match disclosure::reveals_amounts(self.reader, record, signer.as_ref()) {
                true => Cow::Borrowed(record),
                false => stripped,
            },
        )
    }

    /// A proof's ledger entry as this reader may see it ([`View::shown`]): the record's
    /// bytes replaced by its ledger form's where its openings are not the reader's.
    /// The entry verifies all the same: its leaf is the ledger form's.
    pub fn show_entry(&self, entry: &mut LedgerEntry) -> Result<(), StoreError> {
        if matches!(self.reader, Reader::Member(_)) {
            return Ok(());
        }
        let record = SignedRecord::decode(&entry.record.0, usize::MAX)
            .map_err(|e| StoreError::Damaged(format!("record {}: {e}", entry.index)))?;
        if let Cow::Owned(r) = self.shown(&record)? {
            entry.record = HexBytes(r.canonical_bytes());
        }
        Ok(())
    }

    /// A record's view as this reader may see it ([`View::shown`]): record, bytes and
    /// proof all of the ledger form where the openings are not the reader's.
    pub fn show_view(&self, mut v: RecordView) -> Result<RecordView, StoreError> {
        if let Cow::Owned(r) = self.shown(&v.record)? {
            let bytes = r.canonical_bytes();
            v.canonical_hex = hex::encode(&bytes);
            if let Some(p) = &mut v.proof {
                // The proof's entry is this record's.
                p.entry.record = HexBytes(bytes);
            }
            v.record = r;
        }
        Ok(v)
    }

    /// Whether the reader may read the amounts of `batch` kept in state for `parties`
    /// (a holder; a shipment's sender and addressee): always where the batch's amounts
    /// are public; where its domain hides them, as [`disclosure::reveals_state_amount`].
    pub fn reveals_state_amount(&self, batch: &st::BatchState, parties: &[&Party]) -> bool {
        let hidden = batch.created_amount.is_none()
            || (self.consortium.policy().trace).hides(&batch.domain, TraceField::Quantity);
        !hidden || disclosure::reveals_state_amount(self.reader, parties)
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
