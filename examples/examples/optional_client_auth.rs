//! Public and protected routes on one listener: the handshake asks for a client certificate but
//! does not require one (`client_auth_optional`), and the layer answers 401 on the routes it
//! guards. A certificate that *is* presented is still fully verified at the handshake.
//!
//! `cargo run --example optional_client_auth`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use axum::routing::get;
use axum::Router;
use mtls_tower::testing::{TestClient, TestPki};
use mtls_tower::{ClientCert, MtlsConfig, MtlsListener, RequireClientCertLayer};

#[tokio::main]
async fn main() {
    let pki = TestPki::new();
    let server_cert = pki.ca.server_cert("localhost");
    let config = MtlsConfig::builder()
        .server_cert(server_cert.chain().to_vec(), server_cert.key_der())
        .client_ca_certs(vec![pki.ca.cert_der().clone()])
        .client_auth_optional()
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/account",
            get(|cert: ClientCert| async move { format!("account of {}", cert.subject()) })
                .route_layer(RequireClientCertLayer::any_verified()),
        )
        .route(
            "/",
            get(|cert: Option<ClientCert>| async move {
                match cert {
                    Some(c) => format!("welcome back, {}", c.subject()),
                    None => "welcome, stranger".to_owned(),
                }
            }),
        );
    let listener = MtlsListener::bind("127.0.0.1:0", config).await.unwrap();
    let addr = listener.local_addr();
    tokio::spawn(mtls_tower::serve(listener, app));

    let anonymous = TestClient::new(&pki.ca);
    let member = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().common_name("ada").build());
    let rogue = TestClient::new(&pki.ca).with_cert(&pki.rogue_ca.leaf().build());
    for (who, client) in [
        ("anonymous", &anonymous),
        ("ada", &member),
        ("rogue CA", &rogue),
    ] {
        for path in ["/", "/account"] {
            println!("{who:<10} {path:<9} {:?}", client.get(addr, path).await);
        }
    }
    assert_eq!(anonymous.get(addr, "/").await.status(), Some(200));
    assert_eq!(anonymous.get(addr, "/account").await.status(), Some(401));
    assert_eq!(member.get(addr, "/account").await.status(), Some(200));
    assert!(rogue.get(addr, "/").await.refused_with("UnknownCA"));
}
