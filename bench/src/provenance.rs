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
    /// The batch page in headless Chromium: navigation to verdict, fresh context each
    /// run (the page's code loaded, genesis and roster changes fetched, the trace both
    /// ways fetched and verified in TypeScript, rendered). `None` without Chromium.
    pub page: Option<PageFigures>,
}

#[derive(Serialize, Clone, Debug)]
pub struct PageFigures {
    pub runs: usize,
    pub total_ms_p50: f64,
    pub total_ms_max: f64,
    /// The page's own figure: from its route starting to the verified page drawn.
    pub in_page_ms_p50: f64,
}

/// Times the batch page of `batch` at `api` in Chromium, if the machine has it.
fn page_time(api: &str, batch: &str, runs: usize) -> Result<Option<PageFigures>> {
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        eprintln!("no /usr/bin/chromium: the batch page is not timed (apt install chromium)");
        return Ok(None);
    }
    let url = format!("{api}/#/batch/{batch}");
    let out = std::process::Command::new("node")
        .arg(xinlian_node::web::PAGE_TIME_DRIVER)
        .arg(&url)
        .arg(runs.to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "timing the batch page failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    anyhow::ensure!(
        v["verdicts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x == "ok")),
        "the batch page did not verify: {v}"
    );
    let list = |k: &str| -> Vec<f64> {
        (v[k].as_array().into_iter().flatten())
            .filter_map(serde_json::Value::as_f64)
            .collect()
    };
    let total = list("total_ms");
    Ok(Some(PageFigures {
        runs,
        total_ms_p50: median(total.clone()),
        total_ms_max: total.iter().copied().fold(0.0, f64::max),
        in_page_ms_p50: median(list("in_page_ms")),
    }))
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
    let page = page_time(node.base_url(), &chain.final_batch, 10)?;
    Ok(Figures {
        page,
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
    match &f.page {
        Some(p) => println!(
            "    the batch page in Chromium, navigation to verified: {:.0} ms (max {:.0}; in the page {:.0} ms), median of {} runs   target <= 1000 ms; {:.1}x the Rust client's fetch + verify in this run",
            p.total_ms_p50,
            p.total_ms_max,
            p.in_page_ms_p50,
            p.runs,
            p.total_ms_p50 / f.total_ms_p50
        ),
        None => println!("    the batch page in Chromium: not timed (no Chromium)"),
    }
}
