//! The xinlian node: validation against state and block execution (pure), storage in
//! sled, the event loop that produces and finalizes blocks, the HTTP API, and the
//! local consortium (`devnet`).
//!
//! Architecture invariants: `execute`, `chain`, `batch_index`, `mempool` and `overlay` do no I/O and
//! read no clock; `store` is the only module that knows sled; `api` is the only one
//! that knows HTTP and JSON; `host` is the only owner of mutable node state.

pub mod api;
pub mod batch_index;
pub mod chain;
pub mod check;
pub mod cli;
pub mod consensus;
pub mod devnet;
pub mod execute;
pub mod governance;
pub mod host;
pub mod mempool;
pub mod net;
pub mod overlay;
pub mod proofs;
pub mod store;
