//! The consortium under test: validator processes (four unless told; and a fresh observer's key,
//! for the sync phase) on a new genesis, the benchmark's enterprises registered, and
//! one client actor thread per enterprise.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use xinlian_client::http::NodeClient;
use xinlian_client::record::RegisterEntity;
use xinlian_client::signer::RecordSigner;
use xinlian_devnet::{Children, spawn_node};
use xinlian_genesis::keys::SigningKey;
use xinlian_genesis::scaffold::{MemberSpec, scaffold, signing_key_path};
use xinlian_genesis::{Genesis, Hash32, Policy, Role, keys};

use crate::workload;

/// The validators' processes and what the phases need of the consortium.
pub struct Consortium {
    /// First, so that the processes stop before their folder is removed.
    pub children: Children,
    pub genesis: Genesis,
    /// Each validator's API and p2p address, `v0` first.
    pub apis: Vec<String>,
    pub p2ps: Vec<String>,
    /// The market regulator: registrar, credit and food trace authority.
    pub market: RecordSigner,
    pub dir: tempfile::TempDir,
}

/// The market regulator: registrar, credit authority of `market`, trace authority of
/// `food` — every role the benchmark's mix needs.
pub fn market_spec() -> MemberSpec {
    MemberSpec {
        id: "market".into(),
        name: "Market regulator".into(),
        region: "310000".into(),
        roles: vec![
            Role::Registrar,
            Role::CreditAuthority("market".into()),
            Role::TraceAuthority("food".into()),
        ],
        voting_power: 0,
    }
}

/// `validators` validators, an observer (not started) and the market regulator on a
/// new genesis with `block_interval_ms` (default: the policy's), the validators started.
pub fn start(
    node_bin: &Path,
    validators: usize,
    block_interval_ms: Option<u64>,
) -> Result<Consortium> {
    let dir = tempfile::tempdir()?;
    let mut specs: Vec<MemberSpec> = MemberSpec::validators(validators);
    specs.push(MemberSpec {
        id: "o0".into(),
        name: "Fresh observer".into(),
        region: "310000".into(),
        roles: vec![Role::Observer],
        voting_power: 0,
    });
    specs.push(market_spec());
    let policy = Policy {
        block_interval_ms: block_interval_ms.unwrap_or(Policy::default().block_interval_ms),
        ..Policy::default()
    };
    let genesis = scaffold(dir.path(), "xinlian-bench", 0, policy, &specs)?;
    let chain = genesis.hash();
    let mut children = Children(Vec::new());
    let (mut apis, mut p2ps) = (Vec::new(), Vec::new());
    for i in 0..validators {
        let id = format!("v{i}");
        let (child, api, p2p) = spawn_node(node_bin, dir.path(), &id, 0, 0, &p2ps, None)?;
        children.0.push((id, child));
        apis.push(api);
        p2ps.push(p2p);
    }
    let market = RecordSigner {
        key: keys::read_pem(&signing_key_path(dir.path(), "market"))?,
        chain,
    };
    Ok(Consortium {
        children,
        genesis,
        apis,
        p2ps,
        market,
        dir,
    })
}

/// Registers `count` enterprises through node 0 and waits until they are final.
pub fn register_enterprises(
    count: usize,
    node0: &NodeClient,
    c: &Consortium,
) -> Result<Vec<workload::Enterprise>> {
    eprintln!("registering {count} enterprises…");
    let mut ents = Vec::new();
    let mut last = None;
    for i in 0..count {
        let (e, key) = workload::enterprise(i, c.genesis.hash())?;
        let rec = c.market.sign(RegisterEntity {
            operator: None,
            uscc: e.uscc.clone(),
            name: format!("bench enterprise {i}"),
            key: keys::public_key(&key),
            check_override: None,
            possession: xinlian_client::crypto::prove_possession(
                &key,
                &c.genesis.hash(),
                xinlian_client::crypto::KeyHolder::Enterprise(e.uscc.as_str()),
            ),
        });
        last = Some(node0.submit(&rec)?.id);
        ents.push(e);
    }
    node0
        .record(&last.expect("actors"), 30_000)?
        .height
        .context("registrations not final within 30 s")?;
    Ok(ents)
}

fn signer(key: &SigningKey, chain: Hash32) -> RecordSigner {
    RecordSigner {
        key: key.clone(),
        chain,
    }
}

fn enterprise(e: &workload::Enterprise, chain: Hash32) -> workload::Enterprise {
    workload::Enterprise {
        uscc: e.uscc.clone(),
        signer: signer(&e.signer.key, chain),
    }
}

/// One actor thread per enterprise, each trading with the next and sending through
/// the validators in turn; they run at `shared`'s rate until it says stop.
/// One actor thread per enterprise; with `bulk`, each sends a cycle's records in one
/// `records/bulk` request.
pub fn start_actors(
    ents: &[workload::Enterprise],
    c: &Consortium,
    shared: &Arc<workload::Shared>,
    bulk: bool,
) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    for i in 0..ents.len() {
        let partner_index = (i + 1) % ents.len();
        let actor = workload::Actor {
            cast: workload::Cast {
                me: enterprise(&ents[i], c.genesis.hash()),
                partner: enterprise(&ents[partner_index], c.genesis.hash()),
                market: signer(&c.market.key, c.genesis.hash()),
                registrar: signer(&c.market.key, c.genesis.hash()),
                index: i,
            },
            node: NodeClient::new(&c.apis[i % c.apis.len()]),
            bulk,
        };
        let s = shared.clone();
        threads.push(std::thread::spawn(move || actor.run(&s)));
    }
    threads
}

/// Tells the actors to stop and waits for them.
pub fn stop_actors(shared: &workload::Shared, threads: Vec<JoinHandle<()>>) {
    shared
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
}
