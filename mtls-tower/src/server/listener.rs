//! [`MtlsListener`]: TCP accept, then the TLS handshake in a task of its own per connection, and
//! the verified client identity parsed once per connection; every step bounded (see
//! [`limits`](crate::limits)).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
#[cfg(feature = "axum")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use mtls_core::ClientIdentity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::config::MtlsConfig;
use super::limits::Limits;
use super::reload::{ConfigCell, HandshakeConfig, ReloadHandle};
use super::table::{later, Activity, CloseReason, CloseSignal, ConnSlot, ConnTable, Refused};
use crate::cert::ClientCert;
use crate::logging::Limiter;

pub use super::limits::{DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HANDSHAKES};

/// A mutual-TLS listener: accepts TCP connections and runs each TLS handshake in its own task,
/// so a slow or silent client never holds up the others.
///
/// - a client has [`client_hello_timeout`](MtlsListenerBuilder::client_hello_timeout) (5 s) to
///   send its ClientHello and [`handshake_timeout`](MtlsListenerBuilder::handshake_timeout)
///   (10 s) to finish the handshake;
/// - at most [`max_handshakes`](MtlsListenerBuilder::max_handshakes) (1,024) are in progress:
///   past that, the oldest unfinished one is closed, so a flood of silent peers cannot keep good
///   clients waiting;
/// - at most [`max_connections`](MtlsListenerBuilder::max_connections) are open; at the cap the
///   oldest unfinished handshake or idle connection makes room, else the listener waits;
/// - accept and handshake errors are logged (rate-limited, see [`crate::logging`]) and never end
///   the listener; out of file descriptors, it backs off and frees idle connections;
/// - the verified chain is parsed once into a [`ClientCert`], carried by the [`MtlsStream`];
/// - its TLS configuration can be swapped while it runs ([`reload_handle`](Self::reload_handle)).
///
/// Served with [`crate::serve`], every connection also gets the HTTP limits (request-header,
/// idle, body timeouts, maximum age, HTTP/2 streams and windows, buffered-byte budgets); see
/// [`limits`](crate::limits) for every limit, its default and what it protects against.
///
/// With the `axum` feature it is an `axum::serve::Listener`; `axum::serve` applies none of the
/// HTTP limits, so prefer [`crate::serve`]. For a hand-written hyper-util loop, call
/// [`accept`](Self::accept) and wrap your service in [`AddClientCert`](crate::AddClientCert).
pub struct MtlsListener {
    local_addr: SocketAddr,
    cell: Arc<ConfigCell>,
    table: Arc<ConnTable>,
    limits: Arc<Limits>,
    #[cfg(feature = "axum")]
    http: Option<HttpConfig>,
    /// Until the first `accept`, which starts the accept loop inside the runtime.
    pending: Option<TcpListener>,
    running: Option<Running>,
    /// Set once the "served without `MtlsMakeService`" warning was logged (see `MtlsStream`).
    #[cfg(feature = "axum")]
    pub(crate) warned_unread_cert: Arc<AtomicBool>,
}

struct Running {
    /// The connections for `accept`; `None` when they are served in place (`serve_each`).
    incoming: Option<mpsc::Receiver<(MtlsStream, SocketAddr)>>,
    task: JoinHandle<()>,
    expiry_watch: JoinHandle<()>,
}

impl fmt::Debug for MtlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsListener")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.table)
            .finish_non_exhaustive()
    }
}

impl Drop for MtlsListener {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.task.abort();
            running.expiry_watch.abort();
        }
    }
}

/// Configures an [`MtlsListener`]: its handshake, connection and HTTP limits. Every limit has a
/// default chosen for a server facing hostile peers; see [`limits`](crate::limits).
#[must_use]
pub struct MtlsListenerBuilder {
    tcp: TcpListener,
    config: MtlsConfig,
    limits: Limits,
    close_on_reload: bool,
    #[cfg(feature = "axum")]
    http: Option<HttpConfig>,
}

/// The user's own settings for hyper-util's builder ([`MtlsListenerBuilder::configure_http`]).
#[cfg(feature = "axum")]
pub(crate) type HttpConfig = Arc<
    dyn Fn(&mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>)
        + Send
        + Sync,
>;

impl fmt::Debug for MtlsListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsListenerBuilder")
            .field("limits", &self.limits)
            .field("close_on_reload", &self.close_on_reload)
            .finish_non_exhaustive()
    }
}

/// The longest any timeout is: a year. Longer (up to `Duration::MAX`) means the same, and keeps
/// every `Instant + timeout` from overflowing.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// `value` (at most [`MAX_TIMEOUT`]), or `default` for zero: a zero timeout would refuse every
/// client.
fn nonzero(value: Duration, default: Duration) -> Duration {
    if value.is_zero() {
        default
    } else {
        value.min(MAX_TIMEOUT)
    }
}

impl MtlsListenerBuilder {
    /// How long a client has, from accept, to complete the handshake (default 10 s). A zero
    /// duration is taken as the default rather than refusing every client.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.handshake_timeout = nonzero(timeout, DEFAULT_HANDSHAKE_TIMEOUT);
        self
    }

    /// How long a client has, from accept, to send its whole ClientHello (default 5 s; never
    /// more than the handshake timeout). A silent or dribbling peer is closed at this deadline.
    /// Zero is taken as the default.
    pub fn client_hello_timeout(mut self, timeout: Duration) -> Self {
        self.limits.client_hello_timeout =
            nonzero(timeout, super::limits::DEFAULT_CLIENT_HELLO_TIMEOUT);
        self
    }

    /// At most this many handshakes in progress at once (default 1,024; at least 1). Past it,
    /// the oldest connection still waiting for its ClientHello is closed (else the oldest
    /// unfinished handshake), never the newcomer: a good client sends its ClientHello at once, so
    /// it is the silent and slow peers that are shed.
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.limits.max_handshakes = max.max(1);
        self
    }

    /// At most this many open connections, handshakes included (at least 1). The default is half
    /// the process's open-file limit, at most 10,000: keep it below that limit, or the process
    /// runs out of descriptors for its own files and outgoing connections. At the cap, the oldest
    /// unfinished handshake, else the oldest connection with no request in flight, is closed to
    /// make room; when every connection is busy, new ones wait in the kernel's accept queue.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = max.max(1);
        self
    }

    /// At most this many open connections from one IP address; past it, a new connection from
    /// that address is closed at once. Off by default: clients behind one NAT, load balancer or
    /// proxy share an address.
    pub fn max_connections_per_ip(mut self, max: usize) -> Self {
        self.limits.max_connections_per_ip = Some(max.max(1));
        self
    }

    /// How long a new connection has to send its first request head (HTTP/1 and HTTP/2: an
    /// HTTP/2 preface alone is not a request), and, on HTTP/1, how long a request head that has
    /// begun has to finish, however slowly its bytes keep coming (default 10 s). Such peers are
    /// closed at the deadline. On HTTP/2, a head that stalls after the first request is bounded by
    /// the [`idle_timeout`](Self::idle_timeout) (pings and window updates are not heads). Zero is
    /// taken as the default; at most a year. Applies under [`crate::serve`].
    pub fn request_header_timeout(mut self, timeout: Duration) -> Self {
        self.limits.request_header_timeout =
            nonzero(timeout, super::limits::DEFAULT_REQUEST_HEADER_TIMEOUT);
        self
    }

    /// How long a connection may stay open with no request in flight (default 60 s). Zero is
    /// taken as the default. Applies under [`crate::serve`].
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = nonzero(timeout, super::limits::DEFAULT_IDLE_TIMEOUT);
        self
    }

    /// Closes each connection gracefully once it is this old (default 1 h): HTTP/2 clients get a
    /// GOAWAY, HTTP/1 connections close after their current response, and requests in flight
    /// get the [`drain_timeout`](Self::drain_timeout) to finish. `Duration::MAX` means no
    /// maximum age. Zero is taken as the default. Applies under [`crate::serve`].
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.limits.max_connection_age =
            (age != Duration::MAX).then(|| nonzero(age, super::limits::DEFAULT_MAX_CONNECTION_AGE));
        self
    }

    /// How long a connection that is closing (maximum age, shutdown, or room needed) has to
    /// finish its requests in flight before it is closed outright (default 30 s). It also bounds
    /// graceful shutdown. Zero is taken as the default. Applies under [`crate::serve`].
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.limits.drain_timeout = nonzero(timeout, super::limits::DEFAULT_DRAIN_TIMEOUT);
        self
    }

    /// HTTP/2 keep-alive pings: one every `interval` (default 60 s), and the connection is closed
    /// when a ping is not answered within `timeout` (default 20 s). Zero durations are taken as
    /// the defaults. Applies under [`crate::serve`].
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.limits.http2_keep_alive = Some((
            nonzero(interval, super::limits::DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL),
            nonzero(timeout, super::limits::DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT),
        ));
        self
    }

    /// At most this many concurrent HTTP/2 streams (requests in flight) per connection (default
    /// 100; at least 1). Applies under [`crate::serve`].
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.limits.http2_max_concurrent_streams = max.max(1);
        self
    }

    /// The HTTP/2 flow-control windows: how many request bytes a client may send ahead of the
    /// app's reads, per stream (default 128 KiB) and per connection (default 256 KiB). Larger
    /// windows speed up uploads over long round trips (a connection moves at most one window per
    /// round trip) and let each connection hold more memory. Each at least 65,535 (the protocol's
    /// initial window). Applies under [`crate::serve`].
    pub fn http2_window_sizes(mut self, stream: u32, connection: u32) -> Self {
        self.limits.http2_stream_window = stream.max(65_535);
        self.limits.http2_connection_window = connection.max(65_535);
        self
    }

    /// The request-body bytes the app may hold, read but not finished with, across the listener
    /// (default 64 MiB) and per connection (default 4 MiB); see [`limits`](crate::limits) for
    /// what counts. When either is spent, the app's next read waits, except for the oldest
    /// request. Set `per_connection` at least to the largest body (or gRPC message) your app
    /// buffers. Each at least 64 KiB. Applies under [`crate::serve`].
    pub fn max_buffered_request_bytes(mut self, total: usize, per_connection: usize) -> Self {
        self.limits.max_buffered_request_bytes = total.max(64 * 1024);
        self.limits.max_buffered_request_bytes_per_connection = per_connection.max(64 * 1024);
        self
    }

    /// How long a request body that has begun may go without a byte while the app waits for it
    /// (default 30 s); then the read fails and the request ends, giving back its share of the
    /// buffered-bytes budgets. For gRPC it applies inside a message only: a stream may stay quiet
    /// between messages for as long as it likes. Zero is taken as the default; at most a year.
    /// Applies under [`crate::serve`].
    pub fn request_body_timeout(mut self, timeout: Duration) -> Self {
        self.limits.request_body_timeout =
            nonzero(timeout, super::limits::DEFAULT_REQUEST_BODY_TIMEOUT);
        self
    }

    /// Adjusts hyper-util's connection builder after the listener's own settings, for what this
    /// builder does not wrap (HTTP/1 `max_headers`, HTTP/2 `max_header_list_size`,
    /// `max_pending_accept_reset_streams`, ...). Applies under [`crate::serve`]. Settings made
    /// here win over the listener's, so this can loosen a limit: do so by name, knowingly.
    ///
    /// ```no_run
    /// # async fn run(tcp: tokio::net::TcpListener, config: mtls_tower::MtlsConfig) -> std::io::Result<()> {
    /// let listener = mtls_tower::MtlsListener::builder(tcp, config)
    ///     .configure_http(|b| {
    ///         b.http1().max_headers(50);
    ///         b.http2().max_header_list_size(8 * 1024);
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "axum")]
    pub fn configure_http(
        mut self,
        configure: impl Fn(&mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>)
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.http = Some(Arc::new(configure));
        self
    }

    /// On every [reload](MtlsListener::reload_handle), close the connections established under
    /// the previous configuration (each ends when it next waits for a request), so that a revoked
    /// or removed client loses access at once instead of at its next connection.
    ///
    /// A certificate's own end needs no reload: every request is refused once the chain's
    /// validity has ended ([`ClientCert::valid_until`]), and `serve` closes the connection then.
    pub fn close_connections_on_reload(mut self) -> Self {
        self.close_on_reload = true;
        self
    }

    /// The listener. It starts accepting on its first [`accept`](MtlsListener::accept).
    pub fn build(self) -> io::Result<MtlsListener> {
        let limits = self.limits;
        limits_log(&limits);
        Ok(MtlsListener {
            local_addr: self.tcp.local_addr()?,
            cell: Arc::new(ConfigCell::new(self.config, self.close_on_reload)),
            table: ConnTable::new(
                limits.max_connections,
                limits.max_handshakes,
                limits.max_connections_per_ip,
            ),
            limits: Arc::new(limits),
            #[cfg(feature = "axum")]
            http: self.http,
            pending: Some(self.tcp),
            running: None,
            #[cfg(feature = "axum")]
            warned_unread_cert: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// tokio's `TcpListener::bind` with a backlog of our choosing: each resolved address in turn, the
/// first that binds wins, and the last error if none does.
async fn bind_tcp(addr: impl ToSocketAddrs, backlog: u32) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        match listen_on(addr, backlog) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to no socket address",
        )
    }))
}

fn listen_on(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's and std's `bind` do on Unix: a restarted server can bind while its old
    // connections sit in TIME_WAIT. (On Windows SO_REUSEADDR would let another process steal the
    // port, so tokio leaves it off there, and so do we.)
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Says when the connection cap came out low from the open-file limit: a server that stops at
/// 512 connections should say why.
fn limits_log(limits: &Limits) {
    if let Some(files) = super::limits::open_file_limit() {
        if limits.max_connections > usize::try_from(files).unwrap_or(usize::MAX) {
            tracing::warn!(
                target: "mtls_tower::listener",
                max_connections = limits.max_connections,
                open_file_limit = files,
                "max_connections is above the open-file limit: the process will run out of descriptors first"
            );
        }
    }
}

impl MtlsListener {
    /// Binds a TCP listener on `addr` and serves mutual TLS with `config` (an
    /// [`MtlsConfig`](crate::MtlsConfig) or any `Arc<rustls::ServerConfig>`), with the default
    /// limits.
    ///
    /// It listens with a backlog of [`DEFAULT_LISTEN_BACKLOG`](crate::limits::DEFAULT_LISTEN_BACKLOG)
    /// (4,096; tokio's `TcpListener::bind` asks for 1,024), so that good clients wait in the
    /// kernel's queue rather than lose their SYN while the listener is at its connection cap.
    /// Like tokio's `bind`, it tries each address `addr` resolves to and keeps the first that
    /// binds, with `SO_REUSEADDR` set (not on Windows). For another backlog, bind a
    /// `tokio::net::TcpSocket` yourself and pass its listener to [`MtlsListener::builder`].
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: impl Into<MtlsConfig>,
    ) -> io::Result<MtlsListener> {
        let tcp = bind_tcp(addr, super::limits::DEFAULT_LISTEN_BACKLOG).await?;
        MtlsListener::builder(tcp, config).build()
    }

    /// Configures a listener on an already bound TCP listener.
    pub fn builder(tcp: TcpListener, config: impl Into<MtlsConfig>) -> MtlsListenerBuilder {
        MtlsListenerBuilder {
            tcp,
            config: config.into(),
            limits: Limits::default(),
            close_on_reload: false,
            #[cfg(feature = "axum")]
            http: None,
        }
    }

    /// A handle to swap this listener's TLS configuration while it runs (certificate rotation,
    /// CA bundle and CRL updates). See [`ReloadHandle`].
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle::new(self.cell.clone())
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The most connections this listener keeps open (its
    /// [`max_connections`](MtlsListenerBuilder::max_connections)).
    pub fn max_connections(&self) -> usize {
        self.limits.max_connections
    }

    /// The next connection whose TLS handshake succeeded, with the peer's address. Never fails:
    /// errors are logged and the listener goes on. The connection counts against
    /// [`max_connections`](MtlsListenerBuilder::max_connections) until its `MtlsStream` is
    /// dropped.
    pub async fn accept(&mut self) -> (MtlsStream, SocketAddr) {
        if self.running.is_none() {
            let (tx, rx) = mpsc::channel(self.limits.max_handshakes.min(1024));
            self.start(Sink::Channel(tx), Some(rx));
        }
        let next = match self.running.as_mut().and_then(|r| r.incoming.as_mut()) {
            Some(incoming) => incoming.recv().await,
            None => None,
        };
        match next {
            Some(conn) => conn,
            None => {
                // Only if the accept loop ended (it does not while we hold the receiver), or if the
                // listener is already serving connections in place.
                tracing::error!(target: "mtls_tower::listener", "accept loop stopped; no more connections");
                std::future::pending().await
            }
        }
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    #[cfg(feature = "axum")]
    pub(crate) fn http_config(&self) -> Option<&HttpConfig> {
        self.http.as_ref()
    }
}

/// Warns every six hours while the server certificate is close to expiry.
async fn expiry_watch(cell: Arc<ConfigCell>) {
    // The first tick six hours from now, not at once: `MtlsConfig::build` (and each reload) has
    // just warned, and a second identical warning at startup reads as two problems.
    let period = Duration::from_secs(6 * 3600);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        cell.warn_if_expiring();
    }
}

/// Serves one connection to its end, in the task that did its handshake; the signal is how the
/// listener asks it to close (room needed, shutdown).
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) type ServeConnection = Arc<
    dyn Fn(
            MtlsStream,
            SocketAddr,
            CloseSignal,
        ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Where a connection goes once its handshake is done.
#[derive(Clone)]
enum Sink {
    /// To `MtlsListener::accept` (for `axum::serve` and hand-written loops).
    Channel(mpsc::Sender<(MtlsStream, SocketAddr)>),
    /// Served right there, saving a hand-off between tasks per connection.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Serve(ServeConnection),
}

impl Sink {
    fn is_closed(&self) -> bool {
        match self {
            Sink::Channel(tx) => tx.is_closed(),
            Sink::Serve(_) => false,
        }
    }
}

#[cfg_attr(not(feature = "axum"), allow(dead_code))]
impl MtlsListener {
    /// Runs the accept loop, serving each connection with `serve` in the task that completed its
    /// handshake, until `signal`; then stops accepting, asks every connection to close gracefully
    /// and waits until they have (each within its drain timeout). Used by [`crate::serve`].
    ///
    /// # Errors
    /// When [`accept`](MtlsListener::accept) was already called on this listener: its accept loop
    /// hands connections to `accept`, so serving it as well would serve nothing.
    pub(crate) async fn serve_each(
        mut self,
        serve: ServeConnection,
        signal: impl std::future::Future<Output = ()>,
    ) -> io::Result<()> {
        if self.running.is_some() {
            return Err(io::Error::other(
                "this MtlsListener is already accepting (accept() was called on it); \
                 serve a listener that has not been used",
            ));
        }
        self.start(Sink::Serve(serve), None);
        signal.await;
        let table = self.table.clone();
        let drain = self.limits.drain_timeout;
        // Dropping the listener aborts the accept loop: no new connections.
        drop(self);
        tracing::info!(target: "mtls_tower::serve", "stopped accepting; waiting for open connections to finish");
        table.close_all(CloseReason::Shutdown);
        // Each served connection ends within the drain timeout. A connection upgraded away from
        // HTTP (a WebSocket) is no longer ours to close: shutdown does not wait for it past that.
        if tokio::time::timeout(drain + Duration::from_secs(1), table.closed())
            .await
            .is_err()
        {
            tracing::info!(
                target: "mtls_tower::serve",
                "shutdown: connections upgraded away from HTTP are still open; not waiting for them"
            );
        }
        Ok(())
    }

    /// Starts the accept loop (and the expiry warnings) inside the runtime, once.
    fn start(&mut self, sink: Sink, incoming: Option<mpsc::Receiver<(MtlsStream, SocketAddr)>>) {
        if let Some(tcp) = self.pending.take() {
            let shared = Shared {
                cell: self.cell.clone(),
                table: self.table.clone(),
                limits: self.limits.clone(),
                sink,
            };
            self.running = Some(Running {
                incoming,
                task: tokio::spawn(accept_loop(tcp, shared)),
                expiry_watch: tokio::spawn(expiry_watch(self.cell.clone())),
            });
        }
    }
}

/// What every connection task of a listener shares.
#[derive(Clone)]
struct Shared {
    cell: Arc<ConfigCell>,
    table: Arc<ConnTable>,
    limits: Arc<Limits>,
    sink: Sink,
}

/// The shortest and longest pause after an accept error that is not the client's.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How many connections to close per `EMFILE`/`ENFILE` to get descriptors back.
const SHED_PER_DESCRIPTOR_ERROR: usize = 8;

async fn accept_loop(tcp: TcpListener, shared: Shared) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (tcp_stream, peer) = match tcp.accept().await {
            Ok(conn) => {
                backoff = ACCEPT_BACKOFF_MIN;
                conn
            }
            Err(e) => {
                if let Some(pause) = accept_error(&e, &shared.table, backoff) {
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
                continue;
            }
        };
        if shared.sink.is_closed() {
            return;
        }
        // Then its slot: at the cap this asks a connection to make room, or waits for one to
        // close, so that a flood of clients queues in the kernel instead of in this process. (A
        // slot taken before `accept` would make room when no one is waiting for it.)
        let mut slot = shared.table.reserve().await;
        let close = match slot.admit(peer.ip()) {
            Ok(close) => close,
            Err(Refused::TooManyFromAddress) => {
                static LIMIT: Limiter = Limiter::new();
                if let Some(suppressed) = LIMIT.admit() {
                    tracing::warn!(
                        target: "mtls_tower::listener",
                        suppressed,
                        %peer,
                        "connection refused: too many open from this address (max_connections_per_ip)"
                    );
                }
                continue;
            }
            Err(Refused::ShuttingDown) => return,
        };
        let _ = tcp_stream.set_nodelay(true);
        tokio::spawn(connection(tcp_stream, peer, slot, close, shared.clone()));
    }
}

/// Logs an accept error; for one that is not the client's (out of descriptors or memory), frees
/// descriptors where it can and returns how long to pause before the next accept.
fn accept_error(e: &io::Error, table: &Arc<ConnTable>, backoff: Duration) -> Option<Duration> {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        // The client went away between SYN and accept: its problem, not ours.
        tracing::debug!(target: "mtls_tower::listener", error = %e, "accept failed");
        return None;
    }
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs: the process or the system is out of
    // descriptors. Close some idle connections (ours first, then other listeners') so that this
    // listener and the others can accept again, instead of every listener starving together.
    let out_of_descriptors = matches!(e.raw_os_error(), Some(23 | 24));
    let freed = if out_of_descriptors {
        table.shed_for_descriptors(SHED_PER_DESCRIPTOR_ERROR)
    } else {
        0
    };
    static LIMIT: Limiter = Limiter::new();
    if let Some(suppressed) = LIMIT.admit() {
        tracing::error!(
            target: "mtls_tower::listener",
            suppressed,
            error = %e,
            closing_idle = freed,
            retry_in = ?backoff,
            "accept failed; backing off"
        );
    }
    Some(backoff)
}

/// How one connection's handshake went.
// Returned once per connection and destructured at once: boxing the stream would cost an
// allocation per connection for nothing.
#[allow(clippy::large_enum_variant)]
enum Handshake {
    Done(
        TlsStream<TcpStream>,
        Option<Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>>,
        // What the handshake used: until when the CRLs hold, the verifier.
        HandshakeConfig,
    ),
    /// Failed with this error; the socket lingers before its close.
    Failed(io::Error, Option<TcpStream>),
    /// Past a deadline.
    TimedOut(&'static str),
    /// The table asked it to close.
    Closed(CloseReason),
}

/// The handshake of one connection, bounded by its two deadlines and by the table's signal.
async fn handshake(
    tcp: TcpStream,
    slot: &mut ConnSlot,
    close: &mut CloseSignal,
    shared: &Shared,
) -> Handshake {
    let start = Instant::now();
    let limits = &shared.limits;
    let deadline = start + limits.handshake_timeout;
    let hello_deadline = (start + limits.client_hello_timeout).min(deadline);
    // The ClientHello alone first: a peer that has not sent all of it yet is the cheapest to
    // close when room is needed (see `ConnTable`).
    let mut lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let hello = tokio::select! {
        biased;
        reason = &mut *close => return Handshake::Closed(reason.unwrap_or(CloseReason::Shutdown)),
        hello = tokio::time::timeout_at(hello_deadline, &mut lazy) => hello,
    };
    let start_handshake = match hello {
        Err(_) => return Handshake::TimedOut("ClientHello"),
        Ok(Err(e)) => return Handshake::Failed(e, lazy.take_io()),
        Ok(Ok(start)) => start,
    };
    if !slot.hello_received() {
        return Handshake::Closed(CloseReason::Handshakes);
    }
    // The configuration current when the ClientHello arrived: a reload affects the next
    // handshake. The reload signal is taken at the same moment, so none is missed in between.
    let handshake_config = shared.cell.server_config();
    let config = handshake_config.server.clone();
    let closer = shared.cell.closer();
    let accept = start_handshake.into_stream(config).into_fallible();
    tokio::select! {
        biased;
        reason = &mut *close => Handshake::Closed(reason.unwrap_or(CloseReason::Shutdown)),
        done = tokio::time::timeout_at(deadline, accept) => match done {
            Err(_) => Handshake::TimedOut("handshake"),
            Ok(Err((e, tcp))) => Handshake::Failed(e, Some(tcp)),
            Ok(Ok(tls)) => Handshake::Done(tls, closer, handshake_config),
        },
    }
}

/// One connection, from accept to its end: the handshake, the identity, then the sink.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    mut slot: ConnSlot,
    mut close: CloseSignal,
    shared: Shared,
) {
    let (tls, closer, used) = match handshake(tcp, &mut slot, &mut close, &shared).await {
        Handshake::Done(tls, closer, used) => (tls, closer, used),
        Handshake::TimedOut(phase) => {
            static LIMIT: Limiter = Limiter::new();
            if let Some(suppressed) = LIMIT.admit() {
                tracing::debug!(
                    target: "mtls_tower::listener",
                    suppressed,
                    %peer,
                    phase,
                    "TLS handshake timed out"
                );
            }
            return;
        }
        Handshake::Closed(reason) => {
            log_closed(peer, reason, "closing an unfinished handshake");
            return;
        }
        Handshake::Failed(e, tcp) => {
            log_handshake_error(peer, &e);
            if let Some(tcp) = tcp {
                if slot.lingering() {
                    lingering_close(tcp, &mut close).await;
                }
            }
            return;
        }
    };
    let client_cert = match tls.get_ref().1.peer_certificates() {
        Some(chain) if !chain.is_empty() => match ClientIdentity::from_der_chain(chain) {
            Ok(id) => Some(ClientCert::from_handshake(Arc::new(id))),
            Err(e) => {
                // Verified by rustls but unreadable to us: refuse the connection rather than
                // serve it as if it had no certificate.
                static LIMIT: Limiter = Limiter::new();
                if let Some(suppressed) = LIMIT.admit() {
                    tracing::warn!(
                        target: "mtls_tower::listener",
                        suppressed,
                        %peer,
                        error = %e,
                        "closing connection: verified client certificate could not be parsed"
                    );
                }
                return;
            }
        },
        _ => None,
    };
    // The end of what the handshake vouched for: the chain's validity, with CRLs that must be
    // current their `nextUpdate` (a revocation published after it would not be seen), and the
    // validity of the client CAs valid then. The trust anchor is not in the chain, and which
    // CA vouched is not known here, so the earliest of them counts: a connection of a client
    // of a CA that lives on ends too, and its next handshake succeeds.
    let vouched_until = client_cert.as_ref().map(|cert| {
        [used.revocation_valid_until, used.client_cas_valid_until]
            .into_iter()
            .flatten()
            .fold(cert.valid_until(), SystemTime::min)
    });
    if let (Some(cert), Some(until)) = (&client_cert, vouched_until) {
        // Security: rustls verifies a chain only in a full handshake. A resumed session (TLS 1.3
        // ticket, TLS 1.2 session ID) brings back the stored chain unchecked, and every
        // resumption hands out a new ticket: without this, an expired certificate would keep
        // its access for ever. So a resumed chain is verified again, now, by the verifier of the
        // configuration that resumed it (every certificate's dates on the path, CRLs, EKU: an
        // intermediate that expired since cannot be told from an unused extra certificate by
        // dates alone), and no connection is served past what its handshake vouched for.
        // Refused before any request is read; the client's next full handshake gets rustls's
        // own refusal. (After a full handshake this refuses nothing but a clock that jumped.)
        let now = SystemTime::now();
        let resumed = matches!(
            tls.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        if (resumed && !chain_still_verifies(cert, used.verifier.as_deref()))
            || !cert.is_current_at(now)
            || now > until
        {
            refuse_resumed(tls, peer, cert).await;
            return;
        }
    }
    // When that ends, so does the connection (`serve` closes it then).
    let certificate_ends = vouched_until.map(|until| {
        let left = until.duration_since(SystemTime::now()).unwrap_or_default();
        (later(Instant::now(), left), until)
    });
    match &shared.sink {
        Sink::Channel(tx) => {
            // Handed to `accept`: the table counts it until the stream is dropped, but cannot
            // close it gracefully, so it never picks it to make room.
            if !slot.serving(None) {
                return;
            }
            let stream = MtlsStream::new(tls, client_cert, closer, slot, None);
            let _ = tx.send((stream, peer)).await;
        }
        Sink::Serve(serve) => {
            let activity = Arc::new(Activity::new().ending_at(certificate_ends));
            if !slot.serving(Some(activity.clone())) {
                return;
            }
            let stream = MtlsStream::new(tls, client_cert, closer, slot, Some(activity));
            serve(stream, peer, close).await;
        }
    }
}

/// Whether a resumed session's stored chain verifies now: by `verifier` when the configuration
/// has one (an `MtlsConfig`'s), else (a bare `rustls::ServerConfig`) every certificate of the
/// chain within its dates.
fn chain_still_verifies(
    cert: &ClientCert,
    verifier: Option<&dyn rustls::server::danger::ClientCertVerifier>,
) -> bool {
    let chain = cert.identity().chain();
    let Some((leaf, intermediates)) = chain.split_first() else {
        return false;
    };
    match verifier {
        Some(v) => v
            .verify_client_cert(leaf, intermediates, rustls::pki_types::UnixTime::now())
            .is_ok(),
        None => cert.identity().chain_valid_at(SystemTime::now()),
    }
}

/// Ends a connection whose (resumed) session's certificate is no longer valid: a `close_notify`,
/// bounded in time, then the close.
async fn refuse_resumed(mut tls: TlsStream<TcpStream>, peer: SocketAddr, cert: &ClientCert) {
    use tokio::io::AsyncWriteExt;
    static LIMIT: Limiter = Limiter::new();
    if let Some(suppressed) = LIMIT.admit() {
        tracing::warn!(
            target: "mtls_tower::listener",
            suppressed,
            %peer,
            resumed = matches!(tls.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
            subject = cert.subject().as_str(),
            fingerprint = %cert.fingerprint_sha256(),
            "closing connection before any request: its client certificate, an intermediate or the CRLs have expired, or a resumed TLS session's chain no longer verifies"
        );
    }
    let _ = tokio::time::timeout(LINGER, tls.shutdown()).await;
}

fn log_closed(peer: SocketAddr, reason: CloseReason, message: &'static str) {
    static LIMIT: Limiter = Limiter::new();
    if let Some(suppressed) = LIMIT.admit() {
        tracing::debug!(
            target: "mtls_tower::listener",
            suppressed,
            %peer,
            reason = reason.as_str(),
            "{message}"
        );
    }
}

/// The longest a failed handshake's socket lingers, and the most it reads meanwhile.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_DISCARD: usize = 64 * 1024;

/// Closes a connection whose handshake failed so that the client can read the alert rustls just
/// sent: send FIN, then read and discard what the client had in flight (in TLS 1.3 it may already
/// have sent its Finished and a request) for a moment. Closing with unread data would make the
/// kernel answer with a reset, and a reset can destroy the alert before the client reads it.
/// Bounded in time and bytes, and ended at once when the table needs the room.
async fn lingering_close(mut tcp: TcpStream, close: &mut CloseSignal) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut discarded = 0;
        while discarded < LINGER_MAX_DISCARD {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(LINGER, drain) => {}
        _ = close => {}
    }
}

fn log_handshake_error(peer: SocketAddr, e: &io::Error) {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let alert = tls.and_then(sent_alert);
    static LIMIT: Limiter = Limiter::new();
    if let Some(suppressed) = LIMIT.admit() {
        tracing::debug!(
            target: "mtls_tower::listener",
            suppressed,
            %peer,
            error = %e,
            alert = alert.map(tracing::field::debug),
            "TLS handshake failed"
        );
    }
}

/// The alert rustls sends for a handshake error, where it is determined by the error.
fn sent_alert(e: &rustls::Error) -> Option<rustls::AlertDescription> {
    use rustls::{AlertDescription, Error, PeerIncompatible};
    match e {
        Error::InvalidCertificate(ce) => Some(AlertDescription::from(ce.clone())),
        Error::NoCertificatesPresented => Some(AlertDescription::CertificateRequired),
        Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered)
        | Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic)
        | Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired) => {
            Some(AlertDescription::ProtocolVersion)
        }
        Error::PeerIncompatible(_) => Some(AlertDescription::HandshakeFailure),
        _ => None,
    }
}

/// A TLS connection accepted by [`MtlsListener`], with its client's verified certificate.
pub struct MtlsStream {
    inner: TlsStream<TcpStream>,
    client_cert: Option<ClientCert>,
    /// With `close_connections_on_reload`: completes at the next reload, which ends the stream.
    closer: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>>,
    /// The closer completed: every later read is end of stream too (a completed future must not
    /// be polled again).
    closed_by_reload: bool,
    /// Under `serve`: bytes received start the request-header timer.
    activity: Option<Arc<Activity>>,
    /// Accepted through `axum::serve`'s `Listener`: at the first read, warn (once per listener)
    /// if nothing took the certificate first. That is `axum::serve(listener, app)` without
    /// `MtlsMakeService`, which compiles, handshakes, verifies the certificate and then answers
    /// 401 to every request, since no request carries the `ClientCert`. It fails closed, but
    /// the layer's "no verified client certificate" points the wrong way; this says why.
    #[cfg(feature = "axum")]
    unread_cert_warning: Option<Arc<AtomicBool>>,
    /// `client_cert()` was called: whoever serves the stream has the certificate. (An atomic
    /// because `client_cert` takes `&self`, as `MtlsMakeService` only gets a shared reference.)
    #[cfg(feature = "axum")]
    cert_taken: AtomicBool,
    /// Its place in the listener's connection count, freed when the stream is dropped.
    _slot: ConnSlot,
}

impl MtlsStream {
    fn new(
        inner: TlsStream<TcpStream>,
        client_cert: Option<ClientCert>,
        closer: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>>,
        slot: ConnSlot,
        activity: Option<Arc<Activity>>,
    ) -> MtlsStream {
        MtlsStream {
            inner,
            client_cert,
            closer,
            closed_by_reload: false,
            activity,
            #[cfg(feature = "axum")]
            unread_cert_warning: None,
            #[cfg(feature = "axum")]
            cert_taken: AtomicBool::new(false),
            _slot: slot,
        }
    }

    /// The verified client certificate, parsed once for this connection; `None` when the client
    /// sent none (possible only with optional client authentication).
    pub fn client_cert(&self) -> Option<&ClientCert> {
        #[cfg(feature = "axum")]
        self.cert_taken.store(true, Ordering::Relaxed);
        self.client_cert.as_ref()
    }

    /// Accepted by `axum::serve`: warn through `warned` if the stream is read before anything
    /// asked for its certificate.
    #[cfg(feature = "axum")]
    pub(crate) fn warn_if_certificate_unread(&mut self, warned: Arc<AtomicBool>) {
        self.unread_cert_warning = Some(warned);
    }

    /// The TLS stream.
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        &self.inner
    }

    /// The TLS stream and the client certificate. The connection no longer counts against the
    /// listener's [`max_connections`](MtlsListenerBuilder::max_connections) from then on.
    pub fn into_parts(self) -> (TlsStream<TcpStream>, Option<ClientCert>) {
        (self.inner, self.client_cert)
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn activity(&self) -> Option<&Arc<Activity>> {
        self.activity.as_ref()
    }
}

impl fmt::Debug for MtlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsStream")
            .field("peer", &self.inner.get_ref().0.peer_addr().ok())
            .field("client_cert", &self.client_cert)
            .finish()
    }
}

impl AsyncRead for MtlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed_by_reload {
            return Poll::Ready(Ok(()));
        }
        #[cfg(feature = "axum")]
        if let Some(warned) = self.unread_cert_warning.take() {
            if !self.cert_taken.load(Ordering::Relaxed) && !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "mtls_tower::listener",
                    "MtlsListener is served by axum::serve without MtlsMakeService: its requests \
                     carry no ClientCert, so RequireClientCertLayer and #[require_cert] answer 401 \
                     to every client, verified or not. Serve it with \
                     `mtls_tower::serve(listener, app)` or \
                     `axum::serve(listener, MtlsMakeService::new(app))`"
                );
            }
        }
        if let Some(closer) = &mut self.closer {
            if closer.as_mut().poll(cx).is_ready() {
                // The configuration that admitted this client was replaced: end of stream, so
                // the HTTP server closes the connection once the current response is written.
                tracing::debug!(target: "mtls_tower::reload", "closing a connection from before the reload");
                self.closer = None;
                self.closed_by_reload = true;
                return Poll::Ready(Ok(()));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            if let Some(activity) = &self.activity {
                activity.bytes_received();
            }
        }
        read
    }
}

impl AsyncWrite for MtlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
