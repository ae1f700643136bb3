//! Consortium definition for xinlian: who the members are, what each may do, the
//! policy they agreed, and the canonical encoding and hashing that make a genesis
//! (and everything built on it) identifiable by one hash.
//!
//! This crate knows nothing of records, blocks, storage or networks.

pub mod bytes;
pub mod canonical;
pub mod grading;
pub mod keys;
pub mod model;
pub mod roster;
pub mod scaffold;
pub mod validators;

pub use bytes::{Hash32, PublicKey};
pub use model::{
    DomainPublication, Genesis, GenesisError, GenesisFile, Member, MemberFile, Policy, Problem,
    Publication, Role, Tier, TierName, TraceDomain, TraceField, TracePolicy,
};
pub use roster::Roster;
pub use validators::{Validator, ValidatorSet};
