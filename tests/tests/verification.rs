//! A client that trusts only genesis checks what a real node serves: untampered
//! answers verify, and every kind of tampering (a byte of a record, a proof hash, a
//! header field, a certificate signature, a validator set, a key binding, a swapped
//! height, a ledger that does not extend the trusted one) fails with a reason that
//! names what is wrong. The independent Python verifier follows the ledger's signature
//! rule (ZIP-215) on the edge-case vectors.

use xinlian_client::block::{Certificate, CertificateError, CommitSignature, Precommit};
use xinlian_client::http::{NodeClient, fetch_verified};
use xinlian_client::ids::Uscc;
use xinlian_client::merkle::ProofError;
use xinlian_client::proof::*;
use xinlian_client::record::{RecordId, RotateEntityKey};
use xinlian_client::signer::RecordSigner;
use xinlian_genesis::keys::{self, public_key};
use xinlian_genesis::{Hash32, Validator, ValidatorSet};
use xinlian_tests::{Consortium, commission, register_enterprise};

/// Asserts that `e` matches the pattern, showing the error's message if not.
macro_rules! expect {
    ($e:expr, $p:pat) => {
        assert!(matches!($e, $p), "{}", $e)
    };
}

struct Ledger {
    c: Consortium,
    node: xinlian_tests::Node,
    /// Signed by the registrar (a member).
    registration: RecordId,
    /// Signed by the enterprise's first key.
    first: RecordId,
    /// Signed by its second key, bound by a rotation signed with the first.
    second: RecordId,
}

fn wait(
    client: &NodeClient,
    signer: &RecordSigner,
    body: impl Into<xinlian_client::record::Body>,
) -> anyhow::Result<RecordId> {
    let v = client.submit_and_wait(&signer.sign(body), 10_000)?;
    anyhow::ensure!(v.height.is_some(), "record {} not final in 10 s", v.id);
    Ok(v.id)
}

fn ledger() -> anyhow::Result<Ledger> {
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let uscc = Uscc::with_check("91310117MA1G0A1B2").unwrap();
    let (farm, registration) =
        register_enterprise(&c, &node.client, uscc.clone(), keys::generate()?)?;
    let first = wait(&node.client, &farm, commission("b1"))?;
    let k2 = keys::generate()?;
    let possession = xinlian_client::crypto::prove_possession(
        &k2,
        &c.genesis.hash(),
        xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
    );
    wait(
        &node.client,
        &farm,
        RotateEntityKey {
            uscc,
            new_key: public_key(&k2),
            possession,
        },
    )?;
    let farm2 = RecordSigner {
        key: k2,
        chain: c.genesis.hash(),
    };
    let second = wait(&node.client, &farm2, commission("b2"))?;
    Ok(Ledger {
        c,
        node,
        registration,
        first,
        second,
    })
}

fn light(l: &Ledger) -> LightClient {
    LightClient::new(l.c.genesis.clone())
}

#[test]
fn untampered_proofs_verify_with_the_signers_authority() -> anyhow::Result<()> {
    let l = ledger()?;
    let lc = light(&l);
    let reg = lc.verify_record(&l.node.client.record_proof(&l.registration, None)?)?;
    assert_eq!(reg.id, l.registration);
    assert!(matches!(&reg.signer, SignerAuthority::Member { id, .. } if id == "registrar"));
    assert_eq!(reg.block_height, Some(reg.final_at));

    let first = lc.verify_record(&l.node.client.record_proof(&l.first, None)?)?;
    assert!(matches!(&first.signer,
        SignerAuthority::Enterprise { bound_by, registrar, .. }
            if bound_by == &vec![l.registration] && registrar == "registrar"));

    // The rotated key's authority runs through the rotation (signed by the first key)
    // to the registrar's registration.
    let p = l.node.client.record_proof(&l.second, None)?;
    assert_eq!(p.key_bindings.len(), 2);
    let second = lc.verify_record(&p)?;
    assert!(matches!(&second.signer,
        SignerAuthority::Enterprise { bound_by, .. }
            if bound_by.len() == 2 && bound_by[1] == l.registration));

    // An older record proven against a later header: final at or before it.
    let at = second.final_at;
    let again = lc.verify_record(&l.node.client.record_proof(&l.registration, Some(at))?)?;
    assert_eq!((again.final_at, again.block_height), (at, None));
    Ok(())
}

/// Applies `tamper` to a fresh copy of `proof` and returns the verification error.
fn broken(
    lc: &LightClient,
    proof: &RecordProof,
    tamper: impl FnOnce(&mut RecordProof),
) -> VerifyError {
    let mut p = proof.clone();
    tamper(&mut p);
    lc.verify_record(&p)
        .expect_err("a tampered proof must not verify")
}

#[test]
fn every_tampered_answer_fails_with_a_reason_naming_it() -> anyhow::Result<()> {
    let l = ledger()?;
    let lc = light(&l);
    let proof = l.node.client.record_proof(&l.second, None)?;
    lc.verify_record(&proof)?;

    // One byte of the record, at every position: never accepted, always about the record.
    for i in 0..proof.entry.record.0.len() {
        let e = broken(&lc, &proof, |p| p.entry.record.0[i] ^= 0x01);
        assert!(
            matches!(
                e,
                VerifyError::RecordBytes { .. }
                    | VerifyError::Record { .. }
                    | VerifyError::Inclusion { .. }
            ),
            "byte {i}: {e}"
        );
        assert!(e.to_string().contains("record"), "byte {i}: {e}");
    }
    // A record from another ledger position: its inclusion path does not lead to the root.
    let e = broken(&lc, &proof, |p| p.entry.index -= 1);
    expect!(
        e,
        VerifyError::Inclusion {
            source: ProofError::RootMismatch { .. },
            ..
        }
    );
    let e = broken(&lc, &proof, |p| {
        p.entry.index = p.checkpoint.header.ledger_size
    });
    expect!(
        e,
        VerifyError::Inclusion {
            source: ProofError::IndexBeyondSize { .. },
            ..
        }
    );

    // Proof hashes: altered, dropped, added.
    for i in 0..proof.entry.inclusion.len() {
        let e = broken(&lc, &proof, |p| p.entry.inclusion[i].0[31] ^= 0x80);
        expect!(
            e,
            VerifyError::Inclusion {
                source: ProofError::RootMismatch { .. },
                ..
            }
        );
    }
    let e = broken(&lc, &proof, |p| {
        p.entry.inclusion.pop();
    });
    expect!(e, VerifyError::Inclusion { .. });
    let e = broken(&lc, &proof, |p| p.entry.inclusion.push(Hash32([7; 32])));
    expect!(
        e,
        VerifyError::Inclusion {
            source: ProofError::WrongLength,
            ..
        }
    );

    // Every header field: the certificate no longer covers the header.
    type HeaderTamper = fn(&mut xinlian_client::block::Header);
    let fields: [(&str, HeaderTamper); 11] = [
        ("parent", |h| h.parent.0[0] ^= 1),
        ("time_ms", |h| h.time_ms += 1),
        ("proposer", |h| h.proposer.0[0] ^= 1),
        ("records_root", |h| h.records_root.0[0] ^= 1),
        ("records_count", |h| h.records_count += 1),
        ("ledger_root", |h| h.ledger_root.0[0] ^= 1),
        ("ledger_size", |h| h.ledger_size += 1),
        ("state_hash", |h| h.state_hash.0[0] ^= 1),
        ("trace_root", |h| h.trace_root.0[0] ^= 1),
        ("next_roster_hash", |h| h.next_roster_hash.0[0] ^= 1),
        ("height", |h| h.height += 1),
    ];
    for (name, f) in fields {
        let e = broken(&lc, &proof, |p| f(&mut p.checkpoint.header));
        assert!(
            matches!(
                e,
                VerifyError::Certificate {
                    source: CertificateError::Block { .. } | CertificateError::Height { .. },
                    ..
                }
            ),
            "{name}: {e}"
        );
        assert!(e.to_string().contains("is not final"), "{name}: {e}");
    }
    let e = broken(&lc, &proof, |p| {
        p.checkpoint.header.validators_hash.0[0] ^= 1
    });
    expect!(
        e,
        VerifyError::Certificate {
            source: CertificateError::Block { .. },
            ..
        }
    );

    // A whole checkpoint forged by keys outside the validator set: the header names
    // the forgers' set and their certificate is internally valid, but that is not
    // the set in force.
    let forger = keys::generate()?;
    let forged_set = ValidatorSet::new(vec![Validator {
        member: "v0".into(),
        key: public_key(&forger),
        power: 1,
    }]);
    let mut header = proof.checkpoint.header.clone();
    header.validators_hash = forged_set.hash();
    let precommit = Precommit {
        chain: header.chain,
        height: header.height,
        round: 0,
        block: header.hash(),
        validator: public_key(&forger),
    };
    let certificate = Certificate {
        height: header.height,
        round: 0,
        block: header.hash(),
        signatures: vec![CommitSignature {
            validator: 0,
            signature: precommit.sign(&forger),
        }],
    };
    xinlian_client::block::verify_certificate(&header, &certificate, &forged_set)?;
    let e = broken(&lc, &proof, |p| {
        p.checkpoint = Checkpoint {
            header,
            certificate,
        }
    });
    expect!(
        e,
        VerifyError::Certificate {
            source: CertificateError::ValidatorSet { .. },
            ..
        }
    );
    let e = broken(&lc, &proof, |p| p.checkpoint.header.chain.0[0] ^= 1);
    expect!(e, VerifyError::WrongChain { what: "header", .. });

    // Certificate: a signature byte, a missing signature, an unknown signer index.
    let e = broken(&lc, &proof, |p| {
        p.checkpoint.certificate.signatures[0].signature.0[5] ^= 1
    });
    expect!(
        e,
        VerifyError::Certificate {
            source: CertificateError::Signature { .. },
            ..
        }
    );
    let e = broken(&lc, &proof, |p| p.checkpoint.certificate.signatures.clear());
    expect!(
        e,
        VerifyError::Certificate {
            source: CertificateError::NoQuorum { .. },
            ..
        }
    );
    let e = broken(&lc, &proof, |p| {
        p.checkpoint.certificate.signatures[0].validator = 9
    });
    expect!(
        e,
        VerifyError::Certificate {
            source: CertificateError::Index(9),
            ..
        }
    );
    let e = broken(&lc, &proof, |p| p.checkpoint.certificate.round += 1);
    expect!(
        e,
        VerifyError::Certificate {
            source: CertificateError::Signature { .. },
            ..
        }
    );

    // A swapped height: the checkpoint of the block before, with its own valid
    // certificate, cannot hold a record appended after it.
    let h = proof.checkpoint.header.height;
    let earlier = l.node.client.block(h - 1)?;
    let e = broken(&lc, &proof, |p| {
        p.checkpoint.header = earlier.header.clone();
        p.checkpoint.certificate = earlier.certificate.clone();
    });
    expect!(
        e,
        VerifyError::Inclusion {
            source: ProofError::IndexBeyondSize { .. },
            ..
        }
    );
    // The earlier header with the later certificate.
    let e = broken(&lc, &proof, |p| {
        p.checkpoint.header = earlier.header.clone()
    });
    expect!(
        e,
        VerifyError::Certificate {
            source: CertificateError::Height { .. },
            ..
        }
    );

    // Key bindings: dropped, truncated, reordered, or a binding of another key.
    let e = broken(&lc, &proof, |p| p.key_bindings.clear());
    expect!(e, VerifyError::Authority { .. });
    let e = broken(&lc, &proof, |p| {
        p.key_bindings.pop();
    });
    expect!(e, VerifyError::Authority { .. });
    let e = broken(&lc, &proof, |p| p.key_bindings.swap(0, 1));
    expect!(e, VerifyError::Authority { .. });
    let reg_entry = proof.key_bindings[1].clone();
    let e = broken(&lc, &proof, |p| p.key_bindings = vec![reg_entry]);
    assert!(e.to_string().contains("binds key"), "{e}");
    let e = broken(&lc, &proof, |p| p.key_bindings[1].inclusion[0].0[0] ^= 1);
    expect!(e, VerifyError::Inclusion { .. });
    Ok(())
}

#[test]
fn bundles_and_roster_changes_are_checked_from_genesis() -> anyhow::Result<()> {
    let l = ledger()?;
    let proof = l.node.client.record_proof(&l.first, None)?;
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        chain: l.c.genesis.hash(),
        roster_changes: l.node.client.roster_changes(1)?.changes,
        proof: proof.clone(),
    };
    let g = l.c.genesis.clone();
    LightClient::verify_bundle(g.clone(), &bundle)?;
    // Through JSON, as written to a file.
    let text = serde_json::to_string(&bundle)?;
    LightClient::verify_bundle(g.clone(), &serde_json::from_str(&text)?)?;

    let mut b = bundle.clone();
    b.format = "xinlian-proof/v0".into();
    assert!(matches!(
        LightClient::verify_bundle(g.clone(), &b),
        Err(VerifyError::Format(_))
    ));
    let mut b = bundle.clone();
    b.chain.0[0] ^= 1;
    assert!(matches!(
        LightClient::verify_bundle(g.clone(), &b),
        Err(VerifyError::WrongChain { what: "bundle", .. })
    ));

    // A forged roster change: the forger as sole validator, "announced" by a real
    // header that names a different next roster.
    let tip = l.node.client.block(proof.checkpoint.header.height)?;
    let forged = xinlian_genesis::Roster {
        members: vec![xinlian_genesis::Member {
            id: "forger".into(),
            name: "Forger".into(),
            region: "310000".into(),
            roles: vec![xinlian_genesis::Role::Validator],
            voting_power: 1,
            node_key: Some(public_key(&keys::generate()?)),
            signing_key: public_key(&keys::generate()?),
        }],
        policy: l.c.genesis.policy.clone(),
    };
    let mut b = bundle.clone();
    b.roster_changes = vec![RosterChange {
        height: tip.header.height + 1,
        roster: forged.clone(),
        announced_by: Checkpoint {
            header: tip.header.clone(),
            certificate: tip.certificate.clone(),
        },
    }];
    let e = LightClient::verify_bundle(g.clone(), &b).unwrap_err();
    expect!(e, VerifyError::RosterChange { .. });
    assert!(e.to_string().contains("names next roster"), "{e}");
    // … or announced at the wrong height.
    b.roster_changes[0].height += 5;
    let e = LightClient::verify_bundle(g.clone(), &b).unwrap_err();
    assert!(
        e.to_string().contains("announced by a header at height"),
        "{e}"
    );

    // A genesis whose validator differs (another consortium's file with the same
    // chain name) rejects the bundle as another chain.
    let mut other = g.clone();
    other.members[0].signing_key = public_key(&keys::generate()?);
    let e = LightClient::verify_bundle(other, &bundle).unwrap_err();
    expect!(e, VerifyError::WrongChain { .. });
    Ok(())
}

#[test]
fn the_trusted_header_only_moves_along_consistency_proofs() -> anyhow::Result<()> {
    let l = ledger()?;
    let client = &l.node.client;
    let mut lc = light(&l);
    // First check from genesis: trusts the registration's block.
    let (v, _) = fetch_verified(client, &mut lc, &l.registration)?;
    let h1 = lc.trusted().unwrap().header.clone();
    assert_eq!(h1.height, v.final_at);
    // A newer record moves the trusted header forward along a consistency proof.
    let (v2, _) = fetch_verified(client, &mut lc, &l.second)?;
    let h2 = lc.trusted().unwrap().header.clone();
    assert!(h2.height > h1.height && h2.height == v2.final_at);
    // An older record is now proven against the trusted header, with no new header.
    let (v3, p3) = fetch_verified(client, &mut lc, &l.first)?;
    assert_eq!(
        (v3.final_at, p3.checkpoint.header.clone()),
        (h2.height, h2.clone())
    );

    // Saved and restored, the state re-verifies from genesis.
    let saved = lc.save();
    let back = LightClient::restore(l.c.genesis.clone(), &saved)?;
    assert_eq!(back.trusted(), lc.trusted());
    let mut bad = saved.clone();
    bad.trusted.as_mut().unwrap().header.ledger_root.0[0] ^= 1;
    assert!(LightClient::restore(l.c.genesis.clone(), &bad).is_err());

    // Advancing with a wrong consistency proof, or none, fails and keeps the old header.
    let mut fresh = light(&l);
    let cp1 = Checkpoint {
        header: h1.clone(),
        certificate: client.block(h1.height)?.certificate,
    };
    let cp2 = Checkpoint {
        header: h2.clone(),
        certificate: client.block(h2.height)?.certificate,
    };
    fresh.advance(cp1.clone(), None)?;
    let e = fresh.advance(cp2.clone(), None).unwrap_err();
    assert!(e.to_string().contains("no consistency proof"), "{e}");
    let mut proof = client.consistency(h1.ledger_size, h2.ledger_size)?;
    proof.proof[0].0[0] ^= 1;
    let e = fresh.advance(cp2.clone(), Some(&proof)).unwrap_err();
    expect!(e, VerifyError::Consistency { .. });
    assert_eq!(fresh.trusted(), Some(&cp1));
    let good = client.consistency(h1.ledger_size, h2.ledger_size)?;
    fresh.advance(cp2.clone(), Some(&good))?;
    assert_eq!(fresh.trusted(), Some(&cp2));
    Ok(())
}

/// The independent verifier (tests/python/verify_bundle.py) checks signatures by the
/// ledger's rule, ZIP-215, not OpenSSL's stricter one: on the 12 ed25519-speccheck edge
/// cases (small-order and mixed-order keys and R, non-canonical encodings, S out of
/// range) it accepts exactly what `xinlian_client::crypto` accepts, including the
/// signatures with a small-order component that OpenSSL refuses (cases 4 and 5).
#[test]
fn the_python_verifier_accepts_exactly_the_signatures_the_ledger_accepts() -> anyhow::Result<()> {
    use xinlian_client::crypto::{Signature, verify_raw};
    let Some(dir) = xinlian_client::vectors::dir() else {
        return Ok(());
    };
    let cases = dir.join("ed25519-speccheck/cases.json");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/verify_bundle.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg("--signature-vectors")
        .arg(&cases)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Vec<usize> = serde_json::from_slice(&out.stdout)?;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cases)?)?;
    let mut ledger = Vec::new();
    for (i, c) in v.as_array().into_iter().flatten().enumerate() {
        let text = |f: &str| c[f].as_str().unwrap_or_default().to_string();
        let key = xinlian_genesis::PublicKey::from_hex(&text("pub_key"))?;
        let sig = Signature::from_hex(&text("signature"))?;
        let msg: HexBytes = serde_json::from_value(c["message"].clone())?;
        if verify_raw(&key, &msg.0, &sig).is_ok() {
            ledger.push(i);
        }
    }
    assert_eq!(python, ledger, "Python's verdicts against the ledger's");
    assert_eq!(ledger, [0, 1, 2, 3, 4, 5, 9, 10, 11], "ZIP-215's verdicts");
    Ok(())
}
