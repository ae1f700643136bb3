//! Backup and restore (`xinlian-node backup / restore`, docs/operations.md § Backup).
//!
//! A backup is the finalized history itself — every block's header, certificate and
//! records — taken from a running node's event stream, unfiltered, so that it is
//! checked against genesis as it is written (`xinlian_client::events`): a backup
//! that was written is a verified prefix of the chain, consistent by construction (it
//! ends at a finalized block) whatever load the node is under. It resumes: run again
//! into the same file, it appends from where it ended. Restore re-executes every block
//! into an empty data folder exactly as sync does (certificate under the roster in
//! force, re-execution, one commit per block), so the restored store passes
//! `xinlian-node check` and the node started on it catches up from its peers.
//!
//! The file: a line naming the format, the genesis hash (32 bytes), then one frame per
//! block — length (u32 LE), CRC-32 of the payload (u32 LE), payload (postcard of
//! [`BackupBlock`]). A frame cut short (the backup was interrupted) ends the file.

use std::io::{BufReader, Read, Seek, Write};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use xinlian_client::block::{Block, Certificate, Header, verify_certificate};
use xinlian_client::events::{EventFilter, EventVerifier, VerifiedEvent};
use xinlian_client::http::{NodeClient, follow};
use xinlian_client::proof::LightClient;
use xinlian_client::record::SignedRecord;
use xinlian_core::chain::execute_block;
use xinlian_core::execute::Consortium;
use xinlian_genesis::Genesis;

use crate::store::Store;

const MAGIC: &[u8] = b"xinlian-backup/v1\n";
/// Largest frame a restore reads (a block of the most records with room to spare).
const FRAME_BYTES_MAX: u32 = 256 << 20;

/// One block as a backup holds it.
#[derive(Serialize, Deserialize)]
pub struct BackupBlock {
    pub header: Header,
    pub certificate: Certificate,
    pub records: Vec<SignedRecord>,
}

/// A bar on standard error when it is a terminal; nothing otherwise.
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} blocks ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// The blocks a backup file holds whole, and where the last whole frame ends.
struct Contents {
    blocks: Vec<BackupBlock>,
    end: u64,
}

/// Reads `path`'s frames; with `keep`, every block, else only the last (resuming).
fn read_backup(path: &Path, genesis: &Genesis, keep_all: bool) -> Result<Contents> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = BufReader::new(file);
    let mut magic = vec![0; MAGIC.len()];
    r.read_exact(&mut magic)
        .with_context(|| format!("{} is not a backup", path.display()))?;
    ensure!(magic == MAGIC, "{} is not a xinlian backup", path.display());
    let mut chain = [0u8; 32];
    r.read_exact(&mut chain)?;
    ensure!(
        chain == genesis.hash().0,
        "{} is a backup of another chain",
        path.display()
    );
    let mut end = (MAGIC.len() + 32) as u64;
    let mut blocks = Vec::new();
    loop {
        let mut head = [0u8; 8];
        if read_full(&mut r, &mut head)? < 8 {
            break;
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        ensure!(
            len <= FRAME_BYTES_MAX,
            "frame at byte {end} claims {len} bytes"
        );
        let mut payload = vec![0; len as usize];
        if read_full(&mut r, &mut payload)? < payload.len() {
            break;
        }
        if crc32fast::hash(&payload) != crc {
            bail!("frame at byte {end} fails its checksum: the backup is damaged there");
        }
        let block: BackupBlock = postcard::from_bytes(&payload)
            .with_context(|| format!("frame at byte {end} does not decode"))?;
        end += 8 + u64::from(len);
        if !keep_all {
            blocks.clear();
        }
        blocks.push(block);
    }
    Ok(Contents { blocks, end })
}

/// Reads until `buf` is full or the input ends; how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Backs up the node at `url` into `out` up to its tip at start (or `until`),
/// appending to a backup already there. Returns the height it ends at.
pub fn backup(url: &str, genesis: Genesis, out: &Path, until: Option<u64>) -> Result<u64> {
    let node = NodeClient::new(url);
    let target = match until {
        Some(h) => h,
        None => node.status().context("asking the node for its tip")?.height,
    };
    let (mut file, mut verifier, have) = if out.exists() {
        let c = read_backup(out, &genesis, false)?;
        let mut file = std::fs::OpenOptions::new().write(true).open(out)?;
        // A frame cut short by an interrupted run is written again.
        file.set_len(c.end)?;
        file.seek(std::io::SeekFrom::End(0))?;
        let (from, last) = c
            .blocks
            .last()
            .map_or((0, 0), |b| (b.header.ledger_size, b.header.height));
        let mut v = EventVerifier::new(LightClient::new(genesis), EventFilter::default(), from);
        if last > 0 {
            v = v.after_block(last);
        }
        (file, v, last)
    } else {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .with_context(|| format!("creating {}", out.display()))?;
        file.write_all(MAGIC)?;
        file.write_all(&genesis.hash().0)?;
        let v = EventVerifier::new(LightClient::new(genesis), EventFilter::default(), 0);
        (file, v, 0)
    };
    if have >= target {
        return Ok(have);
    }
    let bar = progress(target - have, "backup");
    let mut written = have;
    let mut failure = None;
    let on_event = |ev: &VerifiedEvent| {
        let block = BackupBlock {
            header: ev.checkpoint.header.clone(),
            certificate: ev.checkpoint.certificate.clone(),
            records: ev.records.iter().map(|r| r.record.clone()).collect(),
        };
        let payload = match postcard::to_allocvec(&block) {
            Ok(p) => p,
            Err(e) => {
                failure = Some(anyhow::anyhow!("encoding block {}: {e}", ev.height));
                return ControlFlow::Break(());
            }
        };
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        if let Err(e) = file.write_all(&frame) {
            failure = Some(anyhow::anyhow!("writing {}: {e}", out.display()));
            return ControlFlow::Break(());
        }
        written = ev.height;
        bar.inc(1);
        if ev.height >= target {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let on_break = |e: &xinlian_client::http::ClientError| {
        tracing::warn!(error = %e, "backup stream broke; asking again");
        ControlFlow::Continue(())
    };
    follow(&node, &mut verifier, on_event, on_break).context("the node's history")?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    file.sync_all()?;
    Ok(written)
}

/// Restores `backup` into `data` (which must hold no store): every block checked and
/// re-executed, then committed. Returns a one-line report.
pub fn restore(genesis: Genesis, backup: &Path, data: &Path) -> Result<String> {
    let ledger = data.join("ledger");
    ensure!(
        !ledger.exists(),
        "{} already holds a store: restore into an empty data folder",
        data.display()
    );
    let contents = read_backup(backup, &genesis, true)?;
    let mut c = Consortium::new(genesis);
    std::fs::create_dir_all(&ledger)?;
    let (store, mut tip) = Store::open(&ledger, &c)?;
    let bar = progress(contents.blocks.len() as u64, "restore");
    for b in contents.blocks {
        let h = b.header.height;
        ensure!(
            h == tip.height + 1,
            "the backup skips from block {} to {h}",
            tip.height
        );
        verify_certificate(&b.header, &b.certificate, &c.validators)
            .with_context(|| format!("certificate of block {h}"))?;
        let block = Block {
            header: b.header,
            records: b.records,
        };
        let ex = execute_block(&store, &c, &tip, block)
            .with_context(|| format!("re-executing block {h}"))?;
        store
            .commit(&ex, &b.certificate)
            .with_context(|| format!("storing block {h}"))?;
        tip = ex.tip;
        if ex.header.next_roster_hash != c.roster_hash {
            c = xinlian_core::governance::consortium_at(&store, &c.genesis, h + 1)
                .with_context(|| format!("roster announced by block {h}"))?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(format!(
        "restored {} blocks, {} records, ledger root {} into {}",
        tip.height,
        tip.frontier.size(),
        tip.frontier.root(),
        data.display()
    ))
}
