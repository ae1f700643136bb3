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

/// A backup file's frames, read one at a time. A frame cut short, or a bad frame
/// (zero length, a length past the end, a failing checksum) with nothing but zero bytes
/// or the end of the file after its start, is the tail an interrupted run left: it ends
/// the file. A bad frame with more after it is damage, and refused.
struct Frames {
    reader: BufReader<std::fs::File>,
    /// Where the next frame starts: after the last whole one.
    end: u64,
    len: u64,
    path: std::path::PathBuf,
}

impl Frames {
    fn open(path: &Path, genesis: &Genesis) -> Result<Frames> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        let mut reader = BufReader::new(file);
        let mut magic = vec![0; MAGIC.len()];
        read_full(&mut reader, &mut magic)?;
        ensure!(magic == MAGIC, "{} is not a xinlian backup", path.display());
        let mut chain = [0u8; 32];
        ensure!(
            read_full(&mut reader, &mut chain)? == 32,
            "{} ends inside its header",
            path.display()
        );
        ensure!(
            chain == genesis.hash().0,
            "{} is a backup of another chain",
            path.display()
        );
        Ok(Frames {
            reader,
            end: (MAGIC.len() + 32) as u64,
            len,
            path: path.to_path_buf(),
        })
    }

    /// Whether everything from `at` to the end of the file is zero bytes.
    fn zeros_from(&self, at: u64) -> Result<bool> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(std::io::SeekFrom::Start(at))?;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match f.read(&mut buf)? {
                0 => return Ok(true),
                n if buf[..n].iter().all(|b| *b == 0) => {}
                _ => return Ok(false),
            }
        }
    }

    /// A bad frame at `at`: the torn tail (the end, or nothing but zeros after it
    /// starts), or damage.
    fn bad_frame(&self, at: u64, past_end: bool, what: &str) -> Result<Option<BackupBlock>> {
        if past_end || self.zeros_from(at)? {
            return Ok(None);
        }
        bail!("frame at byte {at} {what}: the backup is damaged there")
    }

    /// The next whole block, or `None` at the end (or at a torn tail).
    fn next_block(&mut self) -> Result<Option<BackupBlock>> {
        let at = self.end;
        let mut head = [0u8; 8];
        if read_full(&mut self.reader, &mut head)? < 8 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let past_end = at + 8 + u64::from(len) > self.len;
        if len == 0 || len > FRAME_BYTES_MAX || past_end {
            return self.bad_frame(at, past_end, &format!("claims {len} bytes"));
        }
        let mut payload = vec![0; len as usize];
        if read_full(&mut self.reader, &mut payload)? < payload.len() {
            return Ok(None);
        }
        if crc32fast::hash(&payload) != crc {
            return self.bad_frame(at, past_end, "fails its checksum");
        }
        let block: BackupBlock = postcard::from_bytes(&payload)
            .with_context(|| format!("frame at byte {at} does not decode"))?;
        self.end = at + 8 + u64::from(len);
        Ok(Some(block))
    }
}

/// Frames written between two syncs of the backup file.
const SYNC_EVERY: u32 = 1024;

/// Takes the backup file for this run alone: two runs at once would interleave frames.
fn lock(file: &std::fs::File, path: &Path) -> Result<()> {
    file.try_lock().map_err(|e| {
        anyhow::anyhow!(
            "{} is being written by another backup ({e})",
            path.display()
        )
    })
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
pub fn backup(node: &NodeClient, genesis: Genesis, out: &Path, until: Option<u64>) -> Result<u64> {
    let target = match until {
        Some(h) => h,
        None => node.status().context("asking the node for its tip")?.height,
    };
    let (mut file, mut verifier, last) = if out.exists() {
        let mut frames = Frames::open(out, &genesis)?;
        let mut last: Option<Header> = None;
        while let Some(b) = frames.next_block()? {
            last = Some(b.header);
        }
        let file = std::fs::OpenOptions::new().write(true).open(out)?;
        lock(&file, out)?;
        // A frame cut short by an interrupted run is written again.
        file.set_len(frames.end)?;
        let mut file = file;
        file.seek(std::io::SeekFrom::End(0))?;
        let from = last.as_ref().map_or(0, |h| h.ledger_size);
        let mut v = EventVerifier::new(LightClient::new(genesis), EventFilter::default(), from);
        if let Some(h) = &last {
            v = v.after_block(h.height);
        }
        (file, v, last)
    } else {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .with_context(|| format!("creating {}", out.display()))?;
        lock(&file, out)?;
        file.write_all(MAGIC)?;
        file.write_all(&genesis.hash().0)?;
        let v = EventVerifier::new(LightClient::new(genesis), EventFilter::default(), 0);
        (file, v, None)
    };
    let have = last.as_ref().map_or(0, |h| h.height);
    // The first block taken must extend the file's last (its hash names it).
    let mut parent = last.as_ref().map(Header::hash);
    if have >= target {
        return Ok(have);
    }
    let bar = progress(target - have, "backup");
    let mut written = have;
    let mut failure = None;
    let mut since_sync = 0u32;
    let on_event = |ev: &VerifiedEvent| {
        if let Some(p) = parent.take()
            && ev.checkpoint.header.parent != p
        {
            failure = Some(anyhow::anyhow!(
                "block {} does not extend the backup's last block {p}",
                ev.height
            ));
            return ControlFlow::Break(());
        }
        if let Some(why) = unrestorable(ev) {
            failure = Some(anyhow::anyhow!(
                "block {}: {why}, and no store can be restored without it: back up as a \
                 member (--as member:ID --reader-key FILE)",
                ev.height
            ));
            return ControlFlow::Break(());
        }
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
        since_sync += 1;
        let written_out = file.write_all(&frame).and_then(|()| {
            // Durable every so often: a crash loses at most that many frames.
            if since_sync >= SYNC_EVERY {
                since_sync = 0;
                file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written_out {
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
    follow(node, &mut verifier, on_event, on_break).context("the node's history")?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    file.sync_all()?;
    Ok(written)
}

/// Why a block as this reader was shown it could not be restored, if so: records the
/// node withheld from the reader, or amounts it was given only as their commitments
/// (the validators execute them opened).
fn unrestorable(ev: &VerifiedEvent) -> Option<String> {
    let shown = ev.records.len();
    let count = ev.checkpoint.header.records_count as usize;
    if shown < count {
        return Some(format!(
            "{} of its {count} records are withheld from this reader",
            count - shown
        ));
    }
    (ev.records.iter())
        .find(|r| r.record.envelope.body.has_sealed_amount())
        .map(|r| {
            format!(
                "record {} reached this reader with its amounts sealed",
                r.id
            )
        })
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
    let mut frames = Frames::open(backup, &genesis)?;
    let mut c = Consortium::new(genesis);
    std::fs::create_dir_all(&ledger)?;
    let (store, mut tip) = Store::open(&ledger, &c)?;
    // The frames' count is unknown until read: the bar counts bytes of the file.
    let bar = progress(frames.len, "restore (bytes)");
    while let Some(b) = frames.next_block()? {
        let h = b.header.height;
        ensure!(
            Some(h) == tip.height.checked_add(1),
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
            ensure!(
                c.roster_hash == ex.header.next_roster_hash && c.since == h + 1,
                "block {h} announces roster {} but re-execution gives {}",
                ex.header.next_roster_hash,
                c.roster_hash
            );
        }
        bar.set_position(frames.end);
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
