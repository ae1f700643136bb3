//! Fetching and fully verifying the provenance of a batch with more than 1,000
//! upstream events: the generated food chain of the tests (`xinlian_tests::supply_chain`)
//! is loaded through the API, then its final batch is traced repeatedly.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use xinlian_client::http::NodeClient;
use xinlian_client::proof::LightClient;
use xinlian_client::provenance::Direction;
use xinlian_client::signer::RecordSigner;
use xinlian_genesis::Genesis;
use xinlian_tests::supply_chain::{food_chain, submit_all};

#[derive(Serialize, Clone, Debug)]
pub struct Figures {
    pub events: usize,
    pub batches: usize,
    pub answer_bytes: usize,
    pub runs: usize,
    /// Request to parsed answer: the node's assembly, transfer and JSON decoding.
    pub fetch_ms_p50: f64,
    /// Every record, signature, inclusion path, signer and batch state checked, by a
    /// client that already trusts the answer's header.
    pub verify_ms_p50: f64,
    /// The same by a client holding only genesis (adds the certificate check).
    pub verify_from_genesis_ms_p50: f64,
    pub total_ms_p50: f64,
    pub total_ms_max: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn measure(
    node: &NodeClient,
    genesis: &Genesis,
    authority: &RecordSigner,
    runs: usize,
) -> Result<Figures> {
    let chain = food_chain(authority, authority, 36, 6, 7_001)?;
    submit_all(node, &chain.registrations)?;
    submit_all(node, &chain.records)?;
    let events = chain.upstream_events(&chain.final_batch).len();
    let (mut fetch, mut verify, mut cold, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut answer_bytes = 0;
    let mut batches = 0;
    for _ in 0..runs {
        let t0 = Instant::now();
        let proof = node.provenance(&chain.final_batch, Direction::Upstream, None)?;
        let t1 = Instant::now();
        // A client checks afresh: forget what this process found valid last run.
        xinlian_client::crypto::forget_verified();
        let mut trusted = LightClient::new(genesis.clone());
        trusted.advance(proof.checkpoint.clone(), None)?;
        let t2 = Instant::now();
        let answer = trusted.verify_provenance(&proof)?;
        let t3 = Instant::now();
        anyhow::ensure!(
            answer.is_complete() && answer.all_events().len() == events,
            "the answer is the chain"
        );
        xinlian_client::crypto::forget_verified();
        let t4 = Instant::now();
        LightClient::new(genesis.clone()).verify_provenance(&proof)?;
        cold.push(t4.elapsed().as_secs_f64() * 1e3);
        fetch.push((t1 - t0).as_secs_f64() * 1e3);
        verify.push((t3 - t2).as_secs_f64() * 1e3);
        total.push((t1 - t0).as_secs_f64() * 1e3 + (t3 - t2).as_secs_f64() * 1e3);
        answer_bytes = serde_json::to_string(&proof)?.len();
        batches = answer.batches.len();
    }
    Ok(Figures {
        events,
        batches,
        answer_bytes,
        runs,
        fetch_ms_p50: median(fetch),
        verify_ms_p50: median(verify),
        verify_from_genesis_ms_p50: median(cold),
        total_ms_p50: median(total.clone()),
        total_ms_max: total.iter().copied().fold(0.0, f64::max),
    })
}

pub fn print(f: &Figures) {
    println!(
        "  provenance of a batch with {} upstream events ({} batches, {:.1} MB of JSON), median of {} runs:",
        f.events,
        f.batches,
        f.answer_bytes as f64 / 1e6,
        f.runs
    );
    println!(
        "    fetch {:.1} ms + verify {:.1} ms = {:.1} ms (max {:.1})   target < 100 ms; from genesis alone verify {:.1} ms",
        f.fetch_ms_p50,
        f.verify_ms_p50,
        f.total_ms_p50,
        f.total_ms_max,
        f.verify_from_genesis_ms_p50
    );
}
