//! `--store-fill N`: the store alone at ledger sizes a consortium would take days to
//! reach. The benchmark's mix of records (`workload::Cast`) is signed on one thread and
//! executed into blocks on another with the proposer's path (`build_block`, the same
//! state transitions as consensus), certified by the four validators' keys, and
//! committed through the node's store (`Store::commit`: segments synced, one engine
//! batch, the anchor) — no network, no consensus. Prints, as the ledger grows, records
//! per second, commit latency, resident memory and disk per record; at the end, lookup
//! latency of a state key and of a record's bytes; then the figures as JSON.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use xinlian_client::block::{Certificate, CommitSignature, Precommit};
use xinlian_client::record::{Body, EncodedRecord, RecordId, RegisterEntity};
use xinlian_client::signer::RecordSigner;
use xinlian_core::chain::{build_block, execute_block};
use xinlian_core::execute::Consortium;
use xinlian_genesis::keys::{self, SigningKey};
use xinlian_genesis::scaffold::{MemberSpec, node_key_path, scaffold, signing_key_path};
use xinlian_genesis::{Hash32, Policy};
use xinlian_node::store::Store;

use crate::workload::{self, Cast, Sink};

/// Enterprises trading with each other in the mix (each also registers a new one per
/// cycle, so the registry grows with the ledger).
const ACTORS: usize = 48;
/// Record ids kept for the lookup figures (one in this many).
const SAMPLE_EVERY: u64 = 997;
const LOOKUPS: usize = 20_000;

#[derive(Serialize)]
struct Sample {
    records: u64,
    seconds: f64,
    rss_mib: f64,
    history_bytes: u64,
    engine_bytes: u64,
    bytes_per_record: f64,
}

#[derive(Serialize)]
struct Figures {
    records: u64,
    blocks: u64,
    block_records: u32,
    cache_mib: u64,
    seconds: f64,
    /// Records per second through execution and commit (signing is on its own thread
    /// and not counted unless it is what waits).
    records_per_s: f64,
    execute_seconds: f64,
    commit_seconds: f64,
    /// Time the store thread waited for the signing thread.
    waited_for_records_seconds: f64,
    commit_ms_p50: f64,
    commit_ms_p99: f64,
    commit_ms_max: f64,
    peak_rss_mib: f64,
    bytes_per_record: f64,
    history_bytes: u64,
    engine_bytes: u64,
    locate_us_p50: f64,
    locate_us_p99: f64,
    record_read_us_p50: f64,
    record_read_us_p99: f64,
    samples: Vec<Sample>,
}

/// Collects a cycle's records, signed, in order.
struct Collect(Vec<EncodedRecord>);

impl Sink for Collect {
    fn send(&mut self, signer: &RecordSigner, body: Body) -> Option<RecordId> {
        let rec = EncodedRecord::new(signer.sign(body));
        let id = rec.id();
        self.0.push(rec);
        Some(id)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The records of the fill, `block` at a time: first the actors' registrations, then
/// cycles of the mix, until `records` have been sent.
fn sign_blocks(
    casts: Vec<Cast>,
    registrations: Vec<EncodedRecord>,
    records: u64,
    block: usize,
    out: mpsc::SyncSender<Vec<EncodedRecord>>,
) {
    let mut pending = registrations;
    let mut sent = 0u64;
    let mut cycle = 0u64;
    while sent < records {
        cycle += 1;
        let mut sink = Collect(std::mem::take(&mut pending));
        for cast in &casts {
            cast.cycle(cycle, workload::now_ms(), &mut sink);
        }
        pending = sink.0;
        while pending.len() >= block || (sent + pending.len() as u64 >= records) {
            let n = block.min(pending.len()).min((records - sent) as usize);
            if n == 0 {
                break;
            }
            let rest = pending.split_off(n);
            sent += n as u64;
            if out.send(std::mem::replace(&mut pending, rest)).is_err() {
                return;
            }
            if sent >= records {
                return;
            }
        }
    }
}

/// The fill's consortium: four validators and the market regulator, from a fresh
/// genesis in `keys_dir`, the mix's actors and their registrations for the first block.
struct Setup {
    consortium: Consortium,
    validators: Vec<(u16, SigningKey)>,
    casts: Vec<Cast>,
    registrations: Vec<EncodedRecord>,
}

fn setup(keys_dir: &Path, block_records: u32) -> Result<Setup> {
    let mut specs = MemberSpec::validators(4);
    specs.push(crate::consortium::market_spec());
    let policy = Policy {
        block_records_max: block_records,
        block_bytes_max: Policy::default().block_bytes_max.max(block_records * 1024),
        ..Policy::default()
    };
    let genesis = scaffold(keys_dir, "xinlian-store-fill", 0, policy, &specs)
        .context("the fill's genesis")?;
    let chain = genesis.hash();
    let c = Consortium::new(genesis);
    let validators: Vec<(u16, SigningKey)> = (0..4)
        .map(|i| -> Result<(u16, SigningKey)> {
            let key = keys::read_pem(&node_key_path(keys_dir, &format!("v{i}")))?;
            let index = c
                .validators
                .index_of(&keys::public_key(&key))
                .context("a validator's key is in the set")?;
            Ok((u16::try_from(index)?, key))
        })
        .collect::<Result<_>>()?;
    let market = RecordSigner {
        key: keys::read_pem(&signing_key_path(keys_dir, "market"))?,
        chain,
    };
    // The actors, and their registrations for the first block.
    let mut registrations = Vec::new();
    let mut enterprises = Vec::new();
    for i in 0..ACTORS {
        let (e, key) = workload::enterprise(i, chain)?;
        registrations.push(EncodedRecord::new(market.sign(RegisterEntity {
            operator: None,
            uscc: e.uscc.clone(),
            name: format!("fill enterprise {i}"),
            key: keys::public_key(&key),
            check_override: None,
            possession: xinlian_client::crypto::prove_possession(
                &key,
                &chain,
                xinlian_client::crypto::KeyHolder::Enterprise(e.uscc.as_str()),
            ),
        })));
        enterprises.push(e);
    }
    let casts = (0..ACTORS)
        .map(|i| {
            let copy = |e: &workload::Enterprise| workload::Enterprise {
                uscc: e.uscc.clone(),
                signer: RecordSigner {
                    key: e.signer.key.clone(),
                    chain,
                },
            };
            Cast {
                me: copy(&enterprises[i]),
                partner: copy(&enterprises[(i + 1) % ACTORS]),
                market: RecordSigner {
                    key: market.key.clone(),
                    chain,
                },
                registrar: RecordSigner {
                    key: market.key.clone(),
                    chain,
                },
                index: i,
            }
        })
        .collect();
    Ok(Setup {
        consortium: c,
        validators,
        casts,
        registrations,
    })
}

/// Runs the fill into `dir` (a new folder by default) and prints its figures.
pub fn run(records: u64, block_records: u32, cache_mib: u64, dir: Option<PathBuf>) -> Result<()> {
    let figures = measure(records, block_records, cache_mib, dir, Timed::Building)?;
    report(&figures);
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// Records per second through a validator's execution of blocks alone
/// (`execute_block`: every signature verified in one batch, every record executed,
/// every header field compared; no commit), over `records` records of the mix in
/// blocks of `block_records`: the bound a fresh node's sync is compared with in the
/// same run.
pub fn execution_rate(records: u64, block_records: u32) -> Result<f64> {
    let f = measure(records, block_records, 64, None, Timed::Validating)?;
    Ok(f.records as f64 / f.execute_seconds)
}

/// Which execution of a block a fill times as "executing".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timed {
    /// The proposer's: `build_block` (records already checked by the mempool).
    Building,
    /// A validator's or a syncing node's: `execute_block` of the block built (which
    /// is then not timed).
    Validating,
}

fn measure(
    records: u64,
    block_records: u32,
    cache_mib: u64,
    dir: Option<PathBuf>,
    timed: Timed,
) -> Result<Figures> {
    if records == 0 || block_records == 0 {
        bail!("--store-fill and --block-records must be positive");
    }
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let Setup {
        consortium: c,
        validators,
        casts,
        registrations,
    } = setup(&dir.join("consortium"), block_records)?;
    let (tx, rx) = mpsc::sync_channel(4);
    let signer = std::thread::spawn(move || {
        sign_blocks(casts, registrations, records, block_records as usize, tx)
    });

    let ledger = dir.join("ledger");
    let (store, mut tip) = Store::open_with_cache(&ledger, &c, cache_mib << 20)?;
    eprintln!(
        "store fill: {records} records in blocks of {block_records} into {}",
        ledger.display()
    );
    eprintln!(
        "{:>11} {:>8} {:>10} {:>9} {:>10} {:>10}",
        "records", "s", "records/s", "RSS MiB", "B/record", "commit ms"
    );
    let started = Instant::now();
    let (mut execute_s, mut commit_s, mut waited_s) = (0.0, 0.0, 0.0);
    let mut commit_ms = Vec::new();
    let mut samples = Vec::new();
    let mut sampled: Vec<(RecordId, u64)> = Vec::new();
    let every = (records / 10).max(u64::from(block_records));
    let mut next_sample = every;
    let mut written = 0u64;
    loop {
        let t = Instant::now();
        let Ok(batch) = rx.recv() else { break };
        waited_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let height = tip.height + 1;
        let proposer = validators[height as usize % validators.len()].1.clone();
        let time_ms = workload::now_ms().max(tip.time_ms + 1);
        let (ex, rejected) = build_block(
            &store,
            &c,
            &tip,
            keys::public_key(&proposer),
            time_ms,
            &batch,
        )?;
        if let Some((id, why)) = rejected.first() {
            bail!("the mix's record {id} was refused at height {height}: {why}");
        }
        let cert = certify(&validators, c.chain, height, ex.header.hash());
        let ex = match timed {
            Timed::Building => {
                execute_s += t.elapsed().as_secs_f64();
                ex
            }
            Timed::Validating => {
                let t = Instant::now();
                let validated = execute_block(&store, &c, &tip, ex.block())?;
                execute_s += t.elapsed().as_secs_f64();
                validated
            }
        };
        let t = Instant::now();
        store.commit(&ex, &cert)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        commit_s += ms / 1e3;
        commit_ms.push(ms);
        for (i, r) in ex.records.iter().enumerate() {
            let index = written + i as u64;
            if index.is_multiple_of(SAMPLE_EVERY) {
                sampled.push((r.id(), index));
            }
        }
        written += ex.records.len() as u64;
        tip = ex.tip;
        if written >= next_sample || written >= records {
            let s = sample(&store, &ledger, written, started);
            eprintln!(
                "{:>11} {:>8.0} {:>10.0} {:>9.0} {:>10.0} {:>10.1}",
                s.records,
                s.seconds,
                s.records as f64 / s.seconds,
                s.rss_mib,
                s.bytes_per_record,
                ms
            );
            samples.push(s);
            next_sample += every;
        }
    }
    signer
        .join()
        .map_err(|_| anyhow::anyhow!("the signing thread panicked"))?;
    let seconds = started.elapsed().as_secs_f64();
    if written < records {
        bail!("only {written} of {records} records were written");
    }
    let (locate, read) = lookups(&store, &sampled)?;
    let last = sample(&store, &ledger, written, started);
    commit_ms.sort_by(f64::total_cmp);
    let figures = Figures {
        records: written,
        blocks: tip.height,
        block_records,
        cache_mib,
        seconds,
        records_per_s: written as f64 / (execute_s + commit_s),
        execute_seconds: execute_s,
        commit_seconds: commit_s,
        waited_for_records_seconds: waited_s,
        commit_ms_p50: percentile(&commit_ms, 0.5),
        commit_ms_p99: percentile(&commit_ms, 0.99),
        commit_ms_max: percentile(&commit_ms, 1.0),
        peak_rss_mib: crate::status_mib("self", "VmHWM:"),
        bytes_per_record: last.bytes_per_record,
        history_bytes: last.history_bytes,
        engine_bytes: last.engine_bytes,
        locate_us_p50: percentile(&locate, 0.5),
        locate_us_p99: percentile(&locate, 0.99),
        record_read_us_p50: percentile(&read, 0.5),
        record_read_us_p99: percentile(&read, 0.99),
        samples,
    };
    Ok(figures)
}

/// A commit certificate for `block` signed by every validator at round 0.
pub(crate) fn certify(
    validators: &[(u16, SigningKey)],
    chain: Hash32,
    height: u64,
    block: Hash32,
) -> Certificate {
    let signatures = validators
        .iter()
        .map(|(index, key)| CommitSignature {
            validator: *index,
            signature: Precommit {
                chain,
                height,
                round: 0,
                block,
                validator: keys::public_key(key),
            }
            .sign(key),
        })
        .collect();
    Certificate {
        height,
        round: 0,
        block,
        signatures,
    }
}

fn report(figures: &Figures) {
    eprintln!(
        "{} records in {} blocks, {:.0} s ({:.0} s executing, {:.0} s committing, {:.0} s waiting for signed records): {:.0} records/s through execution and the store",
        figures.records,
        figures.blocks,
        figures.seconds,
        figures.execute_seconds,
        figures.commit_seconds,
        figures.waited_for_records_seconds,
        figures.records_per_s
    );
    eprintln!(
        "commit p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; peak RSS {:.0} MiB; {:.0} bytes per record ({} history, {} engine)",
        figures.commit_ms_p50,
        figures.commit_ms_p99,
        figures.commit_ms_max,
        figures.peak_rss_mib,
        figures.bytes_per_record,
        figures.history_bytes,
        figures.engine_bytes
    );
    eprintln!(
        "lookups: a record's location (state key) p50 {:.1} µs p99 {:.1} µs; its bytes (history) p50 {:.1} µs p99 {:.1} µs",
        figures.locate_us_p50,
        figures.locate_us_p99,
        figures.record_read_us_p50,
        figures.record_read_us_p99
    );
}

fn sample(store: &Store, ledger: &Path, records: u64, started: Instant) -> Sample {
    let history_bytes: u64 = store.disk_usage().iter().map(|(_, b)| b).sum();
    let engine_bytes = crate::dir_bytes(&ledger.join("kv"));
    Sample {
        records,
        seconds: started.elapsed().as_secs_f64(),
        rss_mib: crate::status_mib("self", "VmRSS:"),
        history_bytes,
        engine_bytes,
        bytes_per_record: (history_bytes + engine_bytes) as f64 / records.max(1) as f64,
    }
}

/// Lookup latencies in µs, sorted: a sampled record's location (a state key in the
/// engine) and its bytes (index entry, then the segment), in a scattered order.
fn lookups(store: &Store, sampled: &[(RecordId, u64)]) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut locate = Vec::with_capacity(LOOKUPS);
    let mut read = Vec::with_capacity(LOOKUPS);
    if sampled.is_empty() {
        return Ok((locate, read));
    }
    let mut at = 0usize;
    for _ in 0..LOOKUPS {
        at = (at + 7919) % sampled.len();
        let (id, index) = &sampled[at];
        let t = Instant::now();
        let found = store.locate(id)?;
        locate.push(t.elapsed().as_secs_f64() * 1e6);
        if found.map(|(_, i)| i) != Some(*index) {
            bail!("record {id} is not where the fill put it");
        }
        let t = Instant::now();
        store
            .record_bytes_at(*index)?
            .context("a written record is missing")?;
        read.push(t.elapsed().as_secs_f64() * 1e6);
    }
    locate.sort_by(f64::total_cmp);
    read.sort_by(f64::total_cmp);
    Ok((locate, read))
}

#[cfg(test)]
mod tests {
    /// The CI smoke of `--store-fill` (the 10 M run's figures are in docs/storage.md):
    /// every record of the mix is accepted, certified, committed and found again.
    #[test]
    fn a_small_store_fill_commits_every_record_and_finds_them() {
        super::run(3_000, 512, 8, None).expect("the fill runs to its end");
    }

    /// The bound sync is compared with re-executes every block the fill built (an
    /// `execute_block` that refused one would fail the run) and gives a real rate.
    #[test]
    fn the_execution_bound_re_executes_every_block_of_the_fill() {
        let rate = super::execution_rate(1_500, 256).expect("every block re-executes");
        assert!(rate.is_finite() && rate > 0.0, "rate {rate}");
    }
}
