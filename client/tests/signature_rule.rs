//! The signature rule is one rule: on the 12 edge-case vectors of ed25519-speccheck,
//! single verification, batch verification (alone and mixed with valid signatures) give
//! the same verdict, and that verdict is ZIP-215's.

use xinlian_client::crypto::{Signature, verify_batch, verify_raw};
use xinlian_client::genesis::PublicKey;

struct Case {
    message: Vec<u8>,
    key: PublicKey,
    sig: Signature,
}

fn cases() -> Option<Vec<Case>> {
    let dir = xinlian_client::vectors::dir()?;
    let text =
        std::fs::read_to_string(dir.join("ed25519-speccheck/cases.json")).expect("cases.json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    Some(
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| Case {
                message: hex::decode(c["message"].as_str().unwrap()).unwrap(),
                key: PublicKey::from_hex(c["pub_key"].as_str().unwrap()).unwrap(),
                sig: Signature::from_hex(c["signature"].as_str().unwrap()).unwrap(),
            })
            .collect(),
    )
}

#[test]
fn single_and_batch_agree_and_follow_zip215() {
    let Some(cases) = cases() else { return };
    assert_eq!(cases.len(), 12);
    let good_key = xinlian_client::genesis::keys::generate().unwrap();
    let good_pk = xinlian_client::genesis::keys::public_key(&good_key);
    let good_msg = b"a valid companion".to_vec();
    let good_sig = {
        use ed25519_dalek::Signer;
        Signature(good_key.sign(&good_msg).to_bytes())
    };
    let mut accepted = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let single = verify_raw(&c.key, &c.message, &c.sig).is_ok();
        let alone = verify_batch([(&c.key, c.message.clone(), &c.sig)]).is_ok();
        let mixed = verify_batch([
            (&good_pk, good_msg.clone(), &good_sig),
            (&c.key, c.message.clone(), &c.sig),
            (&good_pk, good_msg.clone(), &good_sig),
        ]);
        assert_eq!(
            single, alone,
            "vector {i}: single {single} vs batch-of-one {alone}"
        );
        match (&mixed, single) {
            (Ok(()), true) => {}
            (Err(bad), false) => assert_eq!(
                bad,
                &vec![1],
                "vector {i}: only the vector itself is blamed"
            ),
            _ => panic!("vector {i}: single {single} vs mixed batch {mixed:?}"),
        }
        if single {
            accepted.push(i);
        }
    }
    // ZIP-215 as measured in shared/vectors/README.md.
    assert_eq!(accepted, vec![0, 1, 2, 3, 4, 5, 9, 10, 11]);
}
