//! What a newcomer meets in the logs in the first hour.
//!
//! `axum::serve` over an `MtlsListener`: with `MtlsMakeService` requests carry the certificate;
//! without it (it compiles, and every request gets 401) the listener says why, once, and how to
//! fix it. A plain TCP listener gets the layer's own 401 and no such warning. A server
//! certificate close to its end is reported once at startup, not twice.
//!
//! Each test runs on a current-thread runtime with a thread-local subscriber, so that its server
//! and client log into that test's lines only.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use mtls_tests::{listener, LogLines, Pki, Server};
use mtls_tower::testing::{Outcome, TestClient};
use mtls_tower::{ClientCert, MtlsMakeService, RequireClientCertLayer};

const WARNING: &str = "served by axum::serve without MtlsMakeService";

fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|cert: ClientCert| async move { cert.subject().to_string() }),
        )
        .layer(RequireClientCertLayer::any_verified())
}

#[tokio::test]
async fn axum_serve_without_mtls_make_service_warns_once_and_names_the_fix() {
    let (lines, _guard) = LogLines::capture_thread();
    let pki = Pki::new();
    let listener = listener(pki.config().build().unwrap(), |b| b).await;
    let addr = listener.local_addr();
    // The trap: it compiles, and the handshake verifies the certificate.
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });

    let client = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().common_name("alice").build());
    for _ in 0..3 {
        assert_eq!(client.get(addr, "/").await.status(), Some(401));
    }
    assert_eq!(
        lines.matching(WARNING).len(),
        1,
        "one warning for three connections"
    );
    assert_eq!(
        lines.matching("mtls_tower::serve(listener, app)` or `axum::serve(listener, MtlsMakeService::new(app))")
            .len(),
        1,
        "the warning names both fixes"
    );
    server.abort();
}

#[tokio::test]
async fn axum_serve_with_mtls_make_service_serves_the_certificate_without_a_warning() {
    let (lines, _guard) = LogLines::capture_thread();
    let pki = Pki::new();
    let listener = listener(pki.config().build().unwrap(), |b| b).await;
    let addr = listener.local_addr();
    let server =
        tokio::spawn(async move { axum::serve(listener, MtlsMakeService::new(app())).await });

    let client = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().common_name("alice").build());
    assert_eq!(
        client.get(addr, "/").await,
        Outcome::Status(200, "CN=alice".into())
    );
    assert_eq!(lines.matching(WARNING).len(), 0);
    server.abort();
}

#[tokio::test]
async fn a_plain_tcp_listener_gets_the_layers_401_and_no_listener_warning() {
    let (lines, _guard) = LogLines::capture_thread();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(tcp, app()).await });

    let response = http_get(addr).await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(lines.matching(WARNING).len(), 0);
    assert_eq!(
        lines
            .matching("request rejected: no verified client certificate")
            .len(),
        1
    );
    server.abort();
}

/// One plaintext HTTP/1.1 request; the whole response as text.
async fn http_get(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_server_certificate_close_to_its_end_is_reported_once_at_startup() {
    let (lines, _guard) = LogLines::capture_thread();
    let pki = Pki::new();
    // Every certificate "expires soon" within a 200-year window.
    let config = pki
        .config()
        .expiry_warning(std::time::Duration::from_secs(200 * 365 * 86_400))
        .build()
        .unwrap();
    let server = Server::start_with(listener(config, |b| b).await, app());
    // The listener's accept loop and its six-hourly expiry watch are running once a client got in.
    let client = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().common_name("alice").build());
    assert_eq!(client.get(server.addr, "/").await.status(), Some(200));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        lines.matching("the server certificate expires soon").len(),
        1
    );
    server.stop().await.unwrap();
}

/// A server with a 30 s drain timeout, so that "returns promptly" cannot mean "at the drain".
async fn drained_server(pki: &Pki, app: Router) -> Server {
    let listener = listener(pki.config().build().unwrap(), |b| {
        b.drain_timeout(Duration::from_secs(30))
    })
    .await;
    Server::start_with(listener, app)
}

/// Shutdown with `stop`, which must return long before the 30 s drain timeout.
async fn stop_promptly(server: Server) {
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown waited for the drain timeout")
        .unwrap();
}

#[tokio::test]
async fn shutdown_returns_at_once_with_no_connection_open() {
    let pki = Pki::new();
    let server = drained_server(&pki, app()).await;
    let client = pki.ca.leaf().build();
    // One request on a connection that is then closed: nothing is left open.
    let outcome = TestClient::new(&pki.ca)
        .with_cert(&client)
        .get(server.addr, "/")
        .await;
    assert_eq!(outcome.status(), Some(200));
    stop_promptly(server).await;
}

#[tokio::test]
async fn shutdown_closes_an_idle_connection_instead_of_waiting_for_it() {
    let pki = Pki::new();
    let server = drained_server(&pki, app()).await;
    let client = pki.ca.leaf().build();
    let _idle = TestClient::new(&pki.ca)
        .with_cert(&client)
        .connect(server.addr)
        .await
        .unwrap();
    stop_promptly(server).await;
}

#[tokio::test]
async fn shutdown_returns_when_the_last_request_in_flight_is_done() {
    let pki = Pki::new();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let slow = Router::new().route(
        "/slow",
        get(move || {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }
        }),
    );
    let server = drained_server(&pki, slow).await;
    let addr = server.addr;
    let client = pki.ca.leaf().build();
    let tc = TestClient::new(&pki.ca).with_cert(&client);
    let request = tokio::spawn(async move { tc.get(addr, "/slow").await });
    started_rx.await.unwrap();
    let started = std::time::Instant::now();
    stop_promptly(server).await;
    // Shutdown waited for the handler (300 ms), not less: a `stop` that returned at once would
    // leave the request to a task that outlives the server.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // And the request in flight was let finish, not cut off.
    assert_eq!(request.await.unwrap().status(), Some(200));
}
