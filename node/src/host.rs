//! The node's event loop: the one owner of the mempool and of block production, fed by
//! API commands and a block timer. It is the IO edge: it reads the clock, signs with
//! the node key and writes to the store; the rules it applies live in `chain`,
//! `execute` and `mempool`.
//!
//! Finality today: the consortium's validator set must be a single validator, whose
//! precommit alone is a quorum; its certificate is checked by the same
//! `verify_certificate` any client uses. Multi-validator agreement (Malachite's
//! Tendermint core over libp2p) replaces `decide` when consensus lands (issue #3).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::{mpsc, oneshot, watch};
use xinlian_client::block::{Certificate, CommitSignature, Precommit, verify_certificate};
use xinlian_client::record::{EncodedRecord, RecordId, SignedRecord};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Genesis, Role};

use crate::chain::{Executed, Tip, build_block};
use crate::execute::{Consortium, ExecError, Rejection};
use crate::mempool::Mempool;
use crate::store::Store;

pub struct NodeConfig {
    pub genesis: Genesis,
    pub data_dir: PathBuf,
    pub node_key: SigningKey,
    /// Bounds of the pending-record queue.
    pub mempool_records_max: usize,
    pub mempool_bytes_max: usize,
}

impl NodeConfig {
    pub fn new(genesis: Genesis, data_dir: PathBuf, node_key: SigningKey) -> Self {
        NodeConfig {
            genesis,
            data_dir,
            node_key,
            mempool_records_max: 100_000,
            mempool_bytes_max: 256 << 20,
        }
    }
}

pub enum Command {
    Submit {
        record: Box<EncodedRecord>,
        reply: oneshot::Sender<Result<RecordId, Rejection>>,
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
    pub consortium: Arc<Consortium>,
    pub store: Arc<Store>,
    pub tip: watch::Receiver<Tip>,
    pub commands: mpsc::Sender<Command>,
    pub member: String,
    pub validator: bool,
}

/// Queue of API commands waiting for the host.
const COMMANDS_MAX: usize = 4096;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Opens the store, starts the API on `listener`, and runs until `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let consortium = Arc::new(Consortium::new(config.genesis));
    let node_pk = public_key(&config.node_key);
    let member = consortium
        .genesis
        .member_by_node_key(&node_pk)
        .with_context(|| format!("node key {node_pk} is not any member's node_key in the genesis"))?
        .clone();
    let validator = member.has(&Role::Validator);
    if !validator {
        bail!(
            "member '{}' is not a validator; observers replicate from validators, which arrives with consensus (issue #3)",
            member.id
        );
    }
    if consortium.validators.len() != 1 {
        bail!(
            "this genesis has {} validators; agreement among several arrives with consensus (issue #3). Use a single-validator genesis for now",
            consortium.validators.len()
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let (store, tip) = Store::open(&config.data_dir.join("ledger"), &consortium)?;
    let store = Arc::new(store);
    tracing::info!(member = %member.id, height = tip.height, ledger_size = tip.frontier.size(), "store opened");

    let (tip_tx, tip_rx) = watch::channel(tip.clone());
    let (cmd_tx, mut cmd_rx) = mpsc::channel(COMMANDS_MAX);
    let shared = Shared {
        consortium: consortium.clone(),
        store: store.clone(),
        tip: tip_rx,
        commands: cmd_tx,
        member: member.id.clone(),
        validator,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let api = tokio::spawn({
        let mut stop_rx = stop_rx.clone();
        let app = crate::api::router(shared);
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await
        }
    });

    let mut host = Host {
        consortium,
        store,
        mempool: Mempool::new(config.mempool_records_max, config.mempool_bytes_max),
        tip,
        key: config.node_key,
        tip_tx,
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(
        host.consortium.genesis.policy.block_interval_ms,
    ));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            Some(cmd) = cmd_rx.recv() => host.command(cmd),
            _ = ticker.tick() => {
                if !host.mempool.is_empty() && let Err(e) = host.produce_block() {
                    break Err(e);
                }
            }
        }
    };
    let _ = stop_tx.send(true);
    drop(stop_rx);
    api.await.context("API task")?.context("API server")?;
    result
}

struct Host {
    consortium: Arc<Consortium>,
    store: Arc<Store>,
    mempool: Mempool,
    tip: Tip,
    key: SigningKey,
    tip_tx: watch::Sender<Tip>,
}

impl Host {
    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { record, reply } => {
                let out = match self.mempool.admit(
                    &*self.store,
                    &self.consortium,
                    &self.tip,
                    now_ms(),
                    *record,
                ) {
                    Ok(id) => Ok(id),
                    Err(ExecError::Rejected(r)) => Err(r),
                    Err(ExecError::State(e)) => {
                        tracing::error!(error = %e, "state read failed during admission");
                        Err(Rejection::Storage(e.to_string()))
                    }
                };
                let _ = reply.send(out);
            }
            Command::Pending { id, reply } => {
                let _ = reply.send(self.mempool.get(&id).map(|r| r.record().clone()));
            }
            Command::MempoolLen { reply } => {
                let _ = reply.send(self.mempool.len());
            }
        }
    }

    fn produce_block(&mut self) -> Result<()> {
        let started = std::time::Instant::now();
        let time_ms = now_ms().max(self.tip.time_ms + 1);
        let proposer = public_key(&self.key);
        let (ex, rejected) = build_block(
            &*self.store,
            &self.consortium,
            &self.tip,
            proposer,
            time_ms,
            self.mempool.records(),
        )?;
        for (id, why) in &rejected {
            tracing::warn!(%id, %why, "pending record no longer valid at block time");
        }
        let cert = self.decide(&ex)?;
        self.store.commit(&ex, &cert)?;
        let included: HashSet<RecordId> = ex.records.iter().map(EncodedRecord::id).collect();
        self.tip = ex.tip.clone();
        for (id, why) in self.mempool.recheck(
            &*self.store,
            &self.consortium,
            &self.tip,
            now_ms(),
            &included,
        )? {
            tracing::warn!(%id, %why, "dropped from mempool after block");
        }
        tracing::info!(
            height = self.tip.height,
            records = included.len(),
            ledger_size = self.tip.frontier.size(),
            ms = started.elapsed().as_millis() as u64,
            "block finalized"
        );
        self.tip_tx.send_replace(self.tip.clone());
        Ok(())
    }

    /// Finality for a one-validator set: this validator's precommit is the quorum.
    fn decide(&self, ex: &Executed) -> Result<Certificate> {
        let h = &ex.header;
        let vs = &self.consortium.validators;
        let me = public_key(&self.key);
        let index = vs
            .index_of(&me)
            .context("this node is not in the validator set")?;
        let vote = Precommit {
            chain: h.chain,
            height: h.height,
            round: 0,
            block: h.hash(),
            validator: me,
        };
        let cert = Certificate {
            height: h.height,
            round: 0,
            block: h.hash(),
            signatures: vec![CommitSignature {
                validator: index as u16,
                signature: vote.sign(&self.key),
            }],
        };
        verify_certificate(h, &cert, vs).context("own certificate must verify")?;
        Ok(cert)
    }
}
