//! The quickstart: a real mutual-TLS server and real clients, all on 127.0.0.1, with a throwaway PKI.
//!
//! ```sh
//! cargo run --example quickstart            # make requests, print what happened, exit 0 if as expected
//! cargo run --example quickstart -- --serve # keep serving; write the PKI to a folder; print curl commands
//! ```
//!
//! The server pins its client CA, requires a client certificate at the handshake (TLS 1.3), has a
//! router-wide policy (any `*.internal` service) and two routes with their own `#[require_cert]`
//! policies. Four clients call three routes: one the policies allow, one from the same CA that
//! they deny, one from a rogue CA, and one with no certificate at all.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use axum::routing::get;
use axum::Router;
use mtls_examples::{alert_name, Checks};
use mtls_tower::testing::{Outcome, TestCert, TestClient, TestPki};
use mtls_tower::{
    require_cert, ClientCert, MtlsConfig, MtlsListener, Policy, RequireClientCertLayer,
};

/// Any client of the CA may ask who it is (the router-wide policy still applies).
async fn whoami(cert: ClientCert) -> String {
    format!("you are {}", cert.subject())
}

/// Only the billing services.
#[require_cert(san = "*.billing.internal")]
async fn invoices(cert: ClientCert) -> String {
    format!("invoices for {}", cert.dns_names()[0])
}

/// Only the ops team; everyone else is told the route does not exist.
#[require_cert(ou = "ops", deny = "not_found")]
async fn admin() -> &'static str {
    "admin console"
}

fn app() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/invoices", get(invoices))
        .route("/admin", get(admin))
        // Router-wide: internal services only. Route policies add to this; they cannot weaken it.
        .layer(RequireClientCertLayer::new(
            Policy::san("*.billing.internal")
                .unwrap()
                .or(Policy::san("*.web.internal").unwrap()),
        ))
}

struct Client {
    name: &'static str,
    cert: Option<TestCert>,
}

fn main() -> ExitCode {
    let serve = std::env::args().any(|a| a == "--serve");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(async move {
            if serve {
                serve_forever().await
            } else {
                demo().await
            }
        })
}

struct Setup {
    pki: TestPki,
    server: TestCert,
    clients: Vec<Client>,
}

fn setup() -> Setup {
    let pki = TestPki::new();
    let server = pki.ca.server_cert("localhost");
    let clients = vec![
        Client {
            name: "billing-api",
            cert: Some(
                pki.ca
                    .leaf()
                    .common_name("billing-api")
                    .dns("api.billing.internal")
                    .build(),
            ),
        },
        Client {
            name: "web-frontend",
            cert: Some(
                pki.ca
                    .leaf()
                    .common_name("web-frontend")
                    .dns("www.web.internal")
                    .build(),
            ),
        },
        Client {
            name: "mallory (rogue CA)",
            cert: Some(
                pki.rogue_ca
                    .leaf()
                    .common_name("billing-api")
                    .dns("api.billing.internal")
                    .build(),
            ),
        },
        Client {
            name: "no certificate",
            cert: None,
        },
    ];
    Setup {
        pki,
        server,
        clients,
    }
}

fn config(s: &Setup) -> MtlsConfig {
    MtlsConfig::builder()
        .server_cert(s.server.chain().to_vec(), s.server.key_der())
        .client_ca_certs(vec![s.pki.ca.cert_der().clone()])
        .build()
        .expect("a valid configuration")
}

/// What each client should get on each route.
fn expected(client: &str, route: &str) -> &'static str {
    match (client, route) {
        ("billing-api", "/whoami" | "/invoices") => "200",
        ("billing-api", "/admin") => "404",
        ("web-frontend", "/whoami") => "200",
        ("web-frontend", "/invoices") => "403",
        ("web-frontend", "/admin") => "404",
        ("mallory (rogue CA)", _) => "refused: UnknownCA",
        _ => "refused: CertificateRequired",
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Status(code, _) => code.to_string(),
        Outcome::Refused(e) => format!("refused: {}", alert_name(e).unwrap_or(e)),
    }
}

async fn demo() -> ExitCode {
    let s = setup();
    let listener = MtlsListener::bind("127.0.0.1:0", config(&s))
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr();
    tokio::spawn(mtls_tower::serve(listener, app()));
    println!(
        "mTLS server on https://{addr} (client CA pinned, TLS 1.3, client certificate required)\n"
    );
    println!(
        "{:<20} {:<10} {:<30} {:<30} ",
        "client", "route", "expected", "outcome"
    );
    println!("{}", "-".repeat(94));
    let mut checks = Checks::default();
    for client in &s.clients {
        let mut tc = TestClient::new(&s.pki.ca);
        if let Some(cert) = &client.cert {
            tc = tc.with_cert(cert);
        }
        for route in ["/whoami", "/invoices", "/admin"] {
            let outcome = describe(&tc.get(addr, route).await);
            let want = expected(client.name, route);
            let mark = checks.check(want, &outcome);
            println!(
                "{:<20} {:<10} {:<30} {:<30} {mark}",
                client.name, route, want, outcome
            );
        }
    }
    checks.finish()
}

async fn serve_forever() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mtls_tower=debug,info".into()),
        )
        .init();
    let s = setup();
    let dir = std::env::temp_dir().join(format!("mtls-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the PKI folder");
    let write = |name: &str, contents: &str| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, contents).expect("write a PKI file");
        p
    };
    write("ca.pem", s.pki.ca.cert_pem());
    for (file, client) in ["billing", "web", "rogue"].iter().zip(&s.clients) {
        let cert = client
            .cert
            .as_ref()
            .expect("the first three clients have certificates");
        write(&format!("{file}.pem"), &cert.chain_pem());
        write(&format!("{file}.key"), cert.key_pem());
    }
    let listener = match MtlsListener::bind("127.0.0.1:8443", config(&s)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:8443: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr: SocketAddr = listener.local_addr();
    let d = dir.display();
    let base = format!(
        "curl --resolve localhost:{port}:127.0.0.1 --cacert {d}/ca.pem",
        port = addr.port()
    );
    let url = format!("https://localhost:{}", addr.port());
    println!("serving mutual TLS on https://{addr}; the PKI is in {d}\n");
    println!("# allowed everywhere but /admin:");
    println!("{base} --cert {d}/billing.pem --key {d}/billing.key {url}/invoices");
    println!("# same CA, denied by the route policy (403):");
    println!("{base} --cert {d}/web.pem --key {d}/web.key {url}/invoices");
    println!("# rogue CA, refused at the handshake:");
    println!("{base} --cert {d}/rogue.pem --key {d}/rogue.key {url}/whoami");
    println!("# no certificate, refused at the handshake:");
    println!("{base} {url}/whoami\n");
    println!("Ctrl-C to stop.");
    match mtls_tower::serve(listener, app()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
