//! Behind real proxies from Debian's packages, started by the tests: nginx and HAProxy terminate
//! the client's mutual TLS, authenticate to the backend with their own client certificate, and
//! forward the client's certificate in a header. The backend trusts that header only from them.
//!
//! These need `nginx` and `haproxy`; they are ignored by default so that `cargo test --workspace`
//! passes on any machine, and `.ci/run` installs both and runs them with `--include-ignored`.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use mtls_core::testing::TestCert;
use mtls_tests::{Pki, Server, TempDir};
use mtls_tower::testing::{client_cert_header, Outcome, TestClient};
use mtls_tower::{ClientCert, ForwardedFormat, Policy, RequireClientCertLayer, TrustedProxyLayer};

const PROXY_ID: &str = "spiffe://prod.example/ns/edge/sa/proxy";

/// Echoes the identity the handler sees and any certificate header that reached it.
async fn whoami(cert: ClientCert, headers: HeaderMap) -> String {
    let leaked: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.contains("cert"))
        .collect();
    format!(
        "{} via {:?}; leaked {leaked:?}",
        cert.subject(),
        cert.source()
    )
}

fn backend_app(format: ForwardedFormat) -> Router {
    Router::new()
        .route("/", get(whoami))
        .layer(RequireClientCertLayer::any_verified())
        .layer(TrustedProxyLayer::by_identity(
            Policy::spiffe_id(PROXY_ID).unwrap(),
            format,
        ))
}

struct Proxied {
    pki: Pki,
    /// Holds the proxy's files; kept for its `Drop`.
    _dir: TempDir,
    backend: Server,
    proxy_port: u16,
    child: Child,
}

impl Drop for Proxied {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: nginx's master then stops its workers, which SIGKILL would orphan.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the proxy accepts TCP connections (or gives up after 10 s).
async fn wait_for(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the proxy did not start listening on 127.0.0.1:{port}");
}

fn write_pki(dir: &TempDir, pki: &Pki, proxy_client: &TestCert) {
    dir.write("ca.pem", pki.ca.cert_pem());
    dir.write_cert("server", &pki.server);
    dir.write_cert("proxy-client", proxy_client);
    dir.write(
        "server-combined.pem",
        &format!("{}{}", pki.server.chain_pem(), pki.server.key_pem()),
    );
    dir.write(
        "proxy-client-combined.pem",
        &format!("{}{}", proxy_client.chain_pem(), proxy_client.key_pem()),
    );
}

fn spawn(program: &str, args: &[&str], dir: &Path) -> Child {
    // Output to a file in the test's folder: an inherited pipe would stay open as long as any
    // process of the proxy lives.
    let log = std::fs::File::create(dir.join(format!("{program}.log"))).unwrap();
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} ({e}); install it (.ci/run does)"))
}

async fn with_nginx() -> Proxied {
    let pki = Pki::new();
    let dir = TempDir::new("nginx");
    let proxy_client = pki.ca.leaf().spiffe(PROXY_ID).build();
    write_pki(&dir, &pki, &proxy_client);
    let format =
        ForwardedFormat::NginxEscapedCert(axum::http::HeaderName::from_static("x-ssl-client-cert"));
    let backend = Server::start(pki.config().build().unwrap(), backend_app(format)).await;
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"
worker_processes 1;
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        ssl_client_certificate {d}/ca.pem;
        ssl_verify_client on;
        location / {{
            proxy_pass https://127.0.0.1:{backend};
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_certificate {d}/proxy-client.pem;
            proxy_ssl_certificate_key {d}/proxy-client.key;
            proxy_ssl_trusted_certificate {d}/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"#,
        backend = backend.addr.port()
    );
    let conf_path = dir.write("nginx.conf", &conf);
    let child = spawn(
        "nginx",
        &["-c", &conf_path.display().to_string(), "-p", &d.to_string()],
        dir.path(),
    );
    wait_for(port).await;
    Proxied {
        pki,
        _dir: dir,
        backend,
        proxy_port: port,
        child,
    }
}

async fn with_haproxy() -> Proxied {
    let pki = Pki::new();
    let dir = TempDir::new("haproxy");
    let proxy_client = pki.ca.leaf().spiffe(PROXY_ID).build();
    write_pki(&dir, &pki, &proxy_client);
    let backend = Server::start(
        pki.config().build().unwrap(),
        backend_app(ForwardedFormat::Rfc9440),
    )
    .await;
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"
global
    log stderr format raw local0 warning
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend edge
    bind 127.0.0.1:{port} ssl crt {d}/server-combined.pem ca-file {d}/ca.pem verify required ssl-min-ver TLSv1.3
    http-request set-header Client-Cert ":%[ssl_c_der,base64]:"
    http-request set-header X-Forwarded-Client-Cert "Hash=%[ssl_c_der,sha2(256),hex];Subject=\"%[ssl_c_s_dn]\""
    default_backend app
backend app
    server s1 127.0.0.1:{backend} ssl crt {d}/proxy-client-combined.pem ca-file {d}/ca.pem verify required sni str(localhost) ssl-min-ver TLSv1.3
"#,
        backend = backend.addr.port()
    );
    let conf_path = dir.write("haproxy.cfg", &conf);
    let child = spawn(
        "haproxy",
        &["-f", &conf_path.display().to_string(), "-db"],
        dir.path(),
    );
    wait_for(port).await;
    Proxied {
        pki,
        _dir: dir,
        backend,
        proxy_port: port,
        child,
    }
}

async fn through_proxy(p: &Proxied, client: &TestCert) -> Outcome {
    let addr = ([127, 0, 0, 1], p.proxy_port).into();
    TestClient::new(&p.pki.ca)
        .with_cert(client)
        .get(addr, "/")
        .await
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_forwards_the_client_identity() {
    let p = with_nginx().await;
    let alice = p.pki.ca.leaf().common_name("alice").build();
    let outcome = through_proxy(&p, &alice).await;
    assert_eq!(
        outcome,
        Outcome::Status(
            200,
            "CN=alice via TrustedProxy { header: \"x-ssl-client-cert\" }; leaked []".into()
        )
    );
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_refuses_a_rogue_client_at_its_own_handshake() {
    let p = with_nginx().await;
    let mallory = p.pki.rogue_ca.leaf().common_name("alice").build();
    let outcome = through_proxy(&p, &mallory).await;
    assert_ne!(outcome.status(), Some(200), "{outcome:?}");
}

#[tokio::test]
#[ignore = "needs haproxy"]
async fn haproxy_forwards_the_client_identity_in_rfc9440_client_cert() {
    let p = with_haproxy().await;
    let alice = p.pki.ca.leaf().common_name("alice").build();
    let outcome = through_proxy(&p, &alice).await;
    // The XFCC-style header HAProxy also sends is not the configured format: it is stripped.
    assert_eq!(
        outcome,
        Outcome::Status(
            200,
            "CN=alice via TrustedProxy { header: \"client-cert\" }; leaked []".into()
        )
    );
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn a_client_talking_to_the_backend_directly_gets_nothing_for_a_forged_header() {
    let p = with_nginx().await;
    let alice = p.pki.ca.leaf().common_name("alice").build();
    let mallory = p.pki.ca.leaf().common_name("mallory").build();
    // Mallory has a certificate from the same CA and forges alice's certificate in every format.
    let forged = [
        (
            "x-ssl-client-cert",
            mtls_tower::testing::nginx_escaped_cert_header(&alice),
        ),
        ("client-cert", client_cert_header(&alice)),
        (
            "x-forwarded-client-cert",
            mtls_tower::testing::xfcc_header(&alice),
        ),
    ];
    let client = TestClient::new(&p.pki.ca).with_cert(&mallory);
    let outcome = client.get_with_headers(p.backend.addr, "/", &forged).await;
    assert_eq!(
        outcome,
        Outcome::Status(200, "CN=mallory via TlsHandshake; leaked []".into())
    );
}
