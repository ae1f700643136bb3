//! The HTTP API: the only module that knows HTTP and JSON. Reads come from the store
//! directly; submissions go to the host's event loop. Every error is JSON with a stable
//! `code` and a `message`; bodies and answers are bounded. [`ApiServer`] runs the
//! server on a listener the caller bound, and stops it.

pub mod access;
mod auth;
mod events;
mod limits;
mod private_data;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{FromRef, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use xinlian_client::api::*;
use xinlian_client::credit::{CreditError, CreditProof};
use xinlian_client::ids::Uscc;
use xinlian_client::party::Party;
use xinlian_client::proof::{ConsistencyProof, RecordProof};
use xinlian_client::provenance::{ANSWER_BATCHES_MAX, Direction, ProvenanceProof};
use xinlian_client::record::{EncodedRecord, RecordId, SignedRecord};
use xinlian_client::state::{self as st, key};

use crate::audience::View;
use crate::host::{Command, Shared, VerifiedRecord};
use crate::metrics::{Metrics, RouteLabel, RouteStatusLabels};
use crate::proof_assembly::{self, ProofRequestError};
use crate::store::StoreError;
use axum::Extension;
use xinlian_client::disclosure::Reader;
use xinlian_core::execute::Rejection;
use xinlian_core::mempool::{AdmissionError, SignatureCheck};

/// Longest a request may wait for finality.
const WAIT_MS_MAX: u64 = 30_000;
/// Most items in one list answer, and the page size when none is asked for.
const LIST_ITEMS_MAX: usize = 1_000;
const PAGE_DEFAULT: usize = 100;

/// Every route, shared with the client (`xinlian_client::api::paths`); `openapi.json`
/// documents exactly these (a test keeps the two equal).
pub use xinlian_client::api::paths;

pub use limits::{ApiLimits, ClientAddr};

/// The API served on `listener` until [`ApiServer::shutdown`]: the HTTP server's
/// whole lifecycle, so the host knows no HTTP.
pub struct ApiServer {
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Serves `app` on `listener` (plain or TLS) in a task of its own until `stopped`.
fn serve<L>(
    listener: L,
    app: Router,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    for<'a> limits::ClientAddr:
        axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let app = app.into_make_service_with_connect_info::<limits::ClientAddr>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
    })
}

impl ApiServer {
    /// Starts serving [`router`] on `listener` in a task of its own, under `limits`.
    pub fn start(
        listener: TcpListener,
        shared: Shared,
        limits: &ApiLimits,
        access: access::AccessLog,
        desk: mpsc::Sender<crate::private::DeskMsg>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<ApiServer> {
        let (stop, mut stop_rx) = watch::channel(false);
        let rates = Arc::new(limits::ClientRates::new(limits.rate_per_s, limits.burst));
        let metrics = shared.metrics.clone();
        let app = router(
            shared,
            limits,
            rates.clone(),
            stop.subscribe(),
            access,
            desk,
        );
        let listener =
            limits::CappedListener::new(listener, limits.connections_max, metrics.clone());
        let mut forget_rx = stop.subscribe();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(limits::FORGET_EVERY);
            loop {
                tokio::select! {
                    _ = every.tick() => rates.forget_idle(),
                    _ = forget_rx.wait_for(|s| *s) => return,
                }
            }
        });
        let stopped = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        let task = match tls {
            None => serve(listener, app, stopped),
            Some(config) => {
                let listener = tls::TlsListener::new(listener.closing_refusals(), config, metrics)?;
                serve(listener, app, stopped)
            }
        };
        Ok(ApiServer { stop, task })
    }

    /// Stops accepting, lets open requests finish (event streams end at once), and
    /// waits for the server to end; after [`SHUTDOWN_WAIT`], it stops waiting.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        match tokio::time::timeout(SHUTDOWN_WAIT, &mut self.task).await {
            Ok(done) => done.context("API task")?.context("API server"),
            Err(_) => {
                self.task.abort();
                tracing::warn!("API requests still open after {SHUTDOWN_WAIT:?}: dropped");
                Ok(())
            }
        }
    }
}

/// The longest a stopping node waits for open requests to finish.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What the handlers share: the node's [`Shared`] state, the heavy-read pool and the
/// body bound of records/check.
#[derive(Clone)]
pub struct ApiState {
    shared: Shared,
    heavy: limits::HeavyPool,
    check_body_bytes_max: usize,
    streams: events::Streams,
    scrapes: Arc<Scrapes>,
    /// Places for bulk submissions between their body and the event loop's answer.
    bulk: Arc<tokio::sync::Semaphore>,
    /// Turns true when the server stops: long-lived answers (event streams) end.
    stopping: watch::Receiver<bool>,
    credit: Arc<CreditCache>,
    /// Answers to readers other than the public, recorded before they are sent.
    access: access::AccessLog,
    /// Nonces of request signatures still valid (replay protection).
    nonces: Arc<auth::Nonces>,
    /// Where private data taken in goes to be pushed to the other entitled nodes.
    desk: mpsc::Sender<crate::private::DeskMsg>,
    /// Enciphers the cursors of readers who may not read every record (`subject_page`).
    cursors: Arc<CursorKey>,
    /// `GET /v1/genesis`'s answer, written once: every page load asks for it.
    genesis_toml: axum::body::Bytes,
}

/// Cursors handed to readers who may not read every record of an enterprise: the
/// position last *scanned*, enciphered under a key this node draws at start (a
/// four-round Feistel network over 64 bits, SHA-256 its round function), so that
/// neither where a page stops nor its cursor tells where hidden records are. A cursor
/// from before a restart reads as some other position: a page of what follows it.
pub struct CursorKey([u8; 32]);

impl CursorKey {
    fn new() -> CursorKey {
        CursorKey(xinlian_genesis::keys::generate().map_or([7; 32], |k| k.to_bytes()))
    }

    fn round(&self, i: u8, half: u32) -> u32 {
        use sha2::Digest as _;
        let d = sha2::Sha256::new()
            .chain_update(self.0)
            .chain_update([i])
            .chain_update(half.to_be_bytes())
            .finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    fn seal(&self, x: u64) -> u64 {
        let (mut l, mut r) = ((x >> 32) as u32, x as u32);
        for i in 0..4 {
            (l, r) = (r, l ^ self.round(i, r));
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    fn open(&self, y: u64) -> u64 {
        let (mut l, mut r) = ((y >> 32) as u32, y as u32);
        for i in (0..4).rev() {
            (l, r) = (r ^ self.round(i, l), l);
        }
        (u64::from(l) << 32) | u64::from(r)
    }
}

/// Credit answers this node assembled and verified, by (height, USCC): the self-check
/// behind an enterprise's page runs once per enterprise and block, however often it is
/// read. Bounded; the lowest heights go first (a newer block makes them stale anyway).
/// A credit answer and what verifying it concluded.
type CheckedCredit = Arc<(CreditProof, xinlian_client::credit::VerifiedCredit)>;

#[derive(Default)]
struct CreditCache(std::sync::Mutex<std::collections::BTreeMap<(u64, Uscc), CheckedCredit>>);

const CREDIT_CACHE_MAX: usize = 256;
/// About 50 MB of answers (a record with its proof is some hundreds of bytes to a few KB).
const CREDIT_CACHE_RECORDS_MAX: usize = 20_000;

impl CreditCache {
    fn get(&self, height: u64, u: &Uscc) -> Option<CheckedCredit> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(height, u.clone())).cloned()
    }

    fn put(&self, v: CheckedCredit) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Only the newest height is ever asked for again.
        let height = v.1.height;
        map.retain(|(h, _), _| *h >= height);
        map.insert((height, v.1.history.uscc.clone()), v);
        // Bounded by entries and by the records they hold together.
        let records = |m: &std::collections::BTreeMap<(u64, Uscc), CheckedCredit>| -> usize {
            m.values().map(|c| c.0.records.len()).sum()
        };
        while map.len() > CREDIT_CACHE_MAX
            || (map.len() > 1 && records(&map) > CREDIT_CACHE_RECORDS_MAX)
        {
            map.pop_first();
        }
    }
}

/// Bulk submissions (`records/bulk`) at once, from reading the body to the event
/// loop's answer; one more is refused `503 busy`. They bound what waits for the event
/// loop: at most this many requests of up to 1,000 records.
pub const BULK_AT_ONCE_MAX: usize = 16;

impl FromRef<ApiState> for Shared {
    fn from_ref(s: &ApiState) -> Shared {
        s.shared.clone()
    }
}

/// Every route, under `limits` ([`limits::guard`]); `rates` is the per-client token
/// buckets (the server forgets idle ones).
pub fn router(
    shared: Shared,
    limits: &ApiLimits,
    rates: Arc<limits::ClientRates>,
    stopping: watch::Receiver<bool>,
    access: access::AccessLog,
    desk: mpsc::Sender<crate::private::DeskMsg>,
) -> Router {
    let genesis_toml = axum::body::Bytes::from(shared.genesis.to_toml());
    let state = ApiState {
        shared,
        heavy: limits::HeavyPool::new(limits.heavy_running_max, limits.heavy_waiting_max),
        check_body_bytes_max: limits.check_body_bytes_max,
        streams: events::Streams::new(limits.streams_max),
        scrapes: Arc::default(),
        bulk: Arc::new(tokio::sync::Semaphore::new(BULK_AT_ONCE_MAX)),
        stopping,
        credit: Arc::default(),
        access,
        nonces: Arc::default(),
        desk,
        cursors: Arc::new(CursorKey::new()),
        genesis_toml,
    };
    let who = axum::middleware::from_fn_with_state(state.clone(), auth::authenticate);
    let metrics = state.shared.metrics.clone();
    // Streams live long: outside the time-out and the concurrency limit, under their
    // own cap and the rate limit.
    let streams = Router::new()
        .route(paths::EVENTS, get(events::events))
        .route_layer(who.clone())
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            rates.clone(),
            limits::rate_limit,
        ));
    // Probes and scrapes must answer when the API is saturated: outside its limits,
    // under a small bound of their own.
    let operators = limits::operator_guard(
        Router::new()
            .route(paths::METRICS, get(self::metrics))
            .route(paths::HEALTH, get(health))
            .route(paths::READY, get(ready))
            .with_state(state.clone()),
    );
    // Outermost, so that refusals by the limits are counted too.
    limits::guard(routes().route_layer(who).with_state(state), limits, rates)
        .merge(streams)
        .merge(operators)
        .layer(axum::middleware::from_fn_with_state(metrics, count_request))
}

/// Counts each answer by its route's template (never the path asked for: the labels
/// stay bounded) and status, and times it.
async fn count_request(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let started = std::time::Instant::now();
    let answer = next.run(req).await;
    metrics
        .api_requests
        .get_or_create(&RouteStatusLabels {
            route: route.clone(),
            status: answer.status().as_u16(),
        })
        .inc();
    metrics
        .api_seconds
        .get_or_create(&RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
    answer
}

fn routes() -> Router<ApiState> {
    Router::new()
        .route(paths::STATUS, get(status))
        .route(paths::GENESIS, get(genesis))
        .route(paths::RECORDS, axum::routing::post(submit))
        .route(paths::RECORD, get(record))
        .route(paths::RECORD_PROOF, get(record_proof))
        .route(paths::RECORDS_CHECK, axum::routing::post(check_records))
        .route(paths::RECORDS_BULK, axum::routing::post(submit_bulk))
        .route(paths::CONSISTENCY, get(consistency))
        .route(paths::ROSTERS, get(rosters))
        .route(paths::ROSTER, get(roster))
        .route(paths::PROPOSALS, get(proposals))
        .route(paths::PROPOSAL, get(proposal))
        .route(paths::BLOCK, get(block))
        .route(paths::ENTERPRISE, get(enterprise))
        .route(paths::ENTERPRISE_CREDIT, get(enterprise_credit))
        .route(paths::GRADING, get(grading))
        .route(paths::BATCH, get(batch))
        .route(paths::BATCH_PROVENANCE, get(batch_provenance))
        .route(paths::BATCH_EPCIS, get(batch_epcis))
        .route(paths::PROVENANCE, axum::routing::post(provenance))
        .route(paths::OPENAPI, get(openapi))
        .route(
            paths::PRIVATE,
            axum::routing::post(private_data::put_private),
        )
        .route(paths::RECORD_PRIVATE, get(private_data::record_private))
        .route("/web/label/{batch}", get(batch_label))
        .merge(crate::web::routes())
        .fallback(|| async {
            err(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such endpoint; see docs/api.md",
            )
        })
}

/// An error answer: its status, the JSON body every error has, and for refusals the
/// client should retry, a `Retry-After` in seconds.
#[derive(Debug)]
pub struct ApiFailure {
    status: StatusCode,
    error: ApiError,
    retry_after_s: Option<u64>,
}

fn err(status: StatusCode, code: &str, message: impl Into<String>) -> ApiFailure {
    ApiFailure {
        status,
        error: ApiError {
            code: code.to_string(),
            message: message.into(),
        },
        retry_after_s: None,
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.error)).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        response
    }
}

impl From<StoreError> for ApiFailure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error while answering");
        if e.is_damage() {
            // Never served, and the answer names no file of this machine: the node
            // repairs it from a peer's copy (docs/storage.md), another node has it now.
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "history_damaged",
                "this node's copy of the history asked for is damaged and being repaired; ask another node",
            )
            .retry_after(5);
        }
        storage_failed()
    }
}

/// A failure of this node's own store (already logged, with its cause): the answer says
/// only that, since the cause names files and paths of this machine.
fn storage_failed() -> ApiFailure {
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        "this node's store failed to answer; the cause is in its operator's log",
    )
}

impl From<AdmissionError> for ApiFailure {
    fn from(e: AdmissionError) -> Self {
        let status = match &e {
            AdmissionError::Rejected(r) => return r.clone().into(),
            AdmissionError::Full(_) => {
                return err(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
                    .retry_after(1);
            }
            AdmissionError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AdmissionError::Pending(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        err(status, e.code(), e.to_string())
    }
}

impl From<Rejection> for ApiFailure {
    fn from(r: Rejection) -> Self {
        let status = match &r {
            Rejection::Duplicate(_) | Rejection::AlreadyExists { .. } => StatusCode::CONFLICT,
            Rejection::UnknownSigner(_)
            | Rejection::KeyRevoked { .. }
            | Rejection::Unauthorised { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        err(status, r.code(), r.to_string())
    }
}

impl From<ProofRequestError> for ApiFailure {
    fn from(e: ProofRequestError) -> Self {
        match e {
            ProofRequestError::Store(e) => e.into(),
            ProofRequestError::NotFinal(_)
            | ProofRequestError::NoBlock(_)
            | ProofRequestError::NoBatch(_) => {
                err(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ProofRequestError::AfterCheckpoint { .. }
            | ProofRequestError::BeyondCheckpoint { .. } => {
                err(StatusCode::CONFLICT, "after_checkpoint", e.to_string())
            }
            ProofRequestError::Sizes { .. } => {
                err(StatusCode::BAD_REQUEST, "bad_sizes", e.to_string())
            }
            ProofRequestError::TooManyEvents { .. }
            | ProofRequestError::TooManyCreditRecords(_) => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "too_large", e.to_string())
            }
        }
    }
}

type ApiResult<T> = Result<Json<T>, ApiFailure>;

/// `Query` whose refusals are API errors (JSON, code `bad_query`) like every other.
struct Q<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiFailure;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiFailure> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|e| err(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))
    }
}

/// `Path` whose refusals are API errors (code `bad_path`).
struct P<T>(T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S>
    for P<T>
{
    type Rejection = ApiFailure;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiFailure> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| P(v))
            .map_err(|e| err(StatusCode::BAD_REQUEST, "bad_path", e.body_text()))
    }
}

/// The OpenAPI 3.1 description of this API (docs/api.md is the prose).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The genesis file, in the form `xinlian-genesis` writes it: reading it back gives the
/// same canonical genesis, so the same chain id, as the consortium's own file.
async fn genesis(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        s.genesis_toml.clone(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A scrape's answer is kept this long: scrapers asking more often (several
/// Prometheus servers, a dashboard) share it, and the store is measured at most once.
const SCRAPE_KEPT: Duration = Duration::from_secs(1);

/// The last exposition and when it was made; one scrape measures at a time.
#[derive(Default)]
pub(crate) struct Scrapes(tokio::sync::Mutex<Option<(std::time::Instant, Arc<str>)>>);

/// The Prometheus text exposition (`crate::metrics`), in the OpenMetrics format.
async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiFailure> {
    // Scrapes wait on each other: the one that measures answers the others too.
    let mut last = s.scrapes.0.lock().await;
    let text = match &*last {
        Some((at, text)) if at.elapsed() < SCRAPE_KEPT => text.clone(),
        _ => {
            let shared = s.shared.clone();
            // The scrape reads the store's size on disk: file metadata, off the workers.
            let text: Arc<str> =
                tokio::task::spawn_blocking(move || shared.metrics.encode(&shared.store))
                    .await
                    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
                    .into();
            *last = Some((std::time::Instant::now(), text.clone()));
            text
        }
    };
    drop(last);
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, kind)], text.to_string()).into_response())
}

/// Alive: the process answers. Says nothing of the chain (see [`ready`]).
async fn health(State(s): State<Shared>) -> Json<Health> {
    Json(Health {
        status: "alive".into(),
        height: s.tip.borrow().height,
    })
}

/// How old the last block here may be for the node to be ready: the longest a
/// consortium in step goes without one — an idle heartbeat or a block interval,
/// whichever is longer, plus four rounds whose proposers are down (each round's
/// propose, prevote and precommit timeouts, grown by the round) — and never less than
/// three heartbeats (a loaded machine delays a heartbeat block).
fn ready_tip_age_ms_max(block_interval_ms: u64) -> i64 {
    let t = xinlian_core::consensus::replica::Timeouts::for_interval(block_interval_ms);
    let round = t
        .propose_ms
        .saturating_add(t.prevote_ms)
        .saturating_add(t.precommit_ms);
    let rounds = (0..4u64).fold(0u64, |sum, r| {
        sum.saturating_add(round.saturating_add(t.delta_ms.saturating_mul(3 * r)))
    });
    let quiet = t.heartbeat_ms.max(t.block_interval_ms);
    let max = quiet
        .saturating_add(rounds)
        .max(t.heartbeat_ms.saturating_mul(3));
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// Ready: the last block here is recent, so the node is in step with the consortium
/// (not syncing, not cut off from it). `503 not_ready` otherwise, saying how far behind.
async fn ready(State(s): State<Shared>) -> ApiResult<Health> {
    let tip = s.tip.borrow().clone();
    let age_ms = now_ms().saturating_sub(tip.time_ms);
    let max = ready_tip_age_ms_max(s.consortium().policy().block_interval_ms);
    if age_ms > max {
        return Err(err(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!(
                "the last block here (height {}) is {} s old, more than {} s: \
                 syncing, or cut off from the consortium",
                tip.height,
                age_ms / 1000,
                max / 1000
            ),
        ));
    }
    Ok(Json(Health {
        status: "ready".into(),
        height: tip.height,
    }))
}

#[derive(Deserialize)]
struct AtQuery {
    at: Option<u64>,
}

async fn record_proof(
    State(s): State<Shared>,
    Extension(reader): Extension<Reader>,
    P(id): P<String>,
    Q(q): Q<AtQuery>,
) -> ApiResult<RecordProof> {
    let id = parse_id(&id)?;
    let view = View::new(&s, &reader)?;
    // Disclosure first: no other refusal (a checkpoint before the record, say) may tell
    // a reader that a record hidden from it exists.
    let mut shown = None;
    if let Some((_, index)) = s.store.locate(&id)? {
        let record = s.store.record_at(index)?.ok_or_else(storage_failed)?;
        if !view.admits(&record, false)? {
            return Err(not_visible(&reader, &id));
        }
        if let std::borrow::Cow::Owned(r) = view.shown(&record)? {
            shown = Some(r);
        }
    }
    let mut proof = disclosed(
        &reader,
        &id,
        proof_assembly::record_proof(&s.store, &id, q.at).map_err(ApiFailure::from),
    )?;
    if let Some(r) = shown {
        proof.entry.record = xinlian_client::proof::HexBytes(r.canonical_bytes());
    }
    Ok(Json(proof))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvenanceQuery {
    direction: Option<Direction>,
    depth: Option<u32>,
    max_batches: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvenanceBody {
    roots: Vec<String>,
    direction: Option<Direction>,
    #[serde(default, deserialize_with = "json_integer")]
    depth: Option<u32>,
    #[serde(default, deserialize_with = "json_integer")]
    max_batches: Option<usize>,
}

/// An optional integer of a JSON body. JSON Schema counts `120.0` as the integer 120,
/// so the API does too (a client generated from its description may send it); a
/// fraction, a negative number or one out of range is refused.
fn json_integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    });
    whole
        .and_then(|w| T::try_from(w).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not an integer in range")))
}

/// Steps from a root a walk takes by default and at most.
const PROVENANCE_DEPTH_MAX: u32 = 1_000;

fn provenance_request(
    roots: Vec<String>,
    direction: Option<Direction>,
    depth: Option<u32>,
    max_batches: Option<usize>,
) -> Result<proof_assembly::ProvenanceRequest, ApiFailure> {
    if roots.is_empty() || roots.len() > proof_assembly::PROVENANCE_ROOTS_MAX {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "name 1 to {} root batches",
                proof_assembly::PROVENANCE_ROOTS_MAX
            ),
        ));
    }
    roots.iter().try_for_each(|r| batch_id(r))?;
    let depth = depth.unwrap_or(PROVENANCE_DEPTH_MAX);
    let batches = max_batches.unwrap_or(ANSWER_BATCHES_MAX);
    if depth > PROVENANCE_DEPTH_MAX || !(1..=ANSWER_BATCHES_MAX).contains(&batches) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "depth is at most {PROVENANCE_DEPTH_MAX} and max_batches 1 to {ANSWER_BATCHES_MAX}"
            ),
        ));
    }
    Ok(proof_assembly::ProvenanceRequest {
        roots,
        direction: direction.unwrap_or(Direction::Upstream),
        depth,
        batches,
    })
}

/// The provenance answer to `req` as `reader` may see it (hidden amounts opened only
/// to whoever may read them), read on the heavy pool.
async fn answer_provenance(
    s: &ApiState,
    reader: &Reader,
    req: proof_assembly::ProvenanceRequest,
) -> ApiResult<ProvenanceProof> {
    let (shared, reader) = (s.shared.clone(), reader.clone());
    s.heavy
        .admit()?
        .run(move || shown_provenance(&shared, &reader, &req))
        .await
        .map(Json)
}

/// The provenance proof for `req`, each record as `reader` may see it.
fn shown_provenance(
    s: &Shared,
    reader: &Reader,
    req: &proof_assembly::ProvenanceRequest,
) -> Result<ProvenanceProof, ApiFailure> {
    let mut proof = proof_assembly::provenance(&s.store, req)?;
    let view = View::new(s, reader)?;
    for entry in &mut proof.records {
        view.show_entry(entry)?;
    }
    Ok(proof)
}

async fn batch_provenance(
    State(s): State<ApiState>,
    Extension(reader): Extension<Reader>,
    P(name): P<String>,
    Q(q): Q<ProvenanceQuery>,
) -> ApiResult<ProvenanceProof> {
    let req = provenance_request(vec![name], q.direction, q.depth, q.max_batches)?;
    answer_provenance(&s, &reader, req).await
}

/// The batch's events as an EPCIS 2.0 document: built from the same proof a client
/// gets, verified here as a client would, so the node exports nothing it cannot prove.
/// The walk, the verification (a signature per event) and the export all run as one
/// job on the heavy pool.
async fn batch_epcis(
    State(s): State<ApiState>,
    Extension(reader): Extension<Reader>,
    P(name): P<String>,
) -> Result<Response, ApiFailure> {
    let req = provenance_request(vec![name.clone()], None, Some(0), None)?;
    let shared = s.shared.clone();
    let doc = s
        .heavy
        .admit()?
        .run(move || -> Result<String, ApiFailure> {
            let proof = shown_provenance(&shared, &reader, &req)?;
            let light = own_light_client(&shared.store, &shared.genesis)?;
            let answer = light.verify_provenance(&proof).map_err(|e| {
                tracing::error!(error = %e, "own provenance answer does not verify");
                err(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
            })?;
            let batch = answer.batches.get(&name).ok_or_else(|| {
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage",
                    format!("the answer for batch {name} does not hold it"),
                )
            })?;
            let now = xinlian_client::when::EventTime {
                unix_ms: now_ms(),
                offset_minutes: 480,
            };
            Ok(xinlian_client::epcis::export(&[batch], now).to_string())
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/ld+json")], doc).into_response())
}

/// A light client from genesis that has followed this node's own roster changes: what
/// the node checks its own answers with before giving them.
fn own_light_client(
    store: &crate::store::Store,
    genesis: &xinlian_genesis::Genesis,
) -> Result<xinlian_client::proof::LightClient, ApiFailure> {
    let mut light = xinlian_client::proof::LightClient::new(genesis.clone());
    light
        .accept_changes(&proof_assembly::roster_changes(store, 1)?)
        .map_err(|e| {
            tracing::error!(error = %e, "own roster changes do not verify");
            storage_failed()
        })?;
    Ok(light)
}

/// A request's `Content-Type`, or "" when it has none (or one that is not text).
fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// A request's whole body, refused `413 oversize` past `limit` bytes.
async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiFailure> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversize",
                format!("request body over {limit} bytes"),
            )
        })
}

async fn provenance(
    State(s): State<ApiState>,
    Extension(reader): Extension<Reader>,
    req: Request,
) -> ApiResult<ProvenanceProof> {
    let body = read_body(req, 64 << 10).await?;
    let b: ProvenanceBody = serde_json::from_slice(&body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
    let req = provenance_request(b.roots, b.direction, b.depth, b.max_batches)?;
    answer_provenance(&s, &reader, req).await
}

/// Executes records in order on the current state, keeping nothing: what an importer
/// asks before submitting a set that must go in whole. A place on the heavy pool is
/// taken before the body is read, so at most the pool's places hold a body; parsing,
/// the signature checks and execution run there, holding no lock.
async fn check_records(State(s): State<ApiState>, req: Request) -> ApiResult<CheckedRecords> {
    let ticket = s.heavy.admit()?;
    let limit = s.check_body_bytes_max;
    let body = read_body(req, limit).await?;
    let shared = s.shared.clone();
    let answer = ticket.run(move || check_body(&shared, &body)).await?;
    Ok(Json(answer))
}

/// A records/check body: parsed, each record's stateless checks and signature (in one
/// batch), then the records that passed executed in order on one tip; no lock is
/// held at any step.
fn check_body(s: &Shared, body: &[u8]) -> Result<CheckedRecords, ApiFailure> {
    let max = s.consortium().policy().record_bytes_max as usize;
    let encoded = json_records(body)?;
    if let Some(r) = encoded.iter().find(|r| r.bytes().len() > max) {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversize",
            format!("record {} is over {max} bytes", r.id()),
        ));
    }
    let stateless = check_signed(&encoded, &s.consortium().chain);
    // Executed with no lock: the tip read after equal to the one read before means no
    // block was committed meanwhile (every commit moves the tip, atomically with its
    // writes), so every read saw that one tip. A commit never waits for a check.
    for _ in 0..CHECK_ATTEMPTS {
        let tip = s.store.tip()?;
        let results = execute_checked(s, &tip, &encoded, &stateless)?;
        if s.store.tip()?.hash == tip.hash {
            return Ok(CheckedRecords {
                height: tip.height,
                results,
            });
        }
    }
    Err(err(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        format!("a block was committed during each of {CHECK_ATTEMPTS} attempts; retry"),
    )
    .retry_after(1))
}

/// Tries at executing a check on one tip before it is refused `busy`.
const CHECK_ATTEMPTS: usize = 3;

/// The verdicts of `encoded` executed in order on `tip`, those that failed their
/// stateless checks (`stateless`) left out.
fn execute_checked(
    s: &Shared,
    tip: &xinlian_core::chain::Tip,
    encoded: &[EncodedRecord],
    stateless: &[Result<(), Rejection>],
) -> Result<Vec<CheckResult>, ApiFailure> {
    let storage = |e: String| {
        tracing::error!(error = %e, "store error while checking records");
        storage_failed()
    };
    let store = s.store.as_ref();
    let c = xinlian_core::governance::consortium_at(store, &s.genesis, tip.height + 1)
        .map_err(|e| storage(e.to_string()))?;
    // The mempool's admission on an empty pool is execution in order on this tip,
    // each record seeing the ones before it; signatures are already checked.
    let mut pool = xinlian_core::mempool::Mempool::new(encoded.len(), usize::MAX);
    let now = now_ms();
    let mut results = Vec::with_capacity(encoded.len());
    for (r, checked) in encoded.iter().zip(stateless) {
        let verdict = match checked {
            Err(e) => Some(e.clone()),
            Ok(()) => match pool.admit(store, &c, tip, now, r.clone(), SignatureCheck::Done) {
                Ok(_) => None,
                Err(AdmissionError::Rejected(rejection)) => Some(rejection),
                // The same record twice in one set: the second is a duplicate.
                Err(AdmissionError::Pending(id)) => Some(Rejection::Duplicate(id)),
                Err(e) => return Err(storage(e.to_string())),
            },
        };
        results.push(CheckResult {
            id: r.id(),
            code: verdict.as_ref().map(|v| v.code().to_string()),
            message: verdict.map(|v| v.to_string()),
        });
    }
    Ok(results)
}

/// Each record's stateless checks and signature, as admission would give them
/// (`check_stateless`), with the signatures checked in one batch.
fn check_signed(
    records: &[EncodedRecord],
    chain: &xinlian_genesis::Hash32,
) -> Vec<Result<(), Rejection>> {
    xinlian_client::checks::check_stateless_batch(records, chain)
        .into_iter()
        .map(|v| v.map_err(Rejection::from))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct SizesQuery {
    first: u64,
    second: u64,
}

async fn consistency(State(s): State<Shared>, Q(q): Q<SizesQuery>) -> ApiResult<ConsistencyProof> {
    let size = s.tip.borrow().frontier.size();
    Ok(Json(proof_assembly::consistency(
        &s.store, size, q.first, q.second,
    )?))
}

#[derive(Deserialize)]
struct AfterQuery {
    #[serde(default)]
    after: u64,
}

async fn rosters(State(s): State<ApiState>, Q(q): Q<AfterQuery>) -> ApiResult<RosterChanges> {
    let store = s.shared.store.clone();
    let changes = s
        .heavy
        .admit()?
        .run(move || proof_assembly::roster_changes(&store, q.after).map_err(ApiFailure::from))
        .await?;
    Ok(Json(RosterChanges { changes }))
}

async fn roster(State(s): State<Shared>) -> ApiResult<RosterView> {
    let c = s.consortium();
    Ok(Json(RosterView {
        since: c.since,
        hash: c.roster_hash,
        roster: c.roster.clone(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalsQuery {
    status: Option<String>,
    limit: Option<usize>,
}

fn proposal_view(p: xinlian_client::governance::ProposalState, height: u64) -> ProposalView {
    ProposalView {
        status: p.status(height),
        summary: p.change.summary(),
        approve_power: p.power_for(true),
        reject_power: p.power_for(false),
        total_power: p.total_power(),
        proposal: p,
    }
}

/// Every proposal (kept forever, whatever became of it), newest first, optionally of
/// one status as of the tip.
async fn proposals(State(s): State<Shared>, Q(q): Q<ProposalsQuery>) -> ApiResult<Proposals> {
    use xinlian_client::governance::{ProposalState, Status};
    let wanted = match q.status.as_deref() {
        None => None,
        Some(name) => Some(Status::from_name(name).ok_or_else(|| {
            err(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!(
                    "status '{name}' is not one of open, passed, rejected, expired, not_applied"
                ),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(PAGE_DEFAULT).min(LIST_ITEMS_MAX);
    let (height, all) = s.store.consistent(|store| -> Result<_, StoreError> {
        let all: Vec<(Vec<u8>, ProposalState)> = store.state_scan(&[key::PROPOSAL], usize::MAX)?;
        Ok((store.tip()?.height, all))
    })?;
    let mut list: Vec<ProposalView> = all
        .into_iter()
        .map(|(_, p)| proposal_view(p, height))
        .filter(|v| wanted.is_none_or(|w| v.status == w))
        .collect();
    list.sort_by(|a, b| {
        (b.proposal.proposed_at, b.proposal.id).cmp(&(a.proposal.proposed_at, a.proposal.id))
    });
    list.truncate(limit);
    Ok(Json(Proposals {
        height,
        proposals: list,
    }))
}

async fn proposal(State(s): State<Shared>, P(id): P<String>) -> ApiResult<ProposalView> {
    let id = parse_id(&id)?;
    let (height, p) = s.store.consistent(|store| -> Result<_, StoreError> {
        Ok((
            store.tip()?.height,
            store.state_value::<xinlian_client::governance::ProposalState>(&key::proposal(&id))?,
        ))
    })?;
    let p = p.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no proposal {id} (a propose record's id)"),
        )
    })?;
    Ok(Json(proposal_view(p, height)))
}

async fn status(State(s): State<Shared>) -> ApiResult<Status> {
    let c = s.consortium();
    let tip = s.tip.borrow().clone();
    let (tx, rx) = oneshot::channel();
    let progress = match s.commands.try_send(Command::Progress { reply: tx }) {
        Ok(()) => rx.await.unwrap_or_default(),
        Err(e) => return Err(command_refused(e)),
    };
    Ok(Json(Status {
        chain_id: s.genesis.chain_id.clone(),
        genesis_hash: c.chain,
        height: tip.height,
        tip_hash: tip.hash,
        tip_time_ms: tip.time_ms,
        ledger_size: tip.frontier.size(),
        ledger_root: tip.frontier.root(),
        state_hash: tip.state_hash,
        node: c
            .roster
            .member_by_node_key(&s.node_key)
            .map(|m| m.id.clone())
            .unwrap_or_default(),
        validator: c.validators.index_of(&s.node_key).is_some(),
        mempool_records: progress.mempool_records,
        syncing_to: progress.syncing_to,
        round: progress.round,
        peers: peer_heights(&c, &progress.peers),
    }))
}

/// Peers' announced heights by member, in member order; a key the roster no longer
/// names is left out.
fn peer_heights(
    c: &xinlian_core::consortium::Consortium,
    peers: &[(xinlian_genesis::PublicKey, u64)],
) -> Vec<xinlian_client::api::PeerHeight> {
    let mut out: Vec<_> = (peers.iter())
        .filter_map(|(k, height)| {
            c.roster
                .member_by_node_key(k)
                .map(|m| xinlian_client::api::PeerHeight {
                    member: m.id.clone(),
                    height: *height,
                })
        })
        .collect();
    out.sort_by(|a, b| a.member.cmp(&b.member));
    out
}

#[derive(Deserialize)]
struct WaitQuery {
    wait_ms: Option<u64>,
}

impl WaitQuery {
    /// How long to wait for finality (0: not at all); a wait beyond `WAIT_MS_MAX` is
    /// refused, never silently shortened.
    fn wait_ms(&self) -> Result<u64, ApiFailure> {
        match self.wait_ms {
            Some(ms) if ms > WAIT_MS_MAX => Err(err(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("wait_ms is {ms}: at most {WAIT_MS_MAX}"),
            )),
            ms => Ok(ms.unwrap_or(0)),
        }
    }
}

fn parse_id(text: &str) -> Result<RecordId, ApiFailure> {
    RecordId::from_hex(text).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_id",
            format!("record id must be 64 hex digits: {e}"),
        )
    })
}

/// Decodes a submission: canonical postcard bytes, or the JSON form of a signed record.
/// The stable code of a record's canonical bytes that do not decode.
fn decode_code(e: &xinlian_client::record::DecodeError) -> &'static str {
    use xinlian_client::record::DecodeError::Canonical;
    use xinlian_genesis::canonical::CanonicalError;
    match e {
        Canonical(CanonicalError::Oversize { .. }) => "oversize",
        Canonical(CanonicalError::NonCanonical) => "non_canonical",
        _ => "malformed",
    }
}

/// A JSON list of 1 to `RECORDS_PER_REQUEST_MAX` signed records, each encoded once.
fn json_records(body: &[u8]) -> Result<Vec<EncodedRecord>, ApiFailure> {
    use xinlian_client::bulk::RECORDS_PER_REQUEST_MAX;
    let records: Vec<SignedRecord> = serde_json::from_slice(body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("not a list of signed records: {e}"),
        )
    })?;
    if records.is_empty() || records.len() > RECORDS_PER_REQUEST_MAX {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "send 1 to {RECORDS_PER_REQUEST_MAX} records, not {}",
                records.len()
            ),
        ));
    }
    Ok(records.into_iter().map(EncodedRecord::new).collect())
}

fn decode_submission(
    content_type: &str,
    body: &[u8],
    max: usize,
) -> Result<EncodedRecord, ApiFailure> {
    let rec = if content_type.starts_with("application/json") {
        serde_json::from_slice::<SignedRecord>(body)
            .map(EncodedRecord::new)
            .map_err(|e| {
                err(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("not a signed record: {e}"),
                )
            })?
    } else if content_type.starts_with("application/octet-stream") {
        EncodedRecord::decode(body, max)
            .map_err(|e| err(StatusCode::BAD_REQUEST, decode_code(&e), e.to_string()))?
    } else {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "send application/octet-stream (canonical bytes) or application/json",
        ));
    };
    let len = rec.bytes().len();
    if len > max {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "oversize",
            format!("record is {len} bytes, over the bound of {max} bytes"),
        ));
    }
    Ok(rec)
}

async fn submit(
    State(s): State<Shared>,
    Extension(reader): Extension<Reader>,
    Q(q): Q<WaitQuery>,
    req: Request,
) -> Result<Response, ApiFailure> {
    let wait_ms = q.wait_ms()?;
    let max = s.consortium().policy().record_bytes_max as usize;
    let content_type = content_type(&req);
    // JSON spells bytes as hex, so allow it a few times the binary bound.
    let body = read_body(req, 4 * max + 4096).await?;
    let rec = decode_submission(&content_type, &body, max)?;
    // The signature is checked here, on the API's threads: a record that fails its
    // stateless checks never reaches the consensus thread.
    let rec = VerifiedRecord::check(rec, &s.consortium().chain)?;
    let (tx, rx) = oneshot::channel();
    s.commands
        .try_send(Command::Submit {
            record: Box::new(rec),
            reply: tx,
        })
        .map_err(command_refused)?;
    let id = rx.await.map_err(|_| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is stopping",
        )
    })??;
    match wait_ms {
        0 => Ok((StatusCode::ACCEPTED, Json(Submitted { id })).into_response()),
        ms => {
            // As any read of it: a submitter may hold a record only in its ledger form.
            let view = wait_for_record(&s, id, ms).await?;
            Ok(Json(View::new(&s, &reader)?.show_view(view)?).into_response())
        }
    }
}

/// Submits many records in one request: each gets its own verdict, in order, and only
/// the admitted ones change anything. A bulk place ([`BULK_AT_ONCE_MAX`]) is taken
/// before the body is read and held until the event loop has answered; decoding and
/// the signatures (one batch verification) are checked on a blocking thread (ingestion
/// does not queue behind the heavy reads); then the records that passed are admitted
/// on the event loop in one command, one after another (each sees the ones before it,
/// as separate submissions would).
async fn submit_bulk(State(s): State<ApiState>, req: Request) -> Result<Response, ApiFailure> {
    let place = s.bulk.clone().try_acquire_owned().map_err(|_| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{BULK_AT_ONCE_MAX} bulk submissions are being taken in; retry"),
        )
        .retry_after(1)
    })?;
    let content_type = content_type(&req);
    let limit = s.check_body_bytes_max;
    let body = read_body(req, limit).await?;
    let shared = s.shared.clone();
    // The place goes with the check (a client that hangs up does not free it while its
    // check runs) and comes back for the wait on the event loop.
    let (slots, verified, place) = tokio::task::spawn_blocking(move || {
        let c = shared.consortium();
        let max = c.policy().record_bytes_max as usize;
        let records = decode_bulk(&content_type, &body, max)?;
        let mut verified = Vec::new();
        let slots: Vec<Result<RecordId, (RecordId, Rejection)>> =
            VerifiedRecord::check_all(records, &c.chain)
                .into_iter()
                .map(|v| {
                    v.map(|r| {
                        let id = r.id();
                        verified.push(r);
                        id
                    })
                })
                .collect();
        Ok::<_, ApiFailure>((slots, verified, place))
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a bulk submission's check did not finish");
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node failed to check this request; the cause is in its operator's log",
        )
    })??;
    let admitted = if verified.is_empty() {
        Vec::new()
    } else {
        let (tx, rx) = oneshot::channel();
        s.shared
            .commands
            .try_send(Command::SubmitMany {
                records: verified,
                reply: tx,
            })
            .map_err(command_refused)?;
        rx.await.map_err(|_| {
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "node is stopping",
            )
        })?
    };
    drop(place);
    let mut admitted = admitted.into_iter();
    let mut full = false;
    let results = slots
        .into_iter()
        .map(|v| {
            let (id, refusal) = match v {
                Err((id, rejection)) => (id, Some(ApiFailure::from(rejection))),
                // One answer per record sent on: the reply has as many.
                Ok(id) => match admitted.next() {
                    Some(Ok(_)) => (id, None),
                    Some(Err(e)) => {
                        full |= matches!(e, AdmissionError::Full(_));
                        (id, Some(ApiFailure::from(e)))
                    }
                    None => (id, Some(storage_failed())),
                },
            };
            CheckResult {
                id,
                code: refusal.as_ref().map(|f| f.error.code.clone()),
                message: refusal.map(|f| f.error.message),
            }
        })
        .collect();
    let mut answer = Json(SubmittedRecords { results }).into_response();
    if full {
        // Some were refused for a full mempool: the client may send those again.
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(1));
    }
    Ok(answer)
}

/// A bulk body: the binary framing of [`xinlian_client::bulk`], or a JSON list of
/// signed records; either refused whole (nothing admitted) when it does not parse.
fn decode_bulk(
    content_type: &str,
    body: &[u8],
    max: usize,
) -> Result<Vec<EncodedRecord>, ApiFailure> {
    use xinlian_client::bulk::{self, BulkError, RECORDS_PER_REQUEST_MAX};
    let records = if content_type.starts_with("application/json") {
        let encoded = json_records(body)?;
        if let Some((i, r)) = encoded
            .iter()
            .enumerate()
            .find(|(_, r)| r.bytes().len() > max)
        {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "oversize",
                format!(
                    "the record at index {i} is {} bytes, over the bound of {max} bytes",
                    r.bytes().len()
                ),
            ));
        }
        encoded
    } else if content_type.starts_with("application/octet-stream") {
        bulk::decode(body, RECORDS_PER_REQUEST_MAX, max).map_err(|e| {
            let code = match &e {
                BulkError::Empty { .. } | BulkError::TooMany { .. } => "bad_query",
                BulkError::Oversize { .. } => "oversize",
                BulkError::Record { source, .. } => decode_code(source),
                BulkError::Length { .. } | BulkError::Truncated { .. } => "malformed",
            };
            err(StatusCode::BAD_REQUEST, code, e.to_string())
        })?
    } else {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "send application/octet-stream (records, each after its length) or application/json (a list)",
        ));
    };
    Ok(records)
}

async fn wait_for_record(s: &Shared, id: RecordId, wait_ms: u64) -> Result<RecordView, ApiFailure> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let mut tip = s.tip.clone();
    loop {
        tip.borrow_and_update();
        if let Some(v) = final_view(s, &id)? {
            return Ok(v);
        }
        match tokio::time::timeout_at(deadline, tip.changed()).await {
            Ok(Ok(())) => continue,
            _ => return pending_view(s, id).await,
        }
    }
}

fn final_view(s: &Shared, id: &RecordId) -> Result<Option<RecordView>, ApiFailure> {
    let Some((height, index)) = s.store.locate(id)? else {
        return Ok(None);
    };
    let rec = s.store.record_at(index)?.ok_or_else(|| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            format!("record {index} missing"),
        )
    })?;
    let proof = proof_assembly::record_proof(&s.store, id, Some(height))?;
    Ok(Some(
        RecordView::new(rec, Some((height, index))).with_proof(proof),
    ))
}

/// A command the host's queue did not take: full (`503`, retry) or closed.
fn command_refused<T>(e: mpsc::error::TrySendError<T>) -> ApiFailure {
    match e {
        mpsc::error::TrySendError::Full(_) => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the node's event loop has a full queue; retry",
        )
        .retry_after(1),
        mpsc::error::TrySendError::Closed(_) => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is stopping",
        ),
    }
}

async fn pending_view(s: &Shared, id: RecordId) -> Result<RecordView, ApiFailure> {
    let (tx, rx) = oneshot::channel();
    s.commands
        .try_send(Command::Pending { id, reply: tx })
        .map_err(command_refused)?;
    match rx.await.ok().flatten() {
        Some(rec) => Ok(RecordView::new(rec, None)),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("record {id} is neither final nor pending"),
        )),
    }
}

async fn record(
    State(s): State<Shared>,
    Extension(reader): Extension<Reader>,
    P(id): P<String>,
    Q(q): Q<WaitQuery>,
) -> ApiResult<RecordView> {
    let id = parse_id(&id)?;
    let found = match q.wait_ms()? {
        0 => match final_view(&s, &id)? {
            Some(v) => Ok(v),
            None => pending_view(&s, id).await,
        },
        ms => wait_for_record(&s, id, ms).await,
    };
    let view = disclosed(&reader, &id, found)?;
    let audience = View::new(&s, &reader)?;
    if !audience.admits(&view.record, view.status == RecordStatus::Pending)? {
        return Err(not_visible(&reader, &id));
    }
    Ok(Json(audience.show_view(view)?))
}

/// A record this reader may not read. To a reader who may not know whether it exists
/// (not a member: members hold every block), the same answer as for no record at all.
fn not_visible(reader: &Reader, id: &RecordId) -> ApiFailure {
    if reader.knows_every_leaf() {
        err(
            StatusCode::FORBIDDEN,
            "not_visible",
            format!("record {id} is not disclosed to {}", reader.label()),
        )
    } else {
        err(
            StatusCode::NOT_FOUND,
            "not_visible",
            format!("no record {id} that {} may read", reader.label()),
        )
    }
}

/// No final record `id`: `not_found` to members, to others what a hidden one answers.
fn disclosed_missing(reader: &Reader, id: &RecordId) -> ApiFailure {
    if reader.knows_every_leaf() {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("record {id} is not final"),
        )
    } else {
        not_visible(reader, id)
    }
}

/// `found`, with "no such record" said as [`not_visible`] says a hidden one, to readers
/// who may not know.
fn disclosed<T>(
    reader: &Reader,
    id: &RecordId,
    found: Result<T, ApiFailure>,
) -> Result<T, ApiFailure> {
    match found {
        Err(e) if e.error.code == "not_found" && !reader.knows_every_leaf() => {
            Err(not_visible(reader, id))
        }
        other => other,
    }
}

/// `?records=false`: the header and certificate alone, for a reader (the operator
/// page) that verifies every byte it is given and has no use for the record ids.
#[derive(Deserialize)]
struct BlockQuery {
    records: Option<bool>,
}

async fn block(
    State(s): State<Shared>,
    P(height): P<String>,
    Q(q): Q<BlockQuery>,
) -> ApiResult<BlockView> {
    let height: u64 = height.parse().map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_height",
            "height must be a number",
        )
    })?;
    let not_found = || {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no finalized block at height {height}"),
        )
    };
    // Without record ids the header alone is read, not the block's records.
    let (header, records) = match q.records.unwrap_or(true) {
        true => {
            let block = s.store.block(height)?.ok_or_else(not_found)?;
            let ids = block.records.iter().map(SignedRecord::id).collect();
            (block.header, ids)
        }
        false => (s.store.header(height)?.ok_or_else(not_found)?, Vec::new()),
    };
    let certificate = s.store.certificate(height)?.ok_or_else(not_found)?;
    Ok(Json(BlockView {
        hash: header.hash(),
        records,
        header,
        certificate,
    }))
}

/// `?after=CURSOR&limit=N`: one page of a list, after the cursor the previous page
/// returned as `next_after`.
#[derive(Deserialize)]
struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

impl PageQuery {
    fn limit(&self) -> Result<usize, ApiFailure> {
        match self.limit {
            None => Ok(PAGE_DEFAULT),
            Some(n) if (1..=LIST_ITEMS_MAX).contains(&n) => Ok(n),
            Some(n) => Err(err(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("limit must be between 1 and {LIST_ITEMS_MAX}, not {n}"),
            )),
        }
    }
}

/// Reads one more than a page to learn whether another page follows.
fn page<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more)
}

fn uscc_of(uscc: String) -> Result<Uscc, ApiFailure> {
    let u = Uscc(uscc);
    u.check_format()
        .map_err(|e| err(StatusCode::BAD_REQUEST, "invalid_identifier", e.to_string()))?;
    Ok(u)
}

/// The enterprise's credit proof, checked here as a client would check it, and its
/// grade: the node answers nothing it cannot prove. One job on the heavy pool.
async fn verified_credit(s: &ApiState, u: &Uscc) -> Result<CheckedCredit, ApiFailure> {
    if let Some(hit) = s.credit.get(s.shared.store.tip()?.height, u) {
        return Ok(hit);
    }
    let (store, genesis, u) = (s.shared.store.clone(), s.shared.genesis.clone(), u.clone());
    let cache = s.credit.clone();
    s.heavy
        .admit()?
        .run(move || {
            let proof = proof_assembly::credit(&store, &u)?;
            let light = own_light_client(&store, &genesis)?;
            match light.verify_credit(&u, &proof) {
                Ok(v) => {
                    let answer = Arc::new((proof, v));
                    cache.put(answer.clone());
                    Ok(answer)
                }
                Err(CreditError::NotRegistered { .. }) => Err(err(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("enterprise {u} is not registered"),
                )),
                Err(e) => {
                    tracing::error!(error = %e, "own credit answer does not verify");
                    Err(err(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "storage",
                        e.to_string(),
                    ))
                }
            }
        })
        .await
}

/// `GET /v1/enterprises/{uscc}/credit`: the complete credit record with its proofs,
/// checked here first; for an unregistered USCC, `404`. With `?unchecked=true` the
/// answer as assembled, for clients that check it themselves (they must): cheaper, and
/// for an unregistered USCC the proof of its absence.
async fn enterprise_credit(
    State(s): State<ApiState>,
    Extension(reader): Extension<Reader>,
    P(uscc): P<String>,
    Q(q): Q<CreditQuery>,
) -> ApiResult<CreditProof> {
    let u = uscc_of(uscc)?;
    let refused = || {
        err(
            StatusCode::FORBIDDEN,
            "not_entitled",
            format!(
                "the complete credit record of {u} is the enterprise's and the consortium's; \
                 ask the enterprise for its credit report (xinlian credit --report)"
            ),
        )
    };
    // Refused before anything is assembled, to readers who never may, so that no other
    // answer (too large, say) tells them anything of the records.
    let never = match &reader {
        Reader::Public | Reader::Custody(_) => true,
        Reader::Enterprise(e) => *e != u,
        Reader::Member(_) => false,
    };
    if never
        && s.shared
            .store
            .state_value::<st::Entity>(&key::entity(&u))?
            .is_some()
    {
        return Err(refused());
    }
    let answer = match q.unchecked.unwrap_or(false) {
        true => unchecked_credit(&s, &u).await?,
        false => verified_credit(&s, &u).await?.0.clone(),
    };
    // Registration is public: anyone may have the proof that a USCC is not registered.
    if answer.state.is_none() {
        return Ok(Json(answer));
    }
    // Up to 20,000 records looked at: on the heavy pool, not the API's threads.
    let (shared, who, uscc) = (s.shared.clone(), reader.clone(), u.clone());
    let (answer, whole) = s
        .heavy
        .admit()?
        .run(move || {
            let view = View::new(&shared, &who)?;
            let (whole, _) = credit_access(&shared, &view, &uscc, &answer)?;
            Ok::<_, ApiFailure>((answer, whole))
        })
        .await?;
    if !whole {
        return Err(refused());
    }
    Ok(Json(answer))
}

async fn unchecked_credit(s: &ApiState, u: &Uscc) -> Result<CreditProof, ApiFailure> {
    let (store, u) = (s.shared.store.clone(), u.clone());
    s.heavy
        .admit()?
        .run(move || proof_assembly::credit(&store, &u).map_err(ApiFailure::from))
        .await
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditQuery {
    /// Answer as assembled, unchecked, also for an unregistered USCC (the proof of absence).
    unchecked: Option<bool>,
}

async fn grading(State(s): State<Shared>) -> ApiResult<GradingView> {
    let c = s.consortium();
    let rules = c.policy().grading.clone();
    Ok(Json(GradingView {
        since: c.since,
        explanation: xinlian_client::credit::explain(&rules),
        rules,
    }))
}

async fn enterprise(
    State(st): State<ApiState>,
    Extension(reader): Extension<Reader>,
    P(uscc): P<String>,
    Q(q): Q<PageQuery>,
) -> ApiResult<EnterpriseView> {
    let s = st.shared.clone();
    let limit = q.limit()?;
    let u = uscc_of(uscc)?;
    let answer = verified_credit(&st, &u).await?;
    let (credit, verified) = (&answer.0, &answer.1);
    let entity: st::Entity = s.store.state_value(&key::entity(&u))?.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("enterprise {u} is not registered"),
        )
    })?;
    let (page, whole) = {
        let (s, reader, credit, u) = (s.clone(), reader.clone(), answer.clone(), u.clone());
        let cursors = st.cursors.clone();
        st.heavy
            .admit()?
            .run(move || {
                let view = View::new(&s, &reader)?;
                let (whole, hidden) = credit_access(&s, &view, &u, &credit.0)?;
                let page = subject_page(
                    &s,
                    &view,
                    &u,
                    whole.then_some(()).ok_or(&*cursors),
                    q.after,
                    limit,
                )?;
                Ok::<_, ApiFailure>(((page, hidden), whole))
            })
            .await?
    };
    let ((records, next_after), hidden) = page;
    let (mut commitments, mut repairs) = (Vec::new(), Vec::new());
    for id in &records {
        if let Some(mut c) = s
            .store
            .state_value::<st::CommitmentState>(&key::commitment(id))?
        {
            if !whole {
                withhold_repair(&mut c);
            }
            commitments.push(c);
        }
        if let Some(r) = s.store.state_value::<st::RepairState>(&key::repair(id))? {
            repairs.push(r);
        }
    }
    let mut lists = Vec::new();
    for kind in [
        xinlian_client::record::ListKind::Reward,
        xinlian_client::record::ListKind::SeriousDishonesty,
    ] {
        if let Some(e) = s.store.state_value::<st::ListEntry>(&key::list(kind, &u))? {
            lists.push(e);
        }
    }
    let mut grade = verified.grade.clone();
    if !whole {
        withhold_reasons(&mut grade, &hidden.into_iter().collect());
    }
    Ok(Json(EnterpriseView {
        entity,
        profile: whole.then(|| verified.history.profile.clone()),
        commitments,
        repairs,
        lists,
        records,
        next_after,
        grade,
        credit: (whole && q.after.is_none()).then(|| credit.clone()),
    }))
}

/// One page of the records concerning `u` the reader may read, and the cursor of the
/// next. A reader who may read them all (`whole` is `Ok`) pages by ledger index. To any
/// other, the scan goes on past hidden records until the page is full or
/// `SCAN_MAX` entries were read, and the cursor is the position last scanned,
/// enciphered (`CursorKey`): neither the page's size nor its cursor tells where a
/// hidden record is, and no request reads more than `SCAN_MAX` entries.
fn subject_page(
    s: &Shared,
    view: &View<'_>,
    u: &Uscc,
    whole: Result<(), &CursorKey>,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<RecordId>, Option<u64>), ApiFailure> {
    const SCAN_MAX: usize = 10_000;
    let prefix = key::subject_records_prefix(u);
    let after = match whole {
        Ok(()) => after,
        Err(k) => after.map(|c| k.open(c)),
    };
    let mut cursor = after.map(u64::to_be_bytes);
    let (mut shown, mut scanned): (Vec<(u64, RecordId)>, usize) =
        (Vec::with_capacity(limit + 1), 0);
    let mut last_scanned = None;
    let mut ended = false;
    'scan: while shown.len() <= limit {
        let want = if whole.is_ok() {
            limit + 1
        } else {
            (SCAN_MAX - scanned).min(1_000)
        };
        if want == 0 {
            break;
        }
        let chunk =
            s.store
                .state_scan_after::<RecordId>(&prefix, cursor.as_ref().map(|a| &a[..]), want)?;
        ended = chunk.len() < want;
        for (k, id) in chunk {
            let index = index_key(&k)?;
            cursor = Some(index.to_be_bytes());
            scanned += 1;
            let visible = whole.is_ok()
                || match s.store.locate(&id)? {
                    Some((_, at)) => {
                        let rec = s.store.record_at(at)?.ok_or_else(storage_failed)?;
                        view.admits(&rec, false)?
                    }
                    None => false,
                };
            if visible {
                if shown.len() == limit {
                    // One more visible: there is a next page, from the last shown.
                    shown.push((index, id));
                    break 'scan;
                }
                shown.push((index, id));
            }
            last_scanned = Some(index);
        }
        if ended {
            break;
        }
    }
    let more = shown.len() > limit;
    shown.truncate(limit);
    let next = match whole {
        Ok(()) => more.then(|| shown.last().map(|(i, _)| *i)).flatten(),
        // Not at the end: go on from the last position scanned (a page cut short by
        // the budget may be short, or empty, and still have a next).
        Err(k) => match (more, ended) {
            (true, _) => shown.last().map(|(i, _)| k.seal(*i)),
            (false, true) => None,
            (false, false) => last_scanned.map(|i| k.seal(i)),
        },
    };
    Ok((shown.into_iter().map(|(_, id)| id).collect(), next))
}

fn index_key(k: &[u8]) -> Result<u64, ApiFailure> {
    Ok(u64::from_be_bytes(k.try_into().map_err(|_| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            "subject index key",
        )
    })?))
}

/// A commitment as shown to a reader who may not read its repair files (never
/// public): no application, no decision, the breach as determined.
fn withhold_repair(c: &mut st::CommitmentState) {
    c.open_repair = None;
    c.repaired_by = None;
    if let st::CommitmentStatus::Repaired(sev) = c.status {
        c.status = st::CommitmentStatus::Breached(sev);
    }
}

/// Whether `view`'s reader may read every credit record of `u` (the enterprise itself,
/// or a member every one of them is disclosed to), and the ones it may not. The public
/// and other enterprises never read them all, whatever the records: a refusal that
/// depended on them would tell that something is hidden.
fn credit_access(
    s: &Shared,
    view: &View<'_>,
    u: &Uscc,
    credit: &CreditProof,
) -> Result<(bool, Vec<RecordId>), ApiFailure> {
    if matches!(view.reader, Reader::Enterprise(e) if e == u) {
        return Ok((true, Vec::new()));
    }
    let mut hidden = Vec::new();
    for entry in &credit.records {
        let rec = s.store.record_at(entry.index)?.ok_or_else(storage_failed)?;
        if !view.admits(&rec, false)? {
            hidden.push(rec.id());
        }
    }
    let whole = matches!(view.reader, Reader::Member(_)) && hidden.is_empty();
    Ok((whole, hidden))
}

/// The grade as shown to a reader who may not read every record behind it: its reasons
/// and caps that cite a `hidden` record become one line, their points summed, so the
/// grade still adds up and says nothing of what they were.
fn withhold_reasons(
    grade: &mut xinlian_client::credit::GradeReport,
    hidden: &std::collections::BTreeSet<RecordId>,
) {
    let hidden =
        |r: &xinlian_client::credit::Reason| r.record.is_some_and(|id| hidden.contains(&id));
    let withheld: Vec<_> = grade
        .reasons
        .iter()
        .filter(|r| hidden(r))
        .cloned()
        .collect();
    let capped = grade.caps.iter().any(&hidden);
    grade.reasons.retain(|r| !hidden(r));
    grade.caps.retain(|r| !hidden(r));
    if !withheld.is_empty() {
        grade.reasons.push(xinlian_client::credit::Reason {
            record: None,
            rule: "withheld".into(),
            points: withheld.iter().map(|r| r.points).sum(),
            detail: "records not disclosed to this reader".into(),
        });
    }
    if capped {
        grade.caps.push(xinlian_client::credit::Reason {
            record: None,
            rule: "withheld".into(),
            points: 0,
            detail: "a cap from records not disclosed to this reader".into(),
        });
    }
}

/// A batch name from a path or request body, refused unless records could name it.
fn batch_id(name: &str) -> Result<(), ApiFailure> {
    xinlian_client::ids::check_batch_id(name)
        .map_err(|e| err(StatusCode::BAD_REQUEST, "invalid_identifier", e.to_string()))
}

/// `GET /web/label/{batch}`: the batch's printable label (docs/web.md § Labels), whose
/// QR code opens its page at `api.public_url`, or where the label was asked for.
async fn batch_label(
    State(s): State<Shared>,
    headers: axum::http::HeaderMap,
    P(name): P<String>,
) -> Result<Response, ApiFailure> {
    batch_id(&name)?;
    let batch: st::BatchState = s.store.state_value(&key::batch(&name))?.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("batch {name} is not on the ledger"),
        )
    })?;
    let base = match &s.public_url {
        Some(u) => u.to_string(),
        None => {
            // The address it was asked at; a client that lies about it labels its own copy.
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    !h.is_empty()
                        && h.len() <= 255
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                })
                .ok_or_else(|| {
                    err(
                        StatusCode::BAD_REQUEST,
                        "no_public_url",
                        "this node has no api.public_url and the request names no usable Host",
                    )
                })?;
            // Plain http only on loopback, as for api.public_url: a printed label must
            // not open a page anyone on the way could replace.
            let loopback = ["127.0.0.1", "localhost", "[::1]"]
                .iter()
                .any(|h| host == *h || host.starts_with(&format!("{h}:")));
            if !s.tls && !loopback {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "no_public_url",
                    "this node serves plain http and has no api.public_url: set one (https) to print labels",
                ));
            }
            format!("{}://{host}", if s.tls { "https" } else { "http" })
        }
    };
    let chain = s.consortium().chain.to_hex();
    let url = crate::web::batch_page_url(&base, &name, &chain);
    let svg = crate::web::label_svg(&url, &name, &batch.product.name, &batch.lot, &chain);
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // An image, opened on its own: it runs nothing and loads nothing.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        svg,
    )
        .into_response())
}

async fn batch(
    State(s): State<Shared>,
    Extension(reader): Extension<Reader>,
    P(name): P<String>,
    Q(q): Q<PageQuery>,
) -> ApiResult<BatchView> {
    batch_id(&name)?;
    let limit = q.limit()?;
    let after = match q.after.map(u32::try_from).transpose() {
        Ok(a) => a.map(u32::to_be_bytes),
        Err(_) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "bad_query",
                "a batch event cursor is below 2^32",
            ));
        }
    };
    let batch: st::BatchState = s.store.state_value(&key::batch(&name))?.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("batch {name} is not on the ledger"),
        )
    })?;
    let text = |k: Vec<u8>| String::from_utf8_lossy(&k).into_owned();
    let view = View::new(&s, &reader)?;
    let holders = s
        .store
        .state_scan::<u64>(&key::holdings_prefix(&name), LIST_ITEMS_MAX)?
        .into_iter()
        .map(|(k, amount)| {
            let holder = Party::from_key_bytes(&k).map_err(|e| {
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage",
                    format!("holding key: {e}"),
                )
            })?;
            Ok(Holding {
                amount: view
                    .reveals_state_amount(&batch, &[&holder])
                    .then_some(amount),
                holder,
            })
        })
        .collect::<Result<_, ApiFailure>>()?;
    let (events, more) = page(
        s.store.state_scan_after::<RecordId>(
            &key::batch_events_prefix(&name),
            after.as_ref().map(|a| &a[..]),
            limit + 1,
        )?,
        limit,
    );
    let next_after = match events.last() {
        Some((k, _)) if more => Some(u64::from(u32::from_be_bytes(
            k.as_slice().try_into().map_err(|_| {
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage",
                    "batch event key",
                )
            })?,
        ))),
        _ => None,
    };
    let events: Vec<RecordId> = events.into_iter().map(|(_, id)| id).collect();
    let mut in_transit = Vec::new();
    for id in &events {
        if let Some(sh) = s.store.state_value::<st::Shipment>(&key::shipment(id))?
            && sh.received.is_none()
        {
            in_transit.push(Transit {
                amount: view
                    .reveals_state_amount(&batch, &[&sh.from, &sh.to])
                    .then_some(sh.amount),
                ship: sh.ship,
                batch: sh.batch,
                from: sh.from,
                to: sh.to,
            });
        }
    }
    let children = s
        .store
        .state_scan::<()>(&key::downstream_prefix(&name), LIST_ITEMS_MAX)?
        .into_iter()
        .map(|(k, ())| text(k))
        .collect();
    Ok(Json(BatchView {
        batch,
        holders,
        in_transit,
        events,
        children,
        next_after,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cursors_open_to_what_they_sealed_and_look_like_nothing() {
        let k = super::CursorKey::new();
        for x in [0u64, 1, 2, 41, u64::MAX, 1 << 40] {
            assert_eq!(k.open(k.seal(x)), x);
        }
        // Small positions do not stay small: a cursor says nothing of where it points.
        assert!((0..64).all(|x| k.seal(x) > 1 << 32 || k.seal(x) != x));
        assert_ne!(
            k.seal(5),
            super::CursorKey::new().seal(5),
            "a key per node run"
        );
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let mut documented: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut routed = super::paths::ALL.to_vec();
        documented.sort_unstable();
        routed.sort_unstable();
        assert_eq!(documented, routed);
    }

    #[test]
    fn a_body_integer_may_be_written_with_a_zero_fraction_and_nothing_else() {
        let body = |extra: &str| {
            serde_json::from_str::<super::ProvenanceBody>(&format!(r#"{{"roots":["b"]{extra}}}"#))
        };
        let b = body(r#","max_batches":1491.0,"depth":3"#).expect("integers");
        assert_eq!((b.max_batches, b.depth), (Some(1491), Some(3)));
        assert_eq!(body("").expect("absent").max_batches, None);
        for bad in ["1.5", "-1", "1e30", "\"3\"", "4294967296"] {
            assert!(body(&format!(r#","depth":{bad}"#)).is_err(), "{bad}");
        }
    }

    #[test]
    fn readiness_allows_an_idle_heartbeat_and_rounds_without_a_proposer() {
        // Fast blocks: three heartbeats (10 s each) is the longer.
        assert_eq!(super::ready_tip_age_ms_max(50), 30_000);
        // A block a minute: the interval plus four rounds of timeouts, 6.3 s and up
        // (1 s blocks: propose 3.3 s, prevote and precommit 1.2 s, 1 s per round more).
        let minute = super::ready_tip_age_ms_max(60_000);
        assert!(minute > 60_000 + 4 * (180_300 + 2 * 60_200), "{minute}");
        let second = super::ready_tip_age_ms_max(1_000);
        assert_eq!(second, 10_000 + 4 * 5_700 + 3_000 * (1 + 2 + 3));
        // No interval overflows it.
        assert_eq!(super::ready_tip_age_ms_max(u64::MAX), i64::MAX);
    }
}
