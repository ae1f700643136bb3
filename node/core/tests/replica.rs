//! Bad input to a replica changes nothing and blames its sender: a proposal of an
//! invalid block, a proposal signed by a non-validator, a synced block whose
//! certificate does not hold, and bytes that are not a message at all.

use std::collections::VecDeque;
use std::sync::Arc;

use proptest::prelude::*;
use xinlian_client::block::{Block, Certificate};
use xinlian_client::hidden::Amount;
use xinlian_client::ids::Uscc;
use xinlian_client::merkle::leaf_hash;
use xinlian_client::record::{
    Commission, EncodedRecord, Envelope, Product, Quantity, RegisterEntity,
};
use xinlian_client::when::EventTime;
use xinlian_core::chain::Tip;
use xinlian_core::consensus::context::sign;
use xinlian_core::consensus::ledger::{Ledger, MemLedger};
use xinlian_core::consensus::replica::{Action, Replica, Timeouts, Timer};
use xinlian_core::consensus::wire::{self, NetMsg};
use xinlian_core::execute::Consortium;
use xinlian_core::mempool::Mempool;
use xinlian_genesis::keys::public_key;
use xinlian_genesis::{Hash32, Policy, PublicKey, TracePolicy};

mod common;
use common::{GENESIS_MS, consortium as make, key};

const NOW: i64 = GENESIS_MS + 10_000;

fn consortium() -> Arc<Consortium> {
    make(4, "xinlian-replica-test", Policy::default())
}

fn replica(c: &Arc<Consortium>, i: usize) -> (Replica<Arc<MemLedger>>, Vec<Action>) {
    replica_at(c, i, NOW)
}

/// Validator `i`'s replica started at `now`.
fn replica_at(c: &Arc<Consortium>, i: usize, now: i64) -> (Replica<Arc<MemLedger>>, Vec<Action>) {
    Replica::new(
        c.clone(),
        key(1, i),
        Arc::new(MemLedger::new()),
        Tip::genesis(c),
        Timeouts::for_interval(c.genesis.policy.block_interval_ms),
        Mempool::new(1000, 1 << 20),
        now,
    )
    .unwrap()
}

fn registration(c: &Consortium, n: u64) -> EncodedRecord {
    let uscc = Uscc::with_check(&format!("91310000{n:09}")).unwrap();
    let enterprise = key(9, n as usize);
    let possession = xinlian_client::crypto::prove_possession(
        &enterprise,
        &c.chain,
        xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
    );
    let env = Envelope {
        chain: c.chain,
        signer: public_key(&key(2, 0)),
        nonce: n,
        body: RegisterEntity {
            operator: None,
            uscc,
            name: "test".into(),
            key: public_key(&enterprise),
            check_override: None,
            possession,
        }
        .into(),
    };
    EncodedRecord::new(env.sign(&key(2, 0)))
}

/// Enterprise 1 (registered by `registration(c, 1)`) commissions a drug lot of `amount`.
fn drug_commission(c: &Consortium, amount: Amount) -> EncodedRecord {
    let env = Envelope {
        chain: c.chain,
        signer: public_key(&key(9, 1)),
        nonce: 1,
        body: Commission {
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
            time: EventTime {
                unix_ms: GENESIS_MS,
                offset_minutes: 480,
            },
        }
        .into(),
    };
    EncodedRecord::new(env.sign(&key(9, 1)))
}

/// Four replicas with instant, lossless delivery, run until every one has `height`.
fn finalize(c: &Arc<Consortium>, height: u64) -> Vec<Replica<Arc<MemLedger>>> {
    finalize_with(c, height, |n| registration(c, n))
}

/// As [`finalize`], the `n`-th block's one record `record(n)`.
fn finalize_with(
    c: &Arc<Consortium>,
    height: u64,
    record: impl Fn(u64) -> EncodedRecord,
) -> Vec<Replica<Arc<MemLedger>>> {
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
        let (_, actions) = rs[0].submit(NOW + 1000 * n as i64, record(n));
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
                        // A height due at once (a submission made it so).
                        Action::Schedule {
                            timer: Timer::NextHeight,
                            after_ms: 0,
                        } => {
                            let actions = rs[from]
                                .on_timer(NOW + 1000 * n as i64, Timer::NextHeight)
                                .unwrap();
                            pending.push_back((from, actions));
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

/// The peers asked for blocks from height `from`.
fn asked_from(actions: &[Action], from: u64) -> Vec<PublicKey> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p, NetMsg::SyncRequest { from: f, .. }) if *f == from => Some(*p),
            _ => None,
        })
        .collect()
}

/// `peer`'s answer of `blocks` to a sync or repair request.
fn answer(
    r: &mut Replica<Arc<MemLedger>>,
    peer: PublicKey,
    blocks: Vec<(Block, Certificate)>,
) -> Vec<Action> {
    r.on_message(NOW, peer, NetMsg::SyncResponse { blocks })
        .unwrap()
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
    let msg = proposal(&c, block.clone(), proposer, Some(0), None);
    let actions = handed(&mut fresh, public_key(&key(1, proposer)), msg, &block);
    assert!(penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    assert_eq!(fresh.tip().height, 0);
}

/// A record's id covers its envelope, not its signature: a lying proposer can put in a
/// block the bytes of a record an honest node holds admitted, with a forged signature.
/// The node checks the block's signatures on the bytes it was sent (what it verified
/// at admission is remembered by key, signature and message, never by id), so it
/// refuses the block and blames the proposer.
#[test]
fn a_block_with_a_forged_signature_on_an_admitted_record_is_refused() {
    let c = consortium();
    let (mut honest, _) = replica(&c, 0);
    let genuine = registration(&c, 1);
    let (admitted, _) = honest.submit(NOW, genuine.clone());
    assert_eq!(admitted, Ok(genuine.id()));
    let mut forged = genuine.record().clone();
    forged.signature.0[0] ^= 1;
    let forged = EncodedRecord::new(forged);
    assert_eq!(forged.id(), genuine.id(), "the same id, other bytes");
    assert_ne!(forged.bytes(), genuine.bytes());
    // Height 1's round-0 proposer (v1) builds on `rec`: the block is well-formed, its
    // roots commit to what it holds; `to` answers its proposal.
    let propose = |to: &mut Replica<Arc<MemLedger>>, rec: &EncodedRecord| {
        let (executed, rejected) = xinlian_core::chain::build_block(
            &MemLedger::new(),
            &c,
            &Tip::genesis(&c),
            node(1),
            NOW,
            [rec],
        )
        .unwrap();
        assert!(rejected.is_empty());
        let block = executed.block();
        let msg = proposal(&c, block.clone(), 1, Some(0), None);
        handed(to, node(1), msg, &block)
    };
    let actions = propose(&mut honest, &forged);
    assert!(penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    // The control: the same block built on the genuine bytes gets a vote.
    let (mut other, _) = replica(&c, 0);
    let actions = propose(&mut other, &genuine);
    assert!(votes_for_a_block(&actions), "{actions:?}");
    // The genuine record is still pending, and goes in the next block.
    assert!(honest.mempool().contains(&genuine.id()));
    assert_eq!(
        honest
            .mempool()
            .get(&genuine.id())
            .map(EncodedRecord::bytes),
        Some(genuine.bytes())
    );
}

#[test]
fn a_proposal_signed_by_a_non_validator_is_blamed() {
    let c = consortium();
    let rs = finalize(&c, 1);
    let (block, _) = rs[0].ledger().block_and_certificate(1).unwrap().unwrap();
    let outsider = key(7, 7);
    let p = signed_proposal(&c, block, &outsider, Some(0), None);
    let (mut fresh, _) = replica(&c, 0);
    let actions = fresh.on_message(NOW, public_key(&key(1, 1)), p).unwrap();
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

    // Only a peer asked is heard: each answer below follows its peer's claim.
    let (mut fresh, _) = replica(&c, 3);
    let claims = |fresh: &mut Replica<Arc<MemLedger>>, peer: PublicKey| {
        let tip = Hash32([0; 32]);
        let a = fresh
            .on_message(NOW, peer, NetMsg::Status { height: 2, tip })
            .unwrap();
        assert!(
            a.iter()
                .any(|a| matches!(a, Action::Send(p, NetMsg::SyncRequest { .. }) if *p == peer)),
            "{a:?}"
        );
    };
    // One precommit signature spoiled: refused, blamed, nothing applied.
    let mut bad = blocks.clone();
    bad[0].1.signatures[0].signature.0[0] ^= 1;
    let peer = public_key(&key(1, 1));
    claims(&mut fresh, peer);
    let actions = fresh
        .on_message(NOW, peer, NetMsg::SyncResponse { blocks: bad })
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert_eq!(fresh.tip().height, 0);

    // Too few signatures: refused as well.
    let mut thin = blocks.clone();
    thin[0].1.signatures.truncate(2);
    let peer = public_key(&key(1, 2));
    claims(&mut fresh, peer);
    let actions = fresh
        .on_message(NOW, peer, NetMsg::SyncResponse { blocks: thin })
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert_eq!(fresh.tip().height, 0);

    // The genuine blocks: applied in order, the same chain.
    let peer = public_key(&key(1, 0));
    claims(&mut fresh, peer);
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

/// A record's sealed copy (its hidden amounts as their commitments) has the opened
/// record's id and leaf, but no node executes it: relayed, or in a synced block under
/// the block's true certificate, it is refused and the peer that sent it blamed.
#[test]
fn a_records_sealed_copy_relayed_or_synced_is_refused_and_blamed() {
    let policy = Policy {
        trace: TracePolicy::hiding_quantities("drug"),
        ..Policy::default()
    };
    let c = make(4, "xinlian-replica-sealed", policy);
    let opened = drug_commission(&c, Amount::hide(5));
    // (Each round submits its record, a height is made when one is pending.)
    let rs = finalize_with(&c, 3, |n| match n {
        1 => registration(&c, 1),
        _ => opened.clone(),
    });
    let all: Vec<_> = (1..=3)
        .map(|h| rs[0].ledger().block_and_certificate(h).unwrap().unwrap())
        .collect();
    // Up to the block that holds the commission.
    let holds = |b: &Block| b.records.contains(opened.record());
    let at = all
        .iter()
        .position(|(b, _)| holds(b))
        .expect("the commission is final");
    let blocks = all[..=at].to_vec();
    let height = at as u64 + 1;
    let sealed = opened.ledger_form().into_owned();
    assert_eq!(
        sealed.leaf(),
        opened.leaf(),
        "the copy passes for the record"
    );
    assert!(sealed.record().envelope.body.has_sealed_amount());

    // Relayed: refused before admission, the relaying peer blamed.
    let (mut fresh, _) = replica(&c, 3);
    let actions = fresh
        .on_message(NOW, node(0), NetMsg::Records(vec![sealed.bytes().to_vec()]))
        .unwrap();
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Penalise { reason, .. } if reason.contains("sealed copy"))),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Relay(_))),
        "{actions:?}"
    );

    // Synced: block 1 applies, block 2 with the copy does not, and the peer is blamed.
    let mut copied = blocks.clone();
    for r in &mut copied[at].0.records {
        if r == opened.record() {
            *r = sealed.record().clone();
        }
    }
    let tip = Hash32([0; 32]);
    fresh
        .on_message(NOW, node(1), NetMsg::Status { height, tip })
        .unwrap();
    let actions = fresh
        .on_message(NOW, node(1), NetMsg::SyncResponse { blocks: copied })
        .unwrap();
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Penalise { reason, .. }
                if *reason == format!("synced block {height} has a sealed copy"))),
        "{actions:?}"
    );
    assert_eq!(fresh.tip().height, height - 1);
    // One height behind, a validator waits a while for consensus, then syncs the rest:
    // the opened record completes the chain.
    let later = NOW + 60_000;
    let actions = fresh
        .on_message(later, node(2), NetMsg::Status { height, tip })
        .unwrap();
    let asked = (actions.iter())
        .find_map(|a| match a {
            Action::Send(p, NetMsg::SyncRequest { .. }) => Some(*p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync asked: {actions:?}"));
    let actions = fresh
        .on_message(later, asked, NetMsg::SyncResponse { blocks })
        .unwrap();
    assert!(!penalised(&actions), "{actions:?}");
    assert_eq!(fresh.tip().height, height);
    assert_eq!(fresh.tip().hash, all[at].0.header.hash());
}

/// A replica at height 2 that two peers told they are at 2 too, and its own (true)
/// block 1 with its certificate: the start of the repair tests.
fn at_height_2_with_two_peers() -> (Replica<Arc<MemLedger>>, (Block, Certificate)) {
    let c = consortium();
    let mut r = finalize(&c, 2).pop().unwrap();
    let true_copy = r.ledger().block_and_certificate(1).unwrap().unwrap();
    let tip = r.tip().hash;
    for i in 0..2 {
        r.on_message(NOW, node(i), NetMsg::Status { height: 2, tip })
            .unwrap();
    }
    (r, true_copy)
}

/// A height whose stored history was found damaged is asked of one peer at a time
/// (`SyncRequest` for that height alone); a copy that is not the block committed here
/// blames its peer and the next peer is asked; the true copy ends the repair.
#[test]
fn a_damaged_height_is_asked_of_a_peer_and_a_false_copy_is_blamed() {
    let (mut r, true_copy) = at_height_2_with_two_peers();
    let asked = |actions: &[Action]| asked_from(actions, 1);
    let actions = r.history_damaged(NOW, 1, "a record of block 1: checksum mismatch");
    let first = asked(&actions);
    assert_eq!(first.len(), 1, "{actions:?}");

    let mut lie = true_copy.clone();
    lie.0.header.time_ms += 1;
    let actions = answer(&mut r, first[0], vec![lie]);
    assert!(penalised(&actions), "{actions:?}");
    let second = asked(&actions);
    assert!(second.len() == 1 && second != first, "{actions:?}");

    let actions = answer(&mut r, second[0], vec![true_copy]);
    assert!(
        !penalised(&actions) && asked(&actions).is_empty(),
        "{actions:?}"
    );
    // Nothing is left to ask for.
    let actions = r.on_timer(NOW + 60_000, Timer::Status).unwrap();
    assert!(asked(&actions).is_empty(), "{actions:?}");
    // Heights not committed here are not damage.
    assert!(asked(&r.history_damaged(NOW, 9, "no such block")).is_empty());
}

/// Found by review: repair asks shared the window of peers whose answers are read with
/// sync asks (pushing each other's peer out, so honest peers were struck), could go to
/// the peer syncing us (whose Busy then meant either), and a height whose damage no copy
/// mends was asked for again at every read of it.
#[test]
fn a_repair_keeps_clear_of_sync_and_a_height_beyond_repair_is_not_asked_again() {
    let (mut r, true_copy) = at_height_2_with_two_peers();
    let tip = r.tip().hash;
    let asked = asked_from;
    // A peer claims more: it is the one syncing us, and a repair goes to another.
    let actions = r
        .on_message(NOW, node(2), NetMsg::Status { height: 9, tip })
        .unwrap();
    assert_eq!(asked(&actions, 3), vec![node(2)], "{actions:?}");
    let actions = r.history_damaged(NOW, 1, "a record of block 1: checksum mismatch");
    let first = asked(&actions, 1);
    assert!(first.len() == 1 && first[0] != node(2), "{actions:?}");
    // Busy at once: no blame, and the other peer is asked.
    let actions = r.on_message(NOW, first[0], NetMsg::SyncBusy).unwrap();
    let second = asked(&actions, 1);
    assert!(
        !penalised(&actions) && second.len() == 1 && second != first && second[0] != node(2),
        "{actions:?}"
    );
    // An empty answer from the sync peer, to a request above our tip: struck, and
    // not asked again at once.
    let actions = answer(&mut r, node(2), vec![]);
    assert!(asked(&actions, 3).is_empty(), "{actions:?}");
    // The true copy equals ours and reads back whole: mended meanwhile (a second report
    // of it was queued), so a report of it later is asked for again.
    let actions = answer(&mut r, second[0], vec![true_copy.clone()]);
    assert!(!penalised(&actions), "{actions:?}");
    let again = r.history_damaged(NOW + 1, 1, "a record of block 1: checksum mismatch");
    let third = asked(&again, 1);
    assert_eq!(third.len(), 1, "{again:?}");
    // Damage no copy mends (an index entry): given up once, and reading the same
    // damage again asks nobody.
    r.ledger().damage_beyond_repair(1);
    let actions = answer(&mut r, third[0], vec![true_copy]);
    assert!(!penalised(&actions), "{actions:?}");
    let again = r.history_damaged(NOW + 2, 1, "the entry of block 1");
    assert!(asked(&again, 1).is_empty(), "{again:?}");
    let later = r.on_timer(NOW + 60_000, Timer::Status).unwrap();
    assert!(asked(&later, 1).is_empty(), "{later:?}");
}

/// A damaged block entry (header and certificate) is mended from a peer's copy whose
/// certificate finalises it under the validators in force at its height, kept to a
/// quorum; a copy whose certificate does not is the peer's lie.
#[test]
fn a_damaged_block_entry_is_mended_with_a_certified_copy_and_a_false_certificate_is_blamed() {
    let (mut r, true_copy) = at_height_2_with_two_peers();
    let c = consortium();
    let asked = |actions: &[Action]| asked_from(actions, 1);
    r.ledger().damage_block_entry(1);
    let actions = r.history_damaged(NOW, 1, "block entry 1: checksum mismatch");
    let first = asked(&actions);
    assert_eq!(first.len(), 1, "{actions:?}");
    // The true block with one signature short of a quorum.
    let mut short = true_copy.clone();
    short.1 = xinlian_client::block::trimmed_to_quorum(&short.1, &c.validators);
    short.1.signatures.pop();
    let actions = answer(&mut r, first[0], vec![short]);
    assert!(penalised(&actions), "{actions:?}");
    let second = asked(&actions);
    assert!(second.len() == 1 && second != first, "{actions:?}");
    assert!(r.ledger().block_and_certificate(1).is_err());
    // The true block with block 2's certificate.
    let (_, other) = r.ledger().block_and_certificate(2).unwrap().unwrap();
    let actions = answer(&mut r, second[0], vec![(true_copy.0.clone(), other)]);
    assert!(penalised(&actions), "{actions:?}");
    // The true copy mends it.
    let third = asked(&r.on_timer(NOW + 60_000, Timer::Status).unwrap());
    assert_eq!(third.len(), 1);
    let actions = answer(&mut r, third[0], vec![true_copy.clone()]);
    assert!(!penalised(&actions), "{actions:?}");
    let (block, cert) = r.ledger().block_and_certificate(1).unwrap().unwrap();
    assert_eq!(block, true_copy.0);
    xinlian_client::block::verify_certificate(&block.header, &cert, &c.validators).unwrap();
    assert_eq!(
        cert,
        xinlian_client::block::trimmed_to_quorum(&true_copy.1, &c.validators)
    );
}

/// A copy whose certificate does not fit the place of ours is no lie: its peer sits
/// out, the next is asked, and once every peer's did not fit the height is given up. An
/// entry that waits for the next block's is asked for after that one.
#[test]
fn an_unfit_copy_asks_the_next_peer_and_a_waiting_entry_asks_for_the_next_block_first() {
    use xinlian_core::consensus::ledger::RepairOutcome;
    let (mut r, true_copy) = at_height_2_with_two_peers();
    let unfit = || RepairOutcome::Unfit("needs 200 bytes, its place holds 199".into());
    let mut asked = asked_from(
        &r.history_damaged(NOW, 1, "block entry 1: checksum mismatch"),
        1,
    );
    let mut peers = Vec::new();
    while let [peer] = asked[..] {
        assert!(
            !peers.contains(&peer),
            "{peer} asked twice before the others"
        );
        assert!(peers.len() < 8, "never given up");
        peers.push(peer);
        r.ledger().answer_repair(1, unfit());
        let actions = answer(&mut r, peer, vec![true_copy.clone()]);
        assert!(!penalised(&actions), "{actions:?}");
        asked = asked_from(&actions, 1);
    }
    assert!(peers.len() >= 2, "the next peer was asked: {peers:?}");
    let later = r.on_timer(NOW + 60_000, Timer::Status).unwrap();
    assert!(asked_from(&later, 1).is_empty(), "given up: {later:?}");

    // A fresh replica whose block 1's entry waits for block 2's.
    let (mut r, true_copy) = at_height_2_with_two_peers();
    r.ledger().answer_repair(1, RepairOutcome::Waits { on: 2 });
    let first = asked_from(
        &r.history_damaged(NOW, 1, "block entry 1: checksum mismatch"),
        1,
    );
    let actions = answer(&mut r, first[0], vec![true_copy]);
    assert!(!penalised(&actions), "{actions:?}");
    assert_eq!(
        asked_from(&actions, 2).len(),
        1,
        "block 2 next: {actions:?}"
    );
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

// ---------------------------------------------------------------------------------------
// A validator that lies with well-signed messages (issue 14). Each test below failed
// before its fix: a panic, a second signature, or a replica that did what it was told.

fn node(i: usize) -> PublicKey {
    public_key(&key(1, i))
}

/// A proposal of `block`, signed by validator `signer`.
fn proposal(
    c: &Consortium,
    block: xinlian_client::block::Block,
    signer: usize,
    round: Option<u32>,
    pol_round: Option<u32>,
) -> NetMsg {
    signed_proposal(c, block, &key(1, signer), round, pol_round)
}

/// A proposal of `block` for its height, signed by any key.
fn signed_proposal(
    c: &Consortium,
    block: xinlian_client::block::Block,
    signer: &xinlian_genesis::keys::SigningKey,
    round: Option<u32>,
    pol_round: Option<u32>,
) -> NetMsg {
    NetMsg::Proposal(Box::new(wire::WireProposal::of_block(
        &c.chain, &block, round, pol_round, signer,
    )))
}

/// `msg` handed to `r` by `from`, and each ask for a proposal's records that follows
/// answered from `block` by the peer asked: a node that lacked the records, once it
/// has them.
fn handed(
    r: &mut Replica<Arc<MemLedger>>,
    from: PublicKey,
    msg: NetMsg,
    block: &Block,
) -> Vec<Action> {
    let mut out = r.on_message(NOW, from, msg).unwrap();
    let mut i = 0;
    while i < out.len() {
        if let Action::Send(peer, NetMsg::PartsRequest { block: id, leaves }) = &out[i] {
            let records = leaves
                .iter()
                .filter_map(|l| {
                    block
                        .records
                        .iter()
                        .map(|r| r.canonical_bytes())
                        .find(|b| leaf_hash(b) == *l)
                })
                .collect();
            let (peer, id) = (*peer, *id);
            let more = r
                .on_message(NOW, peer, NetMsg::Parts { block: id, records })
                .unwrap();
            out.extend(more);
        }
        i += 1;
    }
    out
}

/// A precommit (or prevote) of validator `i` for `value` at height 1, round 0.
fn vote(c: &Consortium, i: usize, precommit: bool, value: Option<Hash32>) -> NetMsg {
    let mut v = wire::WireVote {
        precommit,
        height: 1,
        round: Some(0),
        value,
        validator: node(i),
        signature: xinlian_client::crypto::Signature([0; 64]),
    };
    let sv = wire::vote_from_wire(&v);
    v.signature = sign(
        &key(1, i),
        &xinlian_core::consensus::context::vote_message(&c.chain, &sv.message),
    );
    NetMsg::Vote(v)
}

/// Height 1's block as the consortium finalized it, by round 0's proposer (`v1`).
fn first_block(c: &Arc<Consortium>) -> xinlian_client::block::Block {
    let rs = finalize(c, 1);
    let (block, _) = rs[0].ledger().block_and_certificate(1).unwrap().unwrap();
    assert_eq!(
        block.header.proposer,
        node(1),
        "round 0 of height 1 is v1's"
    );
    block
}

fn proposed_ids(actions: &[Action]) -> Vec<Hash32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(NetMsg::Proposal(p)) => Some(p.header.hash()),
            _ => None,
        })
        .collect()
}

/// A fresh validator `v0` handed `msg` from validator `from`: the sender is blamed,
/// and no vote for a block follows.
fn blamed_without_a_vote(c: &Arc<Consortium>, from: usize, msg: NetMsg) {
    let (mut honest, _) = replica(c, 0);
    let actions = honest.on_message(NOW, node(from), msg).unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
}

#[test]
fn a_proposal_for_no_round_is_blamed_and_stops_nobody() {
    let c = consortium();
    let block = first_block(&c);
    blamed_without_a_vote(&c, 1, proposal(&c, block, 1, None, None));
}

#[test]
fn a_proposal_whose_block_names_another_proposer_is_blamed() {
    let c = consortium();
    let mut block = first_block(&c);
    block.header.proposer = node(2);
    blamed_without_a_vote(&c, 1, proposal(&c, block, 1, Some(0), None));
}

#[test]
fn a_proposal_by_a_validator_out_of_turn_is_blamed_unexecuted() {
    let c = consortium();
    let mut block = first_block(&c);
    // v2 is not round 0's proposer; its block is otherwise valid.
    block.header.proposer = node(2);
    blamed_without_a_vote(&c, 2, proposal(&c, block, 2, Some(0), None));
}

#[test]
fn a_flood_of_valid_proposals_cannot_make_the_decision_fail() {
    let c = consortium();
    let block = first_block(&c);
    let (mut honest, _) = replica(&c, 0);
    // Round 0's proposer signs 70 distinct valid blocks for its one slot: the same
    // records at 70 different times. The first is the one the others decide on.
    let first_id = block.header.hash();
    for rec in &block.records {
        let (admitted, _) = honest.submit(NOW, EncodedRecord::new(rec.clone()));
        admitted.unwrap();
    }
    let mut blamed = 0;
    for k in 0..70 {
        let mut b = block.clone();
        b.header.time_ms += k;
        let actions = honest
            .on_message(NOW, node(1), proposal(&c, b, 1, Some(0), None))
            .unwrap();
        blamed += usize::from(penalised(&actions));
    }
    for i in 1..4 {
        honest
            .on_message(NOW, node(i), vote(&c, i, true, Some(first_id)))
            .unwrap();
    }
    assert_eq!(honest.tip().height, 1, "the decided block is committed");
    assert_eq!(honest.tip().hash, first_id);
    assert!(
        blamed >= 68,
        "equivocations beyond the second are blamed: {blamed}"
    );
}

#[test]
fn a_restarted_proposer_signs_the_same_proposal_again() {
    let c = consortium();
    let ledger = Arc::new(MemLedger::new());
    let start = |now: i64| {
        Replica::new(
            c.clone(),
            key(1, 1),
            ledger.clone(),
            Tip::genesis(&c),
            Timeouts::for_interval(c.genesis.policy.block_interval_ms),
            Mempool::new(1000, 1 << 20),
            now,
        )
        .unwrap()
    };
    // v1 proposes for height 1 round 0 at once (a heartbeat is due), then crashes.
    let (first, actions) = start(NOW);
    let before = proposed_ids(&actions);
    assert_eq!(before.len(), 1, "{actions:?}");
    drop(first);
    ledger.crash();
    // Back a little later: a fresh block would carry another time, so another hash.
    let (_again, actions) = start(NOW + 50);
    for id in proposed_ids(&actions) {
        assert_eq!(
            id, before[0],
            "a second, different proposal for the same slot"
        );
    }
    for a in &actions {
        if let Action::Broadcast(NetMsg::Vote(v)) = a
            && v.round == Some(0)
            && !v.precommit
        {
            assert_eq!(v.value, Some(before[0]), "a second, different prevote");
        }
    }
}

/// The peers `actions` ask for blocks.
fn asks(actions: &[Action]) -> Vec<PublicKey> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p, NetMsg::SyncRequest { .. }) => Some(*p),
            _ => None,
        })
        .collect()
}

/// Blocks 1 and 2 with their certificates, as a peer ahead would send them, and the
/// status period of the consortium.
fn two_certified_blocks() -> (Vec<(Block, Certificate)>, i64) {
    let c = consortium();
    let rs = finalize(&c, 2);
    let blocks = (1..=2)
        .map(|h| rs[1].ledger().block_and_certificate(h).unwrap().unwrap())
        .collect();
    let status_ms = Timeouts::for_interval(c.genesis.policy.block_interval_ms).status_ms as i64;
    (blocks, status_ms)
}

#[test]
fn a_busy_peer_is_asked_again_soon_and_another_meanwhile() {
    let (blocks, status_ms) = two_certified_blocks();
    let (mut lagging, _) = replica(&consortium(), 0);
    let tip = Hash32([0; 32]);
    let a = lagging
        .on_message(NOW, node(3), NetMsg::Status { height: 4, tip })
        .unwrap();
    assert_eq!(asks(&a), vec![node(3)]);
    lagging
        .on_message(NOW, node(2), NetMsg::Status { height: 2, tip })
        .unwrap();
    // v3 is too busy: the other peer is asked at once.
    let a = lagging.on_message(NOW, node(3), NetMsg::SyncBusy).unwrap();
    assert_eq!(asks(&a), vec![node(2)]);
    let a = lagging
        .on_message(NOW, node(2), NetMsg::SyncResponse { blocks })
        .unwrap();
    assert_eq!(lagging.tip().height, 2);
    assert!(asks(&a).is_empty(), "v3 sits out a status period: {a:?}");
    // No strike: one status period later v3 is asked again (an empty answer would
    // have made it sit out two).
    let a = lagging.on_timer(NOW + status_ms, Timer::Status).unwrap();
    assert_eq!(asks(&a), vec![node(3)]);
    // "Busy" from a peer not asked changes nothing.
    let a = lagging
        .on_message(NOW + status_ms, node(1), NetMsg::SyncBusy)
        .unwrap();
    assert!(a.is_empty(), "{a:?}");
    // "Busy" after holding the request longer than a status period is struck as
    // silence is: v3 now sits out two periods.
    let late = NOW + 3 * status_ms;
    lagging.on_message(late, node(3), NetMsg::SyncBusy).unwrap();
    let a = lagging.on_timer(late + status_ms, Timer::Status).unwrap();
    assert!(asks(&a).is_empty(), "a late busy is struck: {a:?}");
    let a = lagging
        .on_timer(late + 2 * status_ms, Timer::Status)
        .unwrap();
    assert_eq!(asks(&a), vec![node(3)]);
}

#[test]
fn a_peer_lying_about_its_height_does_not_capture_sync() {
    let (blocks, status_ms) = two_certified_blocks();
    // An observer would do; here v3 lies: it claims the greatest height there is, and
    // answers nothing. v2 tells the truth.
    let (mut lagging, _) = replica(&consortium(), 0);
    let tip = Hash32([0; 32]);
    let a = lagging
        .on_message(
            NOW,
            node(3),
            NetMsg::Status {
                height: u64::MAX,
                tip,
            },
        )
        .unwrap();
    assert_eq!(asks(&a), vec![node(3)]);
    lagging
        .on_message(NOW, node(2), NetMsg::Status { height: 2, tip })
        .unwrap();
    // The liar's silence costs a few status periods, then the truthful peer is asked.
    let mut now = NOW;
    let mut asked = Vec::new();
    for _ in 0..6 {
        now += status_ms;
        let a = lagging
            .on_timer(now, xinlian_core::consensus::replica::Timer::Status)
            .unwrap();
        asked.extend(asks(&a));
    }
    assert_eq!(
        asked,
        vec![node(2)],
        "after the liar's silence, the truthful peer"
    );
    let a = lagging
        .on_message(
            now,
            node(2),
            NetMsg::SyncResponse {
                blocks: blocks.clone(),
            },
        )
        .unwrap();
    assert_eq!(lagging.tip().height, 2);
    // Its back-off over, the liar's claim is tried once more: an empty answer strikes
    // too, and it is not asked again in a row.
    assert_eq!(asks(&a), vec![node(3)]);
    lagging
        .on_message(now, node(3), NetMsg::SyncResponse { blocks: vec![] })
        .unwrap();
    let a = lagging
        .on_timer(
            now + status_ms,
            xinlian_core::consensus::replica::Timer::Status,
        )
        .unwrap();
    assert!(asks(&a).is_empty(), "the liar sits out its back-off: {a:?}");
}

#[test]
fn an_unsigned_vote_for_the_next_height_starts_nothing() {
    let c = consortium();
    // Early: no block is due yet, so only a validator's start would start this one.
    let early = GENESIS_MS + 100;
    let (mut r, _) = Replica::new(
        c.clone(),
        key(1, 0),
        Arc::new(MemLedger::new()),
        Tip::genesis(&c),
        Timeouts::for_interval(c.genesis.policy.block_interval_ms),
        Mempool::new(1000, 1 << 20),
        early,
    )
    .unwrap();
    assert_eq!(r.round(), None);
    let NetMsg::Vote(mut v) = vote(&c, 2, false, None) else {
        unreachable!()
    };
    v.signature.0[0] ^= 1;
    r.on_message(early, node(2), NetMsg::Vote(v)).unwrap();
    assert_eq!(r.round(), None, "a forged vote started the height");
    // One validator's genuine vote does not either (it could rush every height).
    r.on_message(early, node(2), vote(&c, 2, false, None))
        .unwrap();
    assert_eq!(r.round(), None, "one validator started the height");
    // Votes of more than a third of the power do.
    r.on_message(early, node(3), vote(&c, 3, false, None))
        .unwrap();
    assert_eq!(r.round(), Some(0));
}

#[test]
fn proposals_for_later_heights_are_kept_only_from_members() {
    let c = consortium();
    let mut block = first_block(&c);
    block.header.height = 5;
    let p = signed_proposal(&c, block, &key(7, 7), Some(0), None);
    let (mut r, _) = replica(&c, 0);
    let actions = r.on_message(NOW, node(1), p).unwrap();
    assert!(
        penalised(&actions),
        "a self-signed proposal kept for later: {actions:?}"
    );
}

#[test]
fn a_certificate_for_the_last_round_there_is_is_refused_not_counted_past() {
    let c = consortium();
    let (mut honest, _) = replica(&c, 0);
    // Precommits of three validators for round u32::MAX: Malachite would count the
    // round after it and overflow (found by the `replica` fuzz target).
    let round = u32::MAX;
    let signatures = (1..4)
        .map(|i| {
            let v = wire::WireVote {
                precommit: true,
                height: 1,
                round: Some(round),
                value: None,
                validator: node(i),
                signature: xinlian_client::crypto::Signature([0; 64]),
            };
            let sv = wire::vote_from_wire(&v);
            wire::WireRoundSignature {
                precommit: true,
                value: None,
                validator: node(i),
                signature: sign(
                    &key(1, i),
                    &xinlian_core::consensus::context::vote_message(&c.chain, &sv.message),
                ),
            }
        })
        .collect();
    let cert = NetMsg::RoundCertificate(wire::WireRoundCertificate {
        height: 1,
        round: Some(round),
        precommits: true,
        signatures,
    });
    let actions = honest.on_message(NOW, node(1), cert).unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert_eq!(honest.round(), Some(0));
}

/// A validator that starts with no write-ahead log (a restored store) listens before
/// its first height: it starts none while more peers than could lie (f + 1) claim
/// heights above it, and asks them for the blocks instead; one peer's claim alone
/// (perhaps a liar's) holds it back no longer than the listening; a sole validator
/// does not listen.
#[test]
fn a_validator_without_a_log_listens_and_catches_up_before_it_signs() {
    let c = consortium();
    let timeouts = Timeouts::for_node(c.genesis.policy.block_interval_ms);
    let listen = timeouts.listen_first_ms as i64;
    assert!(listen > 0);
    let start = |claims: &[usize]| {
        let (mut r, actions) = Replica::new(
            c.clone(),
            key(1, 0),
            Arc::new(MemLedger::new()),
            Tip::genesis(&c),
            timeouts.clone(),
            Mempool::new(1000, 1 << 20),
            NOW,
        )
        .unwrap();
        assert_eq!(r.round(), None, "a height started before listening");
        assert!(!votes_for_a_block(&actions));
        let mut seen = Vec::new();
        for i in claims {
            seen.extend(
                r.on_message(
                    NOW + 10,
                    node(*i),
                    NetMsg::Status {
                        height: 5,
                        tip: Hash32([7; 32]),
                    },
                )
                .unwrap(),
            );
        }
        seen.extend(r.on_timer(NOW + listen, Timer::NextHeight).unwrap());
        (r, seen)
    };
    let (behind, actions) = start(&[1, 2]);
    assert_eq!(
        behind.round(),
        None,
        "started a height with f + 1 peers ahead"
    );
    assert!(
        !asked_from(&actions, 1).is_empty(),
        "asked nobody for the blocks"
    );
    let (alone, _) = start(&[1]);
    assert_eq!(alone.round(), Some(0), "one peer's claim held it back");
    // A sole validator has no peer to hear from: it starts at once.
    let sole = make(1, "xinlian-replica-test", Policy::default());
    let (_, actions) = Replica::new(
        sole.clone(),
        key(1, 0),
        Arc::new(MemLedger::new()),
        Tip::genesis(&sole),
        timeouts.clone(),
        Mempool::new(1000, 1 << 20),
        NOW,
    )
    .unwrap();
    assert!(votes_for_a_block(&actions), "a sole validator listened");
}

/// The asks for a proposal's records in `actions`: whom, and which leaves.
fn parts_asked(actions: &[Action]) -> Vec<(PublicKey, Vec<Hash32>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p, NetMsg::PartsRequest { leaves, .. }) => Some((*p, leaves.clone())),
            _ => None,
        })
        .collect()
}

/// Records travel once, by the relay; a proposal names them by leaf. A validator that
/// lacks some asks the node that sent the proposal, holds every answer to the block's
/// leaves (a record not in the block, or another signature on an asked record's
/// envelope, is refused and blamed), asks another validator for what an answer left
/// out, and votes once the block is whole.
#[test]
fn a_validator_missing_proposal_records_fetches_them_and_votes() {
    let c = consortium();
    // Past the block interval, before a heartbeat is due: v1 proposes when it has records.
    const NOW: i64 = GENESIS_MS + 1_000;
    let recs: Vec<EncodedRecord> = (1..=3).map(|n| registration(&c, n)).collect();
    // v1, round 0's proposer of height 1, has all three and proposes.
    let (mut proposer, _) = replica_at(&c, 1, NOW);
    for r in &recs {
        proposer.submit(NOW, r.clone()).0.unwrap();
    }
    let actions = proposer.on_timer(NOW, Timer::NextHeight).unwrap();
    let msg = actions
        .iter()
        .find_map(|a| match a {
            Action::Broadcast(m @ NetMsg::Proposal(_)) => Some(m.clone()),
            _ => None,
        })
        .expect("v1 proposes");
    let NetMsg::Proposal(p) = &msg else {
        unreachable!()
    };
    assert_eq!(p.leaves.len(), 3);
    let records_bytes: usize = recs.iter().map(|r| r.bytes().len()).sum();
    assert!(
        msg.encode().len() < records_bytes,
        "a proposal of {} bytes carries its {records_bytes} bytes of records again",
        msg.encode().len()
    );
    let id = p.header.hash();

    // v0 has the first record (relayed), not the other two: it asks v1 for those.
    let (mut v0, _) = replica_at(&c, 0, NOW);
    v0.submit(NOW, recs[0].clone()).0.unwrap();
    let actions = v0.on_message(NOW, node(1), msg.clone()).unwrap();
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    let mut wanted: Vec<Hash32> = recs[1..].iter().map(|r| leaf_hash(r.bytes())).collect();
    wanted.sort();
    assert_eq!(parts_asked(&actions), vec![(node(1), wanted.clone())]);

    // An answer with a record not in the block is refused and blamed.
    let parts = |records: Vec<Vec<u8>>| NetMsg::Parts { block: id, records };
    let stranger = registration(&c, 9);
    let actions = v0
        .on_message(NOW, node(1), parts(vec![stranger.bytes().to_vec()]))
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    // So is a record's sealed copy (hidden amounts as commitments): it has the leaf of
    // the opened record, but no node executes it, so no block may be assembled from it.
    let sealed = drug_commission(&c, Amount::hide(5).sealed());
    let actions = v0
        .on_message(NOW, node(1), parts(vec![sealed.bytes().to_vec()]))
        .unwrap();
    // Refused as a sealed copy before its leaf is looked up (the check that keeps the
    // copy of a record the block does name from being taken).
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Penalise { reason, .. } if reason.contains("sealed copy"))),
        "{actions:?}"
    );
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    // One of the block's that v0 has at hand (or was answered already) is no fault of
    // the sender's — answers race the asks of the next peer — and changes nothing.
    let actions = v0
        .on_message(NOW, node(1), parts(vec![recs[0].bytes().to_vec()]))
        .unwrap();
    assert!(!penalised(&actions), "{actions:?}");
    assert!(parts_asked(&actions).is_empty(), "{actions:?}");
    // So is an asked record's envelope under another signature: not the leaf asked.
    let mut forged = recs[1].record().clone();
    forged.signature.0[0] ^= 1;
    let forged = EncodedRecord::new(forged);
    assert_eq!(forged.id(), recs[1].id());
    let actions = v0
        .on_message(NOW, node(1), parts(vec![forged.bytes().to_vec()]))
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");

    // The proposer answers from its block, in the order asked.
    let answer = proposer
        .on_message(
            NOW,
            node(0),
            NetMsg::PartsRequest {
                block: id,
                leaves: wanted.clone(),
            },
        )
        .unwrap();
    let records = answer
        .into_iter()
        .find_map(|a| match a {
            Action::Send(to, NetMsg::Parts { records, .. }) if to == node(0) => Some(records),
            _ => None,
        })
        .expect("the proposer answers");
    let leaves: Vec<Hash32> = records.iter().map(|b| leaf_hash(b)).collect();
    assert_eq!(leaves, wanted);
    // Half of it: v0 asks another validator for the rest at once.
    let actions = v0
        .on_message(NOW, node(1), parts(vec![records[0].clone()]))
        .unwrap();
    assert!(!penalised(&actions), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    let again = parts_asked(&actions);
    assert_eq!(again.len(), 1, "{actions:?}");
    assert_ne!(again[0].0, node(1));
    assert_eq!(again[0].1, vec![wanted[1]]);
    // The rest, from that validator: the block is whole, re-executed, voted for.
    let actions = v0
        .on_message(NOW, again[0].0, parts(vec![records[1].clone()]))
        .unwrap();
    assert!(!penalised(&actions), "{actions:?}");
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::Broadcast(NetMsg::Vote(v)) if v.value == Some(id) && !v.precommit)
        ),
        "{actions:?}"
    );
}

/// A proposal's leaves must make its header's records root: a list that does not (here
/// two swapped) is blamed on its sender before anything is asked for or executed.
#[test]
fn a_proposal_whose_leaves_do_not_make_its_records_root_is_blamed() {
    let c = consortium();
    let recs: Vec<EncodedRecord> = (1..=2).map(|n| registration(&c, n)).collect();
    let (executed, _) = xinlian_core::chain::build_block(
        &MemLedger::new(),
        &c,
        &Tip::genesis(&c),
        node(1),
        NOW,
        &recs,
    )
    .unwrap();
    let mut p =
        wire::WireProposal::of_block(&c.chain, &executed.block(), Some(0), None, &key(1, 1));
    p.leaves.swap(0, 1);
    p.sign(&c.chain, &key(1, 1));
    let (mut v0, _) = replica(&c, 0);
    let actions = v0
        .on_message(NOW, node(1), NetMsg::Proposal(Box::new(p.clone())))
        .unwrap();
    assert!(penalised(&actions), "{actions:?}");
    assert!(parts_asked(&actions).is_empty(), "{actions:?}");
    assert!(!votes_for_a_block(&actions), "{actions:?}");
    // The same for a later height, which is checked so before it is kept: a relayer's
    // made-up list never takes the proposer's places for later, or blames it then.
    let mut later = p;
    later.height = 2;
    later.header.height = 2;
    later.sign(&c.chain, &key(1, 1));
    let actions = v0
        .on_message(NOW, node(2), NetMsg::Proposal(Box::new(later)))
        .unwrap();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Penalise { peer, .. } if *peer == node(2))),
        "{actions:?}"
    );
}
