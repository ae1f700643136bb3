//! Keeps the batch index (`xinlian_client::smt`) in derived state: after a block's
//! records have executed, every batch they changed is re-hashed into the index, and its
//! root goes into the header as `trace_root`. Runs inside block execution, so it is as
//! deterministic as the rest of it and its node writes are part of the block's writes.

use xinlian_client::smt::{self, Node, NodeStore, Position};
use xinlian_client::state::{BatchState, key};
use xinlian_genesis::{Hash32, canonical};

use crate::overlay::{Overlay, StateError, StateRead};

/// The index's nodes, read and written through a block's overlay.
struct InOverlay<'o, 'a>(&'o mut Overlay<'a>);

impl NodeStore for InOverlay<'_, '_> {
    type Error = StateError;
    fn node(&self, at: &Position) -> Result<Option<Node>, StateError> {
        self.0.get(&key::batch_index_node(at))
    }
    fn put_node(&mut self, at: Position, node: Node) {
        self.0.put(key::batch_index_node(&at), &node);
    }
    fn delete_node(&mut self, at: Position) {
        self.0.delete(key::batch_index_node(&at));
    }
}

/// Read-only access to committed index nodes, for proofs.
pub struct Committed<'s>(pub &'s dyn StateRead);

impl NodeStore for Committed<'_> {
    type Error = StateError;
    fn node(&self, at: &Position) -> Result<Option<Node>, StateError> {
        match self.0.get(&key::batch_index_node(at))? {
            None => Ok(None),
            Some(b) => canonical::decode(&b, 1024)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    key: hex::encode(key::batch_index_node(at)),
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

/// Re-indexes every batch the overlay's writes changed and returns the new root.
pub fn update(overlay: &mut Overlay<'_>) -> Result<Hash32, StateError> {
    let changed: Vec<(Hash32, Hash32)> = overlay
        .writes()
        .range(vec![key::BATCH]..vec![key::BATCH + 1])
        .map(|(k, v)| {
            let v = v
                .as_ref()
                .expect("batches are never deleted: the index has no removal");
            (BatchState::index_key_of_raw(&k[1..]), canonical::sha256(v))
        })
        .collect();
    let mut store = InOverlay(overlay);
    for (k, v) in changed {
        smt::insert(&mut store, k, v)?;
    }
    smt::root(&store)
}
