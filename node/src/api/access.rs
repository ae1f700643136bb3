//! The access log (docs/privacy.md § Access log): every answer given to a reader other
//! than the public, one JSON line each, hash-chained ([`AccessEntry`]), appended and
//! made durable before the answer is sent. `xinlian-node access-log` exports and checks
//! it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use xinlian_client::api::{ACCESS_TARGET_BYTES_MAX, AccessEntry, check_access_chain};
use xinlian_genesis::Hash32;

/// The file's name in the data folder.
pub const FILE: &str = "access.log";
/// Longest line read back; a line is some hundreds of bytes, its target bounded.
const LINE_BYTES_MAX: u64 = 4096;

#[derive(Clone)]
pub struct AccessLog(Arc<Mutex<Tail>>);

struct Tail {
    file: File,
    seq: u64,
    hash: Hash32,
    /// The file's length after the last line written whole.
    len: u64,
    /// A write failed and could not be undone: nothing more is appended (and so no
    /// non-public answer sent) until the node restarts and reads the log again.
    broken: bool,
}

impl AccessLog {
    /// Opens (or creates) the log in `data_dir`, continuing its chain. A last line cut
    /// short by a crash is removed: it was never acknowledged (its answer was not sent).
    pub fn open(data_dir: &Path) -> anyhow::Result<AccessLog> {
        let path = data_dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening the access log {}", path.display()))?;
        let (end, last) =
            last_line(&mut file).with_context(|| format!("reading {}", path.display()))?;
        if end < file.metadata()?.len() {
            file.set_len(end)?;
            file.sync_data()?;
        }
        let (seq, hash) = match last {
            Some(e) => (e.seq, e.hash),
            None => (0, Hash32([0; 32])),
        };
        Ok(AccessLog(Arc::new(Mutex::new(Tail {
            file,
            seq,
            hash,
            len: end,
            broken: false,
        }))))
    }

    /// Appends one entry and syncs it, on a blocking thread.
    pub async fn append(
        &self,
        reader: &str,
        method: &str,
        target: &str,
        status: u16,
    ) -> anyhow::Result<()> {
        let log = self.0.clone();
        let (reader, method) = (reader.to_string(), method.to_string());
        let target = cut(target, ACCESS_TARGET_BYTES_MAX).to_string();
        tokio::task::spawn_blocking(move || {
            let mut t = log.lock().unwrap_or_else(|p| p.into_inner());
            if t.broken {
                anyhow::bail!("the access log could not be written; restart the node");
            }
            let mut e = AccessEntry {
                seq: t.seq + 1,
                time_ms: super::now_ms(),
                reader,
                method,
                target,
                status,
                prev: t.hash,
                hash: Hash32([0; 32]),
            };
            e.hash = e.expected_hash();
            let mut line = serde_json::to_vec(&e)?;
            line.push(b'\n');
            let written = t.file.write_all(&line).and_then(|()| t.file.sync_data());
            if let Err(e) = written {
                // Undo a part-written line, so the chain stays whole; if even that
                // fails, append nothing more.
                let len = t.len;
                if t.file
                    .set_len(len)
                    .and_then(|()| t.file.sync_data())
                    .is_err()
                {
                    t.broken = true;
                }
                return Err(e.into());
            }
            t.seq = e.seq;
            t.hash = e.hash;
            t.len += line.len() as u64;
            anyhow::Ok(())
        })
        .await?
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The end of the last complete line and that line's entry.
fn last_line(file: &mut File) -> anyhow::Result<(u64, Option<AccessEntry>)> {
    let len = file.metadata()?.len();
    let from = len.saturating_sub(2 * LINE_BYTES_MAX);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(len - from).read_to_end(&mut tail)?;
    let Some(end) = tail.iter().rposition(|&b| b == b'\n') else {
        if from > 0 {
            bail!("no line end in the last {} bytes", 2 * LINE_BYTES_MAX);
        }
        return Ok((0, None));
    };
    let start = tail[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if start == 0 && from > 0 {
        bail!("a line longer than {LINE_BYTES_MAX} bytes");
    }
    let e: AccessEntry = serde_json::from_slice(&tail[start..end]).context("its last line")?;
    if e.hash != e.expected_hash() {
        bail!(
            "its last line (seq {}) does not hash to what it says",
            e.seq
        );
    }
    Ok((from + end as u64 + 1, Some(e)))
}

/// `xinlian-node access-log`: every entry of the log in `data_dir`, checked line by
/// line (a bad line is named and stops the export), written to `out`.
pub fn export(data_dir: &Path, out: &mut dyn Write) -> anyhow::Result<u64> {
    let path: PathBuf = data_dir.join(FILE);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut before: Option<AccessEntry> = None;
    let mut n = 0;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    for i in 0.. {
        line.clear();
        // Bounded: a line longer than any the node writes is refused, not read whole.
        let read = (&mut reader)
            .take(LINE_BYTES_MAX + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if line.pop() != Some(b'\n') {
            bail!(
                "line {}: cut short, or longer than {LINE_BYTES_MAX} bytes",
                i + 1
            );
        }
        let e: AccessEntry =
            serde_json::from_slice(&line).with_context(|| format!("line {}", i + 1))?;
        if before.is_none() && (e.seq != 1 || e.prev != Hash32([0; 32])) {
            bail!("line 1: the log does not start at seq 1 (lines were dropped)");
        }
        let pair: Vec<AccessEntry> = before.take().into_iter().chain([e.clone()]).collect();
        if let Err((_, why)) = check_access_chain(&pair) {
            bail!("line {}: {why}", i + 1);
        }
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        before = Some(e);
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_chain_continues_after_reopening_and_a_changed_line_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path()).unwrap();
        log.append("member:a", "GET", "/v1/records/x", 200)
            .await
            .unwrap();
        drop(log);
        // A torn last line (a crash in mid-write) is cut at the next open.
        let path = dir.path().join(FILE);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\":2,")
            .unwrap();
        let log = AccessLog::open(dir.path()).unwrap();
        log.append(
            "enterprise:91310000MA1FL8TQ2W",
            "GET",
            "/v1/enterprises/91310000MA1FL8TQ2W",
            200,
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        assert_eq!(export(dir.path(), &mut out).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("member:a", "member:b")).unwrap();
        let e = export(dir.path(), &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("hash"), "{e}");
        std::fs::write(&path, text.lines().nth(1).unwrap().to_string() + "\n").unwrap();
        let e = export(dir.path(), &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("line 1"), "a dropped first line: {e}");
    }
}
