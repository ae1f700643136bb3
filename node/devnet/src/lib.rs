//! `xinlian-node devnet`: a local consortium in one command. The first run writes a
//! genesis and keys for the scenario's members (by default Shanghai agencies and one
//! Yangtze River Delta province) and keys for its sample enterprises into the folder;
//! every run starts one `xinlian-node run` process per member with a node key — four
//! validators and a district observer — on loopback, then loads the scenario's records
//! through node 0's HTTP API (once per chain).
//!
//! The scenario is data: `sample.toml` beside this crate's manifest (embedded), or
//! another file in the same format ([`Options::scenario`]); see [`scenario`].
//!
//! A supervisor then watches the nodes ([`supervisor`]): one that exits on its own is
//! reported and restarted after [`Options::restart_delay`] (2 s; the environment
//! variable `XINLIAN_DEVNET_RESTART_MS` overrides it) on the same ports, and catches
//! up; one that dies five times within a minute stays down. Stdin takes `status`,
//! `stop NAME`, `start NAME`. The nodes stop with the devnet (Ctrl-C, SIGTERM, `quit`)
//! — and also if it is killed, since each exits when its pipe from the devnet closes.

pub mod process;
pub mod sample;
pub mod scenario;
mod supervisor;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use xinlian_genesis::keys;
use xinlian_genesis::scaffold::{genesis_path, scaffold};
use xinlian_genesis::{Genesis, Policy, Role};

pub use process::{Children, spawn_node};
pub use sample::{SampleEnterprise, SampleManifest, enterprise_key_path};
pub use scenario::{Scenario, ScenarioError};

use supervisor::{Event, Supervisor, say};

/// How a devnet runs. [`Options::new`] gives the defaults of `xinlian-node devnet`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The devnet's folder: genesis, keys, node data and logs, `sample.json`.
    pub dir: PathBuf,
    /// Node 0's API port; node `i` uses `port + i` for its API and `port + 100 + i`
    /// for p2p. 0: ports the OS picks (kept across restarts).
    pub port: u16,
    /// Load the scenario's steps into a fresh chain.
    pub sample: bool,
    /// A scenario file instead of the embedded `sample.toml`.
    pub scenario: Option<PathBuf>,
    /// How long after a node exits on its own it is started again.
    pub restart_delay: Duration,
    /// Serve the nodes' APIs over TLS with certificates from the devnet's own CA
    /// (`DIR/tls/ca.pem`); off, plain HTTP.
    pub tls: bool,
}

impl Options {
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            port: 8700,
            sample: true,
            scenario: None,
            restart_delay: default_restart_delay(),
            tls: true,
        }
    }
}

/// 2 s, unless `XINLIAN_DEVNET_RESTART_MS` says otherwise.
fn default_restart_delay() -> Duration {
    std::env::var("XINLIAN_DEVNET_RESTART_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_millis)
}

/// Reads the scenario file, or the embedded sample.
pub fn load_scenario(path: Option<&Path>) -> Result<Scenario> {
    match path {
        None => Ok(Scenario::sample()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(Scenario::parse(&text, &p.display().to_string())?)
        }
    }
}

/// Creates the folder's genesis (from the scenario's members) and keys on first use,
/// and keys for any enterprise that has none yet; loads the genesis.
pub fn prepare(dir: &Path, scenario: &Scenario) -> Result<Genesis> {
    let genesis = if genesis_path(dir).exists() {
        let g = Genesis::load(&genesis_path(dir))?;
        let missing: Vec<&str> = (scenario.members.iter())
            .filter(|m| !g.members.iter().any(|gm| gm.id == m.id))
            .map(|m| m.id.as_str())
            .collect();
        if !missing.is_empty() {
            say(format_args!(
                "note: {} keeps its genesis; the scenario's members {} are not in it",
                genesis_path(dir).display(),
                missing.join(", ")
            ));
        }
        g
    } else {
        let now = sample::now_ms();
        scaffold(
            dir,
            &scenario.chain_id,
            now,
            Policy {
                trace: scenario.trace.clone(),
                ..Policy::default()
            },
            &scenario.members,
        )?
    };
    std::fs::create_dir_all(dir.join("keys").join("enterprises"))?;
    for e in &scenario.enterprises {
        let path = enterprise_key_path(dir, &e.slug);
        if !path.exists() {
            keys::write_pem(&path, &keys::generate()?)?;
        }
    }
    Ok(genesis)
}

/// Runs a devnet until Ctrl-C, SIGTERM or `quit` on stdin.
pub fn run(opts: &Options) -> Result<()> {
    let dir = opts.dir.as_path();
    let scenario = load_scenario(opts.scenario.as_deref())?;
    let genesis = prepare(dir, &scenario)?;
    let runners: Vec<(String, bool)> = genesis
        .members
        .iter()
        .filter(|m| m.node_key.is_some())
        .map(|m| (m.id.clone(), m.has(&Role::Validator)))
        .collect();
    anyhow::ensure!(!runners.is_empty(), "no member of the genesis runs a node");
    let exe = std::env::current_exe().context("locating xinlian-node")?;
    let mut sup = Supervisor::start(exe, dir, &runners, opts.port, opts.restart_delay, opts.tls)?;
    let api = sup.slots[0].api.clone();
    // The same announcement as `xinlian-node run`, for scripts and tests.
    say(format_args!("xinlian-node: API listening on {api}"));
    if opts.sample {
        let m = sample::load(dir, &api, &genesis, &scenario)?;
        say(format_args!(
            "sample data: {} enterprises, {} batches, {} records (see {})",
            m.enterprises.len(),
            m.batches.len(),
            m.records.len(),
            dir.join("sample.json").display()
        ));
    }
    print_banner(&sup, dir, &api);
    let (tx, rx) = std::sync::mpsc::channel();
    let interrupt = tx.clone();
    ctrlc::set_handler(move || {
        let _ = interrupt.send(Event::Interrupt);
    })
    .context("installing the Ctrl-C handler")?;
    if supervisor::stdin_takes_commands() {
        supervisor::read_commands(tx);
    }
    sup.run(&rx);
    Ok(())
}

/// The nodes (with pids), where things are, and what to try.
fn print_banner(sup: &Supervisor, dir: &Path, api: &str) {
    let validators = sup.slots.iter().filter(|s| s.validator).count();
    say(format_args!(
        "xinlian devnet: {validators} validators and {} observer(s) on 127.0.0.1",
        sup.slots.len() - validators
    ));
    for s in &sup.slots {
        say(format_args!(
            "  {:<18} {:<9} API {:<24} pid {}",
            s.id,
            supervisor::role(s.validator),
            s.api,
            s.pid().map_or("-".to_string(), |p| p.to_string())
        ));
    }
    say(format_args!(
        "web pages: {api}/ (every node serves them; they verify every answer in the browser, docs/web.md)"
    ));
    say(format_args!(
        "genesis: {}   keys: {}   data and logs: {}",
        genesis_path(dir).display(),
        dir.join("keys").display(),
        dir.join("nodes").display()
    ));
    if api.starts_with("https://") {
        let ca = tls::ca_path(dir);
        say(format_args!(
            "TLS: the nodes' certificates are issued by the devnet's CA {}; for the CLI: \
             export XINLIAN_NODE={api} XINLIAN_CA={}",
            ca.display(),
            ca.display()
        ));
        say(format_args!(
            "try: curl --cacert {} {api}/v1/status    stop: Ctrl-C",
            ca.display()
        ));
    } else {
        say(format_args!("try: curl {api}/v1/status    stop: Ctrl-C"));
    }
    let victim = sup
        .slots
        .iter()
        .rev()
        .find(|s| s.validator)
        .unwrap_or(&sup.slots[0]);
    say(format_args!(
        "supervisor: kill a validator (e.g. kill -9 {}, {}) and watch it come back and \
         catch up; commands on stdin: {}",
        victim.pid().unwrap_or(0),
        victim.id,
        supervisor::COMMANDS
    ));
}
