//! GS1 EPCIS 2.0 (JSON-LD) in and out. Export turns a batch's verified events into an
//! `EPCISDocument`; import turns an `EPCISDocument` into records signed by the
//! importer, or refuses the whole document with one error per offending event and
//! field. The mapping, both ways, is documented in `docs/epcis.md`; nothing in a
//! document is silently dropped except the capturing system's `eventID`, `recordTime`
//! and `@context`, which the ledger's record id, block time and our own context replace.
//!
//! Pure: the caller supplies the signer, and for `receiving` events whose shipment the
//! document does not contain, a lookup of open shipments (the node's batch view).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::Transit;
use crate::checks::check_body;
use crate::ids::Uscc;
use crate::party::Party;
use crate::proof::SignerAuthority;
use crate::provenance::{VerifiedBatch, VerifiedEvent};
use crate::record::{
    BatchAmount, Body, Commission, Inspect, InspectionResult, NewBatch, Product, Quantity, Recall,
    Receive, RecordId, SaleKind, Sell, Ship, SignedRecord, Transform,
};
use crate::signer::RecordSigner;
use crate::when::EventTime;

pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";
/// Our extension namespace in documents we write and read.
pub const XINLIAN_NS: &str = "https://xinlian.example/epcis/";
const PARTY_PREFIX: &str = "urn:xinlian:uscc:";
/// A custody key as a party, where the batch's domain hides counterparties.
const CUSTODY_PARTY_PREFIX: &str = "urn:xinlian:custody:";
const MEMBER_PREFIX: &str = "urn:xinlian:member:";
const BATCH_PREFIX: &str = "urn:xinlian:batch:";
const RECORD_PREFIX: &str = "urn:xinlian:record:";
/// Events one import may carry (each becomes at least one record).
pub const IMPORT_EVENTS_MAX: usize = 1_000;
/// A serialised EPC is a batch of one piece.
const PIECE: &str = "H87";

// ---------------------------------------------------------------- export

/// The EPC class URI of a batch: the batch id itself when it is a URI (a producer
/// naming batches by LGTIN, say), else `urn:xinlian:batch:ID`.
pub fn batch_class(batch: &str) -> String {
    if batch.contains(':') {
        batch.to_string()
    } else {
        format!("{BATCH_PREFIX}{batch}")
    }
}

/// The batch id of an EPC class URI (the inverse of [`batch_class`]).
pub fn class_batch(class: &str) -> String {
    class
        .strip_prefix(BATCH_PREFIX)
        .unwrap_or(class)
        .to_string()
}

fn party(p: &Party) -> String {
    match p {
        Party::Enterprise(u) => format!("{PARTY_PREFIX}{u}"),
        Party::Custody(k) => format!("{CUSTODY_PARTY_PREFIX}{k}"),
    }
}

fn signer_uri(e: &VerifiedEvent) -> String {
    match &e.signer {
        SignerAuthority::Member { id, .. } => format!("{MEMBER_PREFIX}{id}"),
        SignerAuthority::Enterprise { uscc, .. } => party(&Party::Enterprise(uscc.clone())),
        SignerAuthority::Custody { .. } => party(&Party::Custody(e.record.envelope.signer)),
    }
}

fn offset(t: &EventTime) -> String {
    let m = t.offset_minutes;
    let sign = if m < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
}

/// A quantity element; without `quantity` where the amount reached the reader only as
/// its commitment (the domain hides quantities: docs/privacy.md § Trace events).
fn qe(batch: &str, q: &Quantity) -> Value {
    match q.amount.value() {
        Some(a) => json!({ "epcClass": batch_class(batch), "quantity": a, "uom": q.uom }),
        None => json!({ "epcClass": batch_class(batch), "uom": q.uom }),
    }
}

fn product_fields(m: &mut Map<String, Value>, p: &Product, lot: &str, domain: &str) {
    m.insert("cbvmda:lotNumber".into(), json!(lot));
    m.insert("xinlian:productName".into(), json!(p.name));
    m.insert("xinlian:domain".into(), json!(domain));
    if let Some(g) = &p.gtin {
        m.insert("xinlian:gtin".into(), json!(g));
    }
    if let Some(d) = &p.drug_code {
        m.insert("xinlian:drugCode".into(), json!(d));
    }
}

/// The EPCIS event for one verified event of `b` (`shipments` gives each shipment's
/// record by id, for the quantity and sender of a receipt).
fn export_event(e: &VerifiedEvent, shipments: &BTreeMap<RecordId, (Party, Ship)>) -> Value {
    let (time, mut ev) = match &e.record.envelope.body {
        Body::Commission(c) => {
            let mut ilmd = Map::new();
            product_fields(&mut ilmd, &c.product, &c.lot, &c.domain);
            (
                c.time,
                json!({
                    "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                    "disposition": "active",
                    "quantityList": [qe(&c.batch, &c.quantity)],
                    "readPoint": {"id": c.origin}, "ilmd": ilmd,
                }),
            )
        }
        Body::Ship(s) => (
            s.time,
            json!({
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
                "disposition": "in_transit",
                "quantityList": [qe(&s.batch, &s.quantity)],
                "readPoint": {"id": s.from_location},
                "sourceList": [{"type": "owning_party", "source": signer_uri(e)}],
                "destinationList": [
                    {"type": "owning_party", "destination": party(&s.to)},
                    {"type": "location", "destination": s.to_location},
                ],
            }),
        ),
        Body::Receive(r) => {
            let (from, ship) = &shipments[&r.shipment];
            (
                r.time,
                json!({
                    "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "receiving",
                    "disposition": "in_progress",
                    "quantityList": [qe(&ship.batch, &ship.quantity)],
                    "readPoint": {"id": r.location}, "bizLocation": {"id": r.location},
                    "sourceList": [{"type": "owning_party", "source": party(from)}],
                    "destinationList": [{"type": "owning_party", "destination": signer_uri(e)}],
                    "xinlian:shipment": format!("{RECORD_PREFIX}{}", r.shipment),
                }),
            )
        }
        Body::Transform(t) => {
            let mut ev = json!({
                "type": "TransformationEvent", "bizStep": "commissioning",
                "disposition": "in_progress",
                "inputQuantityList": t.inputs.iter().map(|i| qe(&i.batch, &i.quantity)).collect::<Vec<_>>(),
                "outputQuantityList": t.outputs.iter().map(|o| qe(&o.batch, &o.quantity)).collect::<Vec<_>>(),
                "readPoint": {"id": t.location},
            });
            let first = &t.outputs[0];
            let same = t.outputs.iter().all(|o| {
                o.product == first.product && o.lot == first.lot && o.domain == first.domain
            });
            if same {
                let mut ilmd = Map::new();
                product_fields(&mut ilmd, &first.product, &first.lot, &first.domain);
                ev["ilmd"] = Value::Object(ilmd);
            } else {
                ev["xinlian:outputs"] = Value::Array(
                    t.outputs
                        .iter()
                        .map(|o| {
                            let mut m = Map::new();
                            m.insert("epcClass".into(), json!(batch_class(&o.batch)));
                            product_fields(&mut m, &o.product, &o.lot, &o.domain);
                            Value::Object(m)
                        })
                        .collect(),
                );
            }
            (t.time, ev)
        }
        Body::Inspect(i) => {
            let mut ev = json!({
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "inspecting",
                "disposition": match i.result {
                    InspectionResult::Pass => "conformant",
                    InspectionResult::Fail => "non_conformant",
                },
                "quantityList": [{"epcClass": batch_class(&i.batch)}],
                "readPoint": {"id": i.location},
                "xinlian:standard": i.standard,
            });
            if let Some(r) = &i.report {
                ev["xinlian:report"] = json!(r.to_string());
            }
            (i.time, ev)
        }
        Body::Recall(r) => (
            r.time,
            json!({
                "type": "ObjectEvent", "action": "OBSERVE", "disposition": "recalled",
                "quantityList": [{"epcClass": batch_class(&r.batch)}],
                "xinlian:reason": r.reason,
            }),
        ),
        Body::Sell(s) => {
            let (step, disp) = match s.kind {
                SaleKind::RetailSold => ("retail_selling", "retail_sold"),
                SaleKind::Dispensed => ("dispensing", "dispensed"),
            };
            (
                s.time,
                json!({
                    "type": "ObjectEvent", "action": "OBSERVE", "bizStep": step,
                    "disposition": disp,
                    "quantityList": [qe(&s.batch, &s.quantity)],
                    "readPoint": {"id": s.location}, "bizLocation": {"id": s.location},
                }),
            )
        }
        other => unreachable!(
            "a batch's events are traceability records, not {}",
            other.kind().name()
        ),
    };
    ev["eventID"] = json!(format!("{RECORD_PREFIX}{}", e.id));
    ev["eventTime"] = json!(time.to_string());
    ev["eventTimeZoneOffset"] = json!(offset(&time));
    ev["xinlian:signer"] = json!(signer_uri(e));
    ev
}

/// An `EPCISDocument` of the events of `batches` (each event once, in ledger order),
/// as verified. `created` is the document's `creationDate`.
pub fn export(batches: &[&VerifiedBatch], created: EventTime) -> Value {
    let mut events: BTreeMap<u64, &VerifiedEvent> = BTreeMap::new();
    let mut shipments = BTreeMap::new();
    for b in batches {
        for e in &b.events {
            events.entry(e.ledger_index).or_insert(e);
            if let (Body::Ship(s), Some((p, _))) = (&e.record.envelope.body, e.party()) {
                shipments.insert(e.id, (p, s.clone()));
            }
        }
    }
    let list: Vec<Value> = events
        .values()
        .map(|e| export_event(e, &shipments))
        .collect();
    json!({
        "@context": [EPCIS_CONTEXT, {"xinlian": XINLIAN_NS}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created.to_string(),
        "epcisBody": {"eventList": list},
    })
}

// ---------------------------------------------------------------- import

/// One reason a document cannot be imported.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportError {
    /// Index in `eventList`, when the error is in an event.
    pub event: Option<usize>,
    pub event_id: Option<String>,
    /// JSON path of the offending field within the event (or document).
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.event, &self.event_id) {
            (Some(i), Some(id)) => write!(f, "event {i} ({id}): {}: {}", self.field, self.reason),
            (Some(i), None) => write!(f, "event {i}: {}: {}", self.field, self.reason),
            _ => write!(f, "document: {}: {}", self.field, self.reason),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Trace domain for new batches whose event does not say (`xinlian:domain`).
    pub domain: Option<String>,
    /// Party identifiers (e.g. an SGLN or PGLN URI) → the enterprise's USCC, for parties
    /// not written as `urn:xinlian:uscc:…`.
    pub parties: BTreeMap<String, Uscc>,
    /// The policy's `trace` in force: amounts of domains it hides are opened before
    /// signing ([`crate::hidden::open_per_policy`]).
    pub trace: xinlian_genesis::TracePolicy,
}

/// Open shipments of a batch (not yet received), oldest first.
pub trait ShipmentLookup {
    fn open_shipments(&self, batch: &str) -> Result<Vec<Transit>, String>;

    /// The trace domain of a batch already on the ledger, if known.
    fn domain_of(&self, _batch: &str) -> Option<String> {
        None
    }
}

/// Shipments made by this import are matched first; a receipt of one shipped in
/// another system's document must already be on the ledger.
struct NoLookup;
impl ShipmentLookup for NoLookup {
    fn open_shipments(&self, _: &str) -> Result<Vec<Transit>, String> {
        Ok(Vec::new())
    }
}

/// Collects one event's errors; `take` reads a field and marks it as used, so that
/// whatever is left at the end is a field the mapping cannot represent.
struct Ev<'a> {
    index: usize,
    id: Option<String>,
    obj: &'a Map<String, Value>,
    used: Vec<&'static str>,
    errors: &'a mut Vec<ImportError>,
}

impl<'a> Ev<'a> {
    fn err(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ImportError {
            event: Some(self.index),
            event_id: self.id.clone(),
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn take(&mut self, k: &'static str) -> Option<&'a Value> {
        self.used.push(k);
        self.obj.get(k)
    }

    fn str(&mut self, k: &'static str) -> Option<&'a str> {
        match self.take(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.err(k, "must be a string");
                None
            }
        }
    }

    fn need_str(&mut self, k: &'static str, why: &str) -> Option<&'a str> {
        let v = self.str(k);
        if v.is_none() && !self.obj.contains_key(k) {
            self.err(k, format!("required: {why}"));
        }
        v
    }

    /// A CBV vocabulary value: bare (`shipping`), URN or GS1 web URI form.
    fn vocab(&mut self, k: &'static str, urn: &str, web: &str) -> Option<String> {
        let v = self.str(k)?;
        let bare = v
            .strip_prefix(urn)
            .or_else(|| v.strip_prefix(web))
            .unwrap_or(v);
        Some(bare.to_string())
    }

    fn leftovers(&mut self) {
        let extra: Vec<String> = self
            .obj
            .keys()
            .filter(|k| !self.used.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in extra {
            self.err(
                k.clone(),
                "not representable in a ledger record (see docs/epcis.md); remove it or record it elsewhere",
            );
        }
    }

    fn id_uri(&mut self, k: &'static str) -> Option<String> {
        match self.take(k) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => match (o.get("id"), o.len()) {
                (Some(Value::String(s)), 1) => Some(s.clone()),
                _ => {
                    self.err(k, "must be {\"id\": URI} with nothing else");
                    None
                }
            },
            Some(_) => {
                self.err(k, "must be {\"id\": URI}");
                None
            }
        }
    }
}

/// One side of an event: `(batch, quantity)` pairs from an EPC list (each EPC a batch of
/// one piece) and a quantity list.
fn elements(
    ev: &mut Ev,
    epcs: &'static str,
    quantities: &'static str,
    need_quantity: bool,
) -> Vec<(String, Option<Quantity>)> {
    let mut out = Vec::new();
    match ev.take(epcs) {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                match v.as_str() {
                    Some(s) if s.contains('*') => ev.err(
                        format!("{epcs}[{i}]"),
                        "an EPC pattern names no particular batch",
                    ),
                    Some(s) => out.push((s.to_string(), Some(Quantity::clear(1, PIECE)))),
                    None => ev.err(format!("{epcs}[{i}]"), "must be an EPC URI"),
                }
            }
        }
        Some(_) => ev.err(epcs, "must be a list of EPC URIs"),
    }
    match ev.take(quantities) {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let path = format!("{quantities}[{i}]");
                let Some(o) = v.as_object() else {
                    ev.err(path, "must be a quantity element");
                    continue;
                };
                for k in o.keys() {
                    if !["epcClass", "quantity", "uom"].contains(&k.as_str()) {
                        ev.err(format!("{path}.{k}"), "not part of a quantity element");
                    }
                }
                let class = match o.get("epcClass").and_then(Value::as_str) {
                    Some(c) if c.contains('*') => {
                        ev.err(
                            format!("{path}.epcClass"),
                            format!("'{c}' is a pattern, not a batch"),
                        );
                        continue;
                    }
                    Some(c) => class_batch(c),
                    None => {
                        ev.err(format!("{path}.epcClass"), "required");
                        continue;
                    }
                };
                let uom = match o.get("uom") {
                    None => PIECE.to_string(),
                    Some(Value::String(u)) => u.clone(),
                    Some(_) => {
                        ev.err(format!("{path}.uom"), "must be a UNECE Rec 20 code");
                        continue;
                    }
                };
                let q = match o.get("quantity") {
                    None if !need_quantity => None,
                    None => {
                        ev.err(format!("{path}.quantity"), "required here");
                        continue;
                    }
                    Some(Value::Number(n)) => match n.as_u64() {
                        Some(a) if a > 0 => Some(Quantity::clear(a, uom)),
                        _ => {
                            ev.err(
                                format!("{path}.quantity"),
                                format!(
                                    "{n} is not a positive whole number; the ledger counts in whole units (use a smaller unit, e.g. GRM for 200.5 KGM)"
                                ),
                            );
                            continue;
                        }
                    },
                    Some(_) => {
                        ev.err(format!("{path}.quantity"), "must be a number");
                        continue;
                    }
                };
                out.push((class, q));
            }
        }
        Some(_) => ev.err(quantities, "must be a list of quantity elements"),
    }
    out
}

/// `(type, party-or-location)` pairs of a source or destination list.
fn ends(ev: &mut Ev, k: &'static str, inner: &str) -> Vec<(String, String)> {
    match ev.take(k) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for (i, v) in a.iter().enumerate() {
                match (
                    v.get("type").and_then(Value::as_str),
                    v.get(inner).and_then(Value::as_str),
                    v.as_object().map(Map::len),
                ) {
                    (Some(t), Some(x), Some(2)) => {
                        let t = t
                            .strip_prefix("urn:epcglobal:cbv:sdt:")
                            .or_else(|| t.strip_prefix("https://ref.gs1.org/cbv/SDT-"))
                            .unwrap_or(t);
                        out.push((t.to_string(), x.to_string()));
                    }
                    _ => ev.err(
                        format!("{k}[{i}]"),
                        format!("must be {{\"type\", \"{inner}\"}}"),
                    ),
                }
            }
            out
        }
        Some(_) => {
            ev.err(k, "must be a list");
            Vec::new()
        }
    }
}

fn to_party(ev: &mut Ev, field: String, uri: &str, opts: &ImportOptions) -> Option<Party> {
    if let Some(u) = opts.parties.get(uri) {
        return Some(Party::Enterprise(u.clone()));
    }
    if let Some(u) = uri.strip_prefix(PARTY_PREFIX) {
        return Some(Party::Enterprise(Uscc(u.to_string())));
    }
    if let Some(k) = uri.strip_prefix(CUSTODY_PARTY_PREFIX) {
        match xinlian_genesis::PublicKey::from_hex(k) {
            Ok(k) => return Some(Party::Custody(k)),
            Err(_) => {
                ev.err(field, format!("custody key '{k}' is not 64 hex digits"));
                return None;
            }
        }
    }
    ev.err(
        field,
        format!(
            "party '{uri}' is not an enterprise on the ledger: write it as {PARTY_PREFIX}USCC (or {CUSTODY_PARTY_PREFIX}KEY) or map it (--party {uri}=USCC)"
        ),
    );
    None
}

/// The party of `kind` in a source or destination list; only owning and possessing
/// parties and one location are representable.
fn one_party(
    ev: &mut Ev,
    list: &[(String, String)],
    k: &str,
    opts: &ImportOptions,
) -> (Option<Party>, Option<String>) {
    let mut party = None;
    let mut location = None;
    for (i, (t, x)) in list.iter().enumerate() {
        match t.as_str() {
            "owning_party" | "possessing_party" => {
                let p = to_party(ev, format!("{k}[{i}]"), x, opts);
                if party.is_some() && p.is_some() && party != p {
                    ev.err(format!("{k}[{i}]"), "two different parties");
                }
                party = party.or(p);
            }
            "location" => {
                if location.is_some() {
                    ev.err(format!("{k}[{i}]"), "two locations");
                }
                location = Some(x.clone());
            }
            other => ev.err(
                format!("{k}[{i}].type"),
                format!("'{other}' is not representable"),
            ),
        }
    }
    (party, location)
}

fn product_of(
    ev: &mut Ev,
    m: &Map<String, Value>,
    path: &str,
    opts: &ImportOptions,
) -> Option<(Product, String, String)> {
    for k in m.keys() {
        if ![
            "cbvmda:lotNumber",
            "xinlian:productName",
            "xinlian:domain",
            "xinlian:gtin",
            "xinlian:drugCode",
            "epcClass",
        ]
        .contains(&k.as_str())
        {
            ev.err(
                format!("{path}.{k}"),
                "not representable in a batch's master data",
            );
        }
    }
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let name = s("xinlian:productName");
    let lot = s("cbvmda:lotNumber");
    let domain = s("xinlian:domain").or_else(|| opts.domain.clone());
    if name.is_none() {
        ev.err(
            format!("{path}.xinlian:productName"),
            "required: the product's name",
        );
    }
    if lot.is_none() {
        ev.err(
            format!("{path}.cbvmda:lotNumber"),
            "required: the lot number",
        );
    }
    if domain.is_none() {
        ev.err(
            format!("{path}.xinlian:domain"),
            "required: the trace domain (food, drug…), or give --domain",
        );
    }
    Some((
        Product {
            name: name?,
            gtin: s("xinlian:gtin"),
            drug_code: s("xinlian:drugCode"),
        },
        lot?,
        domain?,
    ))
}

/// Turns a document into records signed by `signer`, in document order, each with the
/// index of the event it came from (an event about several batches gives several), or
/// every reason it cannot be imported. `importer` is the signer's USCC (for matching
/// receipts), when an enterprise imports.
pub fn import(
    doc: &Value,
    opts: &ImportOptions,
    signer: &RecordSigner,
    importer: Option<&Party>,
    lookup: Option<&dyn ShipmentLookup>,
) -> Result<Vec<(usize, SignedRecord)>, Vec<ImportError>> {
    let mut errors = Vec::new();
    let doc_err = |errors: &mut Vec<ImportError>, field: &str, reason: String| {
        errors.push(ImportError {
            event: None,
            event_id: None,
            field: field.into(),
            reason,
        })
    };
    let Some(top) = doc.as_object() else {
        doc_err(&mut errors, "$", "not a JSON object".into());
        return Err(errors);
    };
    if top.get("type").and_then(Value::as_str) != Some("EPCISDocument") {
        doc_err(&mut errors, "type", "must be \"EPCISDocument\"".into());
    }
    if top.get("schemaVersion").and_then(Value::as_str) != Some("2.0") {
        doc_err(&mut errors, "schemaVersion", "must be \"2.0\"".into());
    }
    for k in top.keys() {
        if ![
            "@context",
            "type",
            "schemaVersion",
            "creationDate",
            "epcisBody",
            "id",
        ]
        .contains(&k.as_str())
        {
            doc_err(
                &mut errors,
                k,
                "not representable (EPCIS header and master data are not imported)".into(),
            );
        }
    }
    let list = match doc
        .pointer("/epcisBody/eventList")
        .and_then(Value::as_array)
    {
        Some(l) => l,
        None => {
            doc_err(
                &mut errors,
                "epcisBody.eventList",
                "required: a list of events".into(),
            );
            return Err(errors);
        }
    };
    if list.is_empty() || list.len() > IMPORT_EVENTS_MAX {
        doc_err(
            &mut errors,
            "epcisBody.eventList",
            format!("1 to {IMPORT_EVENTS_MAX} events, not {}", list.len()),
        );
        return Err(errors);
    }
    let no_lookup = NoLookup;
    let lookup = lookup.unwrap_or(&no_lookup);
    let mut out: Vec<(usize, SignedRecord)> = Vec::new();
    // Shipments made by this import: (batch, to, amount) → ship record id, unreceived.
    let mut own_ships: Vec<(String, Party, Option<u64>, RecordId)> = Vec::new();
    let mut used_remote: Vec<RecordId> = Vec::new();
    // The domain of each batch this import makes, for the ones it then moves.
    let mut domains: BTreeMap<String, String> = BTreeMap::new();
    for (index, v) in list.iter().enumerate() {
        let Some(obj) = v.as_object() else {
            errors.push(ImportError {
                event: Some(index),
                event_id: None,
                field: "$".into(),
                reason: "an event must be a JSON object".into(),
            });
            continue;
        };
        let id = obj
            .get("eventID")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut ev = Ev {
            index,
            id,
            obj,
            used: vec!["eventID", "recordTime", "xinlian:signer"],
            errors: &mut errors,
        };
        let before = ev.errors.len();
        let mut receipts = Receipts {
            lookup,
            own_ships: &own_ships,
            used_remote: &mut used_remote,
        };
        let bodies = map_event(&mut ev, opts, importer, &mut receipts);
        ev.leftovers();
        if ev.errors.len() > before {
            continue;
        }
        for mut body in bodies {
            domains.extend(
                (body.new_batches().into_iter()).map(|(b, d)| (b.to_string(), d.to_string())),
            );
            if !opts.trace.is_empty() {
                crate::hidden::open_per_policy(&mut body, &opts.trace, |b| {
                    domains.get(b).cloned().or_else(|| lookup.domain_of(b))
                });
            }
            if let Err(e) = check_body(&body) {
                ev.err(format!("({})", body.kind().name()), e.to_string());
                continue;
            }
            let rec = signer.sign(body);
            if let Body::Ship(s) = &rec.envelope.body {
                let to = s.to.clone();
                own_ships.push((s.batch.clone(), to, s.quantity.amount.value(), rec.id()));
            }
            if let Body::Receive(r) = &rec.envelope.body {
                own_ships.retain(|x| x.3 != r.shipment);
            }
            out.push((index, rec));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn time_of(ev: &mut Ev) -> Option<EventTime> {
    let t = ev.need_str("eventTime", "when the event happened");
    let off = ev.need_str("eventTimeZoneOffset", "the local offset");
    let (t, off) = (t?, off?);
    let mut time = match EventTime::parse(t) {
        Ok(t) => t,
        Err(e) => {
            ev.err("eventTime", e);
            return None;
        }
    };
    match offset_minutes(off) {
        Some(m) => time.offset_minutes = m,
        None => ev.err("eventTimeZoneOffset", format!("'{off}' is not ±hh:mm")),
    }
    if !time.is_plausible() {
        ev.err("eventTime", "outside the years 1970–9999");
    }
    Some(time)
}

/// An EPCIS `eventTimeZoneOffset`, `±hh:mm` exactly (digits only, at most ±14:00), in
/// minutes. Found by the `epcis_import` fuzz target: the parser this replaces read each
/// part with `str::parse`, so it took `+-5:00` and `+05:-1`, and it computed the
/// minutes before checking the hours, so `+999:9` overflowed.
fn offset_minutes(off: &str) -> Option<i16> {
    let (sign, rest) = match off.as_bytes() {
        [b'+', rest @ ..] => (1, rest),
        [b'-', rest @ ..] => (-1, rest),
        _ => return None,
    };
    let &[h1, h0, b':', m1, m0] = rest else {
        return None;
    };
    let digit = |d: u8| d.is_ascii_digit().then(|| i16::from(d - b'0'));
    let (h, m) = (digit(h1)? * 10 + digit(h0)?, digit(m1)? * 10 + digit(m0)?);
    (m < 60 && h * 60 + m <= 14 * 60).then(|| sign * (h * 60 + m))
}

/// Where a receipt's shipment is looked for: shipments earlier in this document, then
/// open ones on the ledger (each of those matched once).
struct Receipts<'a> {
    lookup: &'a dyn ShipmentLookup,
    /// `(batch, to, amount, ship record id)` of this import's unreceived shipments.
    own_ships: &'a [(String, Party, Option<u64>, RecordId)],
    /// Shipments on the ledger already matched by an earlier receipt of this import.
    used_remote: &'a mut Vec<RecordId>,
}

/// The fields every event type reads alike, with the one location a record keeps
/// (`bizLocation`, else `readPoint`; both only when they agree).
struct Common {
    time: Option<EventTime>,
    step: Option<String>,
    disp: Option<String>,
    action: Option<String>,
    location: Option<String>,
}

fn common_fields(ev: &mut Ev) -> Common {
    let time = time_of(ev);
    let step = ev.vocab(
        "bizStep",
        "urn:epcglobal:cbv:bizstep:",
        "https://ref.gs1.org/cbv/BizStep-",
    );
    let disp = ev.vocab(
        "disposition",
        "urn:epcglobal:cbv:disp:",
        "https://ref.gs1.org/cbv/Disp-",
    );
    let action = ev.str("action").map(str::to_string);
    let read_point = ev.id_uri("readPoint");
    let biz_location = ev.id_uri("bizLocation");
    if let (Some(r), Some(b)) = (&read_point, &biz_location)
        && r != b
    {
        ev.err(
            "readPoint",
            format!("'{r}' differs from bizLocation '{b}'; a record keeps one location"),
        );
    }
    Common {
        time,
        step,
        disp,
        action,
        location: biz_location.or(read_point),
    }
}

/// The record bodies of one event, by its type; whatever cannot be mapped is reported
/// through `ev` (an event with errors gives no records).
fn map_event(
    ev: &mut Ev,
    opts: &ImportOptions,
    importer: Option<&Party>,
    receipts: &mut Receipts,
) -> Vec<Body> {
    let ty = ev.str("type").unwrap_or_default().to_string();
    let common = common_fields(ev);
    match ty.as_str() {
        "ObjectEvent" => object_event(ev, &common, opts, importer, receipts),
        "AggregationEvent" => aggregation_event(ev, common, opts),
        "TransformationEvent" => transformation_event(ev, common, opts),
        "" => {
            ev.err("type", "required");
            Vec::new()
        }
        other => {
            ev.err(
                "type",
                format!("'{other}' events are not representable (ObjectEvent, AggregationEvent and TransformationEvent are)"),
            );
            Vec::new()
        }
    }
}

// ------------------------------------------------ import: ObjectEvent, by business step

/// What an ObjectEvent carries besides the common fields.
struct Observed {
    els: Vec<(String, Option<Quantity>)>,
    /// The destination party and location.
    to: Option<Party>,
    to_location: Option<String>,
    ilmd: Option<Value>,
    standard: Option<String>,
    report: Option<String>,
    reason: Option<String>,
    shipment: Option<String>,
}

/// An ObjectEvent: reads its fields, refuses those its step cannot carry, then maps it
/// by `(action, bizStep, disposition)` to one record kind.
fn object_event(
    ev: &mut Ev,
    c: &Common,
    opts: &ImportOptions,
    importer: Option<&Party>,
    receipts: &mut Receipts,
) -> Vec<Body> {
    let els = elements(ev, "epcList", "quantityList", false);
    if els.is_empty() {
        ev.err("quantityList", "required: the batches the event is about");
    }
    let sources = ends(ev, "sourceList", "source");
    let dests = ends(ev, "destinationList", "destination");
    let (from, _) = one_party(ev, &sources, "sourceList", opts);
    let (to, to_location) = one_party(ev, &dests, "destinationList", opts);
    let ilmd = ev.take("ilmd").cloned();
    let standard = ev.str("xinlian:standard").map(str::to_string);
    let report = ev.str("xinlian:report").map(str::to_string);
    let reason = ev.str("xinlian:reason").map(str::to_string);
    let shipment = ev.str("xinlian:shipment").map(str::to_string);
    let o = Observed {
        els,
        to,
        to_location,
        ilmd,
        standard,
        report,
        reason,
        shipment,
    };
    let Some(time) = c.time else {
        return Vec::new();
    };
    let step_disp = (c.action.as_deref(), c.step.as_deref(), c.disp.as_deref());
    // Fields only some steps carry: anywhere else they would be dropped.
    let kind_of = match step_disp {
        (_, Some("commissioning"), _) => "commissioning",
        (_, Some("shipping"), _) => "shipping",
        (_, Some("receiving"), _) => "receiving",
        (_, Some("inspecting"), _) => "inspecting",
        (_, _, Some("recalled")) => "recall",
        _ => "other",
    };
    for (field, present, allowed) in [
        ("ilmd", o.ilmd.is_some(), &["commissioning"][..]),
        (
            "xinlian:standard",
            o.standard.is_some(),
            &["inspecting"][..],
        ),
        ("xinlian:report", o.report.is_some(), &["inspecting"][..]),
        ("xinlian:reason", o.reason.is_some(), &["recall"][..]),
        ("xinlian:shipment", o.shipment.is_some(), &["receiving"][..]),
        (
            "sourceList",
            !sources.is_empty(),
            &["shipping", "receiving"][..],
        ),
        (
            "destinationList",
            !dests.is_empty(),
            &["shipping", "receiving"][..],
        ),
    ] {
        if present && !allowed.contains(&kind_of) {
            ev.err(
                field,
                format!("not representable for this event ({kind_of})"),
            );
        }
    }
    if let (Some(from), Some(me), "shipping") = (&from, importer, kind_of)
        && from != me
    {
        ev.err(
            "sourceList",
            format!("the shipper {from} is not the importer {me}: only the holder ships"),
        );
    }
    let loc = &c.location;
    match step_disp {
        (Some("ADD"), Some("commissioning"), None | Some("active")) => {
            commission(ev, &o, loc, time, opts)
        }
        (Some("OBSERVE"), Some("shipping"), None | Some("in_transit")) => ship(ev, &o, loc, time),
        (Some("OBSERVE"), Some("receiving"), None | Some("in_progress")) => {
            receive(ev, &o, loc, time, importer, receipts)
        }
        (Some("OBSERVE"), Some("inspecting"), Some("conformant")) => {
            inspect(ev, &o, loc, time, InspectionResult::Pass)
        }
        (Some("OBSERVE"), Some("inspecting"), Some("non_conformant")) => {
            inspect(ev, &o, loc, time, InspectionResult::Fail)
        }
        (Some("OBSERVE"), step, Some("recalled")) => recall(ev, &o, step.is_some(), time),
        (
            Some("OBSERVE" | "DELETE"),
            Some(s @ ("retail_selling" | "dispensing")),
            None | Some("retail_sold" | "dispensed"),
        ) => {
            let kind = if s == "retail_selling" {
                SaleKind::RetailSold
            } else {
                SaleKind::Dispensed
            };
            sell(ev, &o, loc, time, kind)
        }
        (action, step, disp) => {
            ev.err(
                "bizStep",
                format!(
                    "no record kind for an ObjectEvent with action {action:?}, bizStep {step:?}, disposition {disp:?} (see docs/epcis.md for the ones that are)"
                ),
            );
            Vec::new()
        }
    }
}

/// The event's location, which this step needs (`what` names the field to give).
fn need_loc(ev: &mut Ev, l: &Option<String>, what: &'static str) -> Option<String> {
    if l.is_none() {
        ev.err(what, "required for this step");
    }
    l.clone()
}

/// One body per element, made by `make` from its batch and quantity, which this step
/// needs.
fn per_element(
    ev: &mut Ev,
    els: &[(String, Option<Quantity>)],
    mut make: impl FnMut(&str, Quantity) -> Body,
) -> Vec<Body> {
    let mut bodies = Vec::new();
    for (batch, q) in els {
        match q {
            Some(quantity) => bodies.push(make(batch, quantity.clone())),
            None => ev.err(
                "quantityList",
                "each element needs a quantity for this step",
            ),
        }
    }
    bodies
}

/// `commissioning` (ADD): a new batch per element, its master data in `ilmd`.
fn commission(
    ev: &mut Ev,
    o: &Observed,
    loc: &Option<String>,
    time: EventTime,
    opts: &ImportOptions,
) -> Vec<Body> {
    let Some(origin) = need_loc(ev, loc, "readPoint") else {
        return Vec::new();
    };
    let Some(Value::Object(m)) = &o.ilmd else {
        ev.err("ilmd", "required: the product's name, lot and domain");
        return Vec::new();
    };
    let Some((product, lot, domain)) = product_of(ev, m, "ilmd", opts) else {
        return Vec::new();
    };
    per_element(ev, &o.els, |batch, quantity| {
        Body::Commission(Commission {
            batch: batch.to_string(),
            domain: domain.clone(),
            product: product.clone(),
            lot: lot.clone(),
            quantity,
            origin: origin.clone(),
            time,
        })
    })
}

/// `shipping`: from the read point to the destination party and location.
fn ship(ev: &mut Ev, o: &Observed, loc: &Option<String>, time: EventTime) -> Vec<Body> {
    let from_location = need_loc(ev, loc, "readPoint");
    if o.to.is_none() {
        ev.err(
            "destinationList",
            "required: an owning_party or possessing_party destination, the receiving enterprise",
        );
    }
    let to_location = need_loc(ev, &o.to_location, "destinationList (location)");
    let (Some(to), Some(fl), Some(tl)) = (&o.to, from_location, to_location) else {
        return Vec::new();
    };
    per_element(ev, &o.els, |batch, quantity| {
        Body::Ship(Ship {
            batch: batch.to_string(),
            quantity,
            to: to.clone(),
            from_location: fl.clone(),
            to_location: tl.clone(),
            time,
        })
    })
}

/// `receiving`: each element's shipment, named (`xinlian:shipment`) or matched by
/// batch, receiver and amount.
fn receive(
    ev: &mut Ev,
    o: &Observed,
    loc: &Option<String>,
    time: EventTime,
    importer: Option<&Party>,
    receipts: &mut Receipts,
) -> Vec<Body> {
    let Some(loc) = need_loc(ev, loc, "bizLocation") else {
        return Vec::new();
    };
    let receiver = o.to.clone().or(importer.cloned());
    let mut bodies = Vec::new();
    for (i, (batch, q)) in o.els.iter().enumerate() {
        let shipment = match &o.shipment {
            Some(s) => match s
                .strip_prefix(RECORD_PREFIX)
                .and_then(|h| RecordId::from_hex(h).ok())
            {
                Some(id) => Some(id),
                None => {
                    ev.err("xinlian:shipment", "must be urn:xinlian:record:HEX");
                    None
                }
            },
            None => find_shipment(ev, i, batch, q, receiver.as_ref(), receipts),
        };
        if let Some(shipment) = shipment {
            bodies.push(Body::Receive(Receive {
                shipment,
                location: loc.clone(),
                time,
            }));
        }
    }
    bodies
}

/// `inspecting`: each batch passed or failed against `xinlian:standard`.
fn inspect(
    ev: &mut Ev,
    o: &Observed,
    loc: &Option<String>,
    time: EventTime,
    result: InspectionResult,
) -> Vec<Body> {
    let Some(loc) = need_loc(ev, loc, "readPoint") else {
        return Vec::new();
    };
    let Some(standard) = &o.standard else {
        ev.err("xinlian:standard", "required: the standard tested against");
        return Vec::new();
    };
    let report = match o.report.as_deref().map(crate::genesis::Hash32::from_hex) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => {
            ev.err("xinlian:report", "must be a SHA-256 in hex");
            return Vec::new();
        }
    };
    o.els
        .iter()
        .map(|(batch, _)| {
            Body::Inspect(Inspect {
                batch: batch.clone(),
                result,
                standard: standard.clone(),
                report,
                location: loc.clone(),
                time,
            })
        })
        .collect()
}

/// Disposition `recalled`: each batch, for `xinlian:reason`.
fn recall(ev: &mut Ev, o: &Observed, has_step: bool, time: EventTime) -> Vec<Body> {
    if has_step {
        ev.err("bizStep", "a recall has no business step here");
    }
    let Some(reason) = &o.reason else {
        ev.err("xinlian:reason", "required: why the batch is recalled");
        return Vec::new();
    };
    o.els
        .iter()
        .map(|(batch, _)| {
            Body::Recall(Recall {
                batch: batch.clone(),
                reason: reason.clone(),
                time,
            })
        })
        .collect()
}

/// `retail_selling` or `dispensing`: a sale of each element's quantity.
fn sell(
    ev: &mut Ev,
    o: &Observed,
    loc: &Option<String>,
    time: EventTime,
    kind: SaleKind,
) -> Vec<Body> {
    let Some(loc) = need_loc(ev, loc, "bizLocation") else {
        return Vec::new();
    };
    per_element(ev, &o.els, |batch, quantity| {
        Body::Sell(Sell {
            batch: batch.to_string(),
            quantity,
            kind,
            location: loc.clone(),
            time,
        })
    })
}

// ------------------------------------- import: AggregationEvent and TransformationEvent

/// Elements read with their quantities required (`elements(.., true)`) as amounts.
fn amounts(els: Vec<(String, Option<Quantity>)>) -> Vec<BatchAmount> {
    els.into_iter()
        .map(|(batch, q)| BatchAmount {
            batch,
            quantity: q.expect("required above"),
        })
        .collect()
}

/// An AggregationEvent is packing: a transformation of the children into a new batch
/// of one, the container.
fn aggregation_event(ev: &mut Ev, c: Common, opts: &ImportOptions) -> Vec<Body> {
    let parent = ev.str("parentID").map(str::to_string);
    let children = elements(ev, "childEPCs", "childQuantityList", true);
    let domain = ev.str("xinlian:domain").map(str::to_string);
    let product = ev.str("xinlian:productName").map(str::to_string);
    if c.action.as_deref() != Some("ADD") {
        ev.err(
            "action",
            "only packing (ADD) is representable: it makes a new batch of the children; an OBSERVE restates containment the ledger does not keep, and a DELETE (unpacking) cannot re-create batches consumed by packing",
        );
        return Vec::new();
    }
    if !matches!(c.step.as_deref(), None | Some("packing")) {
        ev.err("bizStep", "an aggregation is imported as packing");
    }
    if !matches!(c.disp.as_deref(), None | Some("in_progress" | "active")) {
        ev.err("disposition", "not representable for packing");
    }
    let Some(parent) = parent else {
        ev.err(
            "parentID",
            "required: the container, which becomes a batch of one",
        );
        return Vec::new();
    };
    let Some(loc) = c.location else {
        ev.err("readPoint", "required: where the packing happened");
        return Vec::new();
    };
    let Some(domain) = domain.or(opts.domain.clone()) else {
        ev.err(
            "xinlian:domain",
            "required: the trace domain, or give --domain",
        );
        return Vec::new();
    };
    let (Some(time), false) = (c.time, children.is_empty()) else {
        if children.is_empty() {
            ev.err("childQuantityList", "required: what was packed");
        }
        return Vec::new();
    };
    vec![Body::Transform(Transform {
        inputs: amounts(children),
        outputs: vec![NewBatch {
            batch: parent.clone(),
            domain,
            product: Product {
                name: product.unwrap_or_else(|| format!("container {parent}")),
                gtin: None,
                drug_code: None,
            },
            lot: parent,
            quantity: Quantity::clear(1, PIECE),
        }],
        location: loc,
        time,
    })]
}

/// A TransformationEvent: inputs used, outputs made as new batches with master data
/// from `ilmd` (all alike) or `xinlian:outputs` (one each).
fn transformation_event(ev: &mut Ev, c: Common, opts: &ImportOptions) -> Vec<Body> {
    let inputs = elements(ev, "inputEPCList", "inputQuantityList", true);
    let outputs = elements(ev, "outputEPCList", "outputQuantityList", true);
    let ilmd = ev.take("ilmd");
    let per_output = ev.take("xinlian:outputs");
    if !matches!(
        c.step.as_deref(),
        None | Some("commissioning" | "transforming" | "packing" | "creating_class_instance")
    ) {
        ev.err("bizStep", "not representable for a transformation");
    }
    if !matches!(c.disp.as_deref(), None | Some("in_progress" | "active")) {
        ev.err("disposition", "not representable for a transformation");
    }
    if c.action.is_some() {
        ev.err("action", "a TransformationEvent has no action");
    }
    if inputs.is_empty() {
        ev.err("inputQuantityList", "required: what was used");
    }
    if outputs.is_empty() {
        ev.err("outputQuantityList", "required: what was made");
    }
    let Some(loc) = c.location else {
        ev.err("readPoint", "required: where it was made");
        return Vec::new();
    };
    let errors_before = ev.errors.len();
    let products = output_products(ev, ilmd, per_output, &outputs, opts);
    let Some(time) = c.time else {
        return Vec::new();
    };
    let mut new = Vec::new();
    for (b, q) in outputs {
        match products.get(&b) {
            Some((product, lot, domain)) => new.push(NewBatch {
                batch: b,
                domain: domain.clone(),
                product: product.clone(),
                lot: lot.clone(),
                quantity: q.expect("required above"),
            }),
            // Once the master data itself is in error, each output lacking it says nothing new.
            None if ev.errors.len() > errors_before => {}
            None => ev.err("xinlian:outputs", format!("no master data for output {b}")),
        }
    }
    if inputs.is_empty() || new.is_empty() {
        return Vec::new();
    }
    vec![Body::Transform(Transform {
        inputs: amounts(inputs),
        outputs: new,
        location: loc,
        time,
    })]
}

/// The master data `(product, lot, domain)` of each output batch: one `ilmd` for all of
/// `outputs`, or `xinlian:outputs` naming each by its `epcClass`.
fn output_products(
    ev: &mut Ev,
    ilmd: Option<&Value>,
    per_output: Option<&Value>,
    outputs: &[(String, Option<Quantity>)],
    opts: &ImportOptions,
) -> BTreeMap<String, (Product, String, String)> {
    let mut products = BTreeMap::new();
    match (ilmd, per_output) {
        (Some(Value::Object(m)), None) => {
            if let Some(p) = product_of(ev, m, "ilmd", opts) {
                for (b, _) in outputs {
                    products.insert(b.clone(), p.clone());
                }
            }
        }
        (None, Some(Value::Array(list))) => {
            for (i, o) in list.iter().enumerate() {
                let Some(m) = o.as_object() else {
                    ev.err(format!("xinlian:outputs[{i}]"), "must be an object");
                    continue;
                };
                let b = m.get("epcClass").and_then(Value::as_str).map(class_batch);
                if let (Some(b), Some(p)) =
                    (b, product_of(ev, m, &format!("xinlian:outputs[{i}]"), opts))
                {
                    products.insert(b, p);
                }
            }
        }
        _ => ev.err(
            "ilmd",
            "required: the outputs' product name, lot and domain (ilmd, or xinlian:outputs per output)",
        ),
    }
    products
}

fn find_shipment(
    ev: &mut Ev,
    i: usize,
    batch: &str,
    q: &Option<Quantity>,
    receiver: Option<&Party>,
    receipts: &mut Receipts,
) -> Option<RecordId> {
    let Some(q) = q else {
        ev.err(
            format!("quantityList[{i}].quantity"),
            "required to match the receipt to its shipment",
        );
        return None;
    };
    let Some(receiver) = receiver else {
        ev.err(
            "destinationList",
            "required: the receiving enterprise (owning_party), to match the shipment",
        );
        return None;
    };
    if let Some(s) = receipts
        .own_ships
        .iter()
        .find(|(b, to, a, _)| b == batch && to == receiver && *a == q.amount.value())
    {
        return Some(s.3);
    }
    match receipts.lookup.open_shipments(batch) {
        Err(e) => {
            ev.err(
                format!("quantityList[{i}]"),
                format!("cannot look up shipments: {e}"),
            );
            None
        }
        Ok(open) => {
            let found = open.iter().find(|s| {
                &s.to == receiver
                    && s.amount.is_some()
                    && s.amount == q.amount.value()
                    && !receipts.used_remote.contains(&s.ship)
            });
            match found {
                Some(s) => {
                    receipts.used_remote.push(s.ship);
                    Some(s.ship)
                }
                None => {
                    ev.err(
                        format!("quantityList[{i}]"),
                        format!(
                            "no open shipment of {} {} of batch {batch} to {receiver} on the ledger or earlier in this document",
                            q.amount, q.uom
                        ),
                    );
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::offset_minutes;

    #[test]
    fn a_time_zone_offset_is_exactly_sign_hours_colon_minutes() {
        for (text, minutes) in [
            ("+08:00", 480),
            ("-03:30", -210),
            ("+14:00", 840),
            ("-00:00", 0),
        ] {
            assert_eq!(offset_minutes(text), Some(minutes), "{text}");
        }
        // The fuzz target's overflow, signs and signs inside parts, wrong shapes.
        for text in [
            "+999:9", "+-5:00", "+05:-1", "+5:000", "+15:00", "+14:30", "+05:60", "08:00", "+08:0",
            "+08:000", "+0８:00", "", "+", "-12", "+ 8:00",
        ] {
            assert_eq!(offset_minutes(text), None, "{text:?}");
        }
    }
}
