//! Commercial confidentiality in traceability (docs/privacy.md § Trace events): the
//! amount of a trace event in a domain whose policy hides quantities is on the ledger
//! only as a salted SHA-256 commitment. Validators still check every balance, because
//! the record travels between members' nodes with its opening (the salt and the
//! amount, [`Amount::Opened`]); the record's id, its signature and its Merkle leaf
//! cover the commitment only ([`Amount::Sealed`]), so the public form — openings
//! stripped — verifies from genesis exactly as the full one does, and a reader given
//! the full form checks each amount against the commitment by recomputing it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xinlian_genesis::{Hash32, TraceField, TracePolicy};

use crate::record::Body;

/// An event's amount: in clear, opened (the commitment's salt and the amount, as
/// members' nodes hold it) or sealed (the commitment alone, as the public sees it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Clear(u64),
    Opened { salt: Hash32, value: u64 },
    Sealed(Hash32),
}

impl Amount {
    /// The amount, unless only its commitment is here.
    pub fn value(&self) -> Option<u64> {
        match *self {
            Amount::Clear(v) | Amount::Opened { value: v, .. } => Some(v),
            Amount::Sealed(_) => None,
        }
    }

    /// The amount if the ledger holds it in clear.
    pub fn clear(&self) -> Option<u64> {
        match *self {
            Amount::Clear(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the amount is here: in clear or opened.
    pub fn is_known(&self) -> bool {
        self.value().is_some()
    }

    /// As the ledger holds it: an opening replaced by its commitment.
    pub fn sealed(&self) -> Amount {
        match *self {
            Amount::Opened { salt, value } => Amount::Sealed(commitment(&salt, value)),
            other => other,
        }
    }

    /// `value` under a fresh random salt, for a record about to be signed.
    pub fn hide(value: u64) -> Amount {
        use rand_core::RngCore as _;
        let mut salt = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut salt);
        Amount::Opened {
            salt: Hash32(salt),
            value,
        }
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Clear(v) => write!(f, "{v}"),
            Amount::Opened { value, .. } => write!(f, "{value} (opened)"),
            Amount::Sealed(h) => write!(f, "sealed {h}"),
        }
    }
}

/// The amount, or `hidden` where only its commitment is here.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("(hidden)"),
        }
    }
}

impl From<u64> for Amount {
    fn from(v: u64) -> Amount {
        Amount::Clear(v)
    }
}

/// Opens every amount in clear in `body` whose batch's domain `policy` hides, under a
/// fresh salt each: what a client does before signing, so that the ledger keeps only
/// commitments and nodes accept the record (`amount_form` otherwise). A commission or
/// transform output names its domain; for a batch already on the ledger
/// `domain_of(batch)` does (`None`: left as it is, and the node says what it wants).
pub fn open_per_policy(
    body: &mut Body,
    policy: &TracePolicy,
    domain_of: impl Fn(&str) -> Option<String>,
) {
    let hides = |domain: &str| policy.hides(domain, TraceField::Quantity);
    let open = |a: &mut Amount| {
        if let Amount::Clear(v) = *a {
            *a = Amount::hide(v);
        }
    };
    let existing = |batch: &str| domain_of(batch).is_some_and(|d| hides(&d));
    match body {
        Body::Commission(c) if hides(&c.domain) => open(&mut c.quantity.amount),
        Body::Ship(s) if existing(&s.batch) => open(&mut s.quantity.amount),
        Body::Sell(s) if existing(&s.batch) => open(&mut s.quantity.amount),
        Body::Transform(t) => {
            for i in t.inputs.iter_mut().filter(|i| existing(&i.batch)) {
                open(&mut i.quantity.amount);
            }
            for o in t.outputs.iter_mut().filter(|o| hides(&o.domain)) {
                open(&mut o.quantity.amount);
            }
        }
        _ => {}
    }
}

/// The commitment the ledger holds for `value`: SHA-256 over a domain tag, a 32-byte
/// random salt and the amount. Without the salt, trying amounts confirms nothing.
pub fn commitment(salt: &Hash32, value: u64) -> Hash32 {
    xinlian_genesis::canonical::tagged_hash("xinlian/hidden-amount/v1", &(salt, value))
}

/// The binary (canonical) form: a tagged enum, like every other.
#[derive(Serialize, Deserialize)]
enum Tagged {
    Clear(u64),
    Opened { salt: Hash32, value: u64 },
    Sealed(Hash32),
}

/// The JSON and TOML form: a number in clear, `{"value", "salt"}` opened,
/// `{"sealed"}` sealed — so that a record in clear reads as it always has.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Readable {
    Clear(u64),
    Opened(OpenedForm),
    Sealed(SealedForm),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenedForm {
    value: u64,
    salt: Hash32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedForm {
    sealed: Hash32,
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match *self {
                Amount::Clear(v) => Readable::Clear(v),
                Amount::Opened { salt, value } => Readable::Opened(OpenedForm { value, salt }),
                Amount::Sealed(sealed) => Readable::Sealed(SealedForm { sealed }),
            }
            .serialize(s)
        } else {
            match *self {
                Amount::Clear(v) => Tagged::Clear(v),
                Amount::Opened { salt, value } => Tagged::Opened { salt, value },
                Amount::Sealed(h) => Tagged::Sealed(h),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        Ok(if d.is_human_readable() {
            match Readable::deserialize(d)? {
                Readable::Clear(v) => Amount::Clear(v),
                Readable::Opened(OpenedForm { value, salt }) => Amount::Opened { salt, value },
                Readable::Sealed(SealedForm { sealed }) => Amount::Sealed(sealed),
            }
        } else {
            match Tagged::deserialize(d)? {
                Tagged::Clear(v) => Amount::Clear(v),
                Tagged::Opened { salt, value } => Amount::Opened { salt, value },
                Tagged::Sealed(h) => Amount::Sealed(h),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_the_clear_shape_and_round_trips_every_form() {
        let salt = Hash32([9; 32]);
        for (a, json) in [
            (Amount::Clear(40), "40".to_string()),
            (
                Amount::Opened { salt, value: 40 },
                format!(r#"{{"value":40,"salt":"{salt}"}}"#),
            ),
            (
                Amount::Sealed(commitment(&salt, 40)),
                format!(r#"{{"sealed":"{}"}}"#, commitment(&salt, 40)),
            ),
        ] {
            assert_eq!(serde_json::to_string(&a).unwrap(), json);
            assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), a);
            let bin = xinlian_genesis::canonical::encode(&a);
            assert_eq!(
                xinlian_genesis::canonical::decode::<Amount>(&bin, 100).unwrap(),
                a
            );
        }
        assert!(serde_json::from_str::<Amount>(r#"{"sealed":"00"}"#).is_err());
        let extra = format!(r#"{{"sealed":"{salt}","x":1}}"#);
        assert!(
            serde_json::from_str::<Amount>(&extra).is_err(),
            "unknown fields"
        );
        assert!(serde_json::from_str::<Amount>("-1").is_err());
    }

    #[test]
    fn sealing_keeps_the_commitment_and_drops_the_amount() {
        let a = Amount::hide(12);
        let Amount::Opened { salt, .. } = a else {
            panic!("hide opens")
        };
        assert_eq!(a.sealed(), Amount::Sealed(commitment(&salt, 12)));
        assert_eq!(a.sealed().value(), None);
        assert_eq!(a.sealed().sealed(), a.sealed());
        assert_ne!(
            Amount::hide(12).sealed(),
            a.sealed(),
            "a fresh salt each time"
        );
        assert_ne!(commitment(&salt, 13), commitment(&salt, 12));
        assert_eq!(Amount::Clear(5).sealed(), Amount::Clear(5));
    }

    /// The signature covers the ledger form: the public's copy verifies, and an opening
    /// that is not the one signed does not.
    #[test]
    fn the_signed_ledger_form_verifies_and_a_false_opening_does_not() {
        use crate::record::{Commission, EncodedRecord, Envelope, Product, Quantity};
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let body = |amount| Commission {
            batch: "b".into(),
            domain: "drug".into(),
            product: Product {
                name: "p".into(),
                gtin: None,
                drug_code: None,
            },
            lot: "l".into(),
            quantity: Quantity {
                amount,
                uom: "EA".into(),
            },
            origin: "o".into(),
            time: crate::when::EventTime {
                unix_ms: 0,
                offset_minutes: 480,
            },
        };
        let opened = Amount::hide(40);
        let signed = Envelope {
            chain: Hash32([1; 32]),
            signer: xinlian_genesis::PublicKey(key.verifying_key().to_bytes()),
            nonce: 1,
            body: body(opened).into(),
        }
        .sign(&key);
        let full = EncodedRecord::new(signed.clone());
        full.verify_signature().unwrap();
        let public = full.ledger_form();
        public.verify_signature().unwrap();
        assert_eq!(public.record().envelope.body, body(opened.sealed()).into());
        let Amount::Opened { salt, .. } = opened else {
            unreachable!()
        };
        let mut forged = signed;
        forged.envelope.body = body(Amount::Opened { salt, value: 41 }).into();
        let forged = EncodedRecord::new(forged);
        assert_ne!(forged.id(), full.id());
        assert!(forged.verify_signature().is_err());
    }
}
