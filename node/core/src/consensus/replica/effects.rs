//! Answering Malachite's effects: timers, messages to publish, values to propose,
//! signatures (never two different ones for a slot), verification and the write-ahead log.

use malachite::{ConsensusMsg, Effect, Input, LivenessMsg, Resumable, Resume, SignedConsensusMsg};
use malachite_types::{NilOrVal, Round, SignedMessage, VoteType};
use xinlian_genesis::{Hash32, PublicKey};

use super::{Action, Replica, ReplicaError, Timer};
use crate::consensus::context::{
    BlockId, BlockProposal, BlockValue, ConsensusVote, Ctx, Height, proposal_message, sign, verify,
    vote_message,
};
use crate::consensus::ledger::{Durability, Ledger, LedgerError};
use crate::consensus::wire::{
    NetMsg, SignedProposal, SignedVote, WalEntry, polka_to_wire, round_cert_to_wire, vote_to_wire,
};

impl<L: Ledger> Replica<L> {
    /// Answers one effect. A failure of ours (storage, building a block) is left in
    /// `failure` for `drain` to return; an `Err` refuses the effect (a second, different
    /// signature), and Malachite drops the input that asked for it.
    pub(super) fn on_effect(
        &mut self,
        effect: Effect<Ctx>,
        failure: &mut Option<ReplicaError>,
    ) -> Result<Resume<Ctx>, String> {
        Ok(match effect {
            // Timers.
            Effect::CancelAllTimeouts(r) => {
                self.actions.push(Action::CancelConsensusTimers);
                r.resume_with(())
            }
            Effect::CancelTimeout(t, r) => {
                self.actions.push(Action::Cancel(Timer::Consensus(t)));
                r.resume_with(())
            }
            Effect::ScheduleTimeout(t, r) => {
                let after_ms = self.timeouts.of(t);
                self.schedule(Timer::Consensus(t), after_ms);
                r.resume_with(())
            }
            Effect::StartRound(_, _, _, _, r) => r.resume_with(()),
            // Messages to publish.
            Effect::PublishConsensusMsg(msg, r) => {
                self.publish(msg);
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(msg, r) => {
                self.publish_liveness(msg);
                r.resume_with(())
            }
            Effect::RepublishVote(v, r) => {
                self.actions
                    .push(Action::Broadcast(NetMsg::Vote(vote_to_wire(&v))));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(c, r) => {
                self.actions
                    .push(Action::Broadcast(NetMsg::RoundCertificate(
                        round_cert_to_wire(&c),
                    )));
                r.resume_with(())
            }
            // Values and decisions.
            Effect::GetValue(height, round, _, r) => {
                if let Err(e) = self.propose(height, round) {
                    *failure = Some(e);
                }
                r.resume_with(())
            }
            Effect::RestreamProposal(height, round, _, _, id, r) => {
                self.restream(height, round, id);
                r.resume_with(())
            }
            Effect::CertVerifiedSyncValue(_, _, r) | Effect::CertRejectedSyncValue(_, _, _, r) => {
                r.resume_with(())
            }
            Effect::Decide(cert, _, r) => {
                if let Err(e) = self.commit_decision(&cert) {
                    *failure = Some(e);
                }
                r.resume_with(())
            }
            Effect::Finalize(_, _, evidence, r) => {
                if !evidence.is_empty() {
                    tracing::warn!(?evidence, "misbehaviour seen at this height");
                }
                r.resume_with(())
            }
            // Signing and verifying.
            Effect::SignVote(vote, r) => r.resume_with(self.sign_vote(vote)?),
            Effect::SignProposal(p, r) => r.resume_with(self.sign_proposal(p)?),
            Effect::VerifySignature(msg, key, r) => r.resume_with(self.signature_holds(&msg, &key)),
            Effect::VerifyCommitCertificate(cert, vs, _, r) => {
                r.resume_with(self.check_commit(&cert, &vs))
            }
            Effect::VerifyExtendedCommitCertificate(cert, vs, _, _, r) => {
                r.resume_with(self.check_commit(&cert.trim_vote_extensions(), &vs))
            }
            Effect::VerifyPolkaCertificate(cert, vs, _, r) => {
                r.resume_with(self.check_polka(&cert, &vs))
            }
            Effect::VerifyRoundCertificate(cert, vs, _, r) => {
                r.resume_with(self.check_round(&cert, &vs))
            }
            // The write-ahead log.
            Effect::WalAppend(height, input, r) => {
                if let Err(e) = self.log_input(height, &input) {
                    *failure = Some(e.into());
                    return Err("write-ahead log append failed".into());
                }
                r.resume_with(())
            }
            // Vote extensions are disabled.
            Effect::ExtendVote(_, _, _, _, r) => r.resume_with(None),
            Effect::VerifyVoteExtension(_, _, _, _, _, _, r) => r.resume_with(Ok(())),
        })
    }

    fn publish(&mut self, msg: SignedConsensusMsg<Ctx>) {
        self.actions.push(Action::Broadcast(match msg {
            SignedConsensusMsg::Vote(v) => NetMsg::Vote(vote_to_wire(&v)),
            SignedConsensusMsg::Proposal(p) => NetMsg::Proposal(Box::new(self.wire_proposal(&p))),
        }));
    }

    fn publish_liveness(&mut self, msg: LivenessMsg<Ctx>) {
        self.actions.push(Action::Broadcast(match msg {
            LivenessMsg::Vote(v) => NetMsg::Vote(vote_to_wire(&v)),
            LivenessMsg::PolkaCertificate(c) => NetMsg::PolkaCertificate(polka_to_wire(&c)),
            LivenessMsg::SkipRoundCertificate(c) => {
                NetMsg::RoundCertificate(round_cert_to_wire(&c))
            }
        }));
    }

    /// We propose at this height and round: our block goes back to Malachite as input.
    /// If we already proposed for this slot before a restart (our write-ahead log says
    /// so), it is that very block again — never a second one.
    fn propose(&mut self, height: Height, round: Round) -> Result<(), ReplicaError> {
        if height.0 == self.tip.height + 1 {
            let value = match self.signed_proposals.get(&(height.0, round.as_u32())) {
                Some((id, _)) => match self.reproposal(id) {
                    Some(v) => v,
                    None => {
                        // Our block of then is gone (it no longer executes): proposing
                        // nothing lets the round time out, which is safe.
                        tracing::warn!(height = height.0, "our logged proposal is not at hand");
                        return Ok(());
                    }
                },
                None => self.build()?,
            };
            self.inputs
                .push_back(Input::Propose(malachite::LocallyProposedValue::new(
                    height, round, value,
                )));
        }
        Ok(())
    }

    /// The value we proposed before, from the proposals kept or the logged value.
    fn reproposal(&self, id: &Hash32) -> Option<BlockValue> {
        if !self.candidates.contains_key(id) {
            return None;
        }
        if let Some(p) = self.proposals.values().find(|p| p.message.value.id == *id) {
            return Some(p.message.value.clone());
        }
        self.logged_values.get(id).cloned()
    }

    /// Re-sends a proposal of the current height we signed or accepted.
    fn restream(&mut self, height: Height, round: Round, id: BlockId) {
        if height.0 == self.tip.height + 1
            && let Some(p) = round
                .as_u32()
                .and_then(|rd| self.proposals.get(&(rd, id.0)))
        {
            let wire = self.wire_proposal(p);
            self.actions
                .push(Action::Broadcast(NetMsg::Proposal(Box::new(wire))));
        }
    }

    /// Signs our vote, refusing a second, different one for the same slot.
    fn sign_vote(&mut self, vote: ConsensusVote) -> Result<SignedVote, String> {
        let slot = (
            vote.height.0,
            vote.round.as_u32(),
            vote.kind == VoteType::Precommit,
        );
        let value = match vote.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(id.0),
        };
        if let Some(prev) = self.signed_votes.get(&slot)
            && *prev != value
        {
            return Err(format!(
                "refusing to sign a second, different vote for height {} round {:?}",
                slot.0, slot.1
            ));
        }
        self.signed_votes.insert(slot, value);
        let signature = sign(&self.key, &vote_message(&self.c.chain, &vote));
        Ok(SignedMessage::new(vote, signature))
    }

    /// Signs our proposal, refusing a second, different one for the same slot, and keeps
    /// it to re-send.
    fn sign_proposal(&mut self, p: BlockProposal) -> Result<SignedProposal, String> {
        let slot = (p.height.0, p.round.as_u32());
        let signing = (p.value.id, p.pol_round.as_u32());
        if let Some(prev) = self.signed_proposals.get(&slot)
            && *prev != signing
        {
            return Err(format!(
                "refusing to sign a second, different proposal for height {} round {:?}",
                slot.0, slot.1
            ));
        }
        self.signed_proposals.insert(slot, signing);
        let signature = sign(&self.key, &proposal_message(&self.c.chain, &p));
        let signed = SignedMessage::new(p, signature);
        if let Some(rd) = signed.message.round.as_u32() {
            self.keep_proposal(rd, signed.clone());
        }
        Ok(signed)
    }

    fn signature_holds(
        &self,
        msg: &SignedMessage<Ctx, ConsensusMsg<Ctx>>,
        key: &PublicKey,
    ) -> bool {
        match &msg.message {
            ConsensusMsg::Vote(v) => verify(key, &vote_message(&self.c.chain, v), &msg.signature),
            ConsensusMsg::Proposal(p) => {
                verify(key, &proposal_message(&self.c.chain, p), &msg.signature)
            }
        }
    }

    /// Logs an input Malachite asks to log, unless it is an entry of the log being
    /// replayed (what replay newly derives — a vote we had not yet cast — is logged).
    fn log_input(&self, height: Height, input: &Input<Ctx>) -> Result<(), LedgerError> {
        if let Some(entry) = WalEntry::from_input(input)
            && (self.replayed.is_empty() || !self.replayed.contains(&wal_digest(&entry)))
        {
            // Our own messages must survive a crash before they are sent; a flush also
            // makes every earlier entry durable.
            let own = match input {
                Input::Vote(v) => v.message.validator.0 == self.me,
                Input::Proposal(p) => p.message.proposer.0 == self.me,
                Input::ProposedValue(v, _) => v.proposer.0 == self.me,
                _ => false,
            };
            let durability = if own {
                Durability::Synced
            } else {
                Durability::Buffered
            };
            self.ledger.wal_append(height.0, &entry, durability)?;
        }
        Ok(())
    }
}

/// What identifies a log entry among those replayed.
pub(super) fn wal_digest(entry: &WalEntry) -> Hash32 {
    xinlian_genesis::canonical::sha256(&xinlian_genesis::canonical::encode(entry))
}
