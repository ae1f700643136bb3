//! Fuzz target: the light client fed mutated record proofs. The input picks one of the
//! fixture's genuine bundles (one per record on its chain, proven against the newest
//! header) and a script of structural edits to its JSON (`xinlian_fuzz::mutate`);
//! the result goes through `LightClient::verify_bundle` as `xinlian verify` reads a
//! file, or (as the input says) `verify_record` by a client that already trusts the
//! newest header. Asserts: no panic, and the client refuses or accepts only the truth — an
//! accepted record is one of the chain's, with its genuine bytes, ledger index and
//! signer authority (binding chain included), final at a genuine header, and appended
//! by the block it names, if it names one.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use xinlian_client::proof::{Bundle, LightClient, VerifiedRecord};
use xinlian_fuzz::chain::{Fixture, fixture};
use xinlian_fuzz::mutate::mutate;

fn bases() -> &'static [Value] {
    static B: OnceLock<Vec<Value>> = OnceLock::new();
    B.get_or_init(|| {
        fixture()
            .bundles
            .iter()
            .map(|b| serde_json::to_value(b).expect("serialises"))
            .collect()
    })
}

fn assert_truth(fx: &Fixture, v: &VerifiedRecord) {
    let genuine = fx
        .verified
        .get(&v.id)
        .unwrap_or_else(|| panic!("accepted record {} is not on the chain", v.id));
    assert_eq!(
        v.record, genuine.record,
        "accepted bytes are the genuine record"
    );
    assert_eq!(v.ledger_index, genuine.ledger_index);
    assert_eq!(
        v.signer, genuine.signer,
        "accepted authority is the genuine one"
    );
    assert!(v.final_at >= 1 && v.final_at as usize <= fx.blocks.len());
    let header = &fx.blocks[v.final_at as usize - 1].0.header;
    assert_eq!(
        v.checkpoint_hash,
        header.hash(),
        "final at a genuine header"
    );
    if let Some(h) = v.block_height {
        assert_eq!(h, fx.record_height[v.ledger_index as usize]);
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let mut u = Unstructured::new(data);
    let (Ok(i), Ok(trusting)) = (u.choose_index(bases().len()), u.arbitrary::<bool>()) else {
        return;
    };
    let doc = mutate(&bases()[i], &mut u);
    let Ok(bundle) = serde_json::from_value::<Bundle>(doc) else {
        return;
    };
    let verified = if trusting {
        // A client that already trusts the newest header (`xinlian verify` with a
        // saved trust file) checks the proof alone.
        let mut client = LightClient::new(fx.genesis.clone());
        client
            .advance(fx.newest(), None)
            .expect("the genuine header");
        client.verify_record(&bundle.proof)
    } else {
        LightClient::verify_bundle(fx.genesis.clone(), &bundle)
    };
    if let Ok(v) = verified {
        assert_truth(fx, &v);
    }
});
