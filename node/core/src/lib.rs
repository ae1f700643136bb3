//! The node's deterministic core: everything that decides what the ledger holds, as
//! state machines fed records, messages and time, returning what to do.
//!
//! - [`overlay`]: layered reads over uncommitted writes (a rejected record writes nothing);
//! - [`consortium`]: genesis and the roster in force at a height, with look-ups;
//! - [`execute`]: validation against state and the state transition of every record kind;
//! - [`governance`]: proposal and vote execution, and the next roster at a height boundary;
//! - [`chain`]: building a block (proposer) and re-executing one (every other node);
//! - [`index`]: the sparse Merkle maps of batch states (`trace_root`) and credit states (`credit_root`);
//! - [`mempool`]: pending records with a speculative overlay;
//! - [`consensus`]: the replica that drives Malachite's Tendermint core.
//!
//! Architecture invariant: no I/O, no clock, no randomness, no async runtime — time
//! enters as an argument, state through [`overlay::StateRead`] and
//! [`consensus::ledger::Ledger`]. Enforced by this crate's dependencies (checked by
//! the workspace's tidy test) and by `clippy.toml` beside `Cargo.toml`.

// An `expect` states the invariant that makes it unreachable; `unwrap` says nothing.
#![deny(clippy::unwrap_used)]

pub mod chain;
pub mod consensus;
pub mod consortium;
pub mod execute;
pub mod governance;
pub mod index;
pub mod mempool;
pub mod overlay;
