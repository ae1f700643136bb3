//! Building a block from candidate records and re-executing a received one: pure
//! functions of (state, consortium, tip, time, records). The proposer's clock enters as
//! `time_ms`; nothing here reads a clock or touches storage.

use xinlian_client::block::{Block, Header};
use xinlian_client::checks::check_unsigned;
use xinlian_client::crypto::{self, Domain, SignatureError};
use xinlian_client::merkle::{Frontier, root_of};
use xinlian_client::record::{EncodedRecord, RecordId};
use xinlian_genesis::canonical::tagged_hash;
use xinlian_genesis::{Hash32, PublicKey};

use crate::execute::{BlockContext, Consortium, ExecError, Rejection, execute_record};
use crate::overlay::{Overlay, StateError, StateRead, Writes};

/// What a node knows about the last finalized block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash32,
    pub time_ms: i64,
    pub state_hash: Hash32,
    pub frontier: Frontier,
}

impl Tip {
    pub fn genesis(c: &Consortium) -> Tip {
        Tip {
            height: 0,
            hash: c.chain,
            time_ms: c.genesis.genesis_time_ms,
            state_hash: tagged_hash("xinlian/state/genesis", &c.chain),
            frontier: Frontier::default(),
        }
    }
}

/// A block with everything needed to store it atomically.
pub struct Executed {
    pub header: Header,
    /// The block's records, each encoded once.
    pub records: Vec<EncodedRecord>,
    /// Their RFC 9162 leaf hashes, in order: what a proposal names them by.
    pub leaves: Vec<Hash32>,
    pub writes: Writes,
    /// Perfect subtrees of the ledger-wide tree completed by this block.
    pub merkle_nodes: Vec<(u32, u64, Hash32)>,
    pub tip: Tip,
}

impl Executed {
    pub fn block(&self) -> Block {
        Block {
            header: self.header.clone(),
            records: self.records.iter().map(|r| r.record().clone()).collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    #[error("block is for chain {got}, expected {expected}")]
    Chain { expected: Hash32, got: Hash32 },
    #[error("block height {got} does not follow {tip}")]
    Height { tip: u64, got: u64 },
    #[error("block parent {got} is not the tip {expected}")]
    Parent { expected: Hash32, got: Hash32 },
    #[error("block time {got} ms is not after the parent's {parent} ms")]
    Time { parent: i64, got: i64 },
    #[error("block has {count} records ({bytes} bytes), over the bounds {count_max} / {bytes_max}")]
    TooLarge {
        count: usize,
        bytes: usize,
        count_max: u32,
        bytes_max: u32,
    },
    #[error("record #{index} ({id}) is invalid: {rejection}")]
    Record {
        index: usize,
        id: RecordId,
        rejection: Box<Rejection>,
    },
    #[error("block proposer {0} is not a validator of its height")]
    Proposer(PublicKey),
    #[error("record #{index} is {bytes} bytes, over the bound of {max}")]
    RecordTooLarge {
        index: usize,
        bytes: usize,
        max: u32,
    },
    #[error("header field {field} does not match re-execution")]
    HeaderMismatch { field: &'static str },
    #[error(transparent)]
    State(#[from] StateError),
}

fn state_hash(prev: &Hash32, writes: &Writes) -> Hash32 {
    let list: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = writes.iter().collect();
    tagged_hash("xinlian/state/v1", &(prev, list))
}

fn finish(
    c: &Consortium,
    tip: &Tip,
    proposer: PublicKey,
    time_ms: i64,
    records: Vec<EncodedRecord>,
    mut overlay: Overlay<'_>,
) -> Result<Executed, StateError> {
    let trace_root = crate::index::update(&mut overlay, crate::index::Index::Batch)?;
    let credit_root = crate::index::update(&mut overlay, crate::index::Index::Credit)?;
    let next_roster = crate::governance::next_roster(&mut overlay, c, tip.height + 2)?;
    let writes = overlay.into_writes();
    let leaves: Vec<Hash32> = records.iter().map(EncodedRecord::leaf).collect();
    let mut frontier = tip.frontier.clone();
    let mut merkle_nodes = Vec::new();
    for leaf in &leaves {
        merkle_nodes.extend(frontier.append(*leaf));
    }
    let state_hash = state_hash(&tip.state_hash, &writes);
    let header = Header {
        chain: c.chain,
        height: tip.height + 1,
        parent: tip.hash,
        time_ms,
        proposer,
        records_root: root_of(&leaves),
        records_count: records.len() as u32,
        ledger_root: frontier.root(),
        ledger_size: frontier.size(),
        state_hash,
        trace_root,
        credit_root,
        validators_hash: c.validators.hash(),
        next_roster_hash: next_roster.as_ref().map_or(c.roster_hash, |r| r.hash()),
    };
    let tip = Tip {
        height: header.height,
        hash: header.hash(),
        time_ms,
        state_hash,
        frontier,
    };
    Ok(Executed {
        header,
        records,
        leaves,
        writes,
        merkle_nodes,
        tip,
    })
}

/// The proposer's side: executes candidates in order, skipping any that fail (they are
/// returned with the reason), until the genesis bounds on count and bytes are reached.
/// Candidates must already have passed stateless checks (the mempool does that).
pub fn build_block<'r>(
    base: &dyn StateRead,
    c: &Consortium,
    tip: &Tip,
    proposer: PublicKey,
    time_ms: i64,
    candidates: impl IntoIterator<Item = &'r EncodedRecord>,
) -> Result<(Executed, Vec<(RecordId, Rejection)>), StateError> {
    assert!(
        time_ms > tip.time_ms,
        "the host gives block times after the parent's"
    );
    let policy = c.policy();
    let ctx = BlockContext {
        height: tip.height + 1,
        time_ms,
    };
    let mut overlay = Overlay::new(base);
    let mut records: Vec<EncodedRecord> = Vec::new();
    let mut rejected = Vec::new();
    let mut bytes = 0usize;
    for rec in candidates {
        if records.len() >= policy.block_records_max as usize {
            break;
        }
        let len = rec.bytes().len();
        if bytes + len > policy.block_bytes_max as usize {
            break;
        }
        match execute_record(
            &mut overlay,
            c,
            &ctx,
            rec,
            tip.frontier.size() + records.len() as u64,
        ) {
            Ok(()) => {
                bytes += len;
                records.push(rec.clone());
            }
            Err(ExecError::Rejected(r)) => rejected.push((rec.id(), r)),
            Err(ExecError::State(e)) => return Err(e),
        }
    }
    Ok((
        finish(c, tip, proposer, time_ms, records, overlay)?,
        rejected,
    ))
}

fn invalid(index: usize, r: &EncodedRecord, rejection: Rejection) -> BlockError {
    BlockError::Record {
        index,
        id: r.id(),
        rejection: Box::new(rejection),
    }
}

/// A validator's or syncing node's side: every record must be valid (signatures
/// verified in one batch, same rule as single checks), and every header field must
/// equal what re-execution gives.
pub fn execute_block(
    base: &dyn StateRead,
    c: &Consortium,
    tip: &Tip,
    block: Block,
) -> Result<Executed, BlockError> {
    let records = block.records.into_iter().map(EncodedRecord::new).collect();
    execute_records(base, c, tip, block.header, records)
}

/// [`execute_block`] for a block whose records are already encoded (a proposal put
/// together from the mempool's records).
pub fn execute_records(
    base: &dyn StateRead,
    c: &Consortium,
    tip: &Tip,
    h: Header,
    records: Vec<EncodedRecord>,
) -> Result<Executed, BlockError> {
    if h.chain != c.chain {
        return Err(BlockError::Chain {
            expected: c.chain,
            got: h.chain,
        });
    }
    if h.height != tip.height + 1 {
        return Err(BlockError::Height {
            tip: tip.height,
            got: h.height,
        });
    }
    if h.parent != tip.hash {
        return Err(BlockError::Parent {
            expected: tip.hash,
            got: h.parent,
        });
    }
    if h.time_ms <= tip.time_ms {
        return Err(BlockError::Time {
            parent: tip.time_ms,
            got: h.time_ms,
        });
    }
    let policy = c.policy();
    let total: usize = records.iter().map(|r| r.bytes().len()).sum();
    if records.len() > policy.block_records_max as usize || total > policy.block_bytes_max as usize
    {
        return Err(BlockError::TooLarge {
            count: records.len(),
            bytes: total,
            count_max: policy.block_records_max,
            bytes_max: policy.block_bytes_max,
        });
    }
    if c.validators.index_of(&h.proposer).is_none() {
        return Err(BlockError::Proposer(h.proposer));
    }
    for (index, r) in records.iter().enumerate() {
        // The bound a submission or relay is held to holds inside blocks too.
        if r.bytes().len() > policy.record_bytes_max as usize {
            return Err(BlockError::RecordTooLarge {
                index,
                bytes: r.bytes().len(),
                max: policy.record_bytes_max,
            });
        }
        if let Err(e) = check_unsigned(r.record(), &c.chain) {
            return Err(invalid(index, r, e.into()));
        }
    }
    let batch = records.iter().map(|r| {
        (
            &r.record().envelope.signer,
            Domain::Record.message(r.envelope_bytes()),
            &r.record().signature,
        )
    });
    if let Err(bad) = crypto::verify_batch(batch) {
        // `bad` holds the records whose single check failed; the first one's error is
        // the reason (and the same key's, should that check now pass: no panic here).
        let r = &records[bad[0]];
        let e = r
            .verify_signature()
            .err()
            .unwrap_or(SignatureError::Invalid(r.record().envelope.signer));
        return Err(invalid(bad[0], r, Rejection::Stateless(e.into())));
    }
    let ctx = BlockContext {
        height: h.height,
        time_ms: h.time_ms,
    };
    let mut overlay = Overlay::new(base);
    for (index, r) in records.iter().enumerate() {
        match execute_record(&mut overlay, c, &ctx, r, tip.frontier.size() + index as u64) {
            Ok(()) => {}
            Err(ExecError::Rejected(rejection)) => return Err(invalid(index, r, rejection)),
            Err(ExecError::State(e)) => return Err(e.into()),
        }
    }
    let ex = finish(c, tip, h.proposer, h.time_ms, records, overlay)?;
    let e = &ex.header;
    for (field, same) in [
        ("records_root", e.records_root == h.records_root),
        ("records_count", e.records_count == h.records_count),
        ("ledger_root", e.ledger_root == h.ledger_root),
        ("ledger_size", e.ledger_size == h.ledger_size),
        ("state_hash", e.state_hash == h.state_hash),
        ("trace_root", e.trace_root == h.trace_root),
        ("credit_root", e.credit_root == h.credit_root),
        ("validators_hash", e.validators_hash == h.validators_hash),
        ("next_roster_hash", e.next_roster_hash == h.next_roster_hash),
    ] {
        if !same {
            return Err(BlockError::HeaderMismatch { field });
        }
    }
    debug_assert_eq!(e, &h);
    Ok(ex)
}

/// Each record's verdict had the records been executed in order in the next block on
/// `base` (signatures and stateless rules included). Changes nothing: the writes are
/// dropped. What an importer asks before submitting a set that must go in whole.
pub fn check_records(
    base: &dyn StateRead,
    c: &Consortium,
    tip: &Tip,
    time_ms: i64,
    records: &[EncodedRecord],
) -> Result<Vec<Option<Rejection>>, StateError> {
    let ctx = BlockContext {
        height: tip.height + 1,
        time_ms: time_ms.max(tip.time_ms + 1),
    };
    let mut overlay = Overlay::new(base);
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        if let Err(e) = xinlian_client::checks::check_stateless(r, &c.chain) {
            out.push(Some(Rejection::Stateless(e)));
            continue;
        }
        match execute_record(&mut overlay, c, &ctx, r, tip.frontier.size() + i as u64) {
            Ok(()) => out.push(None),
            Err(ExecError::Rejected(rejection)) => out.push(Some(rejection)),
            Err(ExecError::State(e)) => return Err(e),
        }
    }
    Ok(out)
}
