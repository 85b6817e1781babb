//! The bounds on a connection's whole life, and their defaults: what a silent, slow, idle or
//! greedy peer can make the server hold, and for how long.
//!
//! Each limit is set on [`MtlsListenerBuilder`](crate::MtlsListenerBuilder); the ones about HTTP
//! apply to connections served by [`serve`](crate::serve) and
//! [`serve_with_shutdown`](crate::serve_with_shutdown) (axum or tonic alike).
//!
//! ```
//! use std::time::Duration;
//! use mtls_tower::{limits, MtlsListener};
//! # use mtls_tower::testing::TestPki;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let pki = TestPki::new();
//! # let cert = pki.ca.server_cert("localhost");
//! # let config = mtls_tower::MtlsConfig::builder()
//! #     .server_cert(cert.chain().to_vec(), cert.key_der())
//! #     .client_ca_certs(vec![pki.ca.cert_der().clone()])
//! #     .build().unwrap();
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let listener = MtlsListener::builder(tcp, config)
//!     .max_connections(20_000)                      // default: half the open-file limit, ≤ 10,000
//!     .idle_timeout(Duration::from_secs(120))        // default 60 s
//!     .max_connection_age(Duration::from_secs(600))  // default 1 h
//!     .build()?;
//! assert_eq!(limits::DEFAULT_CLIENT_HELLO_TIMEOUT, Duration::from_secs(5));
//! # Ok::<(), std::io::Error>(()) }).unwrap();
//! ```
//!
//! # Before and during the handshake
//!
//! | limit | default | protects against |
//! |---|---|---|
//! | [`client_hello_timeout`](crate::MtlsListenerBuilder::client_hello_timeout) | 5 s | a peer that connects and sends nothing, or dribbles its ClientHello |
//! | [`handshake_timeout`](crate::MtlsListenerBuilder::handshake_timeout) | 10 s | a peer that stalls later in the handshake |
//! | [`max_handshakes`](crate::MtlsListenerBuilder::max_handshakes) | 1,024 | a flood of unfinished handshakes: past the bound, the oldest unfinished one is closed (the oldest still waiting for its ClientHello first), never the newcomer |
//! | failed handshakes | linger ≤ 1 s, ≤ 64 KiB | the close after a failed handshake waits for the client to read the alert, but only so long; lingering connections are the first closed when room is needed |
//!
//! # Open connections
//!
//! | limit | default | protects against |
//! |---|---|---|
//! | [`max_connections`](crate::MtlsListenerBuilder::max_connections) | half the process's open-file limit, at most 10,000 | running out of file descriptors. At the cap, the oldest unfinished handshake (older than 250 ms), else the oldest connection with no request in flight, is closed for the newcomer (1 s for its GOAWAY, then outright); if every connection is busy, the newcomer waits (the listener never spins) |
//! | listen backlog ([`MtlsListener::bind`](crate::MtlsListener::bind) only) | 4,096 ([`DEFAULT_LISTEN_BACKLOG`]; the kernel caps it at `net.core.somaxconn`) | good clients' SYNs dropped while the listener is at its cap and attackers fill the kernel's queue; to choose another, bind a `tokio::net::TcpSocket`, `listen(n)`, and pass it to [`MtlsListener::builder`](crate::MtlsListener::builder) |
//! | [`max_connections_per_ip`](crate::MtlsListenerBuilder::max_connections_per_ip) | none (off: clients behind one NAT or proxy share an address) | one address holding every connection |
//! | out of file descriptors (`EMFILE`, `ENFILE`) | always | accept backs off (10 ms, doubling to 1 s) and closes up to 8 idle connections or unfinished handshakes, its own first, then other listeners' in the process, so one hoarded listener cannot starve another |
//!
//! # After the handshake (under `serve`)
//!
//! | limit | default | protects against |
//! |---|---|---|
//! | [`request_header_timeout`](crate::MtlsListenerBuilder::request_header_timeout) | 10 s | a new connection that sends no request (HTTP/1 or HTTP/2: an HTTP/2 preface alone does not count), and an HTTP/1 request head that starts but does not finish, however slowly its bytes come (slowloris); a stalled HTTP/2 head after the first request is bounded by the idle timeout |
//! | [`idle_timeout`](crate::MtlsListenerBuilder::idle_timeout) | 60 s | keep-alive connections hoarded with no request in flight |
//! | [`http2_keep_alive`](crate::MtlsListenerBuilder::http2_keep_alive) | ping every 60 s, 20 s to answer | dead HTTP/2 peers with requests in flight |
//! | [`max_connection_age`](crate::MtlsListenerBuilder::max_connection_age) | 1 h | connections that live for ever; at the age, a graceful close (HTTP/2 GOAWAY) |
//! | [`drain_timeout`](crate::MtlsListenerBuilder::drain_timeout) | 30 s | a connection told to close (age, shutdown, room needed) that never finishes its requests; also bounds graceful shutdown |
//! | [`request_body_timeout`](crate::MtlsListenerBuilder::request_body_timeout) | 30 s | a request body (for gRPC: a message) that stops half-way while the app waits for it; a gRPC stream between messages may stay quiet |
//!
//! A connection upgraded away from HTTP (a WebSocket, through `hyper::upgrade`) leaves these HTTP
//! limits at the upgrade: it still counts against `max_connections`, and its own protocol's
//! timeouts are the app's to set.
//!
//! # Memory
//!
//! | limit | default | what it bounds |
//! |---|---|---|
//! | [`http2_max_concurrent_streams`](crate::MtlsListenerBuilder::http2_max_concurrent_streams) | 100 | requests in flight per HTTP/2 connection (hyper's default is 200) |
//! | [`http2_window_sizes`](crate::MtlsListenerBuilder::http2_window_sizes) | 128 KiB per stream, 256 KiB per connection | request bytes hyper may buffer for a connection before the app reads them (hyper: 1 MiB each) |
//! | HTTP/1 read buffer | 64 KiB | a request head's size, and bytes read ahead (hyper: about 400 KiB) |
//! | [`max_buffered_request_bytes`](crate::MtlsListenerBuilder::max_buffered_request_bytes) | 64 MiB per listener, 4 MiB per connection | request-body bytes the app has read but not finished with (below) |
//!
//! **Request bytes the app holds.** An app buffers what it reads from a request body until the
//! request is complete: tonic holds each message (up to its 4 MiB default) until the message is
//! complete, and for a unary call until the request ends; axum's `Bytes`, `String` and `Json`
//! extractors hold the whole body (up to 2 MiB by default). A greedy client that opens many
//! streams of large messages and never finishes them would hold all of that, per stream. So
//! every request body served by `serve` counts the bytes the app has read from it:
//!
//! - until the body ends (or is dropped); for gRPC (HTTP/2 and `content-type: application/grpc`)
//!   a complete message stops counting once the next one begins, since tonic hands each message
//!   to the handler before it reads the next; for other bodies, at most the per-connection
//!   budget counts per request, so that an upload streamed to disk does not pin the pool;
//! - against the connection's budget and the listener's; when either is spent, the app's next
//!   read waits (the client is held by flow control) until bytes are released, except for the
//!   oldest counting body, which always proceeds: the budget delays, it never deadlocks.
//!
//! **The budget arithmetic, with the defaults**, for 1,000 connections of an admitted client
//! that opens every stream it may and sends large messages it never finishes:
//!
//! - bytes the app holds: at most 64 MiB (the listener's pool), plus one message for the oldest
//!   body (tonic: 4 MiB), plus at most one 16 KiB frame per worker thread read past the budget;
//! - bytes hyper buffers before the app reads them: at most 256 KiB per connection (the
//!   connection window), 250 MiB for 1,000;
//! - request heads: at most 16 KiB each (hyper's header-list limit) for 100 streams, 1.6 MiB per
//!   connection for a client that fills every head to the limit;
//! - each connection's own state (TLS and HTTP buffers, the parsed identity): measured at about
//!   65 KiB (`BENCHMARKS.md`: a server at its cap of 1,024 connections, handshakes in flight,
//!   in 66 MiB).
//!
//! That is about 64 + 4 + 250 + 65 MiB, plus up to 1.6 GiB if every one of the 100,000 streams
//! also carries a 16 KiB head (lower `http2_max_concurrent_streams` or, with
//! [`configure_http`](crate::MtlsListenerBuilder::configure_http), hyper's
//! `max_header_list_size` to shrink that term). With hyper's defaults and no accounting the same
//! client could make the app hold 200 × 4 MiB *per connection*.
//!
//! What this does not cover: what a handler allocates on its own account, and a body that lies
//! about being gRPC to an axum route that buffers it (the axum route's own body limit, 2 MiB by
//! default, still applies per request). Response bytes are bounded by hyper's per-stream send
//! buffer (400 KiB) and, for HTTP/1, the read buffer above.

use std::time::Duration;

/// The default time from accept to a complete ClientHello.
pub const DEFAULT_CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time from accept to a complete handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The listen backlog that [`MtlsListener::bind`](crate::MtlsListener::bind) asks for: how many
/// connections the kernel completes and queues for the listener before it drops new SYNs.
///
/// tokio's `TcpListener::bind` asks for 1,024. At the connection cap the listener accepts only as
/// fast as it frees room, and an attacker with a valid certificate who re-opens every connection
/// it loses can fill a 1,024 queue; a good client's SYN is then dropped and retried after 1 s,
/// then 3 s. A queue above the cap keeps that SYN waiting in line instead (BENCHMARKS.md,
/// "idle-hoard"). The kernel caps it at `net.core.somaxconn` (4,096 by default since Linux 5.4).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;
/// The default bound on handshakes in progress at once.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;
/// The most open connections a listener takes by default; lower when the process's open-file
/// limit is lower (half of it).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The default time a new connection has to send its first request head, and a started request
/// head has to finish.
pub const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a connection may stay open with no request in flight.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default maximum age of a connection, after which it is closed gracefully.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);
/// The default time a closing connection has to finish its requests.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The default interval between HTTP/2 keep-alive pings.
pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// The default time an HTTP/2 peer has to answer a keep-alive ping.
pub const DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The default bound on concurrent HTTP/2 streams per connection.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// The default HTTP/2 flow-control window per stream.
pub const DEFAULT_HTTP2_STREAM_WINDOW: u32 = 128 * 1024;
/// The default HTTP/2 flow-control window per connection.
pub const DEFAULT_HTTP2_CONNECTION_WINDOW: u32 = 256 * 1024;
/// The default HTTP/1 read buffer (bounds a request head).
pub const DEFAULT_HTTP1_MAX_BUFFER: usize = 64 * 1024;
/// The default bound on request-body bytes held by the app, per listener.
pub const DEFAULT_MAX_BUFFERED_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// The default bound on request-body bytes held by the app, per connection.
pub const DEFAULT_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION: usize = 4 * 1024 * 1024;
/// The default time a request body may go without a byte while the app waits for it.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Every limit of a listener, with its value. (The HTTP ones are read by `serve`, feature `axum`.)
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Limits {
    pub(crate) client_hello_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_handshakes: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) request_header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connection_age: Option<Duration>,
    pub(crate) drain_timeout: Duration,
    pub(crate) http2_keep_alive: Option<(Duration, Duration)>,
    pub(crate) http2_max_concurrent_streams: u32,
    pub(crate) http2_stream_window: u32,
    pub(crate) http2_connection_window: u32,
    pub(crate) http1_max_buffer: usize,
    pub(crate) max_buffered_request_bytes: usize,
    pub(crate) max_buffered_request_bytes_per_connection: usize,
    pub(crate) request_body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            client_hello_timeout: DEFAULT_CLIENT_HELLO_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_connections: default_max_connections(open_file_limit()),
            max_connections_per_ip: None,
            request_header_timeout: DEFAULT_REQUEST_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connection_age: Some(DEFAULT_MAX_CONNECTION_AGE),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            http2_keep_alive: Some((
                DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL,
                DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT,
            )),
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            http2_stream_window: DEFAULT_HTTP2_STREAM_WINDOW,
            http2_connection_window: DEFAULT_HTTP2_CONNECTION_WINDOW,
            http1_max_buffer: DEFAULT_HTTP1_MAX_BUFFER,
            max_buffered_request_bytes: DEFAULT_MAX_BUFFERED_REQUEST_BYTES,
            max_buffered_request_bytes_per_connection:
                DEFAULT_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
        }
    }
}

/// Half the open-file limit (the other half for the app's own files and outgoing connections),
/// at most [`DEFAULT_MAX_CONNECTIONS`], at least 16.
pub(crate) fn default_max_connections(open_file_limit: Option<u64>) -> usize {
    match open_file_limit {
        Some(n) => usize::try_from(n / 2)
            .unwrap_or(usize::MAX)
            .clamp(16, DEFAULT_MAX_CONNECTIONS),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (Linux); `None` when
/// unlimited or unknown.
pub(crate) fn open_file_limit() -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_is_half_the_open_file_limit_within_bounds() {
        assert_eq!(default_max_connections(Some(1024)), 512);
        assert_eq!(
            default_max_connections(Some(1_048_576)),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(default_max_connections(Some(10)), 16);
        assert_eq!(default_max_connections(None), DEFAULT_MAX_CONNECTIONS);
    }

    #[test]
    fn the_soft_open_file_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_file_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_file_limit(unlimited), None);
        assert_eq!(parse_open_file_limit("garbage"), None);
    }
}
