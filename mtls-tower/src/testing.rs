//! Testing mutual TLS (feature `testing`): the test PKI of `mtls-core`, plus a small HTTPS client
//! that presents a chosen client certificate (or none) and reports how a server answered: a status
//! and body, or the TLS error (naming the alert) that refused it.
//!
//! ```
//! use axum::{routing::get, Router};
//! use mtls_tower::testing::{Outcome, TestClient, TestPki};
//! use mtls_tower::{MtlsConfig, MtlsListener};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let pki = TestPki::new();
//! let server_cert = pki.ca.server_cert("localhost");
//! let config = MtlsConfig::builder()
//!     .server_cert(server_cert.chain().to_vec(), server_cert.key_der())
//!     .client_ca_certs(vec![pki.ca.cert_der().clone()])
//!     .build()
//!     .unwrap();
//! let listener = MtlsListener::bind("127.0.0.1:0", config).await.unwrap();
//! let addr = listener.local_addr();
//! tokio::spawn(mtls_tower::serve(listener, Router::new().route("/", get(|| async { "hi" }))));
//!
//! let alice = pki.ca.leaf().common_name("alice").build();
//! let client = TestClient::new(&pki.ca).with_cert(&alice);
//! assert_eq!(client.get(addr, "/").await, Outcome::Status(200, "hi".into()));
//!
//! let mallory = pki.rogue_ca.leaf().build();
//! let refused = TestClient::new(&pki.ca).with_cert(&mallory).get(addr, "/").await;
//! assert!(refused.refused_with("UnknownCA"), "{refused:?}");
//! # });
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub use mtls_core::testing::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How a request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status and body.
    Status(u16, String),
    /// The TLS connection failed; the text is the client's error, which names the alert received
    /// (for rustls: `received fatal alert: UnknownCA`).
    Refused(String),
}

impl Outcome {
    /// The status code, if the request got an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Status(s, _) => Some(*s),
            Outcome::Refused(_) => None,
        }
    }

    /// Whether the TLS connection failed with an error mentioning `text`.
    pub fn refused_with(&self, text: &str) -> bool {
        matches!(self, Outcome::Refused(e) if e.contains(text))
    }
}

/// A minimal HTTPS/1.1 client on rustls (ring) for tests: trusts one server CA, presents a client
/// certificate or none, one request per connection, expects the server to be `localhost`.
#[derive(Debug, Clone)]
pub struct TestClient {
    server_ca: rustls::pki_types::CertificateDer<'static>,
    cert: Option<TestCert>,
    tls12_only: bool,
    config: Arc<rustls::ClientConfig>,
}

impl TestClient {
    /// A client that trusts `server_ca`, offers TLS 1.3 and 1.2 and presents no certificate.
    pub fn new(server_ca: &TestCa) -> TestClient {
        TestClient::build(server_ca.cert_der().clone(), None, false)
    }

    /// The same client, presenting `cert` (its chain and key).
    #[must_use]
    pub fn with_cert(self, cert: &TestCert) -> TestClient {
        TestClient::build(self.server_ca, Some(cert.clone()), self.tls12_only)
    }

    /// The same client, offering only TLS 1.2.
    #[must_use]
    pub fn tls12_only(self) -> TestClient {
        TestClient::build(self.server_ca, self.cert, true)
    }

    fn build(
        server_ca: rustls::pki_types::CertificateDer<'static>,
        cert: Option<TestCert>,
        tls12_only: bool,
    ) -> TestClient {
        static BOTH: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(server_ca.clone())
            .expect("a test CA certificate is always a valid trust anchor");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(if tls12_only { TLS12 } else { BOTH })
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots);
        let mut config = match &cert {
            Some(c) => builder
                .with_client_auth_cert(c.chain().to_vec(), c.key_der())
                .expect("a test certificate and its key always match"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestClient {
            server_ca,
            cert,
            tls12_only,
            config: Arc::new(config),
        }
    }

    /// The rustls configuration, to drive other clients with the same settings.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// `GET path` on a new connection (`Connection: close`).
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Outcome {
        self.get_with_headers::<&str, &str>(addr, path, &[]).await
    }

    /// `GET path` with extra request headers, on a new connection (to test, say, that forged
    /// forwarded-certificate headers are ignored).
    pub async fn get_with_headers<K: AsRef<str>, V: AsRef<str>>(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: &[(K, V)],
    ) -> Outcome {
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{}: {}\r\n", k.as_ref(), v.as_ref()))
            .collect();
        match self.get_inner(addr, path, &extra).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Refused(e.to_string()),
        }
    }

    /// A TLS connection to `addr` (server name `localhost`) with this client's settings, for tests
    /// that write their own bytes.
    ///
    /// # Errors
    /// When connecting or the handshake fails as the client sees it. In TLS 1.3 the server judges
    /// the client certificate after the client considers the handshake done, so a refused
    /// certificate shows at the first read, as an alert.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        TlsConnector::from(self.config.clone())
            .connect(server_name, tcp)
            .await
    }

    async fn get_inner(
        &self,
        addr: SocketAddr,
        path: &str,
        extra_headers: &str,
    ) -> io::Result<Outcome> {
        let mut tls = self.connect(addr).await?;
        tls.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{extra_headers}\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut response = Vec::new();
        // In TLS 1.3 the server judges the client certificate after the client considers the
        // handshake done, so a refusal arrives here, as an alert while reading.
        tls.read_to_end(&mut response).await?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("not an HTTP response: {text:?}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok(Outcome::Status(status, body))
    }
}
