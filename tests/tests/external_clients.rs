//! The server against real external clients, driven as processes: `curl` and `openssl s_client`.
//! `.ci/run` installs both when they are missing; without them these tests fail and say so.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use axum::routing::get;
use axum::Router;
use mtls_core::testing::TestCert;
use mtls_core::Policy;
use mtls_tests::{Pki, Server, TempDir};
use mtls_tower::{ClientCert, RequireClientCertLayer};

struct Setup {
    pki: Pki,
    dir: TempDir,
    server: Server,
}

impl Setup {
    async fn new(allow_tls12: bool) -> Setup {
        let pki = Pki::new();
        let dir = TempDir::new("external");
        dir.write("ca.pem", pki.ca.cert_pem());
        let mut config = pki.config();
        if allow_tls12 {
            config = config.allow_tls12();
        }
        let app = Router::new()
            .route(
                "/",
                get(|cert: ClientCert| async move { format!("hello {}", cert.subject()) }),
            )
            .route(
                "/billing",
                get(|| async { "billing" }).route_layer(RequireClientCertLayer::new(
                    Policy::san("*.billing.internal").unwrap(),
                )),
            );
        let server = Server::start(config.build().unwrap(), app).await;
        Setup { pki, dir, server }
    }

    /// Writes a client certificate (chain) and key, returning their paths.
    fn client_files(&self, name: &str, cert: &TestCert) -> (PathBuf, PathBuf) {
        self.dir.write_cert(name, cert)
    }

    fn port(&self) -> u16 {
        self.server.addr.port()
    }
}

async fn run(mut cmd: Command, stdin: Option<&'static str>) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}); install it (.ci/run does)"));
        if let Some(input) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            let _ = pipe.write_all(input.as_bytes());
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn curl(s: &Setup, path: &str, client: Option<(PathBuf, PathBuf)>) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "20"])
        .args(["--write-out", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", s.port()))
        .arg("--cacert")
        .arg(s.dir.path().join("ca.pem"));
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg(format!("https://localhost:{}{path}", s.port()));
    run(cmd, None).await
}

const REQUEST: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

async fn s_client(s: &Setup, extra: &[&str], client: Option<(PathBuf, PathBuf)>) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{}", s.port()))
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
        ])
        .arg("-CAfile")
        .arg(s.dir.path().join("ca.pem"))
        .args(extra);
    if let Some((cert, key)) = client {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    run(cmd, Some(REQUEST)).await
}

#[tokio::test]
async fn curl_with_a_good_certificate_gets_200() {
    let s = Setup::new(false).await;
    let client = s.pki.ca.leaf().common_name("curl-client").build();
    let out = curl(&s, "/", Some(s.client_files("good", &client))).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.ends_with("hello CN=curl-client\n200"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn curl_without_a_certificate_is_refused_at_the_handshake() {
    let s = Setup::new(false).await;
    let out = curl(&s, "/", None).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("hello"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn curl_with_a_rogue_certificate_is_refused_at_the_handshake() {
    let s = Setup::new(false).await;
    let rogue = s.pki.rogue_ca.leaf().build();
    let out = curl(&s, "/", Some(s.client_files("rogue", &rogue))).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("unknown ca"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn curl_with_the_wrong_san_gets_403() {
    let s = Setup::new(false).await;
    let web = s.pki.ca.leaf().dns("www.web.internal").build();
    let out = curl(&s, "/billing", Some(s.client_files("web", &web))).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("forbidden\n\n403"),
        "{}",
        text(&out)
    );
    let billing = s.pki.ca.leaf().dns("api.billing.internal").build();
    let out = curl(&s, "/billing", Some(s.client_files("billing", &billing))).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("billing\n200"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn openssl_s_client_with_a_good_certificate_gets_200() {
    let s = Setup::new(false).await;
    let client = s.pki.ca.leaf().build();
    let out = s_client(&s, &["-quiet"], Some(s.client_files("good", &client))).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HTTP/1.1 200 OK"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn openssl_s_client_without_a_certificate_is_refused() {
    let s = Setup::new(false).await;
    let out = s_client(&s, &[], None).await;
    let all = text(&out);
    assert!(!all.contains("HTTP/1.1 200"), "{all}");
    assert!(all.contains("certificate required"), "{all}");
}

#[tokio::test]
async fn openssl_s_client_tls12_is_refused_by_default() {
    let s = Setup::new(false).await;
    let client = s.pki.ca.leaf().build();
    let out = s_client(&s, &["-tls1_2"], Some(s.client_files("good", &client))).await;
    let all = text(&out);
    assert!(!all.contains("HTTP/1.1 200"), "{all}");
    assert!(all.contains("protocol version"), "{all}");
}

#[tokio::test]
async fn openssl_s_client_tls12_is_accepted_with_allow_tls12() {
    let s = Setup::new(true).await;
    let client = s.pki.ca.leaf().build();
    let out = s_client(
        &s,
        &["-tls1_2", "-quiet"],
        Some(s.client_files("good", &client)),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HTTP/1.1 200 OK"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn openssl_s_client_tls11_is_refused_even_with_allow_tls12() {
    let s = Setup::new(true).await;
    let client = s.pki.ca.leaf().build();
    let out = s_client(
        &s,
        &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        Some(s.client_files("good", &client)),
    )
    .await;
    let all = text(&out);
    assert!(!all.contains("HTTP/1.1 200"), "{all}");
    assert!(!out.status.success(), "{all}");
}

/// Waits until `cert`'s leaf has expired, and a little more.
async fn until_expired(cert: &TestCert) {
    let left = cert
        .identity()
        .not_after()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + std::time::Duration::from_millis(1200)).await;
}

/// The reproduction: a session saved with `-sess_out` and resumed with `-sess_in` and no
/// certificate. Before the leaf expires that is served (the test really resumes); after, the
/// resumed connection gets no answer, and a full handshake is refused by rustls.
#[tokio::test]
async fn openssl_s_client_cannot_resume_past_the_leaf_expiry() {
    let s = Setup::new(false).await;
    let now = std::time::SystemTime::now();
    let short = s
        .pki
        .ca
        .leaf()
        .validity(
            now - std::time::Duration::from_secs(60),
            now + std::time::Duration::from_secs(6),
        )
        .build();
    let files = s.client_files("short", &short);
    let path = |name: &str| s.dir.path().join(name).to_string_lossy().into_owned();
    let (first, second) = (path("first.sess"), path("second.sess"));

    let out = s_client(&s, &["-sess_out", &first], Some(files.clone())).await;
    assert!(text(&out).contains("HTTP/1.1 200 OK"), "{}", text(&out));
    // Resumed, no certificate given: still served while the leaf is valid.
    let out = s_client(&s, &["-sess_in", &first, "-sess_out", &second], None).await;
    assert!(text(&out).contains("Reused, TLSv1.3"), "{}", text(&out));
    assert!(text(&out).contains("HTTP/1.1 200 OK"), "{}", text(&out));

    until_expired(&short).await;
    let out = s_client(&s, &["-sess_in", &second], None).await;
    assert!(text(&out).contains("Reused, TLSv1.3"), "{}", text(&out));
    assert!(!text(&out).contains("HTTP/1.1"), "{}", text(&out));
    // A full handshake with the expired leaf: rustls's own refusal.
    let out = s_client(&s, &[], Some(files)).await;
    assert!(!text(&out).contains("HTTP/1.1"), "{}", text(&out));
    assert!(text(&out).contains("certificate expired"), "{}", text(&out));
}
