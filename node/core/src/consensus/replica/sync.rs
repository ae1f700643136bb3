//! Block sync: asking a peer ahead of us for blocks, serving peers behind us, and
//! applying synced blocks that carry a valid certificate and re-execute.

use xinlian_client::block::{Block, Certificate, trimmed_to_quorum, verify_certificate};
use xinlian_genesis::PublicKey;

use super::heights::Start;
use super::{
    ASKED_REMEMBERED, Action, DAMAGED_HEIGHTS_MAX, RepairRequest, Replica, ReplicaError,
    SYNC_BACKOFF_DOUBLINGS_MAX, SYNC_PATIENCE_PERIODS, SyncRequest,
};
use crate::chain::{BlockError, Executed, execute_block};
use crate::consensus::ledger::{Ledger, LedgerError, RepairOutcome};
use crate::consensus::wire::{NetMsg, SYNC_BLOCKS_MAX, SYNC_BYTES_MAX};
use crate::governance::consortium_at;
use crate::overlay::{StateError, StateRead, Writes};

/// Derived state as it will be once the blocks executed but not yet committed are: a
/// synced block executes over the writes of those before it in its batch, merged into
/// one map (one lookup per read, not one per block: searching each block's writes in
/// turn took a third of a fresh node's sync).
struct Pending<'a, L> {
    base: &'a L,
    writes: &'a Writes,
}

impl<L: StateRead> StateRead for Pending<'_, L> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
}

impl<L: Ledger> Replica<L> {
    /// Asks a peer ahead of us for the blocks after our tip, unless consensus is about
    /// to bring them or a request is already in flight.
    ///
    /// Whom to ask: among the peers claiming a height above ours, the one with the
    /// highest claim that is not sitting out a back-off. A peer that answers a request
    /// with nothing we can apply, or not at all, sits out `status × 2^strikes` (capped),
    /// so one that lies about its height — `u64::MAX`, say — is asked once and then
    /// rarely, and the others are asked meanwhile.
    pub(super) fn maybe_sync(&mut self) {
        self.expire_sync_request();
        let now = self.now_ms;
        // Never the peer a repair is asking (one request per peer at a time, so that
        // each answer, and each Busy, is known to be the one or the other's).
        let repairing_from = self.repairing.map(|r| r.peer);
        let ahead = self
            .peer_heights
            .iter()
            .filter(|(p, h)| {
                **h > self.tip.height
                    && Some(**p) != repairing_from
                    && self.sync_backoff.get(*p).is_none_or(|b| b.until_ms <= now)
            })
            .max_by_key(|(p, h)| (**h, **p))
            .map(|(p, h)| (*p, *h));
        let Some((peer, their)) = ahead else {
            if !self.peer_heights.values().any(|h| *h > self.tip.height) {
                self.behind_since = None;
            }
            return;
        };
        // A validator one height behind is usually just a few milliseconds slower than
        // the peer that announced it: consensus will bring the decision. It syncs when
        // two or more behind, or when one behind for a while.
        let since = *self.behind_since.get_or_insert(now);
        if self.is_validator()
            && their == self.tip.height + 1
            && now - since < 2 * self.timeouts.status_ms as i64
        {
            return;
        }
        if self.syncing.is_some() {
            return; // one request at a time
        }
        self.syncing = Some(SyncRequest {
            peer,
            at_ms: now,
            claimed: their,
        });
        self.ask_for_blocks(peer, self.tip.height + 1, SYNC_BLOCKS_MAX);
    }

    /// Sends `peer` a request for `max` blocks from `first`, remembering that we asked
    /// (only answers from peers asked lately are read).
    fn ask_for_blocks(&mut self, peer: PublicKey, first: u64, max: u64) {
        if self.asked.len() == ASKED_REMEMBERED {
            self.asked.pop_front();
        }
        self.asked.push_back(peer);
        self.actions
            .push(Action::Send(peer, NetMsg::SyncRequest { from: first, max }));
    }

    /// Gives up on a request unanswered for a few status periods, striking its peer.
    fn expire_sync_request(&mut self) {
        if let Some(req) = self.syncing
            && self.now_ms - req.at_ms >= SYNC_PATIENCE_PERIODS * self.timeouts.status_ms as i64
        {
            self.syncing = None;
            self.strike_sync_peer(req.peer);
        }
    }

    /// A peer did not bear out its claim: it sits out a doubling back-off.
    fn strike_sync_peer(&mut self, peer: PublicKey) {
        let status = self.timeouts.status_ms as i64;
        let b = self.sync_backoff.entry(peer).or_default();
        b.strikes = (b.strikes + 1).min(SYNC_BACKOFF_DOUBLINGS_MAX);
        b.until_ms = self.now_ms + status * (1i64 << b.strikes);
        tracing::debug!(%peer, strikes = b.strikes, "sync peer did not deliver");
    }

    /// A peer's connection is gone: forget what it claimed. Its back-off stays (the
    /// table is bounded by the roster), so reconnecting does not clear its strikes.
    pub fn peer_gone(&mut self, peer: &PublicKey) {
        self.peer_heights.remove(peer);
        if matches!(self.syncing, Some(r) if r.peer == *peer) {
            self.syncing = None;
        }
        // A repair it can no longer answer goes to another peer, unstruck.
        if matches!(self.repairing, Some(r) if r.peer == *peer) {
            self.repairing = None;
        }
    }

    /// The peer asked is too busy to answer. Said at once, as a server at its bound
    /// says it, that is no lie: no strike, but it sits out one status period while
    /// another peer is asked, so a peer that always says so costs one prompt round trip
    /// per status period, whatever height it claims. Said after more than a status
    /// period, it held the request as silence would, and is struck as silence is.
    pub(super) fn on_sync_busy(&mut self, peer: PublicKey) {
        if let Some(req) = self.repairing.filter(|r| r.peer == peer) {
            // Repairs never go to the peer syncing us, so this Busy is the repair's.
            self.repairing = None;
            self.sit_out_one_status_period(peer, req.at_ms);
            self.maybe_repair();
            return;
        }
        let Some(req) = self.syncing.filter(|r| r.peer == peer) else {
            return;
        };
        self.syncing = None;
        self.sit_out_one_status_period(peer, req.at_ms);
        self.maybe_sync();
    }

    /// A peer that said at once that it cannot answer (a request asked at `asked_ms`)
    /// sits out one status period unstruck; said late, it is struck as silence is.
    fn sit_out_one_status_period(&mut self, peer: PublicKey, asked_ms: i64) {
        let status = self.timeouts.status_ms as i64;
        if self.now_ms - asked_ms > status {
            self.strike_sync_peer(peer);
        } else {
            let b = self.sync_backoff.entry(peer).or_default();
            b.until_ms = b.until_ms.max(self.now_ms + status);
        }
    }

    /// Sends a peer the blocks it asked for that we have, with their certificates.
    pub(super) fn serve_sync(
        &mut self,
        peer: PublicKey,
        first: u64,
        max: u64,
    ) -> Result<(), ReplicaError> {
        let mut blocks = Vec::new();
        let mut bytes = 0usize;
        let last = first.saturating_add(max.min(SYNC_BLOCKS_MAX));
        for h in first..last {
            let (b, c) = match self.ledger.block_and_certificate(h) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                // Never served: what came before it is, and a peer's copy repairs it.
                Err(LedgerError::Damaged { height, what }) => {
                    self.note_damage(height, &what);
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
        if !blocks.is_empty() {
            self.actions
                .push(Action::Send(peer, NetMsg::SyncResponse { blocks }));
        }
        Ok(())
    }

    /// Applies synced blocks in order, each only with a valid certificate under the set
    /// in force and a successful re-execution.
    ///
    /// Only an answer from a peer we asked lately is read (anything else would let any
    /// peer make us check certificates at will); an empty answer to the request in
    /// flight, asked on a claim above our tip, strikes its peer.
    pub(super) fn on_sync_response(
        &mut self,
        peer: PublicKey,
        blocks: Vec<(Block, Certificate)>,
    ) -> Result<(), ReplicaError> {
        // A repair's answer first: repairs are not in `asked`, so that they never push
        // a sync peer out of it (nor sync asks the repair's peer), and never go to the
        // peer syncing us. Answers carry no request number, so the repair's is the one
        // from its peer that is empty or starts at its height; anything else from that
        // peer is a late answer to an earlier sync request, read as one (and a lie
        // sent instead of a copy leaves the repair to expire and strike).
        if let Some(req) = self.repairing.filter(|r| r.peer == peer)
            && blocks
                .first()
                .is_none_or(|(b, _)| b.header.height == req.height)
        {
            return self.on_repair_copy(peer, blocks);
        }
        if !self.asked.contains(&peer) {
            return Ok(());
        }
        // The request this answers, if it is the one in flight (else a late answer to an
        // earlier one: applied if it holds, never struck).
        let current = self.syncing.filter(|r| r.peer == peer);
        let asked_beyond_tip = current.is_some_and(|r| r.claimed > self.tip.height);
        // Executed in order, each over the writes of those before it, and committed
        // together (one write of the ledger), or up to a block that announces a roster,
        // under which the next certificate is checked.
        let mut applied = 0;
        let mut batch: Vec<(Executed, Certificate)> = Vec::new();
        let mut pending_writes = Writes::new();
        let mut tip = self.tip.clone();
        for (block, cert) in blocks {
            if block.header.height <= tip.height {
                continue;
            }
            if block.header.height != tip.height + 1 {
                break;
            }
            if let Err(e) = verify_certificate(&block.header, &cert, &self.c.validators) {
                self.penalise(peer, format!("synced block {}: {e}", block.header.height));
                break;
            }
            let height = block.header.height;
            if (block.records.iter()).any(|r| r.envelope.body.has_sealed_amount()) {
                // A record's sealed copy (the leaf of the opened one): the peer's doing,
                // not the certificate's signers'.
                self.penalise(peer, format!("synced block {height} has a sealed copy"));
                break;
            }
            let pending = Pending {
                base: &self.ledger,
                writes: &pending_writes,
            };
            match execute_block(&pending, &self.c, &tip, block) {
                Ok(ex) => {
                    tip = ex.tip.clone();
                    let announces = ex.header.next_roster_hash != self.c.roster_hash;
                    pending_writes.extend(ex.writes.iter().map(|(k, v)| (k.clone(), v.clone())));
                    batch.push((ex, cert));
                    applied += 1;
                    if announces {
                        self.commit_blocks(std::mem::take(&mut batch), true)?;
                        pending_writes.clear();
                    }
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
        self.commit_blocks(batch, true)?;
        if current.is_some() {
            self.syncing = None;
        }
        if applied == 0 && asked_beyond_tip {
            self.strike_sync_peer(peer);
        } else if applied > 0 {
            self.sync_backoff.remove(&peer);
        }
        if applied > 0 {
            tracing::info!(height = self.tip.height, blocks = applied, "synced");
            self.consensus = None;
            self.actions.push(Action::CancelConsensusTimers);
            self.maybe_start(Start::IfDue)?;
            self.maybe_sync();
        }
        Ok(())
    }

    /// The store found block `height`'s history damaged (a read of it, or the host's
    /// scrub): it is repaired from a peer's copy, one height at a time.
    pub fn history_damaged(&mut self, now_ms: i64, height: u64, what: &str) -> Vec<Action> {
        self.now_ms = now_ms;
        self.note_damage(height, what);
        self.maybe_repair();
        std::mem::take(&mut self.actions)
    }

    fn note_damage(&mut self, height: u64, what: &str) {
        if height == 0
            || height > self.tip.height
            || self.damaged.contains(&height)
            || self.beyond_repair.contains(&height)
        {
            return;
        }
        if self.damaged.len() >= DAMAGED_HEIGHTS_MAX {
            tracing::error!(
                height,
                what,
                "history damaged beyond repair from peers: re-sync this node"
            );
            return;
        }
        tracing::error!(height, what, "history damaged: asking a peer for a copy");
        self.damaged.insert(height);
    }

    /// Asks a peer that has the lowest damaged height for its copy, unless a request is
    /// in flight; one unanswered for a few status periods strikes its peer as sync does.
    pub(super) fn maybe_repair(&mut self) {
        if let Some(req) = self.repairing
            && self.now_ms - req.at_ms >= SYNC_PATIENCE_PERIODS * self.timeouts.status_ms as i64
        {
            self.repairing = None;
            self.strike_sync_peer(req.peer);
        }
        // The highest first: a damaged block entry is checked against the next one's,
        // so a run of them is mended from its top.
        let Some(&height) = self.damaged.last() else {
            return;
        };
        if self.repairing.is_some() {
            return;
        }
        let now = self.now_ms;
        let syncing_from = self.syncing.map(|r| r.peer);
        let Some(peer) = self
            .peer_heights
            .iter()
            .filter(|(p, h)| {
                **h >= height
                    && Some(**p) != syncing_from
                    && self.sync_backoff.get(*p).is_none_or(|b| b.until_ms <= now)
            })
            .min_by_key(|(p, _)| {
                // Rotate: the peer after the last one asked, by key.
                (self.repaired_by.is_some_and(|l| **p <= l), **p)
            })
            .map(|(p, _)| *p)
        else {
            return;
        };
        self.repairing = Some(RepairRequest {
            peer,
            at_ms: now,
            height,
        });
        self.repaired_by = Some(peer);
        self.actions.push(Action::Send(
            peer,
            NetMsg::SyncRequest {
                from: height,
                max: 1,
            },
        ));
    }

    /// A peer's copy of a damaged height: the store writes it back only if it is the
    /// block committed here; a copy that is not is the peer's lie, penalised and struck.
    fn on_repair_copy(
        &mut self,
        peer: PublicKey,
        blocks: Vec<(Block, Certificate)>,
    ) -> Result<(), ReplicaError> {
        let Some(req) = self.repairing.take() else {
            return Ok(());
        };
        let Some((block, certificate)) = blocks.into_iter().next() else {
            // No copy (an honest peer's may be damaged too): it sits out a status
            // period and the next peer is asked.
            self.sit_out_one_status_period(peer, req.at_ms);
            self.maybe_repair();
            return Ok(());
        };
        let height = block.header.height;
        // The certificate replaces ours if our block entry is what is damaged: it must
        // finalise the copy under the validators in force at its height, and is kept
        // to a quorum so that it fits the place of ours.
        let validators = consortium_at(&self.ledger, &self.c.genesis, height)?.validators;
        if let Err(e) = verify_certificate(&block.header, &certificate, &validators) {
            self.penalise(peer, format!("copy of block {height} for repair: {e}"));
            self.strike_sync_peer(peer);
            self.maybe_repair();
            return Ok(());
        }
        let certificate = trimmed_to_quorum(&certificate, &validators);
        match self.ledger.repair(&block, &certificate) {
            Ok(RepairOutcome::Repaired { entries }) => {
                tracing::info!(height, entries, %peer, "damaged history repaired from a peer's copy");
                self.forget_damage(height);
            }
            Ok(RepairOutcome::Intact) => {
                // Our records equal the true copy's: mended since it was reported (a
                // second report of the same damage, queued meanwhile), or what is
                // damaged is something a copy does not hold. A read tells which.
                self.forget_damage(height);
                if let Err(LedgerError::Damaged { what, .. }) =
                    self.ledger.block_and_certificate(height)
                {
                    self.give_up_repair(height, &what);
                }
            }
            Ok(RepairOutcome::Refused(why)) => {
                self.penalise(peer, format!("copy of block {height} for repair: {why}"));
                self.strike_sync_peer(peer);
            }
            Ok(RepairOutcome::Unfit(why)) => {
                // The peer's certificate is as good as ours but longer: another's may
                // fit. Given up once every peer's did not.
                let tried = self.unfit_copies.entry(height).or_insert(0);
                *tried += 1;
                if *tried >= self.peer_heights.len().max(1) {
                    self.forget_damage(height);
                    self.give_up_repair(height, &why);
                } else {
                    self.sit_out_one_status_period(peer, req.at_ms);
                }
            }
            Ok(RepairOutcome::Waits { on }) => {
                // Asked highest first, so `on` goes next and this one after it.
                if on > height {
                    self.note_damage(on, &format!("block {height}'s entry waits for it"));
                }
                if !self.damaged.contains(&on) {
                    self.forget_damage(height);
                    self.give_up_repair(
                        height,
                        &format!("its entry is checked against block {on}'s, beyond repair"),
                    );
                }
            }
            Err(LedgerError::Damaged { what, .. }) => {
                // Damage a copy cannot mend (an index entry; a block entry whose
                // neighbour naming its hash is damaged too).
                self.forget_damage(height);
                self.give_up_repair(height, &what);
            }
            Err(e) => return Err(e.into()),
        }
        self.maybe_repair();
        Ok(())
    }

    /// `height` is no longer waiting for a copy.
    fn forget_damage(&mut self, height: u64) {
        self.damaged.remove(&height);
        self.unfit_copies.remove(&height);
    }

    /// A damaged height no copy mends: reported once, never asked for again (each read
    /// of it would find the damage and report it anew).
    fn give_up_repair(&mut self, height: u64, what: &str) {
        tracing::error!(
            height,
            what,
            "history damaged beyond repair from peers: re-sync this node"
        );
        if self.beyond_repair.len() < DAMAGED_HEIGHTS_MAX {
            self.beyond_repair.insert(height);
        }
    }
}
