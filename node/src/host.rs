//! The node's event loop, and its IO edge: the clock, the network's events, timers,
//! the store, and the API's commands all meet here and are fed to the sans-IO
//! [`Replica`], whose actions this loop carries out. Nothing here decides anything
//! about blocks or votes, and nothing here knows libp2p or HTTP: [`Network`] and
//! [`ApiServer`] own those.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use xinlian_client::record::{EncodedRecord, RecordId, SignedRecord};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Genesis, PublicKey};

use crate::api::ApiServer;
use crate::net::{NetEvent, Network, PeerAddress};
use crate::store::Store;
use xinlian_core::chain::Tip;
use xinlian_core::consensus::replica::{Action, Replica, Timeouts, Timer};
use xinlian_core::consensus::wire::{NetMsg, RELAY_BYTES_MAX, RELAY_RECORDS_MAX};
use xinlian_core::execute::Consortium;
use xinlian_core::mempool::{AdmissionError, Mempool};

pub struct NodeConfig {
    pub genesis: Genesis,
    pub data_dir: PathBuf,
    pub node_key: SigningKey,
    /// Where the swarm listens (loopback in tests and the devnet).
    pub p2p_listen: PeerAddress,
    /// Other members' nodes to dial, and to re-dial when disconnected.
    pub peers: Vec<PeerAddress>,
    /// Bounds of the pending-record queue. They are admission control: past them a
    /// submission is refused with `mempool_full` (HTTP 503) instead of joining a
    /// backlog that would make every block and every re-check slower.
    pub mempool_records_max: usize,
    pub mempool_bytes_max: usize,
    /// sled's page cache. Left at sled's default (1 GiB) it grows with the ledger:
    /// bounded, a node's memory stays flat (measured in docs/performance.md).
    pub cache_bytes: u64,
}

impl NodeConfig {
    pub fn new(genesis: Genesis, data_dir: PathBuf, node_key: SigningKey) -> Self {
        // Two full blocks' worth: enough to keep proposers busy, little enough that
        // overload is refused at the door (measured: an unbounded backlog collapsed
        // throughput from 1,736 to 251 records/s; docs/performance.md).
        let policy = &genesis.policy;
        let mempool_records_max = 2 * policy.block_records_max as usize;
        let mempool_bytes_max = 2 * policy.block_bytes_max as usize;
        NodeConfig {
            genesis,
            data_dir,
            node_key,
            p2p_listen: "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"),
            peers: Vec::new(),
            mempool_records_max,
            mempool_bytes_max,
            cache_bytes: crate::store::CACHE_BYTES_DEFAULT,
        }
    }
}

pub enum Command {
    Submit {
        record: Box<EncodedRecord>,
        reply: oneshot::Sender<Result<RecordId, AdmissionError>>,
    },
    Pending {
        id: RecordId,
        reply: oneshot::Sender<Option<SignedRecord>>,
    },
    MempoolLen {
        reply: oneshot::Sender<usize>,
    },
}

/// What the API may read directly; writes go through [`Command`]s.
#[derive(Clone)]
pub struct Shared {
    pub genesis: Arc<Genesis>,
    /// The consortium in force at the next height, following governance.
    pub consortium: watch::Receiver<Arc<Consortium>>,
    pub store: Arc<Store>,
    pub tip: watch::Receiver<Tip>,
    pub commands: mpsc::Sender<Command>,
    /// This node's key: which member it is, if any, follows the roster.
    pub node_key: PublicKey,
}

impl Shared {
    pub fn consortium(&self) -> Arc<Consortium> {
        self.consortium.borrow().clone()
    }
}

/// Queue of API commands waiting for the host.
const COMMANDS_MAX: usize = 4096;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How often disconnected peers are dialled again.
const REDIAL: Duration = Duration::from_secs(2);
/// Longest a relayed record waits for others to share its gossip message.
const RELAY_LINGER: Duration = Duration::from_millis(10);

/// Opens the store, joins the network, starts the API on `listener`, and runs until
/// `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let genesis = Arc::new(config.genesis);
    let (store, tip, consortium) = open_store(&genesis, &config.data_dir, config.cache_bytes)?;
    let node_pk = public_key(&config.node_key);
    // A node whose key no roster has yet names may still start: it is a member to be,
    // and waits to be admitted by a governance vote (docs/governance.md).
    let member = match consortium.roster.member_by_node_key(&node_pk) {
        Some(m) => m.id.clone(),
        None => {
            tracing::warn!(node_key = %node_pk, height = tip.height, "this node's key is not in the roster in force: it will be refused by members until a governance change admits it");
            String::new()
        }
    };
    let validator = consortium.validators.index_of(&node_pk).is_some();
    tracing::info!(member = %member, validator, height = tip.height, ledger_size = tip.frontier.size(), "store opened");

    let net = Network::new(
        &genesis,
        &consortium.roster,
        &config.node_key,
        config.p2p_listen.clone(),
    )?;
    let (consortium_tx, consortium_rx) = watch::channel(consortium.clone());
    let (tip_tx, tip_rx) = watch::channel(tip.clone());
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMANDS_MAX);
    let shared = Shared {
        genesis: genesis.clone(),
        consortium: consortium_rx,
        store: store.clone(),
        tip: tip_rx,
        commands: cmd_tx,
        node_key: node_pk,
    };
    let api = ApiServer::start(listener, shared);

    let timeouts = Timeouts::for_interval(consortium.policy().block_interval_ms);
    let (replica, actions) = Replica::new(
        consortium.clone(),
        config.node_key,
        store.clone(),
        tip,
        timeouts,
        Mempool::new(config.mempool_records_max, config.mempool_bytes_max),
        now_ms(),
    )?;
    let mut host = Host {
        replica,
        net,
        peers: config.peers,
        timers: HashMap::new(),
        tip_tx,
        consortium_tx,
        relay: Vec::new(),
        relay_bytes: 0,
    };
    host.apply(actions);
    let result = host.run(cmd_rx, shutdown).await;
    api.shutdown().await?;
    result
}

/// The store under `data_dir`, its tip, and the consortium in force at the next height.
fn open_store(
    genesis: &Arc<Genesis>,
    data_dir: &std::path::Path,
    cache_bytes: u64,
) -> Result<(Arc<Store>, Tip, Arc<Consortium>)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let (store, tip) = Store::open_with_cache(
        &data_dir.join("ledger"),
        &Consortium::new(genesis.as_ref().clone()),
        cache_bytes,
    )?;
    let store = Arc::new(store);
    let consortium = Arc::new(
        xinlian_core::governance::consortium_at(store.as_ref(), genesis, tip.height + 1)
            .context("reading the roster in force")?,
    );
    Ok((store, tip, consortium))
}

struct Host {
    replica: Replica<Arc<Store>>,
    net: Network,
    peers: Vec<PeerAddress>,
    timers: HashMap<Timer, Instant>,
    tip_tx: watch::Sender<Tip>,
    consortium_tx: watch::Sender<Arc<Consortium>>,
    /// Records waiting to be relayed in one batch, and their size.
    relay: Vec<Vec<u8>>,
    relay_bytes: usize,
}

impl Host {
    /// The event loop: until `shutdown` resolves or a step fails.
    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.net.redial(&self.peers);
        let mut redial = tokio::time::interval(REDIAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut relay = tokio::time::interval(RELAY_LINGER);
        relay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let next_timer = self.timers.values().min().copied();
            let sleep = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                Some(cmd) = commands.recv() => self.command(cmd)?,
                event = self.net.next_event() => {
                    if let Some(event) = event {
                        self.net_event(event)?;
                    }
                }
                _ = sleep => self.fire_timers()?,
                _ = redial.tick() => self.net.redial(&self.peers),
                _ = relay.tick() => self.flush_relay(),
            }
        }
    }

    fn command(&mut self, cmd: Command) -> Result<()> {
        match cmd {
            Command::Submit { record, reply } => {
                let (out, actions) = self.replica.submit(now_ms(), *record);
                let _ = reply.send(out);
                self.apply(actions);
            }
            Command::Pending { id, reply } => {
                let _ = reply.send(self.replica.mempool().get(&id).map(|r| r.record().clone()));
            }
            Command::MempoolLen { reply } => {
                let _ = reply.send(self.replica.mempool().len());
            }
        }
        Ok(())
    }

    fn fire_timers(&mut self) -> Result<()> {
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.timers.remove(&t);
            let actions = self.replica.on_timer(now_ms(), t)?;
            self.apply(actions);
        }
        Ok(())
    }

    fn deliver(&mut self, from: PublicKey, msg: NetMsg) -> Result<()> {
        let actions = self.replica.on_message(now_ms(), from, msg)?;
        self.apply(actions);
        Ok(())
    }

    fn net_event(&mut self, event: NetEvent) -> Result<()> {
        match event {
            NetEvent::Listening(address) => {
                // Tests and scripts read this line to dial this node.
                println!("xinlian-node: p2p listening on {address}");
            }
            NetEvent::Message { from, msg } => self.deliver(from, msg)?,
            NetEvent::SyncRequest { from, msg } => {
                self.deliver(from, msg)?;
                // No blocks to give: answer empty rather than leave it open.
                self.net.close_sync_request(&from);
            }
        }
        Ok(())
    }

    fn flush_relay(&mut self) {
        if !self.relay.is_empty() {
            let batch = std::mem::take(&mut self.relay);
            self.relay_bytes = 0;
            self.net.publish(&NetMsg::Records(batch));
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Broadcast(msg) => self.net.publish(&msg),
                Action::Relay(bytes) => {
                    if self.relay.len() + 1 > RELAY_RECORDS_MAX
                        || self.relay_bytes + bytes.len() > RELAY_BYTES_MAX
                    {
                        self.flush_relay();
                    }
                    self.relay_bytes += bytes.len();
                    self.relay.push(bytes);
                }
                Action::Send(peer, msg @ NetMsg::SyncRequest { .. }) => {
                    self.net.send_sync_request(&peer, msg)
                }
                Action::Send(peer, msg) => self.net.respond_sync(&peer, msg),
                Action::Schedule { timer, after_ms } => {
                    self.timers
                        .insert(timer, Instant::now() + Duration::from_millis(after_ms));
                }
                Action::Cancel(timer) => {
                    self.timers.remove(&timer);
                }
                Action::CancelConsensusTimers => {
                    self.timers.retain(|t, _| !matches!(t, Timer::Consensus(_)));
                }
                Action::Committed { tip, records } => {
                    // From the proposer's clock at proposal to stored here: the part of
                    // a record's latency that consensus and the commit take.
                    tracing::info!(
                        height = tip.height,
                        records = records.len(),
                        ledger_size = tip.frontier.size(),
                        since_proposal_ms = now_ms() - tip.time_ms,
                        "block finalized"
                    );
                    self.tip_tx.send_replace(tip);
                }
                Action::RosterChanged(c) => {
                    if let Err(e) = self.net.set_members(&c.roster) {
                        // Rosters are validated on the ledger: every node key is a point.
                        tracing::error!(error = %e, "roster node keys");
                    }
                    self.consortium_tx.send_replace(c);
                }
                Action::Penalise { peer, reason } => self.net.penalise(&peer, &reason),
            }
        }
    }
}
