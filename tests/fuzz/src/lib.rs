//! Shared fixtures of the fuzz targets: one small food-trace consortium (four
//! validators, a registrar, a trace authority) whose chain is built here with the
//! node's very block builder and certified by the validators' keys, the proofs a node
//! would serve for it (assembled from that chain as `node/src/proof_assembly.rs`
//! assembles them from the store), the genuine verified content those proofs carry,
//! and a structural JSON mutator that turns a valid answer into a plausible lie.
//!
//! Everything is deterministic: keys come from fixed seeds and nonces are counters, so
//! a crash found once replays exactly.

pub mod chain;
pub mod msgs;
pub mod mutate;
pub mod seeds;

pub use chain::{Fixture, fixture};
