//! The node's metrics in the Prometheus text format, served at `GET /metrics`
//! (`prometheus-client`, not a hand-written exposition): what the host, the network
//! and the API count as they go, and what a scrape reads itself (process memory, the
//! store's size on disk). Every label takes a bounded set of values — a consensus
//! step, a route template, a status code, a history log — so no peer or client
//! can grow the registry. `docs/operations.md` lists them, with what to alert on.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::Store;

/// Every step a timeout is counted by (`host`'s names for Malachite's kinds).
pub const TIMEOUT_STEPS: [&str; 5] = [
    "propose",
    "prevote",
    "precommit",
    "rebroadcast",
    "finalize_height",
];

/// Which consensus step's timeout fired.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub step: &'static str,
}

/// An API answer: the route's template (never the path asked for) and the status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// A kind of message between nodes (`NetMsg::kind`), or `gossip` / `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LogLabel {
    pub log: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 1 ms to about 33 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The registry and the handles that write it. Cheap to share (`Arc`); every metric
/// is atomic, so writers never wait for a scrape.
pub struct Metrics {
    /// Locked only to register (the network's transport counters, once at start) and
    /// to encode a scrape.
    registry: std::sync::Mutex<Registry>,
    pub height: Gauge,
    pub round: Gauge,
    pub blocks_finalized: Counter,
    pub records_finalized: Counter,
    /// From one block stored here to the next.
    pub height_seconds: Histogram,
    /// From the proposer's clock at proposal to the block stored here.
    pub finality_seconds: Histogram,
    /// Time to store blocks (history synced, one engine batch, the anchor): one
    /// observation per commit, of one block or of a synced run of them.
    pub commit_seconds: Histogram,
    pub timeouts: Family<StepLabel, Counter>,
    /// Messages refused from a member's node as invalid (each a strike against it),
    /// by the kind of message.
    pub peer_penalties: Family<KindLabel, Counter>,
    /// Messages from members' nodes handed to the replica, by kind, and the time the
    /// replica took over each (a proposal's includes re-executing its block).
    pub messages_received: Family<KindLabel, Counter>,
    pub message_seconds: Histograms<KindLabel>,
    pub mempool_records: Gauge,
    pub peers_connected: Gauge,
    /// Incoming connections refused, most of them from nodes that are not members.
    pub connections_refused: Counter,
    pub synced_blocks: Counter,
    /// The height a syncing node is catching up to (as f + 1 peers claim it); its own
    /// height once caught up.
    pub sync_target_height: Gauge,
    pub synced_records: Counter,
    /// Time to apply one sync answer (certificates, execution, one commit).
    pub sync_apply_seconds: Histogram,
    pub api_requests: Family<RouteStatusLabels, Counter>,
    pub api_seconds: Histograms<RouteLabel>,
    /// Connections over the API's cap, answered `503` before any request was read.
    pub api_connections_refused: Counter,
    /// TLS handshakes on the API that failed or did not finish in time.
    pub api_tls_handshakes_failed: Counter,
    /// Event streams (`GET /v1/events`) open now, and the records they sent.
    pub event_streams: Gauge,
    pub event_records_sent: Counter,
    resident_bytes: Gauge,
    store_bytes: Family<LogLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    // Long: every metric's name, help and labels are registered here, one after
    // another, so the exported set reads (and is reviewed) as one list.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: std::sync::Mutex::new(Registry::with_prefix("xinlian")),
            height: Gauge::default(),
            round: Gauge::default(),
            blocks_finalized: Counter::default(),
            records_finalized: Counter::default(),
            height_seconds: seconds(),
            finality_seconds: seconds(),
            commit_seconds: seconds(),
            timeouts: Family::default(),
            peer_penalties: Family::default(),
            messages_received: Family::default(),
            message_seconds: Family::new_with_constructor(seconds),
            mempool_records: Gauge::default(),
            peers_connected: Gauge::default(),
            connections_refused: Counter::default(),
            synced_blocks: Counter::default(),
            sync_target_height: Gauge::default(),
            synced_records: Counter::default(),
            sync_apply_seconds: seconds(),
            api_requests: Family::default(),
            api_seconds: Family::new_with_constructor(seconds),
            api_connections_refused: Counter::default(),
            api_tls_handshakes_failed: Counter::default(),
            event_streams: Gauge::default(),
            event_records_sent: Counter::default(),
            resident_bytes: Gauge::default(),
            store_bytes: Family::default(),
        };
        // Every kind from the start, at zero: a rate of refusals is then defined (and
        // a dashboard's query exported) before the first one.
        let kinds = xinlian_core::consensus::wire::NetMsg::KINDS;
        for kind in kinds.into_iter().chain(["gossip", "other"]) {
            drop(m.peer_penalties.get_or_create(&KindLabel { kind }));
        }
        for kind in kinds {
            drop(m.messages_received.get_or_create(&KindLabel { kind }));
        }
        for step in TIMEOUT_STEPS {
            drop(m.timeouts.get_or_create(&StepLabel { step }));
        }
        let r = m.registry.get_mut().unwrap_or_else(|e| e.into_inner());
        r.register(
            "height",
            "Height of the last block stored here",
            m.height.clone(),
        );
        r.register(
            "round",
            "Consensus round at the height being decided",
            m.round.clone(),
        );
        r.register(
            "blocks_finalized",
            "Blocks stored here, by consensus or sync",
            m.blocks_finalized.clone(),
        );
        r.register(
            "records_finalized",
            "Records in the blocks stored here",
            m.records_finalized.clone(),
        );
        r.register(
            "height_seconds",
            "Time from one block stored here to the next",
            m.height_seconds.clone(),
        );
        r.register(
            "finality_seconds",
            "Time from a block's proposal (proposer's clock) to its being stored here",
            m.finality_seconds.clone(),
        );
        r.register(
            "commit_seconds",
            "Time to store a block, or a synced run of blocks, durably",
            m.commit_seconds.clone(),
        );
        r.register(
            "timeouts",
            "Consensus timeouts that fired, by step",
            m.timeouts.clone(),
        );
        r.register(
            "peer_penalties",
            "Messages from members' nodes refused as invalid",
            m.peer_penalties.clone(),
        );
        r.register(
            "messages_received",
            "Messages from members' nodes handed to consensus, by kind",
            m.messages_received.clone(),
        );
        r.register(
            "message_seconds",
            "Time consensus took over a message, by kind (a proposal's includes re-executing its block)",
            m.message_seconds.clone(),
        );
        r.register(
            "mempool_records",
            "Records waiting in the mempool",
            m.mempool_records.clone(),
        );
        r.register(
            "peers_connected",
            "Members' nodes connected",
            m.peers_connected.clone(),
        );
        r.register(
            "connections_refused",
            "Incoming connections refused (not a member's node key, or failed handshakes)",
            m.connections_refused.clone(),
        );
        r.register(
            "api_connections_refused",
            "API connections over the cap, answered 503 before a request was read",
            m.api_connections_refused.clone(),
        );
        r.register(
            "api_tls_handshakes_failed",
            "API TLS handshakes that failed or did not finish within 10 s",
            m.api_tls_handshakes_failed.clone(),
        );
        r.register(
            "event_streams",
            "Event streams (GET /v1/events) open",
            m.event_streams.clone(),
        );
        r.register(
            "event_records_sent",
            "Records sent on event streams",
            m.event_records_sent.clone(),
        );
        r.register(
            "sync_target_height",
            "Height a syncing node catches up to (claimed by f + 1 peers), set at each sync answer",
            m.sync_target_height.clone(),
        );
        r.register(
            "synced_blocks",
            "Blocks applied from sync answers",
            m.synced_blocks.clone(),
        );
        r.register(
            "synced_records",
            "Records in blocks applied from sync answers",
            m.synced_records.clone(),
        );
        r.register(
            "sync_apply_seconds",
            "Time to apply one sync answer",
            m.sync_apply_seconds.clone(),
        );
        r.register(
            "api_requests",
            "API answers by route template and status",
            m.api_requests.clone(),
        );
        r.register(
            "api_seconds",
            "API answer time by route template",
            m.api_seconds.clone(),
        );
        r.register(
            "process_resident_bytes",
            "Resident memory of the node process",
            m.resident_bytes.clone(),
        );
        r.register(
            "store_history_bytes",
            "Bytes on disk of the store's history logs, by log",
            m.store_bytes.clone(),
        );
        m
    }

    /// The text exposition, after reading what a scrape reads itself.
    pub fn encode(&self, store: &Store) -> String {
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.set(bytes);
        }
        for (log, bytes) in store.disk_usage() {
            self.store_bytes
                .get_or_create(&LogLabel { log })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Registers what `f` adds (libp2p's transport counters, which come with the
    /// transport the network builds).
    pub fn register_with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The process's resident memory (`VmRSS`, from /proc on Linux); none elsewhere.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}
