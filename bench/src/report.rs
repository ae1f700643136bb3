//! The benchmark's report: the figures as JSON (field order is the file's), the
//! table printed with their targets and ratios, and writing a JSON result file.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::load::{BlockTimings, Latency};
use crate::{inspect, machine, provenance};

#[derive(Serialize)]
pub struct Report {
    pub machine: machine::Limits,
    pub validators: usize,
    /// Whether the actors sent each cycle's records in one bulk request (`--bulk`).
    pub bulk_submissions: bool,
    /// Records on the ledger at the end of the load.
    pub records: u64,
    pub ramp: Vec<Latency>,
    pub saturation: Latency,
    pub half_saturation: Latency,
    /// Offered 2× and 4× the saturating rate.
    pub overload: Vec<Latency>,
    /// Finalized records/s at saturation over the verification bound for the
    /// validators (every node checks every signature: all-core batch rate / nodes).
    pub fraction_of_verification_bound: f64,
    pub sync_records_per_s: f64,
    /// Records/s through block execution alone, in this process, over the mix in
    /// blocks of the chain's average size (`store_fill::execution_rate`): the bound
    /// sync is held to (≥ 0.7 of it).
    pub execution_records_per_s: f64,
    pub disk_bytes_per_record: f64,
    pub peak_rss_mib: Vec<(String, f64)>,
    pub proof_verify_ms: f64,
    pub proofs_1000_verify_ms: f64,
    pub provenance: provenance::Figures,
    pub block_interval_ms: u64,
    pub half_saturation_blocks: BlockTimings,
    pub disk: inspect::DiskBreakdown,
    pub refusals: Vec<(String, u64)>,
}

/// `--load-only` (the scale runs): the load phases and their cost alone.
#[derive(Serialize)]
pub struct LoadReport {
    pub machine: machine::Limits,
    pub validators: usize,
    pub bulk_submissions: bool,
    pub records: u64,
    pub ramp: Vec<Latency>,
    pub saturation: Latency,
    pub half_saturation: Latency,
    pub overload: Vec<Latency>,
    pub fraction_of_verification_bound: f64,
    pub execution_records_per_s: f64,
    pub block_interval_ms: u64,
    pub half_saturation_blocks: BlockTimings,
    pub refusals: Vec<(String, u64)>,
}

pub fn print_load(r: &LoadReport) {
    println!(
        "ledger, {} validators on this machine, {} records{}, load phases only",
        r.validators,
        r.records,
        if r.bulk_submissions {
            ", bulk submissions"
        } else {
            ""
        }
    );
    let bound = r.machine.ed25519_batch_verify_per_s / r.validators.max(1) as f64;
    println!(
        "  sustained finalized records/s           {:>12.0}    {:.3} of the verification bound ({bound:.0}/s)",
        r.saturation.finalized_per_s, r.fraction_of_verification_bound
    );
    print_latency(&r.half_saturation, &r.saturation);
    print_overload(&r.saturation, &r.overload);
    print_cost(&r.half_saturation, &r.saturation, r.execution_records_per_s);
    let b = &r.half_saturation_blocks;
    println!(
        "  at 50%: {} blocks of {:.0} records, proposal→final p50 {:.0} ms, p99 {:.0} ms (block interval {} ms)",
        b.blocks,
        b.records_per_block,
        b.propose_to_final_p50_ms,
        b.propose_to_final_p99_ms,
        r.block_interval_ms
    );
    if !r.refusals.is_empty() {
        println!("  refused submissions by code: {:?}", r.refusals);
    }
}

/// Goodput when offered more than the ledger takes, against the sustained peak.
fn print_overload(saturation: &Latency, overload: &[Latency]) {
    for l in overload {
        println!(
            "  goodput offered {:>6}/s ({:.0}× peak)   {:>12.0} /s      ≥ 0.9 of peak: {:.2}  p99 {:.0} ms",
            l.offered_per_s,
            l.offered_per_s as f64 / saturation.finalized_per_s.max(1.0),
            l.finalized_per_s,
            l.finalized_per_s / saturation.finalized_per_s.max(1.0),
            l.p99_ms
        );
    }
}

fn print_latency(half: &Latency, saturation: &Latency) {
    for (name, l) in [("50% of saturation", half), ("saturation", saturation)] {
        println!(
            "  submit→final at {name:<18} p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms (target p99 ≤ 500 ms at 50%)",
            l.p50_ms, l.p95_ms, l.p99_ms
        );
    }
}

/// Writes `value` as pretty JSON to `path` and says where.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?)?;
    println!("(JSON: {})", path.display());
    Ok(())
}

pub fn print_table(r: &Report) {
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
        "  engine group commit (durable per 1,000)     {:>12.0} inserts/s",
        m.engine_group_commit_inserts_per_s
    );
    println!(
        "  engine durable insert, one at a time        {:>12.0} /s",
        m.engine_durable_each_per_s
    );
    println!(
        "ledger, {} validators on this machine, {} records{}   figure      target    ratio",
        r.validators,
        r.records,
        if r.bulk_submissions {
            ", bulk submissions"
        } else {
            ""
        }
    );
    let bound = m.ed25519_batch_verify_per_s / r.validators.max(1) as f64;
    println!(
        "  sustained finalized records/s           {:>12.0}    ≥ 15,000   {:.2} of the verification bound ({bound:.0}/s)",
        r.saturation.finalized_per_s, r.fraction_of_verification_bound
    );
    print_latency(&r.half_saturation, &r.saturation);
    print_overload(&r.saturation, &r.overload);
    print_cost(&r.half_saturation, &r.saturation, r.execution_records_per_s);
    print_sync(r.sync_records_per_s, r.execution_records_per_s);
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

/// The fresh node's sync rate against its targets: absolute, and as a share of block
/// execution alone measured in the same run.
pub fn print_sync(sync_records_per_s: f64, execution_records_per_s: f64) {
    println!(
        "  fresh-node sync                         {:>12.0} records/s   ≥ 30,000",
        sync_records_per_s
    );
    println!(
        "  block execution alone (same run)        {:>12.0} records/s   sync/execution {:.2} (≥ 0.7)",
        execution_records_per_s,
        sync_records_per_s / execution_records_per_s
    );
}

/// CPU per finalized record in each load phase, by node and for the load generator,
/// against the node's floor measured in the same run: executing a block (signatures
/// included) on one core costs 1 / `execution_records_per_s`.
fn print_cost(half: &Latency, saturation: &Latency, execution_records_per_s: f64) {
    let floor_us = 1e6 / execution_records_per_s.max(1.0);
    println!(
        "  CPU per finalized record (µs; floor: block execution alone, {floor_us:.1} µs; target ≤ 2× per node)"
    );
    for (name, l) in [("50% of saturation", half), ("saturation", saturation)] {
        let nodes: Vec<String> = l
            .node_cpu_us_per_record
            .iter()
            .map(|us| match us {
                Some(us) => format!("{us:.0} ({:.1}×)", us / floor_us),
                None => "n/a".into(),
            })
            .collect();
        let load = l
            .load_cpu_us_per_record
            .map_or("n/a".into(), |us| format!("{us:.0}"));
        println!(
            "    at {name:<18} nodes {}; load generator {load}",
            nodes.join(", ")
        );
        let sent: Vec<String> = l
            .node_sent_bytes_per_record
            .iter()
            .map(|b| b.map_or("n/a".into(), |b| format!("{b:.0}")))
            .collect();
        println!(
            "    {:<21} bytes sent per finalized record, by node: {}",
            "",
            sent.join(", ")
        );
    }
}
