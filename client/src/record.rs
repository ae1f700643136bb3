//! Signed records: the envelope every statement travels in, and the body of each
//! record kind. The canonical encoding (postcard, shortest form only) of an envelope in
//! its ledger form — every opened amount replaced by its commitment
//! ([`crate::hidden`]) — is what the signer signs, and its SHA-256 is the record id.
//!
//! Wire stability: the order of enum variants and struct fields *is* the encoding.
//! New kinds are appended at the end of [`Body`]; nothing is reordered or removed.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use xinlian_genesis::canonical::{self, CanonicalError};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, Member, Policy, PublicKey, Role, fixed_bytes};

use crate::crypto::{self, Domain, Signature, SignatureError};
use crate::hidden::Amount;
use crate::ids::Uscc;
use crate::party::Party;
use crate::when::{Date, EventTime};

fixed_bytes!(
    /// SHA-256 of a record's canonical envelope bytes.
    RecordId,
    32
);

/// What the signer states, for which chain, with a nonce that makes two otherwise equal
/// statements distinct. Replays are detected by id: an id is accepted once per chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The genesis hash of the chain this statement is for.
    pub chain: Hash32,
    pub signer: PublicKey,
    pub nonce: u64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    pub envelope: Envelope,
    pub signature: Signature,
}

/// A record kind's name that names no kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl std::fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        write!(f, "unknown kind '{}'; one of: {}", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownKind {}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("record is not canonical: {0}")]
    Canonical(#[from] CanonicalError),
}

impl Envelope {
    /// The envelope as the ledger holds it: each opened amount replaced by its
    /// commitment. Borrowed when nothing is opened.
    pub fn ledger_form(&self) -> Cow<'_, Envelope> {
        if !self
            .body
            .amounts()
            .iter()
            .any(|a| matches!(a, Amount::Opened { .. }))
        {
            return Cow::Borrowed(self);
        }
        let mut e = self.clone();
        for a in e.body.amounts_mut() {
            *a = a.sealed();
        }
        Cow::Owned(e)
    }

    /// The canonical bytes of the ledger form: what the signer signs.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical::encode(&*self.ledger_form())
    }

    pub fn id(&self) -> RecordId {
        RecordId(canonical::sha256(&self.canonical_bytes()).0)
    }

    pub fn sign(self, key: &SigningKey) -> SignedRecord {
        assert_eq!(
            public_key(key),
            self.signer,
            "envelope signer must be the signing key"
        );
        let signature = crypto::sign(key, Domain::Record, &self.canonical_bytes());
        SignedRecord {
            envelope: self,
            signature,
        }
    }
}

impl SignedRecord {
    pub fn id(&self) -> RecordId {
        self.envelope.id()
    }

    /// The canonical bytes of the whole record, openings included: what members'
    /// nodes store and send each other.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical::encode(self)
    }

    /// The record's Merkle leaf hash (RFC 9162): over its ledger form's bytes.
    pub fn leaf(&self) -> Hash32 {
        crate::merkle::leaf_hash(&canonical::encode(&*self.ledger_form()))
    }

    /// The record as the ledger holds it and the public reads it: openings stripped.
    /// Its id, signature and Merkle leaf are the full record's.
    pub fn ledger_form(&self) -> Cow<'_, SignedRecord> {
        match self.envelope.ledger_form() {
            Cow::Borrowed(_) => Cow::Borrowed(self),
            Cow::Owned(envelope) => Cow::Owned(SignedRecord {
                envelope,
                signature: self.signature,
            }),
        }
    }

    /// Decodes at most `max` bytes, accepting only the canonical encoding.
    pub fn decode(bytes: &[u8], max: usize) -> Result<SignedRecord, DecodeError> {
        Ok(canonical::decode(bytes, max)?)
    }

    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        crypto::verify(
            &self.envelope.signer,
            Domain::Record,
            &self.envelope.canonical_bytes(),
            &self.signature,
        )
    }

    pub fn kind(&self) -> Kind {
        self.envelope.body.kind()
    }
}

/// A signed record together with its canonical bytes and id, computed once. Every hot
/// path (admission, block building and execution, storage) works on this, so a record
/// is encoded and hashed once however many checks it passes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRecord {
    record: SignedRecord,
    bytes: Vec<u8>,
    /// The ledger form's bytes, when they differ from `bytes` (amounts opened).
    ledger: Option<Vec<u8>>,
    id: RecordId,
}

impl EncodedRecord {
    pub fn new(record: SignedRecord) -> Self {
        let bytes = canonical::encode(&record);
        Self::with_bytes(record, bytes)
    }

    /// Decodes at most `max` bytes, accepting only the canonical encoding, and keeps
    /// the bytes (being canonical, they are the encoding).
    pub fn decode(bytes: &[u8], max: usize) -> Result<Self, DecodeError> {
        let record: SignedRecord = canonical::decode(bytes, max)?;
        Ok(Self::with_bytes(record, bytes.to_vec()))
    }

    fn with_bytes(record: SignedRecord, bytes: Vec<u8>) -> Self {
        let ledger = match record.ledger_form() {
            Cow::Borrowed(_) => None,
            Cow::Owned(r) => Some(canonical::encode(&r)),
        };
        // The signature is a fixed 64-byte tuple encoded last: the envelope's canonical
        // bytes are the prefix before it.
        let signed = ledger.as_deref().unwrap_or(&bytes);
        let id = RecordId(canonical::sha256(&signed[..signed.len() - Signature::LEN]).0);
        debug_assert_eq!(
            id,
            record.id(),
            "envelope bytes are the prefix of the record bytes"
        );
        EncodedRecord {
            record,
            bytes,
            ledger,
            id,
        }
    }

    pub fn record(&self) -> &SignedRecord {
        &self.record
    }

    pub fn into_record(self) -> SignedRecord {
        self.record
    }

    pub fn id(&self) -> RecordId {
        self.id
    }

    pub fn kind(&self) -> Kind {
        self.record.kind()
    }

    /// The canonical signed-record bytes, openings included: what members' nodes store
    /// and send each other.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The canonical bytes of the ledger form (openings stripped): what is hashed as a
    /// Merkle leaf and what the public reads. The same as [`Self::bytes`] unless an
    /// amount is opened.
    pub fn ledger_bytes(&self) -> &[u8] {
        self.ledger.as_deref().unwrap_or(&self.bytes)
    }

    /// Whether the record carries openings the public may not read.
    pub fn has_openings(&self) -> bool {
        self.ledger.is_some()
    }

    /// The record's Merkle leaf hash (RFC 9162) in the ledger.
    pub fn leaf(&self) -> Hash32 {
        crate::merkle::leaf_hash(self.ledger_bytes())
    }

    /// The ledger form as a record of its own: what a reader not entitled to the
    /// openings is given.
    pub fn ledger_form(&self) -> Cow<'_, EncodedRecord> {
        match &self.ledger {
            None => Cow::Borrowed(self),
            Some(bytes) => Cow::Owned(EncodedRecord {
                record: self.record.ledger_form().into_owned(),
                bytes: bytes.clone(),
                ledger: None,
                id: self.id,
            }),
        }
    }

    /// The canonical envelope bytes of the ledger form: what the signer signed.
    pub fn envelope_bytes(&self) -> &[u8] {
        let signed = self.ledger_bytes();
        &signed[..signed.len() - Signature::LEN]
    }

    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        crypto::verify(
            &self.record.envelope.signer,
            Domain::Record,
            self.envelope_bytes(),
            &self.record.signature,
        )
    }
}

macro_rules! bodies {
    ($($(#[$m:meta])* $variant:ident($ty:ident) = $name:literal,)*) => {
        /// The statement a record makes. See `docs/records.md` for who may sign each kind
        /// and what it changes.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Body { $($(#[$m])* $variant($ty),)* }

        /// The kind of a record, without its content.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind { $($variant,)* }

        impl Body {
            pub fn kind(&self) -> Kind {
                match self { $(Body::$variant(_) => Kind::$variant,)* }
            }
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];
            pub fn name(self) -> &'static str {
                match self { $(Kind::$variant => $name,)* }
            }
            pub fn from_name(s: &str) -> Option<Kind> {
                match s { $($name => Some(Kind::$variant),)* _ => None }
            }

            /// As [`Kind::from_name`], with an error that lists the kinds there are.
            pub fn parse(s: &str) -> Result<Kind, UnknownKind> {
                Kind::from_name(s).ok_or_else(|| UnknownKind(s.to_string()))
            }
        }

        $(impl From<$ty> for Body {
            fn from(b: $ty) -> Body { Body::$variant(b) }
        })*
    };
}

bodies! {
    /// Registrar binds an enterprise's USCC to its first key.
    RegisterEntity(RegisterEntity) = "register_entity",
    /// Registrar or the enterprise replaces its key; the old key stops being accepted.
    RotateEntityKey(RotateEntityKey) = "rotate_entity_key",
    /// Registrar or the enterprise revokes its key (lost or compromised).
    RevokeEntityKey(RevokeEntityKey) = "revoke_entity_key",
    /// An enterprise's credit commitment (信用承诺).
    Commitment(Commitment) = "commitment",
    /// The accepting agency's verification of a commitment (履约核查).
    Outcome(Outcome) = "outcome",
    /// A credit authority puts a subject on, or takes it off, a list.
    ListMeasure(ListMeasure) = "list_measure",
    /// An enterprise applies for credit repair of a breach (信用修复申请).
    RepairApplication(RepairApplication) = "repair_application",
    /// The determining agency approves or rejects a repair application.
    RepairDecision(RepairDecision) = "repair_decision",
    /// A producer creates a batch (EPCIS bizStep `commissioning`).
    Commission(Commission) = "commission",
    /// The holder sends part or all of a batch to another enterprise (`shipping`).
    Ship(Ship) = "ship",
    /// The receiver acknowledges a shipment; custody passes only now (`receiving`).
    Receive(Receive) = "receive",
    /// Input batches become output batches (processing, packing).
    Transform(Transform) = "transform",
    /// An authorised inspector records a test result (`inspecting`).
    Inspect(Inspect) = "inspect",
    /// A trace authority or the producer recalls a batch (disposition `recalled`).
    Recall(Recall) = "recall",
    /// The holder sells or dispenses part of a batch, ending its chain there.
    Sell(Sell) = "sell",
    /// A member proposes a change to the roster or policy (docs/governance.md).
    Propose(Proposal) = "propose",
    /// A voting member approves or rejects an open proposal.
    Vote(Vote) = "vote",
    /// The agency responsible for a record decides its private data be erased (PIPL
    /// Art. 47): every node purges it; the record and its commitment stay.
    Erase(Erase) = "erase",
    /// A registrar binds an enterprise it registered to a custody key for a trace
    /// domain that hides counterparties; the enterprise is sealed (docs/privacy.md).
    BindCustodyKey(BindCustodyKey) = "bind_custody_key",
    /// A registrar revokes a custody key (stolen or lost): from then on nothing it
    /// signs is accepted; what it held stays held under it.
    RevokeCustodyKey(RevokeCustodyKey) = "revoke_custody_key",
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeCustodyKey {
    pub key: PublicKey,
    pub reason: String,
}

/// The key an enterprise signs a trace domain's custody events with, and is named by in
/// them, where the domain's policy hides counterparties (`policy.trace`): a pseudonym
/// that is the same in every event of the domain. Signed by the registrar that
/// registered the enterprise; which enterprise it is stays off the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindCustodyKey {
    pub domain: String,
    pub key: PublicKey,
    /// The enterprise's USCC, sealed ([`crate::private::seal`]): on the ledger its salted
    /// commitment; the text is private data for the members (`in_clear` otherwise).
    pub enterprise: Content,
    /// The key holder's proof that it holds `key` as a custody key for `domain`: its
    /// signature over (chain, `key`, the domain) under [`Domain::KeyPossession`]
    /// ([`crypto::KeyHolder::Custody`]).
    pub possession: Signature,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erase {
    /// A commitment or repair application with sealed text.
    pub record: RecordId,
    /// The deciding document's number.
    pub document: String,
    pub reason: String,
    pub date: Date,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterEntity {
    pub uscc: Uscc,
    pub name: String,
    /// For an enterprise run by a natural person (an individual business, 个体工商户):
    /// the operator's name and identity number. Personal data, so never on the ledger
    /// in clear (`in_clear`): [`crate::private::seal`] replaces the text by its
    /// commitment and it travels as private data, erasable (docs/privacy.md).
    #[serde(default)]
    pub operator: Option<Content>,
    pub key: PublicKey,
    /// Set only for a genuine code that fails the GB 32100 check (early pilot regions):
    /// the registrar's recorded reason for accepting it anyway.
    pub check_override: Option<String>,
    /// The enterprise's proof that it holds `key`: its signature over (chain, `key`,
    /// the enterprise's `uscc`) under [`Domain::KeyPossession`]
    /// ([`crypto::prove_possession`]).
    pub possession: Signature,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateEntityKey {
    pub uscc: Uscc,
    pub new_key: PublicKey,
    /// The proof that the enterprise holds `new_key`, as for [`RegisterEntity`].
    pub possession: Signature,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeEntityKey {
    pub uscc: Uscc,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitmentKind {
    /// 审批替代型: the notification-commitment that stands in for an approval.
    ApprovalSubstitute,
    /// 自主公示型.
    VoluntaryPublic,
    /// 行业自律型.
    IndustrySelfDiscipline,
    /// 信用修复型: made as part of a repair application.
    CreditRepair,
    /// Commitments on investment projects (企业投资项目承诺制).
    InvestmentProject,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// Free text: only before submission. The ledger refuses it in clear (`in_clear`);
    /// [`crate::private::seal`] replaces it with [`Content::Sealed`] and keeps the text
    /// as private data.
    Text(String),
    /// SHA-256 of a document kept in the agency's or enterprise's own system.
    Document(Hash32),
    /// A salted commitment to text kept off the ledger, in the private-data stores of
    /// the members entitled to it ([`crate::private`], docs/privacy.md § Private data).
    Sealed(Hash32),
}

/// Who may read a record once graded disclosure is enforced by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disclosure {
    Public,
    Consortium,
    Agencies(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub subject: Uscc,
    pub kind: CommitmentKind,
    /// The matter committed to, e.g. the licence applied for.
    pub matter: String,
    pub legal_basis: String,
    pub template_version: String,
    /// Member id of the agency that accepts the commitment and will verify it.
    pub accepting_agency: String,
    /// The credit domain (e.g. `market`, `investment`) the agency acts in.
    pub domain: String,
    pub content: Content,
    pub date: Date,
    pub deadline: Date,
    pub disclosure: Disclosure,
    pub publication_consent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    General,
    Serious,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Fulfilled,
    Breached(Severity),
    NotVerifiable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub commitment: RecordId,
    pub verdict: Verdict,
    /// How it was verified (on-site inspection, document review…).
    pub method: String,
    pub evidence: Option<Hash32>,
    /// The determining document's number, e.g. 沪市监罚〔2026〕12号.
    pub document: String,
    /// The determining date; publication periods count from it.
    pub date: Date,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// 守信激励: the list of subjects rewarded for keeping faith.
    Reward,
    /// 严重失信主体名单.
    SeriousDishonesty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListAction {
    Add,
    Remove,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMeasure {
    pub subject: Uscc,
    pub list: ListKind,
    pub action: ListAction,
    pub domain: String,
    /// Records that justify the measure (outcomes, repair decisions).
    pub basis: Vec<RecordId>,
    pub reason: String,
    pub date: Date,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairApplication {
    /// The breach outcome to be repaired.
    pub outcome: RecordId,
    /// The new repair commitment (信用修复承诺).
    pub pledge: Content,
    pub evidence: Vec<Hash32>,
    pub date: Date,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairDecision {
    pub application: RecordId,
    pub approved: bool,
    pub reason: String,
    pub date: Date,
}

/// An amount in a UNECE Rec 20 unit (`KGM`, `H87` piece, `BX` box…). Integers only:
/// pick a unit small enough (`GRM` rather than 2.5 `KGM`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    /// In clear, or hidden where the batch's domain hides quantities
    /// (`policy.trace`, docs/privacy.md § Trace events).
    pub amount: Amount,
    pub uom: String,
}

impl Quantity {
    pub fn clear(amount: u64, uom: impl Into<String>) -> Quantity {
        Quantity {
            amount: Amount::Clear(amount),
            uom: uom.into(),
        }
    }
}

impl Body {
    /// Whether an amount is here only as its commitment: the ledger form of a record
    /// whose domain hides quantities. No node executes one (validators must see the
    /// amount), so a peer that sends one where records are executed — a block's parts,
    /// a synced or repair copy, a relay — sends what it should not.
    pub fn has_sealed_amount(&self) -> bool {
        self.amounts()
            .iter()
            .any(|a| matches!(a, Amount::Sealed(_)))
    }

    /// Every quantity the record states, each with the batch it is of, in order.
    pub fn quantities(&self) -> Vec<(&str, &Quantity)> {
        match self {
            Body::Commission(b) => vec![(&b.batch, &b.quantity)],
            Body::Ship(b) => vec![(&b.batch, &b.quantity)],
            Body::Sell(b) => vec![(&b.batch, &b.quantity)],
            Body::Transform(t) => (t.inputs.iter())
                .map(|i| (i.batch.as_str(), &i.quantity))
                .chain(t.outputs.iter().map(|o| (o.batch.as_str(), &o.quantity)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The batches the record makes, each with its trace domain: a commission's, or a
    /// transform's outputs.
    pub fn new_batches(&self) -> Vec<(&str, &str)> {
        match self {
            Body::Commission(c) => vec![(&c.batch, &c.domain)],
            Body::Transform(t) => (t.outputs.iter())
                .map(|o| (o.batch.as_str(), o.domain.as_str()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Every amount the record states, in order.
    pub fn amounts(&self) -> Vec<&Amount> {
        self.quantities()
            .into_iter()
            .map(|(_, q)| &q.amount)
            .collect()
    }

    pub fn amounts_mut(&mut self) -> Vec<&mut Amount> {
        match self {
            Body::Commission(b) => vec![&mut b.quantity.amount],
            Body::Ship(b) => vec![&mut b.quantity.amount],
            Body::Sell(b) => vec![&mut b.quantity.amount],
            Body::Transform(t) => t
                .inputs
                .iter_mut()
                .map(|i| &mut i.quantity.amount)
                .chain(t.outputs.iter_mut().map(|o| &mut o.quantity.amount))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub name: String,
    pub gtin: Option<String>,
    pub drug_code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commission {
    pub batch: String,
    /// The trace domain (`food`, `drug`, …) whose authorities may inspect and recall it.
    pub domain: String,
    pub product: Product,
    pub lot: String,
    pub quantity: Quantity,
    /// Location id (GLN or URN) of the origin.
    pub origin: String,
    pub time: EventTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ship {
    pub batch: String,
    pub quantity: Quantity,
    /// The addressee: an enterprise, or its custody key where the batch's domain hides
    /// counterparties.
    pub to: Party,
    pub from_location: String,
    pub to_location: String,
    pub time: EventTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receive {
    /// The ship record being acknowledged.
    pub shipment: RecordId,
    pub location: String,
    pub time: EventTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAmount {
    pub batch: String,
    pub quantity: Quantity,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBatch {
    pub batch: String,
    pub domain: String,
    pub product: Product,
    pub lot: String,
    pub quantity: Quantity,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transform {
    pub inputs: Vec<BatchAmount>,
    pub outputs: Vec<NewBatch>,
    pub location: String,
    pub time: EventTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionResult {
    Pass,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspect {
    pub batch: String,
    pub result: InspectionResult,
    /// The standard or method tested against, e.g. GB 2763-2021.
    pub standard: String,
    pub report: Option<Hash32>,
    pub location: String,
    pub time: EventTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recall {
    pub batch: String,
    pub reason: String,
    pub time: EventTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleKind {
    /// CBV disposition `retail_sold`.
    RetailSold,
    /// Dispensed to a patient (bizStep `dispensing`).
    Dispensed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sell {
    pub batch: String,
    pub quantity: Quantity,
    pub kind: SaleKind,
    pub location: String,
    pub time: EventTime,
}

/// A change to the roster, in force from the proposal's `effective` height if members
/// holding more than two thirds of the voting power approve by its `deadline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub change: Change,
    pub reason: String,
    /// The last height whose block may carry a vote on it.
    pub deadline: u64,
    /// The height from which a passed change is in force; after `deadline`.
    pub effective: u64,
    /// For each key the change gives a member ([`Change::named_keys`], in that order),
    /// the proof that the member holds it: its signature over (chain, key, member id)
    /// under [`Domain::KeyPossession`]. Empty for changes that name no key.
    #[serde(default)]
    pub possession: Vec<Signature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    AddMember(Member),
    RemoveMember {
        member: String,
    },
    /// Replaces a member's roles and voting power together (power follows the
    /// validator role).
    SetRoles {
        member: String,
        roles: Vec<Role>,
        voting_power: u64,
    },
    RotateNodeKey {
        member: String,
        key: PublicKey,
    },
    RotateSigningKey {
        member: String,
        key: PublicKey,
    },
    SetPolicy(Policy),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The `propose` record voted on.
    pub proposal: RecordId,
    pub approve: bool,
}
