//! What replicas send each other, and what a validator writes to its write-ahead log:
//! postcard, one canonical encoding, every size bounded, converted to and from
//! Malachite's types at this edge only.

use malachite::Input;
use malachite_types::{
    CommitCertificate, NilOrVal, PolkaCertificate, PolkaSignature, RoundCertificate,
    RoundCertificateType, RoundSignature, SignedMessage, Timeout, TimeoutKind, ValueOrigin,
    VoteType,
};
use serde::{Deserialize, Serialize};
use xinlian_client::block::{Block, Certificate, CommitSignature, Header};
use xinlian_client::crypto::Signature;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, PublicKey, canonical};

use super::context::{
    Address, BlockId, BlockProposal, BlockValue, ConsensusVote, Ctx, Height, Validators,
    proposal_signing_message, round_from_wire, round_to_wire, sign,
};

/// Most blocks in one sync answer, and most bytes of blocks (the last block may pass it).
pub const SYNC_BLOCKS_MAX: u64 = 64;
pub const SYNC_BYTES_MAX: usize = 8 << 20;
/// Most records, and bytes of records, in one relayed batch.
pub const RELAY_RECORDS_MAX: usize = 512;
pub const RELAY_BYTES_MAX: usize = 256 << 10;
/// Most records asked for in one `PartsRequest` (a block with more missing is asked
/// for in several).
pub const PARTS_ASKED_MAX: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireVote {
    pub precommit: bool,
    pub height: u64,
    pub round: Option<u32>,
    pub value: Option<Hash32>,
    pub validator: PublicKey,
    pub signature: Signature,
}

/// A proposal as it travels: the block's header and its records by reference — the
/// RFC 9162 leaf hash of each record's canonical bytes, in block order, which the
/// header's `records_root` commits to. The records themselves reach every node once,
/// by the mempool relay; a validator missing some asks for them
/// ([`NetMsg::PartsRequest`]) and checks each answer against its leaf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireProposal {
    pub height: u64,
    pub round: Option<u32>,
    pub pol_round: Option<u32>,
    pub header: Header,
    pub leaves: Vec<Hash32>,
    pub proposer: PublicKey,
    pub signature: Signature,
}

impl WireProposal {
    /// The block's id (its header's hash), which the proposer signs.
    pub fn block_id(&self) -> Hash32 {
        self.header.hash()
    }

    /// A proposal of `block`, signed by `key` (its proposer).
    pub fn of_block(
        chain: &Hash32,
        block: &Block,
        round: Option<u32>,
        pol_round: Option<u32>,
        key: &SigningKey,
    ) -> WireProposal {
        let mut p = WireProposal {
            height: block.header.height,
            round,
            pol_round,
            header: block.header.clone(),
            leaves: block
                .records
                .iter()
                .map(xinlian_client::record::SignedRecord::leaf)
                .collect(),
            proposer: public_key(key),
            signature: Signature([0; 64]),
        };
        p.sign(chain, key);
        p
    }

    /// Signs (again) as `key`, its `proposer` left as it is.
    pub fn sign(&mut self, chain: &Hash32, key: &SigningKey) {
        self.signature = sign(key, &self.signed_message(chain));
    }

    /// The bytes the proposer signs.
    pub fn signed_message(&self, chain: &Hash32) -> Vec<u8> {
        proposal_signing_message(
            chain,
            Height(self.height),
            round_from_wire(self.round),
            round_from_wire(self.pol_round),
            self.block_id(),
            self.proposer,
        )
    }
}

/// A proposal as the write-ahead log keeps it: with its whole block, so that a restart
/// needs nobody to re-execute it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedProposal {
    pub height: u64,
    pub round: Option<u32>,
    pub pol_round: Option<u32>,
    pub block: Block,
    pub proposer: PublicKey,
    pub signature: Signature,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePolka {
    pub height: u64,
    pub round: Option<u32>,
    pub block: Hash32,
    pub signatures: Vec<(PublicKey, Signature)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRoundSignature {
    pub precommit: bool,
    pub value: Option<Hash32>,
    pub validator: PublicKey,
    pub signature: Signature,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRoundCertificate {
    pub height: u64,
    pub round: Option<u32>,
    /// `true`: 2f+1 precommits; `false`: f+1 votes of a later round (skip).
    pub precommits: bool,
    pub signatures: Vec<WireRoundSignature>,
}

/// Every message between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetMsg {
    Proposal(Box<WireProposal>),
    Vote(WireVote),
    PolkaCertificate(WirePolka),
    RoundCertificate(WireRoundCertificate),
    /// Pending records' canonical bytes, relayed to every mempool in batches (one
    /// gossip message per record floods gossipsub's send queues under load, and the
    /// consensus messages queued behind them are dropped).
    Records(Vec<Vec<u8>>),
    /// A validator's ask, to one peer, for the records of proposed block `block` it
    /// lacks, by leaf hash (at most [`PARTS_ASKED_MAX`]).
    PartsRequest {
        block: Hash32,
        leaves: Vec<Hash32>,
    },
    /// The answer: the canonical bytes of those of the asked records the peer has, in
    /// the order asked (those it lacks left out).
    Parts {
        block: Hash32,
        records: Vec<Vec<u8>>,
    },
    /// A node's finalized height, announced periodically so that laggards notice.
    Status {
        height: u64,
        tip: Hash32,
    },
    SyncRequest {
        from: u64,
        max: u64,
    },
    SyncResponse {
        blocks: Vec<(Block, Certificate)>,
    },
    /// The answer of a node too busy to serve a sync request now (its reads or open
    /// requests are at their bound): not a claim about its blocks, so the asker tries
    /// another peer without holding it against this one.
    SyncBusy,
}

impl NetMsg {
    pub fn encode(&self) -> Vec<u8> {
        canonical::encode(self)
    }

    /// Decodes at most `max` bytes, canonical form only.
    pub fn decode(bytes: &[u8], max: usize) -> Result<NetMsg, canonical::CanonicalError> {
        canonical::decode(bytes, max)
    }

    /// For logs and penalties.
    /// Every value [`NetMsg::kind`] takes.
    pub const KINDS: [&'static str; 11] = [
        "proposal",
        "vote",
        "polka-certificate",
        "round-certificate",
        "records",
        "parts-request",
        "parts",
        "status",
        "sync-request",
        "sync-response",
        "sync-busy",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            NetMsg::Proposal(_) => "proposal",
            NetMsg::Vote(_) => "vote",
            NetMsg::PolkaCertificate(_) => "polka-certificate",
            NetMsg::RoundCertificate(_) => "round-certificate",
            NetMsg::Records(_) => "records",
            NetMsg::PartsRequest { .. } => "parts-request",
            NetMsg::Parts { .. } => "parts",
            NetMsg::Status { .. } => "status",
            NetMsg::SyncRequest { .. } => "sync-request",
            NetMsg::SyncResponse { .. } => "sync-response",
            NetMsg::SyncBusy => "sync-busy",
        }
    }
}

pub type SignedVote = SignedMessage<Ctx, ConsensusVote>;
pub type SignedProposal = SignedMessage<Ctx, BlockProposal>;

pub fn vote_to_wire(v: &SignedVote) -> WireVote {
    WireVote {
        precommit: v.message.kind == VoteType::Precommit,
        height: v.message.height.0,
        round: round_to_wire(v.message.round),
        value: match v.message.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(id.0),
        },
        validator: v.message.validator.0,
        signature: v.signature,
    }
}

pub fn vote_from_wire(w: &WireVote) -> SignedVote {
    SignedMessage::new(
        ConsensusVote {
            kind: if w.precommit {
                VoteType::Precommit
            } else {
                VoteType::Prevote
            },
            height: Height(w.height),
            round: round_from_wire(w.round),
            value: match w.value {
                None => NilOrVal::Nil,
                Some(h) => NilOrVal::Val(BlockId(h)),
            },
            validator: Address(w.validator),
        },
        w.signature,
    )
}

/// Our proposal as it travels, `leaves` being its block's (`Executed::leaves`).
pub fn proposal_to_wire(p: &SignedProposal, leaves: Vec<Hash32>) -> WireProposal {
    WireProposal {
        height: p.message.height.0,
        round: round_to_wire(p.message.round),
        pol_round: round_to_wire(p.message.pol_round),
        header: p.message.value.block.header.clone(),
        leaves,
        proposer: p.message.proposer.0,
        signature: p.signature,
    }
}

/// A travelling proposal with its block put together from `block`'s records (whose
/// leaves the caller matched to `w.leaves`).
pub fn proposal_from_wire(w: WireProposal, block: Block) -> SignedProposal {
    debug_assert_eq!(block.header, w.header);
    SignedMessage::new(
        BlockProposal {
            height: Height(w.height),
            round: round_from_wire(w.round),
            value: BlockValue::new(block),
            pol_round: round_from_wire(w.pol_round),
            proposer: Address(w.proposer),
        },
        w.signature,
    )
}

pub fn proposal_to_log(p: &SignedProposal) -> LoggedProposal {
    LoggedProposal {
        height: p.message.height.0,
        round: round_to_wire(p.message.round),
        pol_round: round_to_wire(p.message.pol_round),
        block: (*p.message.value.block).clone(),
        proposer: p.message.proposer.0,
        signature: p.signature,
    }
}

pub fn proposal_from_log(w: LoggedProposal) -> SignedProposal {
    SignedMessage::new(
        BlockProposal {
            height: Height(w.height),
            round: round_from_wire(w.round),
            value: BlockValue::new(w.block),
            pol_round: round_from_wire(w.pol_round),
            proposer: Address(w.proposer),
        },
        w.signature,
    )
}

pub fn polka_to_wire(c: &PolkaCertificate<Ctx>) -> WirePolka {
    WirePolka {
        height: c.height.0,
        round: round_to_wire(c.round),
        block: c.value_id.0,
        signatures: c
            .polka_signatures
            .iter()
            .map(|s| (s.address.0, s.signature))
            .collect(),
    }
}

pub fn polka_from_wire(w: &WirePolka) -> PolkaCertificate<Ctx> {
    PolkaCertificate {
        height: Height(w.height),
        round: round_from_wire(w.round),
        value_id: BlockId(w.block),
        polka_signatures: w
            .signatures
            .iter()
            .map(|(a, s)| PolkaSignature::new(Address(*a), *s))
            .collect(),
    }
}

pub fn round_cert_to_wire(c: &RoundCertificate<Ctx>) -> WireRoundCertificate {
    WireRoundCertificate {
        height: c.height.0,
        round: round_to_wire(c.round),
        precommits: c.cert_type == RoundCertificateType::Precommit,
        signatures: c
            .round_signatures
            .iter()
            .map(|s| WireRoundSignature {
                precommit: s.vote_type == VoteType::Precommit,
                value: match s.value_id {
                    NilOrVal::Nil => None,
                    NilOrVal::Val(id) => Some(id.0),
                },
                validator: s.address.0,
                signature: s.signature,
            })
            .collect(),
    }
}

pub fn round_cert_from_wire(w: &WireRoundCertificate) -> RoundCertificate<Ctx> {
    RoundCertificate {
        height: Height(w.height),
        round: round_from_wire(w.round),
        cert_type: if w.precommits {
            RoundCertificateType::Precommit
        } else {
            RoundCertificateType::Skip
        },
        round_signatures: w
            .signatures
            .iter()
            .map(|s| RoundSignature {
                vote_type: if s.precommit {
                    VoteType::Precommit
                } else {
                    VoteType::Prevote
                },
                value_id: match s.value {
                    None => NilOrVal::Nil,
                    Some(h) => NilOrVal::Val(BlockId(h)),
                },
                address: Address(s.validator),
                signature: s.signature,
            })
            .collect(),
    }
}

/// Malachite's commit certificate as ours: signatures by validator index, ascending.
/// `None` when a signer is not in the set (Malachite only decides on known validators'
/// precommits, so that would be a bug).
pub fn certificate_from_malachite(
    c: &CommitCertificate<Ctx>,
    vals: &Validators,
) -> Option<Certificate> {
    let mut signatures = Vec::with_capacity(c.commit_signatures.len());
    for s in &c.commit_signatures {
        let index = u16::try_from(vals.index_of(&s.address)?).ok()?;
        signatures.push(CommitSignature {
            validator: index,
            signature: s.signature,
        });
    }
    signatures.sort_by_key(|s| s.validator);
    signatures.dedup_by_key(|s| s.validator);
    Some(Certificate {
        height: c.height.0,
        round: c.round.as_u32()?,
        block: c.value_id.0,
        signatures,
    })
}

/// The inputs a validator logs before acting on them; replayed after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalEntry {
    Vote(WireVote),
    Proposal(LoggedProposal),
    /// A value this node proposed, or a proposal's value: (round, valid round, proposer, block).
    ProposedValue {
        round: Option<u32>,
        valid_round: Option<u32>,
        proposer: PublicKey,
        block: Block,
        valid: bool,
    },
    Timeout {
        round: Option<u32>,
        kind: u8,
    },
    Polka(WirePolka),
}

impl WalEntry {
    /// The log form of an input, or `None` for inputs Malachite does not require logged.
    pub fn from_input(input: &Input<Ctx>) -> Option<WalEntry> {
        Some(match input {
            Input::Vote(v) => WalEntry::Vote(vote_to_wire(v)),
            Input::Proposal(p) => WalEntry::Proposal(proposal_to_log(p)),
            Input::ProposedValue(v, _) => WalEntry::ProposedValue {
                round: round_to_wire(v.round),
                valid_round: round_to_wire(v.valid_round),
                proposer: v.proposer.0,
                block: (*v.value.block).clone(),
                valid: v.validity.is_valid(),
            },
            Input::TimeoutElapsed(t) => WalEntry::Timeout {
                round: round_to_wire(t.round),
                kind: match t.kind {
                    TimeoutKind::Propose => 0,
                    TimeoutKind::Prevote => 1,
                    TimeoutKind::Precommit => 2,
                    // Rebroadcast and finalization timers change no vote; not logged.
                    _ => return None,
                },
            },
            Input::PolkaCertificate(c) => WalEntry::Polka(polka_to_wire(c)),
            _ => return None,
        })
    }

    pub fn into_input(self, height: u64) -> Input<Ctx> {
        match self {
            WalEntry::Vote(v) => Input::Vote(vote_from_wire(&v)),
            WalEntry::Proposal(p) => Input::Proposal(proposal_from_log(p)),
            WalEntry::ProposedValue {
                round,
                valid_round,
                proposer,
                block,
                valid,
            } => Input::ProposedValue(
                malachite::ProposedValue {
                    height: Height(height),
                    round: round_from_wire(round),
                    valid_round: round_from_wire(valid_round),
                    proposer: Address(proposer),
                    value: BlockValue::new(block),
                    validity: malachite_types::Validity::from_bool(valid),
                },
                ValueOrigin::Consensus,
            ),
            WalEntry::Timeout { round, kind } => Input::TimeoutElapsed(Timeout::new(
                round_from_wire(round),
                match kind {
                    0 => TimeoutKind::Propose,
                    1 => TimeoutKind::Prevote,
                    _ => TimeoutKind::Precommit,
                },
            )),
            WalEntry::Polka(c) => Input::PolkaCertificate(polka_from_wire(&c)),
        }
    }
}
