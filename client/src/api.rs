//! The node's HTTP API (`/v1/...`) as both sides see it: its route paths
//! ([`paths`]), and the JSON shapes the node writes and clients read.

use serde::{Deserialize, Serialize};
use xinlian_genesis::Hash32;

use crate::block::{Certificate, Header};
use crate::party::Party;
use crate::proof::{RecordProof, RosterChange};
use crate::record::{Kind, RecordId, SignedRecord};
use crate::state::{BatchState, CommitmentState, Entity, ListEntry, Profile, RepairState};

/// Every route, as documented in the node's `openapi.json` (a test keeps the two
/// equal): the node routes these templates, and clients fill them with [`paths::fill`].
pub mod paths {
    pub const STATUS: &str = "/v1/status";
    /// The genesis file this node runs, as TOML: what a page or a client that does not
    /// hold it yet can read, and must compare with the consortium's published chain id.
    pub const GENESIS: &str = "/v1/genesis";
    pub const RECORDS: &str = "/v1/records";
    pub const RECORD: &str = "/v1/records/{id}";
    pub const RECORD_PROOF: &str = "/v1/records/{id}/proof";
    pub const RECORDS_CHECK: &str = "/v1/records/check";
    pub const RECORDS_BULK: &str = "/v1/records/bulk";
    pub const CONSISTENCY: &str = "/v1/ledger/consistency";
    pub const ROSTERS: &str = "/v1/rosters";
    pub const ROSTER: &str = "/v1/roster";
    pub const PROPOSALS: &str = "/v1/governance/proposals";
    pub const PROPOSAL: &str = "/v1/governance/proposals/{id}";
    pub const BLOCK: &str = "/v1/blocks/{height}";
    pub const ENTERPRISE: &str = "/v1/enterprises/{uscc}";
    pub const ENTERPRISE_CREDIT: &str = "/v1/enterprises/{uscc}/credit";
    pub const GRADING: &str = "/v1/grading";
    pub const BATCH: &str = "/v1/batches/{batch}";
    pub const BATCH_PROVENANCE: &str = "/v1/batches/{batch}/provenance";
    pub const BATCH_EPCIS: &str = "/v1/batches/{batch}/epcis";
    pub const PROVENANCE: &str = "/v1/provenance";
    pub const OPENAPI: &str = "/v1/openapi.json";
    /// Private data in (`POST`) and out (`GET`): docs/privacy.md § Private data.
    pub const PRIVATE: &str = "/v1/private";
    pub const RECORD_PRIVATE: &str = "/v1/records/{id}/private";
    /// Server-Sent Events of finalized records (`crate::events`).
    pub const EVENTS: &str = "/v1/events";
    /// For operators, outside the versioned API (not in [`ALL`], nor in the OpenAPI
    /// document): the Prometheus text exposition, liveness and readiness.
    pub const METRICS: &str = "/metrics";
    pub const HEALTH: &str = "/health";
    pub const READY: &str = "/ready";
    pub const ALL: [&str; 24] = [
        STATUS,
        GENESIS,
        RECORDS,
        RECORD,
        RECORD_PROOF,
        RECORDS_CHECK,
        RECORDS_BULK,
        CONSISTENCY,
        ROSTERS,
        ROSTER,
        PROPOSALS,
        PROPOSAL,
        BLOCK,
        ENTERPRISE,
        ENTERPRISE_CREDIT,
        GRADING,
        BATCH,
        BATCH_PROVENANCE,
        BATCH_EPCIS,
        PROVENANCE,
        OPENAPI,
        PRIVATE,
        RECORD_PRIVATE,
        EVENTS,
    ];

    /// `template` with each `{name}` placeholder replaced by its value in `values`,
    /// percent-encoded as one path segment ([`path_segment`]).
    ///
    /// # Panics
    /// If a placeholder has no value, or a `{` is not closed: templates are the
    /// constants above, so either is a mistake in the calling code.
    pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(template.len() + 64);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .unwrap_or_else(|| panic!("unclosed placeholder in {template}"))
                + open;
            let name = &rest[open + 1..close];
            let value = values
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no value for {{{name}}} in {template}"))
                .1;
            out.push_str(&path_segment(value));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Percent-encodes a path segment (batch ids may hold `/`, `?`, `#`, `%`).
    pub fn path_segment(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn fill_encodes_each_placeholder_as_one_segment() {
            assert_eq!(fill(STATUS, &[]), "/v1/status");
            assert_eq!(fill(BLOCK, &[("height", "7")]), "/v1/blocks/7");
            assert_eq!(
                fill(BATCH_PROVENANCE, &[("batch", "LOT/1?a#b%c d")]),
                "/v1/batches/LOT%2F1%3Fa%23b%25c%20d/provenance"
            );
            assert_eq!(
                fill(RECORD_PROOF, &[("id", "ab01")]),
                "/v1/records/ab01/proof"
            );
        }

        #[test]
        #[should_panic(expected = "no value for {id}")]
        fn fill_refuses_a_missing_value() {
            fill(RECORD, &[("height", "1")]);
        }
    }
}

/// Every error answer: a stable machine code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// What `/health` and `/ready` answer when the node is alive, or ready.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    /// `alive` or `ready`.
    pub status: String,
    /// Height of the last block stored here.
    pub height: u64,
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
    /// While this node is behind: the height it is catching up to, as more peers claim
    /// than the consortium may have faulty validators (unverified: a report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncing_to: Option<u64>,
    /// The consensus round this node is in at the next height (validators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    /// The finalized heights other members' nodes last announced to this one: reports,
    /// never verified (a page shows them as such).
    #[serde(default)]
    pub peers: Vec<PeerHeight>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHeight {
    pub member: String,
    pub height: u64,
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
    /// Canonical bytes, hex, as this reader was given the record: with hidden amounts
    /// opened, the Merkle leaf and the signature cover the ledger form instead
    /// (`SignedRecord::leaf`, docs/privacy.md § Trace events).
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
    /// Counts over every commitment: only to readers who may read every credit record
    /// of the enterprise (the enterprise itself, members they are all disclosed to).
    pub profile: Option<Profile>,
    pub commitments: Vec<CommitmentState>,
    pub repairs: Vec<RepairState>,
    pub lists: Vec<ListEntry>,
    /// Records concerning the enterprise, in ledger order: one page (`?after&limit`);
    /// `commitments` and `repairs` are those among them.
    pub records: Vec<RecordId>,
    /// The cursor of the next page (a ledger index), when there is one.
    pub next_after: Option<u64>,
    /// The grade as of the newest header, derived from `credit` under the rules in
    /// force there (the node verified `credit` as a client would, and graded it).
    pub grade: crate::credit::GradeReport,
    /// The complete, provable credit record (on the first page only: later pages are
    /// pages of `records`): check it with `LightClient::verify_credit`.
    pub credit: Option<crate::credit::CreditProof>,
}

/// What `GET /v1/grading` answers: the grading rules in force at the newest height.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GradingView {
    /// The height from which these rules (the roster that holds them) are in force.
    pub since: u64,
    pub rules: xinlian_genesis::grading::Grading,
    /// Each rule in words, in the order a grade applies them.
    pub explanation: Vec<String>,
}

/// A holder of a batch and how much it holds. The amount is `None` where the batch's
/// domain hides quantities and the reader is neither a member nor the holder
/// (docs/privacy.md § Trace events).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holding {
    pub holder: Party,
    pub amount: Option<u64>,
}

/// A shipment of a batch not yet received. The amount is `None` where the batch's
/// domain hides quantities and the reader is neither a member, the sender nor the
/// addressee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transit {
    pub ship: RecordId,
    pub batch: String,
    pub from: Party,
    pub to: Party,
    pub amount: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchView {
    pub batch: BatchState,
    pub holders: Vec<Holding>,
    pub in_transit: Vec<Transit>,
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

/// One record's verdict in a set: from `records/check`, what its submission would get;
/// from `records/bulk`, what it got.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: RecordId,
    /// The refusal's code (as a submission of it alone gets it), or none: it passes
    /// (`check`), it was admitted (`bulk`).
    pub code: Option<String>,
    pub message: Option<String>,
}

/// What `POST /v1/records/bulk` answers: each record's verdict, in the order sent.
/// Admitted records (no `code`) are pending, as after `POST /v1/records`; the others
/// changed nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmittedRecords {
    pub results: Vec<CheckResult>,
}

/// One line of a node's access log (docs/privacy.md § Access log): an answer given to a
/// reader other than the public. Each line's `hash` covers its fields and the line
/// before (`prev`; zeros for the first), so a line changed, dropped or inserted breaks
/// every hash after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub seq: u64,
    pub time_ms: i64,
    /// `member:ID` or `enterprise:USCC` ([`crate::disclosure::Reader::label`]).
    pub reader: String,
    pub method: String,
    /// Path and query asked for (at most [`ACCESS_TARGET_BYTES_MAX`] bytes, cut at a
    /// character boundary).
    pub target: String,
    pub status: u16,
    pub prev: Hash32,
    pub hash: Hash32,
}

pub const ACCESS_TARGET_BYTES_MAX: usize = 1024;

impl AccessEntry {
    /// The hash this entry must carry: over `prev` and every other field.
    pub fn expected_hash(&self) -> Hash32 {
        xinlian_genesis::canonical::tagged_hash(
            "xinlian/access-log/v1",
            &(
                &self.prev,
                self.seq,
                self.time_ms,
                &self.reader,
                &self.method,
                &self.target,
                self.status,
            ),
        )
    }
}

/// Checks a log's lines follow each other: consecutive `seq`, each `prev` the hash
/// before (the first one's taken as given: a whole log's starts at seq 1 with zeros),
/// each hash right. The index of the first bad line, and why.
pub fn check_access_chain(entries: &[AccessEntry]) -> Result<(), (usize, String)> {
    for (i, e) in entries.iter().enumerate() {
        if e.hash != e.expected_hash() {
            return Err((i, format!("seq {}: its hash is wrong", e.seq)));
        }
        if let Some(before) = i.checked_sub(1).map(|j| &entries[j])
            && (e.prev != before.hash || e.seq != before.seq.saturating_add(1))
        {
            return Err((
                i,
                format!("seq {} does not follow seq {}", e.seq, before.seq),
            ));
        }
    }
    Ok(())
}

/// What `POST /v1/private` answers: the private data was checked against its record
/// and kept by this node; it is being sent to the nodes of the other members entitled to
/// it, by member id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateStored {
    pub record: RecordId,
    pub sending_to: Vec<String>,
}
