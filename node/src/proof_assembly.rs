//! Assembles the proofs a light client checks (see `xinlian_client::proof`) from the
//! store: inclusion paths against any finalized header, consistency between two ledger
//! sizes, and the chain of key bindings behind an enterprise signer.
//!
//! Everything read here was written by one atomic block commit, so a header and the
//! Merkle nodes below its ledger size are always present together.

use std::collections::{BTreeSet, VecDeque};
use xinlian_client::credit::{CREDIT_RECORDS_MAX, CreditProof};
use xinlian_client::governance::RosterEntry;
use xinlian_client::ids::Uscc;
use xinlian_client::merkle::{BuildError, consistency_proof, inclusion_proof};
use xinlian_client::proof::{
    Checkpoint, ConsistencyProof, HexBytes, KEY_BINDINGS_MAX, LedgerEntry, ROSTER_CHANGES_MAX,
    RecordProof, RosterChange,
};
use xinlian_client::record::RecordId;
use xinlian_client::state::{self as st, key};

use xinlian_client::provenance::{
    ANSWER_RECORDS_MAX, BatchEvidence, Direction, ProvenanceProof, SignerBindings,
};
use xinlian_client::smt;
use xinlian_genesis::{PublicKey, canonical};

use xinlian_core::index::{self, Index};
use xinlian_core::overlay::StateRead;

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
    #[error("ledger index {index} is not below the checkpoint's ledger size {size}")]
    BeyondCheckpoint { index: u64, size: u64 },
    #[error("batch {0} is not on the ledger")]
    NoBatch(String),
    #[error(
        "batch {batch} has {events} events, more than one answer carries ({ANSWER_RECORDS_MAX})"
    )]
    TooManyEvents { batch: String, events: usize },
    #[error(
        "enterprise {0} has more credit records than one answer carries ({CREDIT_RECORDS_MAX})"
    )]
    TooManyCreditRecords(Uscc),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn damaged(what: String) -> ProofRequestError {
    ProofRequestError::Store(StoreError::Damaged(what))
}

impl From<BuildError<StoreError>> for ProofRequestError {
    fn from(e: BuildError<StoreError>) -> Self {
        match e {
            BuildError::IndexBeyondSize { index, size } => {
                ProofRequestError::BeyondCheckpoint { index, size }
            }
            BuildError::Sizes { first, second } => ProofRequestError::Sizes {
                first,
                second,
                size: second,
            },
            BuildError::Subtrees(e) => ProofRequestError::Store(e),
            other => damaged(other.to_string()),
        }
    }
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

pub(crate) fn ledger_entry(
    store: &Store,
    index: u64,
    size: u64,
) -> Result<LedgerEntry, ProofRequestError> {
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
    let key_bindings = key_bindings(store, &record.envelope.signer, size)?;
    Ok(RecordProof {
        entry,
        checkpoint,
        key_bindings,
    })
}

/// The records that bound `signer`, newest first, back to a registrar's (see
/// `RecordProof::key_bindings`), proven against a ledger of `size`. Empty for a member:
/// a key that ever was, or was named to be, a member's is never bound (execution keeps
/// the two apart), whichever roster it was in, so the walk needs no roster. The walk
/// also stops at a binding that does not come before the one it would authorise (or
/// before `size`): it cannot have authorised it, and a chain that once let a former
/// member key be bound must not make the records that key signed unprovable.
pub fn key_bindings(
    store: &Store,
    signer: &PublicKey,
    size: u64,
) -> Result<Vec<LedgerEntry>, ProofRequestError> {
    // A custody key: its one binding, by a registrar.
    if let Some(ck) = store.state_value::<st::CustodyKey>(&key::custody_key(signer))? {
        let (_, bi) = store
            .locate(&ck.bound_by)?
            .ok_or_else(|| damaged(format!("custody key binding {} is not final", ck.bound_by)))?;
        return Ok(match bi < size {
            true => vec![ledger_entry(store, bi, size)?],
            false => Vec::new(),
        });
    }
    let mut key_bindings = Vec::new();
    let mut signer = *signer;
    let mut before = size;
    while let Some(kb) = store.state_value::<st::KeyBinding>(&key::key_binding(&signer))? {
        if key_bindings.len() == KEY_BINDINGS_MAX {
            // Execution never lets a chain of self-rotations grow unnoticed this long
            // without a registrar; the client will say the bindings are incomplete.
            break;
        }
        let (_, bi) = store
            .locate(&kb.bound_by)?
            .ok_or_else(|| damaged(format!("key binding record {} is not final", kb.bound_by)))?;
        if bi >= before {
            break;
        }
        before = bi;
        let binding = ledger_entry(store, bi, size)?;
        signer = store
            .record_at(bi)?
            .ok_or_else(|| damaged(format!("record {bi} is missing")))?
            .envelope
            .signer;
        key_bindings.push(binding);
    }
    Ok(key_bindings)
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

/// Roster changes in force after height `after`, oldest first, each with the
/// certified header that announced it. Read under one tip: a roster stored by the
/// newest block is announced by that block's header, which is then committed too.
pub fn roster_changes(store: &Store, after: u64) -> Result<Vec<RosterChange>, ProofRequestError> {
    store.consistent(|store| {
        let entries: Vec<(Vec<u8>, RosterEntry)> = store.state_scan_after(
            &[key::ROSTER],
            Some(&after.to_be_bytes()),
            ROSTER_CHANGES_MAX,
        )?;
        entries
            .into_iter()
            .map(|(_, e)| {
                Ok(RosterChange {
                    height: e.height,
                    announced_by: checkpoint(store, e.height - 1)?,
                    roster: e.roster,
                })
            })
            .collect()
    })
}

/// An enterprise's complete credit record against the newest header: its credit
/// state and the state's place in the credit index (or the index's proof that the
/// USCC is absent), and every credit record concerning it with its inclusion path.
pub fn credit(store: &Store, uscc: &Uscc) -> Result<CreditProof, ProofRequestError> {
    let (checkpoint, state, index_proof, indices) = store.consistent(|store| {
        let tip = store.tip()?;
        if tip.height == 0 {
            return Err(ProofRequestError::NoBlock(1));
        }
        let checkpoint = checkpoint(store, tip.height)?;
        let index = index::Committed(store, Index::Credit);
        let index_proof = smt::prove(&index, &st::CreditState::index_key(uscc))
            .map_err(|e| damaged(e.to_string()))?;
        let state =
            StateRead::get(store, &key::credit(uscc)).map_err(|e| damaged(e.to_string()))?;
        let mut indices = Vec::new();
        if state.is_some() {
            let scan = store.state_scan::<RecordId>(
                &key::credit_records_prefix(uscc),
                CREDIT_RECORDS_MAX + 1,
            )?;
            if scan.len() > CREDIT_RECORDS_MAX {
                return Err(ProofRequestError::TooManyCreditRecords(uscc.clone()));
            }
            for (k, _) in scan {
                let index = u64::from_be_bytes(
                    k.as_slice()
                        .try_into()
                        .map_err(|_| damaged(format!("subject index key of {uscc}")))?,
                );
                indices.push(index);
            }
        }
        Ok((checkpoint, state, index_proof, indices))
    })?;
    // As for provenance: what follows reads only what never changes once final.
    let size = checkpoint.header.ledger_size;
    let mut records = Vec::with_capacity(indices.len());
    for i in indices {
        records.push(ledger_entry(store, i, size)?);
    }
    Ok(CreditProof {
        checkpoint,
        uscc: uscc.clone(),
        state: state.map(HexBytes),
        index_proof,
        records,
    })
}

/// What a provenance request may ask for.
#[derive(Clone, Debug)]
pub struct ProvenanceRequest {
    pub roots: Vec<String>,
    pub direction: Direction,
    /// Batches beyond this many transform steps from a root are listed missing.
    pub depth: u32,
    /// At most this many batches (and `ANSWER_RECORDS_MAX` records) in the answer.
    pub batches: usize,
}

pub use xinlian_client::provenance::PROVENANCE_ROOTS_MAX;

/// Walks from the roots through parents and/or children, breadth first, and proves
/// every batch it includes against the newest header: its state by the batch index,
/// its events by inclusion. The walk reads one block's state (`Store::consistent`).
pub fn provenance(
    store: &Store,
    req: &ProvenanceRequest,
) -> Result<ProvenanceProof, ProofRequestError> {
    let (checkpoint, batches, missing, records) = store.consistent(|store| {
        let tip = store.tip()?;
        if tip.height == 0 {
            return Err(ProofRequestError::NoBlock(1));
        }
        let checkpoint = checkpoint(store, tip.height)?;
        let index = index::Committed(store, Index::Batch);
        let mut queue: VecDeque<(String, u32)> = VecDeque::new();
        let mut seen = BTreeSet::new();
        for r in &req.roots {
            if store
                .state_value::<st::BatchState>(&key::batch(r))?
                .is_none()
            {
                return Err(ProofRequestError::NoBatch(r.clone()));
            }
            if seen.insert(r.clone()) {
                queue.push_back((r.clone(), 0));
            }
        }
        let mut batches = Vec::new();
        let mut missing = Vec::new();
        let mut records: BTreeSet<u64> = BTreeSet::new();
        while let Some((name, depth)) = queue.pop_front() {
            if batches.len() >= req.batches || depth > req.depth {
                missing.push(name);
                continue;
            }
            let state_bytes = StateRead::get(store, &key::batch(&name))
                .map_err(|e| damaged(e.to_string()))?
                .ok_or_else(|| damaged(format!("batch {name} is reachable but absent")))?;
            let state: st::BatchState = canonical::decode(&state_bytes, usize::MAX)
                .map_err(|e| damaged(format!("batch {name}: {e}")))?;
            let ids = store.state_scan::<RecordId>(&key::batch_events_prefix(&name), usize::MAX)?;
            let mut events = Vec::with_capacity(ids.len());
            for (_, id) in ids {
                let (_, i) = store
                    .locate(&id)?
                    .ok_or_else(|| damaged(format!("event {id} of batch {name} is not final")))?;
                events.push(i);
            }
            let new = events.iter().filter(|i| !records.contains(i)).count();
            if records.len() + new > ANSWER_RECORDS_MAX {
                if batches.is_empty() {
                    return Err(ProofRequestError::TooManyEvents {
                        batch: name,
                        events: events.len(),
                    });
                }
                missing.push(name);
                continue;
            }
            records.extend(events.iter().copied());
            let mut next = Vec::new();
            if req.direction.up() {
                next.extend(state.parents.iter().cloned());
            }
            if req.direction.down() {
                for (child, ()) in
                    store.state_scan::<()>(&key::downstream_prefix(&name), usize::MAX)?
                {
                    next.push(
                        String::from_utf8(child)
                            .map_err(|_| damaged(format!("a child of batch {name} is not text")))?,
                    );
                }
            }
            for n in next {
                if seen.insert(n.clone()) {
                    queue.push_back((n, depth + 1));
                }
            }
            batches.push(BatchEvidence {
                index_proof: smt::prove(&index, &st::BatchState::index_key(&name))
                    .map_err(|e| damaged(e.to_string()))?,
                batch: name,
                state: HexBytes(state_bytes),
                events,
            });
        }
        Ok((checkpoint, batches, missing, records))
    })?;
    // What follows reads only what never changes once final (record bytes, Merkle
    // nodes below the checkpoint's size, the records that bound a key), so it needs
    // no lock: commits wait only for the walk above.
    let size = checkpoint.header.ledger_size;
    let mut entries = Vec::with_capacity(records.len());
    let mut keys = BTreeSet::new();
    for i in records {
        let e = ledger_entry(store, i, size)?;
        let signer = xinlian_client::record::SignedRecord::decode(&e.record.0, usize::MAX)
            .map_err(|err| damaged(format!("record {i}: {err}")))?
            .envelope
            .signer;
        let bound = (store.state_value::<st::KeyBinding>(&key::key_binding(&signer))?).is_some()
            || (store.state_value::<st::CustodyKey>(&key::custody_key(&signer))?).is_some();
        if bound {
            keys.insert(signer);
        }
        entries.push(e);
    }
    let mut signers = Vec::with_capacity(keys.len());
    for key in keys {
        signers.push(SignerBindings {
            bindings: key_bindings(store, &key, size)?,
            key,
        });
    }
    Ok(ProvenanceProof {
        checkpoint,
        roots: req.roots.clone(),
        direction: req.direction,
        batches,
        missing,
        records: entries,
        signers,
    })
}
