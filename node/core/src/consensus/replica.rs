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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use malachite::{Effect, Input, Params, Resumable, SignedConsensusMsg, State, ValuePayload};
use malachite_types::{
    CertificateError, CommitCertificate, NilOrVal, PolkaCertificate, RoundCertificate,
    RoundCertificateType, SignedMessage, ThresholdParams, Timeout, TimeoutKind, ValidatorSet as _,
    VoteExtensionPolicy, VoteType,
};
use xinlian_client::block::{Block, Certificate, verify_certificate, verify_precommits};
use xinlian_client::record::{EncodedRecord, RecordId};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, PublicKey};

use super::context::{
    Address, BlockValue, Ctx, Height, Validators, proposal_message, sign, verify, vote_message,
};
use super::ledger::{Ledger, LedgerError};
use super::wire::*;
use crate::chain::{BlockError, Executed, Tip, build_block, execute_block};
use crate::execute::{Consortium, Rejection};
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
}

impl Timeouts {
    /// Derived from the consortium's block interval.
    pub fn for_interval(block_interval_ms: u64) -> Self {
        let base = block_interval_ms.max(50);
        Timeouts {
            propose_ms: 3 * base + 300,
            prevote_ms: base + 200,
            precommit_ms: base + 200,
            delta_ms: base,
            rebroadcast_ms: 2 * base + 400,
            status_ms: 500,
            block_interval_ms,
            heartbeat_ms: 10_000,
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
    },
    /// A committed block announced a new roster, in force from the next height: who
    /// may connect, who votes, and the policy change with it.
    RosterChanged(Arc<Consortium>),
    /// A peer sent something malformed or provably wrong.
    Penalise {
        peer: PublicKey,
        reason: String,
    },
}

/// Bounds on what a replica keeps for later.
const CANDIDATES_MAX: usize = 64;
const FUTURE_PROPOSALS_MAX: usize = 16;
const INPUT_QUEUE_MAX: usize = 4096;
const INPUT_QUEUE_PER_HEIGHT_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("state: {0}")]
    State(#[from] crate::overlay::StateError),
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
    /// Proposals for later heights, kept until we get there.
    future: Vec<SignedProposal>,
    inputs: VecDeque<Input<Ctx>>,
    actions: Vec<Action>,
    /// Finalized heights peers announced.
    peer_heights: HashMap<PublicKey, u64>,
    /// The sync request in flight: (peer, first height asked, when).
    syncing: Option<(PublicKey, u64, i64)>,
    /// Since when a peer has announced a height above ours.
    behind_since: Option<i64>,
    replaying: bool,
    /// Set by a decision: start the next height once the current input is done.
    start_next: bool,
    /// Our own votes: (height, round, precommit) → value. A second, different signature
    /// for the same slot is refused whatever the state machine asks.
    signed_votes: HashMap<(u64, Option<u32>, bool), Option<Hash32>>,
    signed_proposals: HashMap<(u64, Option<u32>), Hash32>,
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
            future: Vec::new(),
            inputs: VecDeque::new(),
            actions: Vec::new(),
            peer_heights: HashMap::new(),
            syncing: None,
            behind_since: None,
            replaying: false,
            start_next: false,
            signed_votes: HashMap::new(),
            signed_proposals: HashMap::new(),
        };
        r.schedule(Timer::Status, r.timeouts.status_ms);
        if r.is_validator() {
            if r.ledger.wal(r.tip.height + 1)?.is_empty() {
                r.maybe_start(false)?;
            } else {
                // We were in the middle of this height: resume it at once.
                r.start_height(true)?;
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

    /// A record submitted to this node: admitted to the mempool and relayed.
    pub fn submit(
        &mut self,
        now_ms: i64,
        rec: EncodedRecord,
    ) -> (Result<RecordId, AdmissionError>, Vec<Action>) {
        self.now_ms = now_ms;
        let bytes = rec.bytes().to_vec();
        let out = self.admit(rec, SignatureCheck::Needed);
        if out.is_ok() {
            self.actions.push(Action::Relay(bytes));
            if let Err(e) = self.maybe_start(false) {
                tracing::error!(error = %e, "starting the next height failed");
            }
        }
        (out, std::mem::take(&mut self.actions))
    }

    fn admit(
        &mut self,
        rec: EncodedRecord,
        signature: SignatureCheck,
    ) -> Result<RecordId, AdmissionError> {
        self.mempool.admit(
            &self.ledger,
            &self.c,
            &self.tip,
            self.now_ms,
            rec,
            signature,
        )
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
            }
            Timer::Consensus(t) => {
                if self.consensus.is_some() {
                    self.inputs.push_back(Input::TimeoutElapsed(t));
                    self.drain()?;
                }
            }
            Timer::NextHeight => self.maybe_start(false)?,
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
        let next = self.tip.height + 1;
        let for_next = match &msg {
            NetMsg::Proposal(p) => p.height == next,
            NetMsg::Vote(v) => v.height == next,
            NetMsg::PolkaCertificate(c) => c.height == next,
            NetMsg::RoundCertificate(c) => c.height == next,
            _ => false,
        };
        if for_next {
            // Another validator has started the height: join it.
            self.maybe_start(true)?;
        }
        match msg {
            NetMsg::Proposal(p) => self.on_proposal(from, proposal_from_wire(*p))?,
            NetMsg::Vote(v) => {
                if self.consensus.is_some() && v.height > self.tip.height {
                    self.inputs.push_back(Input::Vote(vote_from_wire(&v)));
                }
            }
            NetMsg::PolkaCertificate(c) => {
                if self.consensus.is_some() && c.height > self.tip.height {
                    self.inputs
                        .push_back(Input::PolkaCertificate(polka_from_wire(&c)));
                }
            }
            NetMsg::RoundCertificate(c) => {
                if self.consensus.is_some() && c.height > self.tip.height {
                    self.inputs
                        .push_back(Input::RoundCertificate(round_cert_from_wire(&c)));
                }
            }
            NetMsg::Records(batch) => {
                if batch.len() > RELAY_RECORDS_MAX
                    || batch.iter().map(Vec::len).sum::<usize>() > RELAY_BYTES_MAX
                {
                    self.penalise(from, format!("a relay batch of {} records", batch.len()));
                } else {
                    let max = self.c.policy().record_bytes_max as usize;
                    let mut recs = Vec::with_capacity(batch.len());
                    for bytes in batch {
                        match EncodedRecord::decode(&bytes, max) {
                            Ok(rec) => recs.push(rec),
                            Err(e) => self.penalise(from, format!("relayed record: {e}")),
                        }
                    }
                    // One batch verification for the lot (the same rule as single
                    // checks); on failure each is checked alone at admission.
                    let batch_verified =
                        xinlian_client::crypto::verify_batch(recs.iter().map(|r| {
                            (
                                &r.record().envelope.signer,
                                xinlian_client::crypto::Domain::Record.message(r.envelope_bytes()),
                                &r.record().signature,
                            )
                        }))
                        .is_ok();
                    let mut admitted = false;
                    for rec in recs {
                        // Refusals of relayed records are normal (already final,
                        // already pending, raced a conflicting record); a bad signature
                        // blames the sender.
                        let signature = if batch_verified {
                            SignatureCheck::Done
                        } else {
                            SignatureCheck::Needed
                        };
                        match self.admit(rec, signature) {
                            Ok(_) => admitted = true,
                            Err(AdmissionError::Rejected(Rejection::Stateless(
                                e @ xinlian_client::checks::StatelessError::Signature(_),
                            ))) => {
                                self.penalise(from, format!("relayed record: {e}"));
                            }
                            Err(_) => {}
                        }
                    }
                    if admitted {
                        self.maybe_start(false)?;
                    }
                }
            }
            NetMsg::Status { height, .. } => {
                let h = self.peer_heights.entry(from).or_insert(0);
                *h = (*h).max(height);
                self.maybe_sync();
            }
            NetMsg::SyncRequest { from: first, max } => self.serve_sync(from, first, max)?,
            NetMsg::SyncResponse { blocks } => self.on_sync_response(from, blocks)?,
        }
        self.drain()?;
        Ok(std::mem::take(&mut self.actions))
    }

    fn penalise(&mut self, peer: PublicKey, reason: String) {
        self.actions.push(Action::Penalise { peer, reason });
    }

    fn schedule(&mut self, timer: Timer, after_ms: u64) {
        self.actions.push(Action::Schedule { timer, after_ms });
    }

    // ---- proposals -------------------------------------------------------------

    fn on_proposal(&mut self, from: PublicKey, p: SignedProposal) -> Result<(), ReplicaError> {
        let h = p.message.height.0;
        if h <= self.tip.height {
            return Ok(());
        }
        // For a later height, or before this node votes at all (a member voted in
        // syncs first): kept until we get there. The set in force *then* authenticates
        // it, since governance may change the set in between.
        let signed = verify(
            &p.message.proposer.0,
            &proposal_message(&self.c.chain, &p.message),
            &p.signature,
        );
        if !signed {
            self.penalise(from, "proposal not signed by its proposer".into());
            return Ok(());
        }
        if self.consensus.is_none() || h > self.tip.height + 1 {
            if self.future.len() < FUTURE_PROPOSALS_MAX {
                self.future.push(p);
            }
            self.maybe_sync();
            return Ok(());
        }
        // Authenticated: now the proposer must be a validator of this height, before
        // a block execution is spent on it.
        if self.vals.index_of(&p.message.proposer).is_none() {
            self.penalise(from, "proposal not signed by a validator".into());
            return Ok(());
        }
        if self.validate(&p.message.value)? {
            if let Some(r) = p.message.round.as_u32() {
                self.proposals.insert((r, p.message.value.id), p.clone());
            }
            self.inputs.push_back(Input::Proposal(p));
        } else {
            self.penalise(from, format!("proposal of an invalid block at height {h}"));
        }
        Ok(())
    }

    /// Re-executes a block of the next height on our tip, keeping the result for the
    /// commit. `false` when the block is invalid.
    fn validate(&mut self, v: &BlockValue) -> Result<bool, ReplicaError> {
        if self.candidates.contains_key(&v.id) {
            return Ok(true);
        }
        // A proposer's clock may run ahead of ours by at most the genesis drift.
        let drift = self.c.policy().block_time_drift_ms_max as i64;
        if v.block.header.time_ms > self.now_ms + drift {
            tracing::warn!(
                height = v.block.header.height,
                "proposal dated in the future"
            );
            return Ok(false);
        }
        match execute_block(&self.ledger, &self.c, &self.tip, (*v.block).clone()) {
            Ok(ex) => {
                if self.candidates.len() >= CANDIDATES_MAX {
                    self.candidates.clear();
                }
                self.candidates.insert(v.id, ex);
                Ok(true)
            }
            Err(BlockError::State(e)) => Err(e.into()),
            Err(e) => {
                tracing::warn!(height = v.block.header.height, error = %e, "invalid proposal");
                Ok(false)
            }
        }
    }

    /// Builds our proposal for the current height from the mempool.
    fn build(&mut self) -> Result<BlockValue, ReplicaError> {
        let time_ms = self.now_ms.max(self.tip.time_ms + 1);
        let (ex, rejected) = build_block(
            &self.ledger,
            &self.c,
            &self.tip,
            self.me,
            time_ms,
            self.mempool.records(),
        )?;
        for (id, why) in rejected {
            tracing::debug!(%id, %why, "pending record left out of the block");
        }
        let value = BlockValue::new(ex.block());
        self.candidates.insert(value.id, ex);
        Ok(value)
    }

    // ---- the consensus state machine --------------------------------------------

    fn params(&self) -> Params<Ctx> {
        Params {
            address: Address(self.me),
            threshold_params: ThresholdParams::default(),
            value_payload: ValuePayload::ProposalOnly,
            enabled: true,
        }
    }

    /// Starts the next height when it is time: at least a block interval after the
    /// last block, and once there is something to record, a heartbeat is due, or
    /// (`joining`) another validator has started it.
    fn maybe_start(&mut self, joining: bool) -> Result<(), ReplicaError> {
        if !self.is_validator() || self.consensus.is_some() {
            return Ok(());
        }
        let since = self.now_ms - self.tip.time_ms;
        let interval = self.timeouts.block_interval_ms as i64;
        let heartbeat = self.timeouts.heartbeat_ms as i64;
        if joining || (since >= interval && (!self.mempool.is_empty() || since >= heartbeat)) {
            return self.start_height(false);
        }
        let wait = if self.mempool.is_empty() {
            heartbeat - since
        } else {
            interval - since
        };
        self.schedule(Timer::NextHeight, wait.max(1) as u64);
        Ok(())
    }

    /// Starts consensus at `tip + 1`, replaying the write-ahead log of that height.
    fn start_height(&mut self, replay: bool) -> Result<(), ReplicaError> {
        let height = Height(self.tip.height + 1);
        self.candidates.clear();
        self.proposals.clear();
        self.signed_votes.retain(|(h, _, _), _| *h >= height.0);
        self.signed_proposals.retain(|(h, _), _| *h >= height.0);
        self.consensus = Some(State::new(
            self.ctx.clone(),
            height,
            self.vals.clone(),
            self.params(),
            INPUT_QUEUE_MAX,
            INPUT_QUEUE_PER_HEIGHT_MAX,
        ));
        self.actions.push(Action::CancelConsensusTimers);
        let wal = if replay {
            self.ledger.wal(height.0)?
        } else {
            Vec::new()
        };
        self.inputs.push_back(Input::StartHeight(
            height,
            self.vals.clone(),
            !wal.is_empty(),
            None,
            VoteExtensionPolicy::Disabled,
        ));
        self.drain()?;
        if !wal.is_empty() {
            tracing::info!(
                height = height.0,
                entries = wal.len(),
                "replaying the write-ahead log"
            );
            let inputs: Vec<Input<Ctx>> = wal.into_iter().map(|e| e.into_input(height.0)).collect();
            for input in &inputs {
                self.remember_own(input);
                // Logged proposals re-execute so that a decision can commit their block.
                match input {
                    Input::Proposal(p) => {
                        let _ = self.validate(&p.message.value)?;
                    }
                    Input::ProposedValue(v, _) => {
                        let _ = self.validate(&v.value)?;
                    }
                    _ => {}
                }
            }
            self.consensus
                .as_mut()
                .expect("validator")
                .index_wal_entries(inputs.iter());
            self.replaying = true;
            self.inputs.extend(inputs);
            let r = self.drain();
            self.replaying = false;
            self.consensus
                .as_mut()
                .expect("validator")
                .reset_entries_index();
            r?;
        }
        // Proposals that arrived early for this height.
        let early: Vec<SignedProposal> = std::mem::take(&mut self.future)
            .into_iter()
            .filter(|p| p.message.height.0 > self.tip.height)
            .collect();
        for p in early {
            let from = p.message.proposer.0;
            self.on_proposal(from, p)?;
        }
        self.drain()
    }

    fn remember_own(&mut self, input: &Input<Ctx>) {
        match input {
            Input::Vote(v) if v.message.validator.0 == self.me => {
                self.signed_votes.insert(
                    (
                        v.message.height.0,
                        v.message.round.as_u32(),
                        v.message.kind == VoteType::Precommit,
                    ),
                    match v.message.value {
                        NilOrVal::Nil => None,
                        NilOrVal::Val(id) => Some(id.0),
                    },
                );
            }
            Input::Proposal(p) if p.message.proposer.0 == self.me => {
                self.signed_proposals.insert(
                    (p.message.height.0, p.message.round.as_u32()),
                    p.message.value.id,
                );
            }
            _ => {}
        }
    }

    /// Feeds queued inputs to Malachite one at a time, handling every effect.
    fn drain(&mut self) -> Result<(), ReplicaError> {
        while let Some(input) = self.inputs.pop_front() {
            let Some(mut state) = self.consensus.take() else {
                self.inputs.clear();
                break;
            };
            let mut failure: Option<ReplicaError> = None;
            let result: Result<(), malachite::Error<Ctx>> = malachite::process!(
                input: input,
                state: &mut state,
                metrics: &(),
                with: effect => self.on_effect(effect, &mut failure)
            );
            self.consensus = Some(state);
            if let Err(e) = result {
                tracing::debug!(error = %e, "consensus input refused");
            }
            if let Some(e) = failure {
                return Err(e);
            }
            // A decision was committed: the old state has finished its input, so none
            // of its effects leak into the next height, which starts afresh.
            if std::mem::take(&mut self.start_next) {
                self.consensus = None;
                self.actions.push(Action::CancelConsensusTimers);
                self.maybe_start(false)?;
            }
        }
        Ok(())
    }

    fn on_effect(
        &mut self,
        effect: Effect<Ctx>,
        failure: &mut Option<ReplicaError>,
    ) -> Result<malachite::Resume<Ctx>, String> {
        Ok(match effect {
            Effect::CancelAllTimeouts(r) => {
                self.actions.push(Action::CancelConsensusTimers);
                r.resume_with(())
            }
            Effect::CancelTimeout(t, r) => {
                self.actions.push(Action::Cancel(Timer::Consensus(t)));
                r.resume_with(())
            }
            Effect::ScheduleTimeout(t, r) => {
                let after_ms = self.timeouts.of(t);
                self.schedule(Timer::Consensus(t), after_ms);
                r.resume_with(())
            }
            Effect::StartRound(_, _, _, _, r) => r.resume_with(()),
            Effect::PublishConsensusMsg(msg, r) => {
                self.actions.push(Action::Broadcast(match msg {
                    SignedConsensusMsg::Vote(v) => NetMsg::Vote(vote_to_wire(&v)),
                    SignedConsensusMsg::Proposal(p) => {
                        NetMsg::Proposal(Box::new(proposal_to_wire(&p)))
                    }
                }));
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(msg, r) => {
                self.actions.push(Action::Broadcast(match msg {
                    malachite::LivenessMsg::Vote(v) => NetMsg::Vote(vote_to_wire(&v)),
                    malachite::LivenessMsg::PolkaCertificate(c) => {
                        NetMsg::PolkaCertificate(polka_to_wire(&c))
                    }
                    malachite::LivenessMsg::SkipRoundCertificate(c) => {
                        NetMsg::RoundCertificate(round_cert_to_wire(&c))
                    }
                }));
                r.resume_with(())
            }
            Effect::RepublishVote(v, r) => {
                self.actions
                    .push(Action::Broadcast(NetMsg::Vote(vote_to_wire(&v))));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(c, r) => {
                self.actions
                    .push(Action::Broadcast(NetMsg::RoundCertificate(
                        round_cert_to_wire(&c),
                    )));
                r.resume_with(())
            }
            Effect::GetValue(height, round, _, r) => {
                if height.0 == self.tip.height + 1 {
                    match self.build() {
                        Ok(value) => self.inputs.push_back(Input::Propose(
                            malachite::LocallyProposedValue::new(height, round, value),
                        )),
                        Err(e) => *failure = Some(e),
                    }
                }
                r.resume_with(())
            }
            Effect::RestreamProposal(height, round, _, _, id, r) => {
                if height.0 == self.tip.height + 1
                    && let Some(p) = round
                        .as_u32()
                        .and_then(|rd| self.proposals.get(&(rd, id.0)))
                {
                    self.actions
                        .push(Action::Broadcast(NetMsg::Proposal(Box::new(
                            proposal_to_wire(p),
                        ))));
                }
                r.resume_with(())
            }
            Effect::CertVerifiedSyncValue(_, _, r) | Effect::CertRejectedSyncValue(_, _, _, r) => {
                r.resume_with(())
            }
            Effect::Decide(cert, _, r) => {
                if let Err(e) = self.commit_decision(&cert) {
                    *failure = Some(e);
                }
                r.resume_with(())
            }
            Effect::Finalize(_, _, evidence, r) => {
                if !evidence.is_empty() {
                    tracing::warn!(?evidence, "misbehaviour seen at this height");
                }
                r.resume_with(())
            }
            Effect::SignVote(vote, r) => {
                let slot = (
                    vote.height.0,
                    vote.round.as_u32(),
                    vote.kind == VoteType::Precommit,
                );
                let value = match vote.value {
                    NilOrVal::Nil => None,
                    NilOrVal::Val(id) => Some(id.0),
                };
                if let Some(prev) = self.signed_votes.get(&slot)
                    && *prev != value
                {
                    return Err(format!(
                        "refusing to sign a second, different vote for height {} round {:?}",
                        slot.0, slot.1
                    ));
                }
                self.signed_votes.insert(slot, value);
                let signature = sign(&self.key, &vote_message(&self.c.chain, &vote));
                r.resume_with(SignedMessage::new(vote, signature))
            }
            Effect::SignProposal(p, r) => {
                let slot = (p.height.0, p.round.as_u32());
                if let Some(prev) = self.signed_proposals.get(&slot)
                    && *prev != p.value.id
                {
                    return Err(format!(
                        "refusing to sign a second, different proposal for height {} round {:?}",
                        slot.0, slot.1
                    ));
                }
                self.signed_proposals.insert(slot, p.value.id);
                let signature = sign(&self.key, &proposal_message(&self.c.chain, &p));
                let signed = SignedMessage::new(p, signature);
                if let Some(rd) = signed.message.round.as_u32() {
                    self.proposals
                        .insert((rd, signed.message.value.id), signed.clone());
                }
                r.resume_with(signed)
            }
            Effect::VerifySignature(msg, key, r) => {
                let ok = match &msg.message {
                    malachite::ConsensusMsg::Vote(v) => {
                        verify(&key, &vote_message(&self.c.chain, v), &msg.signature)
                    }
                    malachite::ConsensusMsg::Proposal(p) => {
                        verify(&key, &proposal_message(&self.c.chain, p), &msg.signature)
                    }
                };
                r.resume_with(ok)
            }
            Effect::VerifyCommitCertificate(cert, vs, _, r) => {
                r.resume_with(self.check_commit(&cert, &vs))
            }
            Effect::VerifyExtendedCommitCertificate(cert, vs, _, _, r) => {
                r.resume_with(self.check_commit(&cert.trim_vote_extensions(), &vs))
            }
            Effect::VerifyPolkaCertificate(cert, vs, _, r) => {
                r.resume_with(self.check_polka(&cert, &vs))
            }
            Effect::VerifyRoundCertificate(cert, vs, _, r) => {
                r.resume_with(self.check_round(&cert, &vs))
            }
            Effect::WalAppend(height, input, r) => {
                if !self.replaying
                    && let Some(entry) = WalEntry::from_input(&input)
                {
                    // Our own messages must survive a crash before they are sent; a
                    // flush also makes every earlier entry durable.
                    let own = match &input {
                        Input::Vote(v) => v.message.validator.0 == self.me,
                        Input::Proposal(p) => p.message.proposer.0 == self.me,
                        Input::ProposedValue(v, _) => v.proposer.0 == self.me,
                        _ => false,
                    };
                    if let Err(e) = self.ledger.wal_append(height.0, &entry, own) {
                        *failure = Some(e.into());
                        return Err("write-ahead log append failed".into());
                    }
                }
                r.resume_with(())
            }
            Effect::ExtendVote(_, _, _, _, r) => r.resume_with(None),
            Effect::VerifyVoteExtension(_, _, _, _, _, _, r) => r.resume_with(Ok(())),
        })
    }

    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    fn check_commit(
        &self,
        cert: &CommitCertificate<Ctx>,
        vs: &Validators,
    ) -> Result<(), CertificateError<Ctx>> {
        let ours = certificate_from_malachite(cert, vs)
            .ok_or(CertificateError::VerificationError(None))?;
        verify_precommits(
            &self.c.chain,
            ours.height,
            ours.round,
            &ours.block,
            &ours.signatures,
            &vs.set,
        )
        .map_err(|_| CertificateError::VerificationError(None))
    }

    /// Sums the power of distinct validators whose signatures over `votes` hold.
    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    fn signed_power<'a>(
        &self,
        vs: &Validators,
        votes: impl Iterator<
            Item = (
                super::context::ConsensusVote,
                &'a xinlian_client::crypto::Signature,
            ),
        >,
    ) -> Result<u64, CertificateError<Ctx>> {
        let mut seen = HashSet::new();
        let mut power: u64 = 0;
        for (vote, sig) in votes {
            let Some(v) = vs.get_by_address(&vote.validator) else {
                return Err(CertificateError::UnknownValidator(vote.validator));
            };
            if !seen.insert(vote.validator) {
                return Err(CertificateError::DuplicateVote(vote.validator));
            }
            if !verify(&vote.validator.0, &vote_message(&self.c.chain, &vote), sig) {
                return Err(CertificateError::VerificationError(None));
            }
            power = power.saturating_add(v.power);
        }
        Ok(power)
    }

    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    fn check_polka(
        &self,
        cert: &PolkaCertificate<Ctx>,
        vs: &Validators,
    ) -> Result<(), CertificateError<Ctx>> {
        let votes = cert.polka_signatures.iter().map(|s| {
            (
                super::context::ConsensusVote {
                    kind: VoteType::Prevote,
                    height: cert.height,
                    round: cert.round,
                    value: NilOrVal::Val(cert.value_id),
                    validator: s.address,
                },
                &s.signature,
            )
        });
        let signed = self.signed_power(vs, votes)?;
        if !vs.set.is_quorum(signed) {
            return Err(CertificateError::NotEnoughVotingPower {
                signed,
                total: vs.set.total_power(),
                expected: vs.set.total_power() * 2 / 3 + 1,
            });
        }
        Ok(())
    }

    // Malachite's resumption takes its own error type, whatever its size.
    #[allow(clippy::result_large_err)]
    fn check_round(
        &self,
        cert: &RoundCertificate<Ctx>,
        vs: &Validators,
    ) -> Result<(), CertificateError<Ctx>> {
        if cert.cert_type == RoundCertificateType::Precommit
            && let Some(s) = cert
                .round_signatures
                .iter()
                .find(|s| s.vote_type != VoteType::Precommit)
        {
            return Err(CertificateError::InvalidVoteType(s.address));
        }
        let votes = cert.round_signatures.iter().map(|s| {
            (
                super::context::ConsensusVote {
                    kind: s.vote_type,
                    height: cert.height,
                    round: cert.round,
                    value: s.value_id,
                    validator: s.address,
                },
                &s.signature,
            )
        });
        let signed = self.signed_power(vs, votes)?;
        let total = vs.set.total_power();
        let enough = match cert.cert_type {
            RoundCertificateType::Precommit => vs.set.is_quorum(signed),
            // f+1: more than a third.
            RoundCertificateType::Skip => u128::from(signed) * 3 > u128::from(total),
        };
        if !enough {
            return Err(CertificateError::NotEnoughVotingPower {
                signed,
                total,
                expected: total / 3 + 1,
            });
        }
        Ok(())
    }

    // ---- committing ---------------------------------------------------------------

    fn commit_decision(&mut self, cert: &CommitCertificate<Ctx>) -> Result<(), ReplicaError> {
        let height = cert.height.0;
        if height != self.tip.height + 1 {
            // Already committed (e.g. by sync) — nothing to do.
            return Ok(());
        }
        let ours = certificate_from_malachite(cert, &self.vals)
            .expect("Malachite decides on precommits of validators in the set");
        let ex = self
            .candidates
            .remove(&ours.block)
            .expect("a decided block was validated before its proposal reached consensus");
        verify_certificate(&ex.header, &ours, &self.c.validators)
            .expect("a decision's certificate verifies as clients check it");
        self.commit(ex, &ours)?;
        self.start_next = true;
        Ok(())
    }

    fn commit(&mut self, ex: Executed, cert: &Certificate) -> Result<(), ReplicaError> {
        self.ledger.commit(&ex, cert)?;
        let records: Vec<RecordId> = ex.records.iter().map(EncodedRecord::id).collect();
        if ex.header.next_roster_hash != self.c.roster_hash {
            let entry = crate::governance::announced(&ex)
                .expect("a header announcing another roster comes with its writes");
            assert_eq!(entry.roster.hash(), ex.header.next_roster_hash);
            let was_validator = self.is_validator();
            self.c = Arc::new(Consortium::with_roster(
                self.c.genesis.clone(),
                entry.roster,
                entry.height,
            ));
            self.vals = Validators::new(self.c.validators.clone());
            tracing::info!(
                from_height = entry.height,
                validators = self.c.validators.len(),
                members = self.c.roster.members.len(),
                was_validator,
                validator = self.is_validator(),
                "roster changed"
            );
            self.actions.push(Action::RosterChanged(self.c.clone()));
        }
        self.tip = ex.tip;
        self.behind_since = None;
        let tip = self.tip.height;
        self.future.retain(|p| p.message.height.0 > tip);
        let included: HashSet<RecordId> = records.iter().copied().collect();
        for (id, why) in
            self.mempool
                .recheck(&self.ledger, &self.c, &self.tip, self.now_ms, &included)?
        {
            tracing::debug!(%id, %why, "dropped from mempool after block");
        }
        self.actions.push(Action::Committed {
            tip: self.tip.clone(),
            records,
        });
        self.actions.push(Action::Broadcast(NetMsg::Status {
            height: self.tip.height,
            tip: self.tip.hash,
        }));
        Ok(())
    }

    // ---- sync -----------------------------------------------------------------------

    fn maybe_sync(&mut self) {
        let ahead = self
            .peer_heights
            .iter()
            .filter(|(_, h)| **h > self.tip.height)
            .max_by_key(|(p, h)| (**h, **p))
            .map(|(p, h)| (*p, *h));
        let Some((peer, their)) = ahead else {
            self.behind_since = None;
            return;
        };
        // A validator one height behind is usually just a few milliseconds slower than
        // the peer that announced it: consensus will bring the decision. It syncs when
        // two or more behind, or when one behind for a while.
        let since = *self.behind_since.get_or_insert(self.now_ms);
        if self.is_validator()
            && their == self.tip.height + 1
            && self.now_ms - since < 2 * self.timeouts.status_ms as i64
        {
            return;
        }
        // One request at a time; a silent peer is given up after a few status periods.
        if let Some((_, from, at)) = self.syncing
            && from == self.tip.height + 1
            && self.now_ms - at < 4 * self.timeouts.status_ms as i64
        {
            return;
        }
        self.syncing = Some((peer, self.tip.height + 1, self.now_ms));
        self.actions.push(Action::Send(
            peer,
            NetMsg::SyncRequest {
                from: self.tip.height + 1,
                max: SYNC_BLOCKS_MAX,
            },
        ));
    }

    fn serve_sync(&mut self, peer: PublicKey, first: u64, max: u64) -> Result<(), ReplicaError> {
        let mut blocks = Vec::new();
        let mut bytes = 0usize;
        let last = first.saturating_add(max.min(SYNC_BLOCKS_MAX));
        for h in first..last {
            let Some((b, c)) = self.ledger.block_and_certificate(h)? else {
                break;
            };
            bytes += xinlian_genesis::canonical::encode(&b).len();
            blocks.push((b, c));
            if bytes >= SYNC_BYTES_MAX {
                break;
            }
        }
        if !blocks.is_empty() {
            self.actions
                .push(Action::Send(peer, NetMsg::SyncResponse { blocks }));
        }
        Ok(())
    }

    /// Applies synced blocks in order, each only with a valid certificate under the set
    /// in force and a successful re-execution.
    fn on_sync_response(
        &mut self,
        peer: PublicKey,
        blocks: Vec<(Block, Certificate)>,
    ) -> Result<(), ReplicaError> {
        let mut applied = 0;
        for (block, cert) in blocks {
            if block.header.height <= self.tip.height {
                continue;
            }
            if block.header.height != self.tip.height + 1 {
                break;
            }
            if let Err(e) = verify_certificate(&block.header, &cert, &self.c.validators) {
                self.penalise(peer, format!("synced block {}: {e}", block.header.height));
                break;
            }
            let height = block.header.height;
            match execute_block(&self.ledger, &self.c, &self.tip, block) {
                Ok(ex) => {
                    self.commit(ex, &cert)?;
                    applied += 1;
                }
                Err(BlockError::State(e)) => return Err(e.into()),
                Err(e) => {
                    // A certified block that does not re-execute: the certificate's
                    // signers vouched for something invalid. Loud, and not applied.
                    tracing::error!(height, error = %e, "certified block does not re-execute");
                    self.penalise(
                        peer,
                        format!("synced block {height} does not re-execute: {e}"),
                    );
                    break;
                }
            }
        }
        self.syncing = None;
        if applied > 0 {
            tracing::info!(height = self.tip.height, blocks = applied, "synced");
            self.consensus = None;
            self.actions.push(Action::CancelConsensusTimers);
            self.maybe_start(false)?;
            self.maybe_sync();
        }
        Ok(())
    }
}
