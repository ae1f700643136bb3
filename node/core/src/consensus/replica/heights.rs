//! Starting heights (afresh or from the write-ahead log) and the loop that feeds
//! queued inputs to Malachite's state machine.

use malachite::{Input, Params, State, ValuePayload};
use malachite_types::{NilOrVal, ThresholdParams, VoteExtensionPolicy, VoteType};

use super::effects::wal_digest;
use super::{Action, INPUT_QUEUE_MAX, INPUT_QUEUE_PER_HEIGHT_MAX, Replica, ReplicaError, Timer};
use crate::consensus::context::{Address, Ctx, Height};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::{SignedVote, WireProposal};

/// What asks [`Replica::maybe_start`] to start the next height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Start {
    /// Start only when it is due: a block interval after the last block, and once
    /// there is something to record or a heartbeat is due; else schedule a look later.
    IfDue,
    /// Another validator has started the height: join it now.
    Join,
}

/// How [`Replica::start_height`] begins the height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Begin {
    /// A new height: nothing of it has been logged.
    Afresh,
    /// Resuming a height we were in the middle of: replay its write-ahead log.
    FromWal,
}

impl<L: Ledger> Replica<L> {
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
    /// ([`Start::Join`]) another validator has started it.
    pub(super) fn maybe_start(&mut self, start: Start) -> Result<(), ReplicaError> {
        if !self.is_validator() || self.consensus.is_some() {
            return Ok(());
        }
        if let Some(until) = self.listening_until {
            // Listening first (`listening_until`): for its peers' heights, then for
            // the blocks up to them.
            if self.now_ms < until {
                self.schedule(Timer::NextHeight, (until - self.now_ms).max(1) as u64);
                return Ok(());
            }
            if self.sync_target().is_some() {
                self.maybe_sync();
                self.schedule(Timer::NextHeight, self.timeouts.status_ms);
                return Ok(());
            }
            self.listening_until = None;
        }
        let since = self.now_ms - self.tip.time_ms;
        let interval = self.timeouts.block_interval_ms as i64;
        let heartbeat = self.timeouts.heartbeat_ms as i64;
        let due = since >= interval && (!self.mempool.is_empty() || since >= heartbeat);
        if start == Start::Join || due {
            return self.start_height(Begin::Afresh);
        }
        let wait = if self.mempool.is_empty() {
            heartbeat - since
        } else {
            interval - since
        };
        self.schedule(Timer::NextHeight, wait.max(1) as u64);
        Ok(())
    }

    /// Starts consensus at `tip + 1`, replaying the write-ahead log of that height
    /// when `begin` is [`Begin::FromWal`].
    ///
    /// On a restart, everything the log says we signed is known *before* Malachite
    /// starts the height: starting it may at once ask us to propose or vote (round 0),
    /// and the double-sign guard and Malachite's replay index must already refuse
    /// anything but what we signed before the crash.
    pub(super) fn start_height(&mut self, begin: Begin) -> Result<(), ReplicaError> {
        let height = Height(self.tip.height + 1);
        self.candidates.clear();
        self.proposals.clear();
        self.assembling.clear();
        self.parts_served.clear();
        self.logged_values.clear();
        self.early_voters.clear();
        self.signed_votes.retain(|(h, _, _), _| *h >= height.0);
        self.signed_proposals.retain(|(h, _), _| *h >= height.0);
        let mut state = State::new(
            self.ctx.clone(),
            height,
            self.vals.clone(),
            self.params(),
            INPUT_QUEUE_MAX,
            INPUT_QUEUE_PER_HEIGHT_MAX,
        );
        self.actions.push(Action::CancelConsensusTimers);
        let logged = match begin {
            Begin::FromWal => self.ledger.wal(height.0)?,
            Begin::Afresh => Vec::new(),
        };
        let wal: Vec<Input<Ctx>> = logged
            .iter()
            .cloned()
            .map(|e| e.into_input(height.0))
            .collect();
        let restart = !wal.is_empty();
        if restart {
            tracing::info!(
                height = height.0,
                entries = wal.len(),
                "replaying the write-ahead log"
            );
            self.recall_logged(&wal)?;
            state.index_wal_entries(wal.iter());
            self.replayed = logged.iter().map(wal_digest).collect();
        }
        self.consensus = Some(state);
        self.inputs.push_back(Input::StartHeight(
            height,
            self.vals.clone(),
            restart,
            None,
            VoteExtensionPolicy::Disabled,
        ));
        self.inputs.extend(wal);
        let replayed = self.drain();
        if restart {
            self.replayed.clear();
            if let Some(state) = self.consensus.as_mut() {
                state.reset_entries_index();
            }
        }
        replayed?;
        // Proposals that arrived early for this height.
        let early: Vec<WireProposal> = std::mem::take(&mut self.future)
            .into_iter()
            .filter(|p| p.height > self.tip.height)
            .collect();
        for p in early {
            let from = p.proposer;
            self.on_proposal(from, p)?;
        }
        // Votes that arrived early for this height; later heights' stay.
        let (now, later): (Vec<SignedVote>, Vec<SignedVote>) =
            std::mem::take(&mut self.later_votes)
                .into_iter()
                .filter(|v| v.message.height.0 >= height.0)
                .partition(|v| v.message.height == height);
        self.later_votes = later;
        self.inputs.extend(now.into_iter().map(Input::Vote));
        self.drain()
    }

    /// What a write-ahead log says of a height, known before it restarts: what we
    /// signed (the double-sign guard), and the blocks proposed, re-executed so that a
    /// decision can commit them and our own can be proposed again.
    fn recall_logged(&mut self, wal: &[Input<Ctx>]) -> Result<(), ReplicaError> {
        for input in wal {
            self.remember_own(input);
            match input {
                Input::Proposal(p) => {
                    if self.validate(&p.message.value)?
                        && let Some(r) = p.message.round.as_u32()
                    {
                        self.keep_proposal(r, p.clone());
                    }
                }
                Input::ProposedValue(v, _) if self.validate(&v.value)? => {
                    self.logged_values.insert(v.value.id, v.value.clone());
                }
                _ => {}
            }
        }
        Ok(())
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
                    (p.message.value.id, p.message.pol_round.as_u32()),
                );
            }
            // The value we chose to propose, logged (durably) before we signed it. Only a
            // fresh value is logged so (Malachite re-proposes a valid value without
            // asking us), and a fresh value goes out under no proof-of-lock round: the
            // logged `valid_round` is always nil, as that proposal's is.
            Input::ProposedValue(v, _) if v.proposer.0 == self.me => {
                self.signed_proposals
                    .entry((v.height.0, v.round.as_u32()))
                    .or_insert((v.value.id, v.valid_round.as_u32()));
            }
            _ => {}
        }
    }

    /// Feeds queued inputs to Malachite one at a time, handling every effect.
    pub(super) fn drain(&mut self) -> Result<(), ReplicaError> {
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
                self.maybe_start(Start::IfDue)?;
            }
        }
        Ok(())
    }
}
