//! The calling side through reqwest: a frontend calls billing's API and authorizes the server by
//! its SPIFFE ID, not only by the name it dialled. A server that answers with another identity is
//! refused inside the handshake, with the policy's reason, and an `http://` URL never leaves in
//! plain text. Self-contained: a throwaway PKI and two servers on 127.0.0.1.
//!
//! `cargo run -p mtls-examples --features reqwest --example client_reqwest`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::routing::get;
use axum::Router;
use mtls_examples::Checks;
use mtls_tower::mtls_core::{ClientIdentity, Oid};
use mtls_tower::testing::{TestCert, TestPki};
use mtls_tower::{ClientCert, MtlsClientConfig, MtlsConfig, MtlsListener, Policy, ServerDenied};

const API: &str = "spiffe://prod.example/ns/billing/sa/api";

/// Starts a server presenting `server`, trusting `pki.ca` for clients; its address.
async fn start(pki: &TestPki, server: &TestCert) -> SocketAddr {
    let config = MtlsConfig::builder()
        .server_cert(server.chain().to_vec(), server.key_der())
        .client_ca_certs(vec![pki.ca.cert_der().clone()])
        .build()
        .unwrap();
    let listener = MtlsListener::bind("127.0.0.1:0", config).await.unwrap();
    let addr = listener.local_addr();
    let app = Router::new().route(
        "/invoices",
        get(|cert: ClientCert| async move { format!("invoices for {}", cert.subject()) }),
    );
    tokio::spawn(mtls_tower::serve(listener, app));
    addr
}

/// What a call came to: the body and the server's SPIFFE ID, or why it failed.
async fn call(client: &reqwest::Client, url: String) -> String {
    match client.get(url).send().await {
        Ok(response) => {
            // With `tls_info(true)`, the server's leaf rides on the response.
            let server = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(reqwest::tls::TlsInfo::peer_certificate)
                .and_then(|der| ClientIdentity::from_der(der).ok());
            let spiffe = server
                .and_then(|id| id.spiffe_id().map(ToString::to_string))
                .unwrap_or_default();
            format!("{} (server {spiffe})", response.text().await.unwrap())
        }
        Err(err) => match ServerDenied::find_in(&err) {
            Some(denied) => format!("refused: {}", denied.reason()),
            None if err.is_builder() => "not sent: https only".to_owned(),
            None => format!("failed: {err}"),
        },
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let pki = TestPki::new();
    let server = |id: &str| {
        pki.ca
            .leaf()
            .spiffe(id)
            .dns("localhost")
            .ekus(&[Oid::SERVER_AUTH])
            .build()
    };
    let api = start(&pki, &server(API)).await;
    // Issued by the same CA and valid for `localhost` too: a hostname check alone accepts it.
    let impostor = start(&pki, &server("spiffe://prod.example/ns/billing/sa/batch")).await;

    let me = pki.ca.leaf().common_name("frontend").build();
    let config = MtlsClientConfig::builder()
        .client_cert(me.chain().to_vec(), me.key_der())
        .server_ca_certs(vec![pki.ca.cert_der().clone()])
        .authorize_server(Policy::spiffe_id(API).unwrap())
        .alpn_protocols(vec![b"h2".to_vec(), b"http/1.1".to_vec()])
        .build()
        .unwrap();
    // reqwest takes the rustls configuration by value; an `Arc` would fail at `build()`.
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config.to_client_config())
        // Without this, an `http://` URL would go out in plain text, past every check.
        .https_only(true)
        .tls_info(true)
        .build()
        .unwrap();

    let cases = [
        (
            "billing's API",
            format!("https://localhost:{}/invoices", api.port()),
            format!("invoices for CN=frontend (server {API})"),
        ),
        (
            "an impostor from the same CA",
            format!("https://localhost:{}/invoices", impostor.port()),
            format!("refused: spiffe_id = \"{API}\": no SPIFFE ID in the certificate matched"),
        ),
        (
            "billing's API over http://",
            format!("http://localhost:{}/invoices", api.port()),
            "not sent: https only".to_owned(),
        ),
    ];
    let mut checks = Checks::default();
    println!("{:<30} {:<10} outcome", "call", "check");
    for (name, url, want) in cases {
        let outcome = call(&client, url).await;
        let mark = checks.check(&want, &outcome);
        println!("{name:<30} {mark:<10} {outcome}");
        if mark != "ok" {
            println!("{:<30} {:<10} expected: {want}", "", "");
        }
    }
    checks.finish()
}
