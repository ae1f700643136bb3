//! Block headers and commit certificates: what a node proves finality with and what a
//! client checks from genesis alone.

use serde::{Deserialize, Serialize};
use xinlian_genesis::canonical::{self, tagged_hash};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, PublicKey, ValidatorSet};

use crate::crypto::{self, Domain, Signature};
use crate::merkle::root_of;
use crate::record::SignedRecord;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub chain: Hash32,
    pub height: u64,
    /// Hash of the previous header; for height 1, the genesis hash.
    pub parent: Hash32,
    /// Proposer's clock, ms since the Unix epoch; strictly above the parent's.
    pub time_ms: i64,
    pub proposer: PublicKey,
    /// RFC 9162 root over this block's records (leaf = canonical signed record bytes).
    pub records_root: Hash32,
    pub records_count: u32,
    /// RFC 9162 root and size of the tree of every record appended up to this block.
    pub ledger_root: Hash32,
    pub ledger_size: u64,
    /// Hash chain over each block's derived-state writes (see docs/records.md).
    pub state_hash: Hash32,
    /// Root of the batch index (`smt`): every batch's id → the hash of its state,
    /// which names its event count and event chain. Proves an answer left no event out.
    pub trace_root: Hash32,
    /// Root of the credit index (`smt`): every registered enterprise's USCC → the hash
    /// of its [`CreditState`](crate::state::CreditState), which names the count and
    /// chain of its credit records and their profile. Proves an enterprise's credit
    /// record complete, or that a USCC is not registered.
    pub credit_root: Hash32,
    /// The validator set whose precommits finalise this block.
    pub validators_hash: Hash32,
    /// The roster (members, keys, roles, validator set, policy) in force at the next
    /// height: how a governance change is announced to light clients ahead of time.
    pub next_roster_hash: Hash32,
}

impl Header {
    pub fn hash(&self) -> Hash32 {
        tagged_hash("xinlian/header/v1", self)
    }
}

pub fn records_root(records: &[SignedRecord]) -> Hash32 {
    let leaves: Vec<Hash32> = records.iter().map(SignedRecord::leaf).collect();
    root_of(&leaves)
}

/// What a validator signs to precommit to a block at a round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precommit {
    pub chain: Hash32,
    pub height: u64,
    pub round: u32,
    pub block: Hash32,
    pub validator: PublicKey,
}

impl Precommit {
    pub fn sign(&self, key: &SigningKey) -> Signature {
        assert_eq!(
            public_key(key),
            self.validator,
            "precommit signed by its validator"
        );
        crypto::sign(key, Domain::Precommit, &canonical::encode(self))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSignature {
    /// Index of the validator in the set in force.
    pub validator: u16,
    pub signature: Signature,
}

/// Precommits of more than two thirds of the voting power for one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub height: u64,
    pub round: u32,
    pub block: Hash32,
    /// Strictly increasing validator indices.
    pub signatures: Vec<CommitSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    #[error("certificate is for height {got}, header is at {expected}")]
    Height { expected: u64, got: u64 },
    #[error("certificate is for block {got}, header hashes to {expected}")]
    Block { expected: Hash32, got: Hash32 },
    #[error("header names validator set {got}, the set in force is {expected}")]
    ValidatorSet { expected: Hash32, got: Hash32 },
    #[error("validator index {0} is not in the set, or indices are not strictly increasing")]
    Index(u16),
    #[error("precommit signature of validator {index} ({key}) does not verify")]
    Signature { index: u16, key: PublicKey },
    #[error("signed voting power {signed} of {total} is not more than two thirds")]
    NoQuorum { signed: u64, total: u64 },
}

/// Checks that `cert` finalises `header` under `validators`, the set in force at the
/// header's height.
pub fn verify_certificate(
    header: &Header,
    cert: &Certificate,
    validators: &ValidatorSet,
) -> Result<(), CertificateError> {
    if cert.height != header.height {
        return Err(CertificateError::Height {
            expected: header.height,
            got: cert.height,
        });
    }
    let hash = header.hash();
    if cert.block != hash {
        return Err(CertificateError::Block {
            expected: hash,
            got: cert.block,
        });
    }
    if header.validators_hash != validators.hash() {
        return Err(CertificateError::ValidatorSet {
            expected: validators.hash(),
            got: header.validators_hash,
        });
    }
    verify_precommits(
        &header.chain,
        cert.height,
        cert.round,
        &cert.block,
        &cert.signatures,
        validators,
    )
}

/// Checks that `signatures` are precommits for `block` at `height` and `round` by
/// validators of `validators` holding more than two thirds of its power. This is the
/// part of a certificate check that needs only the block's hash.
pub fn verify_precommits(
    chain: &Hash32,
    height: u64,
    round: u32,
    block: &Hash32,
    signatures: &[CommitSignature],
    validators: &ValidatorSet,
) -> Result<(), CertificateError> {
    let mut signed: u64 = 0;
    let mut last: Option<u16> = None;
    let mut batch = Vec::with_capacity(signatures.len());
    for cs in signatures {
        let v = validators.validators().get(usize::from(cs.validator));
        if v.is_none() || last.is_some_and(|l| l >= cs.validator) {
            return Err(CertificateError::Index(cs.validator));
        }
        let v = v.expect("checked above");
        last = Some(cs.validator);
        signed += v.power;
        let vote = Precommit {
            chain: *chain,
            height,
            round,
            block: *block,
            validator: v.key,
        };
        batch.push((
            &v.key,
            Domain::Precommit.message(&canonical::encode(&vote)),
            &cs.signature,
        ));
    }
    if !validators.is_quorum(signed) {
        return Err(CertificateError::NoQuorum {
            signed,
            total: validators.total_power(),
        });
    }
    if let Err(bad) = crypto::verify_batch(batch) {
        let cs = &signatures[bad[0]];
        let key = validators.validators()[usize::from(cs.validator)].key;
        return Err(CertificateError::Signature {
            index: cs.validator,
            key,
        });
    }
    Ok(())
}

/// The fewest of `cert`'s signatures that still hold more than two thirds of the power
/// of `validators` (the largest first), in index order: a certificate that says no
/// more than a commit needs. A store that writes a peer's certificate into the place of
/// its own damaged one fits it there this way. Call it on a certificate that
/// [`verify_certificate`] accepted; signatures naming no validator are dropped.
pub fn trimmed_to_quorum(cert: &Certificate, validators: &ValidatorSet) -> Certificate {
    let power = |cs: &CommitSignature| {
        validators
            .validators()
            .get(usize::from(cs.validator))
            .map_or(0, |v| v.power)
    };
    let mut by_power: Vec<&CommitSignature> = cert.signatures.iter().collect();
    by_power.sort_by_key(|cs| (std::cmp::Reverse(power(cs)), cs.validator));
    let mut signed: u64 = 0;
    let mut kept = Vec::new();
    for cs in by_power {
        if validators.is_quorum(signed) {
            break;
        }
        signed = signed.saturating_add(power(cs));
        kept.push(cs.clone());
    }
    kept.sort_by_key(|cs| cs.validator);
    Certificate {
        signatures: kept,
        ..cert.clone()
    }
}

/// A block as proposed and as served: header and records in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: Header,
    pub records: Vec<SignedRecord>,
}
