//! Proposals: a peer's, authenticated, its block put together from the records at
//! hand (the mempool's; what is missing is asked for) and re-executed on our tip
//! before Malachite sees it; and ours, built from the mempool.

use std::collections::{BTreeSet, HashMap, HashSet};

use malachite::Input;
use xinlian_client::block::{Block, Header};
use xinlian_client::merkle::{leaf_hash, root_of};
use xinlian_client::record::EncodedRecord;
use xinlian_genesis::{Hash32, PublicKey};

use super::{
    ASSEMBLING_MAX, Action, FUTURE_HEIGHTS_AHEAD, FUTURE_PER_PROPOSER_MAX, FUTURE_PROPOSALS_MAX,
    PARTS_ANSWERS_PER_PEER_MAX, PARTS_PASSES_MAX, PROPOSALS_KEPT_MAX, PROPOSALS_PER_ROUND_MAX,
    ROUNDS_AHEAD_MAX, Replica, ReplicaError,
};
use crate::chain::{BlockError, build_block, execute_records};
use crate::consensus::context::{Address, BlockValue, Height, round_from_wire, verify};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::{
    NetMsg, PARTS_ASKED_MAX, SignedProposal, WireProposal, proposal_from_wire, proposal_to_wire,
};

/// A peer's proposal of the current height waiting for records this node lacks.
pub(super) struct Assembling {
    /// Who sent it: blamed if its block turns out invalid.
    from: PublicKey,
    proposal: WireProposal,
    /// Its leaves, to hold answers to: a record whose leaf is not one of them was never
    /// asked for (one already answered, by a peer asked earlier, is not blamed).
    named: HashSet<Hash32>,
    /// Records answered so far, by leaf.
    fetched: HashMap<Hash32, EncodedRecord>,
    /// Leaves neither at hand nor answered yet (ordered: what is asked, and of whom, is
    /// the same on every run).
    missing: BTreeSet<Hash32>,
    /// Peers asked, in order, and when the last one was; how many times every
    /// validator has been asked.
    asked: Vec<PublicKey>,
    asked_at_ms: i64,
    passes: u32,
}

impl Assembling {
    pub(super) fn height(&self) -> u64 {
        self.proposal.height
    }
}

impl<L: Ledger> Replica<L> {
    /// A proposal from the network. Checked, cheapest first, before anything is kept,
    /// fetched or executed: its shape (a defined round, a proof-of-lock round below it,
    /// a header of its height by its proposer, as many leaves as the header counts),
    /// its signature, that its leaves make the header's `records_root`, that the
    /// signer is the proposer of that round, that the round is within Malachite's
    /// look-ahead, and that the proposer has not already used up its proposals for the
    /// round.
    pub(super) fn on_proposal(
        &mut self,
        from: PublicKey,
        p: WireProposal,
    ) -> Result<(), ReplicaError> {
        let h = p.height;
        if h <= self.tip.height {
            return Ok(());
        }
        if let Err(why) = well_formed(&p, self.c.policy().block_records_max) {
            self.penalise(from, format!("malformed proposal: {why}"));
            return Ok(());
        }
        if !self.proposal_signed(&p) {
            self.penalise(from, "proposal not signed by its proposer".into());
            return Ok(());
        }
        // The signature covers the header, not the leaves: whoever sent a list that does
        // not make the header's root made it up, and nothing of it is kept.
        if root_of(&p.leaves) != p.header.records_root {
            self.penalise(
                from,
                format!("proposal at height {h}: its leaves do not make the header's records root"),
            );
            return Ok(());
        }
        if self.consensus.is_none() || h > self.tip.height + 1 {
            self.keep_for_later(from, p);
            self.maybe_sync();
            return Ok(());
        }
        let Some(round) = p.round else {
            return Ok(()); // refused by `well_formed`
        };
        if self
            .vals
            .proposer(Height(h), round_from_wire(p.round))
            .address
            != Address(p.proposer)
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
        let id = p.block_id();
        if self.proposals.contains_key(&(round, id)) || self.assembling.contains_key(&(round, id)) {
            return Ok(()); // a copy: Malachite has it already, or it is on its way
        }
        let seen = self
            .proposals
            .range((round, Hash32([0; 32]))..=(round, Hash32([0xff; 32])))
            .count()
            + self
                .assembling
                .range((round, Hash32([0; 32]))..=(round, Hash32([0xff; 32])))
                .count();
        if seen >= PROPOSALS_PER_ROUND_MAX {
            // The signer equivocated, not whoever relayed it (honest validators
            // republish the proposal they locked on, from round 10 on).
            self.penalise(
                p.proposer,
                format!("proposer equivocates: another proposal for height {h} round {round}"),
            );
            return Ok(());
        }
        self.assemble(from, round, p, HashMap::new())
    }

    /// Whether the proposer signed `p`.
    pub(super) fn proposal_signed(&self, p: &WireProposal) -> bool {
        verify(&p.proposer, &p.signed_message(&self.c.chain), &p.signature)
    }

    /// Puts a proposal's block together from the records at hand and `fetched`; with
    /// all of them, it goes on to validation, and otherwise waits for what is missing,
    /// which is asked for (first of `from`, who had the proposal). A block this node has
    /// already executed (proposed again under a proof-of-lock round) needs nothing.
    fn assemble(
        &mut self,
        from: PublicKey,
        round: u32,
        p: WireProposal,
        fetched: HashMap<Hash32, EncodedRecord>,
    ) -> Result<(), ReplicaError> {
        let id = p.block_id();
        if let Some(ex) = self.candidates.get(&id) {
            let block = ex.block();
            self.accept(round, proposal_from_wire(p, block));
            return Ok(());
        }
        let mut records = Vec::with_capacity(p.leaves.len());
        let mut missing = BTreeSet::new();
        for leaf in &p.leaves {
            match self.mempool.by_leaf(leaf).or_else(|| fetched.get(leaf)) {
                Some(r) => records.push(r.clone()),
                None => {
                    missing.insert(*leaf);
                }
            }
        }
        if missing.is_empty() {
            let header = p.header.clone();
            let block = Block {
                header: header.clone(),
                records: records.iter().map(|r| r.record().clone()).collect(),
            };
            if self.validate_records(id, header, records)? {
                self.accept(round, proposal_from_wire(p, block));
            } else {
                let h = p.height;
                self.penalise(from, format!("proposal of an invalid block at height {h}"));
            }
            return Ok(());
        }
        if self.assembling.len() >= ASSEMBLING_MAX {
            // The highest round's goes, if above this one's, or this one is not kept: a
            // proposer of later rounds cannot push out the current round's proposal.
            match self.assembling.keys().next_back().copied() {
                Some(highest) if highest.0 > round => {
                    self.assembling.remove(&highest);
                }
                _ => return Ok(()),
            }
        }
        tracing::debug!(
            height = p.height,
            round,
            missing = missing.len(),
            of = p.leaves.len(),
            "proposal waits for records"
        );
        self.assembling.insert(
            (round, id),
            Assembling {
                from,
                named: p.leaves.iter().copied().collect(),
                proposal: p,
                fetched,
                missing,
                asked: Vec::new(),
                asked_at_ms: self.now_ms,
                passes: 0,
            },
        );
        self.ask_for_parts((round, id), Some(from), false);
        Ok(())
    }

    /// A validated proposal goes to Malachite.
    fn accept(&mut self, round: u32, p: SignedProposal) {
        self.keep_proposal(round, p.clone());
        self.inputs.push_back(Input::Proposal(p));
    }

    /// Asks a peer for the records a proposal still lacks: `prefer` if it was not asked
    /// yet, else the next validator not asked; once all were, nobody (`again` false: an
    /// answer that helped asks on, and the next is left to the timer) or the first again
    /// (`again` true: the timer's retry), for at most `PARTS_PASSES_MAX` passes over
    /// the validators: a proposal whose records nobody has is given up on (its round
    /// times out as if it had never come).
    fn ask_for_parts(&mut self, key: (u32, Hash32), prefer: Option<PublicKey>, again: bool) {
        let me = self.me;
        let order: Vec<PublicKey> = prefer
            .into_iter()
            .chain(self.c.validators.validators().iter().map(|v| v.key))
            .filter(|k| *k != me)
            .collect();
        let Some(a) = self.assembling.get_mut(&key) else {
            return;
        };
        let peer = match order.iter().find(|k| !a.asked.contains(k)) {
            Some(k) => *k,
            None if !again || a.passes + 1 >= PARTS_PASSES_MAX => return,
            None => {
                a.passes += 1;
                a.asked.clear();
                match order.first() {
                    Some(k) => *k,
                    None => return, // nobody to ask
                }
            }
        };
        a.asked.push(peer);
        a.asked_at_ms = self.now_ms;
        let leaves: Vec<Hash32> = a.missing.iter().copied().collect();
        for chunk in leaves.chunks(PARTS_ASKED_MAX) {
            self.actions.push(Action::Send(
                peer,
                NetMsg::PartsRequest {
                    block: key.1,
                    leaves: chunk.to_vec(),
                },
            ));
        }
    }

    /// Asks again, of another peer, for what proposals still lack after `patience_ms`.
    pub(super) fn retry_parts(&mut self, patience_ms: i64) {
        let due: Vec<(u32, Hash32)> = self
            .assembling
            .iter()
            .filter(|(_, a)| self.now_ms - a.asked_at_ms >= patience_ms)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.ask_for_parts(key, None, true);
        }
    }

    /// A peer's answer to our `PartsRequest`: each record must be one of the block's (its
    /// leaf among the proposal's), or the answer is refused and its sender blamed. A
    /// proposal complete with it goes on to validation; one it brought records but not
    /// all asks the next peer not asked yet at once. An answer that brought nothing
    /// asks nobody: the next ask waits for the timer, so that peers lacking the same
    /// records do not bounce empty answers off each other.
    pub(super) fn on_parts(
        &mut self,
        from: PublicKey,
        block: Hash32,
        records: Vec<Vec<u8>>,
    ) -> Result<(), ReplicaError> {
        let keys: Vec<(u32, Hash32)> = self
            .assembling
            .keys()
            .filter(|(_, id)| *id == block)
            .copied()
            .collect();
        if keys.is_empty() {
            return Ok(()); // late (complete already, or the height is over) or unasked
        }
        if records.len() > PARTS_ASKED_MAX {
            self.penalise(from, format!("an answer of {} records", records.len()));
            return Ok(());
        }
        let max = self.c.policy().record_bytes_max as usize;
        let mut answered = Vec::with_capacity(records.len());
        for bytes in records {
            // A record's leaf is over its ledger form (openings sealed); bytes that do
            // not decode are named, if at all, by their own hash.
            let decoded = EncodedRecord::decode(&bytes, max);
            let leaf = match &decoded {
                // The sealed copy has the leaf of the opened one, but never executes:
                // taken, it would fail the block and blame its honest proposer.
                Ok(r) if r.record().envelope.body.has_sealed_amount() => {
                    self.penalise(from, "an answer with a record's sealed copy".into());
                    return Ok(());
                }
                Ok(r) => r.leaf(),
                Err(_) => leaf_hash(&bytes),
            };
            if !keys
                .iter()
                .any(|k| self.assembling[k].named.contains(&leaf))
            {
                self.penalise(from, "an answer with a record not in the block".into());
                return Ok(());
            }
            if !keys
                .iter()
                .any(|k| self.assembling[k].missing.contains(&leaf))
            {
                continue; // answered already, by a peer asked before
            }
            match decoded {
                Ok(r) => answered.push((leaf, r)),
                Err(e) => {
                    // The bytes are the ones the header commits to: the block itself
                    // holds a record that does not decode, which is its proposer's doing.
                    for k in &keys {
                        if let Some(a) = self.assembling.remove(k) {
                            let h = a.proposal.height;
                            self.penalise(
                                a.from,
                                format!("proposal of an invalid block at height {h}: {e}"),
                            );
                        }
                    }
                    return Ok(());
                }
            }
        }
        for key in keys {
            let Some(a) = self.assembling.get_mut(&key) else {
                continue;
            };
            let mut brought = false;
            for (leaf, r) in &answered {
                if a.missing.remove(leaf) {
                    a.fetched.insert(*leaf, r.clone());
                    brought = true;
                }
            }
            if a.missing.is_empty() {
                if let Some(a) = self.assembling.remove(&key) {
                    self.assemble(a.from, key.0, a.proposal, a.fetched)?;
                }
            } else if brought {
                self.ask_for_parts(key, None, false);
            }
        }
        Ok(())
    }

    /// What we answer to a peer's `PartsRequest`: for a block we know (one we executed,
    /// or are putting together ourselves), those of the asked records we have (in that
    /// block, the mempool, or what we fetched), in the order asked, within a block's
    /// bytes. A peer gets at most `PARTS_ANSWERS_PER_PEER_MAX` answers and twice the
    /// block bound in bytes a height; past that, and for blocks we do not know, empty
    /// answers: an honest validator asks a few times per proposal.
    pub fn answer_parts(&mut self, from: PublicKey, block: Hash32, leaves: &[Hash32]) -> NetMsg {
        let empty = NetMsg::Parts {
            block,
            records: Vec::new(),
        };
        let known = self.candidates.contains_key(&block)
            || self.assembling.keys().any(|(_, id)| *id == block);
        let budget = 2 * self.c.policy().block_bytes_max as usize;
        let served = self.parts_served.entry(from).or_insert((0, 0));
        served.0 += 1;
        if !known
            || served.0 > PARTS_ANSWERS_PER_PEER_MAX
            || served.1 >= budget
            || leaves.len() > PARTS_ASKED_MAX
        {
            return empty;
        }
        let bytes_max = (budget - served.1).min(self.c.policy().block_bytes_max as usize);
        let in_block: HashMap<&Hash32, &EncodedRecord> = self
            .candidates
            .get(&block)
            .map(|ex| ex.leaves.iter().zip(&ex.records).collect())
            .unwrap_or_default();
        let (mut records, mut bytes) = (Vec::new(), 0usize);
        for leaf in leaves {
            let found = in_block
                .get(leaf)
                .copied()
                .or_else(|| self.mempool.by_leaf(leaf))
                .or_else(|| self.assembling.values().find_map(|a| a.fetched.get(leaf)));
            if let Some(r) = found {
                if bytes + r.bytes().len() > bytes_max {
                    break;
                }
                bytes += r.bytes().len();
                records.push(r.bytes().to_vec());
            }
        }
        if let Some(served) = self.parts_served.get_mut(&from) {
            served.1 += bytes;
        }
        NetMsg::Parts { block, records }
    }

    /// Our proposal (or one we accepted) as it travels: its leaves from the execution
    /// kept, or computed again.
    pub(super) fn wire_proposal(&self, p: &SignedProposal) -> WireProposal {
        let leaves = match self.candidates.get(&p.message.value.id) {
            Some(ex) => ex.leaves.clone(),
            None => p
                .message
                .value
                .block
                .records
                .iter()
                .map(xinlian_client::record::SignedRecord::leaf)
                .collect(),
        };
        proposal_to_wire(p, leaves)
    }

    /// Keeps a proposal of a later height (or one that arrived before we started this
    /// height) until we get there: only from a member's node (a validator voted in
    /// proposes before we commit the block that admits it), only for the next couple of
    /// heights, and a few per proposer — copies not counted — so that no member can
    /// fill the buffer for the others. The set in force *then* authenticates it again.
    fn keep_for_later(&mut self, from: PublicKey, p: WireProposal) {
        if self.c.roster.member_by_node_key(&p.proposer).is_none() {
            self.penalise(from, "proposal not signed by a member".into());
            return;
        }
        let h = p.height;
        if h > self.tip.height + FUTURE_HEIGHTS_AHEAD || self.future.contains(&p) {
            return;
        }
        let theirs = self
            .future
            .iter()
            .filter(|q| q.proposer == p.proposer)
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
        let records = v
            .block
            .records
            .iter()
            .cloned()
            .map(EncodedRecord::new)
            .collect();
        self.validate_records(v.id, v.block.header.clone(), records)
    }

    /// [`Replica::validate`] for a block of encoded records (put together from the
    /// mempool's and those fetched).
    fn validate_records(
        &mut self,
        id: Hash32,
        header: Header,
        records: Vec<EncodedRecord>,
    ) -> Result<bool, ReplicaError> {
        if self.candidates.contains_key(&id) {
            return Ok(true);
        }
        // A proposer's clock may run ahead of ours by at most the genesis drift.
        let drift = self.c.policy().block_time_drift_ms_max as i64;
        let height = header.height;
        if header.time_ms > self.now_ms + drift {
            tracing::warn!(height, "proposal dated in the future");
            return Ok(false);
        }
        match execute_records(&self.ledger, &self.c, &self.tip, header, records) {
            Ok(ex) => {
                self.candidates.insert(id, ex);
                Ok(true)
            }
            Err(BlockError::State(e)) => Err(e.into()),
            Err(e) => {
                tracing::warn!(height, error = %e, "invalid proposal");
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
        for (id, why) in &rejected {
            tracing::debug!(%id, %why, "pending record left out of the block: dropped");
        }
        if !rejected.is_empty() {
            // The same execution in the same order a recheck would run: they no longer
            // fit (a governance deadline passed), and what depended on them is checked.
            let ids: HashSet<_> = rejected.iter().map(|(id, _)| *id).collect();
            self.mempool.recheck(
                &self.ledger,
                &self.c,
                &self.tip,
                self.now_ms,
                &ids,
                &HashSet::new(),
                false,
            )?;
        }
        let value = BlockValue::new(ex.block());
        self.candidates.insert(value.id, ex);
        Ok(value)
    }
}

/// What a proposal must be before anything else is checked: Malachite assumes these of
/// every proposal it is handed (a nil round would make it ask for the proposer of no
/// round), the header must be of the height the message names, and it must name as
/// many records as its header counts, within the genesis bound.
fn well_formed(p: &WireProposal, records_max: u32) -> Result<(), String> {
    let Some(round) = p.round else {
        return Err("a proposal for no round".into());
    };
    if let Some(pol) = p.pol_round
        && pol >= round
    {
        return Err(format!(
            "proof-of-lock round {pol} is not before round {round}"
        ));
    }
    let header = &p.header;
    if header.height != p.height {
        return Err(format!(
            "block of height {} in a proposal for height {}",
            header.height, p.height
        ));
    }
    // A fresh block is its proposer's own; a block proposed again with a proof-of-lock
    // round keeps the name of the validator that first proposed it.
    if p.pol_round.is_none() && header.proposer != p.proposer {
        return Err("a new block that names another proposer than the proposal's signer".into());
    }
    if p.leaves.len() != header.records_count as usize || p.leaves.len() > records_max as usize {
        return Err(format!(
            "{} leaves for a header of {} records (at most {records_max})",
            p.leaves.len(),
            header.records_count
        ));
    }
    Ok(())
}
