//! Keeps the two indexes of derived state (`xinlian_client::smt`) that headers commit
//! to: the batch index (each batch's id → the hash of its state, root `trace_root`)
//! and the credit index (each enterprise's USCC → the hash of its credit state, root
//! `credit_root`). After a block's records have executed, every entry its writes
//! changed is re-hashed into its index. Runs inside block execution, so it is as
//! deterministic as the rest of it and its node writes are part of the block's writes.

use xinlian_client::smt::{self, Node, NodeStore, Position};
use xinlian_client::state::{BatchState, CreditState, key};
use xinlian_genesis::{Hash32, canonical};

use crate::overlay::{Overlay, StateError, StateRead};

/// Which index: the state table it covers and where its nodes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    Batch,
    Credit,
}

impl Index {
    /// The tag of the state table whose entries the index commits to.
    fn table(self) -> u8 {
        match self {
            Index::Batch => key::BATCH,
            Index::Credit => key::CREDIT,
        }
    }

    fn node_key(self, at: &Position) -> Vec<u8> {
        match self {
            Index::Batch => key::batch_index_node(at),
            Index::Credit => key::credit_index_node(at),
        }
    }

    /// An entry's key in the index, from its state key without the table tag.
    fn entry_key(self, raw: &[u8]) -> Hash32 {
        match self {
            Index::Batch => BatchState::index_key_of_raw(raw),
            Index::Credit => CreditState::index_key_of_raw(raw),
        }
    }
}

/// The index's nodes, read and written through a block's overlay.
struct InOverlay<'o, 'a>(&'o mut Overlay<'a>, Index);

impl NodeStore for InOverlay<'_, '_> {
    type Error = StateError;
    fn node(&self, at: &Position) -> Result<Option<Node>, StateError> {
        self.0.get(&self.1.node_key(at))
    }
    fn put_node(&mut self, at: Position, node: Node) {
        self.0.put(self.1.node_key(&at), &node);
    }
    fn delete_node(&mut self, at: Position) {
        self.0.delete(self.1.node_key(&at));
    }
}

/// Read-only access to an index's committed nodes, for proofs.
pub struct Committed<'s>(pub &'s dyn StateRead, pub Index);

impl NodeStore for Committed<'_> {
    type Error = StateError;
    fn node(&self, at: &Position) -> Result<Option<Node>, StateError> {
        let k = self.1.node_key(at);
        match self.0.get(&k)? {
            None => Ok(None),
            Some(b) => canonical::decode(&b, 1024)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    key: hex::encode(&k),
                    reason: e.to_string(),
                }),
        }
    }
    fn put_node(&mut self, _: Position, _: Node) {
        unreachable!("committed index nodes are only read")
    }
    fn delete_node(&mut self, _: Position) {
        unreachable!("committed index nodes are only read")
    }
}

/// Re-indexes every entry of `index` the overlay's writes changed and returns the new
/// root. Neither batches nor credit states are ever deleted (the index has no removal):
/// a deletion would be a bug in execution, reported as corrupt state, never a panic.
pub fn update(overlay: &mut Overlay<'_>, index: Index) -> Result<Hash32, StateError> {
    let tag = index.table();
    let changed: Vec<(Hash32, Hash32)> = overlay
        .writes()
        .range(vec![tag]..vec![tag + 1])
        .map(|(k, v)| match v {
            Some(v) => Ok((index.entry_key(&k[1..]), canonical::sha256(v))),
            None => Err(StateError::Corrupt {
                key: hex::encode(k),
                reason: "an indexed entry was deleted".into(),
            }),
        })
        .collect::<Result<_, _>>()?;
    let mut store = InOverlay(overlay, index);
    for (k, v) in changed {
        smt::insert(&mut store, k, v)?;
    }
    smt::root(&store)
}
