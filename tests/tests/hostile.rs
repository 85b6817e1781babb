//! Hostile connections over real TLS on 127.0.0.1: silent, dribbling, slow, idle, hoarding and
//! greedy peers against `mtls_tower::serve`, with the limits set small so that the tests run
//! fast. One behaviour per test; each would fail with the limit it protects removed.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use mtls_tests::{listener, GrpcPrefixed, NeverFinished, Pki, Server};
use mtls_tower::testing::TestClient;
use mtls_tower::MtlsListenerBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "slow ok"
            }),
        )
        .route(
            "/forever",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        )
        .route(
            "/upload",
            post(|body: Bytes| async move { body.len().to_string() })
                .layer(DefaultBodyLimit::max(16 * 1024 * 1024)),
        )
}

async fn server(
    pki: &Pki,
    configure: impl FnOnce(MtlsListenerBuilder) -> MtlsListenerBuilder,
) -> Server {
    let l = listener(pki.config().build().unwrap(), configure).await;
    Server::start_with(l, app())
}

fn client(pki: &Pki) -> TestClient {
    TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().common_name("good").build())
}

/// An HTTP/2 client connection with the good client's certificate.
async fn h2_client<B>(
    pki: &Pki,
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<()>,
)
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    mtls_tests::h2_client(&client(pki), addr).await
}

/// An HTTP/1.1 keep-alive request on an open TLS connection; returns the status line's code.
async fn h1_get(tls: &mut tokio_rustls::client::TlsStream<TcpStream>, path: &str) -> u16 {
    tls.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tls.read(&mut byte).await.unwrap(), 1, "closed mid-response");
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).await.unwrap();
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ---- before the handshake ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_flood_larger_than_the_handshake_bound_does_not_delay_good_clients() {
    let pki = Pki::new();
    // Deadlines far away, so only shedding the oldest unfinished handshakes can make room.
    let server = server(&pki, |b| {
        b.max_handshakes(16)
            .client_hello_timeout(Duration::from_secs(60))
            .handshake_timeout(Duration::from_secs(60))
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let good = client(&pki);
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(good.get(server.addr, "/").await.status(), Some(200));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a good client waited {:?} behind silent peers",
            started.elapsed()
        );
    }
    // The silent peers past the bound were closed, the oldest first.
    assert!(
        mtls_tests::closed_within(&mut silent[0], Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_dribbled_client_hello_is_closed_at_the_client_hello_timeout() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.client_hello_timeout(Duration::from_millis(500))
            .handshake_timeout(Duration::from_secs(60))
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    // A TLS record header that announces a 512-byte ClientHello, then a byte every 100 ms.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(&[0x01]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "still open after {took:?} of dribbling");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "closed after {took:?}, expected about 500 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_do_not_hold_descriptors_past_the_linger() {
    let pki = Pki::new();
    let server = server(&pki, |b| b).await;
    let rogue = TestClient::new(&pki.ca).with_cert(&pki.rogue_ca.leaf().build());
    // Clients that are refused and then keep their end open, sending nothing.
    let mut held = Vec::new();
    for _ in 0..20 {
        let tls = rogue.connect(server.addr).await.unwrap();
        held.push(tls);
    }
    for tls in &mut held {
        let took = mtls_tests::closed_within(tls, Duration::from_secs(5)).await;
        assert!(
            took.is_some(),
            "a refused client's connection was not closed"
        );
    }
}

// ---- after the handshake ----

#[tokio::test]
async fn a_half_sent_request_head_is_closed_at_the_request_header_timeout() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.request_header_timeout(Duration::from_millis(400))
    })
    .await;
    let mut tls = client(&pki).connect(server.addr).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ")
        .await
        .unwrap();
    let took = mtls_tests::closed_within(&mut tls, Duration::from_secs(10)).await;
    let took = took.expect("a half-sent head kept its connection open");
    assert!(took >= Duration::from_millis(300), "closed after {took:?}");
}

#[tokio::test]
async fn a_slowloris_head_after_a_request_is_closed_though_bytes_keep_coming() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.request_header_timeout(Duration::from_millis(500))
            .idle_timeout(Duration::from_secs(60))
    })
    .await;
    let mut tls = client(&pki).connect(server.addr).await.unwrap();
    assert_eq!(h1_get(&mut tls, "/").await, 200);
    let started = Instant::now();
    let head =
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = None;
    for byte in head.iter().cycle().take(200) {
        if tls.write_all(std::slice::from_ref(byte)).await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), tls.read(&mut buf)).await
        {
            closed = Some(started.elapsed());
            break;
        }
    }
    let took = closed.expect("a byte every 100 ms kept an unfinished head open");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test]
async fn a_tls_connection_that_never_sends_a_request_is_closed() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.request_header_timeout(Duration::from_millis(400))
    })
    .await;
    let mut tls = client(&pki).connect(server.addr).await.unwrap();
    assert!(mtls_tests::closed_within(&mut tls, Duration::from_secs(10))
        .await
        .is_some());
}

#[tokio::test]
async fn an_http2_connection_that_sends_only_its_preface_is_closed() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.request_header_timeout(Duration::from_millis(400))
            .idle_timeout(Duration::from_secs(60))
    })
    .await;
    let mut tls = mtls_tests::h2_tls(&client(&pki), server.addr).await;
    // The connection preface and an empty SETTINGS frame, then nothing.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let took = mtls_tests::closed_within(&mut tls, Duration::from_secs(10)).await;
    assert!(
        took.is_some(),
        "an HTTP/2 connection without a request stayed open"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.idle_timeout(Duration::from_millis(600))).await;
    let mut tls = client(&pki).connect(server.addr).await.unwrap();
    assert_eq!(h1_get(&mut tls, "/").await, 200);
    let took = mtls_tests::closed_within(&mut tls, Duration::from_secs(10)).await;
    let took = took.expect("an idle connection stayed open");
    assert!(took >= Duration::from_millis(450), "closed after {took:?}");
}

#[tokio::test]
async fn a_connection_in_use_is_not_closed_by_the_idle_timeout() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.idle_timeout(Duration::from_millis(500))).await;
    let mut tls = client(&pki).connect(server.addr).await.unwrap();
    // A request every 200 ms for 2 s: never idle for 500 ms; and one that takes 1.5 s.
    for _ in 0..10 {
        assert_eq!(h1_get(&mut tls, "/").await, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(h1_get(&mut tls, "/slow").await, 200);
}

#[tokio::test]
async fn at_its_maximum_age_a_connection_closes_after_its_request_in_flight() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.max_connection_age(Duration::from_millis(300))).await;
    let (mut send, driver) = h2_client::<http_body_util::Empty<Bytes>>(&pki, server.addr).await;
    let request = http::Request::get("https://localhost/slow")
        .body(http_body_util::Empty::new())
        .unwrap();
    let started = Instant::now();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"slow ok", "the request in flight finished");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    // GOAWAY was sent at 300 ms: no new stream is accepted, and the connection ends.
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the connection outlived its age")
        .unwrap();
}

#[tokio::test]
async fn a_request_that_never_finishes_is_cut_at_the_drain_timeout() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.max_connection_age(Duration::from_millis(200))
            .drain_timeout(Duration::from_millis(500))
    })
    .await;
    let mut tls = client(&pki).connect(server.addr).await.unwrap();
    tls.write_all(b"GET /forever HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let took = mtls_tests::closed_within(&mut tls, Duration::from_secs(10)).await;
    let took = took.expect("a never-ending request held its connection past age + drain");
    assert!(took >= Duration::from_millis(600), "closed after {took:?}");
}

#[tokio::test]
async fn graceful_shutdown_ends_within_the_drain_timeout_despite_a_stuck_request() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.drain_timeout(Duration::from_millis(500))).await;
    let mut tls = client(&pki).connect(server.addr).await.unwrap();
    tls.write_all(b"GET /forever HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown waited for a request that never ends")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
}

// ---- open connections ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_connections_make_room_for_new_clients() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.max_connections(4)).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut tls = client(&pki).connect(server.addr).await.unwrap();
        assert_eq!(h1_get(&mut tls, "/").await, 200);
        idle.push(tls);
    }
    let good = client(&pki);
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(good.get(server.addr, "/").await.status(), Some(200));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // The hoarded connections were the ones closed.
    assert!(
        mtls_tests::closed_within(&mut idle[0], Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_busy_connections_are_kept_and_the_newcomer_waits() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.max_connections(2)).await;
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let c = client(&pki);
            let addr = server.addr;
            tokio::spawn(async move { c.get(addr, "/slow").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let third = client(&pki).get(server.addr, "/").await;
    assert_eq!(third.status(), Some(200), "{third:?}");
    // Served only once a slow request (1.5 s) had finished and freed its slot.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the cap let a third connection in after {:?}",
        started.elapsed()
    );
    for b in busy {
        assert_eq!(
            b.await.unwrap().status(),
            Some(200),
            "a busy connection was closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_cap_closes_connections_past_it() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.max_connections_per_ip(3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tls = client(&pki).connect(server.addr).await.unwrap();
        assert_eq!(h1_get(&mut tls, "/").await, 200);
        held.push(tls);
    }
    let fourth = client(&pki).get(server.addr, "/").await;
    assert!(fourth.status().is_none(), "{fourth:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(client(&pki).get(server.addr, "/").await.status(), Some(200));
}

// ---- memory ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_http2_client_is_held_to_the_buffered_bytes_budget() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.max_buffered_request_bytes(16 * 1024 * 1024, 4 * 1024 * 1024)
            .request_body_timeout(Duration::from_secs(60))
    })
    .await;
    let before = mtls_tests::rss_kib().unwrap();
    // 4 connections × 50 streams × a never-finished 4 MiB upload: 800 MiB if the app got to
    // buffer everything it was sent.
    let mut streams = Vec::new();
    let mut drivers = Vec::new();
    for _ in 0..4 {
        let (send, driver) = h2_client::<NeverFinished>(&pki, server.addr).await;
        drivers.push(driver);
        for _ in 0..50 {
            let mut send = send.clone();
            let request = http::Request::post("https://localhost/upload")
                .body(NeverFinished { left: 4 << 20 })
                .unwrap();
            streams.push(tokio::spawn(async move {
                send.ready().await.unwrap();
                let _ = send.send_request(request).await;
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = mtls_tests::rss_kib().unwrap();
    let growth_mib = after.saturating_sub(before) / 1024;
    // The budget (16 MiB), the oldest body's 4 MiB, 4 × 256 KiB of HTTP/2 windows, the client's
    // own buffers and the allocator's slack: well under 100 MiB.
    assert!(
        growth_mib < 100,
        "RSS grew {growth_mib} MiB under a greedy client"
    );
    // A good client is still served on a connection of its own.
    assert_eq!(client(&pki).get(server.addr, "/").await.status(), Some(200));
    for s in streams {
        s.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_larger_than_the_budget_still_completes() {
    let pki = Pki::new();
    let server = server(&pki, |b| {
        b.max_buffered_request_bytes(1024 * 1024, 256 * 1024)
    })
    .await;
    let (mut send, _driver) = h2_client::<http_body_util::Full<Bytes>>(&pki, server.addr).await;
    let body = Bytes::from(vec![1u8; 3 * 1024 * 1024]);
    let request = http::Request::post("https://localhost/upload")
        .body(http_body_util::Full::new(body))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), send.send_request(request))
        .await
        .expect("the oldest body must always proceed")
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"3145728");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_arriving_fails_at_the_body_timeout() {
    let pki = Pki::new();
    let server = server(&pki, |b| b.request_body_timeout(Duration::from_millis(500))).await;
    let (mut send, _driver) = h2_client::<NeverFinished>(&pki, server.addr).await;
    let request = http::Request::post("https://localhost/upload")
        .body(NeverFinished { left: 1000 })
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), send.send_request(request))
        .await
        .expect("a stalled body held its request past the body timeout");
    // axum answers a failed body read with a 4xx; hyper may instead reset the stream.
    if let Ok(response) = response {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
}

// ---- the same limits for tonic ----

struct Greeter;

#[tonic::async_trait]
impl mtls_examples::greeter::Greeter for Greeter {
    async fn say_hello(
        &self,
        request: tonic::Request<mtls_examples::greeter::HelloRequest>,
    ) -> Result<tonic::Response<mtls_examples::greeter::HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(mtls_examples::greeter::HelloReply {
            message: format!("{} bytes", request.get_ref().name.len()),
        }))
    }

    async fn set_greeting(
        &self,
        _request: tonic::Request<mtls_examples::greeter::SetGreetingRequest>,
    ) -> Result<tonic::Response<mtls_examples::greeter::SetGreetingReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_unary_calls_with_unfinished_4_mib_messages_are_held_to_the_budget() {
    let pki = Pki::new();
    let routes = tonic::service::Routes::new(
        mtls_examples::greeter::GreeterServer::new(Greeter).max_decoding_message_size(8 << 20),
    );
    let l = listener(pki.config().build().unwrap(), |b| {
        b.max_buffered_request_bytes(16 << 20, 4 << 20)
    })
    .await;
    let server = Server::start_with(l, routes);
    let before = mtls_tests::rss_kib().unwrap();
    // The measurement: 100 never-finished 4 MB unary messages took a server from 13 MB
    // to 407 MB. Here, 3 connections x 100 of them.
    let mut calls = Vec::new();
    for _ in 0..3 {
        let (send, _driver) = h2_client::<GrpcPrefixed>(&pki, server.addr).await;
        // The header's length says 4 MiB; the bytes are not a valid protobuf, which tonic
        // would only find out once the message is complete.
        calls.extend(mtls_tests::unfinished_grpc_calls(
            &send,
            "/greeter.Greeter/SayHello",
            100,
        ));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let growth_mib = mtls_tests::rss_kib().unwrap().saturating_sub(before) / 1024;
    assert!(
        growth_mib < 100,
        "RSS grew {growth_mib} MiB under unfinished gRPC messages"
    );
    for c in calls {
        c.abort();
    }
}

struct Collector;

#[tonic::async_trait]
impl mtls_examples::greeter::Streams for Collector {
    type RepeatStream = Pin<
        Box<
            dyn tokio_stream::Stream<
                    Item = Result<mtls_examples::greeter::HelloReply, tonic::Status>,
                > + Send,
        >,
    >;

    async fn repeat(
        &self,
        _request: tonic::Request<mtls_examples::greeter::HelloRequest>,
    ) -> Result<tonic::Response<Self::RepeatStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }

    async fn collect(
        &self,
        request: tonic::Request<tonic::Streaming<mtls_examples::greeter::HelloRequest>>,
    ) -> Result<tonic::Response<mtls_examples::greeter::HelloReply>, tonic::Status> {
        let mut requests = request.into_inner();
        let mut names = Vec::new();
        while let Some(request) = requests.message().await? {
            names.push(request.name);
        }
        Ok(tonic::Response::new(mtls_examples::greeter::HelloReply {
            message: names.join(","),
        }))
    }

    type ChatStream = Self::RepeatStream;

    async fn chat(
        &self,
        _request: tonic::Request<tonic::Streaming<mtls_examples::greeter::HelloRequest>>,
    ) -> Result<tonic::Response<Self::ChatStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_stream_quiet_between_messages_outlives_the_body_timeout() {
    let pki = Pki::new();
    let routes = tonic::service::Routes::new(mtls_examples::greeter::StreamsServer::new(Collector));
    let l = listener(pki.config().build().unwrap(), |b| {
        b.request_body_timeout(Duration::from_millis(300))
    })
    .await;
    let server = Server::start_with(l, routes);
    let client_cert = pki.ca.leaf().common_name("good").build();
    let channel =
        mtls_examples::grpc_channel(server.addr, pki.ca.cert_pem(), Some(&client_cert)).unwrap();
    let mut client = mtls_examples::greeter::StreamsClient::new(channel);
    // Two messages 1 s apart: more than three body timeouts of silence, but between messages.
    let requests = async_stream_of(vec!["first", "second"], Duration::from_secs(1));
    let reply = tokio::time::timeout(Duration::from_secs(10), client.collect(requests))
        .await
        .expect("the call did not end")
        .expect("a quiet stream between messages must not be cut");
    assert_eq!(reply.into_inner().message, "first,second");
}

/// A stream of `HelloRequest`s with `gap` between them.
fn async_stream_of(
    names: Vec<&'static str>,
    gap: Duration,
) -> impl tokio_stream::Stream<Item = mtls_examples::greeter::HelloRequest> {
    use tokio_stream::StreamExt;
    tokio_stream::iter(names.into_iter().enumerate()).then(move |(i, name)| async move {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        mtls_examples::greeter::HelloRequest { name: name.into() }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_message_that_stops_half_way_fails_at_the_body_timeout() {
    let pki = Pki::new();
    let routes = tonic::service::Routes::new(mtls_examples::greeter::StreamsServer::new(Collector));
    let l = listener(pki.config().build().unwrap(), |b| {
        b.request_body_timeout(Duration::from_millis(500))
    })
    .await;
    let server = Server::start_with(l, routes);
    let (mut send, _driver) = h2_client::<GrpcPrefixed>(&pki, server.addr).await;
    let request = http::Request::post("https://localhost/greeter.Streams/Collect")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(GrpcPrefixed::new(1000, 10))
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), send.send_request(request))
        .await
        .expect("a half-sent message held its call past the body timeout");
    // tonic answers the failed read with a gRPC error status (or hyper resets the stream).
    if let Ok(response) = response {
        let status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let trailers = response
            .into_body()
            .collect()
            .await
            .ok()
            .and_then(|b| b.trailers().cloned());
        let status = status.or_else(|| {
            trailers.and_then(|t| t.get("grpc-status").map(|v| v.to_str().unwrap().to_owned()))
        });
        assert!(status.as_deref().is_some_and(|s| s != "0"), "{status:?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
}

/// `MtlsListener::bind` asks the kernel for a queue of 4,096 connections, not tokio's 1,024: at
/// its connection cap the listener accepts only as it frees room, and a good client's SYN must
/// wait in the queue rather than be dropped. Linux completes at most `backlog + 1` connections
/// for a listener that does not accept, so 1,100 of them all connecting tells the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_queues_more_connections_than_tokios_default_backlog() {
    const CONNECTIONS: usize = 1_100;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    if somaxconn.is_none_or(|n| n < CONNECTIONS) {
        // The kernel caps every backlog at somaxconn (older than Linux 5.4: 128), so no backlog
        // can be seen here. Not Linux, or an old kernel: nothing to measure.
        eprintln!("skipped: net.core.somaxconn is {somaxconn:?}, below {CONNECTIONS}");
        return;
    }
    // This process holds one descriptor per connection.
    let files = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            let line = s
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .to_owned();
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    if files.is_some_and(|n| n < CONNECTIONS + 100) {
        eprintln!(
            "skipped: the open-file limit is {files:?}, below {}",
            CONNECTIONS + 100
        );
        return;
    }
    let pki = Pki::new();
    // Never accepted from: the accept loop starts at the first `accept`, so every connection
    // stays in the kernel's queue.
    let listener = mtls_tower::MtlsListener::bind("127.0.0.1:0", pki.config().build().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let mut connects = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        connects.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
        });
    }
    let mut open = Vec::with_capacity(CONNECTIONS);
    let mut failed = 0;
    while let Some(done) = connects.join_next().await {
        match done.unwrap() {
            Ok(Ok(stream)) => open.push(stream),
            _ => failed += 1,
        }
    }
    assert_eq!(
        failed, 0,
        "{failed} of {CONNECTIONS} connections were not queued"
    );
    drop(listener);
}
