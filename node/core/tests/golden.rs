//! Golden hashes: the encodings every node and verifier must agree on — a signed
//! record, a block header, consensus votes and a proposal on the wire, a genesis — are
//! pinned by SHA-256 of their bytes, and so is the simulator's trace for fixed seeds
//! (in `simulation.rs`). A change to any of them changes the protocol: it must be
//! deliberate, and these constants change in the same commit with the reason.

mod common;

use malachite_types::{NilOrVal, Round, VoteType};
use xinlian_client::block::Header;
use xinlian_client::ids::Uscc;
use xinlian_client::record::{Body, Envelope, RegisterEntity};
use xinlian_core::consensus::context::{Address, BlockId, Height, vote_message};
use xinlian_core::consensus::wire::{NetMsg, WireVote};
use xinlian_genesis::canonical::sha256;
use xinlian_genesis::keys::public_key;
use xinlian_genesis::{Hash32, Policy, PublicKey};

use common::{consortium, key, node_key, registrar};

fn hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes).0)
}

fn chain() -> Hash32 {
    consortium(4, "golden", Policy::default()).genesis.hash()
}

#[test]
fn genesis_hash_is_pinned() {
    assert_eq!(
        chain().to_hex(),
        "46ae7f0f18f509ea828afc70e34ea59f45728765fd1b837f46f5e7ad4c7d46ee",
        "the fixture genesis encodes differently"
    );
}

#[test]
fn record_encoding_is_pinned() {
    let rec = Envelope {
        chain: chain(),
        signer: public_key(&registrar()),
        nonce: 7,
        body: Body::RegisterEntity(RegisterEntity {
            uscc: Uscc::with_check("91310000MA1FL8TQ3").expect("valid payload"),
            name: "上海新申贸易有限公司".into(),
            key: public_key(&key(9, 0)),
            check_override: None,
            possession: common::enterprise_possession(
                &chain(),
                &Uscc::with_check("91310000MA1FL8TQ3").expect("valid payload"),
                &key(9, 0),
            ),
        }),
    }
    .sign(&registrar());
    // Changed when `register_entity` gained its proof of possession (issue 14).
    assert_eq!(
        hex(&rec.canonical_bytes()),
        "9172171dec6c524c4eafd0b8e382fd1c95597ba6035d95d4714fb0c4679eb69d",
        "record bytes"
    );
    assert_eq!(
        rec.id().to_hex(),
        "973cf697cd91205eb465712010b56acc0aae4c1d2a2f710210bc50fa97a6b71f",
        "record id"
    );
}

#[test]
fn header_encoding_is_pinned() {
    let h = Header {
        chain: chain(),
        height: 3,
        parent: Hash32([1; 32]),
        time_ms: common::GENESIS_MS + 600,
        proposer: public_key(&node_key(1)),
        records_root: Hash32([2; 32]),
        records_count: 5,
        ledger_root: Hash32([3; 32]),
        ledger_size: 12,
        state_hash: Hash32([4; 32]),
        trace_root: Hash32([5; 32]),
        credit_root: Hash32([5; 32]),
        validators_hash: Hash32([6; 32]),
        next_roster_hash: Hash32([7; 32]),
    };
    assert_eq!(
        hex(&xinlian_genesis::canonical::encode(&h)),
        "bbf1c405f912fed925e1090ff4f06f794b46eddac39c19ef0ab8e30f08db6022",
        "header bytes"
    );
    assert_eq!(
        h.hash().to_hex(),
        "cec7b732107dedb1c937087544d95b65597a76539f495264ac6bdf258648da8d",
        "header hash"
    );
}

#[test]
fn vote_encodings_are_pinned() {
    use xinlian_core::consensus::context::ConsensusVote;
    let validator = Address(public_key(&node_key(2)));
    let block = NilOrVal::Val(BlockId(Hash32([8; 32])));
    let vote = |kind| ConsensusVote::new(kind, Height(4), Round::new(1), block, validator);
    assert_eq!(
        hex(&vote_message(&chain(), &vote(VoteType::Prevote))),
        "c05c7b6976ab161335f56259a48e2a9c0a73f9754efcc3d6d133406196fa3fcb"
    );
    assert_eq!(
        hex(&vote_message(&chain(), &vote(VoteType::Precommit))),
        "914761a3245fe2be7a43a27e1ddf06e1c1556fab9adc1b0147070c683db9dae4"
    );
    let wire = NetMsg::Vote(WireVote {
        precommit: true,
        height: 4,
        round: Some(1),
        value: Some(Hash32([8; 32])),
        validator: validator.0,
        signature: xinlian_client::crypto::Signature([9; 64]),
    });
    assert_eq!(
        hex(&wire.encode()),
        "e925a0cb269a0724130db5c2f345b8d90541acb42c534ddbf0df77a555934cc6",
        "a vote on the wire"
    );
    let _: PublicKey = validator.0;
}
