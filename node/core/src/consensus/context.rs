//! Our types as Malachite's `Context`: heights, validator addresses (node keys), the
//! validator set from genesis, blocks as consensus values, proposals, votes, and the
//! ed25519 signing scheme with xinlian's domain-separated messages.
//!
//! A precommit for a block is signed exactly as `xinlian_client::block::Precommit`
//! (domain `xinlian/precommit/v1`), so the precommits Malachite gathers into its
//! commit certificate are the signatures of our `Certificate`, which any client checks
//! from genesis. Every other consensus message is signed under `xinlian/consensus/v1`.

use std::fmt;
use std::sync::Arc;

use malachite_types::{self as mt, NilOrVal, Round, SignedExtension, VoteType, VotingPower};
use serde::{Deserialize, Serialize};
use xinlian_client::block::{Block, Precommit};
use xinlian_client::crypto::{self, Domain, Signature};
use xinlian_genesis::keys::SigningKey;
use xinlian_genesis::{Hash32, PublicKey, ValidatorSet, canonical};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0 + n)
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its node key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address(pub PublicKey);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Short form for logs; the full key is in the genesis.
        write!(f, "{}", &self.0.to_string()[..8])
    }
}

impl mt::Address for Address {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusValidator {
    pub address: Address,
    pub power: VotingPower,
}

impl mt::Validator<Ctx> for ConsensusValidator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.address.0
    }

    fn voting_power(&self) -> VotingPower {
        self.power
    }
}

/// The set in force, in genesis order (which is also the index order of certificates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    pub set: Arc<ValidatorSet>,
    list: Vec<ConsensusValidator>,
}

impl Validators {
    pub fn new(set: ValidatorSet) -> Self {
        let list = set
            .validators()
            .iter()
            .map(|v| ConsensusValidator {
                address: Address(v.key),
                power: v.power,
            })
            .collect();
        Validators {
            set: Arc::new(set),
            list,
        }
    }

    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.list.iter().position(|v| &v.address == address)
    }

    /// The proposer of `round` at `height` (see `Ctx::select_proposer`). Total: a nil
    /// round — which no honest proposal carries, and which the replica refuses before
    /// Malachite sees it — is treated as round 0 rather than panicking, so that no
    /// message can make this function abort a validator.
    pub fn proposer(&self, height: Height, round: Round) -> &ConsensusValidator {
        let r = u64::from(round.as_u32().unwrap_or(0));
        // A set always holds at least one validator with power (genesis validation and
        // governance both refuse an empty set); `max(1)` keeps the arithmetic total.
        let total = self.set.total_power().max(1);
        let mut slot = height.0.wrapping_add(r) % total;
        for v in &self.list {
            if slot < v.power {
                return v;
            }
            slot -= v.power;
        }
        &self.list[0]
    }
}

impl mt::ValidatorSet<Ctx> for Validators {
    fn count(&self) -> usize {
        self.list.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.set.total_power()
    }

    fn get_by_address(&self, address: &Address) -> Option<&ConsensusValidator> {
        self.list.iter().find(|v| &v.address == address)
    }

    fn get_by_index(&self, index: usize) -> Option<&ConsensusValidator> {
        self.list.get(index)
    }
}

/// A proposed block. Its id is the header hash; ordering (which Malachite requires of
/// values) is by id.
#[derive(Clone, Debug)]
pub struct BlockValue {
    pub block: Arc<Block>,
    pub id: Hash32,
}

impl BlockValue {
    pub fn new(block: Block) -> Self {
        let id = block.header.hash();
        BlockValue {
            block: Arc::new(block),
            id,
        }
    }
}

impl PartialEq for BlockValue {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for BlockValue {}
impl PartialOrd for BlockValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for BlockValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

/// A block hash as Malachite's value id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub Hash32);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.0.to_string()[..8])
    }
}

impl mt::Value for BlockValue {
    type Id = BlockId;
    fn id(&self) -> BlockId {
        BlockId(self.id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockProposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockValue,
    pub pol_round: Round,
    pub proposer: Address,
}

impl mt::Proposal<Ctx> for BlockProposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockValue {
        &self.value
    }
    fn take_value(self) -> BlockValue {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusVote {
    pub kind: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<BlockId>,
    pub validator: Address,
}

impl ConsensusVote {
    pub fn new(
        kind: VoteType,
        height: Height,
        round: Round,
        value: NilOrVal<BlockId>,
        validator: Address,
    ) -> ConsensusVote {
        ConsensusVote {
            kind,
            height,
            round,
            value,
            validator,
        }
    }
}

impl mt::Vote<Ctx> for ConsensusVote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.kind
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    // Vote extensions are disabled: a vote never carries one.
    fn extension(&self) -> Option<&SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: SignedExtension<Ctx>) -> Self {
        self
    }
}

/// Proposals travel whole (`ValuePayload::ProposalOnly`); there are no parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoParts {}

impl mt::ProposalPart<Ctx> for NoParts {
    fn is_first(&self) -> bool {
        match *self {}
    }
    fn is_last(&self) -> bool {
        match *self {}
    }
}

/// Vote extensions are not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoExtension;

impl mt::Extension for NoExtension {
    fn size_bytes(&self) -> usize {
        0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl mt::SigningScheme for Ed25519 {
    type DecodingError = String;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = SigningKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, String> {
        bytes
            .try_into()
            .map(Signature)
            .map_err(|_| format!("a signature is 64 bytes, not {}", bytes.len()))
    }
    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, String> {
        bytes
            .try_into()
            .map(PublicKey)
            .map_err(|_| format!("a public key is 32 bytes, not {}", bytes.len()))
    }
    fn encode_public_key(key: &PublicKey) -> Vec<u8> {
        key.0.to_vec()
    }
}

/// Timeouts are scheduled by the replica, which knows their durations
/// (`replica::Timeouts`); Malachite only names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoTimeouts;

impl mt::Timeouts<Ctx> for NoTimeouts {
    fn duration_for(&self, _timeout: mt::Timeout) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// The consensus context of one chain.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub chain: Hash32,
}

impl mt::Context for Ctx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = NoParts;
    type Proposal = BlockProposal;
    type Validator = ConsensusValidator;
    type ValidatorSet = Validators;
    type Timeouts = NoTimeouts;
    type Value = BlockValue;
    type Vote = ConsensusVote;
    type Extension = NoExtension;
    type SigningScheme = Ed25519;

    /// Weighted round robin: proposer turns rotate through the set in genesis order,
    /// each validator taking as many consecutive turns as it has voting power.
    fn select_proposer<'a>(
        &self,
        vs: &'a Validators,
        height: Height,
        round: Round,
    ) -> &'a ConsensusValidator {
        vs.proposer(height, round)
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockValue,
        pol_round: Round,
        address: Address,
    ) -> BlockProposal {
        BlockProposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockId>,
        address: Address,
    ) -> ConsensusVote {
        ConsensusVote::new(VoteType::Prevote, height, round, value, address)
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockId>,
        address: Address,
    ) -> ConsensusVote {
        ConsensusVote::new(VoteType::Precommit, height, round, value, address)
    }
}

/// Rounds on the wire and in signed messages: `None` is Malachite's nil round.
pub fn round_to_wire(r: Round) -> Option<u32> {
    r.as_u32()
}

pub fn round_from_wire(r: Option<u32>) -> Round {
    r.map_or(Round::Nil, Round::new)
}

/// What a validator signs for a vote other than a precommit for a block.
#[derive(Serialize)]
struct SignedVoteBody {
    chain: Hash32,
    /// 0 prevote, 1 precommit.
    kind: u8,
    height: u64,
    round: Option<u32>,
    value: Option<Hash32>,
    validator: PublicKey,
}

/// What a proposer signs for a proposal: the block by its hash.
#[derive(Serialize)]
struct SignedProposalBody {
    chain: Hash32,
    kind: u8,
    height: u64,
    round: Option<u32>,
    pol_round: Option<u32>,
    block: Hash32,
    proposer: PublicKey,
}

/// The exact bytes a vote's signature covers (domain tag included).
pub fn vote_message(chain: &Hash32, v: &ConsensusVote) -> Vec<u8> {
    match (v.kind, &v.value, v.round.as_u32()) {
        (VoteType::Precommit, NilOrVal::Val(id), Some(round)) => {
            Domain::Precommit.message(&canonical::encode(&Precommit {
                chain: *chain,
                height: v.height.0,
                round,
                block: id.0,
                validator: v.validator.0,
            }))
        }
        _ => Domain::Consensus.message(&canonical::encode(&SignedVoteBody {
            chain: *chain,
            kind: match v.kind {
                VoteType::Prevote => 0,
                VoteType::Precommit => 1,
            },
            height: v.height.0,
            round: v.round.as_u32(),
            value: match &v.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(id) => Some(id.0),
            },
            validator: v.validator.0,
        })),
    }
}

pub fn proposal_message(chain: &Hash32, p: &BlockProposal) -> Vec<u8> {
    proposal_signing_message(
        chain,
        p.height,
        p.round,
        p.pol_round,
        p.value.id,
        p.proposer.0,
    )
}

/// What a proposer signs: the block by its id, with the height and rounds.
pub fn proposal_signing_message(
    chain: &Hash32,
    height: Height,
    round: Round,
    pol_round: Round,
    block: Hash32,
    proposer: PublicKey,
) -> Vec<u8> {
    Domain::Consensus.message(&canonical::encode(&SignedProposalBody {
        chain: *chain,
        kind: 2,
        height: height.0,
        round: round.as_u32(),
        pol_round: pol_round.as_u32(),
        block,
        proposer,
    }))
}

pub fn sign(key: &SigningKey, message: &[u8]) -> Signature {
    crypto::sign_raw(key, message)
}

pub fn verify(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    crypto::verify_raw(key, message, signature).is_ok()
}
