//! The recall reach of a batch, derived from a verified [`Provenance`]: everything made
//! from it, who holds it now, and the recalls that affect each batch. Pure data, shared
//! by the CLI, the web pages and any agency's own program; text rendering is the CLI's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::party::Party;
use crate::provenance::{InTransit, Provenance, Towards, VerifiedBatch};
use crate::record::RecordId;

/// One batch reached downstream of the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reached {
    pub batch: String,
    pub product: String,
    pub lot: String,
    pub uom: String,
    /// Amounts are `None` where withheld from the reader (docs/privacy.md § Trace
    /// events), as in [`VerifiedBatch`].
    pub created_amount: Option<u64>,
    pub created_by: Party,
    pub holders: BTreeMap<Party, Option<u64>>,
    pub in_transit: Vec<InTransit>,
    pub sold: Option<u64>,
    pub consumed: Option<u64>,
    /// Its own recall record, if recalled itself.
    pub recalled: Option<RecordId>,
    /// Recalls that affect it: its own and those of any batch it was made from that the
    /// answer shows (the root and everything between).
    pub affected_by: Vec<(String, RecordId)>,
}

/// Everything made from the root, and where it is now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecallReach {
    pub root: String,
    pub final_from: u64,
    pub final_to: u64,
    pub complete: bool,
    pub missing: Vec<String>,
    /// Recalls of the root or of anything upstream of it that the answer shows.
    pub recalls: Vec<(String, RecordId)>,
    /// The root first, then every batch downstream of it, breadth first.
    pub batches: Vec<Reached>,
}

pub fn recall_reach(p: &Provenance) -> RecallReach {
    let reached = |b: &VerifiedBatch| Reached {
        batch: b.state.batch.clone(),
        product: b.state.product.name.clone(),
        lot: b.state.lot.clone(),
        uom: b.state.uom.clone(),
        created_amount: b.created_amount(),
        created_by: b.state.created_by.clone(),
        holders: b.holders.clone(),
        in_transit: b.in_transit.clone(),
        sold: b.sold,
        consumed: b.consumed,
        recalled: b.state.recalled,
        affected_by: p.recalls_affecting(&b.state.batch),
    };
    let mut batches: Vec<Reached> = p.batches.get(&p.root).map(reached).into_iter().collect();
    batches.extend(p.walk(&p.root, Towards::Products).into_iter().map(reached));
    RecallReach {
        root: p.root.clone(),
        final_from: p.final_from,
        final_to: p.final_to,
        complete: p.is_complete(),
        missing: p.missing.iter().cloned().collect(),
        recalls: p.recalls_affecting(&p.root),
        batches,
    }
}
