//! The sparse Merkle map behind the batch index: incremental inserts agree with the
//! definition computed from scratch, and proofs hold exactly for what the map holds.

use proptest::prelude::*;
use std::collections::BTreeMap;
use xinlian_client::smt::{self, EMPTY, MapProof, MapProofError, MemMap, bit};
use xinlian_genesis::Hash32;

/// The root by definition: empty → EMPTY, one entry → its leaf, else split by the bit.
fn root_by_definition(entries: &[(Hash32, Hash32)], depth: usize) -> Hash32 {
    match entries {
        [] => EMPTY,
        [(k, v)] => smt::leaf_hash(k, v),
        _ => {
            let (r, l): (Vec<_>, Vec<_>) = entries.iter().partition(|(k, _)| bit(k, depth));
            smt::internal_hash(
                &root_by_definition(&l, depth + 1),
                &root_by_definition(&r, depth + 1),
            )
        }
    }
}

fn h(b: u8, tail: u8) -> Hash32 {
    let mut x = [tail; 32];
    x[0] = b;
    Hash32(x)
}

fn build(entries: &[(Hash32, Hash32)]) -> (MemMap, Hash32) {
    let mut m = MemMap::default();
    let mut root = smt::root(&m).unwrap();
    for (k, v) in entries {
        root = smt::insert(&mut m, *k, *v).unwrap();
    }
    (m, root)
}

proptest! {
    #[test]
    fn inserts_match_the_definition_and_every_entry_proves(
        ops in prop::collection::vec((any::<[u8; 2]>(), any::<u8>()), 0..60)
    ) {
        // Two-byte keys padded with zeros: many long shared prefixes.
        let ops: Vec<(Hash32, Hash32)> = ops
            .into_iter()
            .map(|(k, v)| {
                let mut key = [0u8; 32];
                key[..2].copy_from_slice(&k);
                (Hash32(key), h(v, 7))
            })
            .collect();
        let (m, root) = build(&ops);
        let latest: BTreeMap<Hash32, Hash32> = ops.iter().copied().collect();
        let entries: Vec<(Hash32, Hash32)> = latest.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(root, root_by_definition(&entries, 0));
        prop_assert_eq!(smt::root(&m).unwrap(), root);
        for (k, v) in &entries {
            let p = smt::prove(&m, k).unwrap();
            prop_assert_eq!(p.verify(&root, k, v), Ok(()));
            prop_assert!(p.verify_absent(&root, k).is_err());
            let other = h(v.0[0].wrapping_add(1), 7);
            let wrong_value = p.verify(&root, k, &other).is_err();
            prop_assert!(wrong_value);
        }
        let mut missing = [0u8; 32];
        missing[31] = 1;
        let missing = Hash32(missing);
        let p = smt::prove(&m, &missing).unwrap();
        prop_assert_eq!(p.verify_absent(&root, &missing), Ok(()));
        prop_assert_eq!(p.verify(&root, &missing, &h(0, 0)), Err(MapProofError::Absent));
    }
}

#[test]
fn every_tampering_of_a_proof_fails() {
    let entries: Vec<(Hash32, Hash32)> = (0u8..50)
        .map(|i| (h(i.wrapping_mul(37), i), h(i, 1)))
        .collect();
    let (m, root) = build(&entries);
    let (k, v) = entries[17];
    let good = smt::prove(&m, &k).unwrap();
    assert!(!good.siblings.is_empty());
    for i in 0..good.siblings.len() {
        let mut p = good.clone();
        p.siblings[i].0[5] ^= 1;
        assert!(
            matches!(p.verify(&root, &k, &v), Err(MapProofError::Root { .. })),
            "sibling {i}"
        );
    }
    let mut p = good.clone();
    p.siblings.pop();
    assert!(p.verify(&root, &k, &v).is_err(), "a dropped sibling");
    let mut p = good.clone();
    p.siblings.push(EMPTY);
    assert!(p.verify(&root, &k, &v).is_err(), "an added sibling");
    let p = MapProof {
        siblings: good.siblings.clone(),
        leaf: None,
    };
    assert!(p.verify(&root, &k, &v).is_err(), "the leaf withheld");
    let mut p = good.clone();
    p.siblings = vec![EMPTY; 257];
    assert_eq!(p.verify(&root, &k, &v), Err(MapProofError::TooLong(257)));
    // A stale root: the entry's value changed after.
    let (mut m2, _) = build(&entries);
    let new_root = smt::insert(&mut m2, k, h(200, 2)).unwrap();
    assert!(good.verify(&new_root, &k, &v).is_err());
    assert_eq!(
        smt::prove(&m2, &k)
            .unwrap()
            .verify(&new_root, &k, &h(200, 2)),
        Ok(())
    );
}
