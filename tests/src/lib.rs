//! Harness for tests that run real node processes on 127.0.0.1: a consortium in a
//! temporary folder, nodes started on a port the OS picks (read back from the node's
//! own announcement, so there is no race), readiness by polling the API, and a kill on
//! drop so no process outlives its test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xinlian_client::http::{NodeClient, RecordSigner};
use xinlian_client::ids::Uscc;
use xinlian_client::record::{Commission, Product, Quantity, RecordId, RegisterEntity};
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

/// A one-validator consortium plus a registrar agency, in a temporary folder.
pub struct Consortium {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    node_bin: PathBuf,
}

impl Consortium {
    pub fn new(node_bin: &str) -> Result<Consortium> {
        let dir = tempfile::tempdir()?;
        let specs = vec![
            MemberSpec {
                id: "v0".into(),
                name: "Validator 0".into(),
                region: "310000".into(),
                roles: vec![Role::Validator],
                voting_power: 1,
            },
            MemberSpec {
                id: "registrar".into(),
                name: "Registrar".into(),
                region: "310000".into(),
                roles: vec![Role::Registrar, Role::TraceAuthority("food".into())],
                voting_power: 0,
            },
        ];
        let policy = Policy {
            block_interval_ms: 50,
            ..Policy::default()
        };
        let genesis = scaffold(dir.path(), "xinlian-test", 0, policy, &specs)?;
        Ok(Consortium {
            dir,
            genesis,
            node_bin: node_bin.into(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data-v0")
    }

    pub fn agency(&self, id: &str) -> Result<RecordSigner> {
        Ok(RecordSigner {
            key: xinlian_genesis::keys::read_pem(&signing_key_path(self.path(), id))?,
            chain: self.genesis.hash(),
        })
    }

    fn command(&self, data: &Path) -> Command {
        let mut cmd = Command::new(&self.node_bin);
        cmd.arg("run")
            .arg("--genesis")
            .arg(genesis_path(self.path()))
            .arg("--key")
            .arg(node_key_path(self.path(), "v0"))
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "warn");
        cmd
    }

    pub fn start(&self) -> Result<Node> {
        Node::start(self.command(&self.data_dir()))
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
        let out = Command::new(&self.node_bin)
            .arg("check")
            .arg("--genesis")
            .arg(genesis_path(self.path()))
            .arg("--data")
            .arg(self.data_dir())
            .env("RUST_LOG", "warn")
            .output()?;
        if !out.status.success() {
            bail!("check failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `xinlian-node devnet` in `dir` on a port the OS picks.
pub fn start_devnet(node_bin: &str, dir: &Path) -> Result<Node> {
    let mut cmd = Command::new(node_bin);
    cmd.arg("devnet")
        .arg("--dir")
        .arg(dir)
        .arg("--port")
        .arg("0")
        .env("RUST_LOG", "warn");
    Node::start(cmd)
}

pub struct Node {
    child: Child,
    pub client: NodeClient,
}

impl Node {
    fn start(mut cmd: Command) -> Result<Node> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning node")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("xinlian-node: API listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let mut node = Node {
            child,
            client: NodeClient::new("http://127.0.0.1:1"),
        };
        let url = rx
            .recv_timeout(READY_TIMEOUT)
            .context("node never announced its API address")?;
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "nodes listen on loopback only: {url}"
        );
        node.client = NodeClient::new(&url);
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
            amount: 100,
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
