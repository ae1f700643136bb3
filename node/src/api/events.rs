//! `GET /v1/events`: Server-Sent Events of finalized records in ledger order, each
//! block's matching records with what verifies them (`xinlian_client::events`).
//!
//! One task per open stream reads the store on blocking threads, one event at a
//! time, and waits on the tip for more; the channel to the connection holds two
//! events, so a slow reader slows only its own stream. Streams are long-lived, so they
//! are outside the request time-out and concurrency limit; their own cap
//! (`ApiLimits::streams_max`) refuses one more with `503 too_many_streams`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::Stream;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use xinlian_client::events::{BLOCK_EVENT, BlockEvent, EventFilter, EventRecord, FILTER_KINDS_MAX};
use xinlian_client::ids::Uscc;
use xinlian_client::proof::ConsistencyProof;
use xinlian_client::record::{Kind, RecordId};
use xinlian_client::state::{self as st, key};

use super::{ApiFailure, ApiState, Q, batch_id, err};
use crate::audience::View;
use crate::proof_assembly::{self, ProofRequestError};
use crate::store::Store;
use xinlian_client::disclosure::Reader;
use xinlian_client::when::Date;

/// Blocks, and records, one read passes over without a match before it lets the task
/// look up (whether the reader is still there) and go on.
const SCAN_BLOCKS_MAX: u64 = 256;
const SCAN_RECORDS_MAX: u64 = 4096;
/// Streams one client address may hold open: one client cannot take every place.
const STREAMS_PER_CLIENT_MAX: usize = 8;
/// Stream reads of the store running at once, on blocking threads: however many
/// streams are open, heavy reads and scrapes keep their threads.
const STREAM_READS_MAX: usize = 1;
/// Keep-alive comments on an idle stream, so proxies keep it open and a reader can
/// tell a quiet ledger from a dead connection.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    from: Option<u64>,
    kind: Option<String>,
    enterprise: Option<String>,
    batch: Option<String>,
}

/// The open streams' permits, the streams open per client address, and the permit
/// to read the store.
#[derive(Clone)]
pub(super) struct Streams {
    open: Arc<Semaphore>,
    per_client: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    reads: Arc<Semaphore>,
}

impl Streams {
    pub(super) fn new(max: usize) -> Self {
        Streams {
            open: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
            per_client: Arc::default(),
            reads: Arc::new(Semaphore::new(STREAM_READS_MAX)),
        }
    }

    /// A place for one more stream of `client`, or the refusal.
    fn admit(&self, client: std::net::IpAddr) -> Result<Place, ApiFailure> {
        let busy = |message: &str| {
            err(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", message).retry_after(5)
        };
        let mut counts = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = counts.entry(client).or_insert(0);
        if *mine >= STREAMS_PER_CLIENT_MAX {
            return Err(busy(&format!(
                "this client address has {STREAMS_PER_CLIENT_MAX} event streams open already"
            )));
        }
        let permit = self.open.clone().try_acquire_owned().map_err(|_| {
            busy("this node serves as many event streams as it can; retry or ask another node")
        })?;
        *mine += 1;
        Ok(Place {
            _permit: permit,
            client,
            per_client: self.per_client.clone(),
        })
    }
}

/// One open stream's place; given back when the stream ends.
struct Place {
    _permit: OwnedSemaphorePermit,
    client: std::net::IpAddr,
    per_client: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

fn bad(message: impl Into<String>) -> ApiFailure {
    err(StatusCode::BAD_REQUEST, "bad_query", message)
}

fn parse_filter(q: &EventsQuery) -> Result<EventFilter, ApiFailure> {
    let mut kinds = Vec::new();
    if let Some(list) = &q.kind {
        for name in list.split(',') {
            let kind = Kind::parse(name).map_err(|e| bad(e.to_string()))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
            if kinds.len() > FILTER_KINDS_MAX {
                return Err(bad(format!("at most {FILTER_KINDS_MAX} kinds")));
            }
        }
    }
    let enterprise = match &q.enterprise {
        Some(u) => {
            let u = Uscc(u.clone());
            u.check_format()
                .map_err(|e| err(StatusCode::BAD_REQUEST, "invalid_identifier", e.to_string()))?;
            Some(u)
        }
        None => None,
    };
    if let Some(b) = &q.batch {
        batch_id(b)?;
    }
    if enterprise.is_some() && q.batch.is_some() {
        return Err(bad("filter by an enterprise or by a batch, not both"));
    }
    Ok(EventFilter {
        kinds,
        enterprise,
        batch: q.batch.clone(),
    })
}

/// Where the stream starts: `Last-Event-ID` (what a reconnecting SSE reader sends)
/// over `?from=`; both are ledger-index cursors.
fn start_cursor(headers: &HeaderMap, q: &EventsQuery) -> Result<u64, ApiFailure> {
    match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| bad("Last-Event-ID is a ledger index (a decimal integer)")),
        None => Ok(q.from.unwrap_or(0)),
    }
}

pub(super) async fn events(
    State(s): State<ApiState>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<super::ClientAddr>>>,
    axum::Extension(reader): axum::Extension<Reader>,
    signed: Option<axum::Extension<super::auth::SignedUntil>>,
    headers: HeaderMap,
    Q(q): Q<EventsQuery>,
) -> Result<Response, ApiFailure> {
    let filter = parse_filter(&q)?;
    let from = start_cursor(&headers, &q)?;
    let client = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.key());
    let place = s.streams.admit(client)?;
    let (tx, rx) = mpsc::channel(2);
    let until = signed.map(|u| u.0.0);
    tokio::spawn(produce(
        s.clone(),
        (reader, until),
        Cursor::new(filter, from),
        tx,
        place,
    ));
    Ok(Sse::new(receiver_stream(rx))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

fn receiver_stream(
    rx: mpsc::Receiver<Event>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// Feeds one stream until its reader leaves or the node stops.
async fn produce(
    s: ApiState,
    (reader, until): (Reader, Option<i64>),
    mut cursor: Cursor,
    tx: mpsc::Sender<Event>,
    _place: Place,
) {
    let expiry = async move {
        match until {
            Some(t) => {
                let left = t.saturating_sub(super::now_ms() / 1000).max(0) as u64;
                tokio::time::sleep(std::time::Duration::from_secs(left)).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let shared = s.shared.clone();
    let _open = OpenStream::new(shared.metrics.clone());
    let mut stopping = s.stopping.clone();
    let mut tip_rx = shared.tip.clone();
    loop {
        let tip_height = tip_rx.borrow_and_update().height;
        loop {
            // A reader catching up never idles: its signature's end is checked here too.
            if *stopping.borrow() || until.is_some_and(|t| super::now_ms() / 1000 >= t) {
                return;
            }
            let Ok(read) = s.streams.reads.clone().acquire_owned().await else {
                return;
            };
            let store = shared.store.clone();
            let (consortium, reader) = (shared.consortium(), reader.clone());
            let today = Date::of_ms_beijing(tip_rx.borrow().time_ms);
            let read = tokio::task::spawn_blocking(move || {
                let _read = read;
                let view = View::with(&store, consortium, &reader, today);
                let step = cursor.step(&store, &view, tip_height);
                (step, cursor)
            })
            .await;
            let step;
            (step, cursor) = match read {
                Ok(r) => r,
                Err(_) => return,
            };
            let event = match step {
                Ok(Step::Event(ev)) => {
                    let records = ev.records.len() as u64;
                    let Ok(data) = serde_json::to_string(&ev) else {
                        return;
                    };
                    Some((
                        records,
                        Event::default()
                            .id(ev.cursor().to_string())
                            .event(BLOCK_EVENT)
                            .data(data),
                    ))
                }
                Ok(Step::Scanned) => None,
                Ok(Step::CaughtUp) => break,
                Err(e) => {
                    // Already logged by the conversion; the reader asks again, here or
                    // at another node, from its cursor.
                    let failure = ApiFailure::from(e);
                    let body = serde_json::to_string(&failure.error).unwrap_or_default();
                    let _ = tx.send(Event::default().event("error").data(body)).await;
                    return;
                }
            };
            match event {
                Some((records, event)) => {
                    tokio::select! {
                        sent = tx.send(event) => {
                            if sent.is_err() {
                                return;
                            }
                            shared.metrics.event_records_sent.inc_by(records);
                        }
                        _ = stopping.wait_for(|s| *s) => return,
                        _ = &mut expiry => return,
                    }
                }
                None if tx.is_closed() => return,
                None => {}
            }
        }
        tokio::select! {
            changed = tip_rx.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
            _ = stopping.wait_for(|s| *s) => return,
            // A signed reader's stream ends with its signature (a revoked key or a
            // removed member does not keep reading); it signs again and resumes from
            // its cursor.
            _ = &mut expiry => return,
        }
    }
}

/// Counts the stream open while it lives.
struct OpenStream(Arc<crate::metrics::Metrics>);

impl OpenStream {
    fn new(metrics: Arc<crate::metrics::Metrics>) -> Self {
        metrics.event_streams.inc();
        OpenStream(metrics)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.event_streams.dec();
    }
}

enum Step {
    Event(Box<BlockEvent>),
    /// Blocks passed over without a match; more to read.
    Scanned,
    /// Nothing more up to the tip.
    CaughtUp,
}

/// Which records the stream walks: every block, or an index of one enterprise's or
/// one batch's records (then only blocks holding one are read).
enum Source {
    /// The next height to read; found from the cursor at the first read.
    Blocks(Option<u64>),
    Enterprise(Uscc),
    Batch(String),
}

/// One stream's position: the next ledger index it may deliver, the ledger size its
/// reader holds (for the consistency proof), and the roster changes already sent.
struct Cursor {
    filter: EventFilter,
    source: Source,
    next_index: u64,
    held_size: u64,
    rosters_sent_to: u64,
}

impl Cursor {
    fn new(filter: EventFilter, from: u64) -> Self {
        let source = match (&filter.enterprise, &filter.batch) {
            (Some(u), _) => Source::Enterprise(u.clone()),
            (None, Some(b)) => Source::Batch(b.clone()),
            (None, None) => Source::Blocks(None),
        };
        Cursor {
            filter,
            source,
            next_index: from,
            held_size: from,
            rosters_sent_to: 0,
        }
    }

    /// One read: the next event, if any, up to the block at `tip_height`.
    fn step(
        &mut self,
        store: &Store,
        view: &View<'_>,
        tip_height: u64,
    ) -> Result<Step, ProofRequestError> {
        match &mut self.source {
            Source::Blocks(next) => {
                let start = match *next {
                    Some(h) => h,
                    None => {
                        let h = first_block_reaching(store, self.next_index, tip_height)?;
                        if h > tip_height {
                            // No block reaches the cursor yet: wait for one.
                            return Ok(Step::CaughtUp);
                        }
                        h
                    }
                };
                let mut h = start;
                let mut examined = 0u64;
                while h <= tip_height
                    && h < start.saturating_add(SCAN_BLOCKS_MAX)
                    && examined < SCAN_RECORDS_MAX
                {
                    let header = store.header(h)?.ok_or(ProofRequestError::NoBlock(h))?;
                    let first = first_index(&header)?;
                    let mut indices = Vec::new();
                    for i in first.max(self.next_index)..header.ledger_size {
                        if self.admitted(store, view, i)? {
                            indices.push(i);
                        }
                    }
                    examined += u64::from(header.records_count);
                    h += 1;
                    if self.filter.is_everything() || !indices.is_empty() {
                        self.source = Source::Blocks(Some(h));
                        return Ok(Step::Event(Box::new(self.event(
                            store,
                            view,
                            h - 1,
                            indices,
                        )?)));
                    }
                    self.next_index = self.next_index.max(header.ledger_size);
                }
                self.source = Source::Blocks(Some(h));
                Ok(if h > tip_height {
                    Step::CaughtUp
                } else {
                    Step::Scanned
                })
            }
            Source::Enterprise(u) => {
                let u = u.clone();
                let mut found = Vec::new();
                let mut after = self.next_index.checked_sub(1);
                let mut block: Option<(u64, u64)> = None;
                loop {
                    let page: Vec<(Vec<u8>, RecordId)> = store.state_scan_after(
                        &key::subject_records_prefix(&u),
                        after.map(u64::to_be_bytes).as_ref().map(|a| &a[..]),
                        64,
                    )?;
                    if page.is_empty() {
                        break;
                    }
                    for (k, id) in &page {
                        let index = index_of_key(k)?;
                        after = Some(index);
                        let (height, size) = match block {
                            Some(b) => b,
                            None => {
                                let b = self.block_of(store, id, tip_height)?;
                                let Some(b) = b else {
                                    return self.finish(store, view, found, block);
                                };
                                block = Some(b);
                                b
                            }
                        };
                        if index >= size {
                            return self.finish(store, view, found, Some((height, size)));
                        }
                        if self.admitted(store, view, index)? {
                            found.push(index);
                        }
                    }
                }
                self.finish(store, view, found, block)
            }
            Source::Batch(name) => {
                let name = name.clone();
                let Some(batch) = store.state_value::<st::BatchState>(&key::batch(&name))? else {
                    return Ok(Step::CaughtUp);
                };
                // The first event at or past the cursor: events are in ledger order.
                let (mut lo, mut hi) = (0u32, batch.events);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if self.batch_event(store, &name, mid)?.1 < self.next_index {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                let mut found = Vec::new();
                let mut block: Option<(u64, u64)> = None;
                for seq in lo..batch.events {
                    let (id, index) = self.batch_event(store, &name, seq)?;
                    let (height, size) = match block {
                        Some(b) => b,
                        None => match self.block_of(store, &id, tip_height)? {
                            Some(b) => {
                                block = Some(b);
                                b
                            }
                            None => break,
                        },
                    };
                    if index >= size {
                        return self.finish(store, view, found, Some((height, size)));
                    }
                    if self.admitted(store, view, index)? {
                        found.push(index);
                    }
                }
                self.finish(store, view, found, block)
            }
        }
    }

    /// The event for the block found, if it holds a match; else the cursor moves past
    /// it (the next read starts after it) or, with no block, the stream is caught up.
    fn finish(
        &mut self,
        store: &Store,
        view: &View<'_>,
        found: Vec<u64>,
        block: Option<(u64, u64)>,
    ) -> Result<Step, ProofRequestError> {
        match block {
            None => Ok(Step::CaughtUp),
            Some((_, size)) if found.is_empty() => {
                self.next_index = self.next_index.max(size);
                Ok(Step::Scanned)
            }
            Some((height, _)) => Ok(Step::Event(Box::new(
                self.event(store, view, height, found)?,
            ))),
        }
    }

    /// The height and ledger size of the block that appended `id`, if at or below the
    /// tip the stream serves.
    fn block_of(
        &self,
        store: &Store,
        id: &RecordId,
        tip_height: u64,
    ) -> Result<Option<(u64, u64)>, ProofRequestError> {
        let Some((height, _)) = store.locate(id)? else {
            return Ok(None);
        };
        if height > tip_height {
            return Ok(None);
        }
        let header = store
            .header(height)?
            .ok_or(ProofRequestError::NoBlock(height))?;
        Ok(Some((height, header.ledger_size)))
    }

    fn batch_event(
        &self,
        store: &Store,
        name: &str,
        seq: u32,
    ) -> Result<(RecordId, u64), ProofRequestError> {
        let damaged = || {
            ProofRequestError::Store(crate::store::StoreError::Damaged(format!(
                "event {seq} of batch {name} is not final"
            )))
        };
        let id: RecordId = store
            .state_value(&key::batch_event(name, seq))?
            .ok_or_else(damaged)?;
        let (_, index) = store.locate(&id)?.ok_or_else(damaged)?;
        Ok((id, index))
    }

    /// Whether the record at `index` goes in the stream: of a kind asked for, and
    /// disclosed to the reader.
    fn admitted(
        &self,
        store: &Store,
        view: &View<'_>,
        index: u64,
    ) -> Result<bool, ProofRequestError> {
        let record = store.record_at(index)?.ok_or_else(|| {
            ProofRequestError::Store(crate::store::StoreError::Damaged(format!(
                "record {index} is missing"
            )))
        })?;
        Ok(
            (self.filter.kinds.is_empty() || self.filter.admits_kind(record.kind()))
                && view.admits(&record, false)?,
        )
    }

    /// The event for block `height` with the records at `indices`, each as the reader
    /// may see it ([`View::show_entry`]), and the cursor moved past the block.
    fn event(
        &mut self,
        store: &Store,
        view: &View<'_>,
        height: u64,
        indices: Vec<u64>,
    ) -> Result<BlockEvent, ProofRequestError> {
        let checkpoint = proof_assembly::checkpoint(store, height)?;
        let size = checkpoint.header.ledger_size;
        let mut records = Vec::with_capacity(indices.len());
        // Each signer's bindings once: an enterprise's records all cite the same.
        let mut by_signer: std::collections::HashMap<xinlian_genesis::PublicKey, Vec<u64>> =
            std::collections::HashMap::new();
        let mut bindings: std::collections::BTreeMap<u64, xinlian_client::proof::LedgerEntry> =
            std::collections::BTreeMap::new();
        for index in indices {
            let mut entry = proof_assembly::ledger_entry(store, index, size)?;
            let record = store.record_at(index)?.ok_or_else(|| {
                ProofRequestError::Store(crate::store::StoreError::Damaged(format!(
                    "record {index} is missing"
                )))
            })?;
            // As the reader may see it: the record read once, for this and its signer.
            if let std::borrow::Cow::Owned(r) = view.shown(&record)? {
                entry.record = xinlian_client::proof::HexBytes(r.canonical_bytes());
            }
            let signer = record.envelope.signer;
            let key_bindings = match by_signer.get(&signer) {
                Some(cited) => cited.clone(),
                None => {
                    let found = proof_assembly::key_bindings(store, &signer, size)?;
                    let cited: Vec<u64> = found.iter().map(|b| b.index).collect();
                    for b in found {
                        bindings.entry(b.index).or_insert(b);
                    }
                    by_signer.insert(signer, cited.clone());
                    cited
                }
            };
            records.push(EventRecord {
                entry,
                key_bindings,
            });
        }
        let consistency = match self.held_size {
            0 => None,
            held if held >= size => Some(ConsistencyProof {
                first: size,
                second: size,
                proof: Vec::new(),
            }),
            held => Some(proof_assembly::consistency(store, size, held, size)?),
        };
        let roster_changes = proof_assembly::roster_changes(store, self.rosters_sent_to)?
            .into_iter()
            .filter(|c| c.height <= height + 1)
            .collect();
        self.rosters_sent_to = self.rosters_sent_to.max(height + 1);
        // The reader now holds this header's ledger.
        self.held_size = size;
        self.next_index = self.next_index.max(size);
        Ok(BlockEvent {
            checkpoint,
            roster_changes,
            consistency,
            records,
            bindings: bindings.into_values().collect(),
        })
    }
}

/// The ledger index of a block's first record; a header that says it holds more
/// records than its ledger is damaged.
fn first_index(header: &xinlian_client::block::Header) -> Result<u64, ProofRequestError> {
    header
        .ledger_size
        .checked_sub(u64::from(header.records_count))
        .ok_or_else(|| {
            ProofRequestError::Store(crate::store::StoreError::Damaged(format!(
                "header {} counts more records than its ledger holds",
                header.height
            )))
        })
}

/// The ledger index a subject-index key ends with.
fn index_of_key(k: &[u8]) -> Result<u64, ProofRequestError> {
    <[u8; 8]>::try_from(k).map(u64::from_be_bytes).map_err(|_| {
        ProofRequestError::Store(crate::store::StoreError::Damaged(
            "an enterprise index key of the wrong length".into(),
        ))
    })
}

/// The lowest height whose ledger size reaches `index`: the block holding the record
/// before it, or an empty block after that one. Past the tip when none does.
fn first_block_reaching(
    store: &Store,
    index: u64,
    tip_height: u64,
) -> Result<u64, ProofRequestError> {
    let (mut lo, mut hi) = (1u64, tip_height.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let header = store.header(mid)?.ok_or(ProofRequestError::NoBlock(mid))?;
        if header.ledger_size < index {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}
