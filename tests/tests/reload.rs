//! Hot reload of the TLS configuration on a running server over real TLS: swaps, refusals that
//! keep the old configuration, revocation that bites after a reload (resumption included), and
//! what happens to established connections.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use mtls_core::testing::{TestCa, TestCert};
use mtls_tests::{listener, Pki, Server, TempDir};
use mtls_tower::testing::{Outcome, TestClient};
use mtls_tower::{ClientCert, MtlsConfig, MtlsListener, ReloadHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn app() -> Router {
    Router::new().route(
        "/",
        get(|cert: ClientCert| async move { cert.subject().to_string() }),
    )
}

async fn start(pki: &Pki, close_on_reload: bool) -> (Server, ReloadHandle) {
    let listener = listener(pki.config().build().unwrap(), |b| {
        if close_on_reload {
            b.close_connections_on_reload()
        } else {
            b
        }
    })
    .await;
    let handle = listener.reload_handle();
    (Server::start_with(listener, app()), handle)
}

async fn call(pki: &Pki, server: &Server, cert: &TestCert) -> Outcome {
    TestClient::new(&pki.ca)
        .with_cert(cert)
        .get(server.addr, "/")
        .await
}

#[tokio::test]
async fn a_reload_swaps_the_client_ca_bundle() {
    let pki = Pki::new();
    let (server, handle) = start(&pki, false).await;
    let new_ca = TestCa::new("New Client CA");
    let old_client = pki.ca.leaf().common_name("old").build();
    let new_client = new_ca.leaf().common_name("new").build();
    assert_eq!(call(&pki, &server, &old_client).await.status(), Some(200));
    assert!(call(&pki, &server, &new_client)
        .await
        .refused_with("UnknownCA"));

    handle
        .reload_with(|| {
            pki.config()
                .client_ca_certs(vec![new_ca.cert_der().clone()])
                .build()
        })
        .unwrap();
    assert_eq!(handle.generation(), 1);
    assert_eq!(
        call(&pki, &server, &new_client).await,
        Outcome::Status(200, "CN=new".into())
    );
    assert!(call(&pki, &server, &old_client)
        .await
        .refused_with("UnknownCA"));
}

#[tokio::test]
async fn a_bad_file_keeps_the_old_configuration() {
    let pki = Pki::new();
    let (server, handle) = start(&pki, false).await;
    let dir = TempDir::new("reload-bad");
    let bad = dir.write("ca.pem", "not a certificate");
    let err = handle
        .reload_with(|| pki.config().client_ca_pem_file(&bad).build())
        .unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");
    assert_eq!(handle.generation(), 0);
    let client = pki.ca.leaf().build();
    assert_eq!(call(&pki, &server, &client).await.status(), Some(200));
}

#[tokio::test]
async fn a_revoked_client_cannot_get_back_in_even_by_resuming_its_session() {
    let pki = Pki::new();
    let (server, handle) = start(&pki, false).await;
    let client_cert = pki.ca.leaf().common_name("soon-revoked").build();
    // One client, one rustls config: its session cache lets the second connection try to resume.
    let client = TestClient::new(&pki.ca).with_cert(&client_cert);
    assert_eq!(client.get(server.addr, "/").await.status(), Some(200));
    // The test means something only if the client really resumes: check that it does.
    assert_eq!(
        handshake_kind(&client, &server).await,
        Some(rustls::HandshakeKind::Resumed)
    );

    let crl = pki.ca.crl(&[&client_cert.serial()]);
    handle
        .reload_with(|| pki.config().crls(vec![crl.der().clone()]).build())
        .unwrap();
    let outcome = client.get(server.addr, "/").await;
    assert!(outcome.refused_with("CertificateRevoked"), "{outcome:?}");
}

/// How a new connection from `client` to `server` was established.
async fn handshake_kind(client: &TestClient, server: &Server) -> Option<rustls::HandshakeKind> {
    let mut tls = client.connect(server.addr).await.ok()?;
    let _ = tls
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await;
    let mut sink = Vec::new();
    let _ = tls.read_to_end(&mut sink).await;
    tls.get_ref().1.handshake_kind()
}

/// A keep-alive connection: two requests on one TLS stream.
async fn keep_alive_pair(
    pki: &Pki,
    server: &Server,
    cert: &TestCert,
    between: impl std::future::Future<Output = ()>,
) -> (bool, bool) {
    let mut tls = TestClient::new(&pki.ca)
        .with_cert(cert)
        .connect(server.addr)
        .await
        .unwrap();
    let ask = async |tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>| -> bool {
        if tls
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .is_err()
        {
            return false;
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            _ => false,
        }
    };
    let first = ask(&mut tls).await;
    between.await;
    let second = ask(&mut tls).await;
    (first, second)
}

#[tokio::test]
async fn established_connections_are_kept_by_default() {
    let pki = Pki::new();
    let (server, handle) = start(&pki, false).await;
    let cert = pki.ca.leaf().build();
    let reload = async {
        handle.reload(pki.config().build().unwrap());
    };
    assert_eq!(
        keep_alive_pair(&pki, &server, &cert, reload).await,
        (true, true)
    );
}

#[tokio::test]
async fn close_connections_on_reload_drains_established_connections() {
    let pki = Pki::new();
    let (server, handle) = start(&pki, true).await;
    let cert = pki.ca.leaf().build();
    let reload = async {
        handle.reload(pki.config().build().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        keep_alive_pair(&pki, &server, &cert, reload).await,
        (true, false)
    );
    // New connections are served as usual.
    assert_eq!(call(&pki, &server, &cert).await.status(), Some(200));
}

#[tokio::test]
async fn expiry_is_visible_for_metrics() {
    let pki = Pki::new();
    let (_server, handle) = start(&pki, false).await;
    let expiry = handle.expiry().unwrap();
    // The test PKI's server certificate lasts 30 days, its CA a year.
    let server_days = expiry.server_time_left().unwrap().as_secs() / 86400;
    assert!((28..=30).contains(&server_days), "{server_days}");
    assert_eq!(expiry.client_cas.len(), 1);
    assert!(expiry.earliest_ca_time_left().unwrap() > Duration::from_secs(300 * 86400));
}

#[tokio::test]
async fn a_raw_rustls_config_has_no_expiry_information() {
    let pki = Pki::new();
    let raw = pki.config().build().unwrap().server_config();
    let listener = MtlsListener::bind("127.0.0.1:0", Arc::clone(&raw))
        .await
        .unwrap();
    assert!(listener.reload_handle().expiry().is_none());
    let _: MtlsConfig = raw.into();
}

#[tokio::test]
async fn watching_files_reloads_when_they_change() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-watch");
    let ca_path = dir.write("ca.pem", pki.ca.cert_pem());
    let (server, handle) = start(&pki, false).await;
    let build = {
        let server = pki.server.clone();
        let ca_path = ca_path.clone();
        move || {
            MtlsConfig::builder()
                .server_cert(server.chain().to_vec(), server.key_der())
                .client_ca_pem_file(&ca_path)
                .build()
        }
    };
    let watcher = handle.watch_files(vec![ca_path.clone()], Duration::from_millis(50), build);
    let new_ca = TestCa::new("Rotated CA");
    // Make sure the modification time moves even on coarse-grained file systems.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&ca_path, new_ca.cert_pem()).unwrap();
    let file = std::fs::File::options().write(true).open(&ca_path).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    for _ in 0..100 {
        if handle.generation() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handle.generation(), 1);
    let client = new_ca.leaf().build();
    assert_eq!(call(&pki, &server, &client).await.status(), Some(200));
    watcher.abort();
}

#[tokio::test]
async fn a_stream_ended_by_a_reload_keeps_reading_end_of_stream() {
    let pki = Pki::new();
    let mut listener = listener(pki.config().build().unwrap(), |b| {
        b.close_connections_on_reload()
    })
    .await;
    let handle = listener.reload_handle();
    let addr = listener.local_addr();
    let client_cert = pki.ca.leaf().common_name("reader").build();
    let reader = TestClient::new(&pki.ca).with_cert(&client_cert);
    let client = tokio::spawn(async move {
        let tls = reader.connect(addr).await.unwrap();
        // Hold the connection open while the server reads.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(tls);
    });
    let (mut stream, _) = listener.accept().await;
    handle.reload(pki.config().build().unwrap());
    let mut buf = [0u8; 16];
    // A reader may ask again after end of stream (hyper does); it must get end of stream again.
    assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
    assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
    client.abort();
}
