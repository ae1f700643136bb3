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
        "ea9f56fcf2044e1c7b9cc133efc50ebca98deb19c6ccb68ba3b80bba388fb78f",
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
            operator: None,
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
    // Changed when `register_entity` gained its proof of possession (issue 14), and
    // its sealed operator (issue 17: a natural person's data off the ledger).
    assert_eq!(
        hex(&rec.canonical_bytes()),
        "84e79e11a4f1125543ac3e7b785cd51c0bf7b9d6e4858c7a451643d260c6b6b4",
        "record bytes"
    );
    assert_eq!(
        rec.id().to_hex(),
        "e4fe284b7fc0dc8a40c316ebcc4632b88ae52ff86d49d834e9b822e1c6ba37e8",
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
        "2a9aa3e7ced44b9812e301d3d11ea7ff31bef860a8522d8541791306f07c9648",
        "header bytes"
    );
    assert_eq!(
        h.hash().to_hex(),
        "07c000b4a0d66258af0c362ad96b80efca4dfec7fe153a70b849035dd1d36fb7",
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
        "ba86a503ec332c477b2b3fd24d023a32a5a29afb957c5e504be727a7ea690a56"
    );
    assert_eq!(
        hex(&vote_message(&chain(), &vote(VoteType::Precommit))),
        "f831c7feaf3ad1d71ed1cac847c6a05330e2b557a21bc939219147c930c6f15b"
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
