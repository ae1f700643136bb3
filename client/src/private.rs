//! Private data (docs/privacy.md § Private data): the text of a commitment's content, a
//! repair pledge or a registration's operator (a natural person's name and identity
//! number) is not written on the ledger. The record carries a salted SHA-256
//! commitment to it ([`Content::Sealed`]), which validators need not open; the text and
//! its salt travel apart, as [`PrivateData`], only between the nodes of the members
//! entitled to the record, and can be purged while the commitment — and so the proof of
//! what was recorded — stays. Whoever holds the text checks it against the record it
//! verified ([`check`]): the node that serves it is not trusted either.

use rand_core::RngCore as _;
use serde::{Deserialize, Serialize};
use xinlian_genesis::Hash32;

use crate::checks::CONTENT_BYTES_MAX;
use crate::record::{Body, Content, RecordId, SignedRecord};

/// Longest private text (a larger document goes by hash: [`Content::Document`]).
pub const TEXT_BYTES_MAX: usize = CONTENT_BYTES_MAX;
/// Most private fields one record has.
pub const FIELDS_MAX: usize = 4;
/// Largest private data a node takes in one message or request.
pub const DATA_BYTES_MAX: usize = 4 * (TEXT_BYTES_MAX + 256) + 128;

/// One private field: its name in the record, its salt and its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateField {
    /// `content` (a commitment's), `pledge` (a repair application's), `operator` (a
    /// registration's) or `enterprise` (a custody key binding's).
    pub field: String,
    pub salt: Hash32,
    pub text: String,
}

/// A record's private fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateData {
    pub record: RecordId,
    pub fields: Vec<PrivateField>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateError {
    #[error("the private data is for record {got}, not {expected}")]
    WrongRecord { expected: RecordId, got: RecordId },
    #[error("record {0} has no sealed field")]
    NothingSealed(RecordId),
    #[error("field {0} is not a sealed field of the record")]
    NotSealed(String),
    #[error("field {0} does not match the record's commitment")]
    Mismatch(String),
    #[error("field {0} is given twice")]
    Duplicate(String),
    #[error("sealed field {0} has no private text here")]
    Missing(String),
    #[error("{0}: private text must be non-blank and at most {TEXT_BYTES_MAX} bytes")]
    BadText(String),
}

/// The commitment the ledger holds for `text` in `field`: SHA-256 over a domain tag,
/// the field's name, a 32-byte random salt and the text. Without the salt, guessing
/// the text confirms nothing.
pub fn commitment(field: &str, salt: &Hash32, text: &str) -> Hash32 {
    xinlian_genesis::canonical::tagged_hash("xinlian/private-field/v1", &(field, salt, text))
}

/// The sealed fields of `body`: (field name, commitment).
pub fn sealed_fields(body: &Body) -> Vec<(&'static str, Hash32)> {
    let one = |name: &'static str, c: &Content| match c {
        Content::Sealed(h) => vec![(name, *h)],
        Content::Text(_) | Content::Document(_) => Vec::new(),
    };
    match body {
        Body::Commitment(c) => one("content", &c.content),
        Body::RepairApplication(a) => one("pledge", &a.pledge),
        Body::RegisterEntity(r) => r
            .operator
            .as_ref()
            .map_or_else(Vec::new, |c| one("operator", c)),
        Body::BindCustodyKey(b) => one("enterprise", &b.enterprise),
        _ => Vec::new(),
    }
}

fn text_slot(body: &mut Body) -> Option<(&'static str, &mut Content)> {
    match body {
        Body::Commitment(c) => Some(("content", &mut c.content)),
        Body::RepairApplication(a) => Some(("pledge", &mut a.pledge)),
        Body::RegisterEntity(r) => r.operator.as_mut().map(|c| ("operator", c)),
        Body::BindCustodyKey(b) => Some(("enterprise", &mut b.enterprise)),
        _ => None,
    }
}

/// Replaces the text in clear in `body`, if any, by its commitment under a fresh random
/// salt, and returns the private fields to send once the record is signed
/// ([`PrivateData`] for its id).
pub fn seal(body: &mut Body) -> Result<Vec<PrivateField>, PrivateError> {
    let Some((name, slot)) = text_slot(body) else {
        return Ok(Vec::new());
    };
    let Content::Text(text) = slot else {
        return Ok(Vec::new());
    };
    if text.trim().is_empty() || text.len() > TEXT_BYTES_MAX {
        return Err(PrivateError::BadText(name.into()));
    }
    let mut salt = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut salt);
    let salt = Hash32(salt);
    let field = PrivateField {
        field: name.into(),
        salt,
        text: std::mem::take(text),
    };
    *slot = Content::Sealed(commitment(name, &salt, &field.text));
    Ok(vec![field])
}

/// Checks `data` is exactly the private text of `record`: each field one of its sealed
/// fields, matching its commitment, and every sealed field there once.
pub fn check(record: &SignedRecord, data: &PrivateData) -> Result<(), PrivateError> {
    let id = record.id();
    if data.record != id {
        return Err(PrivateError::WrongRecord {
            expected: id,
            got: data.record,
        });
    }
    let sealed = sealed_fields(&record.envelope.body);
    if sealed.is_empty() {
        return Err(PrivateError::NothingSealed(id));
    }
    for (i, f) in data.fields.iter().enumerate() {
        if data.fields[..i].iter().any(|g| g.field == f.field) {
            return Err(PrivateError::Duplicate(f.field.clone()));
        }
        if f.text.len() > TEXT_BYTES_MAX || f.text.trim().is_empty() {
            return Err(PrivateError::BadText(f.field.clone()));
        }
        let Some((_, c)) = sealed.iter().find(|(n, _)| *n == f.field) else {
            return Err(PrivateError::NotSealed(f.field.clone()));
        };
        if commitment(&f.field, &f.salt, &f.text) != *c {
            return Err(PrivateError::Mismatch(f.field.clone()));
        }
    }
    if let Some((n, _)) = sealed
        .iter()
        .find(|(n, _)| !data.fields.iter().any(|f| f.field == *n))
    {
        return Err(PrivateError::Missing((*n).into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Commitment, CommitmentKind, Disclosure, Envelope};
    use crate::when::Date;

    fn body(content: Content) -> Body {
        Body::Commitment(Commitment {
            subject: crate::ids::Uscc("91310000MA1FL8TQ2W".into()),
            kind: CommitmentKind::VoluntaryPublic,
            matter: "m".into(),
            legal_basis: "b".into(),
            template_version: "v1".into(),
            accepting_agency: "a".into(),
            domain: "market".into(),
            content,
            date: Date(20_000),
            deadline: Date(20_010),
            disclosure: Disclosure::Consortium,
            publication_consent: false,
        })
    }

    fn signed(body: Body) -> SignedRecord {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        Envelope {
            chain: Hash32([1; 32]),
            signer: xinlian_genesis::PublicKey(key.verifying_key().to_bytes()),
            nonce: 1,
            body,
        }
        .sign(&key)
    }

    #[test]
    fn sealed_text_checks_against_its_record_and_nothing_else_does() {
        let mut b = body(Content::Text("所提交材料真实有效".into()));
        let fields = seal(&mut b).unwrap();
        assert!(matches!(&b, Body::Commitment(c) if matches!(c.content, Content::Sealed(_))));
        let rec = signed(b);
        let data = PrivateData {
            record: rec.id(),
            fields: fields.clone(),
        };
        check(&rec, &data).unwrap();
        let mut other = data.clone();
        other.fields[0].text.push('!');
        assert_eq!(
            check(&rec, &other),
            Err(PrivateError::Mismatch("content".into()))
        );
        other = data.clone();
        other.fields[0].salt.0[0] ^= 1;
        assert_eq!(
            check(&rec, &other),
            Err(PrivateError::Mismatch("content".into()))
        );
        other = data.clone();
        other.fields[0].field = "pledge".into();
        assert_eq!(
            check(&rec, &other),
            Err(PrivateError::NotSealed("pledge".into()))
        );
        other = data.clone();
        other.fields.push(data.fields[0].clone());
        assert_eq!(
            check(&rec, &other),
            Err(PrivateError::Duplicate("content".into()))
        );
        other.fields.clear();
        assert_eq!(
            check(&rec, &other),
            Err(PrivateError::Missing("content".into()))
        );
        other = data.clone();
        other.record = RecordId([0; 32]);
        assert!(matches!(
            check(&rec, &other),
            Err(PrivateError::WrongRecord { .. })
        ));
        // Two seals of one text differ: the salt is fresh.
        let mut again = body(Content::Text("所提交材料真实有效".into()));
        seal(&mut again).unwrap();
        assert_ne!(signed(again).envelope.body, rec.envelope.body);
    }

    #[test]
    fn blank_or_long_text_is_refused_and_other_content_is_left_alone() {
        assert!(seal(&mut body(Content::Text(" ".into()))).is_err());
        assert!(seal(&mut body(Content::Text("x".repeat(TEXT_BYTES_MAX + 1)))).is_err());
        let mut doc = body(Content::Document(Hash32([3; 32])));
        assert!(seal(&mut doc).unwrap().is_empty());
        assert_eq!(doc, body(Content::Document(Hash32([3; 32]))));
    }

    #[test]
    fn a_registrations_operator_is_sealed_under_its_own_field_name() {
        let registration = |operator| {
            Body::RegisterEntity(crate::record::RegisterEntity {
                uscc: crate::ids::Uscc("92310000MA1FL8TQ2W".into()),
                name: "个体 noodle shop".into(),
                operator,
                key: xinlian_genesis::PublicKey([5; 32]),
                check_override: None,
                possession: crate::crypto::Signature([0; 64]),
            })
        };
        let mut b = registration(Some(Content::Text("王小明 110101199003070000".into())));
        let fields = seal(&mut b).unwrap();
        assert_eq!(fields[0].field, "operator");
        let rec = signed(b);
        let data = PrivateData {
            record: rec.id(),
            fields,
        };
        check(&rec, &data).unwrap();
        assert_eq!(sealed_fields(&rec.envelope.body)[0].0, "operator");
        // A commitment's field name does not open it: the name is in the commitment.
        let mut renamed = data.clone();
        renamed.fields[0].field = "content".into();
        assert_eq!(
            check(&rec, &renamed),
            Err(PrivateError::NotSealed("content".into()))
        );
        // No operator, nothing sealed.
        let mut none = registration(None);
        assert!(seal(&mut none).unwrap().is_empty());
        assert!(sealed_fields(&none).is_empty());
    }
}
