//! Consensus messages signed by the fixture's validators, exactly as a validator signs
//! them (`xinlian_core::consensus::context::{vote_message, proposal_message}`), so
//! that fuzzed messages pass signature checks and reach the logic behind them.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use xinlian_client::block::Block;
use xinlian_client::crypto::Signature;
use xinlian_core::consensus::context::{sign, vote_message};
use xinlian_core::consensus::wire::{
    WirePolka, WireProposal, WireRoundCertificate, WireRoundSignature, WireVote, vote_from_wire,
};
use xinlian_genesis::Hash32;
use xinlian_genesis::keys::public_key;

use crate::chain::{fixture, node_key};

const NO_SIGNATURE: Signature = Signature([0; 64]);
const SIGNED_REMEMBERED_MAX: usize = 1 << 16;

/// Validator `validator`'s signature over `message`, as `sign` makes it. Ed25519
/// signatures are deterministic and the fuzzer's messages repeat (heights near the
/// tip, a few rounds and values), so they are remembered (bounded): the replica
/// target spends its time in the replica, not in signing its input.
fn signed(validator: usize, message: Vec<u8>) -> Signature {
    static SIGNED: LazyLock<Mutex<HashMap<(usize, Vec<u8>), Signature>>> =
        LazyLock::new(Default::default);
    let mut memo = SIGNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = memo.get(&(validator, message.clone())) {
        return *s;
    }
    if memo.len() >= SIGNED_REMEMBERED_MAX {
        memo.clear();
    }
    let s = sign(&node_key(validator), &message);
    memo.insert((validator, message), s);
    s
}

pub fn vote(
    validator: usize,
    precommit: bool,
    height: u64,
    round: Option<u32>,
    value: Option<Hash32>,
) -> WireVote {
    let mut w = WireVote {
        precommit,
        height,
        round,
        value,
        validator: public_key(&node_key(validator)),
        signature: NO_SIGNATURE,
    };
    let v = vote_from_wire(&w);
    w.signature = signed(validator, vote_message(&fixture().chain(), &v.message));
    w
}

pub fn proposal(
    validator: usize,
    height: u64,
    round: Option<u32>,
    pol_round: Option<u32>,
    block: Block,
) -> WireProposal {
    let mut w = WireProposal::of_block(
        &fixture().chain(),
        &block,
        round,
        pol_round,
        &node_key(validator),
    );
    w.height = height;
    w.sign(&fixture().chain(), &node_key(validator));
    w
}

/// Prevotes for `block` by `signers`.
pub fn polka(height: u64, round: Option<u32>, block: Hash32, signers: &[usize]) -> WirePolka {
    WirePolka {
        height,
        round,
        block,
        signatures: signers
            .iter()
            .map(|&i| {
                let v = vote(i, false, height, round, Some(block));
                (v.validator, v.signature)
            })
            .collect(),
    }
}

/// Votes of `signers` (all precommits, or all prevotes), for `value`.
pub fn round_certificate(
    height: u64,
    round: Option<u32>,
    precommits: bool,
    value: Option<Hash32>,
    signers: &[usize],
) -> WireRoundCertificate {
    WireRoundCertificate {
        height,
        round,
        precommits,
        signatures: signers
            .iter()
            .map(|&i| {
                let v = vote(i, precommits, height, round, value);
                WireRoundSignature {
                    precommit: v.precommit,
                    value: v.value,
                    validator: v.validator,
                    signature: v.signature,
                }
            })
            .collect(),
    }
}
