//! The load phases: a watcher of node 0's blocks timing each record from submission
//! to finality, the ramp to saturation, saturation sustained, and half of it (with
//! the blocks it made, from node 0's log).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use xinlian_client::http::NodeClient;

use crate::{inspect, workload};

/// Blocks finalized during the 50% phase, from node 0's log.
#[derive(Serialize, Default, Clone)]
pub struct BlockTimings {
    pub blocks: usize,
    pub records_per_block: f64,
    /// From the proposer's clock at proposal to the block stored on node 0.
    pub propose_to_final_p50_ms: f64,
    pub propose_to_final_p99_ms: f64,
}

#[derive(Serialize, Default, Clone)]
pub struct Latency {
    pub offered_per_s: u64,
    pub finalized_per_s: f64,
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// CPU time (user and system, from `/proc/PID/stat`) each node process spent in
    /// the window, per record finalized in it, in µs; in the order of `pids`. `None`
    /// where it could not be read or nothing was finalized.
    pub node_cpu_us_per_record: Vec<Option<f64>>,
    /// The same for this process: the load generator's actors and the watcher.
    pub load_cpu_us_per_record: Option<f64>,
    /// Bytes each node sent to its peers in the window (libp2p's outbound transport
    /// count, from its `/metrics`), per record finalized in it; in the order of `pids`.
    pub node_sent_bytes_per_record: Vec<Option<f64>>,
}

/// Watches node 0's blocks: when each submitted record became final.
pub struct Watcher {
    finals: Arc<std::sync::Mutex<VecDeque<(Instant, Duration)>>>,
    /// The node processes whose CPU time each window measures, and their APIs (for
    /// the bytes they sent), in the same order.
    pids: Vec<u32>,
    apis: Vec<String>,
}

/// CPU seconds (user and system) process `pid` (or `self`) has used, from
/// `/proc/PID/stat` in clock ticks of 1/100 s (Linux's `USER_HZ`, fixed by its ABI
/// whatever the kernel's tick); `None` if unreadable (a process gone).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from the
    // last ')'. utime and stime are fields 14 and 15, the 12th and 13th after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// Bytes node `api` has sent to its peers: the sum of its outbound
/// `xinlian_libp2p_bandwidth_bytes_total` over transport stacks; `None` if unreadable.
pub fn sent_bytes(api: &str) -> Option<f64> {
    let text = ureq::get(format!("{api}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    let sum = text
        .lines()
        .filter(|l| {
            l.starts_with("xinlian_libp2p_bandwidth_bytes_total{")
                && l.contains("direction=\"Outbound\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    Some(sum)
}

pub fn watch(
    node: NodeClient,
    shared: Arc<workload::Shared>,
    pids: Vec<u32>,
    apis: Vec<String>,
) -> Watcher {
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
    Watcher { finals, pids, apis }
}

impl Watcher {
    /// Runs the load at `rate` for `secs` and measures what was finalized in that window
    /// (after a settling second). Starts from an empty backlog: a step that overloaded
    /// the ledger must not count against the next one.
    pub fn measure(&self, shared: &workload::Shared, rate: u64, secs: u64) -> Latency {
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
        let cpu = |pids: &[u32]| -> Vec<Option<f64>> {
            pids.iter()
                .map(|p| cpu_seconds(&p.to_string()))
                .chain([cpu_seconds("self")])
                .collect()
        };
        let sent =
            |apis: &[String]| -> Vec<Option<f64>> { apis.iter().map(|a| sent_bytes(a)).collect() };
        let sent_before = sent(&self.apis);
        let cpu_before = cpu(&self.pids);
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let end = Instant::now();
        let cpu_after = cpu(&self.pids);
        let sent_after = sent(&self.apis);
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
        let records = window.len();
        let per_record_us: Vec<Option<f64>> = cpu_before
            .iter()
            .zip(&cpu_after)
            .map(|(b, a)| {
                let spent = (*a)? - (*b)?;
                (records > 0).then(|| spent * 1e6 / records as f64)
            })
            .collect();
        let (load, nodes) = per_record_us.split_last().unwrap_or((&None, &[]));
        let node_sent_bytes_per_record = sent_before
            .iter()
            .zip(&sent_after)
            .map(|(b, a)| {
                let sent = (*a)? - (*b)?;
                (records > 0).then(|| sent / records as f64)
            })
            .collect();
        Latency {
            node_sent_bytes_per_record,
            node_cpu_us_per_record: nodes.to_vec(),
            load_cpu_us_per_record: *load,
            offered_per_s: rate,
            finalized_per_s: window.len() as f64 / (end - start).as_secs_f64(),
            samples: lat.len(),
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
        }
    }
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

/// What the load phases measured.
pub struct Phases {
    pub ramp: Vec<Latency>,
    pub saturation: Latency,
    pub half_saturation: Latency,
    pub half_saturation_blocks: BlockTimings,
    /// Offered 2× and 4× the saturating rate: what is still finalized (goodput).
    pub overload: Vec<Latency>,
}

/// Doubles the offer from 250/s each `step_s` until the ledger no longer keeps up,
/// then sustains the best finalized rate for `sustain_s`, half of it for up to 20 s
/// (reading that phase's blocks from node 0's `log`), and twice and four times it for
/// up to 20 s each.
pub fn run(
    watcher: &Watcher,
    shared: &workload::Shared,
    node0: &NodeClient,
    log: &Path,
    step_s: u64,
    sustain_s: u64,
) -> Result<Phases> {
    let ramp = ramp(watcher, shared, step_s);
    let best = ramp
        .iter()
        .map(|m| m.finalized_per_s)
        .fold(0.0, f64::max)
        .max(1.0);
    eprintln!("sustaining saturation ({best:.0}/s offered) for {sustain_s} s…");
    let saturation = watcher.measure(shared, best as u64, sustain_s);
    eprintln!("half of saturation…");
    let h0 = node0.status()?.height;
    let half_saturation = watcher.measure(shared, (best / 2.0) as u64, sustain_s.min(20));
    let h1 = node0.status()?.height;
    let overload = [2.0, 4.0]
        .into_iter()
        .map(|times| {
            eprintln!("{times}× saturation ({:.0}/s offered)…", best * times);
            watcher.measure(shared, (best * times) as u64, sustain_s.min(20))
        })
        .collect();
    Ok(Phases {
        ramp,
        saturation,
        half_saturation,
        half_saturation_blocks: block_timings(log, h0 + 1..=h1),
        overload,
    })
}

/// Ramp until the ledger no longer keeps up with the offer.
fn ramp(watcher: &Watcher, shared: &workload::Shared, step_s: u64) -> Vec<Latency> {
    let mut ramp = Vec::new();
    let mut rate = 250;
    loop {
        let m = watcher.measure(shared, rate, step_s);
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
    ramp
}
