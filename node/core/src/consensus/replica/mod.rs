//! One node's part in the consortium as a deterministic state machine: fed network
//! messages, timer expiries and submissions together with the current time, it
//! answers with actions (send, schedule, commit happened). It owns Malachite's
//! consensus state (validators only), the mempool, the validated candidate blocks of the
//! current height, and block sync. It reads no clock and does no network I/O; storage
//! is reached through [`Ledger`], whose in-memory form makes the whole replica
//! simulable.
//!
//! Safety rests on Malachite's Tendermint core; what this module adds, it asserts:
//! a block is committed only with a certificate that `verify_certificate` accepts
//! under the set in force; a proposal reaches consensus only after its block
//! re-executed on our tip; the inputs Malachite asks to log are logged (durably for
//! our own messages) before anything is sent.
//!
//! Here are the replica's state and entry points; each job has its own file: `intake`,
//! `proposals`, `heights`, `effects`, `certificates`, `commit` and `sync`.

mod certificates;
mod commit;
mod effects;
mod heights;
mod intake;
mod proposals;
mod sync;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use malachite::{Input, State};
use malachite_types::{Timeout, TimeoutKind};
use xinlian_client::record::{EncodedRecord, RecordId};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, PublicKey};

use self::heights::{Begin, Start};
use super::context::{Address, BlockValue, Ctx, Validators};
use super::ledger::{Ledger, LedgerError};
use super::wire::{
    NetMsg, SignedProposal, SignedVote, WireProposal, polka_from_wire, round_cert_from_wire,
    vote_from_wire,
};
use crate::chain::{BlockError, Executed, Tip};
use crate::execute::Consortium;
use crate::mempool::{AdmissionError, Mempool, SignatureCheck};
/// Timer durations, in milliseconds. Round `r` waits `base + r × delta`.
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub propose_ms: u64,
    pub prevote_ms: u64,
    pub precommit_ms: u64,
    pub delta_ms: u64,
    /// Re-sending our last vote (and certificates) when a round makes no progress.
    pub rebroadcast_ms: u64,
    /// Announcing our height, which is how laggards learn to sync.
    pub status_ms: u64,
    /// Least time between a block and the next one's start: records gather meanwhile.
    pub block_interval_ms: u64,
    /// With nothing to record, an empty block still follows after this long, so that
    /// a quiet chain shows it is alive.
    pub heartbeat_ms: u64,
    /// How long a validator starting with no write-ahead log for its next height
    /// listens for its peers' heights before it starts one (then it also catches up
    /// first); 0: it starts at once (`Replica::listening_until`). A validator whose
    /// roster names no other member's node never listens: nobody could tell it more.
    pub listen_first_ms: u64,
}

impl Timeouts {
    /// Derived from the consortium's block interval (genesis rules bound it to a
    /// minute; saturating all the same).
    pub fn for_interval(block_interval_ms: u64) -> Self {
        let base = block_interval_ms.max(50);
        Timeouts {
            propose_ms: base.saturating_mul(3).saturating_add(300),
            prevote_ms: base.saturating_add(200),
            precommit_ms: base.saturating_add(200),
            delta_ms: base,
            rebroadcast_ms: base.saturating_mul(2).saturating_add(400),
            status_ms: 500,
            block_interval_ms,
            heartbeat_ms: 10_000,
            listen_first_ms: 0,
        }
    }

    /// As a node runs: listening for two status periods before its first height when
    /// its log has nothing of the next one (a fresh start, a restored store).
    pub fn for_node(block_interval_ms: u64) -> Self {
        let t = Self::for_interval(block_interval_ms);
        Timeouts {
            listen_first_ms: 2 * t.status_ms,
            ..t
        }
    }

    fn of(&self, t: Timeout) -> u64 {
        let r = u64::from(t.round.as_u32().unwrap_or(0));
        match t.kind {
            TimeoutKind::Propose => self.propose_ms + r * self.delta_ms,
            TimeoutKind::Prevote => self.prevote_ms + r * self.delta_ms,
            TimeoutKind::Precommit => self.precommit_ms + r * self.delta_ms,
            TimeoutKind::Rebroadcast => self.rebroadcast_ms + r * self.delta_ms,
            TimeoutKind::FinalizeHeight(d) => d.as_millis() as u64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    Consensus(Timeout),
    Status,
    /// Time to consider starting the next height (see `maybe_start`).
    NextHeight,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Broadcast(NetMsg),
    /// A record admitted here, for every other mempool: the host gathers these into
    /// `NetMsg::Records` batches (at most `RELAY_RECORDS_MAX` / `RELAY_BYTES_MAX`).
    Relay(Vec<u8>),
    Send(PublicKey, NetMsg),
    Schedule {
        timer: Timer,
        after_ms: u64,
    },
    Cancel(Timer),
    CancelConsensusTimers,
    /// A block was committed; the new tip and the ids it finalized.
    Committed {
        tip: Tip,
        records: Vec<RecordId>,
        /// From a peer's sync answer rather than a decision this node took part in.
        synced: bool,
    },
    /// A committed block announced a new roster, in force from the next height: who
    /// may connect, who votes, and the policy change with it.
    RosterChanged(Arc<Consortium>),
    /// A peer sent something malformed or provably wrong.
    Penalise {
        peer: PublicKey,
        reason: String,
        /// The kind of message being handled when it was found (`NetMsg::kind`), or
        /// `other`: a bounded label for counting.
        about: &'static str,
    },
}

/// Bounds on what a replica keeps for later. Every one is per height, and each is
/// reached only by a validator that misbehaves or a height that runs many rounds.
///
/// Proposals (and the executions of their blocks) kept at the current height; past it,
/// the lowest rounds' are dropped, and a decision on one of those waits for sync.
const PROPOSALS_KEPT_MAX: usize = 64;
/// A round's proposer may sign at most this many proposals for it: one honest one, and
/// one more kept as evidence of equivocation. Further ones are blamed and not executed.
const PROPOSALS_PER_ROUND_MAX: usize = 2;
/// Peers' proposals of the current height kept while records they name are fetched;
/// past it, the lowest round's is dropped.
const ASSEMBLING_MAX: usize = 4;
/// `PartsRequest`s answered per peer and height; an honest validator asks a few times
/// per proposal it lacks records of, and a member asking more gets empty answers.
const PARTS_ANSWERS_PER_PEER_MAX: u32 = 64;
/// Times every validator is asked for a proposal's missing records before it is given up.
const PARTS_PASSES_MAX: u32 = 3;
/// Malachite's look-ahead (`MAX_FUTURE_ROUND_LOOKAHEAD`): a proposal for a round further
/// ahead than this is dropped unexecuted, as Malachite would drop it.
const ROUNDS_AHEAD_MAX: u32 = 10;
/// Proposals for later heights kept until we get there: at most this many, for the
/// next `FUTURE_HEIGHTS_AHEAD` heights, a few per proposer.
const FUTURE_PROPOSALS_MAX: usize = 16;
const FUTURE_HEIGHTS_AHEAD: u64 = 2;
const FUTURE_PER_PROPOSER_MAX: usize = 4;
/// Votes kept per member for heights we have not started: a prevote and a precommit
/// for a few rounds of the next heights. A member's further votes push out its oldest,
/// never another's.
const LATER_VOTES_PER_MEMBER_MAX: usize = 8;
/// Malachite's queue of inputs for heights it has not started: at most this many
/// distinct heights (its `capacity` counts heights, not inputs), each with at most
/// `INPUT_QUEUE_PER_HEIGHT_MAX` inputs. Only messages for the next
/// `FUTURE_HEIGHTS_AHEAD` heights are handed to it at all.
const INPUT_QUEUE_MAX: usize = FUTURE_HEIGHTS_AHEAD as usize + 1;
const INPUT_QUEUE_PER_HEIGHT_MAX: usize = 1024;

/// A sync request unanswered for this many status periods is given up.
const SYNC_PATIENCE_PERIODS: i64 = 4;
/// A peer's back-off doubles per strike up to `status × 2^this` (64 periods).
const SYNC_BACKOFF_DOUBLINGS_MAX: u32 = 6;

/// A sync request in flight: whom we asked, when, and what it claimed then (an empty
/// answer is judged by the claim it was asked on, not by a claim sent since).
#[derive(Clone, Copy, Debug)]
struct SyncRequest {
    peer: PublicKey,
    at_ms: i64,
    claimed: u64,
}

/// A repair request in flight: whom we asked, when, for which damaged height.
#[derive(Clone, Copy, Debug)]
struct RepairRequest {
    peer: PublicKey,
    at_ms: i64,
    height: u64,
}

/// Damaged heights waiting for a peer's copy. Past this many the store is too damaged
/// to repair block by block: the rest are reported, and the operator re-syncs.
const DAMAGED_HEIGHTS_MAX: usize = 1024;

/// How many recent sync peers' answers are still read when they come late.
const ASKED_REMEMBERED: usize = 4;

/// A sync peer's record of answers that brought nothing.
#[derive(Clone, Copy, Debug, Default)]
struct SyncBackoff {
    strikes: u32,
    until_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("state: {0}")]
    State(#[from] crate::overlay::StateError),
    #[error("block {height} announces a new roster its execution does not hold")]
    RosterMissing { height: u64 },
    #[error("block {height} from the ledger does not re-execute: {source}")]
    Replay { height: u64, source: BlockError },
}

pub struct Replica<L: Ledger> {
    c: Arc<Consortium>,
    ctx: Ctx,
    vals: Validators,
    key: SigningKey,
    me: PublicKey,
    ledger: L,
    tip: Tip,
    /// Malachite's state; `None` on observers. Taken out while an input is processed.
    consensus: Option<State<Ctx>>,
    mempool: Mempool,
    timeouts: Timeouts,
    now_ms: i64,
    /// Blocks of the current height that re-executed on our tip, by hash.
    candidates: HashMap<Hash32, Executed>,
    /// Signed proposals seen at the current height, to re-send on request.
    proposals: BTreeMap<(u32, Hash32), SignedProposal>,
    /// Values we proposed at the current height before a restart, from the log.
    logged_values: HashMap<Hash32, BlockValue>,
    /// Proposals for later heights, kept until we get there.
    future: Vec<WireProposal>,
    /// Peers' proposals of the current height waiting for records we lack.
    assembling: BTreeMap<(u32, Hash32), proposals::Assembling>,
    /// `PartsRequest`s answered this height, by peer: how many, and bytes.
    parts_served: HashMap<PublicKey, (u32, usize)>,
    /// Votes for the next heights that arrived before we started them (a fresh
    /// consensus state per height forgets what it queued), fed in when we do.
    later_votes: Vec<SignedVote>,
    inputs: VecDeque<Input<Ctx>>,
    actions: Vec<Action>,
    /// Finalized heights peers announced.
    peer_heights: HashMap<PublicKey, u64>,
    /// The kind of the message `on_message` is handling, for `Action::Penalise`.
    handling: &'static str,
    /// Peers whose sync answers did not bear out their claims, sitting out a back-off.
    sync_backoff: HashMap<PublicKey, SyncBackoff>,
    /// The sync request in flight.
    syncing: Option<SyncRequest>,
    /// Heights whose stored history was found damaged, to repair from a peer's copy.
    damaged: BTreeSet<u64>,
    /// The repair request in flight.
    repairing: Option<RepairRequest>,
    /// The peer last asked for a repair copy (the next ask goes to the one after it).
    repaired_by: Option<PublicKey>,
    /// Damaged heights a peer's copy cannot mend (the block's own entry, an index
    /// entry): reported once and never asked for again, since every read of them finds
    /// the damage again (bounded like `damaged`).
    beyond_repair: BTreeSet<u64>,
    /// Copies of a damaged height whose certificate did not fit, so far (at most one
    /// entry per damaged height).
    unfit_copies: BTreeMap<u64, usize>,
    /// Peers asked lately, whose answers are still read when they come late.
    asked: VecDeque<PublicKey>,
    /// Validators that signed a vote for the height after our tip before we started
    /// it: a third of the power of them makes us join early.
    early_voters: HashSet<PublicKey>,
    /// Since when a peer has announced a height above ours.
    behind_since: Option<i64>,
    /// A validator that started with no write-ahead log for its next height (a fresh
    /// start, a restored store) listens until then before it starts a height, and
    /// until it has caught up with its peers: a height it signed at before its log
    /// was lost is then decided without it, and it never signs there again.
    listening_until: Option<i64>,
    /// While a write-ahead log is replayed: its entries, which are not logged again.
    replayed: HashSet<Hash32>,
    /// Set by a decision: start the next height once the current input is done.
    start_next: bool,
    /// Our own votes: (height, round, precommit) → value. A second, different signature
    /// for the same slot is refused whatever the state machine asks.
    signed_votes: HashMap<(u64, Option<u32>, bool), Option<Hash32>>,
    /// Our own proposals: (height, round) → (value, proof-of-lock round). The same
    /// value under another proof-of-lock round is another signed message, refused too.
    signed_proposals: HashMap<(u64, Option<u32>), (Hash32, Option<u32>)>,
}

impl<L: Ledger> Replica<L> {
    /// A replica on `ledger`, whose last committed block is `tip`. A validator replays
    /// its write-ahead log for the next height before anything else.
    pub fn new(
        c: Arc<Consortium>,
        key: SigningKey,
        ledger: L,
        tip: Tip,
        timeouts: Timeouts,
        mempool: Mempool,
        now_ms: i64,
    ) -> Result<(Self, Vec<Action>), ReplicaError> {
        let me = public_key(&key);
        let vals = Validators::new(c.validators.clone());
        let ctx = Ctx { chain: c.chain };
        let mut r = Replica {
            c,
            ctx,
            vals,
            key,
            me,
            ledger,
            tip,
            consensus: None,
            mempool,
            timeouts,
            now_ms,
            candidates: HashMap::new(),
            proposals: BTreeMap::new(),
            logged_values: HashMap::new(),
            future: Vec::new(),
            assembling: BTreeMap::new(),
            parts_served: HashMap::new(),
            later_votes: Vec::new(),
            inputs: VecDeque::new(),
            actions: Vec::new(),
            peer_heights: HashMap::new(),
            handling: "other",
            sync_backoff: HashMap::new(),
            syncing: None,
            damaged: BTreeSet::new(),
            repairing: None,
            repaired_by: None,
            beyond_repair: BTreeSet::new(),
            unfit_copies: BTreeMap::new(),
            asked: VecDeque::new(),
            early_voters: HashSet::new(),
            behind_since: None,
            listening_until: None,
            replayed: HashSet::new(),
            start_next: false,
            signed_votes: HashMap::new(),
            signed_proposals: HashMap::new(),
        };
        r.schedule(Timer::Status, r.timeouts.status_ms);
        if r.is_validator() {
            if r.ledger.wal(r.tip.height + 1)?.is_empty() {
                // With no other member's node (validator or observer) there is nobody
                // to hear a height from: it starts.
                let others =
                    r.c.roster
                        .members
                        .iter()
                        .any(|m| m.node_key.is_some_and(|k| k != r.me));
                if r.timeouts.listen_first_ms > 0 && others {
                    let listen = i64::try_from(r.timeouts.listen_first_ms).unwrap_or(i64::MAX);
                    r.listening_until = Some(now_ms.saturating_add(listen));
                }
                r.maybe_start(Start::IfDue)?;
            } else {
                // We were in the middle of this height: resume it at once.
                r.start_height(Begin::FromWal)?;
            }
        }
        let actions = std::mem::take(&mut r.actions);
        Ok((r, actions))
    }

    pub fn is_validator(&self) -> bool {
        self.vals.index_of(&Address(self.me)).is_some()
    }

    pub fn tip(&self) -> &Tip {
        &self.tip
    }

    /// The finalized heights members' nodes last announced: hints, never trusted.
    pub fn peer_heights(&self) -> impl Iterator<Item = (&PublicKey, u64)> {
        self.peer_heights.iter().map(|(k, h)| (k, *h))
    }

    /// The height this node is catching up to, while behind: the highest height that
    /// more peers claim than the consortium may have liars (f + 1 of them, f the most
    /// faulty validators it tolerates), so that no f lying peers can make a node look
    /// behind. `None` when it is not behind. Claims are unverified: this is a report,
    /// never a decision.
    pub fn sync_target(&self) -> Option<u64> {
        let f = self.c.validators.len().saturating_sub(1) / 3;
        let mut claims: Vec<u64> = self.peer_heights.values().copied().collect();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims.get(f).copied().filter(|h| *h > self.tip.height)
    }

    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The current consensus round, for observation.
    pub fn round(&self) -> Option<u32> {
        self.consensus.as_ref().and_then(|s| s.round().as_u32())
    }

    /// Whether a consensus message of `height` is worth keeping: not decided yet, and
    /// no further ahead than a laggard's next couple of heights (further ones are
    /// dropped; sync brings what consensus there decided).
    fn height_in_reach(&self, height: u64) -> bool {
        height > self.tip.height && height <= self.tip.height + FUTURE_HEIGHTS_AHEAD
    }

    /// A record submitted to this node: admitted to the mempool and relayed.
    pub fn submit(
        &mut self,
        now_ms: i64,
        rec: EncodedRecord,
    ) -> (Result<RecordId, AdmissionError>, Vec<Action>) {
        self.submit_with(now_ms, rec, SignatureCheck::Needed)
    }

    /// A submitted record whose signature the caller has already verified (the API
    /// does, on its own threads, so that junk never costs the consensus thread a
    /// signature check); otherwise as [`Replica::submit`].
    pub fn submit_verified(
        &mut self,
        now_ms: i64,
        rec: EncodedRecord,
    ) -> (Result<RecordId, AdmissionError>, Vec<Action>) {
        self.submit_with(now_ms, rec, SignatureCheck::Done)
    }

    fn submit_with(
        &mut self,
        now_ms: i64,
        rec: EncodedRecord,
        signature: SignatureCheck,
    ) -> (Result<RecordId, AdmissionError>, Vec<Action>) {
        self.now_ms = now_ms;
        let bytes = rec.bytes().to_vec();
        let out = self.admit(rec, signature);
        if out.is_ok() {
            self.actions.push(Action::Relay(bytes));
            // A height may now be due. Starting one writes to the ledger, and a ledger
            // failure must reach a caller that stops the node, which an admission
            // answer is not: the start is left to the timer, due at once.
            if self.is_validator() && self.consensus.is_none() {
                self.schedule(Timer::NextHeight, 0);
            }
        }
        (out, std::mem::take(&mut self.actions))
    }

    pub fn on_timer(&mut self, now_ms: i64, timer: Timer) -> Result<Vec<Action>, ReplicaError> {
        self.now_ms = now_ms;
        match timer {
            Timer::Status => {
                self.actions.push(Action::Broadcast(NetMsg::Status {
                    height: self.tip.height,
                    tip: self.tip.hash,
                }));
                self.schedule(Timer::Status, self.timeouts.status_ms);
                self.maybe_sync();
                self.maybe_repair();
                let patience = i64::try_from(self.timeouts.status_ms).unwrap_or(i64::MAX);
                self.retry_parts(patience);
            }
            Timer::Consensus(t) => {
                if self.consensus.is_some() {
                    self.inputs.push_back(Input::TimeoutElapsed(t));
                    self.drain()?;
                }
            }
            Timer::NextHeight => self.maybe_start(Start::IfDue)?,
        }
        Ok(std::mem::take(&mut self.actions))
    }

    /// A message from peer `from` (a member's node key, authenticated by the transport).
    pub fn on_message(
        &mut self,
        now_ms: i64,
        from: PublicKey,
        msg: NetMsg,
    ) -> Result<Vec<Action>, ReplicaError> {
        self.now_ms = now_ms;
        self.handling = msg.kind();
        let result = self.handle_message(from, msg);
        self.handling = "other";
        result
    }

    fn handle_message(
        &mut self,
        from: PublicKey,
        msg: NetMsg,
    ) -> Result<Vec<Action>, ReplicaError> {
        if let Some(why) = intake::round_out_of_range(&msg) {
            self.penalise(from, why);
            return Ok(std::mem::take(&mut self.actions));
        }
        if self.announces_next_height(&msg) {
            // A validator has started the height: join it.
            self.maybe_start(Start::Join)?;
        }
        match msg {
            NetMsg::Proposal(p) => self.on_proposal(from, *p)?,
            NetMsg::Vote(v) => {
                if self.consensus.is_some() && v.height == self.tip.height + 1 {
                    self.inputs.push_back(Input::Vote(vote_from_wire(&v)));
                } else if self.height_in_reach(v.height) {
                    self.keep_vote_for_later(from, vote_from_wire(&v));
                }
            }
            NetMsg::PolkaCertificate(c) => {
                if self.consensus.is_some() && self.height_in_reach(c.height) {
                    self.inputs
                        .push_back(Input::PolkaCertificate(polka_from_wire(&c)));
                }
            }
            NetMsg::RoundCertificate(c) => {
                if self.consensus.is_some() && self.height_in_reach(c.height) {
                    self.inputs
                        .push_back(Input::RoundCertificate(round_cert_from_wire(&c)));
                }
            }
            NetMsg::Records(batch) => self.on_records(from, batch)?,
            NetMsg::PartsRequest { block, leaves } => {
                let answer = self.answer_parts(from, block, &leaves);
                self.actions.push(Action::Send(from, answer));
            }
            NetMsg::Parts { block, records } => self.on_parts(from, block, records)?,
            NetMsg::Status { height, .. } => self.on_status(from, height),
            NetMsg::SyncRequest { from: first, max } => self.serve_sync(from, first, max)?,
            NetMsg::SyncResponse { blocks } => self.on_sync_response(from, blocks)?,
            NetMsg::SyncBusy => self.on_sync_busy(from),
        }
        self.drain()?;
        Ok(std::mem::take(&mut self.actions))
    }
}
