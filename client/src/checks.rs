//! Stateless validation: everything about a record that can be decided from its bytes
//! and the chain id alone — bounds, identifiers, chain binding, proofs of possession of
//! the keys a record binds, signature. The same checks run in the node's mempool, in
//! block execution and in any verifier.

use std::collections::BTreeSet;

use xinlian_genesis::keys::check_bindable;
use xinlian_genesis::{Hash32, PublicKey};

use crate::crypto::{KeyHolder, Signature, SignatureError, verify_possession};
use crate::ids::{IdError, Uscc, check_drug_code, check_gtin};
use crate::party::Party;
use crate::record::*;

/// Names, matters, reasons, standards.
pub const TEXT_BYTES_MAX: usize = 256;
/// Free-text commitment content (longer documents go by hash).
pub const CONTENT_BYTES_MAX: usize = 4096;
/// Batch ids, lots, location ids, document numbers.
pub const ID_BYTES_MAX: usize = 128;
/// Lists of references: basis, evidence, agencies.
pub const REFS_MAX: usize = 32;
/// Inputs or outputs of one transform.
pub const TRANSFORM_SIDES_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatelessError {
    #[error("record is for chain {got}, this is chain {expected}")]
    WrongChain { expected: Hash32, got: Hash32 },
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("{field}: {source}")]
    Identifier {
        field: &'static str,
        source: IdError,
    },
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The record binds a key without a valid proof that the holder it names holds it.
    /// Sensitive content in clear: it goes off the ledger, sealed.
    #[error(
        "{field}: text is not written on the ledger in clear; seal it (a salted commitment) and send the text as private data (docs/privacy.md)"
    )]
    InClear { field: &'static str },
    #[error(
        "{field}: not a proof of possession of key {key} for {holder} on this chain (sign it with that key: `xinlian key possession`)"
    )]
    Possession {
        field: &'static str,
        key: PublicKey,
        holder: String,
    },
}

type R = Result<(), StatelessError>;

fn field(field: &'static str, reason: impl Into<String>) -> StatelessError {
    StatelessError::Field {
        field,
        reason: reason.into(),
    }
}

fn text(name: &'static str, s: &str) -> R {
    if s.trim().is_empty() || s.len() > TEXT_BYTES_MAX {
        return Err(field(
            name,
            format!(
                "must be non-blank and at most {TEXT_BYTES_MAX} bytes (is {})",
                s.len()
            ),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(field(name, "contains control characters"));
    }
    Ok(())
}

/// Ids are printable ASCII without spaces, so they survive URLs, CSV and EPCIS URNs.
fn ident(name: &'static str, s: &str) -> R {
    if s.is_empty() || s.len() > ID_BYTES_MAX || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(field(
            name,
            format!("must be 1 to {ID_BYTES_MAX} printable ASCII characters without spaces: '{s}'"),
        ));
    }
    Ok(())
}

fn document_number(name: &'static str, s: &str) -> R {
    // Chinese document numbers (沪市监罚〔2026〕12号) are not ASCII: bounded text instead.
    if s.len() > ID_BYTES_MAX {
        return Err(field(name, format!("at most {ID_BYTES_MAX} bytes")));
    }
    text(name, s)
}

fn uscc(name: &'static str, u: &Uscc) -> R {
    u.check_format()
        .map_err(|source| StatelessError::Identifier {
            field: name,
            source,
        })
}

fn domain(name: &'static str, d: &str) -> R {
    if d.is_empty()
        || d.len() > 32
        || !d
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(field(
            name,
            format!("domain '{d}' must be 1 to 32 characters of a-z, 0-9, '-'"),
        ));
    }
    Ok(())
}

fn refs<T>(name: &'static str, v: &[T], min: usize) -> R {
    if v.len() < min || v.len() > REFS_MAX {
        return Err(field(
            name,
            format!("needs {min} to {REFS_MAX} entries (has {})", v.len()),
        ));
    }
    Ok(())
}

fn unique<T: Ord>(name: &'static str, items: impl IntoIterator<Item = T>) -> R {
    let mut seen = BTreeSet::new();
    if !items.into_iter().all(|x| seen.insert(x)) {
        return Err(field(name, "lists the same entry twice"));
    }
    Ok(())
}

/// Content that must be sealed, not merely kept off the ledger: not even a document's
/// unsalted hash (which anyone could test guesses against) goes on the ledger.
fn sealed(name: &'static str, c: &Content, why: &str) -> R {
    match c {
        Content::Sealed(_) => Ok(()),
        Content::Text(_) => Err(StatelessError::InClear { field: name }),
        Content::Document(_) => Err(field(name, format!("must be sealed: {why}"))),
    }
}

fn content(name: &'static str, c: &Content) -> R {
    match c {
        Content::Text(_) => Err(StatelessError::InClear { field: name }),
        Content::Document(_) | Content::Sealed(_) => Ok(()),
    }
}

fn quantity(name: &'static str, q: &Quantity) -> R {
    // A sealed amount is checked by the validators, who are given it opened.
    if q.amount.value() == Some(0) {
        return Err(field(name, "amount must be positive"));
    }
    if q.uom.is_empty()
        || q.uom.len() > 3
        || !q
            .uom
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(field(
            name,
            format!(
                "unit '{}' is not a UNECE Rec 20 code (1-3 of A-Z, 0-9)",
                q.uom
            ),
        ));
    }
    Ok(())
}

fn product(p: &Product) -> R {
    text("product.name", &p.name)?;
    if let Some(g) = &p.gtin {
        check_gtin(g).map_err(|source| StatelessError::Identifier {
            field: "product.gtin",
            source,
        })?;
    }
    if let Some(d) = &p.drug_code {
        check_drug_code(d).map_err(|source| StatelessError::Identifier {
            field: "product.drug_code",
            source,
        })?;
    }
    Ok(())
}

fn event_time(name: &'static str, t: &crate::when::EventTime) -> R {
    if !t.is_plausible() {
        return Err(field(
            name,
            "time or offset out of range (offset within ±14 h)",
        ));
    }
    Ok(())
}

fn date(name: &'static str, d: crate::when::Date) -> R {
    if !d.is_plausible() {
        return Err(field(name, "date outside the years 1970 to 9999"));
    }
    Ok(())
}

fn key(name: &'static str, k: &xinlian_genesis::PublicKey) -> R {
    check_bindable(k).map_err(|e| field(name, e.to_string()))
}

/// Field rules of every record kind.
pub fn check_body(body: &Body) -> R {
    match body {
        Body::RegisterEntity(b) => {
            text("name", &b.name)?;
            key("key", &b.key)?;
            if let Some(operator) = &b.operator {
                sealed("operator", operator, "it is personal data")?;
            }
            match &b.check_override {
                None => b.uscc.check().map_err(|source| StatelessError::Identifier {
                    field: "uscc",
                    source,
                }),
                Some(reason) => {
                    text("check_override", reason)?;
                    uscc("uscc", &b.uscc)
                }
            }
        }
        Body::RotateEntityKey(b) => {
            uscc("uscc", &b.uscc)?;
            key("new_key", &b.new_key)
        }
        Body::RevokeEntityKey(b) => {
            uscc("uscc", &b.uscc)?;
            text("reason", &b.reason)
        }
        Body::Commitment(b) => check_commitment(b),
        Body::Outcome(b) => {
            text("method", &b.method)?;
            date("date", b.date)?;
            document_number("document", &b.document)
        }
        Body::ListMeasure(b) => {
            uscc("subject", &b.subject)?;
            domain("domain", &b.domain)?;
            text("reason", &b.reason)?;
            date("date", b.date)?;
            let min = usize::from(b.action == ListAction::Add);
            refs("basis", &b.basis, min)?;
            unique("basis", &b.basis)
        }
        Body::RepairApplication(b) => {
            content("pledge", &b.pledge)?;
            date("date", b.date)?;
            refs("evidence", &b.evidence, 0)
        }
        Body::RepairDecision(b) => {
            date("date", b.date)?;
            text("reason", &b.reason)
        }
        Body::Erase(b) => {
            date("date", b.date)?;
            document_number("document", &b.document)?;
            text("reason", &b.reason)
        }
        Body::Commission(b) => {
            ident("batch", &b.batch)?;
            domain("domain", &b.domain)?;
            product(&b.product)?;
            ident("lot", &b.lot)?;
            quantity("quantity", &b.quantity)?;
            ident("origin", &b.origin)?;
            event_time("time", &b.time)
        }
        Body::Ship(b) => {
            ident("batch", &b.batch)?;
            quantity("quantity", &b.quantity)?;
            party("to", &b.to)?;
            ident("from_location", &b.from_location)?;
            ident("to_location", &b.to_location)?;
            event_time("time", &b.time)
        }
        Body::Receive(b) => {
            ident("location", &b.location)?;
            event_time("time", &b.time)
        }
        Body::Transform(b) => check_transform(b),
        Body::Inspect(b) => {
            ident("batch", &b.batch)?;
            text("standard", &b.standard)?;
            ident("location", &b.location)?;
            event_time("time", &b.time)
        }
        Body::Recall(b) => {
            ident("batch", &b.batch)?;
            text("reason", &b.reason)?;
            event_time("time", &b.time)
        }
        Body::Sell(b) => {
            ident("batch", &b.batch)?;
            quantity("quantity", &b.quantity)?;
            ident("location", &b.location)?;
            event_time("time", &b.time)
        }
        Body::Propose(b) => check_proposal(b),
        Body::Vote(_) => Ok(()),
        Body::BindCustodyKey(b) => {
            domain("domain", &b.domain)?;
            key("key", &b.key)?;
            // Which enterprise hides behind the key is what the binding keeps secret.
            sealed(
                "enterprise",
                &b.enterprise,
                "it names the custody key's holder",
            )
        }
        Body::RevokeCustodyKey(b) => {
            key("key", &b.key)?;
            text("reason", &b.reason)
        }
    }
}

fn party(name: &'static str, p: &Party) -> R {
    match p {
        Party::Enterprise(u) => uscc(name, u),
        Party::Custody(k) => key(name, k),
    }
}

fn check_commitment(b: &Commitment) -> R {
    uscc("subject", &b.subject)?;
    text("matter", &b.matter)?;
    text("legal_basis", &b.legal_basis)?;
    text("template_version", &b.template_version)?;
    text("accepting_agency", &b.accepting_agency)?;
    domain("domain", &b.domain)?;
    content("content", &b.content)?;
    date("date", b.date)?;
    date("deadline", b.deadline)?;
    if b.deadline < b.date {
        return Err(field(
            "deadline",
            format!("{} is before the commitment date {}", b.deadline, b.date),
        ));
    }
    if let Disclosure::Agencies(a) = &b.disclosure {
        refs("disclosure.agencies", a, 1)?;
        unique("disclosure.agencies", a)?;
    }
    Ok(())
}

fn check_transform(b: &Transform) -> R {
    for (name, n) in [("inputs", b.inputs.len()), ("outputs", b.outputs.len())] {
        if n == 0 || n > TRANSFORM_SIDES_MAX {
            return Err(field(
                name,
                format!("needs 1 to {TRANSFORM_SIDES_MAX} entries (has {n})"),
            ));
        }
    }
    for i in &b.inputs {
        ident("inputs.batch", &i.batch)?;
        quantity("inputs.quantity", &i.quantity)?;
    }
    for o in &b.outputs {
        ident("outputs.batch", &o.batch)?;
        domain("outputs.domain", &o.domain)?;
        product(&o.product)?;
        ident("outputs.lot", &o.lot)?;
        quantity("outputs.quantity", &o.quantity)?;
    }
    unique("inputs", b.inputs.iter().map(|i| &i.batch))?;
    unique("outputs", b.outputs.iter().map(|o| &o.batch))?;
    if b.outputs
        .iter()
        .any(|o| b.inputs.iter().any(|i| i.batch == o.batch))
    {
        return Err(field("outputs", "an output batch cannot also be an input"));
    }
    ident("location", &b.location)?;
    event_time("time", &b.time)
}

fn check_proposal(b: &Proposal) -> R {
    text("reason", &b.reason)?;
    if b.effective <= b.deadline {
        return Err(field(
            "effective",
            format!(
                "height {} must come after the voting deadline {}",
                b.effective, b.deadline
            ),
        ));
    }
    match &b.change {
        Change::AddMember(m) => {
            text("change.member.name", &m.name)?;
            key("change.member.signing_key", &m.signing_key)?;
            m.node_key
                .as_ref()
                .map_or(Ok(()), |k| key("change.member.node_key", k))
        }
        Change::RemoveMember { member } | Change::SetRoles { member, .. } => {
            ident("change.member", member)
        }
        Change::RotateNodeKey { member, key: k } | Change::RotateSigningKey { member, key: k } => {
            ident("change.member", member)?;
            key("change.key", k)
        }
        Change::SetPolicy(_) => Ok(()),
    }
}

fn possession(
    field: &'static str,
    chain: &Hash32,
    key: &PublicKey,
    holder: KeyHolder<'_>,
    proof: &Signature,
) -> R {
    verify_possession(chain, key, holder, proof).map_err(|_| StatelessError::Possession {
        field,
        key: *key,
        holder: holder.to_string(),
    })
}

/// Every key a record binds — an enterprise's, or one a governance change gives a
/// member — comes with its holder's proof of possession for this chain, so that no
/// one binds a key they do not hold (another's, to veto or to confuse who signed).
pub fn check_possession(body: &Body, chain: &Hash32) -> R {
    match body {
        Body::RegisterEntity(b) => possession(
            "possession",
            chain,
            &b.key,
            KeyHolder::Enterprise(b.uscc.as_str()),
            &b.possession,
        ),
        Body::RotateEntityKey(b) => possession(
            "possession",
            chain,
            &b.new_key,
            KeyHolder::Enterprise(b.uscc.as_str()),
            &b.possession,
        ),
        Body::BindCustodyKey(b) => possession(
            "possession",
            chain,
            &b.key,
            KeyHolder::Custody(&b.domain),
            &b.possession,
        ),
        Body::Propose(p) => {
            let named = p.change.named_keys();
            if named.len() != p.possession.len() {
                return Err(field(
                    "possession",
                    format!(
                        "the change names {} key(s); give one proof of possession for each, in order (has {})",
                        named.len(),
                        p.possession.len()
                    ),
                ));
            }
            for ((key, member), proof) in named.iter().zip(&p.possession) {
                possession("possession", chain, key, KeyHolder::Member(member), proof)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Chain binding, field rules and proofs of possession; the record's signature is
/// checked separately so that block execution can verify a whole block's signatures
/// in one batch.
pub fn check_unsigned(record: &SignedRecord, chain: &Hash32) -> R {
    if record.envelope.chain != *chain {
        return Err(StatelessError::WrongChain {
            expected: *chain,
            got: record.envelope.chain,
        });
    }
    check_body(&record.envelope.body)?;
    check_possession(&record.envelope.body, chain)
}

/// Everything stateless, signature last (the most expensive check).
pub fn check_stateless(record: &EncodedRecord, chain: &Hash32) -> R {
    check_unsigned(record.record(), chain)?;
    record.verify_signature()?;
    Ok(())
}

/// [`check_stateless`] of each of `records`, in order, with the signatures checked in
/// one batch verification (a failed batch is searched for the bad ones).
pub fn check_stateless_batch(records: &[EncodedRecord], chain: &Hash32) -> Vec<R> {
    use crate::crypto::{Domain, verify_batch};
    let bad = verify_batch(records.iter().map(|r| {
        (
            &r.record().envelope.signer,
            Domain::Record.message(r.envelope_bytes()),
            &r.record().signature,
        )
    }))
    .err()
    .unwrap_or_default();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            check_unsigned(r.record(), chain)?;
            if bad.binary_search(&i).is_ok() {
                let key = r.record().envelope.signer;
                return Err(StatelessError::Signature(SignatureError::Invalid(key)));
            }
            Ok(())
        })
        .collect()
}
