//! Bad input to a replica changes nothing and blames its sender: a proposal of an
//! invalid block, a proposal signed by a non-validator, a synced block whose
//! certificate does not hold, and bytes that are not a message at all.

use std::collections::VecDeque;
use std::sync::Arc;

use proptest::prelude::*;
use xinlian_client::ids::Uscc;
use xinlian_client::record::{EncodedRecord, Envelope, RegisterEntity};
use xinlian_core::chain::Tip;
use xinlian_core::consensus::context::{proposal_message, sign};
use xinlian_core::consensus::ledger::{Ledger, MemLedger};
use xinlian_core::consensus::replica::{Action, Replica, Timeouts};
use xinlian_core::consensus::wire::{self, NetMsg};
use xinlian_core::execute::Consortium;
use xinlian_core::mempool::Mempool;
use xinlian_genesis::keys::public_key;
use xinlian_genesis::{Hash32, Policy, PublicKey};

mod common;
use common::{GENESIS_MS, consortium as make, key};

const NOW: i64 = GENESIS_MS + 10_000;

fn consortium() -> Arc<Consortium> {
    make(4, "xinlian-replica-test", Policy::default())
}

fn replica(c: &Arc<Consortium>, i: usize) -> (Replica<Arc<MemLedger>>, Vec<Action>) {
    Replica::new(
        c.clone(),
        key(1, i),
        Arc::new(MemLedger::new()),
        Tip::genesis(c),
        Timeouts::for_interval(c.genesis.policy.block_interval_ms),
        Mempool::new(1000, 1 << 20),
        NOW,
    )
    .unwrap()
}

fn registration(c: &Consortium, n: u64) -> EncodedRecord {
    let env = Envelope {
        chain: c.chain,
        signer: public_key(&key(2, 0)),
        nonce: n,
        body: RegisterEntity {
            uscc: Uscc::with_check(&format!("91310000{n:09}")).unwrap(),
            name: "test".into(),
            key: public_key(&key(9, n as usize)),
            check_override: None,
        }
        .into(),
    };
    EncodedRecord::new(env.sign(&key(2, 0)))
}

/// Four replicas with instant, lossless delivery, run until every one has `height`.
fn finalize(c: &Arc<Consortium>, height: u64) -> Vec<Replica<Arc<MemLedger>>> {
    let (mut rs, mut pending): (Vec<_>, VecDeque<_>) = (0..4)
        .map(|i| {
            let (r, actions) = replica(c, i);
            (r, (i, actions))
        })
        .unzip();
    let keys: Vec<PublicKey> = (0..4).map(|i| public_key(&key(1, i))).collect();
    let mut queue: VecDeque<(usize, usize, NetMsg)> = VecDeque::new();
    let mut n = 0;
    while rs.iter().any(|r| r.tip().height < height) {
        n += 1;
        if n >= 100 {
            let h: Vec<u64> = rs.iter().map(|r| r.tip().height).collect();
            let rounds: Vec<Option<u32>> = rs.iter().map(|r| r.round()).collect();
            panic!("no progress: heights {h:?} rounds {rounds:?}");
        }
        let (_, actions) = rs[0].submit(NOW + 1000 * n as i64, registration(c, n));
        pending.push_back((0, actions));
        loop {
            while let Some((from, actions)) = pending.pop_front() {
                for a in actions {
                    match a {
                        Action::Broadcast(m) => {
                            for to in (0..4).filter(|&t| t != from) {
                                queue.push_back((from, to, m.clone()));
                            }
                        }
                        Action::Relay(bytes) => {
                            for to in (0..4).filter(|&t| t != from) {
                                queue.push_back((from, to, NetMsg::Records(vec![bytes.clone()])));
                            }
                        }
                        Action::Send(peer, m) => {
                            let to = keys.iter().position(|k| *k == peer).unwrap();
                            queue.push_back((from, to, m));
                        }
                        _ => {}
                    }
                }
            }
            let Some((from, to, m)) = queue.pop_front() else {
                break;
            };
            let actions = rs[to]
                .on_message(NOW + 1000 * n as i64, keys[from], m)
                .unwrap();
            pending.push_back((to, actions));
        }
    }
    rs
}

fn penalised(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Penalise { .. }))
}

fn votes_for_a_block(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Broadcast(NetMsg::Vote(v)) if v.value.is_some()))
}

#[test]
fn four_replicas_finalize_with_certificates_clients_accept() {
    let c = consortium();
    let rs = finalize(&c, 2);
    let first = rs[0].ledger().block_and_certificate(1).unwrap().unwrap();
    for r in &rs {
        let (b, cert) = r.ledger().block_and_certificate(1).unwrap().unwrap();
        assert_eq!(b.header.hash(), first.0.header.hash());
        xinlian_client::block::verify_certificate(&b.header, &cert, &c.validators).unwrap();
    }
}

#[test]
fn a_proposal_of_an_invalid_block_is_refused_and_blamed() {
    let c = consortium();
    // A valid block of height 1, made by a real proposer, then spoiled.
    let rs = finalize(&c, 1);
    let (mut block, _) = rs[0].ledger().block_and_certificate(1).unwrap().unwrap();
    block.header.ledger_root = Hash32([7; 32]);
    let (mut fresh, _) = replica(&c, 0);
    let proposer = (0..4)
        .find(|&i| public_key(&key(1, i)) == block.header.proposer)
        .unwrap();
    let mut p = wire::WireProposal {
        height: 1,
        round: Some(0),
        pol_round: None,
        block,
        proposer: public_key(&key(1, proposer)),
        signature: xinlian_client::crypto::Signature([0; 64]),
    };
    let sp = wire::proposal_from_wire(p.clone());
    p.signature = sign(&key(1, proposer), &proposal_message(&c.chain, &sp.message));
    let actions = fresh
        .on_message(
            NOW,
            public_key(&key(1, proposer)),
            NetMsg::Proposal(Box::new(p)),
        )
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    assert_eq!(fresh.tip().height, 0);
}

#[test]
fn a_proposal_signed_by_a_non_validator_is_blamed() {
    let c = consortium();
    let rs = finalize(&c, 1);
    let (block, _) = rs[0].ledger().block_and_certificate(1).unwrap().unwrap();
    let outsider = key(7, 7);
    let mut p = wire::WireProposal {
        height: 1,
        round: Some(0),
        pol_round: None,
        block,
        proposer: public_key(&outsider),
        signature: xinlian_client::crypto::Signature([0; 64]),
    };
    let sp = wire::proposal_from_wire(p.clone());
    p.signature = sign(&outsider, &proposal_message(&c.chain, &sp.message));
    let (mut fresh, _) = replica(&c, 0);
    let actions = fresh
        .on_message(NOW, public_key(&key(1, 1)), NetMsg::Proposal(Box::new(p)))
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
}

#[test]
fn a_synced_block_is_applied_only_with_a_valid_certificate() {
    let c = consortium();
    let rs = finalize(&c, 2);
    let blocks: Vec<_> = (1..=2)
        .map(|h| rs[0].ledger().block_and_certificate(h).unwrap().unwrap())
        .collect();
    let peer = public_key(&key(1, 1));

    // One precommit signature spoiled: refused, blamed, nothing applied.
    let mut bad = blocks.clone();
    bad[0].1.signatures[0].signature.0[0] ^= 1;
    let (mut fresh, _) = replica(&c, 3);
    let actions = fresh
        .on_message(NOW, peer, NetMsg::SyncResponse { blocks: bad })
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert_eq!(fresh.tip().height, 0);

    // Too few signatures: refused as well.
    let mut thin = blocks.clone();
    thin[0].1.signatures.truncate(2);
    let actions = fresh
        .on_message(NOW, peer, NetMsg::SyncResponse { blocks: thin })
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert_eq!(fresh.tip().height, 0);

    // The genuine blocks: applied in order, the same chain.
    let actions = fresh
        .on_message(
            NOW,
            peer,
            NetMsg::SyncResponse {
                blocks: blocks.clone(),
            },
        )
        .unwrap();
    assert!(!penalised(&actions));
    assert_eq!(fresh.tip().height, 2);
    assert_eq!(fresh.tip().hash, rs[0].tip().hash);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Either a message (whose re-encoding is these very bytes) or an error.
        if let Ok(m) = NetMsg::decode(&bytes, 1 << 16) {
            prop_assert_eq!(m.encode(), bytes);
        }
    }

    #[test]
    fn oversize_messages_are_refused_before_decoding(extra in 1usize..64) {
        let m = NetMsg::Status { height: 1, tip: Hash32([1; 32]) }.encode();
        let max = m.len() - 1;
        let mut long = m.clone();
        long.extend(std::iter::repeat_n(0u8, extra));
        prop_assert!(NetMsg::decode(&m, max).is_err());
        prop_assert!(NetMsg::decode(&long, m.len()).is_err());
    }
}
