//! Verified provenance: where a batch came from, who held it, what was found, and where
//! everything made from it went, checked against one finalized header.
//!
//! A node answers with a [`ProvenanceProof`]: for each batch, its state proven by the
//! header's batch index (`trace_root`, see [`crate::smt`]) and its events, each proven
//! by an inclusion path to the header's ledger root. The state names the batch's event
//! count and the hash chain over its event ids, so an answer that leaves an event out,
//! reorders events or alters one does not verify: **completeness** is part of the proof.
//! Everything an inspector reads (custody, holdings, inspections, recall reach) is then
//! derived here from the verified events, not taken from the node.
//!
//! Sans-IO, like [`crate::proof`]: the HTTP client and the CLI fetch, this decides.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use xinlian_genesis::{Hash32, PublicKey, canonical};

use crate::block::Header;
use crate::hidden::Amount;
use crate::ids::Uscc;
use crate::party::Party;
use crate::proof::{
    Checkpoint, HexBytes, LedgerEntry, LightClient, RosterChange, SignerAuthority, VerifyError,
    check_bound_before,
};
use crate::record::{Body, EncodedRecord, RecordId, SignedRecord};
use crate::smt::MapProof;
use crate::state::{BatchState, next_event_chain};
use crate::when::EventTime;

/// The form of an offline provenance bundle.
pub const PROVENANCE_BUNDLE_FORMAT: &str = "xinlian-provenance/v1";
/// Most batches one answer may carry; a node stops there and lists the rest as `missing`.
pub const ANSWER_BATCHES_MAX: usize = 2_000;
/// Most records one answer may carry.
pub const ANSWER_RECORDS_MAX: usize = 20_000;
/// Roots one continuation request may name.
pub const PROVENANCE_ROOTS_MAX: usize = 256;
/// Most pages a bundle may carry.
pub const BUNDLE_PAGES_MAX: usize = 256;
const BATCH_STATE_BYTES_MAX: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Back to every origin, through transforms.
    Upstream,
    /// Forward to every batch made from it (recall reach).
    Downstream,
    Both,
}

/// One way through the batch graph, for [`Provenance::walk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Towards {
    /// By parents: the batches this one was made from, back to every origin.
    Origins,
    /// By children: everything made from this one.
    Products,
}

impl Direction {
    pub fn up(self) -> bool {
        matches!(self, Direction::Upstream | Direction::Both)
    }
    pub fn down(self) -> bool {
        matches!(self, Direction::Downstream | Direction::Both)
    }
}

/// One batch in an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEvidence {
    pub batch: String,
    /// Canonical [`BatchState`]: what the batch index commits to.
    pub state: HexBytes,
    /// The state's place in the header's batch index.
    pub index_proof: MapProof,
    /// Ledger indices of the batch's events, in order; each is in the answer's records.
    pub events: Vec<u64>,
}

/// The key bindings behind one enterprise key (see `RecordProof::key_bindings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerBindings {
    pub key: PublicKey,
    pub bindings: Vec<LedgerEntry>,
}

/// What `GET /v1/batches/{id}/provenance` and `POST /v1/provenance` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceProof {
    pub checkpoint: Checkpoint,
    /// The batches the walk started from.
    pub roots: Vec<String>,
    pub direction: Direction,
    pub batches: Vec<BatchEvidence>,
    /// Batches the walk reached but left out to stay within bounds: ask for them as
    /// roots of the next page.
    pub missing: Vec<String>,
    /// Every event record of the batches, once each, with inclusion paths.
    pub records: Vec<LedgerEntry>,
    /// Key bindings of the enterprise keys that signed any of the records.
    pub signers: Vec<SignerBindings>,
}

/// Pages of answers, for checking with no network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceBundle {
    pub format: String,
    pub chain: Hash32,
    pub roster_changes: Vec<RosterChange>,
    pub root: String,
    pub direction: Direction,
    pub pages: Vec<ProvenanceProof>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedEvent {
    pub id: RecordId,
    pub ledger_index: u64,
    pub record: SignedRecord,
    pub signer: SignerAuthority,
}

impl VerifiedEvent {
    /// The enterprise that signed it, if an enterprise did with its own key.
    pub fn enterprise(&self) -> Option<&Uscc> {
        match &self.signer {
            SignerAuthority::Enterprise { uscc, .. } => Some(uscc),
            _ => None,
        }
    }

    /// The party that signed it: an enterprise by its own key, or a custody key (with
    /// the domain it is bound for); `None` for a member.
    pub fn party(&self) -> Option<(Party, Option<&str>)> {
        match &self.signer {
            SignerAuthority::Enterprise { uscc, .. } => {
                Some((Party::Enterprise(uscc.clone()), None))
            }
            SignerAuthority::Custody { domain, .. } => {
                Some((Party::Custody(self.record.envelope.signer), Some(domain)))
            }
            SignerAuthority::Member { .. } => None,
        }
    }
}

/// One custody transfer: shipped by one enterprise, acknowledged (or not yet) by the
/// receiver, from which moment custody passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub ship: RecordId,
    pub from: Party,
    pub to: Party,
    /// `None` where the batch's amounts are withheld from this reader.
    pub amount: Option<u64>,
    pub shipped_at: EventTime,
    /// The receiver's acknowledgement, and when: custody passes only then.
    pub receipt: Option<RecordId>,
    pub received_at: Option<EventTime>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InTransit {
    pub ship: RecordId,
    pub from: Party,
    pub to: Party,
    /// `None` where the batch's amounts are withheld from this reader.
    pub amount: Option<u64>,
}

/// A batch whose state and every event were verified, with what follows from them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedBatch {
    pub state: BatchState,
    pub events: Vec<VerifiedEvent>,
    /// Current holders and amounts, replayed from the events. Where the batch's domain
    /// hides quantities and this reader was given only their commitments
    /// ([`VerifiedBatch::amounts_withheld`]), every party that has held the batch, each
    /// with `None`: the chain of custody is proven, how much each holds is not shown.
    pub holders: BTreeMap<Party, Option<u64>>,
    pub in_transit: Vec<InTransit>,
    /// Every custody transfer, in order: who held it when, who acknowledged receipt.
    pub transfers: Vec<Transfer>,
    /// `None` where amounts are withheld.
    pub sold: Option<u64>,
    /// Amount used up as input of transforms; `None` where amounts are withheld.
    pub consumed: Option<u64>,
    /// Whether some event's amount reached this reader only as its commitment
    /// (docs/privacy.md § Trace events): then no amount of the batch is derived.
    pub amounts_withheld: bool,
    /// Batches made from this one.
    pub children: Vec<String>,
    /// Height of the header this batch was verified against.
    pub final_at: u64,
}

/// A verified answer (one page, or several merged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub root: String,
    pub direction: Direction,
    pub batches: BTreeMap<String, VerifiedBatch>,
    /// Batches reached but not (yet) verified: while any remain, the answer is partial.
    pub missing: BTreeSet<String>,
    /// The height of the first page's header. No later page is proven against an
    /// older header ([`Provenance::merge`] refuses one), so every batch's state is as
    /// of this height or later: the answer shows every recall and every event final
    /// by then, and "complete" means complete as of this height.
    pub final_from: u64,
    /// The highest height a page was checked against.
    pub final_to: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvenanceError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("bundle format '{0}' is not {PROVENANCE_BUNDLE_FORMAT}")]
    Format(String),
    #[error("answer exceeds its bounds: {0}")]
    Oversize(String),
    #[error("batch {batch}: {reason}")]
    Batch { batch: String, reason: String },
    #[error("batch {batch}, event {seq} (record {id}): {reason}")]
    Event {
        batch: String,
        seq: usize,
        id: RecordId,
        reason: String,
    },
    #[error("record at ledger index {0} appears twice")]
    DuplicateRecord(u64),
    #[error("event at ledger index {0} is not among the answer's records")]
    MissingRecord(u64),
    #[error("asked for the provenance of {asked:?}, the answer starts from {got:?}")]
    WrongRoots {
        asked: Vec<String>,
        got: Vec<String>,
    },
    #[error("the answer neither includes nor lists as missing batch {0}, which the walk reaches")]
    Omitted(String),
    /// A continuation page proven against a header older than the first page's: its
    /// batches could hide what happened since (a recall) while the answer looks complete.
    #[error(
        "a continuation page is proven against header {page}, older than the first page's header {first}: its batches could omit later events such as a recall"
    )]
    OlderPage { first: u64, page: u64 },
}

fn batch_err(batch: &str, reason: impl Into<String>) -> ProvenanceError {
    ProvenanceError::Batch {
        batch: batch.to_string(),
        reason: reason.into(),
    }
}

impl LightClient {
    /// Checks one page completely: the checkpoint's finality; every record's bytes,
    /// fields, signature (one batch verification), inclusion and signer authority;
    /// every batch's state against the batch index and its events against the state's
    /// count and chain; and that every batch the walk reaches is there or listed missing.
    pub fn verify_provenance(&self, p: &ProvenanceProof) -> Result<Provenance, ProvenanceError> {
        if p.batches.len() > ANSWER_BATCHES_MAX || p.records.len() > ANSWER_RECORDS_MAX {
            return Err(ProvenanceError::Oversize(format!(
                "{} batches and {} records, bounds {ANSWER_BATCHES_MAX} and {ANSWER_RECORDS_MAX}",
                p.batches.len(),
                p.records.len()
            )));
        }
        self.check_checkpoint(&p.checkpoint)?;
        let header = &p.checkpoint.header;
        let records = self.verify_records(&p.records, header)?;
        let authorities = self.verify_signers(&records, &p.signers, header)?;
        let mut batches = BTreeMap::new();
        for ev in &p.batches {
            if batches.contains_key(&ev.batch) {
                return Err(batch_err(&ev.batch, "appears twice in the answer"));
            }
            let vb = verify_batch(ev, header, &records, &authorities)?;
            batches.insert(ev.batch.clone(), vb);
        }
        let missing: BTreeSet<String> = p
            .missing
            .iter()
            .filter(|b| !batches.contains_key(*b))
            .cloned()
            .collect();
        let answer = Provenance {
            root: p.roots.first().cloned().unwrap_or_default(),
            direction: p.direction,
            batches,
            missing,
            final_from: header.height,
            final_to: header.height,
        };
        for r in &p.roots {
            if !answer.batches.contains_key(r) && !answer.missing.contains(r) {
                return Err(ProvenanceError::Omitted(r.clone()));
            }
        }
        answer.check_closed(&p.roots)?;
        Ok(answer)
    }

    /// Checks an offline bundle as a fresh client holding only `genesis`.
    pub fn verify_provenance_bundle(
        genesis: xinlian_genesis::Genesis,
        b: &ProvenanceBundle,
    ) -> Result<Provenance, ProvenanceError> {
        if b.format != PROVENANCE_BUNDLE_FORMAT {
            return Err(ProvenanceError::Format(b.format.clone()));
        }
        if b.pages.is_empty() || b.pages.len() > BUNDLE_PAGES_MAX {
            return Err(ProvenanceError::Oversize(format!(
                "{} pages, 1 to {BUNDLE_PAGES_MAX} allowed",
                b.pages.len()
            )));
        }
        let mut client = LightClient::new(genesis);
        if b.chain != client.chain() {
            return Err(VerifyError::WrongChain {
                what: "bundle",
                expected: client.chain(),
                got: b.chain,
            }
            .into());
        }
        client.accept_changes(&b.roster_changes)?;
        let mut out: Option<Provenance> = None;
        for page in &b.pages {
            let v = client.verify_provenance(page)?;
            match &mut out {
                None => {
                    if page.roots.first() != Some(&b.root) || page.direction != b.direction {
                        return Err(batch_err(
                            &b.root,
                            "the bundle's first page does not start from its root",
                        ));
                    }
                    out = Some(v)
                }
                Some(acc) => acc.merge(v)?,
            }
        }
        Ok(out.expect("at least one page"))
    }

    fn verify_records(
        &self,
        entries: &[LedgerEntry],
        header: &Header,
    ) -> Result<BTreeMap<u64, EncodedRecord>, ProvenanceError> {
        let mut out = BTreeMap::new();
        for e in entries {
            let rec = self.verify_entry_unsigned(e, header)?;
            if out.insert(e.index, rec).is_some() {
                return Err(ProvenanceError::DuplicateRecord(e.index));
            }
        }
        crate::proof::verify_signatures(out.values())?;
        Ok(out)
    }

    fn verify_signers(
        &self,
        records: &BTreeMap<u64, EncodedRecord>,
        signers: &[SignerBindings],
        header: &Header,
    ) -> Result<BTreeMap<u64, SignerAuthority>, ProvenanceError> {
        let mut chains: BTreeMap<PublicKey, (&[LedgerEntry], SignerAuthority)> = BTreeMap::new();
        for s in signers {
            if chains.contains_key(&s.key) {
                return Err(ProvenanceError::Oversize(format!(
                    "bindings of key {} appear twice",
                    s.key
                )));
            }
            // Errors name the first record the key signed.
            let first = records
                .values()
                .find(|r| r.record().envelope.signer == s.key)
                .map_or(RecordId([0; 32]), |r| r.id());
            let a = self.enterprise_authority(first, &s.key, &s.bindings, header)?;
            chains.insert(s.key, (&s.bindings, a));
        }
        let mut out = BTreeMap::new();
        for (index, rec) in records {
            let key = rec.record().envelope.signer;
            let a = if self.is_member_key(&key, *index) {
                self.member_authority(rec, *index)?
            } else {
                let fail = |reason: String| VerifyError::Authority {
                    id: rec.id(),
                    reason,
                };
                let (bindings, a) = chains
                    .get(&key)
                    .ok_or_else(|| fail(format!("no key bindings given for key {key}")))?;
                check_bound_before(bindings, *index).map_err(fail)?;
                crate::proof::custody_key_signs(a, &rec.record().envelope.body).map_err(fail)?;
                a.clone()
            };
            out.insert(*index, a);
        }
        Ok(out)
    }
}

fn verify_batch(
    ev: &BatchEvidence,
    header: &Header,
    records: &BTreeMap<u64, EncodedRecord>,
    authorities: &BTreeMap<u64, SignerAuthority>,
) -> Result<VerifiedBatch, ProvenanceError> {
    let name = &ev.batch;
    let state: BatchState = canonical::decode(&ev.state.0, BATCH_STATE_BYTES_MAX)
        .map_err(|e| batch_err(name, format!("state bytes: {e}")))?;
    if &state.batch != name {
        return Err(batch_err(
            name,
            format!("the state is of batch {}", state.batch),
        ));
    }
    ev.index_proof
        .verify(
            &header.trace_root,
            &BatchState::index_key(name),
            &canonical::sha256(&ev.state.0),
        )
        .map_err(|e| {
            batch_err(
                name,
                format!(
                    "state is not the one in the batch index of header {}: {e}",
                    header.height
                ),
            )
        })?;
    if ev.events.len() != state.events as usize {
        return Err(batch_err(
            name,
            format!(
                "{} events given, the proven state counts {}",
                ev.events.len(),
                state.events
            ),
        ));
    }
    let mut chain = Hash32([0; 32]);
    let mut events = Vec::with_capacity(ev.events.len());
    for index in &ev.events {
        let rec = records
            .get(index)
            .ok_or(ProvenanceError::MissingRecord(*index))?;
        chain = next_event_chain(&chain, &rec.id());
        events.push(VerifiedEvent {
            id: rec.id(),
            ledger_index: *index,
            record: rec.record().clone(),
            signer: authorities[index].clone(),
        });
    }
    if chain != state.event_chain {
        return Err(batch_err(
            name,
            "its events do not hash to the proven event chain: one is missing, extra, altered or out of order",
        ));
    }
    VerifiedBatch::from_events(state, events, header.height)
}

impl VerifiedBatch {
    /// The amount the batch was made with, as this reader may know it: in clear in the
    /// proven state, or opened in the event that made it; `None` where withheld.
    pub fn created_amount(&self) -> Option<u64> {
        if self.amounts_withheld {
            return None;
        }
        let origin = &self.events.first()?.record.envelope.body;
        match origin {
            Body::Commission(c) => c.quantity.amount.value(),
            Body::Transform(t) => t
                .outputs
                .iter()
                .find(|o| o.batch == self.state.batch)
                .and_then(|o| o.quantity.amount.value()),
            _ => None,
        }
    }

    /// A batch with what follows from its events: holders, shipments in transit,
    /// transfers, amounts sold and consumed, and the batches made from it. It proves
    /// nothing itself: the state and events must already be verified against the
    /// header at `final_at`, as [`LightClient::verify_provenance`] does before calling it.
    ///
    /// This is the verifier's own derivation from the events, independent on purpose
    /// of the holdings execution keeps (`node/core/tests/custody.rs` checks that the
    /// two agree). It also checks that each event is one of this batch: validators
    /// enforced every rule, so a failure means the proven chain contradicts itself.
    pub fn from_events(
        state: BatchState,
        events: Vec<VerifiedEvent>,
        final_at: u64,
    ) -> Result<VerifiedBatch, ProvenanceError> {
        let withheld = (events.iter())
            .any(|e| !own_amounts(&e.record.envelope.body, &state.batch).all(Amount::is_known));
        let zero = (!withheld).then_some(0);
        let mut vb = VerifiedBatch {
            state,
            events,
            holders: BTreeMap::new(),
            in_transit: Vec::new(),
            transfers: Vec::new(),
            sold: zero,
            consumed: zero,
            amounts_withheld: withheld,
            children: Vec::new(),
            final_at,
        };
        replay(&mut vb)?;
        Ok(vb)
    }
}

type Holders = BTreeMap<Party, Option<u64>>;

/// The amounts `body` states for `batch` itself (not a transform's other batches).
fn own_amounts<'b>(body: &'b Body, batch: &'b str) -> impl Iterator<Item = &'b Amount> + 'b {
    (body.quantities().into_iter())
        .filter(move |(b, _)| *b == batch)
        .map(|(_, q)| &q.amount)
}

/// `u` holds `q` more (or, with amounts withheld, holds some).
fn add(h: &mut Holders, u: Party, q: Option<u64>) {
    let held = h.entry(u).or_insert(q.map(|_| 0));
    *held = held.zip(q).map(|(a, b)| a.saturating_add(b));
}

/// `u` gives `q` away (or, with amounts withheld, some): the reason it cannot if not.
fn take(h: &mut Holders, u: &Party, q: Option<u64>) -> Result<(), String> {
    let Some(q) = q else {
        // Amounts withheld: a party that gives has held the batch, and may still hold
        // some of it.
        return match h.contains_key(u) {
            true => Ok(()),
            false => Err(format!("{u} gives some of it but never held it")),
        };
    };
    let held = h.get(u).copied().flatten().unwrap_or(0);
    let left = held
        .checked_sub(q)
        .ok_or_else(|| format!("{u} gives {q} but holds {held}"))?;
    if left == 0 {
        h.remove(u);
    } else {
        h.insert(u.clone(), Some(left));
    }
    Ok(())
}

/// The party that signed `e`, in the form the batch names its parties in (that of its
/// maker, `maker`) and, for a custody key, bound for the batch's `domain`: validators
/// refuse any other. The reason it is not, if not.
fn signing_party(e: &VerifiedEvent, maker: &Party, domain: &str) -> Result<Party, String> {
    match e.party() {
        None => Err("a custody event not signed by an enterprise".into()),
        Some((p, _)) if std::mem::discriminant(&p) != std::mem::discriminant(maker) => Err(
            format!("signed by {p}, not in the form the batch names its parties in"),
        ),
        Some((_, Some(d))) if d != domain => Err(format!(
            "signed by a custody key bound for domain {d}, not {domain}"
        )),
        Some((p, _)) => Ok(p),
    }
}

/// A recall is a trace authority's (a member: its role was checked) or the maker's.
fn recalled_by_maker(e: &VerifiedEvent, maker: &Party, domain: &str) -> Result<(), String> {
    if e.party().is_none() || signing_party(e, maker, domain)? == *maker {
        return Ok(());
    }
    Err("recalled by a party that did not make the batch".into())
}

/// A shipment's addressee is in the batch's form (that of its `maker`) and is not its
/// sender; that a custody key is bound for the batch's domain is the validators' check.
fn addressed(to: &Party, from: &Party, maker: &Party) -> Result<(), String> {
    if std::mem::discriminant(to) != std::mem::discriminant(maker) {
        return Err(format!(
            "addressed to {to}, not in the form the batch names its parties in"
        ));
    }
    if to == from {
        return Err(format!("{from} ships to itself"));
    }
    Ok(())
}

/// Derives holdings, transit, sales, consumption and children from the events, and
/// checks that each is an event of this batch.
fn replay(vb: &mut VerifiedBatch) -> Result<(), ProvenanceError> {
    let withheld = vb.amounts_withheld;
    let (maker, domain) = (vb.state.created_by.clone(), vb.state.domain.clone());
    let name = vb.state.batch.clone();
    let mut transit: BTreeMap<RecordId, InTransit> = BTreeMap::new();
    let mut recalled = None;
    for (seq, e) in vb.events.iter().enumerate() {
        let fail = |reason: String| ProvenanceError::Event {
            batch: name.clone(),
            seq,
            id: e.id,
            reason,
        };
        let who = || signing_party(e, &maker, &domain).map_err(fail);
        // What this reader may derive: nothing of any amount once one is withheld.
        let shown = |a: &Amount| if withheld { None } else { a.value() };
        let sub = |h: &mut Holders, u: &Party, q: Option<u64>| take(h, u, q).map_err(fail);
        let body = &e.record.envelope.body;
        if seq == 0 {
            if e.id != vb.state.origin {
                return Err(fail("event 0 is not the record that made the batch".into()));
            }
            let amount = match body {
                Body::Commission(b) if b.batch == name && vb.state.parents.is_empty() => {
                    &b.quantity.amount
                }
                Body::Transform(t) => {
                    let out = t.outputs.iter().find(|o| o.batch == name).ok_or_else(|| {
                        fail("the transform that made the batch does not output it".into())
                    })?;
                    let inputs: Vec<&String> = t.inputs.iter().map(|i| &i.batch).collect();
                    if inputs != vb.state.parents.iter().collect::<Vec<_>>() {
                        return Err(fail(
                            "the proven parents are not the transform's inputs".into(),
                        ));
                    }
                    &out.quantity.amount
                }
                _ => {
                    return Err(fail(format!(
                        "a {} cannot make a batch",
                        body.kind().name()
                    )));
                }
            };
            // The state holds the created amount in clear exactly when the record does.
            if amount.clear() != vb.state.created_amount {
                return Err(fail("created amount differs from the proven state".into()));
            }
            let maker = who()?;
            if maker != vb.state.created_by {
                return Err(fail(format!(
                    "made by {maker}, not by {} as the proven state says",
                    vb.state.created_by
                )));
            }
            add(&mut vb.holders, maker, shown(amount));
            continue;
        }
        match body {
            Body::Ship(b) if b.batch == name => {
                let from = who()?;
                addressed(&b.to, &from, &maker).map_err(fail)?;
                sub(&mut vb.holders, &from, shown(&b.quantity.amount))?;
                vb.transfers.push(Transfer {
                    ship: e.id,
                    from: from.clone(),
                    to: b.to.clone(),
                    amount: shown(&b.quantity.amount),
                    shipped_at: b.time,
                    receipt: None,
                    received_at: None,
                });
                transit.insert(
                    e.id,
                    InTransit {
                        ship: e.id,
                        from,
                        to: b.to.clone(),
                        amount: shown(&b.quantity.amount),
                    },
                );
            }
            Body::Receive(b) => {
                let t = transit.remove(&b.shipment).ok_or_else(|| {
                    fail(format!(
                        "receives shipment {} which is not an open shipment of this batch",
                        b.shipment
                    ))
                })?;
                if who()? != t.to {
                    return Err(fail(format!(
                        "received by other than the addressee {}",
                        t.to
                    )));
                }
                let tr = vb
                    .transfers
                    .iter_mut()
                    .find(|x| x.ship == b.shipment)
                    .expect("an open shipment has its transfer");
                tr.receipt = Some(e.id);
                tr.received_at = Some(b.time);
                add(&mut vb.holders, t.to, t.amount);
            }
            Body::Transform(t) => {
                let input = t.inputs.iter().find(|i| i.batch == name).ok_or_else(|| {
                    fail("a transform of this batch that does not take it as input".into())
                })?;
                sub(&mut vb.holders, &who()?, shown(&input.quantity.amount))?;
                vb.consumed = vb
                    .consumed
                    .zip(shown(&input.quantity.amount))
                    .map(|(a, b)| a.saturating_add(b));
                vb.children
                    .extend(t.outputs.iter().map(|o| o.batch.clone()));
            }
            Body::Sell(b) if b.batch == name => {
                sub(&mut vb.holders, &who()?, shown(&b.quantity.amount))?;
                vb.sold = vb
                    .sold
                    .zip(shown(&b.quantity.amount))
                    .map(|(a, b)| a.saturating_add(b));
            }
            Body::Inspect(b) if b.batch == name => {}
            Body::Recall(b) if b.batch == name => {
                recalled_by_maker(e, &maker, &domain).map_err(fail)?;
                recalled = Some(e.id)
            }
            _ => {
                return Err(fail(format!(
                    "a {} that is not an event of this batch",
                    body.kind().name()
                )));
            }
        }
    }
    if recalled != vb.state.recalled {
        return Err(batch_err(
            &name,
            "recall status differs from the proven state",
        ));
    }
    vb.in_transit = transit.into_values().collect();
    Ok(())
}

impl Provenance {
    /// Adds a continuation page: its batches fill in those listed missing. A page
    /// proven against a header older than this answer's first page is refused (and
    /// nothing is added), so no batch of a merged answer is staler than its first page.
    /// A page against a later header is taken as it is: its batches are then as of that
    /// later header, never older than `final_from`.
    pub fn merge(&mut self, other: Provenance) -> Result<(), ProvenanceError> {
        // A page walking another way would leave out a branch (a recall upstream).
        if other.direction != self.direction {
            return Err(batch_err(
                &self.root,
                format!(
                    "a continuation page walks {:?}, the answer {:?}",
                    other.direction, self.direction
                ),
            ));
        }
        if other.final_from < self.final_from {
            return Err(ProvenanceError::OlderPage {
                first: self.final_from,
                page: other.final_from,
            });
        }
        for (k, v) in other.batches {
            self.missing.remove(&k);
            self.batches.entry(k).or_insert(v);
        }
        for m in other.missing {
            if !self.batches.contains_key(&m) {
                self.missing.insert(m);
            }
        }
        self.final_to = self.final_to.max(other.final_to);
        Ok(())
    }

    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    fn next(&self, b: &VerifiedBatch) -> Vec<String> {
        let mut n = Vec::new();
        if self.direction.up() {
            n.extend(b.state.parents.iter().cloned());
        }
        if self.direction.down() {
            n.extend(b.children.iter().cloned());
        }
        n
    }

    /// Every batch a walk from `roots` reaches through verified batches must be
    /// verified or listed missing: a node cannot drop a branch silently.
    fn check_closed(&self, roots: &[String]) -> Result<(), ProvenanceError> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = roots.iter().map(String::as_str).collect();
        while let Some(b) = queue.pop_front() {
            if !seen.insert(b) {
                continue;
            }
            match self.batches.get(b) {
                Some(vb) => {
                    for n in self.next(vb) {
                        let n = self
                            .batches
                            .get_key_value(&n)
                            .map(|(k, _)| k.as_str())
                            .or_else(|| self.missing.get(&n).map(String::as_str))
                            .ok_or(ProvenanceError::Omitted(n))?;
                        queue.push_back(n);
                    }
                }
                None if self.missing.contains(b) => {}
                None => return Err(ProvenanceError::Omitted(b.to_string())),
            }
        }
        Ok(())
    }

    /// Batches reachable from `from` by parents (upstream) or children (downstream),
    /// excluding `from`, in breadth-first order, among those verified.
    pub fn walk(&self, from: &str, towards: Towards) -> Vec<&VerifiedBatch> {
        let mut seen = BTreeSet::from([from.to_string()]);
        let mut queue = VecDeque::from([from.to_string()]);
        let mut out = Vec::new();
        while let Some(b) = queue.pop_front() {
            let Some(vb) = self.batches.get(&b) else {
                continue;
            };
            if b != from {
                out.push(vb);
            }
            let next = match towards {
                Towards::Origins => &vb.state.parents,
                Towards::Products => &vb.children,
            };
            for n in next {
                if seen.insert(n.clone()) {
                    queue.push_back(n.clone());
                }
            }
        }
        out
    }

    /// Recalls that affect `batch`: its own and any of a batch upstream of it.
    pub fn recalls_affecting(&self, batch: &str) -> Vec<(String, RecordId)> {
        let own = self.batches.get(batch).into_iter();
        own.chain(self.walk(batch, Towards::Origins))
            .filter_map(|b| b.state.recalled.map(|r| (b.state.batch.clone(), r)))
            .collect()
    }

    /// Every event of every verified batch, once each (a transform is an event of all
    /// its inputs and outputs), in ledger order.
    pub fn all_events(&self) -> Vec<&VerifiedEvent> {
        let mut m: BTreeMap<u64, &VerifiedEvent> = BTreeMap::new();
        for b in self.batches.values() {
            for e in &b.events {
                m.insert(e.ledger_index, e);
            }
        }
        m.into_values().collect()
    }
}
