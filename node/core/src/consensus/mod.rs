//! Agreement on blocks: Malachite's Tendermint core driven by a sans-IO replica.
//!
//! `context` maps our types onto Malachite's; `wire` is what replicas send each other;
//! `replica` is the deterministic state machine (fed messages and time, yielding
//! actions) that a node's host and the simulator both drive.

pub mod context;
pub mod ledger;
pub mod replica;
pub mod wire;
