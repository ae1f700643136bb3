//! Harness for tests that run real node processes on 127.0.0.1: a consortium in a
//! temporary folder, nodes started on a port the OS picks (read back from the node's
//! own announcement, so there is no race), readiness by polling the API, and a kill on
//! drop so no process outlives its test.

pub mod netns;
pub mod supply_chain;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use xinlian_client::crypto::{KeyHolder, prove_possession};
use xinlian_client::http::NodeClient;
use xinlian_client::ids::Uscc;
use xinlian_client::record::{Commission, Product, Quantity, RecordId, RegisterEntity};
use xinlian_client::signer::RecordSigner;
use xinlian_client::when::EventTime;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::scaffold::{
    MemberSpec, genesis_path, node_key_path, scaffold, signing_key_path,
};
use xinlian_genesis::{Genesis, Policy, Role};

/// A consortium fixture using this package's node binary (whose path cargo gives only
/// to integration tests, hence a macro expanded there).
#[macro_export]
macro_rules! consortium {
    () => {
        $crate::Consortium::new(env!("CARGO_BIN_EXE_xinlian-node-under-test"))
    };
}
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What node processes log: warnings, unless `XINLIAN_TEST_LOG` asks for more (e.g.
/// `info` to see every block and roster change in the per-node logs).
fn node_log_filter() -> String {
    std::env::var("XINLIAN_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// A one-validator consortium plus a registrar agency, in a temporary folder.
pub struct Consortium {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    node_bin: PathBuf,
}

impl Consortium {
    pub fn new(node_bin: &str) -> Result<Consortium> {
        Self::with_nodes(node_bin, 1, 0)
    }

    /// `validators` validators `v0…`, `observers` observers `o0…`, and a registrar.
    pub fn with_nodes(node_bin: &str, validators: usize, observers: usize) -> Result<Consortium> {
        let policy = Policy {
            block_interval_ms: 50,
            ..Policy::default()
        };
        Self::with_policy(node_bin, validators, observers, policy)
    }

    pub fn with_policy(
        node_bin: &str,
        validators: usize,
        observers: usize,
        policy: Policy,
    ) -> Result<Consortium> {
        let mut specs: Vec<MemberSpec> = MemberSpec::validators(validators);
        specs.extend((0..observers).map(|i| MemberSpec {
            id: format!("o{i}"),
            name: format!("Observer {i}"),
            region: "320000".into(),
            roles: vec![Role::Observer],
            voting_power: 0,
        }));
        specs.extend([MemberSpec {
            id: "registrar".into(),
            name: "Registrar".into(),
            region: "310000".into(),
            roles: vec![Role::Registrar, Role::TraceAuthority("food".into())],
            voting_power: 0,
        }]);
        Self::with_members(node_bin, &specs, policy)
    }

    /// A consortium of exactly `specs` (keys and genesis scaffolded in a temporary
    /// folder).
    pub fn with_members(
        node_bin: &str,
        specs: &[MemberSpec],
        policy: Policy,
    ) -> Result<Consortium> {
        let dir = tempfile::tempdir()?;
        let genesis = scaffold(dir.path(), "xinlian-test", 0, policy, specs)?;
        Ok(Consortium {
            dir,
            genesis,
            node_bin: node_bin.into(),
        })
    }

    /// A member's node key file (its node's identity; it also signs requests).
    pub fn node_key(&self, member: &str) -> Result<SigningKey> {
        Ok(xinlian_genesis::keys::read_pem(&node_key_path(
            self.path(),
            member,
        ))?)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir_of("v0")
    }

    pub fn data_dir_of(&self, member: &str) -> PathBuf {
        self.path().join(format!("data-{member}"))
    }

    /// Starts member `id`'s node, dialling the given running nodes.
    pub fn start_member(&self, id: &str, peers: &[&Node]) -> Result<Node> {
        self.start_member_with(id, peers, &[])
    }

    /// As [`Consortium::start_member`], with more `xinlian-node run` arguments (limits).
    pub fn start_member_with(&self, id: &str, peers: &[&Node], args: &[&str]) -> Result<Node> {
        let mut cmd = self.command_for(id, &self.data_dir_of(id));
        for p in peers {
            cmd.arg("--peer").arg(&p.p2p);
        }
        cmd.args(args);
        Node::start(cmd, Some(self.path().join(format!("{id}.log"))), None)
    }

    /// As [`Consortium::start_member_with`], serving the API over TLS with a certificate
    /// from a test CA in the consortium's folder ([`Consortium::tls_ca`]); its client
    /// trusts that CA alone.
    pub fn start_member_tls(&self, id: &str, peers: &[&Node], args: &[&str]) -> Result<Node> {
        let tls = xinlian_devnet::tls::node_tls(self.path(), id)?;
        let mut cmd = self.command_for(id, &self.data_dir_of(id));
        for p in peers {
            cmd.arg("--peer").arg(&p.p2p);
        }
        cmd.arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key);
        cmd.args(args);
        let log = Some(self.path().join(format!("{id}.log")));
        Node::start(cmd, log, Some(self.tls_ca()))
    }

    /// The test CA's certificate (PEM) that [`Consortium::start_member_tls`] uses.
    pub fn tls_ca(&self) -> PathBuf {
        xinlian_devnet::tls::ca_path(self.path())
    }

    pub fn agency(&self, id: &str) -> Result<RecordSigner> {
        Ok(RecordSigner {
            key: xinlian_genesis::keys::read_pem(&signing_key_path(self.path(), id))?,
            chain: self.genesis.hash(),
        })
    }

    fn command(&self, data: &Path) -> Command {
        self.command_for("v0", data)
    }

    fn command_for(&self, member: &str, data: &Path) -> Command {
        node_command(
            &self.node_bin,
            &genesis_path(self.path()),
            &node_key_path(self.path(), member),
            data,
        )
    }

    pub fn start(&self) -> Result<Node> {
        Node::start(self.command(&self.data_dir()), None, None)
    }

    /// Runs the node expecting it to refuse to start; returns its stderr.
    pub fn start_fails(&self, data: &Path) -> Result<String> {
        let out = self.command(data).stdout(Stdio::null()).output()?;
        if out.status.success() {
            bail!("node started although it should have refused");
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `xinlian-node check` over the validator's data folder.
    pub fn check(&self) -> Result<String> {
        self.check_member("v0")
    }

    /// `xinlian-node check` over member `id`'s data folder (its node stopped).
    pub fn check_member(&self, id: &str) -> Result<String> {
        let out = Command::new(&self.node_bin)
            .arg("check")
            .arg("--genesis")
            .arg(genesis_path(self.path()))
            .arg("--data")
            .arg(self.data_dir_of(id))
            .env("RUST_LOG", node_log_filter())
            .output()?;
        if !out.status.success() {
            bail!("check failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `xinlian-node run` with ports the OS picks, logging warnings.
fn node_command(bin: &Path, genesis: &Path, key: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--genesis")
        .arg(genesis)
        .arg("--key")
        .arg(key)
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", node_log_filter());
    cmd
}

/// Starts a node of any genesis with the given key, dialling `peers`, its stderr in `log`.
pub fn start_node(
    bin: &str,
    genesis: &Path,
    key: &Path,
    data: &Path,
    peers: &[&Node],
    log: PathBuf,
) -> Result<Node> {
    let mut cmd = node_command(Path::new(bin), genesis, key, data);
    for p in peers {
        cmd.arg("--peer").arg(&p.p2p);
    }
    Node::start(cmd, Some(log), None)
}

/// A real node that is not a member of `c`: its own genesis is `c`'s plus itself (so it
/// is willing to talk to our members, whose genesis does not know it), it keeps its
/// files in `dir` (its log in `outsider.log`), and it dials `target`.
pub fn start_outsider(c: &Consortium, bin: &str, dir: &Path, target: &Node) -> Result<Node> {
    let key = xinlian_genesis::keys::generate()?;
    let key_path = dir.join("outsider.pem");
    xinlian_genesis::keys::write_pem(&key_path, &key)?;
    let mut g = c.genesis.clone();
    g.members.push(xinlian_genesis::Member {
        id: "outsider".into(),
        name: "Outsider".into(),
        region: "310000".into(),
        roles: vec![Role::Validator],
        voting_power: 1,
        node_key: Some(public_key(&key)),
        signing_key: public_key(&xinlian_genesis::keys::generate()?),
    });
    let genesis_path = dir.join("genesis.toml");
    std::fs::write(&genesis_path, g.to_toml())?;
    start_node(
        bin,
        &genesis_path,
        &key_path,
        &dir.join("data"),
        &[target],
        dir.join("outsider.log"),
    )
}

/// Starts a node from a command of the caller's (`xinlian-node run …`), its stderr in
/// `log`, and waits until its API answers.
pub fn start_command(cmd: Command, log: PathBuf) -> Result<Node> {
    Node::start(cmd, Some(log), None)
}

/// `xinlian-node devnet` in `dir` on a port the OS picks.
pub fn start_devnet(node_bin: &str, dir: &Path) -> Result<Node> {
    let mut cmd = Command::new(node_bin);
    cmd.arg("devnet")
        .arg("--dir")
        .arg(dir)
        .arg("--port")
        .arg("0")
        .env("RUST_LOG", node_log_filter());
    // Its nodes serve TLS with certificates from its own CA, made before they start.
    Node::start(cmd, None, Some(xinlian_devnet::tls::ca_path(dir)))
}

pub struct Node {
    child: Child,
    pub client: NodeClient,
    /// The node's libp2p address with its peer id (empty for the devnet's parent).
    pub p2p: String,
    /// Where its log goes, when captured.
    pub log: Option<PathBuf>,
}

impl Node {
    /// Starts a node; with `log`, its stderr is written there (for assertions and
    /// post-mortems), else inherited; with `ca`, its client trusts that CA alone.
    fn start(mut cmd: Command, log: Option<PathBuf>, ca: Option<PathBuf>) -> Result<Node> {
        let stderr = match &log {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => Stdio::inherit(),
        };
        let p2p_expected = cmd.get_args().next().is_some_and(|a| a == "run");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("spawning node")?;
        let stdout = child.stdout.take().expect("piped");
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
        let mut node = Node {
            child,
            client: NodeClient::new("http://127.0.0.1:1"),
            p2p: String::new(),
            log,
        };
        let mut url = None;
        let deadline = Instant::now() + READY_TIMEOUT;
        while url.is_none() || (p2p_expected && node.p2p.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, u)) => url = Some(u),
                Ok((false, a)) => {
                    assert!(
                        a.starts_with("/ip4/127.0.0.1/"),
                        "p2p on loopback only: {a}"
                    );
                    node.p2p = a;
                }
                Err(_) => bail!("node never announced its API and p2p addresses"),
            }
        }
        let url = url.expect("announced");
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "nodes listen on loopback only: {url}"
        );
        node.client = match &ca {
            Some(ca) => NodeClient::new(&url).trusting_file(ca)?,
            None => NodeClient::new(&url),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while node.client.status().is_err() {
            if let Some(status) = node.child.try_wait()? {
                bail!("node exited during start: {status}");
            }
            if Instant::now() > deadline {
                bail!("node API not ready within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(node)
    }

    /// SIGTERM, then waits for the process to finish its shutdown (the devnet stops
    /// its nodes first).
    pub fn stop(mut self) -> Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            ensure!(
                Instant::now() < deadline,
                "did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory (`VmRSS` in /proc), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS line")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A food batch of 100 kg of rice, commissioned by whoever signs it.
pub fn commission(batch: &str) -> Commission {
    Commission {
        batch: batch.into(),
        domain: "food".into(),
        product: Product {
            name: "rice".into(),
            gtin: None,
            drug_code: None,
        },
        lot: "L1".into(),
        quantity: Quantity {
            amount: 100.into(),
            uom: "KGM".into(),
        },
        origin: "urn:test:farm".into(),
        time: EventTime {
            unix_ms: 1_795_881_600_000,
            offset_minutes: 480,
        },
    }
}

/// Has the consortium's registrar register an enterprise with `key`, and waits until
/// it is final; returns the enterprise's signer and the registration's id.
pub fn register_enterprise(
    c: &Consortium,
    client: &NodeClient,
    uscc: Uscc,
    key: SigningKey,
) -> Result<(RecordSigner, RecordId)> {
    let reg = c.agency("registrar")?;
    let v = client.submit_and_wait(
        &reg.sign(RegisterEntity {
            operator: None,
            possession: prove_possession(&key, &reg.chain, KeyHolder::Enterprise(uscc.as_str())),
            uscc,
            name: "farm".into(),
            key: public_key(&key),
            check_override: None,
        }),
        10_000,
    )?;
    anyhow::ensure!(v.height.is_some(), "registration not final in 10 s");
    Ok((
        RecordSigner {
            key,
            chain: c.genesis.hash(),
        },
        v.id,
    ))
}

/// Polls `pred` every 50 ms until it holds, or fails naming `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut pred: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !pred() {
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The `xinlian` CLI as a user runs it, against one node, genesis file and trust file.
pub struct Cli {
    pub bin: PathBuf,
    pub node: String,
    pub genesis: PathBuf,
    pub trust: PathBuf,
}

impl Cli {
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .args(args)
            .env("XINLIAN_NODE", &self.node)
            .env("XINLIAN_GENESIS", &self.genesis)
            .env("XINLIAN_TRUST", &self.trust)
            // No CA from the environment: a test that wants one passes --ca.
            .env_remove("XINLIAN_CA")
            .output()
            .expect("run the CLI")
    }

    /// Runs and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "xinlian {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }
}

/// A string field of the CLI's `--json` output.
pub fn json_field(text: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).expect("--json output is JSON");
    v[field].as_str().expect("string field").to_string()
}

/// Submits registrations to the given nodes in turn until stopped; counts accepted ones.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub accepted: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(c: &Consortium, urls: Vec<String>) -> Result<Load> {
        let reg = c.agency("registrar")?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, accepted) = (stop.clone(), accepted.clone());
            move || {
                let clients: Vec<NodeClient> = urls.iter().map(|u| NodeClient::new(u)).collect();
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let uscc = Uscc::with_check(&format!("91310000{:09}", n)).unwrap();
                    let key = xinlian_genesis::keys::generate().unwrap();
                    let rec = reg.sign(RegisterEntity {
                        operator: None,
                        possession: prove_possession(
                            &key,
                            &reg.chain,
                            KeyHolder::Enterprise(uscc.as_str()),
                        ),
                        uscc,
                        name: format!("load {n}"),
                        key: public_key(&key),
                        check_override: None,
                    });
                    // A node that is down or behind may refuse: the next one is tried.
                    if clients[(n as usize) % clients.len()].submit(&rec).is_ok() {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Ok(Load {
            stop,
            accepted,
            thread: Some(thread),
        })
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
