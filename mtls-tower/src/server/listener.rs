//! [`MtlsListener`]: TCP accept, then the TLS handshake in a task of its own per connection, and
//! the verified client identity parsed once per connection.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mtls_core::ClientIdentity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::config::MtlsConfig;
use super::reload::{ConfigCell, ReloadHandle};
use crate::cert::ClientCert;

/// The default time a client has to complete the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on TLS handshakes in progress at once.
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;

/// A mutual-TLS listener: accepts TCP connections and runs each TLS handshake in its own task,
/// so a slow or silent client never holds up the others.
///
/// - handshakes time out after [`handshake_timeout`](MtlsListenerBuilder::handshake_timeout)
///   (default 10 s);
/// - at most [`max_handshakes`](MtlsListenerBuilder::max_handshakes) are in progress at once
///   (default 256); beyond that, new connections wait in the kernel's accept queue;
/// - accept and handshake errors are logged and never end the listener: client faults at `debug`
///   (with the peer address and the TLS alert), resource exhaustion at `error`;
/// - the verified chain is parsed once into a [`ClientCert`], carried by the [`MtlsStream`];
/// - its TLS configuration can be swapped while it runs ([`reload_handle`](Self::reload_handle)).
///
/// With the `axum` feature it is an `axum::serve::Listener`; see [`crate::serve`] for how each
/// request gets the connection's `ClientCert`. For a hand-written hyper-util loop, call
/// [`accept`](Self::accept) and wrap your service in [`AddClientCert`](crate::AddClientCert).
pub struct MtlsListener {
    local_addr: SocketAddr,
    cell: Arc<ConfigCell>,
    /// Until the first `accept`, which starts the accept loop inside the runtime.
    pending: Option<Settings>,
    running: Option<Running>,
}

struct Running {
    /// The connections for `accept`; `None` when they are served in place (`serve_each`).
    incoming: Option<mpsc::Receiver<(MtlsStream, SocketAddr)>>,
    task: JoinHandle<()>,
    expiry_watch: JoinHandle<()>,
}

struct Settings {
    tcp: TcpListener,
    handshake_timeout: Duration,
    max_handshakes: usize,
}

impl fmt::Debug for MtlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsListener")
            .field("local_addr", &self.local_addr)
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

/// Configures an [`MtlsListener`].
#[must_use]
pub struct MtlsListenerBuilder {
    tcp: TcpListener,
    config: MtlsConfig,
    handshake_timeout: Duration,
    max_handshakes: usize,
    close_on_reload: bool,
}

impl fmt::Debug for MtlsListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsListenerBuilder")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_handshakes", &self.max_handshakes)
            .finish_non_exhaustive()
    }
}

impl MtlsListenerBuilder {
    /// How long a client has to complete the handshake (default 10 s). A zero duration is taken
    /// as the default rather than refusing every client.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = if timeout.is_zero() {
            DEFAULT_HANDSHAKE_TIMEOUT
        } else {
            timeout
        };
        self
    }

    /// At most this many handshakes in progress at once (default 256; at least 1).
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.max_handshakes = max.max(1);
        self
    }

    /// On every [reload](MtlsListener::reload_handle), close the connections established under
    /// the previous configuration (each ends when it next waits for a request), so that a revoked
    /// or removed client loses access at once instead of at its next connection.
    pub fn close_connections_on_reload(mut self) -> Self {
        self.close_on_reload = true;
        self
    }

    /// The listener. It starts accepting on its first [`accept`](MtlsListener::accept).
    pub fn build(self) -> io::Result<MtlsListener> {
        Ok(MtlsListener {
            local_addr: self.tcp.local_addr()?,
            cell: Arc::new(ConfigCell::new(self.config, self.close_on_reload)),
            pending: Some(Settings {
                tcp: self.tcp,
                handshake_timeout: self.handshake_timeout,
                max_handshakes: self.max_handshakes,
            }),
            running: None,
        })
    }
}

impl MtlsListener {
    /// Binds a TCP listener on `addr` and serves mutual TLS with `config` (an
    /// [`MtlsConfig`](crate::MtlsConfig) or any `Arc<rustls::ServerConfig>`), with the default
    /// timeout and bound.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: impl Into<MtlsConfig>,
    ) -> io::Result<MtlsListener> {
        MtlsListener::builder(TcpListener::bind(addr).await?, config).build()
    }

    /// Configures a listener on an already bound TCP listener.
    pub fn builder(tcp: TcpListener, config: impl Into<MtlsConfig>) -> MtlsListenerBuilder {
        MtlsListenerBuilder {
            tcp,
            config: config.into(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            close_on_reload: false,
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

    /// The next connection whose TLS handshake succeeded, with the peer's address. Never fails:
    /// errors are logged and the listener goes on.
    pub async fn accept(&mut self) -> (MtlsStream, SocketAddr) {
        if self.running.is_none() {
            let (tx, rx) = mpsc::channel(self.pending.as_ref().map_or(1, |p| p.max_handshakes));
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
}

/// Warns every six hours while the server certificate is close to expiry.
async fn expiry_watch(cell: Arc<ConfigCell>) {
    let mut tick = tokio::time::interval(Duration::from_secs(6 * 3600));
    loop {
        tick.tick().await;
        cell.warn_if_expiring();
    }
}

/// Serves one connection to its end, in the task that did its handshake.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) type ServeConnection = Arc<
    dyn Fn(MtlsStream, SocketAddr) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>>
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

    async fn deliver(&self, stream: MtlsStream, peer: SocketAddr) {
        match self {
            Sink::Channel(tx) => {
                let _ = tx.send((stream, peer)).await;
            }
            Sink::Serve(serve) => serve(stream, peer).await,
        }
    }
}

#[cfg_attr(not(feature = "axum"), allow(dead_code))]
impl MtlsListener {
    /// Runs the accept loop, serving each connection with `serve` in the task that completed its
    /// handshake, until `signal`; then stops accepting and returns. Used by [`crate::serve`].
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
        // Dropping the listener aborts the accept loop: no new connections.
        Ok(())
    }

    /// Starts the accept loop (and the expiry warnings) inside the runtime, once.
    fn start(&mut self, sink: Sink, incoming: Option<mpsc::Receiver<(MtlsStream, SocketAddr)>>) {
        if let Some(settings) = self.pending.take() {
            self.running = Some(Running {
                incoming,
                task: tokio::spawn(accept_loop(settings, self.cell.clone(), sink)),
                expiry_watch: tokio::spawn(expiry_watch(self.cell.clone())),
            });
        }
    }
}

async fn accept_loop(settings: Settings, cell: Arc<ConfigCell>, sink: Sink) {
    let Settings {
        tcp,
        handshake_timeout,
        max_handshakes,
    } = settings;
    let handshakes = Arc::new(Semaphore::new(max_handshakes));
    loop {
        // Wait for a handshake slot before accepting, so that a flood of clients queues in the
        // kernel instead of in this process.
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (tcp_stream, peer) = match tcp.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                handle_accept_error(&e).await;
                continue;
            }
        };
        if sink.is_closed() {
            return;
        }
        let _ = tcp_stream.set_nodelay(true);
        // The configuration current at accept time: a reload affects the next connection.
        let acceptor = TlsAcceptor::from(cell.server_config());
        let closer = cell.closer();
        let sink = sink.clone();
        tokio::spawn(async move {
            let result = tokio::time::timeout(
                handshake_timeout,
                acceptor.accept(tcp_stream).into_fallible(),
            )
            .await;
            drop(permit);
            let tls = match result {
                Err(_) => {
                    tracing::debug!(
                        target: "mtls_tower::listener",
                        %peer,
                        timeout = ?handshake_timeout,
                        "TLS handshake timed out"
                    );
                    return;
                }
                Ok(Err((e, tcp_stream))) => {
                    log_handshake_error(peer, &e);
                    lingering_close(tcp_stream).await;
                    return;
                }
                Ok(Ok(tls)) => tls,
            };
            let client_cert = match tls.get_ref().1.peer_certificates() {
                Some(chain) if !chain.is_empty() => match ClientIdentity::from_der_chain(chain) {
                    Ok(id) => Some(ClientCert::from_handshake(Arc::new(id))),
                    Err(e) => {
                        // Verified by rustls but unreadable to us: refuse the connection rather than
                        // serve it as if it had no certificate.
                        tracing::warn!(
                            target: "mtls_tower::listener",
                            %peer,
                            error = %e,
                            "closing connection: verified client certificate could not be parsed"
                        );
                        return;
                    }
                },
                _ => None,
            };
            let stream = MtlsStream {
                inner: tls,
                client_cert,
                closer,
                closed_by_reload: false,
            };
            sink.deliver(stream, peer).await;
        });
    }
}

/// Closes a connection whose handshake failed so that the client can read the alert rustls just
/// sent: send FIN, then read and discard what the client had in flight (in TLS 1.3 it may already
/// have sent its Finished and a request) for a moment. Closing with unread data would make the
/// kernel answer with a reset, and a reset can destroy the alert before the client reads it.
async fn lingering_close(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const LINGER: Duration = Duration::from_secs(1);
    const MAX_DISCARD: usize = 64 * 1024;
    let _ = tcp.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut buf = [0u8; 4096];
        let mut discarded = 0;
        while discarded < MAX_DISCARD {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

async fn handle_accept_error(e: &io::Error) {
    use io::ErrorKind::*;
    match e.kind() {
        // The client went away between SYN and accept: its problem, not ours.
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted => {
            tracing::debug!(target: "mtls_tower::listener", error = %e, "accept failed");
        }
        // Out of file descriptors or memory: back off instead of spinning.
        _ => {
            tracing::error!(target: "mtls_tower::listener", error = %e, "accept failed; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn log_handshake_error(peer: SocketAddr, e: &io::Error) {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let alert = tls.and_then(sent_alert);
    tracing::debug!(
        target: "mtls_tower::listener",
        %peer,
        error = %e,
        alert = alert.map(tracing::field::debug),
        "TLS handshake failed"
    );
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
}

impl MtlsStream {
    /// The verified client certificate, parsed once for this connection; `None` when the client
    /// sent none (possible only with optional client authentication).
    pub fn client_cert(&self) -> Option<&ClientCert> {
        self.client_cert.as_ref()
    }

    /// The TLS stream.
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        &self.inner
    }

    /// The TLS stream and the client certificate.
    pub fn into_parts(self) -> (TlsStream<TcpStream>, Option<ClientCert>) {
        (self.inner, self.client_cert)
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
        Pin::new(&mut self.inner).poll_read(cx, buf)
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
