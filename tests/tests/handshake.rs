//! Mutual TLS over real sockets on 127.0.0.1: what the handshake refuses, what the layer refuses,
//! and that a slow client does not hold up others. One behaviour per test.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use mtls_core::testing::TestCert;
use mtls_core::{Oid, Policy};
use mtls_tests::{listener, Pki, Server};
use mtls_tower::testing::{Outcome, TestClient};
use mtls_tower::{ClientCert, RequireClientCertLayer};
use tokio::io::AsyncWriteExt;

fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|cert: ClientCert| async move { format!("hello {}", cert.subject()) }),
        )
        .route("/public", get(|| async { "public" }))
}

fn guarded_app() -> Router {
    app().layer(RequireClientCertLayer::new(
        Policy::san("*.billing.internal").unwrap(),
    ))
}

async fn request(pki: &Pki, server: &Server, path: &str, client: Option<&TestCert>) -> Outcome {
    let c = TestClient::new(&pki.ca);
    let c = match client {
        Some(cert) => c.with_cert(cert),
        None => c,
    };
    c.get(server.addr, path).await
}

async fn default_server(pki: &Pki) -> Server {
    Server::start(pki.config().build().unwrap(), app()).await
}

#[tokio::test]
async fn good_client_gets_200_and_its_identity() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let client = pki.ca.leaf().common_name("alice").build();
    let outcome = request(&pki, &server, "/", Some(&client)).await;
    assert_eq!(outcome, Outcome::Status(200, "hello CN=alice".into()));
}

#[tokio::test]
async fn client_from_an_intermediate_gets_200() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let client = pki.intermediate.leaf().common_name("deep").build();
    assert_eq!(
        request(&pki, &server, "/", Some(&client)).await.status(),
        Some(200)
    );
}

#[tokio::test]
async fn no_client_certificate_is_refused_at_the_handshake() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let outcome = request(&pki, &server, "/", None).await;
    assert!(outcome.refused_with("CertificateRequired"), "{outcome:?}");
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let rogue = pki.rogue_ca.leaf().common_name("alice").build();
    let outcome = request(&pki, &server, "/", Some(&rogue)).await;
    assert!(outcome.refused_with("UnknownCA"), "{outcome:?}");
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let expired = pki.ca.leaf().expired().build();
    let outcome = request(&pki, &server, "/", Some(&expired)).await;
    assert!(outcome.refused_with("CertificateExpired"), "{outcome:?}");
}

#[tokio::test]
async fn not_yet_valid_certificate_is_refused() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let early = pki.ca.leaf().not_yet_valid().build();
    let outcome = request(&pki, &server, "/", Some(&early)).await;
    assert!(
        outcome.refused_with("CertificateExpired") || outcome.refused_with("BadCertificate"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn server_auth_only_certificate_is_refused() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let server_only = pki.ca.leaf().ekus(&[Oid::SERVER_AUTH]).build();
    let outcome = request(&pki, &server, "/", Some(&server_only)).await;
    assert!(
        outcome.refused_with("UnsupportedCertificate"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn certificate_without_eku_is_refused_by_default() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let no_eku = pki.ca.leaf().no_eku().build();
    let outcome = request(&pki, &server, "/", Some(&no_eku)).await;
    assert!(
        outcome.refused_with("UnsupportedCertificate"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn certificate_without_eku_is_accepted_when_allowed() {
    let pki = Pki::new();
    let config = pki
        .config()
        .allow_missing_client_auth_eku()
        .build()
        .unwrap();
    let server = Server::start(config, app()).await;
    let no_eku = pki.ca.leaf().no_eku().build();
    assert_eq!(
        request(&pki, &server, "/", Some(&no_eku)).await.status(),
        Some(200)
    );
    // A serverAuth-only leaf stays refused: it said what it is for.
    let server_only = pki.ca.leaf().ekus(&[Oid::SERVER_AUTH]).build();
    assert!(request(&pki, &server, "/", Some(&server_only))
        .await
        .status()
        .is_none());
}

#[tokio::test]
async fn ca_certificate_used_as_a_client_leaf_is_refused() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let ca_leaf = pki.ca.leaf().ca(true).build();
    let outcome = request(&pki, &server, "/", Some(&ca_leaf)).await;
    assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
}

#[tokio::test]
async fn revoked_leaf_is_refused() {
    let pki = Pki::new();
    let revoked = pki.ca.leaf().common_name("revoked").build();
    let good = pki.ca.leaf().common_name("good").build();
    let crl = pki.ca.crl(&[&revoked.serial()]);
    let config = pki.config().crls(vec![crl.der().clone()]).build().unwrap();
    let server = Server::start(config, app()).await;
    let outcome = request(&pki, &server, "/", Some(&revoked)).await;
    assert!(outcome.refused_with("CertificateRevoked"), "{outcome:?}");
    assert_eq!(
        request(&pki, &server, "/", Some(&good)).await.status(),
        Some(200)
    );
}

#[tokio::test]
async fn revoked_intermediate_is_refused() {
    let pki = Pki::new();
    let leaf = pki.intermediate.leaf().build();
    let root_crl = pki.ca.crl(&[&pki.intermediate.serial()]);
    let intermediate_crl = pki.intermediate.crl(&[]);
    let config = pki
        .config()
        .crls(vec![root_crl.der().clone(), intermediate_crl.der().clone()])
        .build()
        .unwrap();
    let server = Server::start(config, app()).await;
    let outcome = request(&pki, &server, "/", Some(&leaf)).await;
    assert!(outcome.refused_with("CertificateRevoked"), "{outcome:?}");
}

#[tokio::test]
async fn unknown_revocation_status_is_refused_by_default() {
    let pki = Pki::new();
    // A CRL from the root only: nothing says whether the intermediate's leaf is revoked.
    let leaf = pki.intermediate.leaf().build();
    let config = pki
        .config()
        .crls(vec![pki.ca.crl(&[]).der().clone()])
        .build()
        .unwrap();
    let server = Server::start(config, app()).await;
    let outcome = request(&pki, &server, "/", Some(&leaf)).await;
    assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
}

#[tokio::test]
async fn unknown_revocation_status_is_accepted_when_allowed() {
    let pki = Pki::new();
    let leaf = pki.intermediate.leaf().build();
    let config = pki
        .config()
        .crls(vec![pki.ca.crl(&[]).der().clone()])
        .allow_unknown_revocation_status()
        .build()
        .unwrap();
    let server = Server::start(config, app()).await;
    assert_eq!(
        request(&pki, &server, "/", Some(&leaf)).await.status(),
        Some(200)
    );
}

#[tokio::test]
async fn expired_crl_is_refused_by_default_and_accepted_when_allowed() {
    let pki = Pki::new();
    let leaf = pki.ca.leaf().build();
    let crl = pki.ca.expired_crl(&[]);
    let strict = Server::start(
        pki.config().crls(vec![crl.der().clone()]).build().unwrap(),
        app(),
    )
    .await;
    let outcome = request(&pki, &strict, "/", Some(&leaf)).await;
    assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
    let lax = Server::start(
        pki.config()
            .crls(vec![crl.der().clone()])
            .allow_expired_crls()
            .build()
            .unwrap(),
        app(),
    )
    .await;
    assert_eq!(
        request(&pki, &lax, "/", Some(&leaf)).await.status(),
        Some(200)
    );
}

#[tokio::test]
async fn tls12_client_is_refused_by_default() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let client = pki.ca.leaf().build();
    let outcome = TestClient::new(&pki.ca)
        .with_cert(&client)
        .tls12_only()
        .get(server.addr, "/")
        .await;
    assert!(outcome.refused_with("ProtocolVersion"), "{outcome:?}");
}

#[tokio::test]
async fn tls12_client_is_accepted_with_allow_tls12() {
    let pki = Pki::new();
    let server = Server::start(pki.config().allow_tls12().build().unwrap(), app()).await;
    let client = pki.ca.leaf().common_name("old").build();
    let outcome = TestClient::new(&pki.ca)
        .with_cert(&client)
        .tls12_only()
        .get(server.addr, "/")
        .await;
    assert_eq!(outcome, Outcome::Status(200, "hello CN=old".into()));
}

#[tokio::test]
async fn valid_certificate_with_the_wrong_san_gets_403_from_the_layer() {
    let pki = Pki::new();
    let server = Server::start(pki.config().build().unwrap(), guarded_app()).await;
    let billing = pki.ca.leaf().dns("api.billing.internal").build();
    let web = pki.ca.leaf().dns("www.web.internal").build();
    assert_eq!(
        request(&pki, &server, "/", Some(&billing)).await.status(),
        Some(200)
    );
    assert_eq!(
        request(&pki, &server, "/", Some(&web)).await,
        Outcome::Status(403, "forbidden\n".into())
    );
}

#[tokio::test]
async fn optional_mode_answers_401_on_a_protected_route_and_200_on_a_public_one() {
    let pki = Pki::new();
    let app = Router::new()
        .route(
            "/",
            get(|| async { "protected" }).route_layer(RequireClientCertLayer::any_verified()),
        )
        .route("/public", get(|| async { "public" }));
    let server = Server::start(pki.config().client_auth_optional().build().unwrap(), app).await;
    assert_eq!(request(&pki, &server, "/", None).await.status(), Some(401));
    assert_eq!(
        request(&pki, &server, "/public", None).await,
        Outcome::Status(200, "public".into())
    );
    let client = pki.ca.leaf().build();
    assert_eq!(
        request(&pki, &server, "/", Some(&client)).await.status(),
        Some(200)
    );
}

#[tokio::test]
async fn optional_mode_still_refuses_a_bad_certificate_at_the_handshake() {
    let pki = Pki::new();
    let server = Server::start(pki.config().client_auth_optional().build().unwrap(), app()).await;
    let rogue = pki.rogue_ca.leaf().build();
    assert!(request(&pki, &server, "/public", Some(&rogue))
        .await
        .refused_with("UnknownCA"));
}

#[tokio::test]
async fn a_silent_client_does_not_delay_a_good_client() {
    let pki = Pki::new();
    let config = pki.config().build().unwrap();
    let listener = listener(config, |b| b.handshake_timeout(Duration::from_secs(30))).await;
    let server = Server::start_with(listener, app());
    // Several clients open TCP and send nothing (one sends half a ClientHello record header).
    let mut silent = Vec::new();
    for i in 0..8 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        if i == 0 {
            s.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        }
        silent.push(s);
    }
    let client = pki.ca.leaf().build();
    let started = Instant::now();
    assert_eq!(
        request(&pki, &server, "/", Some(&client)).await.status(),
        Some(200)
    );
    // Far below the 30 s handshake timeout the silent clients could hold a serial server for.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let pki = Pki::new();
    let config = pki.config().build().unwrap();
    let listener = listener(config, |b| b.handshake_timeout(Duration::from_millis(300))).await;
    let server = Server::start_with(listener, app());
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await;
    // The server closed the connection (EOF or reset) well before our 10 s patience ran out.
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_does_not_stop_the_server() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    }
    let client = pki.ca.leaf().build();
    assert_eq!(
        request(&pki, &server, "/", Some(&client)).await.status(),
        Some(200)
    );
}

#[tokio::test]
async fn alpn_offers_h2_and_http11() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let client = pki.ca.leaf().build();
    let mut config = (*TestClient::new(&pki.ca).with_cert(&client).config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn graceful_shutdown_completes() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let client = pki.ca.leaf().build();
    assert_eq!(
        request(&pki, &server, "/", Some(&client)).await.status(),
        Some(200)
    );
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_connections_does_not_grow_memory() {
    let pki = Pki::new();
    let server = default_server(&pki).await;
    let client = pki.ca.leaf().build();
    let tc = TestClient::new(&pki.ca).with_cert(&client);
    let churn = |n: usize| {
        let tc = tc.clone();
        let addr = server.addr;
        async move {
            for _ in 0..n {
                assert_eq!(tc.get(addr, "/").await.status(), Some(200));
            }
        }
    };
    // Warm up allocator pools and caches, then measure 200 more connections.
    churn(100).await;
    let before = mtls_tests::rss_kib().expect("VmRSS from /proc/self/status");
    churn(200).await;
    let after = mtls_tests::rss_kib().unwrap();
    let growth = after.saturating_sub(before);
    // 200 connections that each held ~100 KiB of TLS and identity state would grow ~20 MiB if
    // leaked; allow 4 MiB of allocator noise.
    assert!(
        growth < 4 * 1024,
        "RSS grew {growth} KiB ({before} -> {after})"
    );
}

#[mtls_tower::require_cert(san = "*.billing.internal", not(ou = "contractors"))]
async fn billing_only(cert: ClientCert) -> String {
    format!("billing {}", cert.dns_names()[0])
}

#[mtls_tower::require_cert(cn = "admin", deny = "not_found")]
async fn admin_only() -> &'static str {
    "admin"
}

#[tokio::test]
async fn require_cert_handlers_over_real_tls() {
    let pki = Pki::new();
    let app = Router::new()
        .route("/billing", get(billing_only))
        .route("/admin", get(admin_only));
    let server = Server::start(pki.config().build().unwrap(), app).await;
    let billing = pki.ca.leaf().dns("api.billing.internal").build();
    let contractor = pki
        .pki
        .ca
        .leaf()
        .dns("api.billing.internal")
        .org_unit("contractors")
        .build();
    let admin = pki.ca.leaf().common_name("admin").build();
    assert_eq!(
        request(&pki, &server, "/billing", Some(&billing)).await,
        Outcome::Status(200, "billing api.billing.internal".into())
    );
    assert_eq!(
        request(&pki, &server, "/billing", Some(&contractor))
            .await
            .status(),
        Some(403)
    );
    assert_eq!(
        request(&pki, &server, "/billing", Some(&admin))
            .await
            .status(),
        Some(403)
    );
    assert_eq!(
        request(&pki, &server, "/admin", Some(&admin))
            .await
            .status(),
        Some(200)
    );
    assert_eq!(
        request(&pki, &server, "/admin", Some(&billing))
            .await
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn serving_a_listener_already_used_with_accept_is_an_error() {
    let pki = Pki::new();
    let mut listener = listener(pki.config().build().unwrap(), |b| b).await;
    // Starts the listener's accept loop for `accept`; nobody connects.
    let _ = tokio::time::timeout(Duration::from_millis(20), listener.accept()).await;
    let err = mtls_tower::serve_with_shutdown(listener, app(), async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already accepting"), "{err}");
}
