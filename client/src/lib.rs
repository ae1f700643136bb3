//! Everything an enterprise's, agency's or inspector's program needs to speak to the
//! ledger without trusting a node: record types and their canonical encoding, signing
//! and the one signature rule, stateless validation, RFC 9162 Merkle proofs, block
//! headers and commit certificates, the light client, provenance verification, EPCIS
//! mapping, and the JSON shapes of the node's HTTP API. The blocking HTTP client is
//! behind the `http` feature; the `xinlian` command is the `xinlian-cli` crate.
//!
//! Architecture invariant: this crate never depends on `xinlian-node`.

pub mod api;
pub mod authority;
pub mod block;
pub mod bulk;
pub mod checks;
pub mod credit;
pub mod crypto;
pub mod disclosure;
pub mod epcis;
pub mod events;
pub mod governance;
pub mod hidden;
#[cfg(feature = "http")]
pub mod http;
pub mod ids;
pub mod merkle;
pub mod party;
pub mod private;
pub mod proof;
pub mod provenance;
pub mod record;
pub mod report;
pub mod reqsig;
pub mod signer;
pub mod smt;
pub mod state;
#[doc(hidden)]
pub mod vectors;
pub mod when;

pub use xinlian_genesis as genesis;
