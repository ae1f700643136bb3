//! Block sync: asking a peer ahead of us for blocks, serving peers behind us, and
//! applying synced blocks that carry a valid certificate and re-execute.

use xinlian_client::block::{Block, Certificate, verify_certificate};
use xinlian_genesis::PublicKey;

use super::heights::Start;
use super::{Action, Replica, ReplicaError};
use crate::chain::{BlockError, execute_block};
use crate::consensus::ledger::Ledger;
use crate::consensus::wire::{NetMsg, SYNC_BLOCKS_MAX, SYNC_BYTES_MAX};

impl<L: Ledger> Replica<L> {
    /// Asks the highest peer ahead of us for the blocks after our tip, unless consensus
    /// is about to bring them or a request is already in flight.
    pub(super) fn maybe_sync(&mut self) {
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
    pub(super) fn on_sync_response(
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
            self.maybe_start(Start::IfDue)?;
            self.maybe_sync();
        }
        Ok(())
    }
}
