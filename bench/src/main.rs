//! `xinlian-bench`: measures the machine, then a local consortium of four validator
//! processes under an open-loop load through the HTTP API, and prints every figure
//! with its ratio to the machine's limits; the same figures go to a JSON file.
//!
//! Run: `cargo build --release && cargo run --release -p xinlian-bench`.

mod inspect;
mod machine;
mod provenance;
mod workload;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde::Serialize;
use xinlian_client::http::NodeClient;
use xinlian_client::proof::LightClient;
use xinlian_client::record::RegisterEntity;
use xinlian_client::signer::RecordSigner;
use xinlian_devnet::{Children, spawn_node};
use xinlian_genesis::scaffold::{MemberSpec, scaffold, signing_key_path};
use xinlian_genesis::{Policy, Role, keys};

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
    /// Record a `perf` profile (frame-pointer call graphs) of the fresh node while it
    /// syncs, into this file. Build with `RUSTFLAGS="-C force-frame-pointers=yes"`.
    #[arg(long)]
    perf_sync: Option<PathBuf>,
    /// Instead of the ramp: load until the ledger holds this many records, sampling
    /// every node's memory as it grows (the 1,000,000-record memory run).
    #[arg(long)]
    fill: Option<u64>,
    /// Instead of a consortium: sled alone under the ledger's write pattern for this
    /// many records, its memory sampled (to tell sled's memory from the node's).
    #[arg(long)]
    sled_alone: Option<u64>,
    /// Hot-key overwrites per record in `--sled-alone`.
    #[arg(long, default_value_t = 3)]
    sled_alone_hot: u64,
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

/// Blocks finalized during the 50% phase, from node 0's log.
#[derive(Serialize, Default, Clone)]
struct BlockTimings {
    blocks: usize,
    records_per_block: f64,
    /// From the proposer's clock at proposal to the block stored on node 0.
    propose_to_final_p50_ms: f64,
    propose_to_final_p99_ms: f64,
}

#[derive(Serialize, Default, Clone)]
struct Latency {
    offered_per_s: u64,
    finalized_per_s: f64,
    samples: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize)]
struct Report {
    machine: machine::Limits,
    validators: usize,
    /// Records on the ledger at the end of the load.
    records: u64,
    ramp: Vec<Latency>,
    saturation: Latency,
    half_saturation: Latency,
    /// Finalized records/s at saturation over the verification bound for 4 nodes
    /// (every node checks every signature: all-core batch rate / 4).
    fraction_of_verification_bound: f64,
    sync_records_per_s: f64,
    disk_bytes_per_record: f64,
    peak_rss_mib: Vec<(String, f64)>,
    proof_verify_ms: f64,
    proofs_1000_verify_ms: f64,
    provenance: provenance::Figures,
    block_interval_ms: u64,
    half_saturation_blocks: BlockTimings,
    disk: inspect::DiskBreakdown,
    refusals: Vec<(String, u64)>,
}

/// Watches node 0's blocks: when each submitted record became final.
struct Watcher {
    finals: Arc<std::sync::Mutex<VecDeque<(Instant, Duration)>>>,
}

fn watch(node: NodeClient, shared: Arc<workload::Shared>) -> Watcher {
    let finals = Arc::new(std::sync::Mutex::new(VecDeque::new()));
    let f = finals.clone();
    std::thread::spawn(move || {
        let mut seen = node.status().map(|s| s.height).unwrap_or(0);
        while !shared.stop.load(Ordering::Relaxed) {
            let Ok(s) = node.status() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            for h in seen + 1..=s.height {
                let Ok(b) = node.block(h) else { break };
                let now = Instant::now();
                let mut sub = shared.submitted.lock().expect("not poisoned");
                let mut fin = f.lock().expect("not poisoned");
                for id in &b.records {
                    if let Some(at) = sub.remove(id) {
                        fin.push_back((now, now - at));
                    } else {
                        fin.push_back((now, Duration::MAX));
                    }
                }
                seen = h;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    Watcher { finals }
}

impl Watcher {
    /// Runs the load at `rate` for `secs` and measures what was finalized in that window
    /// (after a settling second). Starts from an empty backlog: a step that overloaded
    /// the ledger must not count against the next one.
    fn measure(&self, shared: &workload::Shared, rate: u64, secs: u64) -> Latency {
        shared.set_rate(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !shared.submitted.lock().expect("not poisoned").is_empty()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // What never became final (refused on a later check) no longer counts.
        shared.submitted.lock().expect("not poisoned").clear();
        shared.set_rate(rate);
        std::thread::sleep(Duration::from_secs(1));
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let end = Instant::now();
        let fin = self.finals.lock().expect("not poisoned");
        let window: Vec<Duration> = fin
            .iter()
            .filter(|(t, _)| *t >= start && *t < end)
            .map(|(_, l)| *l)
            .collect();
        let mut lat: Vec<f64> = window
            .iter()
            .filter(|l| **l != Duration::MAX)
            .map(|l| l.as_secs_f64() * 1000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if lat.is_empty() {
                f64::NAN
            } else {
                lat[((lat.len() - 1) as f64 * p) as usize]
            }
        };
        Latency {
            offered_per_s: rate,
            finalized_per_s: window.len() as f64 / (end - start).as_secs_f64(),
            samples: lat.len(),
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
        }
    }
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
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
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
    if let Some(n) = args.sled_alone {
        let dir = tempfile::tempdir()?;
        println!(
            "sled alone, the ledger's write pattern with {} hot-key overwrites per record, 64 MiB page cache:",
            args.sled_alone_hot
        );
        for (records, mib) in
            inspect::sled_alone(dir.path(), n, 100_000, 64 << 20, args.sled_alone_hot)?
        {
            println!("  {records:>9} records   RSS {mib:>6.0} MiB");
        }
        return Ok(());
    }
    eprintln!("measuring the machine…");
    let limits = machine::measure()?;

    let dir = tempfile::tempdir()?;
    let mut specs: Vec<MemberSpec> = MemberSpec::validators(4);
    specs.push(MemberSpec {
        id: "o0".into(),
        name: "Fresh observer".into(),
        region: "310000".into(),
        roles: vec![Role::Observer],
        voting_power: 0,
    });
    specs.push(MemberSpec {
        id: "market".into(),
        name: "Market regulator".into(),
        region: "310000".into(),
        roles: vec![
            Role::Registrar,
            Role::CreditAuthority("market".into()),
            Role::TraceAuthority("food".into()),
        ],
        voting_power: 0,
    });
    let policy = Policy {
        block_interval_ms: args
            .block_interval_ms
            .unwrap_or(Policy::default().block_interval_ms),
        ..Policy::default()
    };
    let block_interval_ms = policy.block_interval_ms;
    let genesis = scaffold(dir.path(), "xinlian-bench", 0, policy, &specs)?;
    let chain = genesis.hash();
    let mut children = Children(Vec::new());
    let (mut apis, mut p2ps) = (Vec::new(), Vec::new());
    for i in 0..4 {
        let id = format!("v{i}");
        let (child, api, p2p) = spawn_node(&node_bin, dir.path(), &id, 0, 0, &p2ps)?;
        children.0.push((id, child));
        apis.push(api);
        p2ps.push(p2p);
    }
    let market = RecordSigner {
        key: keys::read_pem(&signing_key_path(dir.path(), "market"))?,
        chain,
    };

    if args.provenance_only {
        eprintln!("loading a chain of over 1,000 events and tracing it…");
        let f = provenance::measure(&NodeClient::new(&apis[0]), &genesis, &market, 20)?;
        children.stop();
        provenance::print(&f);
        std::fs::write(&args.out, serde_json::to_string_pretty(&f)?)?;
        println!("(JSON: {})", args.out.display());
        return Ok(());
    }
    eprintln!("registering {} enterprises…", args.actors);
    let node0 = NodeClient::new(&apis[0]);
    let mut ents = Vec::new();
    let mut last = None;
    for i in 0..args.actors {
        let (e, key) = workload::enterprise(i, chain)?;
        let rec = market.sign(RegisterEntity {
            uscc: e.uscc.clone(),
            name: format!("bench enterprise {i}"),
            key: keys::public_key(&key),
            check_override: None,
        });
        last = Some(node0.submit(&rec)?.id);
        ents.push(e);
    }
    node0
        .record(&last.expect("actors"), 30_000)?
        .height
        .context("registrations not final within 30 s")?;

    let shared = workload::Shared::new();
    let watcher = watch(NodeClient::new(&apis[0]), shared.clone());
    let mut threads = Vec::new();
    for i in 0..args.actors {
        let partner_index = (i + 1) % args.actors;
        let actor = workload::Actor {
            me: workload::Enterprise {
                uscc: ents[i].uscc.clone(),
                signer: RecordSigner {
                    key: ents[i].signer.key.clone(),
                    chain,
                },
            },
            partner: workload::Enterprise {
                uscc: ents[partner_index].uscc.clone(),
                signer: RecordSigner {
                    key: ents[partner_index].signer.key.clone(),
                    chain,
                },
            },
            market: RecordSigner {
                key: market.key.clone(),
                chain,
            },
            registrar: RecordSigner {
                key: market.key.clone(),
                chain,
            },
            node: NodeClient::new(&apis[i % 4]),
            index: i,
        };
        let s = shared.clone();
        threads.push(std::thread::spawn(move || actor.run(&s)));
    }

    if let Some(target) = args.fill {
        return fill(
            &args,
            target,
            &shared,
            &node0,
            &mut children,
            dir.path(),
            threads,
        );
    }

    // Ramp until the ledger no longer keeps up with the offer.
    let mut ramp = Vec::new();
    let mut rate = 250;
    loop {
        let m = watcher.measure(&shared, rate, args.step_s);
        eprintln!(
            "offered {:>6}/s  finalized {:>8.0}/s  p50 {:>7.1} ms  p99 {:>7.1} ms",
            m.offered_per_s, m.finalized_per_s, m.p50_ms, m.p99_ms
        );
        let keeping_up = m.finalized_per_s >= 0.8 * rate as f64;
        ramp.push(m);
        if !keeping_up || rate >= 64_000 {
            break;
        }
        rate *= 2;
    }
    let best = ramp
        .iter()
        .map(|m| m.finalized_per_s)
        .fold(0.0, f64::max)
        .max(1.0);
    eprintln!(
        "sustaining saturation ({best:.0}/s offered) for {} s…",
        args.sustain_s
    );
    let saturation = watcher.measure(&shared, best as u64, args.sustain_s);
    eprintln!("half of saturation…");
    let h0 = node0.status()?.height;
    let half = watcher.measure(&shared, (best / 2.0) as u64, args.sustain_s.min(20));
    let h1 = node0.status()?.height;
    let half_saturation_blocks = block_timings(&dir.path().join("nodes/v0.log"), h0 + 1..=h1);
    shared.set_rate(0);
    std::thread::sleep(Duration::from_secs(3));
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }

    eprintln!("provenance of a batch with over 1,000 upstream events…");
    let provenance = provenance::measure(&node0, &genesis, &market, 20)?;

    // A fresh node syncs the whole chain.
    let status = node0.status()?;
    let start = Instant::now();
    let (child, oapi, _) = spawn_node(&node_bin, dir.path(), "o0", 0, 0, &p2ps)?;
    let perf = match &args.perf_sync {
        Some(out) => Some(
            std::process::Command::new("perf")
                .args(["record", "-e", "cpu-clock", "--call-graph", "fp", "-o"])
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
    children.0.push(("o0".into(), child));
    let observer = NodeClient::new(&oapi);
    while observer.status().map(|s| s.height).unwrap_or(0) < status.height {
        if start.elapsed() > Duration::from_secs(600) {
            bail!("the fresh node did not sync within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sync_records_per_s = status.ledger_size as f64 / start.elapsed().as_secs_f64();
    if let Some(mut p) = perf {
        // perf writes its file on SIGINT.
        std::process::Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status()?;
        p.wait()?;
    }

    let disk: u64 = (0..4)
        .map(|i| dir_bytes(&dir.path().join("nodes").join(format!("v{i}"))))
        .sum();
    let disk_bytes_per_record = disk as f64 / 4.0 / status.ledger_size.max(1) as f64;
    let peak_rss: Vec<(String, f64)> = children
        .0
        .iter()
        .map(|(id, c)| (id.clone(), peak_rss_mib(c.id())))
        .collect();

    // Verifying proofs from a verified header.
    let tip = node0.block(status.height)?;
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
    'collect: for h in (1..=status.height).rev() {
        for id in node0.block(h)?.records {
            proofs.push(node0.record_proof(&id, Some(status.height))?);
            if proofs.len() == 1000 {
                break 'collect;
            }
        }
    }
    let t = Instant::now();
    for _ in 0..200 {
        light.verify_record(&proofs[0])?;
    }
    let proof_verify_ms = t.elapsed().as_secs_f64() * 1000.0 / 200.0;
    let t = Instant::now();
    for p in &proofs {
        light.verify_record(p)?;
    }
    let proofs_1000_verify_ms = t.elapsed().as_secs_f64() * 1000.0 * 1000.0 / proofs.len() as f64;

    let mut refusals: Vec<(String, u64)> = shared
        .refusals
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    refusals.sort();
    let report = Report {
        fraction_of_verification_bound: saturation.finalized_per_s
            / (limits.ed25519_batch_verify_per_s / 4.0),
        machine: limits,
        validators: 4,
        records: status.ledger_size,
        ramp,
        saturation,
        half_saturation: half,
        sync_records_per_s,
        disk_bytes_per_record,
        peak_rss_mib: peak_rss,
        proof_verify_ms,
        proofs_1000_verify_ms,
        provenance,
        block_interval_ms,
        half_saturation_blocks,
        disk: inspect::DiskBreakdown::default(),
        refusals,
    };
    children.stop();
    let report = Report {
        disk: inspect::disk_breakdown(&dir.path().join("nodes/v0"), report.records)?,
        ..report
    };
    print_table(&report);
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("(JSON: {})", args.out.display());
    Ok(())
}

fn block_timings(log: &Path, heights: std::ops::RangeInclusive<u64>) -> BlockTimings {
    let t = inspect::block_timings(log, heights);
    if t.is_empty() {
        return BlockTimings::default();
    }
    let mut ms: Vec<u64> = t.iter().map(|x| x.1).collect();
    ms.sort_unstable();
    let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize] as f64;
    BlockTimings {
        blocks: t.len(),
        records_per_block: t.iter().map(|x| x.2).sum::<u64>() as f64 / t.len() as f64,
        propose_to_final_p50_ms: pct(0.5),
        propose_to_final_p99_ms: pct(0.99),
    }
}

/// `--fill`: a steady load until the ledger holds `target` records, every node's
/// memory sampled each 100,000; then the disk of one validator.
fn fill(
    args: &Args,
    target: u64,
    shared: &Arc<workload::Shared>,
    node0: &NodeClient,
    children: &mut Children,
    dir: &Path,
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
                rss_mib: children
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
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let records = node0.status()?.ledger_size;
    let peak: Vec<(String, f64)> = children
        .0
        .iter()
        .map(|(id, c)| (id.clone(), peak_rss_mib(c.id())))
        .collect();
    children.stop();
    let disk = inspect::disk_breakdown(&dir.join("nodes/v0"), records)?;
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
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&serde_json::json!({
            "fill_rate": args.fill_rate, "samples": samples, "peak_rss_mib": peak, "disk": disk,
        }))?,
    )?;
    println!("(JSON: {})", args.out.display());
    Ok(())
}

fn print_table(r: &Report) {
    let m = &r.machine;
    println!("machine ({} cores)", m.cores);
    println!(
        "  ed25519 batch verify (ZIP-215), all cores   {:>12.0} /s",
        m.ed25519_batch_verify_per_s
    );
    println!(
        "  SHA-256                                     {:>12.0} MB/s",
        m.sha256_mb_per_s
    );
    println!(
        "  sled group commit (flush per 1,000)         {:>12.0} inserts/s",
        m.sled_group_commit_inserts_per_s
    );
    println!(
        "  sled flush per insert                       {:>12.0} /s",
        m.sled_flush_each_per_s
    );
    println!(
        "ledger, 4 validators on this machine, {} records   figure      target    ratio",
        r.records
    );
    let bound = m.ed25519_batch_verify_per_s / 4.0;
    println!(
        "  sustained finalized records/s           {:>12.0}    ≥ 15,000   {:.2} of the verification bound ({bound:.0}/s)",
        r.saturation.finalized_per_s, r.fraction_of_verification_bound
    );
    for (name, l) in [
        ("50% of saturation", &r.half_saturation),
        ("saturation", &r.saturation),
    ] {
        println!(
            "  submit→final at {name:<18} p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms (target p99 ≤ 500 ms at 50%)",
            l.p50_ms, l.p95_ms, l.p99_ms
        );
    }
    println!(
        "  fresh-node sync                         {:>12.0} records/s   ≥ 30,000",
        r.sync_records_per_s
    );
    println!(
        "  disk per record (all indexes)           {:>12.0} bytes       ≤ 1,024",
        r.disk_bytes_per_record
    );
    for (id, mib) in &r.peak_rss_mib {
        println!("  peak RSS {id:<4}                           {mib:>12.1} MiB");
    }
    println!(
        "  verify one record's proof (trusted hdr) {:>12.3} ms          ≤ 0.2",
        r.proof_verify_ms
    );
    println!(
        "  verify 1,000 record proofs              {:>12.1} ms",
        r.proofs_1000_verify_ms
    );
    let b = &r.half_saturation_blocks;
    println!(
        "  at 50%: {} blocks of {:.0} records, proposal→final p50 {:.0} ms, p99 {:.0} ms (block interval {} ms)",
        b.blocks,
        b.records_per_block,
        b.propose_to_final_p50_ms,
        b.propose_to_final_p99_ms,
        r.block_interval_ms
    );
    inspect::print_disk(&r.disk);
    provenance::print(&r.provenance);
    if !r.refusals.is_empty() {
        println!("  refused submissions by code: {:?}", r.refusals);
    }
}
