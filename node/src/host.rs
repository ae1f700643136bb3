//! The node's event loop, and its IO edge: the clock, the network's events, timers,
//! the store, and the API's commands all meet here and are fed to the sans-IO
//! [`Replica`], whose actions this loop carries out. Nothing here decides anything
//! about blocks or votes, and nothing here knows libp2p or HTTP: [`Network`] and
//! [`ApiServer`] own those.
//!
//! Threads: the loop, the replica and the network run on an OS thread of their own
//! ("consensus", a single-threaded runtime); the API runs on the caller's runtime.
//! They meet only through bounded channels and the store, so a flooded API cannot
//! delay a vote. Sync requests are answered from the store on blocking threads.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use malachite_types::TimeoutKind;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use xinlian_client::block::{Block, Certificate};
use xinlian_client::checks::{check_stateless, check_stateless_batch};
use xinlian_client::record::{EncodedRecord, RecordId, SignedRecord};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Genesis, Hash32, PublicKey};

use crate::api::{ApiLimits, ApiServer};
use crate::metrics::{KindLabel, Metrics, StepLabel};
use crate::net::{NetEvent, Network, PeerAddress, SyncTicket};
use crate::store::{BlockHealth, Store};
use xinlian_core::chain::{Executed, Tip};
use xinlian_core::consensus::ledger::{
    Durability, Ledger, LedgerError, LedgerResult, RepairOutcome,
};
use xinlian_core::consensus::replica::{Action, Replica, Timeouts, Timer};
use xinlian_core::consensus::wire::WalEntry;
use xinlian_core::consensus::wire::{
    NetMsg, RELAY_BYTES_MAX, RELAY_RECORDS_MAX, SYNC_BLOCKS_MAX, SYNC_BYTES_MAX,
};
use xinlian_core::execute::{Consortium, Rejection};
use xinlian_core::mempool::{AdmissionError, Mempool};
use xinlian_core::overlay::{StateError, StateRead};

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
    /// The store engine's block cache. Bounded, a node's memory stays flat as the
    /// ledger grows (measured in docs/performance.md and docs/storage.md).
    pub cache_bytes: u64,
    /// The API's admission control (connections, rates, requests in flight, heavy
    /// reads): docs/api.md, "Limits and overload".
    pub api: ApiLimits,
    /// Serve the API over TLS with this configuration (`--tls-cert`, `--tls-key`).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Where the public reaches the web pages (`api.public_url`), for batch labels.
    pub public_url: Option<String>,
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
            api: ApiLimits::default(),
            tls: None,
            public_url: None,
        }
    }
}

/// A record whose stateless checks and signature have passed: the API checks them on
/// its own threads, so the consensus thread admits it without a signature check and
/// junk never reaches it.
pub struct VerifiedRecord(EncodedRecord);

impl VerifiedRecord {
    /// `rec`, if it passes every stateless check under `chain`, signature included.
    pub fn check(rec: EncodedRecord, chain: &Hash32) -> Result<VerifiedRecord, Rejection> {
        check_stateless(&rec, chain)?;
        Ok(VerifiedRecord(rec))
    }

    pub fn id(&self) -> RecordId {
        self.0.id()
    }

    /// `records` with their verdicts from [`check_stateless_batch`]: the ones that
    /// passed, verified; the others, their rejection.
    pub fn check_all(
        records: Vec<EncodedRecord>,
        chain: &Hash32,
    ) -> Vec<Result<VerifiedRecord, (RecordId, Rejection)>> {
        let verdicts = check_stateless_batch(&records, chain);
        records
            .into_iter()
            .zip(verdicts)
            .map(|(r, v)| match v {
                Ok(()) => Ok(VerifiedRecord(r)),
                Err(e) => Err((r.id(), Rejection::from(e))),
            })
            .collect()
    }
}

pub enum Command {
    Submit {
        record: Box<VerifiedRecord>,
        reply: oneshot::Sender<Result<RecordId, AdmissionError>>,
    },
    /// Records admitted one after another, each answered.
    SubmitMany {
        records: Vec<VerifiedRecord>,
        reply: oneshot::Sender<Vec<Result<RecordId, AdmissionError>>>,
    },
    Pending {
        id: RecordId,
        reply: oneshot::Sender<Option<SignedRecord>>,
    },
    /// The mempool's size and the height the node is syncing to, if behind.
    Progress { reply: oneshot::Sender<Progress> },
    /// Push a record's private data to member's node `to` (`crate::private`).
    PrivateSend {
        to: PublicKey,
        data: Box<xinlian_client::private::PrivateData>,
    },
    /// Answer a peer's push (`from`: struck if it pushed data its record refutes).
    PrivateAnswer {
        from: PublicKey,
        ticket: crate::net::SyncTicket,
        answer: crate::private::PrivateAnswer,
    },
}

/// What `/v1/status` asks the host for.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub mempool_records: usize,
    pub syncing_to: Option<u64>,
    pub round: Option<u32>,
    /// Members' nodes' announced heights, by node key (bounded by the roster).
    pub peers: Vec<(PublicKey, u64)>,
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
    pub metrics: Arc<Metrics>,
    /// Records' private data this node's member is entitled to (docs/privacy.md).
    pub private: Arc<crate::store::private::PrivateStore>,
    /// Where the public reaches the web pages; `None`: where a label was asked for.
    pub public_url: Option<Arc<str>>,
    /// Whether the API is served over TLS (the scheme of such an address).
    pub tls: bool,
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

/// Sync requests read from the store at once, one per asking node; more are answered
/// "busy".
const SYNC_READS_MAX: usize = 2;

/// How often disconnected peers are dialled again.
const REDIAL: Duration = Duration::from_secs(2);
/// Longest a relayed record waits for others to share its gossip message.
const RELAY_LINGER: Duration = Duration::from_millis(10);

/// Opens the store, starts the consensus thread (the replica, the network and their
/// timers), serves the API on `listener` from the calling runtime, and runs until
/// `shutdown` resolves or the consensus thread stops. The consensus thread inherits
/// the scheduling priority of the thread that polls this first (the command line's
/// main thread, not the API's lowered workers).
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

    let (consortium_tx, consortium_rx) = watch::channel(consortium.clone());
    let (tip_tx, tip_rx) = watch::channel(tip.clone());
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMANDS_MAX);
    let metrics = Arc::new(Metrics::new());
    metrics
        .height
        .set(i64::try_from(tip.height).unwrap_or(i64::MAX));
    let shared = Shared {
        metrics: metrics.clone(),
        genesis: genesis.clone(),
        consortium: consortium_rx,
        store: store.clone(),
        tip: tip_rx,
        commands: cmd_tx,
        node_key: node_pk,
        private: Arc::new(crate::store::private::PrivateStore::open(&config.data_dir)?),
        public_url: config.public_url.as_deref().map(Arc::from),
        tls: config.tls.is_some(),
    };
    let desk = crate::private::spawn(shared.clone(), shared.private.clone());
    let (stop_tx, stop_rx) = oneshot::channel();
    let consensus = Consensus {
        genesis,
        store,
        tip,
        consortium,
        node_key: config.node_key,
        p2p_listen: config.p2p_listen,
        peers: config.peers,
        mempool: Mempool::new(config.mempool_records_max, config.mempool_bytes_max),
        tip_tx,
        consortium_tx,
        metrics,
        desk: desk.clone(),
    };
    let mut done = consensus.spawn(cmd_rx, stop_rx)?;
    let access = crate::api::access::AccessLog::open(&config.data_dir)?;
    let api = ApiServer::start(
        listener,
        shared,
        &config.api,
        access,
        desk,
        config.tls.clone(),
    )
    .context("starting the API")?;
    let result = tokio::select! {
        _ = shutdown => {
            let _ = stop_tx.send(());
            (&mut done).await
        }
        r = &mut done => r,
    };
    api.shutdown().await?;
    result.unwrap_or_else(|_| Err(anyhow::anyhow!("the consensus thread panicked")))
}

/// Everything the consensus thread starts from.
struct Consensus {
    genesis: Arc<Genesis>,
    store: Arc<Store>,
    tip: Tip,
    consortium: Arc<Consortium>,
    node_key: SigningKey,
    p2p_listen: PeerAddress,
    peers: Vec<PeerAddress>,
    mempool: Mempool,
    tip_tx: watch::Sender<Tip>,
    consortium_tx: watch::Sender<Arc<Consortium>>,
    metrics: Arc<Metrics>,
    desk: mpsc::Sender<crate::private::DeskMsg>,
}

impl Consensus {
    /// Runs the replica and the network on an OS thread of their own with a
    /// single-threaded runtime, so that no amount of API work can delay a vote; the
    /// receiver gets the loop's result when it ends.
    fn spawn(
        self,
        commands: mpsc::Receiver<Command>,
        stop: oneshot::Receiver<()>,
    ) -> Result<oneshot::Receiver<Result<()>>> {
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(SYNC_READS_MAX)
                    .build()
                    .context("starting the consensus runtime")
                    .and_then(|rt| rt.block_on(self.run(commands, stop)));
                let _ = done_tx.send(result);
            })
            .context("starting the consensus thread")?;
        Ok(done_rx)
    }

    async fn run(
        self,
        commands: mpsc::Receiver<Command>,
        stop: oneshot::Receiver<()>,
    ) -> Result<()> {
        let net = Network::new(
            &self.genesis,
            &self.consortium.roster,
            &self.node_key,
            self.p2p_listen,
            self.metrics.clone(),
        )?;
        let timeouts = Timeouts::for_node(self.consortium.policy().block_interval_ms);
        let scrub_to = self.tip.height;
        let (replica, actions) = Replica::new(
            self.consortium,
            self.node_key,
            TimedStore {
                store: self.store.clone(),
                metrics: self.metrics.clone(),
            },
            self.tip,
            timeouts,
            self.mempool,
            now_ms(),
        )?;
        let (sync_tx, sync_rx) = mpsc::channel(SYNC_READS_MAX);
        let (damage_tx, damage_rx) = mpsc::channel(DAMAGE_REPORTS_QUEUED);
        let (warmed_tx, warmed_rx) = mpsc::channel(SYNC_READS_MAX);
        spawn_scrub(self.store.clone(), scrub_to, damage_tx.clone())?;
        let mut host = Host {
            replica,
            net,
            store: self.store,
            peers: self.peers,
            timers: HashMap::new(),
            tip_tx: self.tip_tx,
            consortium_tx: self.consortium_tx,
            relay: Vec::new(),
            relay_bytes: 0,
            sync_reading: HashSet::new(),
            sync_done: sync_tx,
            damage: damage_tx,
            sync_asked: HashMap::new(),
            warmed: warmed_tx,
            metrics: self.metrics,
            last_commit: None,
            desk: self.desk,
        };
        host.apply(actions);
        host.run(commands, sync_rx, damage_rx, warmed_rx, async {
            let _ = stop.await;
        })
        .await
    }
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
    replica: Replica<TimedStore>,
    net: Network,
    /// The store, read off this thread to serve sync requests.
    store: Arc<Store>,
    peers: Vec<PeerAddress>,
    timers: HashMap<Timer, Instant>,
    tip_tx: watch::Sender<Tip>,
    consortium_tx: watch::Sender<Arc<Consortium>>,
    /// Records waiting to be relayed in one batch, and their size.
    relay: Vec<Vec<u8>>,
    relay_bytes: usize,
    /// Sync requests being read from the store on blocking threads, and where their
    /// answers come back.
    /// The nodes whose sync request is being read from the store.
    sync_reading: HashSet<PublicKey>,
    sync_done: mpsc::Sender<(SyncTicket, PublicKey, NetMsg)>,
    /// Where reads report damaged history (height, what), for the replica to repair.
    damage: mpsc::Sender<(u64, String)>,
    /// When each peer was last sent a sync request (for the log's timings; bounded by
    /// the roster).
    sync_asked: HashMap<PublicKey, (Instant, u64)>,
    /// Where answers to our sync requests come back once their signatures are checked,
    /// with how long after the request they came and how long the check took.
    warmed: mpsc::Sender<(PublicKey, NetMsg, SyncTimes)>,
    metrics: Arc<Metrics>,
    /// When the last block was stored here (for the time per height).
    last_commit: Option<Instant>,
    /// Where private-data pushes from peers, and answers to ours, go.
    desk: mpsc::Sender<crate::private::DeskMsg>,
}

impl Host {
    /// The event loop: until `shutdown` resolves or a step fails.
    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        mut synced: mpsc::Receiver<(SyncTicket, PublicKey, NetMsg)>,
        mut damaged: mpsc::Receiver<(u64, String)>,
        mut warmed: mpsc::Receiver<(PublicKey, NetMsg, SyncTimes)>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.net.redial(&self.peers);
        let mut redial = tokio::time::interval(REDIAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut relay = tokio::time::interval(RELAY_LINGER);
        relay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            self.observe();
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
                Some((ticket, asker, answer)) = synced.recv() => {
                    self.sync_reading.remove(&asker);
                    self.net.answer_sync(ticket, &answer);
                }
                Some((from, msg, times)) = warmed.recv() => self.deliver(from, msg, Some(times))?,
                Some((height, what)) = damaged.recv() => {
                    let actions = self.replica.history_damaged(now_ms(), height, &what);
                    self.apply(actions);
                }
                _ = sleep => self.fire_timers()?,
                _ = redial.tick() => self.net.redial(&self.peers),
                _ = relay.tick() => self.flush_relay(),
            }
        }
    }

    /// The gauges the loop reads off the replica, once per event.
    fn observe(&self) {
        let m = &self.metrics;
        m.round.set(self.replica.round().map_or(-1, i64::from));
        m.mempool_records
            .set(i64::try_from(self.replica.mempool().len()).unwrap_or(i64::MAX));
    }

    fn command(&mut self, cmd: Command) -> Result<()> {
        match cmd {
            Command::Submit { record, reply } => {
                let (out, actions) = self.replica.submit_verified(now_ms(), record.0);
                let _ = reply.send(out);
                self.apply(actions);
            }
            Command::SubmitMany { records, reply } => {
                // Once the mempool is full the rest are refused untried, so that what
                // a request gets in keeps its order: none is admitted after one that
                // was turned away for want of room.
                let mut answers: Vec<Result<RecordId, AdmissionError>> =
                    Vec::with_capacity(records.len());
                for record in records {
                    if let Some(Err(full @ AdmissionError::Full(_))) = answers.last() {
                        let full = full.clone();
                        answers.push(Err(full));
                        continue;
                    }
                    let (out, actions) = self.replica.submit_verified(now_ms(), record.0);
                    answers.push(out);
                    self.apply(actions);
                }
                let _ = reply.send(answers);
            }
            Command::Pending { id, reply } => {
                let _ = reply.send(self.replica.mempool().get(&id).map(|r| r.record().clone()));
            }
            Command::Progress { reply } => {
                let _ = reply.send(Progress {
                    mempool_records: self.replica.mempool().len(),
                    syncing_to: self.replica.sync_target(),
                    round: self.replica.round(),
                    peers: self.replica.peer_heights().map(|(k, h)| (*k, h)).collect(),
                });
            }
            Command::PrivateSend { to, data } => {
                // Not sent (not a member's node now, too many unanswered): the desk's
                // retry comes due.
                let _ = self.net.send_private(&to, &data);
            }
            Command::PrivateAnswer {
                from,
                ticket,
                answer,
            } => {
                if let crate::private::PrivateAnswer::Refused { code, .. } = &answer
                    && code == "private_mismatch"
                {
                    self.net
                        .penalise(&from, "pushed private data its record refutes", "private");
                }
                self.net.answer_private(ticket, &answer);
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
            if let Timer::Consensus(timeout) = t {
                let step = match timeout.kind {
                    TimeoutKind::Propose => "propose",
                    TimeoutKind::Prevote => "prevote",
                    TimeoutKind::Precommit => "precommit",
                    TimeoutKind::Rebroadcast => "rebroadcast",
                    TimeoutKind::FinalizeHeight(_) => "finalize_height",
                };
                self.metrics
                    .timeouts
                    .get_or_create(&StepLabel { step })
                    .inc();
            }
            let actions = self.replica.on_timer(now_ms(), t)?;
            self.apply(actions);
        }
        Ok(())
    }

    /// An answer to our sync request goes to the replica once its records' signatures
    /// are checked on every core (a blocking task), so that executing it finds them in
    /// the verified-signature memo instead of checking them on this one thread. Only
    /// the memo is changed: the replica checks every signature itself, and a bad one
    /// is simply not remembered. Only the first answer from a peer after each request
    /// is warmed (the request is forgotten here), so a peer that floods answers gets
    /// no more work done on every core than it was asked for.
    /// Only the `max` blocks asked for are checked (a repair asks for one; a peer may
    /// answer with more).
    fn warm_signatures(&mut self, from: PublicKey, msg: NetMsg, asked: Instant, max: u64) {
        let waited = asked.elapsed();
        let warmed = self.warmed.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            if let NetMsg::SyncResponse { blocks } = &msg {
                let asked_for = usize::try_from(max).unwrap_or(usize::MAX).min(blocks.len());
                warm_signature_memo(&blocks[..asked_for]);
            }
            let times = SyncTimes {
                waited,
                signatures: started.elapsed(),
            };
            // The loop holds the receiver while it runs; after it, nobody is waiting.
            let _ = warmed.blocking_send((from, msg, times));
        });
    }

    fn deliver(&mut self, from: PublicKey, msg: NetMsg, sync: Option<SyncTimes>) -> Result<()> {
        let answer = match (&msg, sync) {
            (NetMsg::SyncResponse { blocks }, Some(times)) => {
                let records: usize = blocks.iter().map(|(b, _)| b.records.len()).sum();
                Some((times, blocks.len(), records))
            }
            _ => None,
        };
        let started = Instant::now();
        let kind = KindLabel { kind: msg.kind() };
        let actions = self.replica.on_message(now_ms(), from, msg)?;
        self.metrics.messages_received.get_or_create(&kind).inc();
        self.metrics
            .message_seconds
            .get_or_create(&kind)
            .observe(started.elapsed().as_secs_f64());
        // Where a syncing node's time goes, at this edge: waiting for an answer,
        // checking its signatures, and applying it (certificates, execution, one commit).
        if let Some((times, blocks, records)) = answer {
            let m = &self.metrics;
            m.synced_blocks.inc_by(blocks as u64);
            m.synced_records.inc_by(records as u64);
            m.sync_apply_seconds
                .observe(started.elapsed().as_secs_f64());
            let height = self.replica.tip().height;
            let target = self.replica.sync_target().unwrap_or(height);
            m.sync_target_height
                .set(i64::try_from(target).unwrap_or(i64::MAX));
            tracing::info!(
                height,
                target,
                behind = target - height,
                blocks,
                records,
                waited_us = times.waited.as_micros() as u64,
                signatures_us = times.signatures.as_micros() as u64,
                applied_us = started.elapsed().as_micros() as u64,
                "sync answer"
            );
        }
        self.apply(actions);
        Ok(())
    }

    fn net_event(&mut self, event: NetEvent) -> Result<()> {
        match event {
            NetEvent::Listening(address) => {
                // Tests and scripts read this line to dial this node.
                println!("xinlian-node: p2p listening on {address}");
            }
            NetEvent::Message {
                from,
                msg: msg @ NetMsg::SyncResponse { .. },
            } => match self.sync_asked.remove(&from) {
                Some((asked, max)) => self.warm_signatures(from, msg, asked, max),
                None => self.deliver(from, msg, None)?,
            },
            NetEvent::Message { from, msg } => self.deliver(from, msg, None)?,
            NetEvent::SyncRequest {
                from,
                first,
                max,
                ticket,
            } => self.serve_sync(from, first, max, ticket),
            NetEvent::PartsRequest {
                from,
                block,
                leaves,
                ticket,
            } => {
                let answer = self.replica.answer_parts(from, block, &leaves);
                self.net.answer_sync(ticket, &answer);
            }
            // What it claimed about its height goes with it (see the replica's sync).
            NetEvent::PeerGone(peer) => self.replica.peer_gone(&peer),
            NetEvent::PrivatePush { from, data, ticket } => {
                let msg = crate::private::DeskMsg::Pushed { from, data, ticket };
                if self.desk.try_send(msg).is_err() {
                    self.net
                        .answer_private(ticket, &crate::private::PrivateAnswer::busy());
                }
            }
            NetEvent::PrivateAnswered {
                from,
                record,
                answer,
            } => {
                // A full desk drops it: the push is retried from its queue.
                let _ = self.desk.try_send(crate::private::DeskMsg::Answered {
                    from,
                    record,
                    answer,
                });
            }
        }
        Ok(())
    }

    /// Answers a sync request from the store on a blocking thread, with the bounds of
    /// the replica's own `serve_sync`: consensus never waits for a peer's catching up.
    /// With `SYNC_READS_MAX` reads under way, or one already for the same node (an
    /// honest one asks one thing at a time; a member flooding requests must not take
    /// every read from the others), the answer is "busy" at once: the peer asks
    /// another, and this one later.
    fn serve_sync(&mut self, asker: PublicKey, first: u64, max: u64, ticket: SyncTicket) {
        if self.sync_reading.len() >= SYNC_READS_MAX || !self.sync_reading.insert(asker) {
            self.net.answer_sync(ticket, &NetMsg::SyncBusy);
            return;
        }
        let (store, done) = (self.store.clone(), self.sync_done.clone());
        let damage = self.damage.clone();
        tokio::task::spawn_blocking(move || {
            let blocks = read_blocks(&store, first, max, &damage).unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading blocks to serve a sync request");
                Vec::new()
            });
            // The loop holds the receiver while it runs; after it, nobody is waiting.
            let _ = done.blocking_send((ticket, asker, NetMsg::SyncResponse { blocks }));
        });
    }

    fn observe_commit(&mut self, tip: &Tip, records: usize, synced: bool) {
        let m = &self.metrics;
        m.height.set(i64::try_from(tip.height).unwrap_or(i64::MAX));
        m.blocks_finalized.inc();
        m.records_finalized.inc_by(records as u64);
        if synced {
            // Old blocks: their age says how far behind this node was, not how fast
            // the consortium decides; and the next decision is timed from itself.
            self.last_commit = None;
            return;
        }
        // The proposer's clock, not ours: a skew of a few ms either way.
        let since_proposal_ms = (now_ms() - tip.time_ms).max(0);
        m.finality_seconds
            .observe(since_proposal_ms as f64 / 1000.0);
        let now = Instant::now();
        if let Some(last) = self.last_commit.replace(now) {
            m.height_seconds.observe((now - last).as_secs_f64());
        }
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
                Action::Broadcast(msg) => {
                    // The records a proposal names go out before it, so that peers
                    // have them at hand rather than asking.
                    if matches!(msg, NetMsg::Proposal(_)) {
                        self.flush_relay();
                    }
                    self.net.publish(&msg)
                }
                Action::Relay(bytes) => {
                    if self.relay.len() + 1 > RELAY_RECORDS_MAX
                        || self.relay_bytes + bytes.len() > RELAY_BYTES_MAX
                    {
                        self.flush_relay();
                    }
                    self.relay_bytes += bytes.len();
                    self.relay.push(bytes);
                }
                Action::Send(peer, msg @ NetMsg::SyncRequest { max, .. }) => {
                    self.sync_asked.insert(peer, (Instant::now(), max));
                    self.net.send_request(&peer, msg)
                }
                Action::Send(peer, msg @ NetMsg::PartsRequest { .. }) => {
                    self.net.send_request(&peer, msg)
                }
                // The replica is never handed a sync or parts request (the host serves
                // them), so it has nothing else to send to one peer.
                Action::Send(peer, msg) => {
                    tracing::debug!(%peer, kind = msg.kind(), "unexpected direct message dropped");
                }
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
                Action::Committed {
                    tip,
                    records,
                    synced,
                } => {
                    self.observe_commit(&tip, records.len(), synced);
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
                Action::Penalise {
                    peer,
                    reason,
                    about,
                } => {
                    self.net.penalise(&peer, &reason, about);
                }
            }
        }
    }
}

/// The store as the replica's ledger, timing each commit for the metrics.
struct TimedStore {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

impl TimedStore {
    fn timed(&self, commit: impl FnOnce() -> Result<(), LedgerError>) -> Result<(), LedgerError> {
        let started = Instant::now();
        let result = commit();
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

impl StateRead for TimedStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.store.get(key)
    }
}

impl Ledger for TimedStore {
    fn commit(&self, ex: &Executed, cert: &Certificate) -> Result<(), LedgerError> {
        self.timed(|| self.store.commit(ex, cert))
    }
    fn commit_many(&self, blocks: &[(Executed, Certificate)]) -> Result<(), LedgerError> {
        self.timed(|| self.store.commit_many(blocks))
    }
    fn block_and_certificate(
        &self,
        height: u64,
    ) -> Result<Option<(Block, Certificate)>, LedgerError> {
        self.store.block_and_certificate(height)
    }
    fn wal_append(&self, height: u64, entry: &WalEntry, durability: Durability) -> LedgerResult {
        self.store.wal_append(height, entry, durability)
    }
    fn wal(&self, height: u64) -> Result<Vec<WalEntry>, LedgerError> {
        self.store.wal(height)
    }
    fn repair(
        &self,
        block: &Block,
        certificate: &Certificate,
    ) -> Result<RepairOutcome, LedgerError> {
        self.store.repair(block, certificate)
    }
}

/// The blocks after `first` (at most `max`, and at most `SYNC_BLOCKS_MAX` blocks or
/// about `SYNC_BYTES_MAX` bytes) with their certificates: the bounds of the replica's
/// `serve_sync`. A block once stored changes only where it was damaged and is written
/// again (whole, each entry under its checksum), so no lock is needed. A damaged block
/// is never served: the answer stops before it, and it is reported for repair.
fn read_blocks(
    store: &Store,
    first: u64,
    max: u64,
    damage: &mpsc::Sender<(u64, String)>,
) -> Result<Vec<(Block, Certificate)>> {
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    let last = first.saturating_add(max.min(SYNC_BLOCKS_MAX));
    for h in first..last {
        let (b, c) = match Ledger::block_and_certificate(store, h) {
            Ok(Some(found)) => found,
            Ok(None) => break,
            Err(LedgerError::Damaged { height, what }) => {
                // A full queue drops the report: the scrub at the next start finds it.
                let _ = damage.try_send((height, what));
                break;
            }
            Err(e) => return Err(e.into()),
        };
        bytes += xinlian_genesis::canonical::encode(&b).len();
        blocks.push((b, c));
        if bytes >= SYNC_BYTES_MAX {
            break;
        }
    }
    Ok(blocks)
}

/// Damage reports waiting for the consensus loop; more are dropped (and found again).
const DAMAGE_REPORTS_QUEUED: usize = 64;

/// Reads back, at every start and on a thread of its own, the history of every block
/// up to `tip`, so that damage is found and repaired from peers while the node runs
/// rather than when someone asks for the damaged block. Damaged Merkle nodes are
/// written again from the records below them; damaged records and block entries
/// (header and certificate) are reported to the replica, which asks a peer for a copy.
fn spawn_scrub(store: Arc<Store>, tip: u64, damage: mpsc::Sender<(u64, String)>) -> Result<()> {
    std::thread::Builder::new()
        .name("scrub".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let mut found = 0u64;
            let mut mended = 0;
            for height in 1..=tip {
                // Merkle nodes are ours to compute again: mended here, no peer needed.
                match store.mend_nodes(height) {
                    Ok(0) => {}
                    Ok(n) => {
                        mended += n;
                        tracing::warn!(height, nodes = n, "damaged Merkle nodes written again from the records");
                    }
                    Err(e) if e.is_damage() => {
                        tracing::warn!(height, error = %e, "damaged Merkle nodes not computable yet: what they are computed from is damaged too");
                    }
                    Err(e) => {
                        tracing::error!(height, error = %e, "scrub stopped: the history cannot be mended");
                        return;
                    }
                }
                match store.block_health(height) {
                    Ok(BlockHealth::Intact | BlockHealth::Absent) => {}
                    Ok(BlockHealth::RecordsDamaged(what) | BlockHealth::EntryDamaged(what)) => {
                        found += 1;
                        if damage.blocking_send((height, what)).is_err() {
                            return; // the node is stopping
                        }
                    }
                    Err(e) => {
                        tracing::error!(height, error = %e, "scrub stopped: the history cannot be read");
                        return;
                    }
                }
            }
            tracing::info!(
                blocks = tip,
                damaged = found,
                nodes_mended = mended,
                ms = started.elapsed().as_millis() as u64,
                "history read back"
            );
        })
        .context("starting the scrub thread")?;
    Ok(())
}

/// How long an answer to a sync request took to come, and to have its signatures checked.
#[derive(Clone, Copy)]
struct SyncTimes {
    waited: Duration,
    signatures: Duration,
}

/// Checks the signatures of the records in `blocks` in batches spread over the cores,
/// for the verified-signature memo only (the results are not used: the replica checks
/// every signature itself when it executes the blocks).
fn warm_signature_memo(blocks: &[(Block, Certificate)]) {
    // The first records in the order they are applied, no more than the memo surely
    // keeps, with room for what is checked meanwhile (certificates, votes): checking
    // more would evict the first ones before they are used.
    let records: Vec<&SignedRecord> = blocks
        .iter()
        .flat_map(|(b, _)| &b.records)
        .take(xinlian_client::crypto::REMEMBERED_AT_LEAST / 2)
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = records.len().div_ceil(cores).max(1);
    std::thread::scope(|s| {
        for part in records.chunks(chunk) {
            s.spawn(move || {
                let _ = xinlian_client::crypto::verify_batch(part.iter().map(|r| {
                    (
                        &r.envelope.signer,
                        xinlian_client::crypto::Domain::Record
                            .message(&r.envelope.canonical_bytes()),
                        &r.signature,
                    )
                }));
            });
        }
    });
}
