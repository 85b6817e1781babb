//! Behind a TLS-terminating proxy: the backend believes a forwarded client-certificate header only
//! from the proxy, which it recognises by the proxy's own client certificate, and ignores the same
//! header from anyone else.
//!
//! `cargo run --example behind_proxy` plays the proxy with a test client that presents the proxy's
//! certificate and forwards a client's certificate in RFC 9440 `Client-Cert`, as HAProxy would
//! (`http-request set-header Client-Cert ":%[ssl_c_der,base64]:"`). Real nginx and HAProxy runs are
//! in the workspace's end-to-end tests; their settings are in `mtls_tower::deploying`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use axum::routing::get;
use axum::Router;
use mtls_tower::testing::{client_cert_header, Outcome, TestClient, TestPki};
use mtls_tower::{
    ClientCert, ForwardedFormat, MtlsConfig, MtlsListener, Policy, RequireClientCertLayer,
    TrustedProxyLayer,
};

const PROXY: &str = "spiffe://prod.example/ns/edge/sa/haproxy";

#[tokio::main]
async fn main() {
    let pki = TestPki::new();
    let server_cert = pki.ca.server_cert("localhost");
    let config = MtlsConfig::builder()
        .server_cert(server_cert.chain().to_vec(), server_cert.key_der())
        .client_ca_certs(vec![pki.ca.cert_der().clone()])
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|cert: ClientCert| async move {
                format!("{} (from {:?})", cert.subject(), cert.source())
            }),
        )
        .layer(RequireClientCertLayer::new(
            Policy::cn("alice")
                .unwrap()
                .or(Policy::cn("mallory").unwrap()),
        ))
        .layer(
            TrustedProxyLayer::by_identity(
                Policy::spiffe_id(PROXY).unwrap(),
                ForwardedFormat::Rfc9440,
            )
            .reverify_with(vec![pki.ca.cert_der().clone()])
            .unwrap(),
        );
    let listener = MtlsListener::bind("127.0.0.1:0", config).await.unwrap();
    let addr = listener.local_addr();
    tokio::spawn(mtls_tower::serve(listener, app));

    let alice = pki.ca.leaf().common_name("alice").build();
    let proxy = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().spiffe(PROXY).build());
    let mallory = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().common_name("mallory").build());
    let header = [("client-cert", client_cert_header(&alice))];

    let via_proxy = proxy.get_with_headers(addr, "/", &header).await;
    println!("the proxy forwards alice's certificate:   {via_proxy:?}");
    let forged = mallory.get_with_headers(addr, "/", &header).await;
    println!("mallory sends the same header directly:  {forged:?}");
    let bare_proxy = proxy.get(addr, "/").await;
    println!("the proxy sends no header:               {bare_proxy:?}");

    assert!(matches!(&via_proxy, Outcome::Status(200, b) if b.starts_with("CN=alice")));
    assert!(matches!(&forged, Outcome::Status(200, b) if b.starts_with("CN=mallory")));
    assert_eq!(bare_proxy.status(), Some(401));
}
