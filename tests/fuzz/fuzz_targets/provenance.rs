//! Fuzz target: the light client fed mutated provenance answers. The input picks one
//! of the fixture's genuine answers (each batch as root, each direction) — as one page
//! (`LightClient::verify_provenance`) or wrapped in an offline bundle
//! (`verify_provenance_bundle`) — and a script of structural edits to its JSON.
//! Asserts: no panic, and only the truth is accepted: every batch in an accepted
//! answer is the genuine batch (state, every event with its record and signer,
//! holders, transfers, amounts, children), and nothing is hidden — every batch the
//! genuine graph reaches from the answer's roots in its direction is in the answer or
//! listed as missing.
#![no_main]

use std::collections::{BTreeSet, VecDeque};
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use xinlian_client::proof::LightClient;
use xinlian_client::provenance::{
    PROVENANCE_BUNDLE_FORMAT, Provenance, ProvenanceBundle, ProvenanceProof,
};
use xinlian_fuzz::chain::{Fixture, fixture};
use xinlian_fuzz::mutate::mutate;

/// Each answer as a page, then as a bundle.
fn bases() -> &'static [Value] {
    static B: OnceLock<Vec<Value>> = OnceLock::new();
    B.get_or_init(|| {
        let fx = fixture();
        let pages = fx.answers.iter().map(|a| serde_json::to_value(a));
        let bundles = fx.answers.iter().map(|a| {
            serde_json::to_value(ProvenanceBundle {
                format: PROVENANCE_BUNDLE_FORMAT.into(),
                chain: fx.chain(),
                roster_changes: Vec::new(),
                root: a.roots[0].clone(),
                direction: a.direction,
                pages: vec![a.clone()],
            })
        });
        pages
            .chain(bundles)
            .map(|v| v.expect("serialises"))
            .collect()
    })
}

fn assert_truth(fx: &Fixture, p: &Provenance, roots: &[String]) {
    for (name, vb) in &p.batches {
        let mut genuine = fx
            .batches
            .get(name)
            .unwrap_or_else(|| panic!("accepted batch {name} is not on the chain"))
            .clone();
        assert!(vb.final_at >= 1 && vb.final_at as usize <= fx.blocks.len());
        genuine.final_at = vb.final_at;
        assert_eq!(*vb, genuine, "accepted batch {name} is the genuine one");
    }
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<&str> = roots.iter().map(String::as_str).collect();
    while let Some(b) = queue.pop_front() {
        if !seen.insert(b) {
            continue;
        }
        assert!(
            p.batches.contains_key(b) || p.missing.contains(b),
            "batch {b}, reached from {roots:?}, is neither in the answer nor missing"
        );
        let Some(g) = fx.batches.get(b) else { continue };
        if p.direction.up() {
            queue.extend(g.state.parents.iter().map(String::as_str));
        }
        if p.direction.down() {
            queue.extend(g.children.iter().map(String::as_str));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let mut u = Unstructured::new(data);
    let Ok(i) = u.choose_index(bases().len()) else {
        return;
    };
    let doc = mutate(&bases()[i], &mut u);
    if i < fx.answers.len() {
        let Ok(page) = serde_json::from_value::<ProvenanceProof>(doc) else {
            return;
        };
        let client = LightClient::new(fx.genesis.clone());
        if let Ok(p) = client.verify_provenance(&page) {
            assert_truth(fx, &p, &page.roots);
        }
    } else {
        let Ok(bundle) = serde_json::from_value::<ProvenanceBundle>(doc) else {
            return;
        };
        if let Ok(p) = LightClient::verify_provenance_bundle(fx.genesis.clone(), &bundle) {
            // Each page was checked closed from its roots; the merged answer must
            // cover (or list missing) everything reached from any of them.
            for page in &bundle.pages {
                assert_truth(fx, &p, &page.roots);
            }
        }
    }
});
