//! The servers (child processes): the Rust servers this binary runs when re-executed with `--server KIND`.

use super::*;

/// The router-wide policy of `mtls`, also checked by `naive`: three rules.
pub(crate) fn layer_policy() -> Policy {
    Policy::all([
        Policy::trust_domain("prod.example").expect("a valid trust domain"),
        Policy::san("*.billing.internal").expect("a valid DNS pattern"),
        !Policy::ou("contractors").expect("a valid OU"),
    ])
    .expect("three rules")
}

/// Everything `mtls` checks on the route the client hits (the layer's policy and the route's),
/// for `naive` to check by hand.
pub(crate) fn naive_policy() -> Policy {
    layer_policy().and(Policy::spiffe_path_prefix("/ns/billing").expect("a valid prefix"))
}

/// The handler of `bare` and `naive`.
pub(crate) async fn plain_handler() -> &'static str {
    BODY
}

/// The handler of `mtls`: the route's own policy on top of the router-wide layer.
#[require_cert(spiffe_path_prefix = "/ns/billing")]
pub(crate) async fn guarded_handler() -> &'static str {
    BODY
}

/// `POST /upload` (for `--hostile`'s greedy uploads): buffers the whole body, up to 8 MiB, as
/// axum's `Bytes` extractor does.
pub(crate) fn upload_route() -> axum::routing::MethodRouter {
    axum::routing::post(|body: Bytes| async move { body.len().to_string() })
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024))
}

/// The router of `bare` and `naive`.
pub(crate) fn plain_app() -> Router {
    Router::new()
        .route(PATH, get(plain_handler))
        .route("/upload", upload_route())
}

/// The router of `mtls`.
pub(crate) fn mtls_app() -> Router {
    Router::new()
        .route(PATH, get(guarded_handler))
        .route("/upload", upload_route())
        .layer(RequireClientCertLayer::new(layer_policy()))
}

/// A server process: builds the configuration, binds 127.0.0.1:0, prints `port N` on stdout and
/// serves until its stdin is closed (by the parent, or because the parent died).
pub(crate) fn server_main(kind: ServerKind, pki_dir: &Path) -> ExitCode {
    let config = match mtls_config(pki_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest server {}: {e}", kind.name());
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        // The listen backlog: what `MtlsListener::bind` asks for in the `mtls` servers, tokio's
        // `TcpListener::bind` 1,024 in the hand-written ones; `LOADTEST_BACKLOG=N` sets it for all.
        let backlog = match std::env::var("LOADTEST_BACKLOG")
            .ok()
            .map(|b| b.parse::<u32>())
        {
            Some(Ok(backlog)) => backlog,
            Some(Err(e)) => {
                eprintln!("loadtest server {}: LOADTEST_BACKLOG: {e}", kind.name());
                return ExitCode::FAILURE;
            }
            None => match kind {
                ServerKind::Mtls | ServerKind::MtlsLoop => {
                    mtls_tower::limits::DEFAULT_LISTEN_BACKLOG
                }
                _ => 1024,
            },
        };
        let bound = tokio::net::TcpSocket::new_v4().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            s.listen(backlog)
        });
        let tcp = match bound {
            Ok(l) => l,
            Err(e) => {
                eprintln!("loadtest server {}: bind 127.0.0.1:0: {e}", kind.name());
                return ExitCode::FAILURE;
            }
        };
        let port = tcp.local_addr().expect("a bound address").port();
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "port {port}");
        let _ = stdout.flush();
        let result = match kind {
            ServerKind::Bare => {
                let acceptor = TlsAcceptor::from(config.server_config());
                serve_by_hand(tcp, acceptor, PerConnection::Nothing).await;
                Ok(())
            }
            ServerKind::Naive => {
                let acceptor = TlsAcceptor::from(config.server_config());
                let policy = Arc::new(naive_policy());
                serve_by_hand(tcp, acceptor, PerConnection::ParseEveryRequest(policy)).await;
                Ok(())
            }
            ServerKind::ParseOnce => {
                let acceptor = TlsAcceptor::from(config.server_config());
                serve_by_hand(tcp, acceptor, PerConnection::ParseOnce).await;
                Ok(())
            }
            ServerKind::MtlsLoop => match MtlsListener::builder(tcp, config).build() {
                Ok(listener) => {
                    serve_mtls_loop(listener).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            ServerKind::Mtls => match MtlsListener::builder(tcp, config).build() {
                Ok(listener) => mtls_tower::serve(listener, mtls_app()).await,
                Err(e) => Err(e),
            },
            ServerKind::Nginx | ServerKind::MtlsBefore => Err(std::io::Error::other(
                "nginx and mtls-before are not servers of this binary",
            )),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadtest server {}: {e}", kind.name());
                ExitCode::FAILURE
            }
        }
    })
}

/// What the hand-written server does with a connection's client certificate.
pub(crate) enum PerConnection {
    /// Nothing (`bare`).
    Nothing,
    /// Parses it on every request and checks this policy (`naive`).
    ParseEveryRequest(Arc<Policy>),
    /// Parses it once into a `ClientCert` for `mtls`'s router (`parse-once`).
    ParseOnce,
}

/// The hand-written server of `bare`, `naive` and `parse-once`: accept, then in a task per
/// connection the TLS handshake and hyper-util's `auto::Builder` serving an axum router.
pub(crate) async fn serve_by_hand(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    per_connection: PerConnection,
) {
    let per_connection = Arc::new(per_connection);
    let app = match *per_connection {
        PerConnection::ParseOnce => mtls_app(),
        _ => plain_app(),
    };
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Once: under `--hostile`'s hoarding this is every 10 ms.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| eprintln!("bare server: accept: {e} (said once)"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // As MtlsListener does.
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let per_connection = per_connection.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let chain: Arc<[rustls::pki_types::CertificateDer<'static>]> = match *per_connection {
                PerConnection::Nothing => Arc::from(Vec::new()),
                _ => tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.to_vec().into())
                    .unwrap_or_else(|| Arc::from(Vec::new())),
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let io = TokioIo::new(tls);
            let _ = match &*per_connection {
                PerConnection::Nothing => {
                    builder
                        .serve_connection(io, TowerToHyperService::new(app))
                        .await
                }
                PerConnection::ParseEveryRequest(policy) => {
                    let policy = policy.clone();
                    let service = tower::service_fn(move |req: Request<Incoming>| {
                        naive_check(&chain, &policy, app.clone(), req)
                    });
                    builder
                        .serve_connection(io, TowerToHyperService::new(service))
                        .await
                }
                PerConnection::ParseOnce => {
                    let Ok(identity) = ClientIdentity::from_der_chain(&chain) else {
                        return;
                    };
                    let cert = ClientCert::from_handshake(Arc::new(identity));
                    let service = AddClientCert::new(app, Some(cert)).with_remote_addr(peer);
                    builder
                        .serve_connection(io, TowerToHyperService::new(service))
                        .await
                }
            };
        });
    }
}

/// `mtls-loop`: `MtlsListener` (handshake in its own task, identity parsed once) and a
/// hand-written hyper-util loop, as `AddClientCert`'s documentation shows.
pub(crate) async fn serve_mtls_loop(mut listener: MtlsListener) {
    let app = mtls_app();
    loop {
        let (stream, peer) = listener.accept().await;
        let service =
            AddClientCert::new(app.clone(), stream.client_cert().cloned()).with_remote_addr(peer);
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
        });
    }
}

/// `naive`'s per-request work: parse the peer's chain into an identity, evaluate the policy,
/// then call the router or answer 403.
pub(crate) fn naive_check(
    chain: &[rustls::pki_types::CertificateDer<'static>],
    policy: &Policy,
    app: Router,
    req: Request<Incoming>,
) -> impl std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>> {
    let allowed = ClientIdentity::from_der_chain(chain).is_ok_and(|id| policy.allows(&id));
    async move {
        if allowed {
            tower::ServiceExt::oneshot(app, req).await
        } else {
            Ok(StatusCode::FORBIDDEN.into_response())
        }
    }
}
