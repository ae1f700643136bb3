//! Committing a block, decided here or synced with its certificate: the ledger, the
//! mempool's recheck, and the swap to a roster the block announced.

use std::collections::HashSet;
use std::sync::Arc;

use malachite_types::CommitCertificate;
use xinlian_client::block::{Certificate, verify_certificate};
use xinlian_client::record::{EncodedRecord, RecordId};

use super::{Action, Replica, ReplicaError};
use crate::chain::Executed;
use crate::consensus::context::{Ctx, Validators};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::{NetMsg, certificate_from_malachite};
use crate::execute::Consortium;

impl<L: Ledger> Replica<L> {
    /// Commits the block Malachite decided on, then has the next height start.
    pub(super) fn commit_decision(
        &mut self,
        cert: &CommitCertificate<Ctx>,
    ) -> Result<(), ReplicaError> {
        let height = cert.height.0;
        if height != self.tip.height + 1 {
            // Already committed (e.g. by sync) — nothing to do.
            return Ok(());
        }
        let ours = certificate_from_malachite(cert, &self.vals)
            .expect("Malachite decides on precommits of validators in the set");
        let ex = self
            .candidates
            .remove(&ours.block)
            .expect("a decided block was validated before its proposal reached consensus");
        verify_certificate(&ex.header, &ours, &self.c.validators)
            .expect("a decision's certificate verifies as clients check it");
        self.commit(ex, &ours)?;
        self.start_next = true;
        Ok(())
    }

    /// Commits a re-executed block with its certificate, swapping in the roster it
    /// announces, if any.
    pub(super) fn commit(&mut self, ex: Executed, cert: &Certificate) -> Result<(), ReplicaError> {
        self.ledger.commit(&ex, cert)?;
        let records: Vec<RecordId> = ex.records.iter().map(EncodedRecord::id).collect();
        if ex.header.next_roster_hash != self.c.roster_hash {
            let entry = crate::governance::announced(&ex)
                .expect("a header announcing another roster comes with its writes");
            assert_eq!(entry.roster.hash(), ex.header.next_roster_hash);
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
        self.tip = ex.tip;
        self.behind_since = None;
        let tip = self.tip.height;
        self.future.retain(|p| p.message.height.0 > tip);
        let included: HashSet<RecordId> = records.iter().copied().collect();
        for (id, why) in
            self.mempool
                .recheck(&self.ledger, &self.c, &self.tip, self.now_ms, &included)?
        {
            tracing::debug!(%id, %why, "dropped from mempool after block");
        }
        self.actions.push(Action::Committed {
            tip: self.tip.clone(),
            records,
        });
        self.actions.push(Action::Broadcast(NetMsg::Status {
            height: self.tip.height,
            tip: self.tip.hash,
        }));
        Ok(())
    }
}
