//! Fuzz target: block-sync streams as `node/src/net.rs` reads them. The first input
//! byte says request (even) or answer (odd); the rest is the stream: a 4-byte
//! big-endian length, then the message. The framing is `net.rs`'s (`read_framed`,
//! private there: refuse a length over the bound before allocating, then read exactly
//! that many bytes) and the bounds are its bounds; the payload goes through the same
//! `NetMsg::decode`, the same kind filter (only `SyncRequest` as a request, only
//! `SyncResponse` as an answer), and then to an observer replica's `on_message` as the
//! host hands it on. Asserts: no panic, canonical bytes, and the replica answers
//! nothing but `Ok` or a ledger error.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xinlian_core::chain::Tip;
use xinlian_core::consensus::ledger::MemLedger;
use xinlian_core::consensus::replica::{Replica, ReplicaError, Timeouts};
use xinlian_core::consensus::wire::NetMsg;
use xinlian_core::mempool::Mempool;
use xinlian_fuzz::chain::{GENESIS_MS, fixture, key, node_key};
use xinlian_fuzz::seeds::{SYNC_REQUEST_BYTES_MAX, message_bytes_max};
use xinlian_genesis::keys::public_key;

/// `read_framed`: the message, or `None` where the node's read fails.
fn read_framed(stream: &[u8], max: usize) -> Option<&[u8]> {
    let len = u32::from_be_bytes(stream.get(..4)?.try_into().ok()?) as usize;
    if len > max {
        return None;
    }
    stream.get(4..4 + len)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let request = mode % 2 == 0;
    let max = if request {
        SYNC_REQUEST_BYTES_MAX
    } else {
        message_bytes_max()
    };
    let Some(payload) = read_framed(stream, max) else {
        return;
    };
    let msg = match NetMsg::decode(payload, max) {
        Ok(m @ NetMsg::SyncRequest { .. }) if request => m,
        Ok(m @ NetMsg::SyncResponse { .. }) if !request => m,
        Ok(m) => {
            assert_eq!(m.encode(), payload);
            return;
        }
        Err(_) => return,
    };
    assert_eq!(msg.encode(), payload);
    let fx = fixture();
    let c = fx.consortium.clone();
    // An observer (not in the validator set): it serves and applies sync.
    let (mut replica, _) = Replica::new(
        c.clone(),
        key(8, 0),
        Arc::new(MemLedger::new()),
        Tip::genesis(&c),
        Timeouts::for_interval(c.genesis.policy.block_interval_ms),
        Mempool::new(64, 1 << 20),
        GENESIS_MS + 10_000,
    )
    .expect("a fresh replica starts");
    let peer = public_key(&node_key(usize::from(mode / 2) % 4));
    match replica.on_message(GENESIS_MS + 10_000, peer, msg) {
        Ok(_) | Err(ReplicaError::Ledger(_)) => {}
        Err(e) => panic!("the replica failed on a sync message: {e}"),
    }
});
