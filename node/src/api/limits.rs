//! The API's admission control, so that no client can make the node slow: a cap on
//! open connections (refused beyond it with a canned `503`), a per-client token bucket
//! (`429`), a global limit on requests in flight with load shedding (`503`), a
//! timeout, and a small bounded pool for the heavy reads (records/check, provenance,
//! EPCIS export; `503` when it and its queue are full). Every refusal is immediate,
//! carries `Retry-After`, and is the API's usual JSON error.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::BoxError;

use super::{ApiFailure, err};

/// The API's bounds; `xinlian-node run` sets each (`--api-*`), and docs/api.md
/// describes what a client sees past them.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Open TCP connections; one more is answered `503` and closed.
    pub connections_max: usize,
    /// Requests being answered at once (long polls included); one more is `503`.
    pub requests_max: usize,
    /// Requests per second per client address (IPv6 by /64), and the burst above it.
    pub rate_per_s: u32,
    pub burst: u32,
    /// Heavy reads running at once on blocking threads, and waiting for one.
    pub heavy_running_max: usize,
    pub heavy_waiting_max: usize,
    /// Largest `POST /v1/records/check` body.
    pub check_body_bytes_max: usize,
    /// Longest a request may take before it is answered `503 timeout`; above the
    /// longest `wait_ms`.
    pub request_timeout: Duration,
    /// Event streams (`GET /v1/events`) open at once; one more is `503`.
    pub streams_max: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        // Half the cores for heavy reads, so consensus and the light routes keep the
        // rest (2 cores: one heavy read at a time).
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        ApiLimits {
            connections_max: 512,
            requests_max: 256,
            // Generous for one client (a bulk importer submits hundreds of records a
            // second); what is costly is bounded apart, by the heavy pool.
            rate_per_s: 1_000,
            burst: 2_000,
            heavy_running_max: (cores / 2).max(1),
            heavy_waiting_max: 4,
            check_body_bytes_max: 16 << 20,
            request_timeout: Duration::from_secs(60),
            streams_max: 64,
        }
    }
}

/// How long a refused client is told to wait when nothing more precise is known.
const RETRY_AFTER_S: u64 = 1;
/// Refusals of connections over the cap being written at once; past this a connection
/// is simply closed.
const REFUSALS_MAX: usize = 64;
/// Longest a refused connection is kept to read its request and write the refusal.
const REFUSAL_TIME: Duration = Duration::from_millis(500);

impl ApiFailure {
    /// A refusal the client should retry after `seconds`.
    pub(super) fn retry_after(mut self, seconds: u64) -> ApiFailure {
        self.retry_after_s = Some(seconds.max(1));
        self
    }
}

fn overloaded(code: &str, message: impl Into<String>) -> ApiFailure {
    err(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(RETRY_AFTER_S)
}

/// The client's address as the API knows it: the TCP peer.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

impl ClientAddr {
    /// The rate limit's key: the IP address, an IPv6 address by its /64 (one host
    /// usually holds a whole /64).
    pub(crate) fn key(&self) -> IpAddr {
        match self.0.ip() {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked above")),
            ip => ip,
        }
    }
}

impl Connected<IncomingStream<'_, CappedListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, CappedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// A listener that holds at most `connections_max` connections open: each accepted
/// connection holds a permit until it closes; one more is answered `503` at once.
pub struct CappedListener {
    inner: TcpListener,
    open: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Connections over the cap are answered a plain-HTTP `503`; false under TLS,
    /// where plaintext would be a broken record: they are closed.
    answer_refusals: bool,
}

impl CappedListener {
    pub fn new(
        inner: TcpListener,
        connections_max: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> CappedListener {
        CappedListener {
            inner,
            open: Arc::new(Semaphore::new(connections_max)),
            refusals: Arc::new(Semaphore::new(REFUSALS_MAX)),
            metrics,
            answer_refusals: true,
        }
    }

    /// Connections over the cap are closed without an answer (under TLS).
    pub fn closing_refusals(mut self) -> CappedListener {
        self.answer_refusals = false;
        self
    }

    /// Answers a connection over the cap with a `503` (after reading what it sent, so
    /// that closing does not reset the connection before the client reads the answer),
    /// off the accept loop; or just closes it when too many refusals are under way.
    fn refuse(&self, mut stream: TcpStream) {
        self.metrics.api_connections_refused.inc();
        if !self.answer_refusals {
            return;
        }
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let body = serde_json::to_string(&xinlian_client::api::ApiError {
                code: "too_many_connections".into(),
                message: "the node holds as many connections as it serves; retry".into(),
            })
            .unwrap_or_default();
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                 retry-after: {RETRY_AFTER_S}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(REFUSAL_TIME, async {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                stream.write_all(answer.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        loop {
            let (stream, addr) = Listener::accept(&mut self.inner).await;
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        CappedStream {
                            stream,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(_) => {
                    tracing::debug!(%addr, "connection over the cap refused");
                    self.refuse(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection, counted against the cap until dropped.
pub struct CappedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A token bucket per client address (governor's GCRA).
pub struct ClientRates {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

/// How often buckets that are full again (clients gone quiet) are forgotten: the map
/// holds only clients heard from within about `burst / rate` seconds plus this.
pub const FORGET_EVERY: Duration = Duration::from_secs(10);

impl ClientRates {
    pub fn new(rate_per_s: u32, burst: u32) -> ClientRates {
        let rate = NonZeroU32::new(rate_per_s).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        ClientRates {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Takes a token for `client`, or says in how many seconds one is due.
    fn take(&self, client: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets clients whose buckets are full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn clients(&self) -> usize {
        self.limiter.len()
    }
}

/// Middleware: a request over its client's rate is refused `429` with `Retry-After`.
/// A request without a known address (never from the server) shares one bucket.
pub async fn rate_limit(
    State(rates): State<Arc<ClientRates>>,
    req: Request,
    next: Next,
) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.key());
    match rates.take(client) {
        Ok(()) => next.run(req).await,
        Err(seconds) => err(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from {client}; retry in {seconds} s"),
        )
        .retry_after(seconds)
        .into_response(),
    }
}

/// `routes` under the limits: per client a token bucket (outermost, so a client over
/// its rate takes no place), then the global bound on requests in flight with load
/// shedding, then the timeout.
pub fn guard(routes: axum::Router, limits: &ApiLimits, rates: Arc<ClientRates>) -> axum::Router {
    routes.layer(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(rates, rate_limit))
            .layer(axum::error_handling::HandleErrorLayer::new(layer_error))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                limits.requests_max.max(1),
            ))
            .timeout(limits.request_timeout),
    )
}

/// Operators' probes and scrapes answered at once; more are `503`. Each is cheap (a
/// scrape is shared, `api::metrics`), so this bounds only a flood of them.
const OPERATOR_REQUESTS_MAX: usize = 16;
const OPERATOR_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound on `/health`, `/ready` and `/metrics`, apart from the API's: a saturated
/// API must not fail its health checks, nor blind its monitoring.
pub fn operator_guard(routes: axum::Router) -> axum::Router {
    routes.layer(
        tower::ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(layer_error))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                OPERATOR_REQUESTS_MAX,
            ))
            .timeout(OPERATOR_TIMEOUT),
    )
}

/// What tower's layers fail with, as the API's answers: shed load and time-outs are
/// `503` with `Retry-After`.
pub async fn layer_error(e: BoxError) -> Response {
    if e.is::<tower::load_shed::error::Overloaded>() {
        overloaded(
            "overloaded",
            "the node is answering as many requests as it can; retry",
        )
    } else if e.is::<tower::timeout::error::Elapsed>() {
        overloaded(
            "timeout",
            "the request took too long to answer; retry later",
        )
    } else {
        err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
    .into_response()
}

/// The bounded pool for heavy reads: `running` at once on blocking threads, and a few
/// waiting; any more is refused `503 busy` before its body is even read.
#[derive(Clone)]
pub struct HeavyPool {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

/// A heavy read admitted to the pool (running or waiting for a thread).
pub struct HeavyTicket {
    admitted: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
}

impl HeavyPool {
    pub fn new(running: usize, waiting: usize) -> HeavyPool {
        let running = running.max(1);
        HeavyPool {
            admitted: Arc::new(Semaphore::new(running + waiting)),
            running: Arc::new(Semaphore::new(running)),
        }
    }

    /// A place in the pool, or a `503 busy` refusal at once.
    pub fn admit(&self) -> Result<HeavyTicket, ApiFailure> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            overloaded(
                "busy",
                "the node is running as many heavy reads as it can; retry",
            )
        })?;
        Ok(HeavyTicket {
            admitted,
            running: self.running.clone(),
        })
    }
}

impl HeavyTicket {
    /// Runs `job` on a blocking thread once one of the pool's is free. The places are
    /// held by the job itself, so a client that gives up frees nothing early: the
    /// pool's bound is the work actually running.
    pub async fn run<T: Send + 'static>(
        self,
        job: impl FnOnce() -> Result<T, ApiFailure> + Send + 'static,
    ) -> Result<T, ApiFailure> {
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| overloaded("shutting_down", "node is stopping"))?;
        let admitted = self.admitted;
        tokio::task::spawn_blocking(move || {
            let _places = (admitted, running);
            job()
        })
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    fn limits(requests_max: usize, rate_per_s: u32, burst: u32) -> ApiLimits {
        ApiLimits {
            requests_max,
            rate_per_s,
            burst,
            ..ApiLimits::default()
        }
    }

    /// A route that answers when told to, and one that answers at once.
    fn app(limits: &ApiLimits, release: Arc<tokio::sync::Notify>) -> axum::Router {
        let routes = axum::Router::new()
            .route(
                "/slow",
                axum::routing::get(move || async move {
                    release.notified().await;
                    "slow"
                }),
            )
            .route("/fast", axum::routing::get(|| async { "fast" }));
        let rates = Arc::new(ClientRates::new(limits.rate_per_s, limits.burst));
        guard(routes, limits, rates)
    }

    fn get(path: &str, from: [u8; 4]) -> Request {
        let mut req = Request::builder().uri(path).body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(ClientAddr(SocketAddr::from((from, 1)))));
        req
    }

    async fn error_code(r: Response) -> String {
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let e: xinlian_client::api::ApiError = serde_json::from_slice(&body).unwrap();
        e.code
    }

    #[tokio::test]
    async fn past_the_requests_in_flight_a_request_is_shed_at_once_with_503() {
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(&limits(1, 1000, 1000), release.clone());
        let slow = tokio::spawn(app.clone().oneshot(get("/slow", [10, 0, 0, 1])));
        // The slow request holds the one place once it is being answered.
        let shed = loop {
            let r = app
                .clone()
                .oneshot(get("/fast", [10, 0, 0, 2]))
                .await
                .unwrap();
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                break r;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(shed.headers()["retry-after"], "1");
        assert_eq!(error_code(shed).await, "overloaded");
        release.notify_one();
        assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);
        let after = app.oneshot(get("/fast", [10, 0, 0, 2])).await.unwrap();
        assert_eq!(after.status(), StatusCode::OK, "the place is free again");
    }

    #[tokio::test]
    async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_go_on() {
        let app = app(&limits(100, 1, 2), Arc::new(tokio::sync::Notify::new()));
        for _ in 0..2 {
            let r = app
                .clone()
                .oneshot(get("/fast", [10, 0, 0, 1]))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
        let refused = app
            .clone()
            .oneshot(get("/fast", [10, 0, 0, 1]))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "1");
        assert_eq!(error_code(refused).await, "rate_limited");
        let other = app.oneshot(get("/fast", [10, 0, 0, 2])).await.unwrap();
        assert_eq!(other.status(), StatusCode::OK);
    }

    /// Sends one keep-alive request on `stream` and reads the answer's head.
    async fn ask(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn a_connection_over_the_cap_is_answered_503_and_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app(
            &limits(100, 1000, 1000),
            Arc::new(tokio::sync::Notify::new()),
        );
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let counted = metrics.clone();
        tokio::spawn(async move {
            let capped = CappedListener::new(listener, 1, counted);
            axum::serve(
                capped,
                app.into_make_service_with_connect_info::<ClientAddr>(),
            )
            .await
        });
        let mut held = TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut held).await.starts_with("HTTP/1.1 200"));
        let mut over = TcpStream::connect(addr).await.unwrap();
        let answer = ask(&mut over).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("too_many_connections"), "{answer}");
        assert_eq!(
            metrics.api_connections_refused.get(),
            1,
            "the refusal counted"
        );
        drop(held);
        // Its place freed, a new connection is served (once the server notices).
        let mut served = false;
        for _ in 0..1_000 {
            let mut next = TcpStream::connect(addr).await.unwrap();
            if ask(&mut next).await.starts_with("HTTP/1.1 200") {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(served, "a freed place is served again");
    }

    #[test]
    fn a_full_heavy_pool_refuses_at_once_with_retry_after() {
        let pool = HeavyPool::new(1, 1);
        let first = pool.admit().expect("a free place");
        let _second = pool.admit().expect("a waiting place");
        let refused = pool.admit().err().expect("no third place").into_response();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()["retry-after"], "1");
        drop(first);
        assert!(pool.admit().is_ok(), "a place freed is taken again");
    }

    #[test]
    fn a_client_over_its_rate_waits_and_others_do_not() {
        let rates = ClientRates::new(1, 2);
        let a = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(rates.take(a), Ok(()));
        assert_eq!(rates.take(a), Ok(()));
        assert_eq!(
            rates.take(a),
            Err(1),
            "the third in a burst of two waits 1 s"
        );
        assert_eq!(rates.take(IpAddr::from([10, 0, 0, 2])), Ok(()));
        assert_eq!(rates.clients(), 2);
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let one: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().unwrap();
        let other: SocketAddr = "[2001:db8:1:2:bbbb::9]:2".parse().unwrap();
        assert_eq!(ClientAddr(one).key(), ClientAddr(other).key());
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:3".parse().unwrap();
        assert_eq!(ClientAddr(mapped).key(), IpAddr::from([10, 0, 0, 1]));
    }
}
