//! `xinlian-bench`: measures the machine, then a local consortium of four validator
//! processes under an open-loop load through the HTTP API, and prints every figure
//! with its ratio to the machine's limits; the same figures go to a JSON file.
//!
//! Run: `cargo build --release && cargo run --release -p xinlian-bench`.

mod consortium;
mod credit;
mod inspect;
mod load;
mod machine;
mod provenance;
mod report;
mod store_fill;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde::Serialize;
use xinlian_client::api::Status;
use xinlian_client::http::NodeClient;
use xinlian_client::proof::LightClient;
use xinlian_devnet::{Children, spawn_node};
use xinlian_genesis::Genesis;

use crate::consortium::Consortium;
use crate::report::{LoadReport, Report, print_load, print_table, write_json};

#[derive(Parser)]
#[command(
    name = "xinlian-bench",
    about = "Throughput, latency, sync, storage and verification against this machine's limits"
)]
struct Args {
    /// Seconds of sustained load at saturation (the figure is their average).
    #[arg(long, default_value_t = 30)]
    sustain_s: u64,
    /// Seconds per step of the ramp.
    #[arg(long, default_value_t = 6)]
    step_s: u64,
    /// Concurrent client actors (threads).
    #[arg(long, default_value_t = 48)]
    actors: usize,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// The node binary (default: `xinlian-node` beside this program).
    #[arg(long)]
    node: Option<PathBuf>,
    /// Only the provenance figure, on an otherwise empty ledger (about a minute).
    #[arg(long)]
    provenance_only: bool,
    /// The consortium's block interval (genesis policy; default 500 ms).
    #[arg(long)]
    block_interval_ms: Option<u64>,
    /// Record a `perf` profile (frame-pointer call graphs, and scheduler switches for
    /// the time off the CPU) of the fresh node while it syncs, into this file. Build
    /// with `RUSTFLAGS="-C force-frame-pointers=yes"` for useful call graphs.
    #[arg(long)]
    perf_sync: Option<PathBuf>,
    /// Instead of the ramp: load until the ledger holds this many records, sampling
    /// every node's memory as it grows (the 1,000,000-record memory run).
    #[arg(long)]
    fill: Option<u64>,
    /// Instead of a consortium: this many records of the mix executed into blocks and
    /// committed through the node's store alone (no network, no consensus), its time,
    /// memory and disk sampled as it grows (docs/storage.md § Figures).
    #[arg(long)]
    store_fill: Option<u64>,
    /// Instead of a consortium: block execution alone (`execute_block`, no commit
    /// timed) over this many records of the mix, in blocks of `--block-records`: the
    /// bound `--fill` compares a fresh node's sync with, at any ledger size.
    #[arg(long)]
    execution_rate: Option<u64>,
    /// Records per block in `--store-fill` and `--execution-rate` (the genesis
    /// policy's bound).
    #[arg(long, default_value_t = 4096)]
    block_records: u32,
    /// The engine's cache in `--store-fill`, MiB.
    #[arg(long, default_value_t = 64)]
    cache_mib: u64,
    /// Where `--store-fill` writes (default: a new temporary folder, removed after).
    #[arg(long)]
    fill_dir: Option<PathBuf>,
    /// Actors send each cycle's records (up to nine) in one `POST /v1/records/bulk`
    /// request instead of one request per record.
    #[arg(long)]
    bulk: bool,
    /// Validators in the consortium (the scale runs: 4, 7, 10, 16).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Only the load phases (ramp, saturation, half of it) and their cost: no
    /// provenance, sync, proof or disk figures.
    #[arg(long)]
    load_only: bool,
    /// Only the credit figures, in process: verifying a 1,000-record credit record and
    /// the cost per record of keeping `credit_root` (about 15 s; no consortium).
    #[arg(long)]
    credit_only: bool,
    /// Offered records/s during `--fill`.
    #[arg(long, default_value_t = 1_500)]
    fill_rate: u64,
}

/// Every node's resident memory at a ledger size.
#[derive(Serialize, Clone)]
struct RssSample {
    records: u64,
    elapsed_s: f64,
    rss_mib: Vec<(String, f64)>,
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(&pid.to_string(), "VmHWM:")
}

/// A memory field (`VmRSS:`, `VmHWM:`) of `/proc/<pid>/status` (`pid` may be `self`), MiB.
fn status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(n) = args.store_fill {
        return store_fill::run(n, args.block_records, args.cache_mib, args.fill_dir.clone());
    }
    if let Some(n) = args.execution_rate {
        let rate = store_fill::execution_rate(n, args.block_records)?;
        println!(
            "block execution alone: {rate:.0} records/s over {n} records in blocks of {}",
            args.block_records
        );
        return Ok(());
    }
    if args.credit_only {
        eprintln!("measuring the machine…");
        let limits = machine::measure()?;
        let f = credit::measure(limits.ed25519_batch_verify_per_s, 15)?;
        println!(
            "machine: {:.0} ZIP-215 batch verifications/s on {} cores",
            limits.ed25519_batch_verify_per_s, limits.cores
        );
        credit::print(&f);
        return write_json(&args.out, &f);
    }
    let node_bin = node_binary(&args)?;
    eprintln!("measuring the machine…");
    let limits = machine::measure()?;
    let mut c = consortium::start(&node_bin, args.validators, args.block_interval_ms)?;
    if args.provenance_only {
        return provenance_only(&args, &mut c);
    }
    let node0 = NodeClient::new(&c.apis[0]);
    let ents = consortium::register_enterprises(args.actors, &node0, &c)?;
    let shared = workload::Shared::new();
    let pids = c.children.0.iter().map(|(_, child)| child.id()).collect();
    let watcher = load::watch(
        NodeClient::new(&c.apis[0]),
        shared.clone(),
        pids,
        c.apis.clone(),
    );
    let threads = consortium::start_actors(&ents, &c, &shared, args.bulk);
    if let Some(target) = args.fill {
        return fill(&args, &node_bin, target, &shared, &node0, &mut c, threads);
    }
    let log = c.dir.path().join("nodes/v0.log");
    let phases = load::run(&watcher, &shared, &node0, &log, args.step_s, args.sustain_s)?;
    shared.set_rate(0);
    std::thread::sleep(Duration::from_secs(3));
    consortium::stop_actors(&shared, threads);
    let bound = limits.ed25519_batch_verify_per_s / args.validators.max(1) as f64;
    if args.load_only {
        let status = node0.status()?;
        let report = LoadReport {
            fraction_of_verification_bound: phases.saturation.finalized_per_s / bound,
            execution_records_per_s: execution_rate(&status)?,
            machine: limits,
            validators: args.validators,
            bulk_submissions: args.bulk,
            records: status.ledger_size,
            ramp: phases.ramp,
            saturation: phases.saturation,
            half_saturation: phases.half_saturation,
            overload: phases.overload,
            block_interval_ms: c.genesis.policy.block_interval_ms,
            half_saturation_blocks: phases.half_saturation_blocks,
            refusals: refusals(&shared),
        };
        c.children.stop();
        print_load(&report);
        return write_json(&args.out, &report);
    }

    eprintln!("provenance of a batch with over 1,000 upstream events…");
    let provenance = provenance::measure(&node0, &c.genesis, &c.market, 20)?;
    let status = node0.status()?;
    let sync_records_per_s = sync_fresh_node(&args, &node_bin, &mut c, &status)?;
    let disk_bytes_per_record =
        disk_bytes_per_record(c.dir.path(), args.validators, status.ledger_size);
    let peak_rss_mib = peak_rss(&c.children);
    let (proof_verify_ms, proofs_1000_verify_ms) =
        proof_figures(&node0, &c.genesis, status.height)?;
    let execution_records_per_s = execution_rate(&status)?;
    let report = Report {
        fraction_of_verification_bound: phases.saturation.finalized_per_s / bound,
        machine: limits,
        validators: args.validators,
        bulk_submissions: args.bulk,
        records: status.ledger_size,
        ramp: phases.ramp,
        saturation: phases.saturation,
        half_saturation: phases.half_saturation,
        overload: phases.overload,
        sync_records_per_s,
        execution_records_per_s,
        disk_bytes_per_record,
        peak_rss_mib,
        proof_verify_ms,
        proofs_1000_verify_ms,
        provenance,
        block_interval_ms: c.genesis.policy.block_interval_ms,
        half_saturation_blocks: phases.half_saturation_blocks,
        disk: inspect::DiskBreakdown::default(),
        refusals: refusals(&shared),
    };
    c.children.stop();
    let report = Report {
        disk: inspect::disk_breakdown(&c.dir.path().join("nodes/v0"), report.records)?,
        ..report
    };
    print_table(&report);
    write_json(&args.out, &report)
}

/// `--node`, or `xinlian-node` beside this program; it must exist.
fn node_binary(args: &Args) -> Result<PathBuf> {
    let node_bin = match &args.node {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("xinlian-node"),
    };
    if !node_bin.exists() {
        bail!(
            "{} not found: run `cargo build --release` first",
            node_bin.display()
        );
    }
    Ok(node_bin)
}

/// `--provenance-only`: the provenance figure on an otherwise empty ledger.
fn provenance_only(args: &Args, c: &mut Consortium) -> Result<()> {
    eprintln!("loading a chain of over 1,000 events and tracing it…");
    let f = provenance::measure(&NodeClient::new(&c.apis[0]), &c.genesis, &c.market, 20)?;
    c.children.stop();
    provenance::print(&f);
    write_json(&args.out, &f)
}

/// Starts the observer `o0` (under `perf` with `--perf-sync`) and waits until it
/// holds the chain up to `status`; the records synced per second.
fn sync_fresh_node(
    args: &Args,
    node_bin: &Path,
    c: &mut Consortium,
    status: &Status,
) -> Result<f64> {
    let start = Instant::now();
    let (child, oapi, _) = spawn_node(node_bin, c.dir.path(), "o0", 0, 0, &c.p2ps, None)?;
    let perf = match &args.perf_sync {
        Some(out) => Some(
            std::process::Command::new("perf")
                // On-CPU samples, and every switch and wake-up of its threads for the
                // off-CPU side (`perf sched timehist -s -i FILE`: each thread's run
                // time, time asleep and time runnable but waiting for a core).
                .args(["record", "-e", "cpu-clock", "-e", "sched:sched_switch"])
                .args(["-e", "sched:sched_wakeup", "--call-graph", "fp", "-o"])
                .arg(out)
                .arg("-p")
                .arg(child.id().to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting perf")?,
        ),
        None => None,
    };
    c.children.0.push(("o0".into(), child));
    let observer = NodeClient::new(&oapi);
    while observer.status().map(|s| s.height).unwrap_or(0) < status.height {
        if start.elapsed() > Duration::from_secs(600) {
            bail!("the fresh node did not sync within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed().as_secs_f64();
    let sync_records_per_s = status.ledger_size as f64 / wall;
    print_sync_breakdown(&xinlian_devnet::process::log_path(c.dir.path(), "o0"), wall);
    if let Some(mut p) = perf {
        // perf writes its file on SIGINT.
        std::process::Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status()?;
        p.wait()?;
    }
    Ok(sync_records_per_s)
}

/// Block execution alone in this process, over as many records of the mix as the chain
/// holds (state grows as it executes, so a smaller run would flatter execution; at most
/// 2,000,000, about two minutes) in blocks of the chain's average size: what sync is
/// compared with.
fn execution_rate(status: &Status) -> Result<f64> {
    let records = status.ledger_size.clamp(1, 2_000_000);
    let block_records = (status.ledger_size / status.height.max(1)).clamp(1, 4096) as u32;
    eprintln!("block execution alone: {records} records in blocks of {block_records}…");
    store_fill::execution_rate(records, block_records)
}

/// Where the fresh node's sync time went, from its log's `sync answer` lines (timed by
/// its host at the edge): waiting for answers, checking their signatures on every core,
/// and applying them (certificates, execution, one commit per answer); the rest is
/// start-up, connecting and status.
fn print_sync_breakdown(log: &Path, wall_s: f64) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let field = |line: &str, name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (mut answers, mut blocks, mut largest) = (0u64, 0.0, 0.0f64);
    let (mut waited, mut signatures, mut applied) = (0.0, 0.0, 0.0);
    for line in text.lines().filter(|l| l.contains("sync answer")) {
        answers += 1;
        blocks += field(line, "blocks");
        largest = largest.max(field(line, "records"));
        waited += field(line, "waited_us") / 1e6;
        signatures += field(line, "signatures_us") / 1e6;
        applied += field(line, "applied_us") / 1e6;
    }
    let share = |s: f64| 100.0 * s / wall_s;
    eprintln!(
        "sync: {answers} answers (the largest {largest:.0} records), {blocks:.0} blocks in {wall_s:.1} s: {waited:.1} s waiting for answers ({:.0}%), {signatures:.1} s checking signatures ({:.0}%), {applied:.1} s applying them ({:.0}%)",
        share(waited),
        share(signatures),
        share(applied)
    );
}

/// The validators' folders on disk, per validator and record.
fn disk_bytes_per_record(dir: &Path, validators: usize, records: u64) -> f64 {
    let disk: u64 = (0..validators)
        .map(|i| dir_bytes(&dir.join("nodes").join(format!("v{i}"))))
        .sum();
    disk as f64 / validators.max(1) as f64 / records.max(1) as f64
}

/// Each node's peak resident memory.
fn peak_rss(children: &Children) -> Vec<(String, f64)> {
    children
        .0
        .iter()
        .map(|(id, c)| (id.clone(), peak_rss_mib(c.id())))
        .collect()
}

/// Verifying proofs from a verified header (the tip at `height`): one proof 200 times,
/// and the last 1,000 records' proofs; ms per proof, and per 1,000 proofs.
fn proof_figures(node0: &NodeClient, genesis: &Genesis, height: u64) -> Result<(f64, f64)> {
    let tip = node0.block(height)?;
    let mut light = LightClient::new(genesis.clone());
    light
        .advance(
            xinlian_client::proof::Checkpoint {
                header: tip.header.clone(),
                certificate: tip.certificate.clone(),
            },
            None,
        )
        .context("the tip verifies")?;
    let mut proofs = Vec::new();
    'collect: for h in (1..=height).rev() {
        for id in node0.block(h)?.records {
            proofs.push(node0.record_proof(&id, Some(height))?);
            if proofs.len() == 1000 {
                break 'collect;
            }
        }
    }
    // One proof checked afresh each time (the process remembers valid signatures).
    let t = Instant::now();
    for _ in 0..200 {
        xinlian_client::crypto::forget_verified();
        light.verify_record(&proofs[0])?;
    }
    let proof_verify_ms = t.elapsed().as_secs_f64() * 1000.0 / 200.0;
    // A thousand proofs in one process: signatures they share are checked once.
    xinlian_client::crypto::forget_verified();
    let t = Instant::now();
    for p in &proofs {
        light.verify_record(p)?;
    }
    let proofs_1000_verify_ms = t.elapsed().as_secs_f64() * 1000.0 * 1000.0 / proofs.len() as f64;
    Ok((proof_verify_ms, proofs_1000_verify_ms))
}

/// The submissions refused during the load, by code.
fn refusals(shared: &workload::Shared) -> Vec<(String, u64)> {
    let mut refusals: Vec<(String, u64)> = shared
        .refusals
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    refusals.sort();
    refusals
}

/// `--fill`: a steady load until the ledger holds `target` records, every node's
/// memory sampled each 100,000; then the disk of one validator.
fn fill(
    args: &Args,
    node_bin: &Path,
    target: u64,
    shared: &Arc<workload::Shared>,
    node0: &NodeClient,
    c: &mut Consortium,
    threads: Vec<std::thread::JoinHandle<()>>,
) -> Result<()> {
    let start = Instant::now();
    shared.set_rate(args.fill_rate);
    let mut samples: Vec<RssSample> = Vec::new();
    let mut next = 100_000.min(target);
    loop {
        let size = node0.status()?.ledger_size;
        if size >= next {
            let s = RssSample {
                records: size,
                elapsed_s: start.elapsed().as_secs_f64(),
                rss_mib: c
                    .children
                    .0
                    .iter()
                    .map(|(id, c)| (id.clone(), inspect::rss_mib(c.id())))
                    .collect(),
            };
            eprintln!(
                "{:>9} records after {:>6.0} s: RSS {:?}",
                s.records, s.elapsed_s, s.rss_mib
            );
            samples.push(s);
            if size >= target {
                break;
            }
            next = (next + 100_000).min(target);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    shared.set_rate(0);
    consortium::stop_actors(shared, threads);
    let status = node0.status()?;
    let records = status.ledger_size;
    eprintln!("a fresh node syncs the {records} records…");
    let sync_records_per_s = sync_fresh_node(args, node_bin, c, &status)?;
    let peak = peak_rss(&c.children);
    c.children.stop();
    let disk = inspect::disk_breakdown(&c.dir.path().join("nodes/v0"), records)?;
    let execution_records_per_s = execution_rate(&status)?;
    println!(
        "memory as the ledger grows ({} records/s offered):",
        args.fill_rate
    );
    for s in &samples {
        let v: Vec<String> = s
            .rss_mib
            .iter()
            .map(|(id, m)| format!("{id} {m:.0}"))
            .collect();
        println!(
            "  {:>9} records  {:>6.0} s   RSS MiB: {}",
            s.records,
            s.elapsed_s,
            v.join(", ")
        );
    }
    let v: Vec<String> = peak.iter().map(|(id, m)| format!("{id} {m:.0}")).collect();
    println!(
        "  peak RSS MiB: {}   (target ≤ 300 after 1,000,000 records)",
        v.join(", ")
    );
    inspect::print_disk(&disk);
    report::print_sync(sync_records_per_s, execution_records_per_s);
    write_json(
        &args.out,
        &serde_json::json!({
            "fill_rate": args.fill_rate, "samples": samples, "peak_rss_mib": peak, "disk": disk,
            "sync_records_per_s": sync_records_per_s,
            "execution_records_per_s": execution_records_per_s,
        }),
    )
}
