//! Harness for the end-to-end tests in `tests/`: a test PKI written to a temporary folder, an
//! mTLS axum server on 127.0.0.1 with a port of its own, and a minimal HTTPS/1.1 client on rustls
//! that presents a chosen client certificate (or none) and reports how the server answered: a
//! status code, or the TLS alert that refused it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mtls_core::testing::{TestCa, TestCert, TestPki};
use mtls_tower::{MtlsConfig, MtlsConfigBuilder, MtlsListener};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// A throwaway PKI plus a server certificate for `localhost`.
#[derive(Debug)]
pub struct Pki {
    /// The CAs: `ca` (trusted for clients and the server), `intermediate` under it, `rogue_ca`.
    pub pki: TestPki,
    /// The server's certificate, issued by `pki.ca` for `localhost` and 127.0.0.1.
    pub server: TestCert,
}

impl Pki {
    /// Generates the PKI.
    pub fn new() -> Pki {
        let pki = TestPki::new();
        let server = pki
            .ca
            .leaf()
            .common_name("localhost")
            .dns("localhost")
            .ip("127.0.0.1".parse().unwrap())
            .ekus(&[mtls_core::Oid::SERVER_AUTH])
            .build();
        Pki { pki, server }
    }

    /// A config builder with this PKI's server certificate and `pki.ca` as the client CA.
    pub fn config(&self) -> MtlsConfigBuilder {
        MtlsConfig::builder()
            .server_cert(self.server.chain().to_vec(), self.server.key_der())
            .client_ca_certs(vec![self.pki.ca.cert_der().clone()])
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A running mTLS server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Serves `app` with `config` on 127.0.0.1 (an unused port).
    pub async fn start(config: MtlsConfig, app: Router) -> Server {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Server::start_with(MtlsListener::builder(tcp, config).build().unwrap(), app)
    }

    /// Serves `app` on an already built listener.
    pub fn start_with(listener: MtlsListener, app: Router) -> Server {
        let addr = listener.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(mtls_tower::serve_with_shutdown(listener, app, async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            shutdown: Some(tx),
            task,
        }
    }

    /// Shuts down gracefully and waits for it.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status and body.
    Status(u16, String),
    /// The TLS connection failed; the text is rustls's error (it names the alert received, such as
    /// `received fatal alert: UnknownCA`).
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

    /// Whether the TLS connection failed with a message containing `text`.
    pub fn refused_with(&self, text: &str) -> bool {
        matches!(self, Outcome::Refused(e) if e.contains(text))
    }
}

/// Which protocol versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.3 and 1.2.
    Default,
    /// TLS 1.2 only.
    Tls12Only,
}

/// A TLS client trusting `server_ca`, presenting `client` (or no certificate).
pub fn client_config(
    server_ca: &TestCa,
    client: Option<&TestCert>,
    versions: Versions,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    static BOTH: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(match versions {
            Versions::Default => BOTH,
            Versions::Tls12Only => TLS12,
        })
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain().to_vec(), cert.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// `GET path` over a new TLS connection, `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str, config: Arc<rustls::ClientConfig>) -> Outcome {
    match get_inner(addr, path, config).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

async fn get_inner(
    addr: SocketAddr,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> io::Result<Outcome> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    // In TLS 1.3 the server judges the client certificate after the client thinks the handshake is
    // done, so a refusal shows up here, as an alert while reading.
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

/// A temporary folder, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a new empty folder under the system temporary folder.
    pub fn new(label: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mtls-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` in the folder and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The resident set size of this process, in KiB (Linux; `None` elsewhere).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Waits `d` (for tests that need a client to be slow).
pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}
