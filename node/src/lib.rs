//! The xinlian node: the IO shell around `xinlian-core`'s state machine — the store
//! (`store`, the `xinlian-store` crate), the libp2p network (`net`), the event loop that owns both and drives the
//! replica (`host`), the HTTP API and its server (`api`), proof assembly from the store
//! (`proof_assembly`), the full store check (`store_check`), backup and restore
//! (`backup`) and the command line (`cli`).
//!
//! Architecture invariants: the store crate is the only one that knows a storage engine; `net` the only
//! one that knows libp2p; `api` the only one that knows HTTP and JSON; `host` is the
//! only owner of mutable node state. Protocol decisions live in `xinlian-core`.

pub mod api;
pub mod audience;
pub mod backup;
pub mod cli;
pub mod config;
pub mod host;
pub mod metrics;
pub mod net;
pub mod private;
pub mod proof_assembly;
pub use xinlian_store as store;
pub mod store_check;
pub mod web;
