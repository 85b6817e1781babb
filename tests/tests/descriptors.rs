//! Out of file descriptors: a server process with a low `RLIMIT_NOFILE` and two listeners, one of
//! them hoarded by idle connections until `accept` fails with `EMFILE`. The other listener must
//! keep serving its good clients. The server runs as a child process (this test binary again,
//! under `ulimit -n`), so that the lowered limit cannot disturb other tests.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mtls_tests::{Pki, TempDir};
use mtls_tower::testing::TestClient;

/// Set in the child: the folder with the PEM files.
const CHILD_ENV: &str = "MTLS_DESCRIPTORS_CHILD_DIR";
/// The child's open-file limit.
const NOFILE: u32 = 128;

/// The child: when run by `descriptor_exhaustion_on_one_listener_does_not_stop_another`, serves
/// two listeners and prints their ports; otherwise does nothing.
#[test]
fn descriptors_child_server() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = |optional: bool| {
            let b = mtls_tower::MtlsConfig::builder()
                .server_cert_pem_files(dir.join("server.pem"), dir.join("server.key"))
                .client_ca_pem_file(dir.join("ca.pem"));
            if optional {
                b.client_auth_optional()
            } else {
                b
            }
            .build()
            .unwrap()
        };
        let tcp_a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // A: optional client auth, so strangers without a certificate complete the handshake,
        // with a cap far above the open-file limit and long timeouts: only the EMFILE handling
        // stands between its hoarders and B.
        let a = mtls_tower::MtlsListener::builder(tcp_a, config(true))
            .max_connections(10_000)
            .request_header_timeout(Duration::from_secs(120))
            .idle_timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let b = mtls_tower::MtlsListener::builder(tcp_b, config(false))
            .build()
            .unwrap();
        let ports = format!("{} {}", a.local_addr().port(), b.local_addr().port());
        std::fs::write(dir.join("ports.tmp"), ports).unwrap();
        std::fs::rename(dir.join("ports.tmp"), dir.join("ports")).unwrap();
        let app = || axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(mtls_tower::serve(a, app()));
        tokio::spawn(mtls_tower::serve(b, app()));
        // Until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await
        .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_on_one_listener_does_not_stop_another() {
    let pki = Pki::new();
    let dir = TempDir::new("descriptors");
    dir.write_cert("server", &pki.server);
    dir.write("ca.pem", pki.ca.cert_pem());
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
        .arg(&exe)
        .args([
            "--exact",
            "descriptors_child_server",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The child writes its two ports to a file once it listens.
    let started = Instant::now();
    let ports = loop {
        if let Ok(text) = std::fs::read_to_string(dir.path().join("ports")) {
            let mut p = text.split(' ').map(|p| p.parse::<u16>().unwrap());
            break (p.next().unwrap(), p.next().unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the child server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let a: SocketAddr = ([127, 0, 0, 1], ports.0).into();
    let b: SocketAddr = ([127, 0, 0, 1], ports.1).into();

    // Hoard A: twice the child's open-file limit in TLS connections without a certificate,
    // each kept open and idle.
    let stranger = TestClient::new(&pki.ca);
    let hoard: Vec<_> = (0..2 * NOFILE)
        .map(|_| {
            let c = stranger.clone();
            tokio::spawn(async move {
                let conn = c.connect(a).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(conn);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let good = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().common_name("good").build());
    for i in 0..10 {
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(10), good.get(b, "/"))
            .await
            .unwrap_or_else(|_| panic!("request {i} to the second listener hung"));
        assert_eq!(outcome.status(), Some(200), "request {i}: {outcome:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "request {i} took {:?}",
            started.elapsed()
        );
    }
    for h in hoard {
        h.abort();
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
