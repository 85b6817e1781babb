//! Serving an HTTP service (an axum `Router`, a tonic `Routes`) over mutual TLS (features `server`
//! + `axum`).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::IncomingStream;
use http::{Request, Response};
use hyper::body::Incoming;
use tower_service::Service;

use super::connection::AddClientCert;
use super::listener::{MtlsListener, MtlsStream, ServeConnection};

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

impl axum::serve::Listener for MtlsListener {
    type Io = MtlsStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        MtlsListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(MtlsListener::local_addr(self))
    }
}

/// Serves `app` over mutual TLS until Ctrl-C (or SIGTERM on Unix), then shuts down gracefully:
/// stops accepting and lets in-flight requests finish.
///
/// `app` is an axum `Router` or any other HTTP service: a tonic `Routes` (gRPC, feature
/// `tonic`; see [`grpc`](crate::grpc)), or a Tower stack around either.
///
/// ```no_run
/// # async fn run(listener: mtls_tower::MtlsListener, app: axum::Router) -> std::io::Result<()> {
/// mtls_tower::serve(listener, app).await
/// # }
/// ```
pub async fn serve<S, B>(listener: MtlsListener, app: S) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with_shutdown(listener, app, shutdown_signal()).await
}

/// Serves `app` over mutual TLS until `signal` completes, then shuts down gracefully: stops
/// accepting, lets in-flight requests finish and closes idle connections.
///
/// Each connection is served (HTTP/1.1 or HTTP/2; gRPC clients speak HTTP/2) in the task that
/// completed its TLS handshake, with the connection's [`ClientCert`](crate::ClientCert) on every
/// request. `app` is called once per request; an error it returns resets that request's HTTP/2
/// stream, or closes an HTTP/1.1 connection (axum's `Router` and tonic's `Routes` never return
/// one).
///
/// # Errors
/// When [`MtlsListener::accept`] was already called on `listener` (its connections go to
/// `accept`, so there would be nothing to serve).
pub async fn serve_with_shutdown<S, B, F>(
    listener: MtlsListener,
    app: S,
    signal: F,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;

    // Graceful shutdown: each connection holds a receiver; shutdown signals them and waits until
    // every one is dropped (its connection finished).
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(());
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // The closure is shared by the handshake tasks, so it must be `Sync`; many services are not
    // (tower's `BoxCloneService`), so the app is cloned under a lock, once per connection.
    let app = std::sync::Mutex::new(app);
    let serve: ServeConnection = Arc::new(move |stream: MtlsStream, peer| {
        let app = app
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let service = AddClientCert::for_stream(app, &stream, peer);
        let builder = builder.clone();
        let mut shutdown = shutdown_rx.clone();
        Box::pin(async move {
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(target: "mtls_tower::serve", %peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.changed() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        })
    });
    listener.serve_each(serve, signal).await?;
    tracing::info!(target: "mtls_tower::serve", "stopped accepting; waiting for open connections to finish");
    let _ = shutdown_tx.send(());
    shutdown_tx.closed().await;
    Ok(())
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
