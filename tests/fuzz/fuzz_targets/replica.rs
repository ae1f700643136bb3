//! Fuzz target: a replica's message input. A `Replica` on a fresh `MemLedger` of the
//! fixture consortium (validator 0 to 3, or an observer, as the input says) is fed a
//! script of operations read from the input: proposals, votes, polka and round
//! certificates, record batches, status, sync requests and answers — every consensus
//! message signed by a validator of the fixture, so it passes signature checks, with
//! heights, rounds, valid rounds, blocks and values chosen by the input (the tip's
//! neighbourhood, nil, extremes; genuine blocks, fresh valid empty blocks with any
//! time and proposer, spoiled ones) — plus timer expiries of what the replica
//! scheduled and the clock moving on. Asserts: no panic; every answer is `Ok` or a
//! ledger error; and the replica never signs two different votes, or two different
//! proposals, for one slot, whatever it is fed.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use xinlian_client::block::Block;
use xinlian_client::crypto::Signature;
use xinlian_core::chain::build_block;
use xinlian_core::consensus::ledger::MemLedger;
use xinlian_core::consensus::replica::{Action, Replica, ReplicaError, Timeouts, Timer};
use xinlian_core::consensus::wire::NetMsg;
use xinlian_core::mempool::Mempool;
use xinlian_fuzz::chain::{GENESIS_MS, VALIDATORS, fixture, key, node_key};
use xinlian_fuzz::msgs;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, PublicKey};

const OPS_MAX: usize = 48;
const TIMERS_MAX: usize = 64;

struct Run {
    replica: Replica<Arc<MemLedger>>,
    me: PublicKey,
    now: i64,
    timers: Vec<Timer>,
    votes: HashMap<(u64, Option<u32>, bool), Signature>,
    proposals: HashMap<(u64, Option<u32>), Signature>,
}

fn height(u: &mut Unstructured, tip: u64) -> Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=2 => tip + 1,
        3 => tip,
        4 => tip + 2,
        5 => 0,
        6 => u64::MAX,
        _ => u.arbitrary()?,
    })
}

fn round(u: &mut Unstructured) -> Result<Option<u32>> {
    Ok(match u.int_in_range(0..=6u8)? {
        0..=2 => Some(0),
        3 => Some(1),
        4 => None,
        5 => Some(u32::MAX),
        _ => Some(u.int_in_range(0..=8)?),
    })
}

/// A block for height `h`: the genuine one, a fresh valid empty one with any time and
/// proposer, or one spoiled in a header field.
fn block(u: &mut Unstructured, h: u64) -> Result<Block> {
    let fx = fixture();
    let known = |h: u64| (1..=fx.blocks.len() as u64).contains(&h);
    let parent = h.saturating_sub(1) as usize;
    Ok(match u.int_in_range(0..=3u8)? {
        0 if known(h) => fx.blocks[h as usize - 1].0.clone(),
        1 if parent < fx.tips.len() => {
            let tip = &fx.tips[parent];
            let proposer = public_key(&node_key(u.choose_index(VALIDATORS)?));
            let time = tip.time_ms + i64::from(u.int_in_range(1..=30_000u32)?);
            let (ex, _) = build_block(&fx.states[parent], &fx.consortium, tip, proposer, time, [])
                .expect("map state never fails");
            ex.block()
        }
        2 if known(h) => {
            let mut b = fx.blocks[h as usize - 1].0.clone();
            match u.int_in_range(0..=2u8)? {
                0 => b.header.time_ms += 1,
                1 => b.header.proposer = public_key(&node_key(u.choose_index(VALIDATORS)?)),
                _ => {
                    b.records.pop();
                }
            }
            b
        }
        _ => fx.blocks[u.choose_index(fx.blocks.len())?].0.clone(),
    })
}

fn value(u: &mut Unstructured, h: u64) -> Result<Option<Hash32>> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => None,
        1 => Some(Hash32(u.arbitrary()?)),
        _ => Some(block(u, h)?.header.hash()),
    })
}

fn signers(u: &mut Unstructured) -> Result<Vec<usize>> {
    let mask: u8 = u.arbitrary()?;
    Ok((0..VALIDATORS).filter(|i| mask & (1 << i) != 0).collect())
}

/// One message chosen by the input, or `None` for a non-message operation done here.
fn message(u: &mut Unstructured, run: &mut Run) -> Result<Option<NetMsg>> {
    let fx = fixture();
    let tip = run.replica.tip().height;
    let v = u.choose_index(VALIDATORS)?;
    Ok(Some(match u.int_in_range(0..=10u8)? {
        0 | 1 => {
            let h = height(u, tip)?;
            let (r, pol) = (round(u)?, round(u)?);
            NetMsg::Proposal(Box::new(msgs::proposal(v, h, r, pol, block(u, h)?)))
        }
        2 | 3 => {
            let (h, precommit, r) = (height(u, tip)?, u.arbitrary()?, round(u)?);
            let mut w = msgs::vote(v, precommit, h, r, value(u, h)?);
            if u.ratio(1, 16)? {
                w.signature.0[u.choose_index(64)?] ^= 1;
            }
            NetMsg::Vote(w)
        }
        4 => {
            let (h, r) = (height(u, tip)?, round(u)?);
            let b = value(u, h)?.unwrap_or(Hash32([0; 32]));
            NetMsg::PolkaCertificate(msgs::polka(h, r, b, &signers(u)?))
        }
        5 => {
            let (h, r, precommits) = (height(u, tip)?, round(u)?, u.arbitrary()?);
            let val = value(u, h)?;
            NetMsg::RoundCertificate(msgs::round_certificate(h, r, precommits, val, &signers(u)?))
        }
        6 => {
            let mut batch: Vec<Vec<u8>> = fx
                .pending
                .iter()
                .filter(|_| u.arbitrary().unwrap_or(false))
                .map(|r| r.bytes().to_vec())
                .collect();
            if u.arbitrary()? {
                batch.push(u.arbitrary()?);
            }
            NetMsg::Records(batch)
        }
        7 => NetMsg::Status {
            height: height(u, tip)?,
            tip: Hash32(u.arbitrary()?),
        },
        8 => NetMsg::SyncRequest {
            from: height(u, tip)?,
            max: u.arbitrary()?,
        },
        9 if u.ratio(1, 8)? => NetMsg::SyncBusy,
        9 => {
            let from = u.choose_index(fx.blocks.len())?;
            let to = from + u.choose_index(fx.blocks.len() - from)? + 1;
            let mut blocks = fx.blocks[from..to].to_vec();
            if u.ratio(1, 4)? {
                let i = u.choose_index(blocks.len())?;
                match u.int_in_range(0..=2u8)? {
                    0 => {
                        blocks[i].1.signatures.pop();
                    }
                    1 => blocks[i].1.round += 1,
                    _ => blocks.swap(0, i),
                }
            }
            NetMsg::SyncResponse { blocks }
        }
        _ => {
            if u.arbitrary()? && !run.timers.is_empty() {
                let t = run.timers.remove(u.choose_index(run.timers.len())?);
                let out = run.replica.on_timer(run.now, t);
                settle(run, out);
            } else {
                run.now += i64::from(u.int_in_range(0..=20_000u32)?);
            }
            return Ok(None);
        }
    }))
}

/// Records what the replica asks for and checks it never equivocates.
fn settle(run: &mut Run, out: std::result::Result<Vec<Action>, ReplicaError>) {
    let actions = match out {
        Ok(a) => a,
        Err(ReplicaError::Ledger(_)) => return,
        Err(e) => panic!("the replica failed: {e}"),
    };
    for a in actions {
        match a {
            Action::Schedule { timer, .. } => {
                if !run.timers.contains(&timer) && run.timers.len() < TIMERS_MAX {
                    run.timers.push(timer);
                }
            }
            // Ed25519 is deterministic: another signature for a slot is another message
            // (another value, or the same block under another proof-of-lock round).
            Action::Broadcast(NetMsg::Vote(v)) | Action::Send(_, NetMsg::Vote(v))
                if v.validator == run.me =>
            {
                let slot = (v.height, v.round, v.precommit);
                let first = *run.votes.entry(slot).or_insert(v.signature);
                assert_eq!(first, v.signature, "two different votes signed for {slot:?}");
            }
            Action::Broadcast(NetMsg::Proposal(p)) | Action::Send(_, NetMsg::Proposal(p))
                if p.proposer == run.me =>
            {
                let slot = (p.height, p.round);
                let first = *run.proposals.entry(slot).or_insert(p.signature);
                assert_eq!(first, p.signature, "two different proposals signed for {slot:?}");
            }
            _ => {}
        }
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let fx = fixture();
    let c = fx.consortium.clone();
    let who = u.choose_index(VALIDATORS + 1)?;
    let key: SigningKey = if who < VALIDATORS {
        node_key(who)
    } else {
        key(8, 0)
    };
    let now = GENESIS_MS + 10_000;
    let me = public_key(&key);
    let (replica, actions) = Replica::new(
        c.clone(),
        key,
        Arc::new(MemLedger::new()),
        xinlian_core::chain::Tip::genesis(&c),
        Timeouts::for_interval(c.genesis.policy.block_interval_ms),
        Mempool::new(64, 1 << 20),
        now,
    )
    .expect("a fresh replica starts");
    let mut run = Run {
        replica,
        me,
        now,
        timers: Vec::new(),
        votes: HashMap::new(),
        proposals: HashMap::new(),
    };
    settle(&mut run, Ok(actions));
    for _ in 0..OPS_MAX {
        if u.is_empty() {
            break;
        }
        let Some(msg) = message(u, &mut run)? else {
            continue;
        };
        let from = public_key(&node_key(u.choose_index(VALIDATORS)?));
        let out = run.replica.on_message(run.now, from, msg);
        settle(&mut run, out);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
