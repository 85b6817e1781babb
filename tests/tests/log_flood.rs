//! A flood of rejected requests and failed handshakes writes a bounded number of log lines: the
//! first of each kind in full, then at most `logging::events_per_second()` per kind and second,
//! with the rest counted into the `suppressed` field. Its own test binary, because it installs a
//! process-wide tracing subscriber.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use mtls_tests::{listener, LogLines, Pki, Server};
use mtls_tower::testing::TestClient;
use mtls_tower::RequireClientCertLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_rejections_and_failed_handshakes_writes_a_bounded_number_of_lines() {
    let lines = LogLines::capture_process(tracing::Level::DEBUG);
    let limit = mtls_tower::logging::events_per_second().unwrap() as usize;

    let pki = Pki::new();
    let config = pki.config().client_auth_optional().build().unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RequireClientCertLayer::any_verified());
    let server = Server::start_with(listener(config, |b| b).await, app);

    let started = Instant::now();
    let stranger = TestClient::new(&pki.ca);
    let rogue = TestClient::new(&pki.ca).with_cert(&pki.rogue_ca.leaf().build());
    let (mut rejected, mut refused) = (0, 0);
    // At least two one-second windows, so that a later line reports what was suppressed.
    while started.elapsed() < Duration::from_millis(2200) || rejected < 300 {
        assert_eq!(stranger.get(server.addr, "/").await.status(), Some(401));
        rejected += 1;
        if rejected % 3 == 0 {
            assert!(rogue.get(server.addr, "/").await.refused_with("UnknownCA"));
            refused += 1;
        }
    }
    let seconds = started.elapsed().as_secs() as usize + 1;
    // Let the last handshake-failure lines be written.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let rejections = lines.matching("request rejected: no verified client certificate");
    let handshakes = lines.matching("TLS handshake failed");
    let bound = limit * (seconds + 1);
    assert!(
        !rejections.is_empty() && rejections.len() <= bound,
        "{} rejection lines for {rejected} rejections over {seconds} s (bound {bound})",
        rejections.len()
    );
    assert!(
        !handshakes.is_empty() && handshakes.len() <= bound,
        "{} handshake lines for {refused} failed handshakes (bound {bound})",
        handshakes.len()
    );
    assert!(
        rejected > 2 * bound,
        "the flood ({rejected}) must exceed the bound ({bound})"
    );
    // The first is logged in full; a later one carries the count of those not logged.
    assert!(rejections[0].contains("suppressed=0") && rejections[0].contains("status=401"));
    assert!(
        rejections.iter().any(|l| !l.contains("suppressed=0")),
        "no line reported suppressed rejections"
    );
}
