//! Real network partitions for multi-process tests, in Linux network namespaces the
//! test creates and removes: a hub namespace holding a bridge, one namespace per node
//! joined to the bridge by a veth pair, and one veth from the test's own namespace to
//! the bridge so the test reaches every node's API (10.a.b.254; node `i` is
//! 10.a.b.(i+1)). Node-to-node traffic uses explicit /32 routes, so a partition removes
//! routes between node namespaces and healing restores them; a node's cable can be
//! pulled (its bridge port taken down), and its egress limited with `tc tbf`. Only the
//! test's own link and its /24 touch the namespace the test runs in; nothing else does.
//!
//! Every name carries the test process's pid and a per-process counter, so parallel
//! tests and test binaries never clash. [`Net`]'s drop (also on panic) kills every
//! process in its namespaces and deletes every namespace and link it made; namespaces
//! left by a test process that no longer exists are removed when the next one starts.
//!
//! It needs root and iproute2. Without them [`Net::new`] fails with a message saying
//! so; `XINLIAN_SKIP_NETNS=1` is the explicit opt-out ([`skipped`]).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use xinlian_client::http::NodeClient;

/// Set to `1` to skip the network-namespace tests (they say so on stderr).
pub const SKIP_VAR: &str = "XINLIAN_SKIP_NETNS";

/// Prefix of every namespace this module makes: `xlt-PID-K-…`.
const NS_PREFIX: &str = "xlt-";
/// Most nodes one [`Net`] holds (their addresses are 10.a.b.1 ….).
const NODES_MAX: usize = 200;
/// How long a node may take to announce its addresses and answer its API.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// True, saying so on stderr, when this run opted out with `XINLIAN_SKIP_NETNS=1`.
pub fn skipped(test: &str) -> bool {
    let skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED {test}: {SKIP_VAR}=1, so no network namespaces were made");
    }
    skip
}

/// A tool from iproute2, by its usual path (test environments often lack /usr/sbin in
/// PATH), else by name.
fn tool(name: &str) -> Command {
    let path = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name));
    Command::new(path)
}

/// Runs `cmd`, failing with its stderr.
fn run(mut cmd: Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    let mut cmd = tool("ip");
    cmd.args(args);
    run(cmd)
}

/// `ip [-n ns] -batch -`: many commands in one process, stopping at the first failure.
fn ip_batch(ns: Option<&str>, lines: &[String]) -> Result<()> {
    let mut cmd = tool("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning ip -batch")?;
    let script = lines.join("\n") + "\n";
    child
        .stdin
        .take()
        .context("ip -batch stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "ip -n {} -batch failed: {}\nscript:\n{script}",
        ns.unwrap_or("(test's own)"),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Kills every process in namespace `ns` (all of them started by a test) with SIGKILL.
fn kill_all_in(ns: &str) {
    let Ok(pids) = ip(&["netns", "pids", ns]) else {
        return;
    };
    for pid in pids.split_whitespace() {
        let mut kill = Command::new("kill");
        kill.args(["-KILL", pid]);
        let _ = run(kill);
    }
}

/// Removes namespaces left by test processes that no longer exist (killed before
/// their drop could run).
fn reap_leftovers() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            kill_all_in(name);
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Which of `namespaces`, and of `links` in the test's own namespace, still exist.
pub fn still_present(namespaces: &[String], links: &[String]) -> Result<Vec<String>> {
    let listed = ip(&["netns", "list"])?;
    let listed: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut present: Vec<String> = namespaces
        .iter()
        .filter(|ns| listed.contains(&ns.as_str()))
        .cloned()
        .collect();
    present.extend(
        links
            .iter()
            .filter(|l| ip(&["link", "show", "dev", l]).is_ok())
            .cloned(),
    );
    Ok(present)
}

/// Network namespaces for `n` nodes on one bridge; see the module comment.
pub struct Net {
    hub: String,
    nodes: Vec<String>,
    /// The first three octets of the /24 (10.a.b).
    subnet: [u8; 3],
    /// The test's end of its link to the bridge, in the test's own namespace.
    host_link: String,
    /// Namespaces made so far (all deleted on drop).
    made: Vec<String>,
    /// Node pairs whose routes are removed, as (from, to).
    cut: BTreeSet<(usize, usize)>,
}

impl Net {
    /// Makes the namespaces, bridge, links and routes for `n` nodes.
    pub fn new(n: usize) -> Result<Net> {
        ensure!(
            (1..=NODES_MAX).contains(&n),
            "1 to {NODES_MAX} nodes, not {n}"
        );
        if let Err(e) = ip(&["netns", "list"]) {
            bail!(
                "network-namespace tests need root and iproute2 (`ip`); {e:#}. \
                 Set {SKIP_VAR}=1 to skip them explicitly."
            );
        }
        let euid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
                line.split_whitespace().nth(2).map(str::to_string)
            })
            .unwrap_or_default();
        ensure!(
            euid == "0",
            "network-namespace tests need root (effective uid {euid:?}). \
             Set {SKIP_VAR}=1 to skip them explicitly."
        );
        reap_leftovers();
        let pid = std::process::id();
        let k = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NS_PREFIX}{pid}-{k}");
        let mut net = Net {
            hub: format!("{prefix}-hub"),
            nodes: (0..n).map(|i| format!("{prefix}-n{i}")).collect(),
            subnet: free_subnet(pid, k)?,
            // ≤ 15 characters: "xl" + pid (≤ 7 hex digits) + "k" + counter.
            host_link: format!("xl{pid:x}k{}", k % 100),
            made: Vec::new(),
            cut: BTreeSet::new(),
        };
        net.build().map_err(|e| {
            anyhow::anyhow!(
                "setting up network namespaces failed (this needs root; set {SKIP_VAR}=1 \
                 to skip explicitly): {e:#}"
            )
        })?;
        Ok(net)
    }

    fn build(&mut self) -> Result<()> {
        let hub = self.hub.clone();
        ip(&["netns", "add", &hub])?;
        self.made.push(hub.clone());
        ip_batch(
            Some(&hub),
            &[
                "link set lo up".into(),
                "link add name br0 type bridge".into(),
                "link set br0 up".into(),
            ],
        )?;
        ip(&[
            "link",
            "add",
            "name",
            &self.host_link,
            "type",
            "veth",
            "peer",
            "name",
            "host",
            "netns",
            &hub,
        ])?;
        ip_batch(Some(&hub), &["link set host master br0 up".into()])?;
        let host_addr = format!("{}/24", self.host_addr());
        ip(&["addr", "add", &host_addr, "dev", &self.host_link])?;
        ip(&["link", "set", &self.host_link, "up"])?;
        for i in 0..self.nodes.len() {
            self.build_node(i)?;
        }
        Ok(())
    }

    /// Node `i`'s namespace, its veth pair to the bridge (`n{i}` on the hub, `eth0`
    /// inside), its address without a subnet route, and /32 routes to everyone.
    fn build_node(&mut self, i: usize) -> Result<()> {
        let ns = self.nodes[i].clone();
        ip(&["netns", "add", &ns])?;
        self.made.push(ns.clone());
        ip(&[
            "-n",
            &self.hub,
            "link",
            "add",
            "name",
            &format!("n{i}"),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ])?;
        ip_batch(Some(&self.hub), &[format!("link set n{i} master br0 up")])?;
        let mut lines = vec![
            "link set lo up".to_string(),
            format!("addr add {}/24 dev eth0 noprefixroute", self.addr(i)),
            "link set eth0 up".into(),
        ];
        lines.extend(self.all_routes(i));
        ip_batch(Some(&ns), &lines)
    }

    /// Node `i`'s routes to the test and to every other node, as `ip -batch` lines.
    fn all_routes(&self, i: usize) -> Vec<String> {
        std::iter::once(self.host_addr())
            .chain(
                (0..self.nodes.len())
                    .filter(|&j| j != i)
                    .map(|j| self.addr(j)),
            )
            .map(|a| format!("route replace {a}/32 dev eth0"))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s address (10.a.b.(i+1)).
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, i as u8 + 1)
    }

    /// The test's own address on the bridge.
    pub fn host_addr(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 254)
    }

    /// Node `i`'s namespace name.
    pub fn ns(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// `program` run inside node `i`'s namespace (`ip netns exec NS program`).
    pub fn command(&self, i: usize, program: &Path) -> Command {
        let mut cmd = tool("ip");
        cmd.args(["netns", "exec", &self.nodes[i]]).arg(program);
        cmd
    }

    /// Cuts every route between nodes of different `groups` (both ways); nodes in no
    /// group keep their routes. Replaces any earlier partition.
    pub fn partition(&mut self, groups: &[&[usize]]) -> Result<()> {
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        let n = self.nodes.len();
        let mut cut = BTreeSet::new();
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                if let (Some(a), Some(b)) = (group_of(i), group_of(j))
                    && a != b
                {
                    cut.insert((i, j));
                }
            }
        }
        self.set_cut(cut)
    }

    /// Cuts only the routes from `from` to each of `to`: packets the other way still
    /// arrive (one-way loss). Adds to any earlier cut.
    pub fn cut_one_way(&mut self, from: usize, to: &[usize]) -> Result<()> {
        let mut cut = self.cut.clone();
        cut.extend(to.iter().map(|&j| (from, j)));
        self.set_cut(cut)
    }

    /// Makes exactly the routes in `cut` absent, each namespace in one `ip -batch`.
    fn set_cut(&mut self, cut: BTreeSet<(usize, usize)>) -> Result<()> {
        for i in 0..self.nodes.len() {
            let mut lines = Vec::new();
            for j in (0..self.nodes.len()).filter(|&j| j != i) {
                let (was, now) = (self.cut.contains(&(i, j)), cut.contains(&(i, j)));
                if !was && now {
                    lines.push(format!("route del {}/32 dev eth0", self.addr(j)));
                } else if was && !now {
                    lines.push(format!("route replace {}/32 dev eth0", self.addr(j)));
                }
            }
            if !lines.is_empty() {
                ip_batch(Some(&self.nodes[i]), &lines)?;
            }
        }
        self.cut = cut;
        Ok(())
    }

    /// Pulls node `i`'s cable: its bridge port goes down, so nothing reaches it or
    /// leaves it (the test's API calls neither).
    pub fn link_down(&self, i: usize) -> Result<()> {
        ip_batch(Some(&self.hub), &[format!("link set n{i} down")])
    }

    /// Plugs node `i`'s cable back in.
    pub fn link_up(&self, i: usize) -> Result<()> {
        ip_batch(Some(&self.hub), &[format!("link set n{i} up")])
    }

    /// Limits what node `i` sends to `kbit` kbit/s with a token bucket (`tc tbf`);
    /// what it receives is not limited. Packets waiting over 100 ms are dropped.
    pub fn limit_egress(&self, i: usize, kbit: u32) -> Result<()> {
        let mut cmd = tool("tc");
        cmd.args([
            "-n",
            &self.nodes[i],
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
        ])
        .args(["tbf", "rate", &format!("{kbit}kbit")])
        .args(["burst", "1600", "latency", "100ms"]);
        run(cmd).map(drop)
    }

    /// Removes node `i`'s egress limit.
    pub fn unlimit_egress(&self, i: usize) -> Result<()> {
        let mut cmd = tool("tc");
        cmd.args(["-n", &self.nodes[i], "qdisc", "del", "dev", "eth0", "root"]);
        run(cmd).map(drop)
    }

    /// Plugs every cable back in and restores every route, whatever removed it
    /// (limits stay).
    pub fn heal(&mut self) -> Result<()> {
        let n = self.nodes.len();
        ip_batch(
            Some(&self.hub),
            &(0..n)
                .map(|i| format!("link set n{i} up"))
                .collect::<Vec<_>>(),
        )?;
        for i in 0..n {
            ip_batch(Some(&self.nodes[i]), &self.all_routes(i))?;
        }
        self.cut.clear();
        Ok(())
    }

    /// The namespaces made and the test-side link's name, to check they are gone
    /// after drop.
    pub fn names(&self) -> (Vec<String>, String) {
        (self.made.clone(), self.host_link.clone())
    }

    /// Starts `xinlian-node run` for node `i` inside its namespace, listening on its
    /// own address (API and p2p on ports the OS picks), dialling `peers`, stderr in
    /// `log`. It exits when its stdin closes, so it never outlives the test process.
    pub fn start_node(&self, i: usize, spec: &NodeSpec, peers: &[&NsNode]) -> Result<NsNode> {
        let addr = self.addr(i);
        let mut cmd = self.command(i, &spec.bin);
        cmd.arg("run")
            .arg("--genesis")
            .arg(&spec.genesis)
            .arg("--key")
            .arg(&spec.key)
            .arg("--data")
            .arg(&spec.data)
            .arg("--listen")
            .arg(format!("{addr}:0"))
            .arg("--p2p-listen")
            .arg(format!("/ip4/{addr}/tcp/0"))
            .arg("--exit-with-stdin")
            .env(
                "RUST_LOG",
                std::env::var("XINLIAN_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        for p in peers {
            cmd.arg("--peer").arg(&p.p2p);
        }
        NsNode::start(cmd, addr, spec.log.clone())
    }
}

/// What a node needs besides its namespace.
pub struct NodeSpec {
    pub bin: PathBuf,
    pub genesis: PathBuf,
    pub key: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
}

/// A /24 in 10.64.0.0/10 derived from the pid and counter, skipping any the test's own
/// namespace already routes or holds an address in.
fn free_subnet(pid: u32, k: u32) -> Result<[u8; 3]> {
    let start = pid.wrapping_mul(16).wrapping_add(k) % 16_384;
    for step in 0..256 {
        let idx = (start + step) % 16_384;
        let subnet = [10, 64 + (idx / 256) as u8, (idx % 256) as u8];
        let prefix = format!("{}.{}.{}.0/24", subnet[0], subnet[1], subnet[2]);
        let routes = ip(&["-4", "route", "show", "table", "all", "root", &prefix])?;
        let addrs = ip(&["-4", "-o", "addr", "show", "to", &prefix])?;
        if routes.trim().is_empty() && addrs.trim().is_empty() {
            return Ok(subnet);
        }
    }
    bail!("no free /24 in 10.64.0.0/10")
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.made {
            kill_all_in(ns);
        }
        // Deleting one end of a veth deletes both; the rest go with their namespaces.
        let _ = ip(&["link", "del", &self.host_link]);
        for ns in self.made.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A node process inside a namespace; killed on drop.
pub struct NsNode {
    child: Child,
    /// Held open: the node exits when it closes (`--exit-with-stdin`).
    _stdin: Option<ChildStdin>,
    pub client: NodeClient,
    /// Its libp2p address with its peer id.
    pub p2p: String,
    pub log: PathBuf,
}

impl NsNode {
    fn start(mut cmd: Command, addr: Ipv4Addr, log: PathBuf) -> Result<NsNode> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("spawning a node with ip netns exec")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("node stdout")?;
        let mut node = NsNode {
            child,
            _stdin: stdin,
            client: NodeClient::new("http://127.0.0.1:1"),
            p2p: String::new(),
            log,
        };
        let url = node.read_announcements(stdout)?;
        ensure!(
            url.starts_with(&format!("http://{addr}:")),
            "API not on the node's own address {addr}: {url}"
        );
        ensure!(
            node.p2p.starts_with(&format!("/ip4/{addr}/tcp/")),
            "p2p not on the node's own address {addr}: {}",
            node.p2p
        );
        node.client = NodeClient::new(&url);
        let deadline = Instant::now() + READY_TIMEOUT;
        while node.client.status().is_err() {
            if let Some(status) = node.child.try_wait()? {
                bail!("node exited during start: {status}; see {:?}", node.log);
            }
            ensure!(
                Instant::now() < deadline,
                "node API not ready within {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(node)
    }

    /// Reads the node's "API listening" and "p2p listening" lines; returns the API URL
    /// and keeps the p2p address.
    fn read_announcements(&mut self, stdout: std::process::ChildStdout) -> Result<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("xinlian-node: API listening on ") {
                    let _ = tx.send((true, url.trim().to_string()));
                }
                if let Some(addr) = line.strip_prefix("xinlian-node: p2p listening on ") {
                    let _ = tx.send((false, addr.trim().to_string()));
                }
            }
        });
        let mut url = None;
        let deadline = Instant::now() + READY_TIMEOUT;
        while url.is_none() || self.p2p.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, u)) => url = Some(u),
                Ok((false, a)) => self.p2p = a,
                Err(_) => bail!(
                    "node never announced its API and p2p addresses; see {:?}",
                    self.log
                ),
            }
        }
        url.context("announced")
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
