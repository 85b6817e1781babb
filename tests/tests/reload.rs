//! Hot reload of the TLS configuration on a running server over real TLS: swaps, refusals that
//! keep the old configuration, revocation that bites after a reload (resumption included), and
//! what happens to established connections.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use mtls_core::testing::{TestCa, TestCert};
use mtls_tests::{listener, LogLines, Pki, Server, TempDir};
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

/// A build for a watch: this PKI's server certificate in memory, the client CA bundle read from
/// `ca_path` at every build.
fn ca_file_build(
    pki: &Pki,
    ca_path: &std::path::Path,
) -> impl Fn() -> Result<MtlsConfig, mtls_tower::ConfigError> + Send + Sync + 'static {
    let (server, ca_path) = (pki.server.clone(), ca_path.to_owned());
    move || {
        MtlsConfig::builder()
            .server_cert(server.chain().to_vec(), server.key_der())
            .client_ca_pem_file(&ca_path)
            .build()
    }
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
    let build = ca_file_build(&pki, &ca_path);
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

/// Waits (up to 5 s) for the handle's generation to reach `n`.
async fn wait_for_generation(handle: &ReloadHandle, n: u64) {
    for _ in 0..250 {
        if handle.generation() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("generation {} after 5 s, expected {n}", handle.generation());
}

/// The leaf certificate the server presents to a new connection.
async fn served_leaf(pki: &Pki, server: &Server) -> Vec<u8> {
    let client = pki.ca.leaf().common_name("looker").build();
    let tls = TestClient::new(&pki.ca)
        .with_cert(&client)
        .connect(server.addr)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A server whose configuration is read from PEM files in `dir` (`server.pem`, `server.key`,
/// `ca.pem`, plus `extra` applied to the builder), following them every 20 ms.
async fn start_from_files(
    pki: &Pki,
    dir: &TempDir,
    extra: impl FnOnce(mtls_tower::MtlsConfigBuilder) -> mtls_tower::MtlsConfigBuilder,
) -> (Server, ReloadHandle, tokio::task::JoinHandle<()>) {
    let (cert, key) = dir.write_cert("server", &pki.server);
    let ca = dir.write("ca.pem", pki.ca.cert_pem());
    let config = extra(
        MtlsConfig::builder()
            .server_cert_pem_files(&cert, &key)
            .client_ca_pem_file(&ca),
    )
    .build()
    .unwrap();
    let listener = listener(config, |b| b).await;
    let handle = listener.reload_handle();
    let follower = handle.follow_files(Duration::from_millis(20));
    (Server::start_with(listener, app()), handle, follower)
}

#[tokio::test]
async fn following_files_waits_for_a_key_written_after_its_certificate_and_then_reloads() {
    let (logs, _guard) = LogLines::capture_thread();
    let pki = Pki::new();
    let dir = TempDir::new("reload-key-late");
    let (server, handle, follower) = start_from_files(&pki, &dir, |b| b).await;
    let old_leaf = served_leaf(&pki, &server).await;
    let rotated = pki.ca.server_cert("localhost");

    // The certificate first, as many tools write it; its key a little later.
    dir.write("server.pem", &rotated.chain_pem());
    tokio::time::sleep(Duration::from_millis(400)).await; // about 20 ticks
    assert_eq!(
        handle.generation(),
        0,
        "a half-written pair must not be applied"
    );
    assert_eq!(served_leaf(&pki, &server).await, old_leaf);
    let refusals = logs.matching("does not match the server certificate");
    assert_eq!(
        refusals.len(),
        1,
        "one line per failure, not per tick: {refusals:#?}"
    );
    assert!(refusals[0].contains("server.key"), "{}", refusals[0]);

    dir.write("server.key", rotated.key_pem());
    wait_for_generation(&handle, 1).await;
    assert_eq!(served_leaf(&pki, &server).await, rotated.der());
    assert_eq!(
        logs.matching("rebuilt after failed attempts").len(),
        1,
        "{:#?}",
        logs.matching("mtls_tower::reload")
    );
    // Nothing changes after that: no more reloads.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.generation(), 1);
    follower.abort();
}

#[cfg(unix)]
#[tokio::test]
async fn following_files_sees_a_kubernetes_secret_volume_swap() {
    use std::os::unix::fs::symlink;

    let pki = Pki::new();
    let dir = TempDir::new("reload-k8s");
    let root = dir.path();
    // The kubelet's layout: timestamped directories, `..data` pointing at the current one, and
    // each key a symlink through `..data`.
    let write_version = |name: &str, ca: &TestCa| {
        let version = root.join(name);
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("tls.crt"), pki.server.chain_pem()).unwrap();
        std::fs::write(version.join("tls.key"), pki.server.key_pem()).unwrap();
        std::fs::write(version.join("ca.crt"), ca.cert_pem()).unwrap();
        version
    };
    let first = write_version("..2026_12_02_10_00_00.1", &pki.ca);
    symlink("..2026_12_02_10_00_00.1", root.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        symlink(format!("..data/{file}"), root.join(file)).unwrap();
    }
    let config = MtlsConfig::builder()
        .server_cert_pem_files(root.join("tls.crt"), root.join("tls.key"))
        .client_ca_pem_file(root.join("ca.crt"))
        .build()
        .unwrap();
    let listener = listener(config, |b| b).await;
    let handle = listener.reload_handle();
    let follower = handle.follow_files(Duration::from_millis(20));
    let server = Server::start_with(listener, app());
    let old_client = pki.ca.leaf().common_name("old").build();
    assert_eq!(call(&pki, &server, &old_client).await.status(), Some(200));

    // The update: a new directory whose files keep the old modification times (so only their
    // identity tells them apart), then an atomic rename of a new `..data` over the old one.
    let new_ca = TestCa::new("Rotated Client CA");
    let second = write_version("..2026_12_02_11_00_00.2", &new_ca);
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        let old_time = std::fs::metadata(first.join(file))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(second.join(file))
            .unwrap()
            .set_modified(old_time)
            .unwrap();
    }
    symlink("..2026_12_02_11_00_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();

    wait_for_generation(&handle, 1).await;
    let new_client = new_ca.leaf().common_name("new").build();
    assert_eq!(call(&pki, &server, &new_client).await.status(), Some(200));
    assert!(call(&pki, &server, &old_client)
        .await
        .refused_with("UnknownCA"));
    follower.abort();
}

#[tokio::test]
async fn following_files_applies_a_new_der_crl_file() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-crl");
    let client = pki.ca.leaf().common_name("soon-revoked").build();
    let crl_path = dir.path().join("ca.crl");
    std::fs::write(&crl_path, pki.ca.crl(&[]).der()).unwrap();
    let (server, handle, follower) = start_from_files(&pki, &dir, |b| b.crl_file(&crl_path)).await;
    assert_eq!(call(&pki, &server, &client).await.status(), Some(200));

    std::fs::write(&crl_path, pki.ca.crl(&[&client.serial()]).der()).unwrap();
    wait_for_generation(&handle, 1).await;
    let outcome = call(&pki, &server, &client).await;
    assert!(outcome.refused_with("CertificateRevoked"), "{outcome:?}");
    follower.abort();
}

#[tokio::test]
async fn reload_files_reads_the_same_files_again() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-files");
    let (server, handle, follower) = start_from_files(&pki, &dir, |b| b).await;
    follower.abort();
    let new_ca = TestCa::new("Replacement CA");
    dir.write("ca.pem", new_ca.cert_pem());
    handle.reload_files().unwrap();
    assert_eq!(handle.generation(), 1);
    let client = new_ca.leaf().build();
    assert_eq!(call(&pki, &server, &client).await.status(), Some(200));
}

#[tokio::test]
async fn reload_files_refuses_a_half_written_pair_and_keeps_serving() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-files-bad");
    let (server, handle, follower) = start_from_files(&pki, &dir, |b| b).await;
    follower.abort();
    let old_leaf = served_leaf(&pki, &server).await;
    dir.write("server.pem", &pki.ca.server_cert("localhost").chain_pem());
    let err = handle.reload_files().unwrap_err();
    assert!(
        matches!(err, mtls_tower::ConfigError::KeyMismatch { .. }),
        "{err}"
    );
    assert_eq!(handle.generation(), 0);
    assert_eq!(served_leaf(&pki, &server).await, old_leaf);
}

#[tokio::test]
async fn a_bare_rustls_config_has_no_files_to_reload() {
    let pki = Pki::new();
    let raw = pki.config().build().unwrap().server_config();
    let listener = MtlsListener::bind("127.0.0.1:0", raw).await.unwrap();
    let err = listener.reload_handle().reload_files().unwrap_err();
    assert!(
        matches!(err, mtls_tower::ConfigError::NotRebuildable),
        "{err}"
    );
}

#[tokio::test]
async fn watching_files_retries_a_failed_build_at_every_tick_until_it_succeeds() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-retry");
    let (cert, key) = dir.write_cert("server", &pki.server);
    let build = {
        let (cert, key) = (cert.clone(), key.clone());
        let ca = pki.ca.cert_der().clone();
        move || {
            MtlsConfig::builder()
                .server_cert_pem_files(&cert, &key)
                .client_ca_certs(vec![ca.clone()])
                .build()
        }
    };
    let listener = listener(build().unwrap(), |b| b).await;
    let handle = listener.reload_handle();
    let server = Server::start_with(listener, app());
    // Only the certificate is watched: the key's own change would go unseen, so only a retry
    // of the failed build can pick it up.
    let watcher = handle.watch_files(vec![cert.clone()], Duration::from_millis(20), build);
    let rotated = pki.ca.server_cert("localhost");
    dir.write("server.pem", &rotated.chain_pem());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.generation(), 0);
    dir.write("server.key", rotated.key_pem());
    wait_for_generation(&handle, 1).await;
    assert_eq!(served_leaf(&pki, &server).await, rotated.der());
    watcher.abort();
}

#[tokio::test]
async fn a_watch_builds_on_the_blocking_pool_not_on_the_runtime_thread() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-blocking");
    let ca_path = dir.write("ca.pem", pki.ca.cert_pem());
    let (_server, handle) = start(&pki, false).await;
    let built_on = Arc::new(std::sync::Mutex::new(Vec::new()));
    let build = {
        let (build, built_on) = (ca_file_build(&pki, &ca_path), built_on.clone());
        move || {
            built_on.lock().unwrap().push(std::thread::current().id());
            build()
        }
    };
    let watcher = handle.watch_files(vec![ca_path.clone()], Duration::from_millis(20), build);
    dir.write("ca.pem", TestCa::new("Next CA").cert_pem());
    wait_for_generation(&handle, 1).await;
    watcher.abort();
    // This test's runtime has one thread, this one: a build here would have stalled every
    // connection the runtime serves while it read and parsed files.
    let built_on = built_on.lock().unwrap();
    assert!(!built_on.is_empty());
    assert!(built_on.iter().all(|id| *id != std::thread::current().id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reload_started_first_cannot_overwrite_one_that_comes_after_it() {
    let pki = Pki::new();
    let (_server, handle) = start(&pki, false).await;
    let old = pki.config().build().unwrap();
    let new = pki.config().build().unwrap();
    let new_rustls = new.server_config();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let slow = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            handle
                .reload_with(|| {
                    started_tx.send(()).unwrap();
                    // A SIGHUP build reading slow files: it read the *old* files.
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(old)
                })
                .unwrap();
        })
    };
    started_rx.recv().unwrap();
    // A newer configuration arrives while the slow build runs: it is applied after it.
    tokio::task::spawn_blocking({
        let handle = handle.clone();
        move || handle.reload(new)
    })
    .await
    .unwrap();
    slow.join().unwrap();
    assert_eq!(handle.generation(), 2);
    assert!(Arc::ptr_eq(&handle.current(), &new_rustls));
}

#[tokio::test]
async fn a_change_between_the_configurations_read_and_follow_files_is_followed() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-gap");
    let (cert, key) = dir.write_cert("server", &pki.server);
    let ca = dir.write("ca.pem", pki.ca.cert_pem());
    let config = MtlsConfig::builder()
        .server_cert_pem_files(&cert, &key)
        .client_ca_pem_file(&ca)
        .build()
        .unwrap();
    let listener = listener(config, |b| b).await;
    let handle = listener.reload_handle();
    let server = Server::start_with(listener, app());
    // Rotated after the configuration read it, before anyone watches.
    let new_ca = TestCa::new("Rotated before the watch");
    let next = dir.write("ca.pem.new", new_ca.cert_pem());
    std::fs::rename(&next, &ca).unwrap();
    let follower = handle.follow_files(Duration::from_millis(20));
    wait_for_generation(&handle, 1).await;
    let client = new_ca.leaf().build();
    assert_eq!(call(&pki, &server, &client).await.status(), Some(200));
    follower.abort();
}

#[tokio::test]
async fn files_that_keep_changing_are_not_applied_until_they_hold_still() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-still");
    let (_server, handle, follower) = start_from_files(&pki, &dir, |b| b).await;
    // A writer that rewrites the CA bundle every 5 ms (each a valid bundle): no two looks, 20 ms
    // apart, ever agree, so nothing is applied while it writes.
    let cas: Vec<String> = (0..4)
        .map(|i| TestCa::new(&format!("CA {i}")).cert_pem().to_owned())
        .collect();
    let path = dir.path().join("ca.pem");
    let until = std::time::Instant::now() + Duration::from_millis(400);
    let mut i = 0;
    while std::time::Instant::now() < until {
        std::fs::write(&path, &cas[i % cas.len()]).unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        handle.generation(),
        0,
        "applied while the file was still changing"
    );
    // Once it holds still, it is applied, once.
    wait_for_generation(&handle, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.generation(), 1);
    follower.abort();
}

#[tokio::test]
async fn a_build_that_panics_is_retried_without_another_change() {
    let pki = Pki::new();
    let dir = TempDir::new("reload-panic");
    let ca_path = dir.write("ca.pem", pki.ca.cert_pem());
    let (_server, handle) = start(&pki, false).await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let build = {
        let (build, calls) = (ca_file_build(&pki, &ca_path), calls.clone());
        move || {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                panic!("a build that panics once");
            }
            build()
        }
    };
    let watcher = handle.watch_files(vec![ca_path.clone()], Duration::from_millis(20), build);
    let next = dir.write("ca.pem.new", TestCa::new("After the panic").cert_pem());
    std::fs::rename(&next, &ca_path).unwrap();
    wait_for_generation(&handle, 1).await;
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    watcher.abort();
}

#[tokio::test]
async fn a_pem_crl_file_revokes_a_client_at_the_handshake() {
    let pki = Pki::new();
    let dir = TempDir::new("crl-pem-file");
    let revoked = pki.ca.leaf().common_name("revoked").build();
    let fine = pki.ca.leaf().common_name("fine").build();
    let crl_path = dir.write("ca.crl.pem", pki.ca.crl(&[&revoked.serial()]).pem());
    let (server, _handle, follower) = start_from_files(&pki, &dir, |b| b.crl_file(&crl_path)).await;
    follower.abort();
    let outcome = call(&pki, &server, &revoked).await;
    assert!(outcome.refused_with("CertificateRevoked"), "{outcome:?}");
    assert_eq!(call(&pki, &server, &fine).await.status(), Some(200));
}
