//! Serving an HTTP service (an axum `Router`, a tonic `Routes`) over mutual TLS (features `server`
//! + `axum`).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::IncomingStream;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower_service::Service;

use super::body::{Account, Budget, Budgets, RequestBody};
use super::connection::AddClientCert;
use super::limits::Limits;
use super::listener::{HttpConfig, MtlsListener, MtlsStream, ServeConnection};
use super::table::{later, Activity, CloseReason, CloseSignal, Expiry, Timeouts};
use crate::logging::Limiter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The make-service for `axum::serve` over an [`MtlsListener`]: gives each connection an
/// [`AddClientCert`] around your app, so every request carries the connection's
/// [`ClientCert`](crate::ClientCert) and `ConnectInfo<SocketAddr>`.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use mtls_tower::{MtlsConfig, MtlsListener, MtlsMakeService, RequireClientCertLayer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = MtlsConfig::builder()
///     .server_cert_pem_files("server.pem", "server.key")
///     .client_ca_pem_file("clients-ca.pem")
///     .build()?;
/// let app = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(RequireClientCertLayer::any_verified());
/// let listener = MtlsListener::bind("127.0.0.1:8443", config).await?;
/// mtls_tower::check_policies()?; // what `mtls_tower::serve` does first: every #[require_cert] builds
/// axum::serve(listener, MtlsMakeService::new(app)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MtlsMakeService<S> {
    app: S,
}

impl<S> MtlsMakeService<S> {
    /// Wraps the app (a `Router`, or any service `axum::serve` takes).
    pub fn new(app: S) -> Self {
        MtlsMakeService { app }
    }
}

impl<S: Clone> Service<IncomingStream<'_, MtlsListener>> for MtlsMakeService<S> {
    type Response = AddClientCert<S>;
    type Error = Infallible;
    type Future = Ready<Result<AddClientCert<S>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, MtlsListener>) -> Self::Future {
        ready(Ok(AddClientCert::for_stream(
            self.app.clone(),
            stream.io(),
            *stream.remote_addr(),
        )))
    }
}

/// For `axum::serve(listener, MtlsMakeService::new(app))`. **Not** `axum::serve(listener, app)`:
/// that compiles and verifies certificates at the handshake, but axum's own make-service drops
/// them, so every request reaches your app without a [`ClientCert`](crate::ClientCert) and the
/// layer answers 401. The listener notices (nothing asked for the stream's certificate before its
/// first read) and logs a warning naming the fix, once per listener. [`serve`] needs no wrapper.
impl axum::serve::Listener for MtlsListener {
    type Io = MtlsStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (mut stream, addr) = MtlsListener::accept(self).await;
        // `axum::serve` hands the stream to the make-service before reading it: only
        // `MtlsMakeService` (or a make-service that asks for the certificate) takes it.
        stream.warn_if_certificate_unread(self.warned_unread_cert.clone());
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(MtlsListener::local_addr(self))
    }
}

/// Serves `app` over mutual TLS until Ctrl-C (or SIGTERM on Unix), then shuts down gracefully:
/// stops accepting and lets in-flight requests finish (each connection within the listener's
/// [`drain_timeout`](crate::MtlsListenerBuilder::drain_timeout)).
///
/// `app` is an axum `Router` or any other HTTP service taking a [`RequestBody`]: a tonic
/// `Routes` (gRPC, feature `tonic`; see the `grpc` module), or a Tower stack around either.
/// Every limit of the listener applies (see [`limits`](crate::limits)).
///
/// ```no_run
/// # async fn run(listener: mtls_tower::MtlsListener, app: axum::Router) -> std::io::Result<()> {
/// mtls_tower::serve(listener, app).await
/// # }
/// ```
pub async fn serve<S, B>(listener: MtlsListener, app: S) -> io::Result<()>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with_shutdown(listener, app, shutdown_signal()).await
}

/// Serves `app` over mutual TLS until `signal` completes, then shuts down gracefully: stops
/// accepting, closes idle connections, lets in-flight requests finish, and closes whatever is
/// still open after the listener's [`drain_timeout`](crate::MtlsListenerBuilder::drain_timeout).
/// It returns as soon as the last connection is done: at once when none is open, never later
/// than the drain timeout (plus a second) for HTTP connections.
///
/// Each connection is served (HTTP/1.1 or HTTP/2; gRPC clients speak HTTP/2) in the task that
/// completed its TLS handshake, with the connection's [`ClientCert`](crate::ClientCert) on every
/// request, under the listener's limits: request-header, idle and request-body timeouts, a
/// maximum age, HTTP/2 keep-alive pings, streams and windows, and the buffered-bytes budgets
/// (see [`limits`](crate::limits)). `app` is called once per request; an error it returns resets
/// that request's HTTP/2 stream, or closes an HTTP/1.1 connection (axum's `Router` and tonic's
/// `Routes` never return one).
///
/// # Errors
/// When [`MtlsListener::accept`] was already called on `listener` (its connections go to
/// `accept`, so there would be nothing to serve), and before accepting anything when a
/// `#[require_cert]` policy cannot be built ([`check_policies`](crate::check_policies), feature
/// `macros`).
pub async fn serve_with_shutdown<S, B, F>(
    listener: MtlsListener,
    app: S,
    signal: F,
) -> io::Result<()>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    // A `#[require_cert(policy = f)]` whose `f` fails would answer 500 to every request: refuse
    // to start instead, naming the handler.
    #[cfg(feature = "macros")]
    crate::check_policies().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

    let limits = listener.limits().clone();
    let builder = http_builder(&limits, listener.http_config());
    let listener_budget = Arc::new(Budget::new(limits.max_buffered_request_bytes));
    let timeouts = Timeouts {
        header: limits.request_header_timeout,
        idle: limits.idle_timeout,
        max_age: limits.max_connection_age,
    };
    // The closure is shared by the handshake tasks, so it must be `Sync`; many services are not
    // (tower's `BoxCloneService`), so the app is cloned under a lock, once per connection.
    let app = std::sync::Mutex::new(app);
    let serve: ServeConnection = Arc::new(move |stream: MtlsStream, peer, close| {
        let app = app
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(activity) = stream.activity().cloned() else {
            // `serve_each` gives every stream an activity; without one there is nothing to time.
            return Box::pin(async {});
        };
        let service = Tracked {
            inner: AddClientCert::for_stream(app, &stream, peer),
            shared: Arc::new(PerConnection {
                activity: activity.clone(),
                budgets: Arc::new(Budgets {
                    connection: Budget::new(limits.max_buffered_request_bytes_per_connection),
                    listener: listener_budget.clone(),
                }),
                body_timeout: limits.request_body_timeout,
            }),
        };
        let builder = builder.clone();
        let drain = limits.drain_timeout;
        Box::pin(async move {
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            drive(
                conn,
                |c| c.graceful_shutdown(),
                &activity,
                timeouts,
                drain,
                close,
                peer,
            )
            .await;
        })
    });
    listener.serve_each(serve, signal).await
}

/// hyper-util's builder with the listener's HTTP limits, then the user's own settings.
fn http_builder(
    limits: &Limits,
    user: Option<&HttpConfig>,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    use hyper_util::rt::TokioTimer;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // hyper's own HTTP/1 header timer would also close keep-alive connections between requests
    // (it runs while waiting for the next head); `drive` times heads and idleness instead, so
    // HTTP/1 gets no timer.
    builder
        .http1()
        .max_buf_size(limits.http1_max_buffer.max(8192));
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .initial_stream_window_size(limits.http2_stream_window)
        .initial_connection_window_size(limits.http2_connection_window);
    match limits.http2_keep_alive {
        Some((interval, timeout)) => {
            http2
                .keep_alive_interval(interval)
                .keep_alive_timeout(timeout);
        }
        None => {
            http2.keep_alive_interval(None);
        }
    }
    if let Some(configure) = user {
        configure(&mut builder);
    }
    builder
}

/// Drives one connection to its end under its timeouts: the first request and each request head
/// within the request-header timeout, no longer idle than the idle timeout, no older than the
/// maximum age; and closes it when the listener asks (room needed, shutdown). Each of those
/// starts a graceful close (HTTP/2 GOAWAY; HTTP/1 after the current response); whatever is still
/// open after the drain timeout is closed outright.
async fn drive<C, E>(
    conn: C,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    timeouts: Timeouts,
    drain: Duration,
    mut close: CloseSignal,
    peer: SocketAddr,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let (first, _) = activity.next_deadline(&timeouts, Instant::now());
    let timer = tokio::time::sleep_until(first);
    let mut timer = std::pin::pin!(timer);
    let mut deadline = first;
    // Whether the timer has been polled since its last reset: a polled `Sleep` keeps the task's
    // waker and wakes it when due, so later wake-ups (every read and write) only need to look
    // whether it has elapsed, not poll it again.
    let mut armed = false;
    let mut seen_epoch = activity.epoch();
    let mut signal_open = true;
    let mut closing = false;
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            if let Err(e) = result {
                log_connection_error(peer, &e);
            }
            return Poll::Ready(());
        }
        if !closing && signal_open {
            if let Poll::Ready(reason) = Pin::new(&mut close).poll(cx) {
                signal_open = false;
                // An error means the table dropped the signal without sending: nothing asked.
                if let Ok(reason) = reason {
                    log_close(peer, reason.as_str());
                    graceful(conn.as_mut());
                    closing = true;
                    // Closed to make room, an idle connection gets a moment for its GOAWAY (an
                    // HTTP/2 client that does not answer the ping would otherwise keep the room
                    // taken for the whole drain); at shutdown, the drain timeout.
                    let grace = match reason {
                        CloseReason::Shutdown => drain,
                        _ => drain.min(SHED_GRACE),
                    };
                    deadline = within_certificate(activity, later(Instant::now(), grace), drain);
                    timer.as_mut().reset(deadline);
                    armed = false;
                    continue;
                }
            }
        }
        let epoch = activity.epoch();
        if epoch != seen_epoch {
            seen_epoch = epoch;
            // A request head began. Only that can bring a deadline earlier; a later one
            // (requests starting or finishing) is found when the timer fires early. That keeps
            // timer updates and clock reads off the per-request path. While closing too: a head
            // begun then still has only the header timeout, a slowloris does not get the drain.
            if let Some(at) = activity.header_deadline(&timeouts) {
                if at < deadline {
                    deadline = at;
                    timer.as_mut().reset(at);
                    armed = false;
                }
            }
        }
        if armed {
            if !timer.is_elapsed() {
                return Poll::Pending;
            }
        } else if timer.as_mut().poll(cx).is_pending() {
            armed = true;
            return Poll::Pending;
        }
        let now = Instant::now();
        if closing {
            log_close(
                peer,
                "drain or request-header timeout passed while closing: closing now",
            );
            return Poll::Ready(());
        }
        let (at, why) = activity.next_deadline(&timeouts, now);
        seen_epoch = activity.epoch();
        if at <= now && why != Expiry::Recheck {
            log_close(peer, why.as_str());
            if matches!(why, Expiry::FirstRequest | Expiry::Header) {
                // No request in flight, and a graceful close would wait for the unfinished head
                // (HTTP/1) or for the peer to answer a ping (HTTP/2): close now.
                return Poll::Ready(());
            }
            graceful(conn.as_mut());
            closing = true;
            // Security: past its certificate's end the connection speaks for no one. Requests
            // already running get a moment to finish, not the drain timeout: a server stream
            // would otherwise go on sending on an expired certificate's authority.
            let grace = match why {
                Expiry::CertificateEnded => drain.min(EXPIRY_GRACE),
                _ => drain,
            };
            deadline = within_certificate(activity, later(now, grace), drain);
            if let Some(at) = activity.header_deadline(&timeouts) {
                deadline = deadline.min(at.max(now));
            }
        } else {
            deadline = at;
        }
        timer.as_mut().reset(deadline);
        armed = false;
    })
    .await;
}

/// How long a connection closed to make room has to go (its GOAWAY sent, its ping answered).
const SHED_GRACE: Duration = Duration::from_secs(1);

/// How long requests in flight when the client certificate ends may go on before the connection
/// is closed outright.
const EXPIRY_GRACE: Duration = Duration::from_secs(1);

/// A closing connection's deadline, no later than its certificate's end plus the grace: a
/// connection that began draining (shutdown, maximum age) before its certificate ended must not
/// go on for the whole drain past it.
fn within_certificate(activity: &Activity, deadline: Instant, drain: Duration) -> Instant {
    match activity.certificate_ends() {
        Some(end) => deadline.min(later(end, drain.min(EXPIRY_GRACE))),
        None => deadline,
    }
}

fn log_close(peer: SocketAddr, reason: &'static str) {
    static LIMIT: Limiter = Limiter::new();
    if let Some(suppressed) = LIMIT.admit() {
        tracing::debug!(target: "mtls_tower::serve", suppressed, %peer, reason, "closing connection");
    }
}

fn log_connection_error(peer: SocketAddr, e: &dyn std::fmt::Display) {
    static LIMIT: Limiter = Limiter::new();
    if let Some(suppressed) = LIMIT.admit() {
        tracing::debug!(target: "mtls_tower::serve", suppressed, %peer, error = %e, "connection ended with an error");
    }
}

/// Around each connection's service: counts requests in flight (for the idle timeout and the
/// choice of an idle connection to close) and gives each request a [`RequestBody`]. hyper-util
/// clones it per request, so what it shares sits behind one `Arc`.
struct Tracked<S> {
    inner: S,
    shared: Arc<PerConnection>,
}

/// What a connection's requests share.
struct PerConnection {
    activity: Arc<Activity>,
    budgets: Arc<Budgets>,
    body_timeout: Duration,
}

impl<S: Clone> Clone for Tracked<S> {
    fn clone(&self) -> Self {
        Tracked {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let shared = &*self.shared;
        if req.version() == http::Version::HTTP_2 {
            // HTTP/2 carries pings and window updates between requests: bytes while idle do not
            // start a request head there (a stalled HTTP/2 head is bounded by the idle timeout).
            // Decided by the protocol spoken, not the one ALPN named: hyper-util detects it.
            shared.activity.ignore_bytes_while_idle();
        }
        shared.activity.request_started();
        let in_flight = InFlight(shared.activity.clone());
        let grpc = req.version() == http::Version::HTTP_2
            && req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let account = Account::new(shared.budgets.clone(), grpc);
        let timeout = shared.body_timeout;
        let req = req.map(|body| RequestBody::new(body, account, timeout));
        TrackedFuture {
            future: self.inner.call(req),
            in_flight: Some(in_flight),
        }
    }
}

/// A request in flight, until its response body is done (or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tracked`].
    struct TrackedFuture<F> {
        #[pin]
        future: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.future.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(response.map(|r| {
            r.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is done.
    struct TrackedBody<B> {
        #[pin]
        body: B,
        _in_flight: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C; serving until the process ends");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(target: "mtls_tower::serve", "shutting down");
}
