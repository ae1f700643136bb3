//! Proposals: a peer's, authenticated and its block re-executed on our tip before
//! Malachite sees it; and ours, built from the mempool.

use malachite::Input;
use xinlian_genesis::{Hash32, PublicKey};

use super::{
    FUTURE_HEIGHTS_AHEAD, FUTURE_PER_PROPOSER_MAX, FUTURE_PROPOSALS_MAX, PROPOSALS_KEPT_MAX,
    PROPOSALS_PER_ROUND_MAX, ROUNDS_AHEAD_MAX, Replica, ReplicaError,
};
use crate::chain::{BlockError, build_block, execute_block};
use crate::consensus::context::{BlockValue, proposal_message, verify};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::SignedProposal;

impl<L: Ledger> Replica<L> {
    /// A proposal from the network. Checked, cheapest first, before a block execution is
    /// spent on it: its shape (a defined round, a proof-of-lock round below it, a block of
    /// its height by its proposer), its signature, that the signer is the proposer of
    /// that round, that the round is within Malachite's look-ahead, and that the
    /// proposer has not already used up its proposals for the round.
    pub(super) fn on_proposal(
        &mut self,
        from: PublicKey,
        p: SignedProposal,
    ) -> Result<(), ReplicaError> {
        let h = p.message.height.0;
        if h <= self.tip.height {
            return Ok(());
        }
        if let Err(why) = well_formed(&p) {
            self.penalise(from, format!("malformed proposal: {why}"));
            return Ok(());
        }
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
            self.keep_for_later(from, p);
            self.maybe_sync();
            return Ok(());
        }
        let Some(round) = p.message.round.as_u32() else {
            return Ok(()); // refused by `well_formed`
        };
        if self
            .vals
            .proposer(p.message.height, p.message.round)
            .address
            != p.message.proposer
        {
            self.penalise(
                from,
                format!("proposal for height {h} round {round} not by that round's proposer"),
            );
            return Ok(());
        }
        let current = self.round().unwrap_or(0);
        if round > current.saturating_add(ROUNDS_AHEAD_MAX) {
            // Malachite drops it too; an honest proposer this far ahead re-proposes.
            return Ok(());
        }
        let id = p.message.value.id;
        if self.proposals.contains_key(&(round, id)) {
            return Ok(()); // a copy: Malachite has it already
        }
        let in_round = self
            .proposals
            .range((round, Hash32([0; 32]))..=(round, Hash32([0xff; 32])))
            .count();
        if in_round >= PROPOSALS_PER_ROUND_MAX {
            // The signer equivocated, not whoever relayed it (honest validators
            // republish the proposal they locked on, from round 10 on).
            let proposer = p.message.proposer.0;
            self.penalise(
                proposer,
                format!("proposer equivocates: another proposal for height {h} round {round}"),
            );
            return Ok(());
        }
        if self.validate(&p.message.value)? {
            self.keep_proposal(round, p.clone());
            self.inputs.push_back(Input::Proposal(p));
        } else {
            self.penalise(from, format!("proposal of an invalid block at height {h}"));
        }
        Ok(())
    }

    /// Keeps a proposal of a later height (or one that arrived before we started this
    /// height) until we get there: only from a member's node (a validator voted in
    /// proposes before we commit the block that admits it), only for the next couple of
    /// heights, and a few per proposer — copies not counted — so that no member can
    /// fill the buffer for the others. The set in force *then* authenticates it again.
    fn keep_for_later(&mut self, from: PublicKey, p: SignedProposal) {
        if self
            .c
            .roster
            .member_by_node_key(&p.message.proposer.0)
            .is_none()
        {
            self.penalise(from, "proposal not signed by a member".into());
            return;
        }
        let h = p.message.height.0;
        if h > self.tip.height + FUTURE_HEIGHTS_AHEAD || self.future.contains(&p) {
            return;
        }
        let theirs = self
            .future
            .iter()
            .filter(|q| q.message.proposer == p.message.proposer)
            .count();
        if theirs < FUTURE_PER_PROPOSER_MAX && self.future.len() < FUTURE_PROPOSALS_MAX {
            self.future.push(p);
        }
    }

    /// Files a validated proposal (ours or a peer's) to re-send on request and to find
    /// its block again at a decision. When more are kept than the bound, the lowest
    /// round's go first, with their executions.
    pub(super) fn keep_proposal(&mut self, round: u32, p: SignedProposal) {
        self.proposals.insert((round, p.message.value.id), p);
        while self.proposals.len() > PROPOSALS_KEPT_MAX {
            let Some(((_, id), _)) = self.proposals.pop_first() else {
                break;
            };
            if !self.proposals.keys().any(|(_, other)| *other == id) {
                self.candidates.remove(&id);
            }
        }
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

/// What a proposal must be before anything else is checked: Malachite assumes these of
/// every proposal it is handed (a nil round would make it ask for the proposer of no
/// round), and the block inside must be the one the message names.
fn well_formed(p: &SignedProposal) -> Result<(), String> {
    let m = &p.message;
    let Some(round) = m.round.as_u32() else {
        return Err("a proposal for no round".into());
    };
    if let Some(pol) = m.pol_round.as_u32()
        && pol >= round
    {
        return Err(format!(
            "proof-of-lock round {pol} is not before round {round}"
        ));
    }
    let header = &m.value.block.header;
    if header.height != m.height.0 {
        return Err(format!(
            "block of height {} in a proposal for height {}",
            header.height, m.height.0
        ));
    }
    // A fresh block is its proposer's own; a block proposed again with a proof-of-lock
    // round keeps the name of the validator that first proposed it.
    if m.pol_round.as_u32().is_none() && header.proposer != m.proposer.0 {
        return Err("a new block that names another proposer than the proposal's signer".into());
    }
    Ok(())
}
