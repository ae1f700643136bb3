//! The verifiable event stream (`GET /v1/events`): what one event carries, the filter
//! a consumer asks for, the Server-Sent Events framing, and [`EventVerifier`], which
//! checks each event from genesis alone before anything in it is delivered.
//!
//! An event is one finalized block's records that match the filter, each with its
//! inclusion path to that block's ledger root and the key bindings behind its signer,
//! plus the block's certificate, the roster changes announced since the last event, and
//! a consistency proof from the ledger the consumer already holds. The consumer's
//! cursor is a ledger index: the size of the ledger after the last event it took. It
//! asks again from its cursor after any break, and the verifier delivers each record
//! exactly once, in ledger order: indices only grow, and a record at or below the
//! cursor is never delivered twice.
//!
//! What it proves: every record delivered is final, authentic, and in the ledger the
//! consumer has verified so far (the ledger only grows). Unfiltered, it also proves
//! that nothing was left out: every block in order, every record of each block. With
//! a filter, a node could leave out a matching record unnoticed; a consumer that must
//! know it missed nothing follows the unfiltered stream (`docs/api.md` § Events).
//!
//! Sans-IO: `http::follow` reads the stream, this module decides.

use serde::{Deserialize, Serialize};
use xinlian_genesis::Hash32;

use crate::ids::Uscc;
use crate::proof::{
    Checkpoint, ConsistencyProof, KEY_BINDINGS_MAX, LedgerEntry, LightClient, RecordProof,
    RosterChange, VerifiedRecord, VerifyError,
};
use crate::record::Kind;

/// The SSE `event:` name of a block's records.
pub const BLOCK_EVENT: &str = "block";
/// Most bytes of one event a consumer reads: a block of the largest size genesis
/// allows (64 MiB), in hex, with an inclusion path per record and the key bindings
/// once each, is below it.
pub const EVENT_BYTES_MAX: usize = 256 << 20;
/// Most kinds one filter names.
pub const FILTER_KINDS_MAX: usize = 32;

/// What a consumer asks for: records of these kinds (any, when empty), concerning this
/// enterprise, or among this batch's events; at most one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub kinds: Vec<Kind>,
    pub enterprise: Option<Uscc>,
    pub batch: Option<String>,
}

impl EventFilter {
    /// Every record of every block: the only stream whose completeness is proven.
    pub fn is_everything(&self) -> bool {
        self.kinds.is_empty() && self.enterprise.is_none() && self.batch.is_none()
    }

    pub fn admits_kind(&self, kind: Kind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// The query string (without `?`) that asks for this filter from ledger index `from`.
    pub fn query(&self, from: u64) -> String {
        let mut q = format!("from={from}");
        if !self.kinds.is_empty() {
            let names: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
            q.push_str(&format!("&kind={}", names.join(",")));
        }
        if let Some(u) = &self.enterprise {
            q.push_str(&format!("&enterprise={}", u.as_str()));
        }
        if let Some(b) = &self.batch {
            q.push_str(&format!("&batch={}", crate::api::paths::path_segment(b)));
        }
        q
    }
}

/// One matching record of a block, with what proves it against the event's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub entry: LedgerEntry,
    /// The ledger indices of its key bindings among the event's `bindings`, in the
    /// order of [`RecordProof::key_bindings`]: empty for a member signer.
    pub key_bindings: Vec<u64>,
}

/// One event of the stream: a finalized block and those of its records that match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEvent {
    pub checkpoint: Checkpoint,
    /// Roster changes in force up to the height after this block, not yet sent on this
    /// connection (all of them, on its first event), oldest first.
    pub roster_changes: Vec<RosterChange>,
    /// From the ledger size the connection was asked from (its first event) or of the
    /// previous event, to this header's; none from an empty ledger.
    pub consistency: Option<ConsistencyProof>,
    /// In ledger order.
    pub records: Vec<EventRecord>,
    /// The key-binding records the records cite, each once (an enterprise's records
    /// share theirs), with inclusion paths to this header's ledger root.
    pub bindings: Vec<LedgerEntry>,
}

impl BlockEvent {
    /// The cursor after this event: the ledger size of its block.
    pub fn cursor(&self) -> u64 {
        self.checkpoint.header.ledger_size
    }
}

/// A checked event: its block's height, the cursor after it, and its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvent {
    pub height: u64,
    pub cursor: u64,
    pub block_hash: Hash32,
    /// The block's header and the certificate that finalised it, both checked.
    pub checkpoint: Checkpoint,
    pub records: Vec<VerifiedRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(
        "the stream skipped from block {after} to block {got}: the unfiltered stream has every block"
    )]
    SkippedBlock { after: u64, got: u64 },
    #[error(
        "block {height} came again with a record at ledger index {index}, at or past the cursor {cursor}"
    )]
    Replayed {
        height: u64,
        index: u64,
        cursor: u64,
    },
    #[error(
        "the stream starts at block {height}, whose first record is at ledger index {first}, past the cursor {cursor}"
    )]
    StartsPastCursor {
        height: u64,
        first: u64,
        cursor: u64,
    },
    #[error("record at ledger index {index} is out of order: the cursor is {cursor}")]
    OutOfOrder { index: u64, cursor: u64 },
    #[error(
        "record at ledger index {index} is not in block {height} (ledger indices {first}..{size})"
    )]
    OutsideBlock {
        index: u64,
        height: u64,
        first: u64,
        size: u64,
    },
    #[error(
        "block {height} came with records {got:?} of ledger indices {expected:?}: the unfiltered stream has them all"
    )]
    Incomplete {
        height: u64,
        expected: std::ops::Range<u64>,
        got: Vec<u64>,
    },
    #[error("record {id} is of kind {kind}, which the filter does not ask for")]
    WrongKind { id: String, kind: &'static str },
    #[error("malformed event: {0}")]
    Malformed(String),
}

/// Checks a stream's events in order against a light client. Holds the cursor and the
/// last block taken, which is all a consumer keeps to resume.
pub struct EventVerifier {
    light: LightClient,
    filter: EventFilter,
    cursor: u64,
    last_height: Option<u64>,
}

impl EventVerifier {
    /// A verifier for records at ledger index `from` and after. `light` must already
    /// hold the roster changes up to where the stream starts, or the events bring them.
    pub fn new(light: LightClient, filter: EventFilter, from: u64) -> Self {
        EventVerifier {
            light,
            filter,
            cursor: from,
            // From the start of the ledger, the first block is block 1.
            last_height: (from == 0).then_some(0),
        }
    }

    /// As one that last took block `height` (whose ledger size is `from`): that block,
    /// sent again, is skipped, and unfiltered the next must be `height + 1`.
    pub fn after_block(mut self, height: u64) -> Self {
        self.last_height = Some(height);
        self
    }

    /// Where to ask the stream from after a break.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn filter(&self) -> &EventFilter {
        &self.filter
    }

    pub fn light(&self) -> &LightClient {
        &self.light
    }

    /// Checks `ev` completely and moves the cursor past it. `Ok(None)`: a block already
    /// taken, sent again after a reconnection, with nothing new in it. Any `Err` leaves
    /// the verifier as it was.
    pub fn accept(&mut self, ev: &BlockEvent) -> Result<Option<VerifiedEvent>, EventError> {
        let header = &ev.checkpoint.header;
        let height = header.height;
        if let Some(last) = self.last_height
            && height <= last
        {
            if let Some(r) = ev.records.iter().find(|r| r.entry.index >= self.cursor) {
                return Err(EventError::Replayed {
                    height,
                    index: r.entry.index,
                    cursor: self.cursor,
                });
            }
            // Nothing new, but the roster changes it brings (sent once a connection)
            // are needed by the blocks after it; each checks itself.
            let mut light = self.light.clone();
            light.accept_changes(&ev.roster_changes)?;
            self.light = light;
            return Ok(None);
        }
        if self.filter.is_everything()
            && let Some(last) = self.last_height
            && height != last + 1
        {
            return Err(EventError::SkippedBlock {
                after: last,
                got: height,
            });
        }
        let size = header.ledger_size;
        let first = size
            .checked_sub(u64::from(header.records_count))
            .ok_or_else(|| EventError::Malformed("records count above ledger size".into()))?;
        // Unfiltered, the first block taken must hold the cursor (or end at it): one
        // that starts past it would leave the records between unseen.
        if self.filter.is_everything() && self.last_height.is_none() && first > self.cursor {
            return Err(EventError::StartsPastCursor {
                height,
                first,
                cursor: self.cursor,
            });
        }
        // Everything is checked on a copy: a refused event changes nothing.
        let mut light = self.light.clone();
        light.accept_changes(&ev.roster_changes)?;
        light.advance(ev.checkpoint.clone(), ev.consistency.as_ref())?;
        let mut next = self.cursor;
        let mut records = Vec::with_capacity(ev.records.len());
        for r in &ev.records {
            let index = r.entry.index;
            if index < next {
                return Err(EventError::OutOfOrder {
                    index,
                    cursor: next,
                });
            }
            if index < first || index >= size {
                return Err(EventError::OutsideBlock {
                    index,
                    height,
                    first,
                    size,
                });
            }
            if r.key_bindings.len() > KEY_BINDINGS_MAX {
                return Err(EventError::Malformed(format!(
                    "record at ledger index {index} cites {} key bindings",
                    r.key_bindings.len()
                )));
            }
            let key_bindings = r
                .key_bindings
                .iter()
                .map(|i| {
                    ev.bindings
                        .iter()
                        .find(|b| b.index == *i)
                        .cloned()
                        .ok_or_else(|| {
                            EventError::Malformed(format!(
                                "record at ledger index {index} cites key binding {i}, which the event lacks"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let verified = light.verify_record(&RecordProof {
                entry: r.entry.clone(),
                checkpoint: ev.checkpoint.clone(),
                key_bindings,
            })?;
            let kind = verified.record.envelope.body.kind();
            if !self.filter.admits_kind(kind) {
                return Err(EventError::WrongKind {
                    id: verified.id.to_string(),
                    kind: kind.name(),
                });
            }
            next = index + 1;
            records.push(verified);
        }
        if self.filter.is_everything() {
            let expected = first.max(self.cursor)..size;
            let got: Vec<u64> = ev.records.iter().map(|r| r.entry.index).collect();
            if !got.iter().copied().eq(expected.clone()) {
                return Err(EventError::Incomplete {
                    height,
                    expected,
                    got,
                });
            }
        }
        self.light = light;
        self.cursor = self.cursor.max(size);
        self.last_height = Some(height);
        Ok(Some(VerifiedEvent {
            height,
            cursor: self.cursor,
            block_hash: header.hash(),
            checkpoint: ev.checkpoint.clone(),
            records,
        }))
    }
}

/// One Server-Sent Event as read: its `id`, `event` name and `data` (lines joined).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// The SSE framing (WHATWG HTML § 9.2), fed one line at a time: returns an event at
/// each blank line that ends one. Comments (keep-alives) and unknown fields are
/// skipped; `data` beyond [`EVENT_BYTES_MAX`] is refused.
#[derive(Default)]
pub struct SseParser {
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// `line` without its line ending.
    pub fn line(&mut self, line: &str) -> Result<Option<SseEvent>, EventError> {
        if line.is_empty() {
            let ev = std::mem::take(&mut self.current);
            let had = std::mem::take(&mut self.has_data);
            return Ok(had.then_some(ev));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.current.data.len() + value.len() + 1 > EVENT_BYTES_MAX {
                    return Err(EventError::Malformed(format!(
                        "an event longer than {EVENT_BYTES_MAX} bytes"
                    )));
                }
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = Some(value.to_string()),
            _ => {}
        }
        Ok(None)
    }
}

/// A block event from its SSE frame; anything but a `block` event is `Ok(None)`.
pub fn decode_event(sse: &SseEvent) -> Result<Option<BlockEvent>, EventError> {
    if sse.event.as_deref() != Some(BLOCK_EVENT) {
        return Ok(None);
    }
    let ev: BlockEvent = serde_json::from_str(&sse.data)
        .map_err(|e| EventError::Malformed(format!("block event: {e}")))?;
    if sse.id.as_deref() != Some(ev.cursor().to_string().as_str()) {
        return Err(EventError::Malformed(format!(
            "event id {:?} is not its block's ledger size {}",
            sse.id,
            ev.cursor()
        )));
    }
    Ok(Some(ev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut SseParser, text: &str) -> Vec<SseEvent> {
        text.split('\n')
            .filter_map(|l| p.line(l).unwrap())
            .collect()
    }

    #[test]
    fn sse_frames_split_at_blank_lines_and_skip_comments() {
        let mut p = SseParser::default();
        let got = feed(
            &mut p,
            ": keep-alive\n\nid: 7\nevent: block\ndata: {\"a\":\ndata: 1}\n\nevent: other\n\n",
        );
        assert_eq!(
            got,
            vec![SseEvent {
                id: Some("7".into()),
                event: Some("block".into()),
                data: "{\"a\":\n1}".into(),
            }]
        );
    }

    #[test]
    fn an_event_without_a_matching_id_is_refused() {
        let sse = SseEvent {
            id: Some("3".into()),
            event: Some(BLOCK_EVENT.into()),
            data: "{}".into(),
        };
        assert!(matches!(decode_event(&sse), Err(EventError::Malformed(_))));
        let other = SseEvent {
            event: Some("ping".into()),
            ..sse
        };
        assert_eq!(decode_event(&other), Ok(None));
    }

    #[test]
    fn filter_query_names_each_part() {
        let f = EventFilter {
            kinds: vec![Kind::Commitment, Kind::Outcome],
            enterprise: None,
            batch: Some("LOT 1".into()),
        };
        assert_eq!(f.query(12), "from=12&kind=commitment,outcome&batch=LOT%201");
        assert!(!f.is_everything());
        assert!(EventFilter::default().is_everything());
    }
}
