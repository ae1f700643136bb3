//! Intake from peers besides consensus and sync: relayed records (decoded, verified as
//! a batch, admitted to the mempool) and height announcements; and the action helpers.

use xinlian_client::checks::StatelessError;
use xinlian_client::crypto::{Domain, verify_batch};
use xinlian_client::record::{EncodedRecord, RecordId};
use xinlian_genesis::PublicKey;

use super::heights::Start;
use super::{Action, Replica, ReplicaError, Timer};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::{RELAY_BYTES_MAX, RELAY_RECORDS_MAX};
use crate::execute::Rejection;
use crate::mempool::{AdmissionError, SignatureCheck};

impl<L: Ledger> Replica<L> {
    /// A record into the mempool, checked against our tip.
    pub(super) fn admit(
        &mut self,
        rec: EncodedRecord,
        signature: SignatureCheck,
    ) -> Result<RecordId, AdmissionError> {
        self.mempool.admit(
            &self.ledger,
            &self.c,
            &self.tip,
            self.now_ms,
            rec,
            signature,
        )
    }

    /// A batch of records another node admitted, relayed to us.
    pub(super) fn on_records(
        &mut self,
        from: PublicKey,
        batch: Vec<Vec<u8>>,
    ) -> Result<(), ReplicaError> {
        if batch.len() > RELAY_RECORDS_MAX
            || batch.iter().map(Vec::len).sum::<usize>() > RELAY_BYTES_MAX
        {
            self.penalise(from, format!("a relay batch of {} records", batch.len()));
            return Ok(());
        }
        let max = self.c.policy().record_bytes_max as usize;
        let mut recs = Vec::with_capacity(batch.len());
        for bytes in batch {
            match EncodedRecord::decode(&bytes, max) {
                Ok(rec) => recs.push(rec),
                Err(e) => self.penalise(from, format!("relayed record: {e}")),
            }
        }
        // One batch verification for the lot (the same rule as single checks); on
        // failure each is checked alone at admission.
        let batch_verified = verify_batch(recs.iter().map(|r| {
            (
                &r.record().envelope.signer,
                Domain::Record.message(r.envelope_bytes()),
                &r.record().signature,
            )
        }))
        .is_ok();
        let mut admitted = false;
        for rec in recs {
            // Refusals of relayed records are normal (already final, already pending,
            // raced a conflicting record); a bad signature blames the sender.
            let signature = if batch_verified {
                SignatureCheck::Done
            } else {
                SignatureCheck::Needed
            };
            match self.admit(rec, signature) {
                Ok(_) => admitted = true,
                Err(AdmissionError::Rejected(Rejection::Stateless(
                    e @ StatelessError::Signature(_),
                ))) => {
                    self.penalise(from, format!("relayed record: {e}"));
                }
                Err(_) => {}
            }
        }
        if admitted {
            self.maybe_start(Start::IfDue)?;
        }
        Ok(())
    }

    /// A peer announced its finalized height: perhaps we are behind.
    pub(super) fn on_status(&mut self, from: PublicKey, height: u64) {
        let h = self.peer_heights.entry(from).or_insert(0);
        *h = (*h).max(height);
        self.maybe_sync();
    }

    /// Reports a peer's misbehaviour to the host.
    pub(super) fn penalise(&mut self, peer: PublicKey, reason: String) {
        self.actions.push(Action::Penalise { peer, reason });
    }

    /// Asks the host to fire `timer` after `after_ms`.
    pub(super) fn schedule(&mut self, timer: Timer, after_ms: u64) {
        self.actions.push(Action::Schedule { timer, after_ms });
    }
}
