//! Committing a block, decided here or synced with its certificate: the ledger, the
//! mempool's recheck, and the swap to a roster the block announced.

use std::collections::HashSet;
use std::sync::Arc;

use malachite_types::CommitCertificate;
use xinlian_client::block::{Certificate, verify_certificate};
use xinlian_client::record::{EncodedRecord, RecordId};
use xinlian_genesis::Hash32;

use super::{Action, Replica, ReplicaError};
use crate::chain::{BlockError, Executed, execute_block};
use crate::consensus::context::{Ctx, Validators};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::{NetMsg, certificate_from_malachite};
use crate::execute::Consortium;

impl<L: Ledger> Replica<L> {
    /// Commits the block Malachite decided on, then has the next height start. Should
    /// the decided block's execution be gone (its proposal dropped under the bounds of
    /// a long height), it is executed again from the proposal; should even that be
    /// gone, nothing is committed here and block sync brings the block with its
    /// certificate.
    pub(super) fn commit_decision(
        &mut self,
        cert: &CommitCertificate<Ctx>,
    ) -> Result<(), ReplicaError> {
        let height = cert.height.0;
        if height != self.tip.height + 1 {
            // Already committed (e.g. by sync) — nothing to do.
            return Ok(());
        }
        let Some(ours) = certificate_from_malachite(cert, &self.vals) else {
            tracing::error!(
                height,
                "a decision whose precommits are not all of validators"
            );
            return Ok(());
        };
        let Some(ex) = self.decided_execution(&ours.block)? else {
            tracing::warn!(height, block = %ours.block, "decided block not at hand: waiting for sync");
            return Ok(());
        };
        if let Err(e) = verify_certificate(&ex.header, &ours, &self.c.validators) {
            tracing::error!(height, error = %e, "a decision's certificate does not verify");
            return Ok(());
        }
        self.commit(ex, &ours)?;
        self.start_next = true;
        Ok(())
    }

    /// The execution of a block of the current height: kept, or redone from a proposal.
    fn decided_execution(&mut self, id: &Hash32) -> Result<Option<Executed>, ReplicaError> {
        if let Some(ex) = self.candidates.remove(id) {
            return Ok(Some(ex));
        }
        let Some(value) = self
            .proposals
            .values()
            .find(|p| p.message.value.id == *id)
            .map(|p| p.message.value.clone())
            .or_else(|| self.logged_values.get(id).cloned())
        else {
            return Ok(None);
        };
        match execute_block(&self.ledger, &self.c, &self.tip, (*value.block).clone()) {
            Ok(ex) => Ok(Some(ex)),
            Err(BlockError::State(e)) => Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "a decided block does not re-execute");
                Ok(None)
            }
        }
    }

    /// Commits a re-executed block with its certificate, swapping in the roster it
    /// announces, if any.
    pub(super) fn commit(&mut self, ex: Executed, cert: &Certificate) -> Result<(), ReplicaError> {
        self.commit_blocks(vec![(ex, cert.clone())], false)
    }

    /// Commits consecutive re-executed blocks with their certificates in one write of
    /// the ledger (synced blocks), then does once what follows a commit: the roster the
    /// last one announces swapped in, the mempool rechecked, the new tip announced.
    /// Only the last block may announce a roster: the next block's certificate is
    /// checked under it, so the caller ends a batch there. `synced`: the blocks came
    /// from a peer's sync answer, not from a decision of ours.
    pub(super) fn commit_blocks(
        &mut self,
        blocks: Vec<(Executed, Certificate)>,
        synced: bool,
    ) -> Result<(), ReplicaError> {
        let Some((last, _)) = blocks.last() else {
            return Ok(());
        };
        if let Some((ex, _)) = blocks[..blocks.len() - 1]
            .iter()
            .find(|(ex, _)| ex.header.next_roster_hash != self.c.roster_hash)
        {
            return Err(ReplicaError::RosterMissing {
                height: ex.header.height,
            });
        }
        // Our own execution produced this header; a roster hash without the roster would
        // be a bug of execution, refused before anything is stored rather than followed.
        let announced = if last.header.next_roster_hash != self.c.roster_hash {
            let entry = crate::governance::announced(last)
                .filter(|e| e.roster.hash() == last.header.next_roster_hash)
                .ok_or(ReplicaError::RosterMissing {
                    height: last.header.height,
                })?;
            Some(entry)
        } else {
            None
        };
        self.ledger.commit_many(&blocks)?;
        // A new roster may bring a new policy: every pending record is checked again.
        let rules_changed = announced.is_some();
        if let Some(entry) = announced {
            let was_validator = self.is_validator();
            self.c = Arc::new(Consortium::with_roster(
                self.c.genesis.clone(),
                entry.roster,
                entry.height,
            ));
            self.vals = Validators::new(self.c.validators.clone());
            tracing::info!(
                from_height = entry.height,
                validators = self.c.validators.len(),
                members = self.c.roster.members.len(),
                was_validator,
                validator = self.is_validator(),
                "roster changed"
            );
            self.actions.push(Action::RosterChanged(self.c.clone()));
        }
        self.tip = last.tip.clone();
        self.behind_since = None;
        let tip = self.tip.height;
        self.future.retain(|p| p.height > tip);
        self.assembling.retain(|_, a| a.height() > tip);
        self.parts_served.clear();
        self.later_votes.retain(|v| v.message.height.0 > tip);
        let included: HashSet<RecordId> = blocks
            .iter()
            .flat_map(|(ex, _)| ex.records.iter().map(EncodedRecord::id))
            .collect();
        let changed: HashSet<Vec<u8>> = blocks
            .iter()
            .flat_map(|(ex, _)| ex.writes.keys().cloned())
            .collect();
        let recheck = self.mempool.recheck(
            &self.ledger,
            &self.c,
            &self.tip,
            self.now_ms,
            &included,
            &changed,
            rules_changed,
        )?;
        tracing::debug!(
            executed = recheck.executed,
            pending = self.mempool.len(),
            dropped = recheck.dropped.len(),
            "mempool rechecked"
        );
        for (id, why) in recheck.dropped {
            tracing::debug!(%id, %why, "dropped from mempool after block");
        }
        for (ex, _) in blocks {
            self.actions.push(Action::Committed {
                records: ex.records.iter().map(EncodedRecord::id).collect(),
                tip: ex.tip,
                synced,
            });
        }
        self.actions.push(Action::Broadcast(NetMsg::Status {
            height: self.tip.height,
            tip: self.tip.hash,
        }));
        Ok(())
    }
}
