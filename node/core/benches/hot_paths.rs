//! Criterion micro-benchmarks of the hot paths: canonical encoding and decoding of a
//! record, batched signature verification, Merkle appends and proofs, and executing a
//! block of registrations. `cargo bench -p xinlian-core`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use xinlian_client::crypto::{Domain, forget_verified, verify_batch};
use xinlian_client::ids::Uscc;
use xinlian_client::merkle::{
    Frontier, Leaves, inclusion_proof, leaf_hash, root_of, verify_inclusion,
};
use xinlian_client::record::{EncodedRecord, Envelope, RegisterEntity};
use xinlian_core::chain::{Tip, build_block, execute_block};
use xinlian_core::execute::Consortium;
use xinlian_core::overlay::EmptyState;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, Policy};

#[path = "../tests/common/mod.rs"]
mod common;

/// Enterprise keys: 1,024 distinct ones (the fixture's keys vary in one byte only).
fn enterprise_key(i: usize) -> SigningKey {
    let mut seed = [9u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn consortium() -> Arc<Consortium> {
    common::consortium(1, "xinlian-bench", Policy::default())
}

fn registrations(c: &Consortium, n: usize) -> Vec<EncodedRecord> {
    (0..n)
        .map(|i| {
            let uscc = Uscc::with_check(&format!("91310000{i:09}")).expect("digits");
            let env = Envelope {
                chain: c.chain,
                signer: public_key(&common::registrar()),
                nonce: i as u64,
                body: RegisterEntity {
                    operator: None,
                    possession: common::enterprise_possession(&c.chain, &uscc, &enterprise_key(i)),
                    uscc,
                    name: format!("benchmark enterprise {i}"),
                    key: public_key(&enterprise_key(i)),
                    check_override: None,
                }
                .into(),
            };
            EncodedRecord::new(env.sign(&common::registrar()))
        })
        .collect()
}

fn encoding(c: &mut Criterion) {
    let cons = consortium();
    let rec = registrations(&cons, 1).remove(0);
    let bytes = rec.bytes().to_vec();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| EncodedRecord::new(black_box(rec.record().clone())))
    });
    g.bench_function("decode (canonical check included)", |b| {
        b.iter(|| EncodedRecord::decode(black_box(&bytes), 1 << 16).expect("canonical"))
    });
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let cons = consortium();
    let recs = registrations(&cons, 256);
    let mut g = c.benchmark_group("signatures");
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("verify_batch of 256 records (ZIP-215)", |b| {
        // Each iteration checks afresh: the process remembers valid signatures.
        b.iter_batched(
            forget_verified,
            |()| {
                verify_batch(recs.iter().map(|r| {
                    (
                        &r.record().envelope.signer,
                        Domain::Record.message(r.envelope_bytes()),
                        &r.record().signature,
                    )
                }))
                .expect("valid")
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn merkle(c: &mut Criterion) {
    let leaves: Vec<Hash32> = (0..4096u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let root = root_of(&leaves);
    let mut g = c.benchmark_group("merkle");
    g.throughput(Throughput::Elements(leaves.len() as u64));
    g.bench_function("append 4096 leaves to a frontier", |b| {
        b.iter(|| {
            let mut f = Frontier::default();
            for l in &leaves {
                black_box(f.append(*l));
            }
            f.root()
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("inclusion proof in 4096", |b| {
        b.iter(|| inclusion_proof(&Leaves(&leaves), black_box(1234), 4096).expect("in memory"))
    });
    let proof = inclusion_proof(&Leaves(&leaves), 1234, 4096).expect("in memory");
    g.bench_function("verify inclusion in 4096", |b| {
        b.iter(|| {
            verify_inclusion(&leaves[1234], 1234, 4096, black_box(&proof), &root).expect("valid")
        })
    });
    g.finish();
}

fn blocks(c: &mut Criterion) {
    let cons = consortium();
    let recs = registrations(&cons, 1024);
    let tip = Tip::genesis(&cons);
    let (ex, rejected) = build_block(
        &EmptyState,
        &cons,
        &tip,
        public_key(&common::node_key(0)),
        tip.time_ms + 1,
        recs.iter(),
    )
    .expect("memory state");
    assert!(rejected.is_empty());
    let block = ex.block();
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.sample_size(20);
    g.bench_function("execute a block of 1024 registrations", |b| {
        b.iter_batched(
            || {
                forget_verified();
                block.clone()
            },
            |blk| execute_block(&EmptyState, &cons, &tip, blk).expect("valid block"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(hot_paths, encoding, signatures, merkle, blocks);
criterion_main!(hot_paths);
