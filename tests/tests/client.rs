//! `MtlsClientConfig` over real TLS against our own server: the server is checked by its chain,
//! its dates, CRLs, and by its name or a policy; a denied server fails the handshake with the
//! policy's reason. One behaviour per test.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use mtls_core::testing::TestCert;
use mtls_core::{ClientIdentity, Oid, Policy};
use mtls_tests::{Pki, Server};
use mtls_tower::{ClientCert, MtlsClientConfig, MtlsClientConfigBuilder, MtlsConfig, ServerDenied};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

const API: &str = "spiffe://prod.example/ns/billing/sa/api";

fn app() -> Router {
    Router::new().route(
        "/",
        get(|cert: ClientCert| async move { format!("hello {}", cert.subject()) }),
    )
}

/// Serves `app` with `server` as the server certificate, trusting `pki.ca` for clients.
async fn serve_as(pki: &Pki, server: &TestCert) -> Server {
    let config = MtlsConfig::builder()
        .server_cert(server.chain().to_vec(), server.key_der())
        .client_ca_certs(vec![pki.ca.cert_der().clone()])
        .build()
        .unwrap();
    Server::start(config, app()).await
}

/// A client presenting `CN=frontend` from `pki.ca`, trusting `pki.ca` for servers.
fn client(pki: &Pki) -> MtlsClientConfigBuilder {
    let me = pki.ca.leaf().common_name("frontend").build();
    MtlsClientConfig::builder()
        .client_cert(me.chain().to_vec(), me.key_der())
        .server_ca_certs(vec![pki.ca.cert_der().clone()])
}

/// `GET /` to `addr` as `server_name`: the body, and the server's identity as the client saw it.
async fn get_root(
    config: &MtlsClientConfig,
    addr: SocketAddr,
    server_name: &str,
) -> std::io::Result<(String, ClientIdentity)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let mut tls = TlsConnector::from(config.client_config())
        .connect(name, tcp)
        .await?;
    let server = mtls_tower::client::server_identity(tls.get_ref().1).unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    Ok((body, server))
}

/// The certificate error inside a failed connection's I/O error.
fn cert_error(err: &std::io::Error) -> &rustls::CertificateError {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(e)) => e,
        _ => panic!("not a certificate error: {err:?}"),
    }
}

fn spiffe_server(pki: &Pki, id: &str) -> TestCert {
    pki.ca.leaf().spiffe(id).ekus(&[Oid::SERVER_AUTH]).build()
}

#[tokio::test]
async fn a_good_server_is_accepted_and_each_side_knows_the_other() {
    let pki = Pki::new();
    let server = Server::start(pki.config().build().unwrap(), app()).await;
    let config = client(&pki).build().unwrap();
    let (body, server_id) = get_root(&config, server.addr, "localhost").await.unwrap();
    assert_eq!(body, "hello CN=frontend");
    assert_eq!(server_id.subject().to_string(), "CN=localhost");
}

#[tokio::test]
async fn a_server_named_by_its_spiffe_id_is_accepted_without_a_dns_name() {
    let pki = Pki::new();
    let server = serve_as(&pki, &spiffe_server(&pki, API)).await;
    let config = client(&pki)
        .authorize_server(Policy::spiffe_id(API).unwrap())
        .build()
        .unwrap();
    let (body, server_id) = get_root(&config, server.addr, "billing.internal")
        .await
        .unwrap();
    assert_eq!(body, "hello CN=frontend");
    assert_eq!(server_id.spiffe_id().unwrap().to_string(), API);
}

#[tokio::test]
async fn a_server_with_another_spiffe_id_is_refused_with_the_reason() {
    let pki = Pki::new();
    let batch = spiffe_server(&pki, "spiffe://prod.example/ns/billing/sa/batch");
    let server = serve_as(&pki, &batch).await;
    let config = client(&pki)
        .authorize_server(Policy::spiffe_id(API).unwrap())
        .build()
        .unwrap();
    let err = get_root(&config, server.addr, "billing.internal")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("refused by the server policy"), "{text}");
    assert!(text.contains(API), "{text}");
    // The reason is there for code too, not only in the text.
    let rustls::CertificateError::Other(other) = cert_error(&err) else {
        panic!("{err:?}");
    };
    let denied = other.0.downcast_ref::<mtls_tower::ServerDenied>().unwrap();
    assert_eq!(denied.reason().rule(), format!("spiffe_id = \"{API}\""));
}

#[tokio::test]
async fn a_server_with_the_wrong_dns_name_is_refused() {
    let pki = Pki::new();
    let other = pki.ca.server_cert("other.internal");
    let server = serve_as(&pki, &other).await;
    let config = client(&pki).build().unwrap();
    let err = get_root(&config, server.addr, "billing.internal")
        .await
        .unwrap_err();
    assert!(
        matches!(
            cert_error(&err),
            rustls::CertificateError::NotValidForNameContext { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_from_a_rogue_ca_is_refused() {
    let pki = Pki::new();
    let rogue = pki.rogue_ca.server_cert("localhost");
    let server = serve_as(&pki, &rogue).await;
    let config = client(&pki).build().unwrap();
    let err = get_root(&config, server.addr, "localhost")
        .await
        .unwrap_err();
    assert_eq!(cert_error(&err), &rustls::CertificateError::UnknownIssuer);
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    let pki = Pki::new();
    let expired = pki
        .ca
        .leaf()
        .dns("localhost")
        .ekus(&[Oid::SERVER_AUTH])
        .expired()
        .build();
    let server = serve_as(&pki, &expired).await;
    let config = client(&pki).build().unwrap();
    let err = get_root(&config, server.addr, "localhost")
        .await
        .unwrap_err();
    assert!(
        matches!(
            cert_error(&err),
            rustls::CertificateError::ExpiredContext { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_revoked_server_is_refused() {
    let pki = Pki::new();
    let revoked = pki.ca.server_cert("localhost");
    let server = serve_as(&pki, &revoked).await;
    let config = client(&pki)
        .crls(vec![pki.ca.crl(&[&revoked.serial()]).der().clone()])
        .build()
        .unwrap();
    let err = get_root(&config, server.addr, "localhost")
        .await
        .unwrap_err();
    assert_eq!(cert_error(&err), &rustls::CertificateError::Revoked);
}

#[tokio::test]
async fn a_tls12_only_server_is_refused_unless_tls12_is_allowed() {
    let pki = Pki::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.cert_der().clone()).unwrap();
        Arc::new(roots)
    };
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .unwrap();
    let tls12_only = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server.chain().to_vec(), pki.server.key_der())
        .unwrap();
    let server = Server::start(MtlsConfig::from(Arc::new(tls12_only)), app()).await;
    let strict = client(&pki).build().unwrap();
    let err = get_root(&strict, server.addr, "localhost")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::ProtocolVersion
            )) | Some(rustls::Error::PeerIncompatible(_))
        ),
        "{err:?}"
    );
    let loose = client(&pki).allow_tls12().build().unwrap();
    let (body, _) = get_root(&loose, server.addr, "localhost").await.unwrap();
    assert_eq!(body, "hello CN=frontend");
}

// --- hyper-util and tonic through `MtlsConnector` ----------------------------------------------

type HyperClient = hyper_util::client::legacy::Client<
    mtls_tower::client::MtlsConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

fn hyper_client(config: &MtlsClientConfig) -> HyperClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(config.connector())
}

async fn body_text(response: http::Response<hyper::body::Incoming>) -> String {
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn hyper_util_calls_through_the_connector_over_http1() {
    let pki = Pki::new();
    let server = Server::start(pki.config().build().unwrap(), app()).await;
    let config = client(&pki).build().unwrap();
    let uri = format!("https://localhost:{}/", server.addr.port());
    let response = hyper_client(&config)
        .get(uri.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(body_text(response).await, "hello CN=frontend");
}

#[tokio::test]
async fn hyper_util_speaks_http2_when_alpn_offers_it() {
    let pki = Pki::new();
    let server = Server::start(pki.config().build().unwrap(), app()).await;
    let config = client(&pki)
        .alpn_protocols(vec![b"h2".to_vec()])
        .build()
        .unwrap();
    let uri = format!("https://localhost:{}/", server.addr.port());
    let response = hyper_client(&config)
        .get(uri.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(body_text(response).await, "hello CN=frontend");
}

#[tokio::test]
async fn the_connector_refuses_a_denied_server_with_the_reason() {
    let pki = Pki::new();
    let batch = spiffe_server(&pki, "spiffe://prod.example/ns/billing/sa/batch");
    let server = serve_as(&pki, &batch).await;
    let config = client(&pki)
        .authorize_server(Policy::spiffe_id(API).unwrap())
        .build()
        .unwrap();
    let uri = format!("https://localhost:{}/", server.addr.port());
    let err = hyper_client(&config)
        .get(uri.parse().unwrap())
        .await
        .unwrap_err();
    // hyper-util wraps the connector's error; its chain holds the reason.
    let mut chain = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    assert!(
        chain
            .iter()
            .any(|e| e.contains("refused by the server policy")),
        "{chain:?}"
    );
    let denied = ServerDenied::find_in(&err).expect("a ServerDenied in the chain");
    assert!(denied.reason().rule().starts_with("spiffe_id"), "{denied}");
}

#[tokio::test]
async fn the_connector_speaks_tls_even_for_an_http_uri_and_checks_the_fixed_name() {
    use tower::ServiceExt;

    let pki = Pki::new();
    let server = Server::start(pki.config().build().unwrap(), app()).await;
    let config = client(&pki).build().unwrap();
    // An address in the URI, the name to verify set apart; `http://` as tonic needs it.
    let uri: http::Uri = format!("http://127.0.0.1:{}/", server.addr.port())
        .parse()
        .unwrap();
    let stream = config
        .connector()
        .server_name("localhost")
        .unwrap()
        .oneshot(uri.clone())
        .await
        .unwrap();
    assert_eq!(
        stream.server_identity().unwrap().subject().to_string(),
        "CN=localhost"
    );
    // Verified as a name the server does not carry, the same address is refused.
    let err = config
        .connector()
        .server_name("billing.internal")
        .unwrap()
        .oneshot(uri)
        .await
        .unwrap_err();
    assert!(
        matches!(
            cert_error(&err),
            rustls::CertificateError::NotValidForNameContext { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_connector_gives_up_on_a_server_that_never_answers() {
    use tower::ServiceExt;

    let pki = Pki::new();
    // Accepts TCP connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let config = client(&pki).build().unwrap();
    let started = std::time::Instant::now();
    let err = config
        .connector()
        .timeout(std::time::Duration::from_millis(300))
        .oneshot(
            format!("https://localhost:{}/", addr.port())
                .parse()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

// --- reload ------------------------------------------------------------------------------------

/// A client reading its files from `dir`, trusting the server CAs in `dir/server-ca.pem`.
fn client_from_files(dir: &mtls_tests::TempDir, pki: &Pki) -> MtlsClientConfig {
    let (chain, key) = dir.write_cert("frontend", &pki.ca.leaf().common_name("frontend").build());
    MtlsClientConfig::builder()
        .client_cert_pem_files(chain, key)
        .server_ca_pem_file(dir.path().join("server-ca.pem"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_reload_reaches_the_next_connection_through_the_connector() {
    use tower::ServiceExt;

    let pki = Pki::new();
    let dir = mtls_tests::TempDir::new("client-reload");
    // The server's certificate comes from the intermediate, which the client does not trust yet.
    let server = serve_as(&pki, &pki.intermediate.server_cert("localhost")).await;
    dir.write("server-ca.pem", pki.rogue_ca.cert_pem());
    let handle = mtls_tower::ClientReloadHandle::new(client_from_files(&dir, &pki));
    let uri: http::Uri = format!("https://localhost:{}/", server.addr.port())
        .parse()
        .unwrap();
    let err = handle.connector().oneshot(uri.clone()).await.unwrap_err();
    assert_eq!(cert_error(&err), &rustls::CertificateError::UnknownIssuer);

    dir.write("server-ca.pem", pki.ca.cert_pem());
    handle.reload().unwrap();
    let stream = handle.connector().oneshot(uri).await.unwrap();
    assert_eq!(
        stream.server_identity().unwrap().subject().to_string(),
        "CN=localhost"
    );
}

#[tokio::test]
async fn a_reload_from_a_broken_file_keeps_the_configuration_in_use() {
    let pki = Pki::new();
    let dir = mtls_tests::TempDir::new("client-reload-bad");
    let server = Server::start(pki.config().build().unwrap(), app()).await;
    dir.write("server-ca.pem", pki.ca.cert_pem());
    let handle = mtls_tower::ClientReloadHandle::new(client_from_files(&dir, &pki));
    let connector = handle.connector();
    // Half written, then a leaf instead of a CA: both refused, the old one stays.
    dir.write("server-ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB");
    assert!(handle.reload().is_err());
    dir.write("server-ca.pem", &pki.server.chain_pem());
    let err = handle.reload().unwrap_err();
    assert!(
        matches!(err, mtls_tower::ConfigError::NotACa { .. }),
        "{err}"
    );
    let uri: http::Uri = format!("https://localhost:{}/", server.addr.port())
        .parse()
        .unwrap();
    let response =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, http_body_util::Empty<bytes::Bytes>>(connector)
            .get(uri)
            .await
            .unwrap();
    assert_eq!(body_text(response).await, "hello CN=frontend");
}

// --- reqwest, with the configuration preconfigured ---------------------------------------------

/// A reqwest client on `config`, as the module docs say to build one: the configuration by value,
/// `https_only`, and the server's certificate on each response.
fn reqwest_client(config: &MtlsClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config.to_client_config())
        .https_only(true)
        .tls_info(true)
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn reqwest_calls_our_server_over_http2_and_sees_its_identity() {
    let pki = Pki::new();
    let api = pki
        .ca
        .leaf()
        .spiffe(API)
        .dns("localhost")
        .ekus(&[Oid::SERVER_AUTH])
        .build();
    let server = serve_as(&pki, &api).await;
    let config = client(&pki)
        .authorize_server(Policy::spiffe_id(API).unwrap())
        .alpn_protocols(vec![b"h2".to_vec()])
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/", server.addr.port());
    let response = reqwest_client(&config).get(url).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
        .unwrap()
        .to_vec();
    let server_id = ClientIdentity::from_der(&leaf).unwrap();
    assert_eq!(server_id.spiffe_id().unwrap().as_str(), API);
    assert_eq!(response.text().await.unwrap(), "hello CN=frontend");
}

#[tokio::test]
async fn reqwest_refuses_a_denied_server_with_the_policys_reason() {
    let pki = Pki::new();
    let batch = spiffe_server(&pki, "spiffe://prod.example/ns/billing/sa/batch");
    let server = serve_as(&pki, &batch).await;
    let config = client(&pki)
        .authorize_server(Policy::spiffe_id(API).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/", server.addr.port());
    let err = reqwest_client(&config).get(url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let denied = ServerDenied::find_in(&err).expect("a ServerDenied in the chain");
    assert!(denied.reason().rule().starts_with("spiffe_id"), "{denied}");
}

#[tokio::test]
async fn reqwest_refuses_a_rogue_ca_server_and_that_is_no_policy_denial() {
    let pki = Pki::new();
    let rogue = pki.rogue_ca.server_cert("localhost");
    let server = serve_as(&pki, &rogue).await;
    let config = client(&pki).build().unwrap();
    let url = format!("https://localhost:{}/", server.addr.port());
    let err = reqwest_client(&config).get(url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(ServerDenied::find_in(&err).is_none(), "{err:?}");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
}

#[tokio::test]
async fn reqwest_with_https_only_never_sends_an_http_url_in_plain_text() {
    let pki = Pki::new();
    let server = Server::start(pki.config().build().unwrap(), app()).await;
    let config = client(&pki).build().unwrap();
    let url = format!("http://localhost:{}/", server.addr.port());
    let err = reqwest_client(&config).get(url).send().await.unwrap_err();
    assert!(err.is_builder(), "{err:?}");
}
