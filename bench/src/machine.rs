//! What this machine can do, measured in the same run as the ledger so that every
//! headline figure can be read as a ratio to it (shared 2-core machines are noisy).

use std::time::{Duration, Instant};

use ed25519_consensus::{SigningKey, VerificationKeyBytes, batch};
use serde::Serialize;
use sha2::{Digest, Sha256};
use xinlian_node::store::kv::{Batch, Kv, Sync};

#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    pub cores: usize,
    /// ZIP-215 batch verification (batches of 256) on all cores.
    pub ed25519_batch_verify_per_s: f64,
    pub sha256_mb_per_s: f64,
    /// The store's engine: 300-byte values, one durable batch per 1,000 inserts (a
    /// block's group commit).
    pub engine_group_commit_inserts_per_s: f64,
    /// The store's engine: one durable insert at a time (the fsync bound on serial
    /// durable commits).
    pub engine_durable_each_per_s: f64,
}

const WINDOW: Duration = Duration::from_millis(1500);

fn batch_verify_per_s() -> f64 {
    let msgs: Vec<(VerificationKeyBytes, ed25519_consensus::Signature, Vec<u8>)> = (0..256u32)
        .map(|i| {
            let k = SigningKey::new(rand_core::OsRng);
            let m = i.to_be_bytes().repeat(80);
            (k.verification_key().into(), k.sign(&m), m)
        })
        .collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < WINDOW {
        let mut v = batch::Verifier::new();
        for (k, s, m) in &msgs {
            v.queue((*k, *s, m));
        }
        v.verify(rand_core::OsRng).expect("valid signatures");
        n += msgs.len() as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn sha256_mb_per_s() -> f64 {
    let data = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut n = 0u64;
    let mut acc = [0u8; 32];
    while start.elapsed() < WINDOW {
        let d = Sha256::digest(&data);
        acc[0] ^= d[0];
        n += 1;
    }
    std::hint::black_box(acc);
    n as f64 / start.elapsed().as_secs_f64()
}

/// The store's engine (`xinlian_node::store::kv`): inserts per second in durable
/// batches of 1,000 300-byte values, and durable single inserts per second.
fn engine_rates() -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let kv = Kv::open(dir.path(), 64 << 20)?;
    let value = [3u8; 300];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < WINDOW {
        let mut b = Batch::default();
        for _ in 0..1000 {
            b.put(&n.to_be_bytes(), &value);
            n += 1;
        }
        kv.write(b, Sync::Durable)?;
    }
    let group = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut m = 0u64;
    while start.elapsed() < WINDOW {
        kv.put(&(n + m).to_be_bytes(), &value, Sync::Durable)?;
        m += 1;
    }
    Ok((group, m as f64 / start.elapsed().as_secs_f64()))
}

pub fn measure() -> anyhow::Result<Limits> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verify: f64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..cores).map(|_| s.spawn(batch_verify_per_s)).collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    let (group, each) = engine_rates()?;
    Ok(Limits {
        cores,
        ed25519_batch_verify_per_s: verify,
        sha256_mb_per_s: sha256_mb_per_s() * 1.048_576,
        engine_group_commit_inserts_per_s: group,
        engine_durable_each_per_s: each,
    })
}
