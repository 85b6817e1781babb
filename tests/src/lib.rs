//! Harness for the end-to-end tests in `tests/`: a test PKI with a server certificate, an mTLS
//! axum server on 127.0.0.1 with a port of its own, temporary folders for PEM files. The client
//! side is `mtls_tower::testing::TestClient`, the one users get.

#![allow(clippy::unwrap_used)]

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response};
use mtls_core::testing::{TestCert, TestPki};
use mtls_tower::RequestBody;
use mtls_tower::{MtlsConfig, MtlsConfigBuilder, MtlsListener, MtlsListenerBuilder};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
        let server = pki.ca.server_cert("localhost");
        Pki { pki, server }
    }

    /// A config builder with this PKI's server certificate and `pki.ca` as the client CA.
    pub fn config(&self) -> MtlsConfigBuilder {
        MtlsConfig::builder()
            .server_cert(self.server.chain().to_vec(), self.server.key_der())
            .client_ca_certs(vec![self.pki.ca.cert_der().clone()])
    }
}

/// `pki.ca`, `pki.rogue_ca`, `pki.intermediate`: the CAs, without spelling out `pki.pki`.
impl std::ops::Deref for Pki {
    type Target = TestPki;

    fn deref(&self) -> &TestPki {
        &self.pki
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

/// A listener on 127.0.0.1 (an unused port) with `config`, its builder adjusted by `configure`
/// (`|b| b.handshake_timeout(..)`); hand it to [`Server::start_with`].
pub async fn listener(
    config: MtlsConfig,
    configure: impl FnOnce(MtlsListenerBuilder) -> MtlsListenerBuilder,
) -> MtlsListener {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    configure(MtlsListener::builder(tcp, config))
        .build()
        .unwrap()
}

impl Server {
    /// Serves `app` (an axum `Router`, a tonic `Routes`, ...) with `config` on 127.0.0.1 (an
    /// unused port).
    pub async fn start<S, B>(config: MtlsConfig, app: S) -> Server
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        Server::start_with(listener(config, |b| b).await, app)
    }

    /// Serves `app` on an already built listener.
    pub fn start_with<S, B>(listener: MtlsListener, app: S) -> Server
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
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

    /// Writes `cert`'s chain to `{name}.pem` and its key to `{name}.key`; returns both paths.
    pub fn write_cert(&self, name: &str, cert: &TestCert) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{name}.pem"), &cert.chain_pem()),
            self.write(&format!("{name}.key"), cert.key_pem()),
        )
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

/// A TLS connection to `addr` with `client`'s settings but ALPN `h2`, handshake done.
pub async fn h2_tls(
    client: &mtls_tower::testing::TestClient,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = (*client.config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

/// An HTTP/2 client connection (hyper over rustls, ALPN `h2`) to `addr` with `client`'s settings,
/// its driver spawned; the join handle ends with the connection.
pub async fn h2_client<B>(
    client: &mtls_tower::testing::TestClient,
    addr: SocketAddr,
) -> (hyper::client::conn::http2::SendRequest<B>, JoinHandle<()>)
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tls = h2_tls(client, addr).await;
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driver)
}

/// A request body of `left` bytes that then never ends: the upload of a peer that stops.
#[derive(Debug)]
pub struct NeverFinished {
    /// Bytes still to send before going quiet.
    pub left: usize,
}

static CHUNK: [u8; 16 * 1024] = [7u8; 16 * 1024];

impl http_body::Body for NeverFinished {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Pending;
        }
        let n = self.left.min(CHUNK.len());
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            &CHUNK[..n],
        )))))
    }
}

/// A gRPC message header announcing `len` bytes, then `sent` of them, then nothing more: an
/// unfinished gRPC message. (All `7`s: not a valid protobuf, which tonic finds out only once the
/// message is complete.)
#[derive(Debug)]
pub struct GrpcPrefixed {
    header: Option<bytes::Bytes>,
    rest: NeverFinished,
}

impl GrpcPrefixed {
    /// The header for `len` bytes, then `sent` bytes of the message.
    pub fn new(len: u32, sent: usize) -> GrpcPrefixed {
        let mut header = vec![0u8];
        header.extend_from_slice(&len.to_be_bytes());
        GrpcPrefixed {
            header: Some(bytes::Bytes::from(header)),
            rest: NeverFinished { left: sent },
        }
    }
}

impl http_body::Body for GrpcPrefixed {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if let Some(h) = self.header.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(h))));
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A gRPC call over HTTP/2 with an empty message, and everything the server answered: status,
/// headers in their order (without `date`), body bytes and trailers.
pub async fn grpc_exchange(
    client: &mtls_tower::testing::TestClient,
    addr: SocketAddr,
    path: &str,
) -> String {
    let (mut send, _driver) = h2_client::<http_body_util::Full<bytes::Bytes>>(client, addr).await;
    let request = http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ])))
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    let mut out = format!("{}\n", response.status());
    for (name, value) in response.headers() {
        if name != "date" {
            out += &format!("{name}: {}\n", value.to_str().unwrap());
        }
    }
    let collected = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    let trailers = collected.trailers().cloned();
    out += &format!("body {:?}\n", collected.to_bytes());
    if let Some(trailers) = trailers {
        for (name, value) in &trailers {
            out += &format!("trailer {name}: {}\n", value.to_str().unwrap());
        }
    }
    out
}

/// Reads until the server closes the connection (EOF or an error such as a reset); returns how
/// long that took, or `None` if it stayed open for `patience`.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    patience: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    let read_to_close = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(patience, read_to_close)
        .await
        .ok()
        .map(|()| started.elapsed())
}

/// Starts `n` gRPC calls to `path` on `send`, each a 4 MiB message that never finishes; abort the
/// returned tasks to end them.
pub fn unfinished_grpc_calls(
    send: &hyper::client::conn::http2::SendRequest<GrpcPrefixed>,
    path: &str,
    n: usize,
) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let mut send = send.clone();
            let request = http::Request::post(format!("https://localhost{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(GrpcPrefixed::new(4 << 20, (4 << 20) - 1))
                .unwrap();
            tokio::spawn(async move {
                send.ready().await.unwrap();
                let _ = send.send_request(request).await;
            })
        })
        .collect()
}

/// Log lines in memory: a `tracing_subscriber` writer for tests that read what was logged.
#[derive(Clone, Default, Debug)]
pub struct LogLines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    /// Captures what the current thread logs (at INFO and above) until the guard is dropped.
    /// On a current-thread runtime that is the test's server and client, and nothing of the
    /// tests running beside it.
    pub fn capture_thread() -> (LogLines, tracing::subscriber::DefaultGuard) {
        // tracing-core 0.1 computes a callsite's interest from the *registering thread's*
        // default when only one dispatcher exists. A log line first reached by another test's
        // thread (no subscriber) would then be cached as "never" for every thread, this one
        // included, and vanish from the capture. A second dispatcher, alive for the whole
        // process, makes tracing ask every registered dispatcher instead.
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let lines = LogLines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (lines, tracing::subscriber::set_default(subscriber))
    }

    /// Captures what the whole process logs at `level` and above (one per test binary).
    pub fn capture_process(level: tracing::Level) -> LogLines {
        let lines = LogLines::default();
        let writer = lines.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        lines
    }

    /// The lines that contain `text`.
    pub fn matching(&self, text: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
    }
}

/// The workspace README's Rust examples, compiled (and run, unless marked `no_run`) as doc tests.
/// They live here, in a crate that is never published, because the README is outside every
/// published package.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadmeDoctests;

/// mtls-macros' README, compiled as a doc test here: its example needs mtls-tower, which
/// mtls-macros cannot depend on (mtls-tower depends on it).
#[cfg(doctest)]
#[doc = include_str!("../../mtls-macros/README.md")]
pub struct MacrosReadmeDoctests;
