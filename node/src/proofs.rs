//! Assembles the proofs a light client checks (see `xinlian_client::proof`) from the
//! store: inclusion paths against any finalized header, consistency between two ledger
//! sizes, and the chain of key bindings behind an enterprise signer.
//!
//! Everything read here was written by one atomic block commit, so a header and the
//! Merkle nodes below its ledger size are always present together.

use xinlian_client::merkle::{consistency_proof, inclusion_proof};
use xinlian_client::proof::{
    Checkpoint, ConsistencyProof, HexBytes, KEY_BINDINGS_MAX, LedgerEntry, RecordProof,
    ValidatorChange,
};
use xinlian_client::record::RecordId;
use xinlian_client::state::{self as st, key};

use crate::execute::Consortium;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofRequestError {
    #[error("record {0} is not final")]
    NotFinal(RecordId),
    #[error("no finalized block at height {0}")]
    NoBlock(u64),
    #[error("record {id} became final at height {final_at}, after the requested height {at}")]
    AfterCheckpoint {
        id: RecordId,
        final_at: u64,
        at: u64,
    },
    #[error(
        "tree sizes must satisfy 0 < first <= second <= {size} (the ledger size); got {first} and {second}"
    )]
    Sizes { first: u64, second: u64, size: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn damaged(what: String) -> ProofRequestError {
    ProofRequestError::Store(StoreError::Damaged(what))
}

pub fn checkpoint(store: &Store, height: u64) -> Result<Checkpoint, ProofRequestError> {
    let header = store
        .header(height)?
        .ok_or(ProofRequestError::NoBlock(height))?;
    let certificate = store
        .certificate(height)?
        .ok_or_else(|| damaged(format!("header {height} has no certificate")))?;
    Ok(Checkpoint {
        header,
        certificate,
    })
}

fn ledger_entry(store: &Store, index: u64, size: u64) -> Result<LedgerEntry, ProofRequestError> {
    let record = store
        .record_bytes_at(index)?
        .ok_or_else(|| damaged(format!("record {index} is missing")))?;
    Ok(LedgerEntry {
        index,
        record: HexBytes(record),
        inclusion: inclusion_proof(store, index, size)?,
    })
}

/// The proof of record `id` against the header at `at`, or against the block that
/// appended it when `at` is `None`.
pub fn record_proof(
    store: &Store,
    c: &Consortium,
    id: &RecordId,
    at: Option<u64>,
) -> Result<RecordProof, ProofRequestError> {
    let (final_at, index) = store.locate(id)?.ok_or(ProofRequestError::NotFinal(*id))?;
    let at = at.unwrap_or(final_at);
    if at < final_at {
        return Err(ProofRequestError::AfterCheckpoint {
            id: *id,
            final_at,
            at,
        });
    }
    let checkpoint = checkpoint(store, at)?;
    let size = checkpoint.header.ledger_size;
    let entry = ledger_entry(store, index, size)?;
    let record = store
        .record_at(index)?
        .ok_or_else(|| damaged(format!("record {index} is missing")))?;
    let mut key_bindings = Vec::new();
    let mut signer = record.envelope.signer;
    while c.member_by_signing_key(&signer).is_none() {
        if key_bindings.len() == KEY_BINDINGS_MAX {
            // Execution never lets a chain of self-rotations grow unnoticed this long
            // without a registrar; the client will say the bindings are incomplete.
            break;
        }
        let kb: st::KeyBinding = store
            .state_value(&key::key_binding(&signer))?
            .ok_or_else(|| damaged(format!("final record {id} has an unbound signer {signer}")))?;
        let (_, bi) = store
            .locate(&kb.bound_by)?
            .ok_or_else(|| damaged(format!("key binding record {} is not final", kb.bound_by)))?;
        let binding = ledger_entry(store, bi, size)?;
        signer = store
            .record_at(bi)?
            .ok_or_else(|| damaged(format!("record {bi} is missing")))?
            .envelope
            .signer;
        key_bindings.push(binding);
    }
    Ok(RecordProof {
        entry,
        checkpoint,
        key_bindings,
    })
}

pub fn consistency(
    store: &Store,
    ledger_size: u64,
    first: u64,
    second: u64,
) -> Result<ConsistencyProof, ProofRequestError> {
    if first == 0 || first > second || second > ledger_size {
        return Err(ProofRequestError::Sizes {
            first,
            second,
            size: ledger_size,
        });
    }
    Ok(ConsistencyProof {
        first,
        second,
        proof: consistency_proof(store, first, second)?,
    })
}

/// Validator-set changes in force after any height, oldest first. The set is fixed by
/// genesis until governance records changes on the ledger (issue #7): every header has
/// `next_validators_hash == validators_hash`, and `Store::open` checks the tip's
/// certificate under the genesis set, so there are none to list.
pub fn validator_changes(c: &Consortium) -> Vec<ValidatorChange> {
    debug_assert_eq!(c.validators, c.genesis.validator_set());
    Vec::new()
}
