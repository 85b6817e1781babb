//! [`AddClientCert`]: puts a connection's [`ClientCert`] on every request of that connection.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use crate::cert::ClientCert;
use crate::server::MtlsStream;

/// A per-connection service that puts the connection's [`ClientCert`] into every request, then
/// calls `inner`. A `ClientCert` the request already carried is replaced, or removed when the
/// connection has none: only the handshake speaks for the connection. With
/// [`with_remote_addr`](Self::with_remote_addr) it also inserts the peer address.
///
/// The make-service [`MtlsMakeService`](crate::MtlsMakeService) builds one per connection for
/// `axum::serve`. In a hand-written hyper-util loop, build it yourself from what
/// [`MtlsListener::accept`](crate::MtlsListener::accept) returns:
///
/// ```no_run
/// use hyper_util::rt::{TokioExecutor, TokioIo};
/// use hyper_util::server::conn::auto;
/// use hyper_util::service::TowerToHyperService;
/// use mtls_tower::{AddClientCert, MtlsListener};
///
/// # async fn run(mut listener: MtlsListener, app: axum::Router) {
/// loop {
///     let (stream, peer) = listener.accept().await; // handshake done, identity parsed once
///     let svc = AddClientCert::for_stream(app.clone(), &stream, peer);
///     tokio::spawn(async move {
///         let _ = auto::Builder::new(TokioExecutor::new())
///             .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
///             .await;
///     });
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AddClientCert<S> {
    inner: S,
    client_cert: Option<ClientCert>,
    remote_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
}

impl<S> AddClientCert<S> {
    /// Wraps `inner` for a connection whose verified certificate is `client_cert` (`None` when the
    /// client sent none).
    pub fn new(inner: S, client_cert: Option<ClientCert>) -> Self {
        AddClientCert {
            inner,
            client_cert,
            remote_addr: None,
            local_addr: None,
        }
    }

    /// Wraps `inner` for the connection `stream` from `peer` (what
    /// [`MtlsListener::accept`](crate::MtlsListener::accept) returns): its certificate, the peer
    /// address and, with the `tonic` feature, the local address.
    pub fn for_stream(inner: S, stream: &MtlsStream, peer: SocketAddr) -> Self {
        let service =
            AddClientCert::new(inner, stream.client_cert().cloned()).with_remote_addr(peer);
        // For tonic's `Request::local_addr`; one getsockname per connection, only with `tonic`.
        #[cfg(feature = "tonic")]
        let service = match stream.get_ref().get_ref().0.local_addr() {
            Ok(local) => service.with_local_addr(local),
            Err(_) => service,
        };
        service
    }

    /// Also inserts [`PeerAddr`](crate::PeerAddr)`(addr)`, with the `axum` feature
    /// `axum::extract::ConnectInfo(addr)`, and with the `tonic` feature tonic's `TcpConnectInfo`
    /// (for `Request::remote_addr`).
    #[must_use]
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// The connection's local address, for tonic's `Request::local_addr` (feature `tonic`).
    #[must_use]
    pub fn with_local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for AddClientCert<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Only the handshake speaks for the connection: whatever the request carried is replaced.
        match &self.client_cert {
            Some(cert) => {
                req.extensions_mut().insert(cert.clone());
            }
            None => {
                req.extensions_mut().remove::<ClientCert>();
            }
        }
        if let Some(addr) = self.remote_addr {
            req.extensions_mut().insert(crate::proxy::PeerAddr(addr));
            #[cfg(feature = "axum")]
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(addr));
        }
        #[cfg(feature = "tonic")]
        if self.remote_addr.is_some() || self.local_addr.is_some() {
            req.extensions_mut()
                .insert(tonic::transport::server::TcpConnectInfo {
                    local_addr: self.local_addr,
                    remote_addr: self.remote_addr,
                });
        }
        self.inner.call(req)
    }
}
