//! Intake from peers besides consensus and sync: relayed records (decoded, verified as
//! a batch, admitted to the mempool) and height announcements; and the action helpers.

use xinlian_client::checks::StatelessError;
use xinlian_client::crypto::{Domain, verify_batch};
use xinlian_client::record::{EncodedRecord, RecordId};
use xinlian_genesis::PublicKey;

use super::heights::Start;
use super::{Action, LATER_VOTES_PER_MEMBER_MAX, ROUNDS_AHEAD_MAX, Replica, ReplicaError, Timer};
use crate::consensus::context::{Address, Height, round_from_wire, verify, vote_message};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::{
    NetMsg, RELAY_BYTES_MAX, RELAY_RECORDS_MAX, SignedVote, vote_from_wire,
};
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
                Ok(rec) if rec.record().envelope.body.has_sealed_amount() => {
                    self.penalise(from, "a relayed record's sealed copy".into());
                }
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
            // raced a conflicting record); a bad signature or proof of possession —
            // which no node admits, so none relays — blames the sender.
            let signature = if batch_verified {
                SignatureCheck::Done
            } else {
                SignatureCheck::Needed
            };
            match self.admit(rec, signature) {
                Ok(_) => admitted = true,
                Err(AdmissionError::Rejected(Rejection::Stateless(
                    e @ (StatelessError::Signature(_) | StatelessError::Possession { .. }),
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

    /// Keeps a vote for a height we have not started (the next, or the one after while
    /// we finish ours), to feed to consensus when we start it: without it, a validator
    /// that starts a height late loses the votes sent meanwhile, and with f
    /// equivocators one lost honest vote can cost the round for every honest node that
    /// saw the other half of their votes (found by the long simulator run, seeds 70185
    /// and 81510). Only on a validator (nothing else starts heights), only a vote its
    /// signer sent itself (`from`, the gossip author: so nobody but the signer can
    /// choose which of its votes are kept), of a member, of a round consensus will
    /// look at when it starts the height, signed — a forged signature blames the
    /// sender —, copies once, at most `LATER_VOTES_PER_MEMBER_MAX` each (its oldest
    /// goes): the set in force at that height checks them again.
    pub(super) fn keep_vote_for_later(&mut self, from: PublicKey, sv: SignedVote) {
        let who = sv.message.validator.0;
        if !self.is_validator()
            || who != from
            || sv
                .message
                .round
                .as_u32()
                .is_none_or(|r| r > ROUNDS_AHEAD_MAX)
            || self.c.roster.member_by_node_key(&who).is_none()
            || self.later_votes.contains(&sv)
        {
            return;
        }
        if !verify(
            &who,
            &vote_message(&self.c.chain, &sv.message),
            &sv.signature,
        ) {
            self.penalise(from, "vote for a later height: bad signature".into());
            return;
        }
        let mut theirs = self
            .later_votes
            .iter()
            .enumerate()
            .filter(|(_, v)| v.message.validator.0 == who)
            .map(|(i, _)| i);
        if let Some(oldest) = theirs.next()
            && theirs.count() + 1 >= LATER_VOTES_PER_MEMBER_MAX
        {
            self.later_votes.remove(oldest);
        }
        self.later_votes.push(sv);
    }

    /// Whether `msg` shows that the validators have started the height after our tip: a
    /// round-0 proposal of that height signed by its proposer, or votes for it signed by
    /// validators with more than a third of the power. Anything else — an unsigned
    /// claim, a certificate, one validator's vote — starts nothing, so that no peer can
    /// make us start heights (and cut empty blocks) faster than the block interval.
    pub(super) fn announces_next_height(&mut self, msg: &NetMsg) -> bool {
        if self.consensus.is_some() || !self.is_validator() {
            return false;
        }
        let next = self.tip.height + 1;
        match msg {
            // Only round 0's proposer starts a height by proposing; a byzantine one can
            // rush only its own turns.
            NetMsg::Proposal(p) if p.height == next && p.round == Some(0) => {
                self.vals
                    .proposer(Height(p.height), round_from_wire(p.round))
                    .address
                    == Address(p.proposer)
                    && self.proposal_signed(p)
            }
            // One validator alone could otherwise start every height the moment the
            // last one ends and cut empty blocks at consensus speed: it takes votes
            // from more than a third of the power, at least one of them honest.
            NetMsg::Vote(v) if v.height == next => {
                let sv = vote_from_wire(v);
                let signed = self.vals.index_of(&sv.message.validator).is_some()
                    && verify(
                        &sv.message.validator.0,
                        &vote_message(&self.c.chain, &sv.message),
                        &sv.signature,
                    );
                if signed {
                    self.early_voters.insert(sv.message.validator.0);
                }
                let power: u64 = self
                    .c
                    .validators
                    .validators()
                    .iter()
                    .filter(|v| self.early_voters.contains(&v.key))
                    .map(|v| v.power)
                    .sum();
                u128::from(power) * 3 > u128::from(self.c.validators.total_power())
            }
            _ => false,
        }
    }

    /// A peer announced its finalized height: perhaps we are behind.
    ///
    /// Only members' nodes are heard (so the table is bounded by the roster), and a
    /// peer's latest claim replaces its earlier one: a claim is a hint of whom to ask,
    /// never trusted — what a peer serves is checked block by block, and a peer whose
    /// claim its answers do not bear out is asked last (see `sync`).
    pub(super) fn on_status(&mut self, from: PublicKey, height: u64) {
        if self.c.roster.member_by_node_key(&from).is_none() {
            return;
        }
        self.peer_heights.insert(from, height);
        self.maybe_sync();
    }

    /// Reports a peer's misbehaviour to the host.
    pub(super) fn penalise(&mut self, peer: PublicKey, reason: String) {
        self.actions.push(Action::Penalise {
            peer,
            reason,
            about: self.handling,
        });
    }

    /// Asks the host to fire `timer` after `after_ms`.
    pub(super) fn schedule(&mut self, timer: Timer, after_ms: u64) {
        self.actions.push(Action::Schedule { timer, after_ms });
    }
}

/// The highest round a consensus message may name. No honest height gets near it:
/// round `r` lasts over `r × delta` ms, so round 1,000,000 comes after years. Past it,
/// Malachite's round arithmetic would overflow (`Round::increment` at `u32::MAX`,
/// found by the `replica` fuzz target).
pub(super) const ROUND_MAX: u32 = 1_000_000;

/// Consensus messages for no round or a round past [`ROUND_MAX`]: Malachite assumes
/// every proposal, vote and certificate it is handed names a round it can count past.
/// Refused, with the reason, before anything.
pub(super) fn round_out_of_range(msg: &NetMsg) -> Option<String> {
    let (what, round) = match msg {
        NetMsg::Proposal(p) => ("proposal", p.round),
        NetMsg::Vote(v) => ("vote", v.round),
        NetMsg::PolkaCertificate(c) => ("polka certificate", c.round),
        NetMsg::RoundCertificate(c) => ("round certificate", c.round),
        _ => return None,
    };
    match round {
        None => Some(format!("a {what} for no round")),
        Some(r) if r > ROUND_MAX => Some(format!("a {what} for round {r}, past {ROUND_MAX}")),
        Some(_) => None,
    }
}
