//! Private data on this node (docs/privacy.md § Private data): taken in from the API
//! and from the nodes of entitled members, checked against the final record, kept in
//! the private-data store, pushed to the other entitled members' nodes (with retries),
//! and purged once an erasure decision is final. Its disk work runs on blocking
//! threads of the API's runtime; the consensus thread only carries its messages
//! ([`crate::net`]'s private protocol, never gossip).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use xinlian_client::disclosure::{Members, Reader};
use xinlian_client::private::{self, PrivateData};
use xinlian_client::record::{Body, RecordId};
use xinlian_client::state::{self as st, key};
use xinlian_genesis::PublicKey;

use crate::audience::View;
use crate::host::{Command, Shared};
use crate::net::SyncTicket;
use crate::store::private::PrivateStore;

/// What one node sends another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrivateRequest {
    Push(PrivateData),
}

/// What it answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrivateAnswer {
    Stored,
    Refused { code: String, message: String },
}

impl PrivateAnswer {
    pub fn busy() -> PrivateAnswer {
        PrivateAnswer::Refused {
            code: "busy".into(),
            message: "too many pushes open; retry".into(),
        }
    }
}

/// Why private data was not taken in: a code for the API and for peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// The member this node is, by its node key in the roster in force.
pub fn own_member(s: &Shared) -> Option<String> {
    s.consortium()
        .roster
        .members
        .iter()
        .find(|m| m.node_key == Some(s.node_key))
        .map(|m| m.id.clone())
}

/// Checks `data` against its final record and keeps it, if this node's member is
/// entitled to it. Returns the node keys of the other entitled members' nodes, to push
/// it to. Blocking: call it on a blocking thread.
pub fn take_in(
    s: &Shared,
    store: &PrivateStore,
    data: &PrivateData,
) -> Result<Vec<(String, PublicKey)>, Refusal> {
    let storage = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "private data: storage");
        refusal(
            "storage",
            "this node's store failed; the cause is in its log",
        )
    };
    let id = data.record;
    let Some((_, index)) = s.store.locate(&id).map_err(|e| storage(&e))? else {
        return Err(refusal(
            "not_final",
            format!("record {id} is not final on this node"),
        ));
    };
    if let Some(e) = s
        .store
        .state_value::<st::ErasureState>(&key::erasure(&id))
        .map_err(|e| storage(&e))?
    {
        return Err(refusal(
            "erased",
            format!("the private data of {id} was ordered erased by {}", e.erase),
        ));
    }
    let record = s
        .store
        .record_at(index)
        .map_err(|e| storage(&e))?
        .ok_or_else(|| storage(&"record missing"))?;
    private::check(&record, data).map_err(|e| refusal("private_mismatch", e.to_string()))?;
    let me = own_member(s).ok_or_else(|| refusal("not_entitled", "this node is no member's"))?;
    let reader = Reader::Member(me.clone());
    let view = View::new(s, &reader).map_err(|e| storage(&e))?;
    let audience = view.private_audience(&record).map_err(|e| storage(&e))?;
    let entitled = |m: &str| match &audience.members {
        Members::All => true,
        Members::Named(ids) => ids.iter().any(|i| i == m),
    };
    if !entitled(&me) {
        return Err(refusal(
            "not_entitled",
            format!("member {me}, whose node this is, may not hold the private data of {id}"),
        ));
    }
    store.put(data).map_err(|e| storage(&e))?;
    // An erasure final between the check above and the write: undo the write (the
    // desk's purge of that block may have run before it).
    if s.store
        .state_value::<st::ErasureState>(&key::erasure(&id))
        .map_err(|e| storage(&e))?
        .is_some()
    {
        store.purge(&id).map_err(|e| storage(&e))?;
        return Err(refusal(
            "erased",
            format!("the private data of {id} was ordered erased"),
        ));
    }
    Ok(s.consortium()
        .roster
        .members
        .iter()
        .filter(|m| m.id != me && entitled(&m.id))
        .filter_map(|m| m.node_key.map(|k| (m.id.clone(), k)))
        .collect())
}

/// What the desk is told.
pub enum DeskMsg {
    /// Push `data` to these members' nodes.
    Send {
        data: PrivateData,
        to: Vec<PublicKey>,
    },
    /// A peer's push, to answer through the host.
    Pushed {
        from: PublicKey,
        data: PrivateData,
        ticket: SyncTicket,
    },
    /// A peer's answer to our push.
    Answered {
        from: PublicKey,
        record: RecordId,
        answer: Option<PrivateAnswer>,
    },
}

/// Pushes under way at most; beyond, new ones are not sent (logged): a member's node
/// that misses one gets the data when it is uploaded again.
const RETRIES_QUEUED_MAX: usize = 10_000;
/// Attempts per push, the first retry a second after the push's time-out, doubling
/// (about eight minutes in all).
const ATTEMPTS_MAX: u32 = 9;
/// How long the network waits for a push's answer (`net`'s private protocol).
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
const PURGE_EVERY: Duration = Duration::from_millis(200);
/// Blocks read for erasure decisions per tick.
const PURGE_BLOCKS_MAX: u64 = 256;

struct Pending {
    data: Arc<PrivateData>,
    attempts: u32,
}

/// Starts the desk on the current runtime: it answers peers' pushes, pushes ours and
/// retries them, and purges what erasure decisions name as blocks become final.
pub fn spawn(s: Shared, store: Arc<PrivateStore>) -> mpsc::Sender<DeskMsg> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(s, store, rx));
    tx
}

async fn run(s: Shared, store: Arc<PrivateStore>, mut rx: mpsc::Receiver<DeskMsg>) {
    // (record, node) → what to send and how often it was; when each is due again.
    let mut pending: HashMap<(RecordId, PublicKey), Pending> = HashMap::new();
    let mut due: BTreeMap<(Instant, u64), (RecordId, PublicKey)> = BTreeMap::new();
    let mut seq = 0u64;
    let mut purged_to = 0u64;
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each push is sent, then due again after its back-off unless an answer settled it:
    // a lost answer, a full queue or an unreachable node all end in a retry.
    let mut attempt = |pending: &mut HashMap<_, Pending>,
                       due: &mut BTreeMap<_, _>,
                       k: (RecordId, PublicKey)| {
        let Some(p) = pending.get_mut(&k) else { return };
        if p.attempts >= ATTEMPTS_MAX {
            tracing::warn!(peer = %k.1, record = %k.0, "private data: giving up after {ATTEMPTS_MAX} attempts");
            pending.remove(&k);
            return;
        }
        p.attempts += 1;
        send(&s, k.1, &p.data);
        seq += 1;
        let wait = PUSH_TIMEOUT + Duration::from_secs(1 << (p.attempts - 1));
        due.insert((Instant::now() + wait, seq), k);
    };
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                match msg {
                    DeskMsg::Send { data, to } => {
                        let data = Arc::new(data);
                        for k in to {
                            if pending.len() >= RETRIES_QUEUED_MAX {
                                tracing::warn!(record = %data.record, "private data: too many pushes under way; one not sent");
                                continue;
                            }
                            let key = (data.record, k);
                            // Already under way: the same push, not a second chain of
                            // retries (nor a fresh count of attempts).
                            if pending.contains_key(&key) {
                                continue;
                            }
                            pending.insert(key, Pending { data: data.clone(), attempts: 0 });
                            attempt(&mut pending, &mut due, key);
                        }
                    }
                    DeskMsg::Pushed { from, data, ticket } => {
                        let (s2, store2, commands) = (s.clone(), store.clone(), s.commands.clone());
                        tokio::spawn(async move {
                            let answer = match tokio::task::spawn_blocking(move || take_in(&s2, &store2, &data)).await {
                                Ok(Ok(_)) => PrivateAnswer::Stored,
                                Ok(Err(r)) => {
                                    tracing::info!(peer = %from, code = r.code, "private data from a peer refused: {}", r.message);
                                    PrivateAnswer::Refused { code: r.code.into(), message: r.message }
                                }
                                Err(_) => PrivateAnswer::busy(),
                            };
                            // Waits for room: a dropped answer would hold the push open.
                            let _ = commands.send(Command::PrivateAnswer { from, ticket, answer }).await;
                        });
                    }
                    DeskMsg::Answered { from, record, answer } => match answer {
                        Some(PrivateAnswer::Stored) => {
                            pending.remove(&(record, from));
                        }
                        Some(PrivateAnswer::Refused { code, message }) if code != "not_final" && code != "busy" => {
                            tracing::warn!(peer = %from, %record, %code, "private data refused by a member's node: {message}");
                            pending.remove(&(record, from));
                        }
                        // Not final there yet, busy, or unreachable: its retry is due.
                        _ => {}
                    },
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                while let Some((&(at, n), _)) = due.first_key_value() {
                    if at > now { break; }
                    let Some(k) = due.remove(&(at, n)) else { break };
                    attempt(&mut pending, &mut due, k);
                }
                let tip = s.tip.borrow().height;
                if tip > purged_to {
                    // A bounded step each tick: a node catching up thousands of blocks
                    // keeps answering pushes meanwhile.
                    let to = tip.min(purged_to.saturating_add(PURGE_BLOCKS_MAX));
                    let (s2, store2, from) = (s.clone(), store.clone(), purged_to);
                    match tokio::task::spawn_blocking(move || purge_erased(&s2, &store2, from, to)).await {
                        Ok(Ok(erased)) => {
                            purged_to = to;
                            // Nothing erased is pushed again, nor kept in memory.
                            pending.retain(|(r, _), _| !erased.contains(r));
                        }
                        Ok(Err(e)) => tracing::error!(error = %e, "private data: purge failed; retrying"),
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

fn send(s: &Shared, to: PublicKey, data: &PrivateData) {
    let _ = s.commands.try_send(Command::PrivateSend {
        to,
        data: Box::new(data.clone()),
    });
}

/// Purges the private data every erasure decision final in blocks `from + 1 ..= to`
/// names; from 0, every erasure in state (a node restarted after a crash between a
/// block and its purge purges then).
fn purge_erased(
    s: &Shared,
    store: &PrivateStore,
    from: u64,
    to: u64,
) -> anyhow::Result<Vec<RecordId>> {
    let mut erased = Vec::new();
    if from == 0 {
        let prefix = [st::key::ERASURE];
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page =
                s.store
                    .state_scan_after::<st::ErasureState>(&prefix, after.as_deref(), 1024)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (k, _) in &page {
                if let Ok(id) = <[u8; 32]>::try_from(&k[..]) {
                    erased.push(RecordId(id));
                }
            }
        }
    } else {
        for h in from + 1..=to {
            let block = s
                .store
                .block(h)?
                .ok_or_else(|| anyhow::anyhow!("block {h} is not in the store"))?;
            for r in block.records {
                if let Body::Erase(e) = r.envelope.body {
                    erased.push(e.record);
                }
            }
        }
    }
    for id in &erased {
        if store.purge(id)? {
            tracing::info!(record = %id, "private data purged (erasure decision)");
        }
    }
    Ok(erased)
}
