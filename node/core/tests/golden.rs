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
        "209e777d0b0d99fc7146f01080ea4c4a156653c8feb6996867094199a9f74b7b",
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
    // its sealed operator (issue 17: a natural person's data off the ledger); and with
    // every pinned value below when the policy gained `trace` (issue 17: the fields a
    // trace domain hides), which changes the fixture genesis and so the chain id.
    assert_eq!(
        hex(&rec.canonical_bytes()),
        "f618b75652768e25e9ca696505786846ac7d07fa8993394151b53cc602c40a3c",
        "record bytes"
    );
    assert_eq!(
        rec.id().to_hex(),
        "c3f1c11fa069b03cf7514874b0cb39d500ae977117a1d89ffcb9a5d56ba26ae0",
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
        "8dfb39748b71c749bd8abf7c092b258c238a856bddf7a96929b4a6089a021d45",
        "header bytes"
    );
    assert_eq!(
        h.hash().to_hex(),
        "b952e817d00ea1d8f810d13dffe8e62896750017ee9b7348467e4ae9910bfd16",
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
        "f0b94e6eb40716ffa72012adcd7ab072c684b8483445df2f80742a5c3b100325"
    );
    assert_eq!(
        hex(&vote_message(&chain(), &vote(VoteType::Precommit))),
        "b08db36aa772a18cdb323e0091511f923d4c1e980176512db4675aca33d9b3dd"
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
