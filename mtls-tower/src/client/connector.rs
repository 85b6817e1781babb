//! [`MtlsConnector`]: an [`MtlsClientConfig`] as a connector for hyper-util's legacy `Client` and
//! tonic's `Endpoint::connect_with_connector`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use mtls_core::ClientIdentity;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tower_service::Service;

use super::{ClientReloadHandle, MtlsClientConfig};

/// Connects to a URI's host and port over TCP, then runs the mutual-TLS handshake with an
/// [`MtlsClientConfig`] (its server checks, its policy). Made by [`MtlsClientConfig::connector`].
///
/// It **always** speaks TLS, whatever the URI's scheme says: `http://` URIs are how tonic is
/// told not to add TLS of its own (`Endpoint::from_static("http://billing.internal:8443")`), and a
/// connector that fell back to plain text on `http://` would send the request unprotected.
///
/// ```no_run
/// use http_body_util::Empty;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
///
/// # async fn call(config: mtls_tower::MtlsClientConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let client: Client<_, Empty<bytes::Bytes>> =
///     Client::builder(TokioExecutor::new()).build(config.connector());
/// let response = client.get("https://billing.internal:8443/".parse()?).await?;
/// # drop(response);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MtlsConnector {
    tls: Tls,
    server_name: Option<ServerName<'static>>,
    timeout: Duration,
}

/// Where a connection's TLS configuration comes from.
#[derive(Clone)]
enum Tls {
    Fixed(TlsConnector),
    /// Read at each new connection, so that a reload reaches the next one.
    Reloadable(ClientReloadHandle),
}

/// How long a connection (TCP and the TLS handshake) may take unless
/// [`MtlsConnector::timeout`] says otherwise: a server that accepts and then says nothing must
/// not hold a caller's connection forever (hyper-util's `Client` sets no limit of its own).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for MtlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsConnector")
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl MtlsClientConfig {
    /// This configuration as a connector for hyper-util and tonic (feature `hyper-client`).
    pub fn connector(&self) -> MtlsConnector {
        MtlsConnector {
            tls: Tls::Fixed(TlsConnector::from(self.client_config())),
            server_name: None,
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl ClientReloadHandle {
    /// A connector that takes the configuration in use at each new connection: after a reload,
    /// new connections use the new one (feature `hyper-client`).
    pub fn connector(&self) -> MtlsConnector {
        MtlsConnector {
            tls: Tls::Reloadable(self.clone()),
            server_name: None,
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl MtlsConnector {
    /// How long the TCP connection and the handshake together may take
    /// ([`DEFAULT_CONNECT_TIMEOUT`] by default); past it the connection fails with
    /// `io::ErrorKind::TimedOut`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks (and sends as SNI) `name` instead of the URI's host: to connect to an address
    /// (`https://10.0.0.7:8443`) and still verify the server as `billing.internal`.
    ///
    /// # Errors
    /// When `name` is neither a DNS name nor an IP address.
    pub fn server_name(
        mut self,
        name: &str,
    ) -> Result<Self, rustls::pki_types::InvalidDnsNameError> {
        self.server_name = Some(ServerName::try_from(name.to_owned())?);
        Ok(self)
    }
}

impl Service<http::Uri> for MtlsConnector {
    type Response = MtlsClientStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<MtlsClientStream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = match &self.tls {
            Tls::Fixed(tls) => tls.clone(),
            Tls::Reloadable(handle) => TlsConnector::from(handle.client_config()),
        };
        let fixed_name = self.server_name.clone();
        let timeout = self.timeout;
        let connect = async move {
            let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
            let host = uri
                .host()
                .ok_or_else(|| invalid(format!("no host in {uri}")))?;
            // `[::1]` in a URI is the address `::1`.
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port = uri.port_u16().unwrap_or(443);
            let name = match fixed_name {
                Some(name) => name,
                None => ServerName::try_from(host.to_owned())
                    .map_err(|e| invalid(format!("{host:?} is not a server name: {e}")))?,
            };
            let tcp = TcpStream::connect((host, port)).await?;
            let _ = tcp.set_nodelay(true);
            let tls = tls.connect(name, tcp).await?;
            Ok(MtlsClientStream {
                inner: TokioIo::new(tls),
            })
        };
        Box::pin(async move {
            tokio::time::timeout(timeout, connect)
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no mutual-TLS connection within {timeout:?}"),
                    ))
                })
        })
    }
}

/// A mutual-TLS connection made by [`MtlsConnector`].
#[derive(Debug)]
pub struct MtlsClientStream {
    inner: TokioIo<TlsStream<TcpStream>>,
}

impl MtlsClientStream {
    /// The server's verified identity.
    pub fn server_identity(&self) -> Option<ClientIdentity> {
        super::server_identity(self.inner.inner().get_ref().1)
    }
}

impl Connection for MtlsClientStream {
    fn connected(&self) -> Connected {
        let connected = self.inner.inner().get_ref().0.connected();
        if self.inner.inner().get_ref().1.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for MtlsClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for MtlsClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}
