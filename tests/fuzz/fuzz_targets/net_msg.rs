//! Fuzz target: every message between nodes (`NetMsg::decode`, at the gossip bound
//! the node uses) and every write-ahead-log entry (`WalEntry`, read back from the
//! store). Asserts: no panic; whatever decodes re-encodes to exactly the input (one
//! encoding per value); consensus messages convert to Malachite's types and back
//! unchanged; a log entry converts to a Malachite input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xinlian_client::block::Block;
use xinlian_core::consensus::wire::{
    NetMsg, WalEntry, polka_from_wire, polka_to_wire, proposal_from_wire, proposal_to_wire,
    round_cert_from_wire, round_cert_to_wire, vote_from_wire, vote_to_wire,
};
use xinlian_fuzz::seeds::message_bytes_max;
use xinlian_genesis::canonical;

fn round_trips(m: &NetMsg) {
    match m {
        NetMsg::Proposal(p) => {
            // Its block as a replica puts it together: the header with the records
            // named by the leaves (none needed to compare the rest).
            let block = Block {
                header: p.header.clone(),
                records: Vec::new(),
            };
            let back = proposal_to_wire(&proposal_from_wire((**p).clone(), block), p.leaves.clone());
            assert_eq!(back, **p)
        }
        NetMsg::Vote(v) => assert_eq!(vote_to_wire(&vote_from_wire(v)), *v),
        NetMsg::PolkaCertificate(c) => assert_eq!(polka_to_wire(&polka_from_wire(c)), *c),
        NetMsg::RoundCertificate(c) => assert_eq!(round_cert_to_wire(&round_cert_from_wire(c)), *c),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let max = message_bytes_max();
    if let Ok(m) = NetMsg::decode(data, max) {
        assert_eq!(
            m.encode(),
            data,
            "a decoded message re-encodes to its bytes"
        );
        assert!(!m.kind().is_empty());
        round_trips(&m);
    }
    if let Ok(w) = canonical::decode::<WalEntry>(data, max) {
        assert_eq!(canonical::encode(&w), data);
        let _ = w.into_input(1);
    }
});
