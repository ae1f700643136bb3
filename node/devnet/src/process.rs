//! Node processes: starting `xinlian-node run` for one member of a scaffolded
//! consortium and reading back the addresses it announces, and stopping nodes by
//! closing their stdin (they run with `--exit-with-stdin`, so they also go down when
//! the devnet does, however it ends).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xinlian_genesis::scaffold::{genesis_path, node_key_path};

/// How long a node has to announce its API and p2p addresses after it starts.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node whose stdin closed has to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The devnet's node processes; dropping it stops them.
pub struct Children(pub Vec<(String, Child)>);

impl Children {
    /// Closes each node's stdin (it exits, flushing its store), waits up to 10 s,
    /// then kills what is left.
    pub fn stop(&mut self) {
        stop_all(self.0.iter_mut().map(|(_, c)| c));
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Closes every child's stdin first (so they shut down in parallel), then waits for
/// each up to 10 s in all and kills any still running.
pub(crate) fn stop_all<'a>(children: impl IntoIterator<Item = &'a mut Child>) {
    let mut children: Vec<&mut Child> = children.into_iter().collect();
    for c in &mut children {
        drop(c.stdin.take());
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for c in children {
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Where member `id`'s node writes its log (its stderr, appended across restarts).
pub fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("nodes").join(format!("{id}.log"))
}

/// Starts `exe run` (an `xinlian-node`) for member `id` of the consortium scaffolded in
/// `dir`, dialling `peers` and serving its API over TLS with `tls` if given; returns the child and its announced API URL and p2p address.
/// Its log goes to `dir/nodes/ID.log`; it exits when its stdin closes. It runs in its
/// own process group, so a Ctrl-C at the terminal reaches only its parent, which
/// stops it.
pub fn spawn_node(
    exe: &Path,
    dir: &Path,
    id: &str,
    api_port: u16,
    p2p_port: u16,
    peers: &[String],
    tls: Option<&crate::tls::NodeTls>,
) -> Result<(Child, String, String)> {
    let nodes = dir.join("nodes");
    std::fs::create_dir_all(&nodes)?;
    let log_file = log_path(dir, id);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_file)
        .with_context(|| format!("opening {}", log_file.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--genesis")
        .arg(genesis_path(dir))
        .arg("--key")
        .arg(node_key_path(dir, id))
        .arg("--data")
        .arg(nodes.join(id))
        .arg("--listen")
        .arg(format!("127.0.0.1:{api_port}"))
        .arg("--p2p-listen")
        .arg(format!("/ip4/127.0.0.1/tcp/{p2p_port}"))
        .arg("--exit-with-stdin");
    for p in peers {
        cmd.arg("--peer").arg(p);
    }
    if let Some(tls) = tls {
        cmd.arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key);
    }
    // A devnet node's settings are the devnet's alone: none from an operator's
    // environment (`XINLIAN_CONFIG`, `XINLIAN_PEERS`, … would reach it otherwise).
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("XINLIAN_") {
            cmd.env_remove(name);
        }
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting node {id}"))?;
    match read_announcements(&mut child) {
        Some((api, p2p)) => Ok((child, api, p2p)),
        None => {
            let _ = child.kill();
            let status = child
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            anyhow::bail!(
                "node {id} did not start ({status}); see {}",
                log_file.display()
            )
        }
    }
}

/// The API URL and p2p address the node prints, or `None` if it exits or stays
/// silent for 30 s. Its later output is read and dropped, so it never blocks on a
/// full pipe.
fn read_announcements(child: &mut Child) -> Option<(String, String)> {
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(u) = line.strip_prefix("xinlian-node: API listening on ") {
                let _ = tx.send((true, u.trim().to_string()));
            } else if let Some(a) = line.strip_prefix("xinlian-node: p2p listening on ") {
                let _ = tx.send((false, a.trim().to_string()));
            }
        }
    });
    let deadline = Instant::now() + ANNOUNCE_TIMEOUT;
    let (mut api, mut p2p) = (None, None);
    while api.is_none() || p2p.is_none() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, u)) => api = Some(u),
            Ok((false, a)) => p2p = Some(a),
            Err(_) => return None,
        }
    }
    Some((api?, p2p?))
}

/// The port of `http://127.0.0.1:PORT` (or `https://`).
pub(crate) fn url_port(url: &str) -> Option<u16> {
    url.trim_end_matches('/').rsplit(':').next()?.parse().ok()
}

/// The port of `/ip4/127.0.0.1/tcp/PORT/p2p/PEER`.
pub(crate) fn multiaddr_port(addr: &str) -> Option<u16> {
    let mut parts = addr.split('/');
    parts.find(|p| *p == "tcp")?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_announcements() {
        assert_eq!(url_port("http://127.0.0.1:8703"), Some(8703));
        assert_eq!(url_port("http://127.0.0.1:8703/"), Some(8703));
        assert_eq!(url_port("https://127.0.0.1:8703"), Some(8703));
        assert_eq!(
            multiaddr_port("/ip4/127.0.0.1/tcp/40123/p2p/12D3KooWabc"),
            Some(40123)
        );
        assert_eq!(multiaddr_port("/ip4/127.0.0.1/udp/1"), None);
    }
}
