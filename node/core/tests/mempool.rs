//! The mempool after a block: only the pending records that read or wrote a key the
//! block changed are executed again (and, as their writes change, the later ones that
//! touch those), and what remains pending is exactly what executing every pending
//! record again in order on the new state would keep.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{GENESIS_MS, consortium, key, register, registrar, rotate};
use xinlian_client::ids::Uscc;
use xinlian_client::record::{Body, EncodedRecord, Envelope, RecordId};
use xinlian_core::chain::{Tip, build_block};
use xinlian_core::execute::Consortium;
use xinlian_core::mempool::{Mempool, SignatureCheck};
use xinlian_genesis::Policy;
use xinlian_genesis::keys::{SigningKey, public_key};

const NOW: i64 = GENESIS_MS + 10_000;

fn uscc(n: u64) -> Uscc {
    Uscc::with_check(&format!("91310000{n:09}")).unwrap()
}

fn signed(c: &Consortium, signer: &SigningKey, nonce: u64, body: impl Into<Body>) -> EncodedRecord {
    let env = Envelope {
        chain: c.chain,
        signer: public_key(signer),
        nonce,
        body: body.into(),
    };
    EncodedRecord::new(env.sign(signer))
}

fn admit_all(
    mp: &mut Mempool,
    state: &BTreeMap<Vec<u8>, Vec<u8>>,
    c: &Consortium,
    tip: &Tip,
    recs: &[EncodedRecord],
) -> Vec<RecordId> {
    recs.iter()
        .filter_map(|r| {
            mp.admit(state, c, tip, NOW, r.clone(), SignatureCheck::Needed)
                .ok()
        })
        .collect()
}

fn pending(mp: &Mempool) -> Vec<RecordId> {
    mp.records().map(EncodedRecord::id).collect()
}

/// Pending: U1's registration with key K1, U1's rotation signed by K1 (which needs
/// it), U2's registration and U2's rotation. A block from another proposer registers U1
/// with another key first: U1's registration is now a second one and K1 is nobody's,
/// so both U1 records go, and they are the only ones executed again.
#[test]
fn a_block_that_conflicts_with_pending_records_drops_them_and_touches_nothing_else() {
    let c = consortium(4, "xinlian-mempool-test", Policy::default());
    let (tip0, state0) = (Tip::genesis(&c), BTreeMap::new());
    let (k1, k2, k3, k5, k6) = (key(9, 1), key(9, 2), key(9, 3), key(9, 5), key(9, 6));
    let recs = vec![
        signed(
            &c,
            &registrar(),
            1,
            register(&c.chain, &uscc(1), "one", &k1),
        ),
        signed(&c, &k1, 1, rotate(&c.chain, &uscc(1), &k3)),
        signed(
            &c,
            &registrar(),
            2,
            register(&c.chain, &uscc(2), "two", &k5),
        ),
        signed(&c, &k5, 1, rotate(&c.chain, &uscc(2), &k6)),
    ];
    let mut mp = Mempool::new(100, 1 << 20);
    let ids = admit_all(&mut mp, &state0, &c, &tip0, &recs);
    assert_eq!(ids.len(), 4, "all four fit in order");

    let foreign = signed(
        &c,
        &registrar(),
        3,
        register(&c.chain, &uscc(1), "one", &k2),
    );
    let (block, rejected) =
        build_block(&state0, &c, &tip0, public_key(&key(1, 0)), NOW, [&foreign]).unwrap();
    assert!(rejected.is_empty());
    let mut state1 = state0.clone();
    common::apply(&mut state1, block.writes.clone());
    let changed: HashSet<Vec<u8>> = block.writes.keys().cloned().collect();
    let included: HashSet<RecordId> = [foreign.id()].into();
    let r = mp
        .recheck(&state1, &c, &block.tip, NOW + 1, &included, &changed, false)
        .unwrap();
    let dropped: Vec<RecordId> = r.dropped.iter().map(|(id, _)| *id).collect();
    assert_eq!(dropped, vec![recs[0].id(), recs[1].id()]);
    assert_eq!(
        r.executed, 2,
        "U2's records touch nothing the block changed"
    );
    assert_eq!(pending(&mp), vec![recs[2].id(), recs[3].id()]);

    // The reference: everything that was pending, admitted again in order on the new
    // state, keeps the same records.
    let mut fresh = Mempool::new(100, 1 << 20);
    admit_all(&mut fresh, &state1, &c, &block.tip, &recs);
    assert_eq!(pending(&fresh), pending(&mp));

    // And a new record is judged on the state as it now is: K3 was never U1's.
    let late = signed(&c, &k3, 2, rotate(&c.chain, &uscc(1), &k6));
    assert!(
        mp.admit(
            &state1,
            &c,
            &block.tip,
            NOW + 2,
            late,
            SignatureCheck::Needed
        )
        .is_err()
    );
}

/// A block that took the pending records in another order than ours, and a rules
/// change, each leave what a full re-execution would; with the rules changed every
/// pending record is executed again.
#[test]
fn a_block_in_another_order_or_new_rules_leave_what_a_full_recheck_would() {
    let c = consortium(4, "xinlian-mempool-test", Policy::default());
    let (tip0, state0) = (Tip::genesis(&c), BTreeMap::new());
    let recs: Vec<EncodedRecord> = (1..=6)
        .map(|n| {
            let k = key(9, n as usize);
            signed(&c, &registrar(), n, register(&c.chain, &uscc(n), "e", &k))
        })
        .chain((1..=6).map(|n| {
            let k = key(9, n as usize);
            signed(&c, &k, 1, rotate(&c.chain, &uscc(n), &key(8, n as usize)))
        }))
        .collect();
    // Another proposer's block: registrations 4, 2 and 6, in that order.
    let taken = [&recs[3], &recs[1], &recs[5]];
    let (block, _) = build_block(&state0, &c, &tip0, public_key(&key(1, 0)), NOW, taken).unwrap();
    let mut state1 = state0.clone();
    common::apply(&mut state1, block.writes.clone());
    let changed: HashSet<Vec<u8>> = block.writes.keys().cloned().collect();
    let included: HashSet<RecordId> = taken.iter().map(|r| r.id()).collect();
    for rules_changed in [false, true] {
        let mut m = Mempool::new(100, 1 << 20);
        assert_eq!(admit_all(&mut m, &state0, &c, &tip0, &recs).len(), 12);
        let r = m
            .recheck(
                &state1,
                &c,
                &block.tip,
                NOW + 1,
                &included,
                &changed,
                rules_changed,
            )
            .unwrap();
        assert!(r.dropped.is_empty(), "{:?}", r.dropped);
        let mut fresh = Mempool::new(100, 1 << 20);
        let rest: Vec<EncodedRecord> = recs
            .iter()
            .filter(|r| !included.contains(&r.id()))
            .cloned()
            .collect();
        admit_all(&mut fresh, &state1, &c, &block.tip, &rest);
        assert_eq!(pending(&m), pending(&fresh));
        if rules_changed {
            assert_eq!(r.executed, 9);
        } else {
            // Registrations 4, 2 and 6 are final: their rotations read those
            // enterprises, the other six records nothing the block changed.
            assert_eq!(r.executed, 3, "{r:?}");
        }
    }
}

/// Random pending sets of registrations and key rotations (some chained, some
/// conflicting), and a block of another proposer taking a random part of them in a
/// random order plus foreign registrations: the incremental recheck keeps exactly what
/// admitting everything pending again in order on the new state keeps.
mod generated {
    use super::*;
    use proptest::prelude::*;

    /// A pending record: enterprise `e`'s registration with key `k`, or a rotation
    /// of `e` from key `from` to key `to`.
    #[derive(Clone, Debug)]
    enum Op {
        Register { e: u64, k: usize },
        Rotate { e: u64, from: usize, to: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..5u64, 0..6usize).prop_map(|(e, k)| Op::Register { e, k }),
            (1..5u64, 0..6usize, 0..6usize).prop_map(|(e, from, to)| Op::Rotate { e, from, to }),
        ]
    }

    fn record(c: &Consortium, n: u64, op: &Op) -> EncodedRecord {
        match *op {
            Op::Register { e, k } => signed(
                c,
                &registrar(),
                n,
                register(&c.chain, &uscc(e), "e", &key(9, k)),
            ),
            Op::Rotate { e, from, to } => {
                signed(c, &key(9, from), n, rotate(&c.chain, &uscc(e), &key(9, to)))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn the_recheck_keeps_what_a_full_one_would(
            ops in prop::collection::vec(op(), 1..24),
            taken in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            foreign in prop::collection::vec((1..5u64, 0..6usize), 0..3),
        ) {
            let c = consortium(4, "xinlian-mempool-test", Policy::default());
            let (tip0, state0) = (Tip::genesis(&c), BTreeMap::new());
            let recs: Vec<EncodedRecord> =
                ops.iter().enumerate().map(|(n, op)| record(&c, n as u64, op)).collect();
            let mut m = Mempool::new(100, 1 << 20);
            admit_all(&mut m, &state0, &c, &tip0, &recs);
            let before: Vec<EncodedRecord> = m.records().cloned().collect();
            // The other proposer's candidates: foreign registrations, then pending
            // records in the order drawn; its block keeps those that execute.
            let mut candidates: Vec<EncodedRecord> = foreign
                .iter()
                .enumerate()
                .map(|(i, &(e, k))| record(&c, 1000 + i as u64, &Op::Register { e, k }))
                .collect();
            if !before.is_empty() {
                candidates.extend(taken.iter().map(|i| i.get(&before).clone()));
            }
            let (block, _) = build_block(
                &state0,
                &c,
                &tip0,
                public_key(&key(1, 0)),
                NOW,
                candidates.iter(),
            )
            .unwrap();
            let mut state1 = state0.clone();
            common::apply(&mut state1, block.writes.clone());
            let changed: HashSet<Vec<u8>> = block.writes.keys().cloned().collect();
            let included: HashSet<RecordId> = block.records.iter().map(EncodedRecord::id).collect();
            m.recheck(&state1, &c, &block.tip, NOW + 1, &included, &changed, false).unwrap();
            let mut fresh = Mempool::new(100, 1 << 20);
            let rest: Vec<EncodedRecord> =
                before.into_iter().filter(|r| !included.contains(&r.id())).collect();
            admit_all(&mut fresh, &state1, &c, &block.tip, &rest);
            prop_assert_eq!(pending(&m), pending(&fresh));
        }
    }
}

/// A governance proposal stops being valid at its deadline though no key changes then:
/// still pending past it, it is dropped at the next recheck, whatever the block held.
#[test]
fn a_pending_proposal_past_its_deadline_is_dropped() {
    use xinlian_client::record::{Change, Proposal};
    let c = consortium(4, "xinlian-mempool-test", Policy::default());
    let (tip0, state0) = (Tip::genesis(&c), BTreeMap::new());
    let policy = Policy {
        block_interval_ms: 300,
        ..Policy::default()
    };
    let proposal = signed(
        &c,
        &key(3, 0),
        1,
        Proposal {
            change: Change::SetPolicy(policy),
            reason: "slower blocks".into(),
            deadline: 1,
            effective: 2,
            possession: Vec::new(),
        },
    );
    let mut mp = Mempool::new(100, 1 << 20);
    assert_eq!(
        admit_all(&mut mp, &state0, &c, &tip0, std::slice::from_ref(&proposal)).len(),
        1
    );
    let other = signed(
        &c,
        &registrar(),
        1,
        register(&c.chain, &uscc(9), "nine", &key(9, 9)),
    );
    let (block, _) =
        build_block(&state0, &c, &tip0, public_key(&key(1, 0)), NOW, [&other]).unwrap();
    let mut state1 = state0.clone();
    common::apply(&mut state1, block.writes.clone());
    let changed: HashSet<Vec<u8>> = block.writes.keys().cloned().collect();
    let r = mp
        .recheck(
            &state1,
            &c,
            &block.tip,
            NOW + 1,
            &[other.id()].into(),
            &changed,
            false,
        )
        .unwrap();
    let dropped: Vec<RecordId> = r.dropped.iter().map(|(id, _)| *id).collect();
    assert_eq!(dropped, vec![proposal.id()]);
    assert!(mp.is_empty());
}
