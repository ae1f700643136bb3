//! Derived state: what block execution computes from records and nodes keep beside
//! them, under the keys defined here. Never a source of truth (records are); always
//! re-derivable by replaying the chain. Defined in the client so that answers, and
//! later proofs of current state, can be decoded without the node.

use serde::{Deserialize, Serialize};
use xinlian_genesis::{Hash32, PublicKey};

use crate::ids::Uscc;
use crate::party::Party;
use crate::record::{CommitmentKind, ListKind, RecordId, Severity};
use crate::when::Date;

/// Key layout: a one-byte table tag, then components separated by 0x00 (no component
/// contains 0x00: ids are printable ASCII, USCCs are alphanumeric).
pub mod key {
    use super::*;

    pub const ENTITY: u8 = b'e';
    pub const KEY_BINDING: u8 = b'k';
    pub const COMMITMENT: u8 = b'c';
    pub const OUTCOME: u8 = b'o';
    pub const REPAIR: u8 = b'r';
    /// An enterprise's credit state ([`CreditState`](super::CreditState)) by USCC.
    pub const CREDIT: u8 = b'C';
    pub const LIST: u8 = b'l';
    pub const SUBJECT_RECORD: u8 = b's';
    /// The credit records of an enterprise (a subset of its subject records), in ledger order.
    pub const CREDIT_RECORD: u8 = b'Y';
    pub const BATCH: u8 = b'b';
    pub const HOLDING: u8 = b'h';
    pub const SHIPMENT: u8 = b't';
    pub const BATCH_EVENT: u8 = b'v';
    pub const DOWNSTREAM: u8 = b'd';
    pub const SEEN: u8 = b'x';
    /// Governance proposals by record id.
    pub const PROPOSAL: u8 = b'g';
    /// Rosters by the height they take effect (genesis's, at 1, is not stored).
    pub const ROSTER: u8 = b'n';
    /// The height from which the newest stored roster is in force.
    pub const ROSTER_LATEST: u8 = b'N';
    /// Passed proposals due at a height, in the order they passed.
    pub const SCHEDULED: u8 = b'a';
    /// Nodes of the batch index (`crate::smt`): `z` ‖ position bytes.
    pub const BATCH_INDEX: u8 = b'z';
    /// Nodes of the credit index (`crate::smt`): `y` ‖ position bytes.
    pub const CREDIT_INDEX: u8 = b'y';
    /// Keys a proposal on the ledger named for a member (genesis keys are genesis's):
    /// never bindable to an enterprise.
    pub const MEMBER_KEY: u8 = b'M';
    /// Records whose private data an erasure decision purged.
    pub const ERASURE: u8 = b'E';
    /// Registrations that name an operator (a natural person): the enterprise, by the
    /// registration's record id, for an erasure decision to find.
    pub const OPERATOR: u8 = b'O';
    /// Custody keys ([`CustodyKey`](super::CustodyKey)) by key.
    pub const CUSTODY_KEY: u8 = b'K';

    fn join(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut k = vec![tag];
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(0);
            }
            debug_assert!(
                !p.contains(&0) || p.len() == 32 || p.len() == 8 || p.len() == 4,
                "separator inside a text component"
            );
            k.extend_from_slice(p);
        }
        k
    }

    pub fn entity(u: &Uscc) -> Vec<u8> {
        join(ENTITY, &[u.as_str().as_bytes()])
    }
    pub fn key_binding(k: &PublicKey) -> Vec<u8> {
        join(KEY_BINDING, &[&k.0])
    }
    pub fn custody_key(k: &PublicKey) -> Vec<u8> {
        join(CUSTODY_KEY, &[&k.0])
    }
    pub fn member_key(k: &PublicKey) -> Vec<u8> {
        join(MEMBER_KEY, &[&k.0])
    }
    pub fn commitment(id: &RecordId) -> Vec<u8> {
        join(COMMITMENT, &[&id.0])
    }
    /// Outcome record id → the commitment it decided.
    pub fn outcome(id: &RecordId) -> Vec<u8> {
        join(OUTCOME, &[&id.0])
    }
    pub fn repair(application: &RecordId) -> Vec<u8> {
        join(REPAIR, &[&application.0])
    }
    pub fn erasure(record: &RecordId) -> Vec<u8> {
        join(ERASURE, &[&record.0])
    }
    pub fn operator(registration: &RecordId) -> Vec<u8> {
        join(OPERATOR, &[&registration.0])
    }
    pub fn credit(u: &Uscc) -> Vec<u8> {
        join(CREDIT, &[u.as_str().as_bytes()])
    }
    pub fn list(kind: ListKind, u: &Uscc) -> Vec<u8> {
        let tag: &[u8] = match kind {
            ListKind::Reward => b"reward",
            ListKind::SeriousDishonesty => b"serious",
        };
        join(LIST, &[tag, u.as_str().as_bytes()])
    }
    /// Records concerning an enterprise, in ledger order.
    pub fn subject_record(u: &Uscc, ledger_index: u64) -> Vec<u8> {
        join(
            SUBJECT_RECORD,
            &[u.as_str().as_bytes(), &ledger_index.to_be_bytes()],
        )
    }
    pub fn credit_record(u: &Uscc, ledger_index: u64) -> Vec<u8> {
        join(
            CREDIT_RECORD,
            &[u.as_str().as_bytes(), &ledger_index.to_be_bytes()],
        )
    }
    pub fn credit_records_prefix(u: &Uscc) -> Vec<u8> {
        let mut k = join(CREDIT_RECORD, &[u.as_str().as_bytes()]);
        k.push(0);
        k
    }
    pub fn subject_records_prefix(u: &Uscc) -> Vec<u8> {
        let mut k = join(SUBJECT_RECORD, &[u.as_str().as_bytes()]);
        k.push(0);
        k
    }
    pub fn batch(b: &str) -> Vec<u8> {
        join(BATCH, &[b.as_bytes()])
    }
    pub fn holding(b: &str, holder: &Party) -> Vec<u8> {
        join(HOLDING, &[b.as_bytes(), &holder.key_bytes()])
    }
    pub fn holdings_prefix(b: &str) -> Vec<u8> {
        let mut k = join(HOLDING, &[b.as_bytes()]);
        k.push(0);
        k
    }
    pub fn shipment(ship: &RecordId) -> Vec<u8> {
        join(SHIPMENT, &[&ship.0])
    }
    /// The `seq`-th event of a batch (0 = its commissioning or transform).
    pub fn batch_event(b: &str, seq: u32) -> Vec<u8> {
        join(BATCH_EVENT, &[b.as_bytes(), &seq.to_be_bytes()])
    }
    pub fn batch_events_prefix(b: &str) -> Vec<u8> {
        let mut k = join(BATCH_EVENT, &[b.as_bytes()]);
        k.push(0);
        k
    }
    /// An edge from an input batch to a batch made from it.
    pub fn downstream(parent: &str, child: &str) -> Vec<u8> {
        join(DOWNSTREAM, &[parent.as_bytes(), child.as_bytes()])
    }
    pub fn downstream_prefix(parent: &str) -> Vec<u8> {
        let mut k = join(DOWNSTREAM, &[parent.as_bytes()]);
        k.push(0);
        k
    }
    pub fn batch_index_node(at: &crate::smt::Position) -> Vec<u8> {
        let mut k = vec![BATCH_INDEX];
        k.extend_from_slice(&at.to_bytes());
        k
    }
    pub fn credit_index_node(at: &crate::smt::Position) -> Vec<u8> {
        let mut k = vec![CREDIT_INDEX];
        k.extend_from_slice(&at.to_bytes());
        k
    }
    pub fn proposal(id: &RecordId) -> Vec<u8> {
        join(PROPOSAL, &[&id.0])
    }
    pub fn roster(height: u64) -> Vec<u8> {
        join(ROSTER, &[&height.to_be_bytes()])
    }
    /// The height from which the newest stored roster is in force.
    pub fn roster_latest() -> Vec<u8> {
        vec![ROSTER_LATEST]
    }
    pub fn scheduled(height: u64) -> Vec<u8> {
        join(SCHEDULED, &[&height.to_be_bytes()])
    }
    /// Record ids already on the ledger (replay protection) → ledger index.
    pub fn seen(id: &RecordId) -> Vec<u8> {
        join(SEEN, &[&id.0])
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub uscc: Uscc,
    pub name: String,
    /// The key now accepted for this enterprise; none after a revocation.
    pub key: Option<PublicKey>,
    pub registered_by: String,
    pub registered_at: u64,
    pub check_override: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBinding {
    pub uscc: Uscc,
    pub bound_at: u64,
    /// The `register_entity` or `rotate_entity_key` record that bound the key: what a
    /// proof of the signer's authority cites.
    pub bound_by: RecordId,
    /// From this height on, records signed with the key are refused; earlier ones stay valid.
    pub revoked_at: Option<u64>,
}

/// A custody key ([`crate::record::BindCustodyKey`]): the domain whose custody events it
/// signs, and the binding, signed by `registrar`. Which enterprise holds it is not here:
/// it is the binding's sealed private data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyKey {
    pub domain: String,
    pub bound_at: u64,
    pub bound_by: RecordId,
    pub registrar: String,
    /// From this height on, records signed with the key are refused; earlier ones stay
    /// valid, and what it holds stays held under it.
    pub revoked_at: Option<u64>,
}

/// A key once named for a member by a proposal (the first that named it), whether or
/// not the change passed: such a key is a member's, never an enterprise's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberKey {
    pub member: String,
    pub proposal: RecordId,
    pub height: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitmentStatus {
    Pending,
    Fulfilled,
    Breached(Severity),
    NotVerifiable,
    /// A breach whose repair was approved: the breach stays in history.
    Repaired(Severity),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentState {
    pub id: RecordId,
    pub subject: Uscc,
    pub kind: CommitmentKind,
    pub accepting_agency: String,
    pub domain: String,
    pub deadline: Date,
    pub status: CommitmentStatus,
    pub outcome: Option<RecordId>,
    /// The determining date of the outcome; publication periods count from it.
    pub outcome_date: Option<Date>,
    /// An open repair application, if any.
    pub open_repair: Option<RecordId>,
    pub repaired_by: Option<RecordId>,
}

/// A record whose private data was ordered erased: every node purges it; the record
/// and its commitment stay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureState {
    /// The `erase` record that decided it.
    pub erase: RecordId,
    pub height: u64,
    pub date: Date,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairStatus {
    Pending,
    Approved,
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairState {
    pub application: RecordId,
    pub commitment: RecordId,
    pub outcome: RecordId,
    pub subject: Uscc,
    pub status: RepairStatus,
    pub decision: Option<RecordId>,
}

/// Counts of an enterprise's commitments by status, and its list memberships.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub commitments: u32,
    pub pending: u32,
    pub fulfilled: u32,
    pub not_verifiable: u32,
    pub breached_minor: u32,
    pub breached_general: u32,
    pub breached_serious: u32,
    pub repaired: u32,
    /// Breached, unrepaired notification-commitments (审批替代型): an earlier false
    /// commitment bars the notification route until repaired.
    pub breached_notification: u32,
    pub on_reward_list: bool,
    pub on_serious_dishonesty_list: bool,
    /// While listed, the day each listing lapses by itself (fixed when it was recorded):
    /// committed with the profile, so node and client agree on it.
    pub reward_list_until: Option<Date>,
    pub serious_list_until: Option<Date>,
}

impl Profile {
    fn slot(&mut self, status: CommitmentStatus) -> &mut u32 {
        match status {
            CommitmentStatus::Pending => &mut self.pending,
            CommitmentStatus::Fulfilled => &mut self.fulfilled,
            CommitmentStatus::NotVerifiable => &mut self.not_verifiable,
            CommitmentStatus::Breached(Severity::Minor) => &mut self.breached_minor,
            CommitmentStatus::Breached(Severity::General) => &mut self.breached_general,
            CommitmentStatus::Breached(Severity::Serious) => &mut self.breached_serious,
            CommitmentStatus::Repaired(_) => &mut self.repaired,
        }
    }

    /// Moves one commitment between two statuses' counts. Execution moves only
    /// commitments it counted, so counts never underflow; saturating keeps a replay of
    /// a contradictory history (which a verifier refuses anyway) from panicking.
    fn moved(&mut self, from: CommitmentStatus, to: CommitmentStatus) {
        let f = self.slot(from);
        *f = f.saturating_sub(1);
        let t = self.slot(to);
        *t = t.saturating_add(1);
    }

    /// A new commitment, pending.
    pub fn on_commitment(&mut self) {
        self.commitments = self.commitments.saturating_add(1);
        self.pending = self.pending.saturating_add(1);
    }

    /// A pending commitment of `kind` decided as `to`.
    pub fn on_outcome(&mut self, kind: CommitmentKind, to: CommitmentStatus) {
        self.moved(CommitmentStatus::Pending, to);
        if matches!(to, CommitmentStatus::Breached(_)) && kind == CommitmentKind::ApprovalSubstitute
        {
            self.breached_notification = self.breached_notification.saturating_add(1);
        }
    }

    /// A breach of severity `sev` of a commitment of `kind` repaired.
    pub fn on_repaired(&mut self, kind: CommitmentKind, sev: Severity) {
        self.moved(
            CommitmentStatus::Breached(sev),
            CommitmentStatus::Repaired(sev),
        );
        if kind == CommitmentKind::ApprovalSubstitute {
            self.breached_notification = self.breached_notification.saturating_sub(1);
        }
    }

    /// Added to a list, lapsing on `until` (`Some`), or removed from it (`None`).
    pub fn set_listed(&mut self, list: ListKind, until: Option<Date>) {
        let (on, slot) = match list {
            ListKind::Reward => (&mut self.on_reward_list, &mut self.reward_list_until),
            ListKind::SeriousDishonesty => (
                &mut self.on_serious_dishonesty_list,
                &mut self.serious_list_until,
            ),
        };
        *on = until.is_some();
        *slot = until;
    }
}

/// What the credit index commits to for one enterprise: how many credit records
/// concern it, their hash chain in ledger order, and the profile they derive. With
/// it, an answer holding the enterprise's records can be checked to hold every one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditState {
    pub uscc: Uscc,
    pub records: u32,
    /// Hash chain over (ledger index, record id) of its credit records ([`next_credit_chain`]).
    pub chain: Hash32,
    pub profile: Profile,
}

impl CreditState {
    pub fn new(uscc: Uscc) -> CreditState {
        CreditState {
            uscc,
            records: 0,
            chain: Hash32([0; 32]),
            profile: Profile::default(),
        }
    }

    /// The enterprise's key in the credit index.
    pub fn index_key(u: &Uscc) -> Hash32 {
        Self::index_key_of_raw(u.as_str().as_bytes())
    }

    pub fn index_key_of_raw(uscc: &[u8]) -> Hash32 {
        xinlian_genesis::canonical::sha256(uscc)
    }

    /// Appends one credit record to the count and chain.
    pub fn extend(&mut self, ledger_index: u64, id: &RecordId) {
        self.records = self.records.saturating_add(1);
        self.chain = next_credit_chain(&self.chain, ledger_index, id);
    }
}

/// The credit chain after `prev` is extended by the record `id` at `ledger_index`; an
/// enterprise's chain starts at all zeros.
pub fn next_credit_chain(prev: &Hash32, ledger_index: u64, id: &RecordId) -> Hash32 {
    xinlian_genesis::canonical::tagged_hash("xinlian/credit-records/v1", &(prev, ledger_index, id))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub list: ListKind,
    pub subject: Uscc,
    pub domain: String,
    pub measure: RecordId,
    pub date: Date,
    /// The day the listing lapses by itself: its date plus the period of the grading
    /// rules in force when it was recorded (a later rules change does not move it).
    pub until: Date,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchState {
    pub batch: String,
    pub domain: String,
    pub product: crate::record::Product,
    pub lot: String,
    pub uom: String,
    /// In clear, or `None` where the batch's domain hides quantities
    /// (`policy.trace`): the batch index then commits to no amount.
    pub created_amount: Option<u64>,
    /// The party that made it: an enterprise, or its custody key where the domain hides
    /// counterparties.
    pub created_by: Party,
    /// The commission or transform record that created the batch.
    pub origin: RecordId,
    /// Input batches it was made from (empty for a commissioned batch).
    pub parents: Vec<String>,
    pub recalled: Option<RecordId>,
    /// Number of events recorded for the batch (its event chain's length).
    pub events: u32,
    pub last_event: RecordId,
    /// Hash chain over the batch's event ids in order (see [`next_event_chain`]): with
    /// `events`, what the batch index commits to.
    pub event_chain: Hash32,
}

impl BatchState {
    /// The batch's key in the batch index.
    pub fn index_key(batch: &str) -> Hash32 {
        Self::index_key_of_raw(batch.as_bytes())
    }

    pub fn index_key_of_raw(batch: &[u8]) -> Hash32 {
        xinlian_genesis::canonical::sha256(batch)
    }
}

/// The event chain after `prev` is extended by `event`; a batch's chain starts at
/// all zeros.
pub fn next_event_chain(prev: &Hash32, event: &RecordId) -> Hash32 {
    xinlian_genesis::canonical::tagged_hash("xinlian/batch-events/v1", &(prev, event))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub ship: RecordId,
    pub batch: String,
    pub from: Party,
    pub to: Party,
    pub amount: u64,
    pub received: Option<RecordId>,
}
