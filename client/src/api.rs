//! The JSON shapes of the node's HTTP API (`/v1/...`), shared by the node that writes
//! them and the clients that read them.

use serde::{Deserialize, Serialize};
use xinlian_genesis::Hash32;

use crate::block::{Certificate, Header};
use crate::ids::Uscc;
use crate::proof::{RecordProof, RosterChange};
use crate::record::{Kind, RecordId, SignedRecord};
use crate::state::{
    BatchState, CommitmentState, Entity, ListEntry, Profile, RepairState, Shipment,
};

/// Every error answer: a stable machine code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub chain_id: String,
    pub genesis_hash: Hash32,
    /// Height of the last finalized block (0 before the first).
    pub height: u64,
    pub tip_hash: Hash32,
    pub tip_time_ms: i64,
    pub ledger_size: u64,
    pub ledger_root: Hash32,
    pub state_hash: Hash32,
    /// Member id of the consortium member running this node.
    pub node: String,
    pub validator: bool,
    pub mempool_records: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Submitted {
    pub id: RecordId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Accepted into the mempool, not yet in a finalized block.
    Pending,
    Final,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordView {
    pub id: RecordId,
    pub kind: Kind,
    pub status: RecordStatus,
    pub height: Option<u64>,
    /// Position in the ledger-wide Merkle tree.
    pub ledger_index: Option<u64>,
    pub record: SignedRecord,
    /// Canonical bytes, hex: what the Merkle leaf and the signature cover.
    pub canonical_hex: String,
    /// For a final record: its proof against the block that appended it (the same as
    /// `GET /v1/records/{id}/proof`), so a receipt can be checked from genesis at once.
    pub proof: Option<RecordProof>,
}

impl RecordView {
    /// `location` is `(height, ledger_index)` for a final record, `None` while pending.
    pub fn new(record: SignedRecord, location: Option<(u64, u64)>) -> RecordView {
        RecordView {
            id: record.id(),
            kind: record.kind(),
            status: if location.is_some() {
                RecordStatus::Final
            } else {
                RecordStatus::Pending
            },
            height: location.map(|l| l.0),
            ledger_index: location.map(|l| l.1),
            canonical_hex: hex::encode(record.canonical_bytes()),
            record,
            proof: None,
        }
    }

    pub fn with_proof(mut self, proof: RecordProof) -> Self {
        debug_assert_eq!(
            self.status,
            RecordStatus::Final,
            "only final records have proofs"
        );
        self.proof = Some(proof);
        self
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockView {
    pub hash: Hash32,
    pub header: Header,
    pub certificate: Certificate,
    pub records: Vec<RecordId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnterpriseView {
    pub entity: Entity,
    pub profile: Profile,
    pub commitments: Vec<CommitmentState>,
    pub repairs: Vec<RepairState>,
    pub lists: Vec<ListEntry>,
    /// Records concerning the enterprise, in ledger order: one page (`?after&limit`);
    /// `commitments` and `repairs` are those among them.
    pub records: Vec<RecordId>,
    /// The cursor of the next page (a ledger index), when there is one.
    pub next_after: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holding {
    pub holder: Uscc,
    pub amount: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchView {
    pub batch: BatchState,
    pub holders: Vec<Holding>,
    pub in_transit: Vec<Shipment>,
    /// The batch's events in order (its event chain): one page (`?after&limit`).
    pub events: Vec<RecordId>,
    /// Batches made from this one.
    pub children: Vec<String>,
    /// The cursor of the next page of events (an event number), when there is one.
    pub next_after: Option<u64>,
}

/// Roster changes after a height, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RosterChanges {
    pub changes: Vec<RosterChange>,
}

/// A governance proposal with its tally and status as of `height`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProposalView {
    pub status: crate::governance::Status,
    pub summary: String,
    pub approve_power: u64,
    pub reject_power: u64,
    pub total_power: u64,
    pub proposal: crate::governance::ProposalState,
}

/// What `GET /v1/governance/proposals` answers: newest first, one page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proposals {
    pub height: u64,
    pub proposals: Vec<ProposalView>,
}

/// The roster in force at the next height, and the height it took effect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RosterView {
    pub since: u64,
    pub hash: Hash32,
    pub roster: xinlian_genesis::Roster,
}

/// What `POST /v1/records/check` answers: each record's verdict, in order, had they
/// been executed one after another on the node's current state (nothing is changed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckedRecords {
    pub height: u64,
    pub results: Vec<CheckResult>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: RecordId,
    /// The rejection's code (as the submission would get it), or none if it would pass.
    pub code: Option<String>,
    pub message: Option<String>,
}
