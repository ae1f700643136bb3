//! A sparse Merkle map: 256-bit keys to 32-byte value hashes, committed by one root,
//! with proofs of what a key maps to. Block headers commit to one such map, the
//! **batch index** (`trace_root`): SHA-256 of a batch id → SHA-256 of the batch's
//! canonical state, which names its event count and event-chain hash. That is what lets
//! an inspector tell that no event of a batch was left out of an answer.
//!
//! Shape (as in Diem's sparse Merkle tree): a subtree holding no key is `EMPTY`; a
//! subtree holding one key is that key's leaf, placed as high as it can go; any other
//! subtree is an internal node over its two halves, split by the next key bit.
//!
//! ```text
//! EMPTY    = 32 zero bytes
//! leaf     = SHA-256(0x00 ‖ key ‖ value)
//! internal = SHA-256(0x01 ‖ left ‖ right)
//! ```
//!
//! Entries are never removed (batches are never deleted), so insertion is the only
//! update. The storage of nodes is abstracted by [`NodeStore`] so that the node keeps
//! them in its derived state and tests keep them in a map, with one implementation of
//! the algorithm.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xinlian_genesis::Hash32;

pub const EMPTY: Hash32 = Hash32([0; 32]);
/// Key bits: no path is longer.
pub const DEPTH_MAX: usize = 256;

pub fn leaf_hash(key: &Hash32, value: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(key.0);
    h.update(value.0);
    Hash32(h.finalize().into())
}

pub fn internal_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash32(h.finalize().into())
}

/// Bit `i` of `key`, most significant first: 0 goes left, 1 right.
pub fn bit(key: &Hash32, i: usize) -> bool {
    key.0[i / 8] & (0x80 >> (i % 8)) != 0
}

/// A stored node. An internal node keeps both children's hashes, so an update rewrites
/// its path without reading the siblings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    Leaf { key: Hash32, value: Hash32 },
    Internal { left: Hash32, right: Hash32 },
}

impl Node {
    pub fn hash(&self) -> Hash32 {
        match self {
            Node::Leaf { key, value } => leaf_hash(key, value),
            Node::Internal { left, right } => internal_hash(left, right),
        }
    }
}

/// Where a node sits: its depth and the first `depth` bits of the keys below it (the
/// remaining bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub depth: u16,
    pub prefix: Hash32,
}

impl Position {
    pub fn root() -> Self {
        Position {
            depth: 0,
            prefix: EMPTY,
        }
    }

    pub fn of(key: &Hash32, depth: usize) -> Self {
        assert!(depth <= DEPTH_MAX, "depth within the key's bits");
        let mut prefix = *key;
        for i in depth..DEPTH_MAX {
            prefix.0[i / 8] &= !(0x80 >> (i % 8));
        }
        Position {
            depth: depth as u16,
            prefix,
        }
    }

    /// A compact byte form for storage keys: depth (2 bytes) and the prefix's bytes
    /// that hold its bits.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = usize::from(self.depth).div_ceil(8);
        let mut out = Vec::with_capacity(2 + n);
        out.extend_from_slice(&self.depth.to_be_bytes());
        out.extend_from_slice(&self.prefix.0[..n]);
        out
    }
}

pub trait NodeStore {
    type Error;
    fn node(&self, at: &Position) -> Result<Option<Node>, Self::Error>;
    fn put_node(&mut self, at: Position, node: Node);
    fn delete_node(&mut self, at: Position);
}

/// The root hash of the map held in `store`.
pub fn root<S: NodeStore>(store: &S) -> Result<Hash32, S::Error> {
    Ok(store.node(&Position::root())?.map_or(EMPTY, |n| n.hash()))
}

/// Sets `key` to `value`, creating the entry if needed, and returns the new root.
pub fn insert<S: NodeStore>(store: &mut S, key: Hash32, value: Hash32) -> Result<Hash32, S::Error> {
    // Walk down to the empty slot or the leaf on the key's path.
    let mut depth = 0;
    let mut path: Vec<Node> = Vec::new();
    let leaf_depth = loop {
        let at = Position::of(&key, depth);
        match store.node(&at)? {
            None => break depth,
            Some(Node::Leaf { key: k, .. }) if k == key => break depth,
            Some(Node::Leaf {
                key: other,
                value: ov,
            }) => {
                // Push the other leaf down until the two keys part; internal nodes
                // with one empty side fill the shared bits.
                let mut d = depth;
                while bit(&other, d) == bit(&key, d) {
                    d += 1;
                    assert!(d < DEPTH_MAX, "two distinct keys part before the last bit");
                }
                store.delete_node(at);
                store.put_node(
                    Position::of(&other, d + 1),
                    Node::Leaf {
                        key: other,
                        value: ov,
                    },
                );
                // Placeholders the rebuild below overwrites: only the side towards
                // `other` is read from them.
                for e in depth..=d {
                    let side = if bit(&other, e) {
                        Node::Internal {
                            left: EMPTY,
                            right: if e == d {
                                leaf_hash(&other, &ov)
                            } else {
                                EMPTY
                            },
                        }
                    } else {
                        Node::Internal {
                            left: if e == d {
                                leaf_hash(&other, &ov)
                            } else {
                                EMPTY
                            },
                            right: EMPTY,
                        }
                    };
                    path.push(side);
                }
                break d + 1;
            }
            Some(n @ Node::Internal { .. }) => {
                path.push(n);
                depth += 1;
                assert!(depth < DEPTH_MAX, "an internal node above the last bit");
            }
        }
    };
    // Rebuild from the leaf up, replacing the child on the key's side at each level.
    let leaf = Node::Leaf { key, value };
    let mut h = leaf.hash();
    store.put_node(Position::of(&key, leaf_depth), leaf);
    for d in (0..leaf_depth).rev() {
        let Node::Internal { left, right } = path[d] else {
            unreachable!("the path above a leaf is internal nodes");
        };
        let n = if bit(&key, d) {
            Node::Internal { left, right: h }
        } else {
            Node::Internal { left: h, right }
        };
        h = n.hash();
        store.put_node(Position::of(&key, d), n);
    }
    Ok(h)
}

/// What a map holds for one key, with the siblings from the root down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapProof {
    pub siblings: Vec<Hash32>,
    /// The leaf that ends the path: the key's own, or another key's (then the key is
    /// absent), or none (an empty subtree: absent).
    pub leaf: Option<(Hash32, Hash32)>,
}

pub fn prove<S: NodeStore>(store: &S, key: &Hash32) -> Result<MapProof, S::Error> {
    let mut siblings = Vec::new();
    let mut depth = 0;
    loop {
        match store.node(&Position::of(key, depth))? {
            None => {
                return Ok(MapProof {
                    siblings,
                    leaf: None,
                });
            }
            Some(Node::Leaf { key, value }) => {
                return Ok(MapProof {
                    siblings,
                    leaf: Some((key, value)),
                });
            }
            Some(Node::Internal { left, right }) => {
                siblings.push(if bit(key, depth) { left } else { right });
                depth += 1;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapProofError {
    #[error("path of {0} siblings is longer than the key")]
    TooLong(usize),
    #[error("the map holds no entry for the key")]
    Absent,
    #[error("the path ends at a leaf whose key does not share the path's bits")]
    Misplaced,
    #[error("the entry's value is {got}, not {expected}")]
    Value { expected: Hash32, got: Hash32 },
    #[error("the path leads to root {got}, not {expected}")]
    Root { expected: Hash32, got: Hash32 },
}

impl MapProof {
    /// The root this proof leads to.
    fn root_for(&self, key: &Hash32) -> Result<Hash32, MapProofError> {
        if self.siblings.len() > DEPTH_MAX {
            return Err(MapProofError::TooLong(self.siblings.len()));
        }
        let mut h = match &self.leaf {
            None => EMPTY,
            Some((k, v)) => {
                if Position::of(k, self.siblings.len()) != Position::of(key, self.siblings.len()) {
                    return Err(MapProofError::Misplaced);
                }
                leaf_hash(k, v)
            }
        };
        for (d, s) in self.siblings.iter().enumerate().rev() {
            h = if bit(key, d) {
                internal_hash(s, &h)
            } else {
                internal_hash(&h, s)
            };
        }
        Ok(h)
    }

    /// Checks that the proof leads to `root` for `key`; returns the key's entry, if any.
    fn check(
        &self,
        root: &Hash32,
        key: &Hash32,
    ) -> Result<Option<(Hash32, Hash32)>, MapProofError> {
        let got = self.root_for(key)?;
        if &got != root {
            return Err(MapProofError::Root {
                expected: *root,
                got,
            });
        }
        Ok(self.leaf.filter(|(k, _)| k == key))
    }

    /// Checks that the map with root `root` maps `key` to `value`.
    pub fn verify(&self, root: &Hash32, key: &Hash32, value: &Hash32) -> Result<(), MapProofError> {
        match self.check(root, key)? {
            Some((_, v)) if &v == value => Ok(()),
            Some((_, v)) => Err(MapProofError::Value {
                expected: *value,
                got: v,
            }),
            None => Err(MapProofError::Absent),
        }
    }

    /// Checks that the map with root `root` holds nothing under `key`.
    pub fn verify_absent(&self, root: &Hash32, key: &Hash32) -> Result<(), MapProofError> {
        match self.check(root, key)? {
            Some((_, v)) => Err(MapProofError::Value {
                expected: EMPTY,
                got: v,
            }),
            None => Ok(()),
        }
    }
}

/// A map kept in memory, for tests and simulations.
#[derive(Clone, Debug, Default)]
pub struct MemMap(pub std::collections::BTreeMap<Position, Node>);

impl NodeStore for MemMap {
    type Error = std::convert::Infallible;
    fn node(&self, at: &Position) -> Result<Option<Node>, Self::Error> {
        Ok(self.0.get(at).copied())
    }
    fn put_node(&mut self, at: Position, node: Node) {
        self.0.insert(at, node);
    }
    fn delete_node(&mut self, at: Position) {
        self.0.remove(&at);
    }
}
