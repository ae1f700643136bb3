//! Small valid seeds for every target, generated from the fixture (no data from
//! elsewhere): `cargo fuzz run` starts from these instead of from nothing. The `seeds`
//! program writes them to `corpus/<target>/`; the input formats are each target's.

use xinlian_client::epcis;
use xinlian_client::provenance::VerifiedBatch;
use xinlian_client::when::EventTime;
use xinlian_core::consensus::wire::{NetMsg, SYNC_BYTES_MAX};

use crate::chain::{GENESIS_MS, fixture, genesis};
use crate::msgs;

/// Every fuzz target, in the order the smoke and long runs take them (fast first).
pub const TARGETS: &[&str] = &[
    "net_msg",
    "sync_frame",
    "record",
    "genesis_toml",
    "epcis_import",
    "proof_bundle",
    "provenance",
    "credit",
    "replica",
];

/// The node's bounds on what it decodes (`node/src/net.rs`, private there): a gossip
/// message or sync answer, and a sync request.
pub fn message_bytes_max() -> usize {
    const ENVELOPE_BYTES: usize = 64 << 10;
    genesis().policy.block_bytes_max as usize + SYNC_BYTES_MAX + ENVELOPE_BYTES
}
pub const SYNC_REQUEST_BYTES_MAX: usize = 4096;

/// A sync stream's bytes as `net.rs` writes them: a 4-byte big-endian length, then
/// the message.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

pub fn messages() -> Vec<NetMsg> {
    let fx = fixture();
    let (b1, _) = fx.blocks[0].clone();
    let h1 = b1.header.hash();
    vec![
        NetMsg::Proposal(Box::new(msgs::proposal(1, 1, Some(0), None, b1))),
        NetMsg::Vote(msgs::vote(2, false, 1, Some(0), Some(h1))),
        NetMsg::Vote(msgs::vote(3, true, 1, Some(0), Some(h1))),
        NetMsg::Vote(msgs::vote(3, true, 1, Some(1), None)),
        NetMsg::PolkaCertificate(msgs::polka(1, Some(0), h1, &[1, 2, 3])),
        NetMsg::RoundCertificate(msgs::round_certificate(1, Some(0), true, None, &[1, 2, 3])),
        NetMsg::Records(fx.pending.iter().map(|r| r.bytes().to_vec()).collect()),
        NetMsg::Status {
            height: 5,
            tip: fx.tips[5].hash,
        },
        NetMsg::SyncRequest { from: 1, max: 64 },
        NetMsg::SyncResponse {
            blocks: fx.blocks[..2].to_vec(),
        },
        NetMsg::SyncBusy,
    ]
}

fn json_with_mode(mode: u8, value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend(serde_json::to_vec(value).expect("serialises"));
    out
}

/// EPCIS documents of the fixture's batches, as `xinlian epcis export` writes them.
pub fn epcis_documents() -> Vec<serde_json::Value> {
    let fx = fixture();
    let created = EventTime {
        unix_ms: GENESIS_MS + 60_000,
        offset_minutes: 480,
    };
    let all: Vec<&VerifiedBatch> = fx.batches.values().collect();
    let mut docs = vec![epcis::export(&all, created)];
    docs.extend(fx.batches.values().map(|b| epcis::export(&[b], created)));
    docs
}

/// Deterministic filler bytes (a linear congruential sequence from `seed`).
fn filler(seed: u8, len: usize) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

fn edit_scripts(bases: usize) -> Vec<Vec<u8>> {
    let bases = bases.min(256) as u8;
    let genuine = (0..bases).flat_map(|i| [vec![i], vec![i, 1]]);
    let edited = (0..bases).map(|i| [vec![i], filler(i, 24)].concat());
    genuine.chain(edited).collect()
}

pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let fx = fixture();
    match target {
        "net_msg" => messages().iter().map(NetMsg::encode).collect(),
        "sync_frame" => messages()
            .iter()
            .map(|m| {
                let mut s = vec![u8::from(!matches!(m, NetMsg::SyncRequest { .. }))];
                s.extend(frame(&m.encode()));
                s
            })
            .collect(),
        "record" => fx
            .records
            .iter()
            .flat_map(|r| {
                [
                    [vec![0], r.bytes().to_vec()].concat(),
                    json_with_mode(1, r.record()),
                ]
            })
            .collect(),
        "genesis_toml" => vec![genesis().to_toml().into_bytes()],
        "epcis_import" => epcis_documents()
            .iter()
            .map(|d| json_with_mode(0, d))
            .chain((0..4).map(|i| [vec![1, i, i], filler(i, 24)].concat()))
            .collect(),
        // An edit script on the genuine answer number `i`: with nothing after the
        // choice, the genuine answer itself; then a few scripts of fixed bytes.
        "proof_bundle" => edit_scripts(fx.bundles.len()),
        "provenance" => edit_scripts(2 * fx.answers.len()),
        "credit" => edit_scripts(fx.credits.len()),
        // Operation scripts: each byte pattern leans on different operations.
        "replica" => (0..24u8).map(|k| filler(k, 256)).collect(),
        _ => Vec::new(),
    }
}
