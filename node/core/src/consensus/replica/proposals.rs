//! Proposals: a peer's, authenticated and its block re-executed on our tip before
//! Malachite sees it; and ours, built from the mempool.

use malachite::Input;
use xinlian_genesis::PublicKey;

use super::{CANDIDATES_MAX, FUTURE_PROPOSALS_MAX, Replica, ReplicaError};
use crate::chain::{BlockError, build_block, execute_block};
use crate::consensus::context::{BlockValue, proposal_message, verify};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::SignedProposal;

impl<L: Ledger> Replica<L> {
    pub(super) fn on_proposal(
        &mut self,
        from: PublicKey,
        p: SignedProposal,
    ) -> Result<(), ReplicaError> {
        let h = p.message.height.0;
        if h <= self.tip.height {
            return Ok(());
        }
        // For a later height, or before this node votes at all (a member voted in
        // syncs first): kept until we get there. The set in force *then* authenticates
        // it, since governance may change the set in between.
        let signed = verify(
            &p.message.proposer.0,
            &proposal_message(&self.c.chain, &p.message),
            &p.signature,
        );
        if !signed {
            self.penalise(from, "proposal not signed by its proposer".into());
            return Ok(());
        }
        if self.consensus.is_none() || h > self.tip.height + 1 {
            if self.future.len() < FUTURE_PROPOSALS_MAX {
                self.future.push(p);
            }
            self.maybe_sync();
            return Ok(());
        }
        // Authenticated: now the proposer must be a validator of this height, before
        // a block execution is spent on it.
        if self.vals.index_of(&p.message.proposer).is_none() {
            self.penalise(from, "proposal not signed by a validator".into());
            return Ok(());
        }
        if self.validate(&p.message.value)? {
            if let Some(r) = p.message.round.as_u32() {
                self.proposals.insert((r, p.message.value.id), p.clone());
            }
            self.inputs.push_back(Input::Proposal(p));
        } else {
            self.penalise(from, format!("proposal of an invalid block at height {h}"));
        }
        Ok(())
    }

    /// Re-executes a block of the next height on our tip, keeping the result for the
    /// commit. `false` when the block is invalid.
    pub(super) fn validate(&mut self, v: &BlockValue) -> Result<bool, ReplicaError> {
        if self.candidates.contains_key(&v.id) {
            return Ok(true);
        }
        // A proposer's clock may run ahead of ours by at most the genesis drift.
        let drift = self.c.policy().block_time_drift_ms_max as i64;
        if v.block.header.time_ms > self.now_ms + drift {
            tracing::warn!(
                height = v.block.header.height,
                "proposal dated in the future"
            );
            return Ok(false);
        }
        match execute_block(&self.ledger, &self.c, &self.tip, (*v.block).clone()) {
            Ok(ex) => {
                if self.candidates.len() >= CANDIDATES_MAX {
                    self.candidates.clear();
                }
                self.candidates.insert(v.id, ex);
                Ok(true)
            }
            Err(BlockError::State(e)) => Err(e.into()),
            Err(e) => {
                tracing::warn!(height = v.block.header.height, error = %e, "invalid proposal");
                Ok(false)
            }
        }
    }

    /// Builds our proposal for the current height from the mempool.
    pub(super) fn build(&mut self) -> Result<BlockValue, ReplicaError> {
        let time_ms = self.now_ms.max(self.tip.time_ms + 1);
        let (ex, rejected) = build_block(
            &self.ledger,
            &self.c,
            &self.tip,
            self.me,
            time_ms,
            self.mempool.records(),
        )?;
        for (id, why) in rejected {
            tracing::debug!(%id, %why, "pending record left out of the block");
        }
        let value = BlockValue::new(ex.block());
        self.candidates.insert(value.id, ex);
        Ok(value)
    }
}
