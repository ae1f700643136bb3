//! What the bench reads off the nodes besides their API: bytes on disk by what they
//! hold (a store's history segments and its engine, opened after its node stopped), memory from /proc, and block
//! timings from a node's log.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use xinlian_node::store::kv::Kv;

/// Bytes of keys and values in one node's store, by what they hold.
#[derive(Serialize, Clone, Debug, Default)]
pub struct DiskBreakdown {
    /// Files on disk, the engine's included.
    pub on_disk_bytes: u64,
    /// Keys and values as stored, by class (e.g. `R records`, `S state: b batches`).
    pub logical_bytes: BTreeMap<String, u64>,
    pub records: u64,
}

fn class(key: &[u8]) -> String {
    let state = |t: u8| -> &'static str {
        match t {
            b'e' => "enterprises",
            b'k' => "key bindings",
            b'c' => "commitments",
            b'o' => "outcomes",
            b'r' => "repairs",
            b'C' => "credit states",
            b'Y' => "credit records by enterprise",
            b'y' => "credit index nodes",
            b'l' => "lists",
            b's' => "records by subject",
            b'b' => "batches",
            b'h' => "holdings",
            b't' => "shipments",
            b'v' => "batch events",
            b'd' => "downstream edges",
            b'x' => "replay index (id → height, index)",
            b'z' => "batch index nodes",
            _ => "other",
        }
    };
    match key.first() {
        Some(b'L') => "L record index (ledger index → segment, offset)".into(),
        Some(b'B') => "B block index (height → segment, offset)".into(),
        Some(b'W') => "W write-ahead log".into(),
        Some(b'S') => format!("S state: {}", key.get(1).map_or("?", |t| state(*t))),
        _ => "meta".into(),
    }
}

pub fn disk_breakdown(data: &Path, records: u64) -> Result<DiskBreakdown> {
    let on_disk_bytes = crate::dir_bytes(data);
    let ledger = data.join("ledger");
    let kv = Kv::open(&ledger.join("kv"), 8 << 20)?;
    let mut logical_bytes: BTreeMap<String, u64> = BTreeMap::new();
    // The append-only history: segment files of our own, counted as they lie on disk.
    for (log, name) in [
        ("records", "history: records"),
        ("blocks", "history: blocks and certificates"),
        ("nodes", "history: Merkle nodes"),
    ] {
        logical_bytes.insert(
            name.into(),
            crate::dir_bytes(&ledger.join("history").join(log)),
        );
    }
    kv.for_each(|k, v| {
        *logical_bytes.entry(class(k)).or_default() += (k.len() + v.len()) as u64;
    })?;
    Ok(DiskBreakdown {
        on_disk_bytes,
        logical_bytes,
        records,
    })
}

pub fn print_disk(d: &DiskBreakdown) {
    let per = |b: u64| b as f64 / d.records.max(1) as f64;
    let logical: u64 = d.logical_bytes.values().sum();
    println!(
        "  disk of one validator: {:.0} B/record on disk, {:.0} B/record of history segments, keys and values ({:.2}× that on disk)",
        per(d.on_disk_bytes),
        per(logical),
        d.on_disk_bytes as f64 / logical.max(1) as f64
    );
    let mut rows: Vec<(&String, &u64)> = d.logical_bytes.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    for (c, b) in rows {
        println!("    {c:<44} {:>8.1} B/record", per(*b));
    }
}

/// Resident memory now (`VmRSS`), MiB.
pub fn rss_mib(pid: u32) -> f64 {
    proc_status_kib(pid, "VmRSS:").map_or(f64::NAN, |kb| kb / 1024.0)
}

pub fn proc_status_kib(pid: u32, field: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// From a node's log: for blocks in `heights`, the time from proposal to stored
/// (`since_proposal_ms`) and the number of records, in height order.
pub fn block_timings(log: &Path, heights: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64, u64)> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    let field = |line: &str, name: &str| -> Option<u64> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        line[at..].split_whitespace().next()?.parse().ok()
    };
    text.lines()
        .filter(|l| l.contains("block finalized"))
        .filter_map(|l| {
            let h = field(l, "height")?;
            heights.contains(&h).then_some((
                h,
                field(l, "since_proposal_ms")?,
                field(l, "records")?,
            ))
        })
        .collect()
}
