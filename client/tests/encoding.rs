//! Canonical encoding: every record round-trips, and any byte string that decodes is
//! exactly the encoding of what it decodes to (so one record has one id).

use proptest::prelude::*;
use xinlian_client::genesis::{Hash32, PublicKey};
use xinlian_client::ids::Uscc;
use xinlian_client::record::*;
use xinlian_client::when::{Date, EventTime};

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 信用承诺]{1,40}"
}

fn body() -> impl Strategy<Value = Body> {
    use xinlian_client::hidden::Amount;
    // Every form an amount takes: in clear, opened (hidden, with its salt), sealed.
    let amount = prop_oneof![
        (1u64..u64::MAX).prop_map(Amount::Clear),
        (any::<[u8; 32]>(), 1u64..u64::MAX).prop_map(|(s, value)| Amount::Opened {
            salt: Hash32(s),
            value
        }),
        any::<[u8; 32]>().prop_map(|h| Amount::Sealed(Hash32(h))),
    ];
    let quantity = (amount, "[A-Z]{3}").prop_map(|(amount, uom)| Quantity { amount, uom });
    // Within the range stateless checks accept (years 1970 to 9999), which JSON can print.
    let time = (0i64..253_402_300_799_000 - 86_400_000, -840i16..=840).prop_map(
        |(unix_ms, offset_minutes)| EventTime {
            unix_ms,
            offset_minutes,
        },
    );
    prop_oneof![
        (text(), any::<[u8; 32]>(), proptest::option::of(text())).prop_map(
            |(name, k, check_override)| {
                Body::RegisterEntity(RegisterEntity {
                    operator: None,
                    uscc: Uscc("91310110666007217T".into()),
                    name,
                    key: PublicKey(k),
                    check_override,
                    possession: xinlian_client::crypto::Signature(std::array::from_fn(|i| {
                        k[i % 32] ^ i as u8
                    })),
                })
            }
        ),
        (
            text(),
            0i32..2_932_896,
            0i32..2_932_896,
            any::<bool>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(matter, d, dl, consent, h)| {
                Body::Commitment(Commitment {
                    subject: Uscc("91310110666007217T".into()),
                    kind: CommitmentKind::ApprovalSubstitute,
                    matter,
                    legal_basis: "basis".into(),
                    template_version: "v1".into(),
                    accepting_agency: "market".into(),
                    domain: "market".into(),
                    content: if consent {
                        Content::Text("t".into())
                    } else {
                        Content::Document(Hash32(h))
                    },
                    date: Date(d),
                    deadline: Date(dl),
                    disclosure: Disclosure::Agencies(vec!["a".into(), "b".into()]),
                    publication_consent: consent,
                })
            }),
        (
            any::<[u8; 32]>(),
            0u8..5,
            proptest::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(c, v, e)| {
                let verdict = match v {
                    0 => Verdict::Fulfilled,
                    1 => Verdict::NotVerifiable,
                    2 => Verdict::Breached(Severity::Minor),
                    3 => Verdict::Breached(Severity::General),
                    _ => Verdict::Breached(Severity::Serious),
                };
                Body::Outcome(Outcome {
                    commitment: RecordId(c),
                    verdict,
                    method: "m".into(),
                    evidence: e.map(Hash32),
                    document: "d".into(),
                    date: Date(7),
                })
            }),
        (
            "[a-z0-9:-]{1,30}",
            quantity.clone(),
            time.clone(),
            proptest::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(batch, quantity, time, custody)| {
                Body::Ship(Ship {
                    batch,
                    quantity,
                    // An enterprise, or a custody key where the batch hides its parties.
                    to: match custody {
                        None => Uscc("91350100M000100Y43".into()).into(),
                        Some(k) => xinlian_client::party::Party::Custody(PublicKey(k)),
                    },
                    from_location: "a".into(),
                    to_location: "b".into(),
                    time,
                })
            }),
        (
            proptest::collection::vec(("[a-z]{1,8}", quantity.clone()), 1..4),
            time
        )
            .prop_map(|(ins, time)| {
                Body::Transform(Transform {
                    inputs: ins
                        .iter()
                        .map(|(b, q)| BatchAmount {
                            batch: b.clone(),
                            quantity: q.clone(),
                        })
                        .collect(),
                    outputs: vec![NewBatch {
                        batch: "out".into(),
                        domain: "food".into(),
                        product: Product {
                            name: "p".into(),
                            gtin: Some("4006381333931".into()),
                            drug_code: None,
                        },
                        lot: "l".into(),
                        quantity: ins[0].1.clone(),
                    }],
                    location: "loc".into(),
                    time,
                })
            }),
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(k, c)| {
            Body::BindCustodyKey(BindCustodyKey {
                domain: "drug".into(),
                key: PublicKey(k),
                enterprise: Content::Sealed(Hash32(c)),
                possession: xinlian_client::crypto::Signature([0; 64]),
            })
        }),
    ]
}

fn record() -> impl Strategy<Value = SignedRecord> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        body(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(c, s, nonce, body, sig)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&sig);
            SignedRecord {
                envelope: Envelope {
                    chain: Hash32(c),
                    signer: PublicKey(s),
                    nonce,
                    body,
                },
                signature: xinlian_client::crypto::Signature(signature),
            }
        })
}

proptest! {
    #[test]
    fn records_round_trip(r in record()) {
        let bytes = r.canonical_bytes();
        let back = SignedRecord::decode(&bytes, 1 << 20).unwrap();
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.id(), r.id());
        // JSON is a faithful second view of the same record.
        let json = serde_json::to_string(&r).unwrap();
        let from_json: SignedRecord = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(from_json, r);
    }

    #[test]
    fn encoded_record_computes_id_and_signed_bytes_once(r in record()) {
        let e = EncodedRecord::new(r.clone());
        prop_assert_eq!(e.bytes(), &r.canonical_bytes()[..]);
        prop_assert_eq!(e.envelope_bytes(), &r.envelope.canonical_bytes()[..]);
        prop_assert_eq!(e.id(), r.id());
        let d = EncodedRecord::decode(e.bytes(), 1 << 20).unwrap();
        prop_assert_eq!(d, e);
    }

    #[test]
    fn a_record_and_its_ledger_form_are_one_record(r in record()) {
        use xinlian_client::hidden::Amount;
        let opened = |b: &Body| b.amounts().iter().any(|a| matches!(a, Amount::Opened { .. }));
        let e = EncodedRecord::new(r.clone());
        prop_assert_eq!(e.has_openings(), opened(&r.envelope.body));
        let l = e.ledger_form();
        prop_assert!(!l.has_openings() && !opened(&l.record().envelope.body));
        prop_assert_eq!(l.id(), e.id());
        prop_assert_eq!(l.leaf(), e.leaf());
        prop_assert_eq!(r.leaf(), e.leaf());
        prop_assert_eq!(l.bytes(), e.ledger_bytes());
        prop_assert_eq!(EncodedRecord::decode(l.bytes(), 1 << 20).unwrap().id(), e.id());
    }

    #[test]
    fn whatever_decodes_is_canonical(r in record(), at in any::<prop::sample::Index>(), byte in any::<u8>(), grow in 0usize..3) {
        let mut bytes = r.canonical_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        bytes.extend(std::iter::repeat_n(0u8, grow));
        if let Ok(decoded) = SignedRecord::decode(&bytes, 1 << 20) {
            prop_assert_eq!(decoded.canonical_bytes(), bytes);
        }
    }

    #[test]
    fn overlong_varints_are_refused(r in record()) {
        // Re-encode the nonce as an over-long varint: same value, different bytes.
        let bytes = r.canonical_bytes();
        let nonce_at = 64; // after chain (32) and signer (32)
        let mut v = r.envelope.nonce;
        let mut len = 1;
        while v >= 0x80 { v >>= 7; len += 1; }
        if len < 10 {
            let mut long = bytes[..nonce_at].to_vec();
            long.extend_from_slice(&bytes[nonce_at..nonce_at + len]);
            let last = long.len() - 1;
            long[last] |= 0x80;
            long.push(0);
            long.extend_from_slice(&bytes[nonce_at + len..]);
            let err = SignedRecord::decode(&long, 1 << 20).unwrap_err();
            prop_assert_eq!(err.to_string(), "record is not canonical: non-canonical encoding: re-encoding gives different bytes");
        }
    }
}

#[test]
fn oversize_is_refused_before_decoding() {
    let err = SignedRecord::decode(&[0u8; 300], 256).unwrap_err();
    assert!(
        err.to_string()
            .contains("300 bytes exceed the bound of 256"),
        "{err}"
    );
}
