//! The storage-engine comparison (docs/storage.md § Engine). `compare` runs `one` for
//! each engine in a process of its own (so that each has its own resident memory) and
//! prints a table; `one` fills one engine with the ledger's write pattern
//! (`workload.rs`) in blocks, and prints JSON: commit latency per block, resident
//! memory and disk as it grows, lookup latency at the end.
//!
//! Usage:
//!   xinlian-engine-comparison compare [--records N] [--block R] [--cache-mib M] [--engines a,b] [--dir D]
//!   xinlian-engine-comparison one --engine E [--records N] [--block R] [--cache-mib M] --dir D

mod engines;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

struct Args {
    command: String,
    engine: Option<String>,
    engines: Vec<String>,
    records: u64,
    block: u64,
    cache_mib: u64,
    dir: Option<PathBuf>,
    lookups: u64,
}

fn parse() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().context("a command: compare or one")?;
    let mut a = Args {
        command,
        engine: None,
        engines: engines::NAMES.iter().map(|s| s.to_string()).collect(),
        records: 10_000_000,
        block: 4096,
        cache_mib: 64,
        dir: None,
        lookups: 100_000,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--engine" => a.engine = Some(value()?),
            "--engines" => a.engines = value()?.split(',').map(str::to_string).collect(),
            "--records" => a.records = value()?.replace('_', "").parse()?,
            "--block" => a.block = value()?.parse()?,
            "--cache-mib" => a.cache_mib = value()?.parse()?,
            "--lookups" => a.lookups = value()?.parse()?,
            "--dir" => a.dir = Some(value()?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    if a.block == 0 || a.records == 0 {
        bail!("--records and --block must be positive");
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = parse()?;
    match a.command.as_str() {
        "one" => {
            let engine = a.engine.clone().context("--engine")?;
            let dir = a.dir.clone().context("--dir")?;
            let out = one(&engine, &dir, &a)?;
            println!("{out}");
            Ok(())
        }
        "compare" => compare(&a),
        other => bail!("unknown command {other}: compare or one"),
    }
}

fn proc_status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(f64::NAN)
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Fills one engine and measures it.
fn one(name: &str, dir: &Path, a: &Args) -> Result<Value> {
    let mut e = engines::open(name, dir, a.cache_mib << 20)?;
    let started = Instant::now();
    let mut commit_ms = Vec::new();
    let mut samples = Vec::new();
    let every = (a.records / 10).max(a.block);
    let mut next_sample = every;
    let mut raw = Vec::new();
    let mut written = 0u64;
    while written < a.records {
        let n = a.block.min(a.records - written);
        raw.clear();
        for i in written..written + n {
            workload::record_writes(i, &mut raw);
        }
        // A block's writes are a map: the last write of a key wins, in key order.
        let block: Vec<(Vec<u8>, Vec<u8>)> = raw
            .drain(..)
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let t = Instant::now();
        e.commit(&block)?;
        commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        written += n;
        if written >= next_sample || written == a.records {
            samples.push(json!({
                "records": written,
                "rss_mib": proc_status_kib("VmRSS:") / 1024.0,
                "disk_mib": dir_bytes(dir) as f64 / (1 << 20) as f64,
                "seconds": started.elapsed().as_secs_f64(),
            }));
            next_sample += every;
        }
    }
    let fill_s = started.elapsed().as_secs_f64();
    let mut lookup_us = Vec::with_capacity(a.lookups as usize);
    for n in 0..a.lookups {
        let k = workload::lookup_key(a.records, n);
        let t = Instant::now();
        let found = e.get(&k)?;
        lookup_us.push(t.elapsed().as_secs_f64() * 1e6);
        if found.is_none() {
            bail!("{name}: a written key is missing");
        }
    }
    lookup_us.sort_by(f64::total_cmp);
    let tail = &commit_ms[commit_ms.len() / 2..];
    let mut all = commit_ms.clone();
    all.sort_by(f64::total_cmp);
    let mut late = tail.to_vec();
    late.sort_by(f64::total_cmp);
    let live = e.live_bytes()?;
    let disk = dir_bytes(dir);
    Ok(json!({
        "engine": name,
        "records": a.records,
        "block_records": a.block,
        "cache_mib": a.cache_mib,
        "fill_seconds": fill_s,
        "records_per_s": a.records as f64 / fill_s,
        "commit_ms_p50": percentile(&all, 0.5),
        "commit_ms_p99": percentile(&all, 0.99),
        "commit_ms_p50_second_half": percentile(&late, 0.5),
        "commit_ms_p99_second_half": percentile(&late, 0.99),
        "lookup_us_p50": percentile(&lookup_us, 0.5),
        "lookup_us_p99": percentile(&lookup_us, 0.99),
        "peak_rss_mib": proc_status_kib("VmHWM:") / 1024.0,
        "disk_bytes": disk,
        "disk_bytes_per_record": disk as f64 / a.records as f64,
        "live_bytes_per_record": live as f64 / a.records as f64,
        "samples": samples,
    }))
}

fn compare(a: &Args) -> Result<()> {
    let base = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("xinlian-engines-{}", std::process::id())),
    };
    let me = std::env::current_exe()?;
    let mut results = Vec::new();
    for name in &a.engines {
        let dir = base.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("{name}: {} records in blocks of {} …", a.records, a.block);
        let out = std::process::Command::new(&me)
            .args(["one", "--engine", name, "--dir"])
            .arg(&dir)
            .args(["--records", &a.records.to_string()])
            .args(["--block", &a.block.to_string()])
            .args(["--cache-mib", &a.cache_mib.to_string()])
            .args(["--lookups", &a.lookups.to_string()])
            .output()?;
        let _ = std::fs::remove_dir_all(&dir);
        if !out.status.success() {
            bail!("{name} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout)?;
        eprintln!("{name}: {}", v);
        results.push(v);
    }
    // Only the folder this run made up is removed; a `--dir` given may hold other things.
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    println!(
        "{} records, blocks of {}, cache {} MiB, one durable commit per block",
        a.records, a.block, a.cache_mib
    );
    println!(
        "{:<8} {:>10} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9}",
        "engine", "records/s", "peak RSS", "disk B/rec", "live B", "amplif.", "commit", "p99", "get p50", "get p99", "RSS last"
    );
    for v in &results {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let last_rss = v["samples"]
            .as_array()
            .and_then(|s| s.last())
            .and_then(|s| s["rss_mib"].as_f64())
            .unwrap_or(f64::NAN);
        println!(
            "{:<8} {:>10.0} {:>7.0} MiB {:>11.0} {:>9.0} {:>8.2}× {:>6.1} ms {:>6.1} ms {:>5.1} µs {:>5.1} µs {:>5.0} MiB",
            v["engine"].as_str().unwrap_or("?"),
            f("records_per_s"),
            f("peak_rss_mib"),
            f("disk_bytes_per_record"),
            f("live_bytes_per_record"),
            f("disk_bytes_per_record") / f("live_bytes_per_record"),
            f("commit_ms_p50"),
            f("commit_ms_p99"),
            f("lookup_us_p50"),
            f("lookup_us_p99"),
            last_rss,
        );
    }
    println!("{}", json!({ "results": results }));
    Ok(())
}
