//! The simulator's byzantine actors, as types. A [`Forger`] is a validator that signs
//! whatever it likes with its own key: messages for no round, for rounds and heights
//! far off, with a proof-of-lock round that is not before its round, many distinct
//! valid blocks for one slot, blocks naming another proposer, votes and certificates
//! for values nobody proposed, replays of old messages, oversize relays and
//! unsolicited sync answers. A [`Liar`] is a member's node that votes on nothing and
//! lies instead: it announces heights it does not have and answers sync requests
//! slowly, emptily, with nothing at all, or with blocks whose certificates are spoiled.
//! The equivocator (two proposals, conflicting votes) stays in `simulation.rs`.

use std::collections::VecDeque;

use xinlian_core::consensus::context::{sign, vote_message};
use xinlian_core::consensus::wire::{
    self, NetMsg, RELAY_RECORDS_MAX, WirePolka, WireProposal, WireRoundCertificate,
    WireRoundSignature, WireVote,
};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, PublicKey};

use super::rng::Rng;

/// How a byzantine validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Tells half the network one thing and the other half another.
    Equivocator,
    /// Sends arbitrary well-signed messages besides its honest ones.
    Forger,
}

/// How a lying member answers the sync requests its lies attract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiarAnswers {
    Never,
    Empty,
    /// The truth, but after this long (ms).
    Slowly(i64),
    /// Real blocks whose certificates are spoiled.
    Spoiled,
    /// "Too busy", every time, after this long (ms): at once, as an honest server at
    /// its bound says it, or late, to hold the asker without a strike.
    Busy(i64),
}

/// A lying member's node.
pub struct Liar {
    pub answers: LiarAnswers,
}

impl Liar {
    /// The height it claims, given the highest honest one.
    pub fn claim(&self, rng: &mut Rng, top: u64) -> u64 {
        match rng.below(3) {
            0 => u64::MAX,
            1 => top + 1,
            _ => top + 1 + rng.below(1_000),
        }
    }
}

/// What a forger remembers of the network: recent messages to replay, and the latest
/// proposal it saw, whose block it re-signs in variants.
pub struct Forger {
    key: SigningKey,
    me: PublicKey,
    chain: Hash32,
    seen: VecDeque<NetMsg>,
    latest: Option<WireProposal>,
}

const REMEMBERED: usize = 64;

impl Forger {
    pub fn new(key: SigningKey, chain: Hash32) -> Self {
        Forger {
            me: public_key(&key),
            key,
            chain,
            seen: VecDeque::new(),
            latest: None,
        }
    }

    /// A message on the network, as the forger overhears it.
    pub fn overhear(&mut self, msg: &NetMsg) {
        if let NetMsg::Proposal(p) = msg
            && self.latest.as_ref().is_none_or(|l| p.height >= l.height)
        {
            self.latest = Some((**p).clone());
        }
        if matches!(
            msg,
            NetMsg::Proposal(_) | NetMsg::Vote(_) | NetMsg::PolkaCertificate(_)
        ) {
            if self.seen.len() == REMEMBERED {
                self.seen.pop_front();
            }
            self.seen.push_back(msg.clone());
        }
    }

    /// A few forged messages for validators at height `next` (the one being decided),
    /// of a consortium of `validators` in proposer order where the forger is `index`.
    pub fn mischief(
        &mut self,
        rng: &mut Rng,
        next: u64,
        index: usize,
        validators: usize,
    ) -> Vec<NetMsg> {
        let n = validators.max(1) as u64;
        // A round of `next` in which the forger is the proposer (see `select_proposer`).
        let own_round = |k: u64| -> u32 {
            let r = (index as u64 + n - next % n) % n + k * n;
            r.min(u64::from(u32::MAX)) as u32
        };
        match rng.below(12) {
            0 => self
                .proposal_variant(rng, None, None, 0)
                .into_iter()
                .collect(),
            1 => {
                let r = own_round(rng.below(3));
                self.proposal_variant(rng, Some(r), Some(r), 0)
                    .into_iter()
                    .collect()
            }
            // A burst of distinct valid blocks for its own slot (and beyond the
            // look-ahead): the cache-eviction attack.
            2 => {
                let r = own_round(0);
                let burst = 8 + rng.below(72) as i64;
                (0..burst)
                    .filter_map(|k| self.proposal_variant(rng, Some(r), None, k + 1))
                    .collect()
            }
            3 => {
                let r = own_round(1 + rng.below(40));
                self.proposal_variant(rng, Some(r), None, 1)
                    .into_iter()
                    .collect()
            }
            // A block naming another validator as its proposer.
            4 => {
                let r = own_round(0);
                let mut out = self.proposal_variant(rng, Some(r), None, 0);
                if let Some(NetMsg::Proposal(p)) = &mut out {
                    p.header.proposer = PublicKey([rng.below(256) as u8; 32]);
                    self.resign(p);
                }
                out.into_iter().collect()
            }
            5 => vec![self.vote(rng, next, None)],
            6 => {
                let height = match rng.below(3) {
                    0 => u64::MAX,
                    1 => next + 1 + rng.below(1_000),
                    _ => next,
                };
                let round = match rng.below(3) {
                    0 => u32::MAX,
                    1 => rng.below(1_000) as u32,
                    _ => 0,
                };
                vec![self.vote(rng, height, Some(round))]
            }
            7 => vec![self.polka(rng, next)],
            8 => vec![self.round_certificate(rng, next)],
            9 => rng
                .pick(self.seen.make_contiguous())
                .cloned()
                .into_iter()
                .collect(),
            10 => vec![NetMsg::Records(
                (0..=RELAY_RECORDS_MAX).map(|i| vec![i as u8; 3]).collect(),
            )],
            _ => vec![
                NetMsg::Status {
                    height: u64::MAX,
                    tip: Hash32([0xee; 32]),
                },
                NetMsg::SyncResponse { blocks: Vec::new() },
            ],
        }
    }

    /// The latest proposal's block, re-dated by `shift` ms and re-signed by the forger
    /// for `round`, or as is for a nil round.
    fn proposal_variant(
        &self,
        rng: &mut Rng,
        round: Option<u32>,
        pol_round: Option<u32>,
        shift: i64,
    ) -> Option<NetMsg> {
        let mut p = self.latest.clone()?;
        p.round = round;
        p.pol_round = pol_round;
        p.header.time_ms += shift;
        if rng.chance(0.8) {
            p.header.proposer = self.me;
        }
        p.proposer = self.me;
        self.resign(&mut p);
        Some(NetMsg::Proposal(Box::new(p)))
    }

    fn resign(&self, p: &mut WireProposal) {
        p.sign(&self.chain, &self.key);
    }

    fn vote(&self, rng: &mut Rng, height: u64, round: Option<u32>) -> NetMsg {
        let value = if rng.chance(0.5) {
            None
        } else {
            Some(Hash32([rng.below(256) as u8; 32]))
        };
        self.signed_vote(height, round, value, rng.chance(0.5))
    }

    /// A prevote of ours for a value nobody proposed, dressed up as a polka.
    fn polka(&self, rng: &mut Rng, height: u64) -> NetMsg {
        let round = Some(rng.below(3) as u32);
        let block = Hash32([rng.below(256) as u8; 32]);
        let NetMsg::Vote(v) = self.signed_vote(height, round, Some(block), false) else {
            unreachable!("signed_vote makes votes")
        };
        let copies = 1 + rng.below(3) as usize;
        NetMsg::PolkaCertificate(WirePolka {
            height,
            round,
            block,
            signatures: vec![(self.me, v.signature); copies],
        })
    }

    fn round_certificate(&self, rng: &mut Rng, height: u64) -> NetMsg {
        let round = Some(1 + rng.below(20) as u32);
        let precommits = rng.chance(0.5);
        let value = Some(Hash32([rng.below(256) as u8; 32]));
        let NetMsg::Vote(v) = self.signed_vote(height, round, value, precommits) else {
            unreachable!("signed_vote makes votes")
        };
        NetMsg::RoundCertificate(WireRoundCertificate {
            height,
            round,
            precommits,
            signatures: vec![WireRoundSignature {
                precommit: precommits,
                value,
                validator: self.me,
                signature: v.signature,
            }],
        })
    }

    fn signed_vote(
        &self,
        height: u64,
        round: Option<u32>,
        value: Option<Hash32>,
        precommit: bool,
    ) -> NetMsg {
        let mut v = WireVote {
            precommit,
            height,
            round,
            value,
            validator: self.me,
            signature: xinlian_client::crypto::Signature([0; 64]),
        };
        let sv = wire::vote_from_wire(&v);
        v.signature = sign(&self.key, &vote_message(&self.chain, &sv.message));
        NetMsg::Vote(v)
    }
}
