//! A certificate's end is the end of its access, over real TLS on 127.0.0.1: a TLS session
//! resumed past the leaf's `notAfter` gets nothing, an open connection (HTTP/1.1 keep-alive,
//! HTTP/2, gRPC) is closed at the end of its chain's validity with its streams ended, and a
//! request that starts after it is refused on every path. Leaves here live a few seconds.
//! `external_clients.rs` has the same resumption check with `openssl s_client -sess_in`.

#![allow(clippy::unwrap_used)]

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mtls_examples::greeter::{
    Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest, SetGreetingReply,
    SetGreetingRequest, Streams, StreamsClient, StreamsServer,
};
use mtls_examples::grpc_channel;
use mtls_tests::{listener, Pki, Server};
use mtls_tower::testing::{TestCert, TestClient};
use mtls_tower::{ClientCert, MtlsMakeService, RequireClientCertLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_stream::{Stream, StreamExt};
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};
use tower::Layer;

/// A leaf from `issuer` valid for about `secs` more seconds (X.509 times have whole seconds).
fn short_lived(issuer: &mtls_tower::testing::TestCa, secs: u64) -> TestCert {
    let now = SystemTime::now();
    issuer
        .leaf()
        .common_name("short-lived")
        .validity(
            now - Duration::from_secs(60),
            now + Duration::from_secs(secs),
        )
        .build()
}

/// How long until `end`, and then `extra`.
fn until(end: SystemTime, extra: Duration) -> Duration {
    end.duration_since(SystemTime::now()).unwrap_or_default() + extra
}

/// Chunks every 100 ms, for ever: a response that only the server's close can end.
struct Ticks(Pin<Box<Sleep>>);

impl Ticks {
    fn new() -> Ticks {
        Ticks(Box::pin(tokio::time::sleep(Duration::ZERO)))
    }
}

impl Stream for Ticks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let next = tokio::time::Instant::now() + Duration::from_millis(100);
                self.0.as_mut().reset(next);
                Poll::Ready(Some(Ok(Bytes::from_static(b"tick\n"))))
            }
        }
    }
}

fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|cert: ClientCert| async move { format!("hello {}", cert.subject()) }),
        )
        .route("/ticks", get(|| async { Body::from_stream(Ticks::new()) }))
        .layer(RequireClientCertLayer::any_verified())
}

async fn server(pki: &Pki) -> Server {
    Server::start(pki.config().build().unwrap(), app()).await
}

/// One keep-alive `GET /` on `tls`; the response's head and body as text.
async fn keep_alive_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    tls: &mut S,
) -> String {
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("hello CN=") {
        let n = tls.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Serves `/` with `client` on a full handshake, then on a resumed one (so the test below
/// really resumes), waits until `end` has passed, and resumes once more: what that got
/// (nothing, when the session was refused).
async fn resume_after(client: &TestClient, server: &Server, end: SystemTime) -> Vec<u8> {
    let resumed = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    };
    let mut first = client.connect(server.addr).await.unwrap();
    assert!(!resumed(&first));
    assert!(keep_alive_get(&mut first).await.contains("200 OK"));
    drop(first);
    let mut second = client.connect(server.addr).await.unwrap();
    assert!(
        resumed(&second),
        "the client did not resume: the test would prove nothing"
    );
    assert!(keep_alive_get(&mut second).await.contains("200 OK"));
    drop(second);

    tokio::time::sleep(until(end, Duration::from_millis(1200))).await;
    let mut third = client.connect(server.addr).await.unwrap();
    assert!(resumed(&third));
    let _ = third
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "the resumed connection was neither answered nor closed"
    );
    answer
}

/// A keep-alive connection presenting `cert`, served once, is closed by the server after `end`
/// (and not before), within 5 s of it.
async fn closed_after(server: &Server, pki: &Pki, cert: &TestCert, end: SystemTime) {
    let mut tls = TestClient::new(&pki.ca)
        .with_cert(cert)
        .connect(server.addr)
        .await
        .unwrap();
    assert!(keep_alive_get(&mut tls).await.contains("200 OK"));
    let closed = mtls_tests::closed_within(&mut tls, until(end, Duration::from_secs(5))).await;
    assert!(closed.is_some(), "still open 5 s after the end");
    // Not before it (X.509 times are whole seconds).
    assert!(SystemTime::now() >= end);
}

#[tokio::test]
async fn a_rustls_client_cannot_resume_past_the_leaf_expiry() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let leaf = short_lived(&pki.ca, 5);
    // One client configuration: rustls keeps the tickets it gets and resumes with them.
    let client = TestClient::new(&pki.ca).with_cert(&leaf);
    let answer = resume_after(&client, &server, leaf.identity().not_after()).await;
    assert!(
        answer.is_empty(),
        "a resumed session past its leaf's end was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // A fresh client makes a full handshake, which rustls refuses.
    let fresh = TestClient::new(&pki.ca).with_cert(&leaf);
    let outcome = fresh.get(server.addr, "/").await;
    assert!(outcome.refused_with("CertificateExpired"), "{outcome:?}");
}

#[tokio::test]
async fn a_session_cannot_be_resumed_past_its_intermediates_expiry() {
    // The leaf lasts 30 days; the intermediate that issued it, seconds. Dates alone cannot tell
    // an expired intermediate from an unused extra certificate: the resumed chain is verified
    // again.
    let pki = Pki::new();
    let server = server(&pki).await;
    let now = SystemTime::now();
    let intermediate = pki.ca.intermediate_with_validity(
        "Short intermediate",
        now - Duration::from_secs(60),
        now + Duration::from_secs(5),
    );
    let leaf = intermediate.leaf().common_name("long-leaf").build();
    let (_, intermediate_end) = mtls_core::identity::validity_of(leaf.chain()[1].as_ref()).unwrap();
    let client = TestClient::new(&pki.ca).with_cert(&leaf);
    let answer = resume_after(&client, &server, intermediate_end).await;
    assert!(
        answer.is_empty(),
        "a resumed session past its intermediate's end was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_keep_alive_http1_connection_is_closed_when_the_leaf_expires() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let leaf = short_lived(&pki.ca, 3);
    closed_after(&server, &pki, &leaf, leaf.identity().not_after()).await;
}

#[tokio::test]
async fn a_connection_is_closed_when_an_intermediate_expires_before_the_leaf() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let now = SystemTime::now();
    let intermediate = pki.ca.intermediate_with_validity(
        "Short intermediate",
        now - Duration::from_secs(60),
        now + Duration::from_secs(3),
    );
    // The leaf itself is good for 30 days.
    let leaf = intermediate.leaf().common_name("long-leaf").build();
    let (_, intermediate_end) = mtls_core::identity::validity_of(leaf.chain()[1].as_ref()).unwrap();
    closed_after(&server, &pki, &leaf, intermediate_end).await;
}

#[tokio::test]
async fn a_connection_is_closed_when_the_crls_next_update_passes() {
    // Past the CRL's nextUpdate a full handshake is refused (expired CRLs are, by default), so
    // a connection admitted under it ends then: a revocation published later cannot be missed.
    let pki = Pki::new();
    let crl = pki
        .ca
        .crl_until(&[], SystemTime::now() + Duration::from_secs(3));
    let next_update = mtls_core::identity::crl_next_update(crl.der().as_ref())
        .unwrap()
        .unwrap();
    let config = pki.config().crls(vec![crl.der().clone()]).build().unwrap();
    assert_eq!(config.revocation_valid_until(), Some(next_update));
    let server = Server::start(config, app()).await;
    let leaf = pki.ca.leaf().common_name("long-leaf").build();
    closed_after(&server, &pki, &leaf, next_update).await;
}

/// A client CA that expires in `secs` seconds, a server that trusts it (and serves with
/// `pki`'s server certificate), a leaf of it good for 30 days, and the CA's `notAfter`.
async fn short_client_ca(pki: &Pki, secs: u64) -> (Server, TestCert, SystemTime) {
    let now = SystemTime::now();
    let ca = mtls_tower::testing::TestCa::with_validity(
        "Short client CA",
        now - Duration::from_secs(60),
        now + Duration::from_secs(secs),
    );
    let (_, end) = mtls_core::identity::validity_of(ca.cert_der().as_ref()).unwrap();
    let config = pki
        .config()
        .client_ca_certs(vec![ca.cert_der().clone()])
        .build()
        .unwrap();
    let leaf = ca.leaf().common_name("long-leaf").build();
    (Server::start(config, app()).await, leaf, end)
}

#[tokio::test]
async fn a_connection_is_closed_when_its_client_ca_expires() {
    // webpki never checks a trust anchor's dates; we do, so a client CA's end ends the access
    // of every client it issued, open connections included.
    let pki = Pki::new();
    let (server, leaf, ca_end) = short_client_ca(&pki, 3).await;
    closed_after(&server, &pki, &leaf, ca_end).await;
}

#[tokio::test]
async fn after_its_client_ca_expires_a_client_can_neither_resume_nor_handshake() {
    let pki = Pki::new();
    let (server, leaf, ca_end) = short_client_ca(&pki, 5).await;
    let client = TestClient::new(&pki.ca).with_cert(&leaf);
    let answer = resume_after(&client, &server, ca_end).await;
    assert!(
        answer.is_empty(),
        "a resumed session past its client CA's end was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    let fresh = TestClient::new(&pki.ca).with_cert(&leaf);
    let outcome = fresh.get(server.addr, "/").await;
    assert!(outcome.refused_with("CertificateExpired"), "{outcome:?}");
}

#[tokio::test]
async fn an_http2_stream_ends_and_no_new_request_is_served_after_the_leaf_expires() {
    let pki = Pki::new();
    let server = server(&pki).await;
    let leaf = short_lived(&pki.ca, 3);
    let client = TestClient::new(&pki.ca).with_cert(&leaf);
    let (mut send, _driver) = mtls_tests::h2_client::<Empty<Bytes>>(&client, server.addr).await;
    let get = |path: &str| {
        http::Request::get(format!("https://localhost{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let res = send.send_request(get("/")).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut ticks = send.send_request(get("/ticks")).await.unwrap().into_body();
    let end = leaf.identity().not_after();
    // The stream goes on until the leaf's end, then ends within the second's grace.
    let mut last_tick = None;
    let ended = tokio::time::timeout(until(end, Duration::from_secs(4)), async {
        while let Some(frame) = ticks.frame().await {
            match frame {
                Ok(_) => last_tick = Some(SystemTime::now()),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream was still sending 4 s after the leaf expired"
    );
    let last_tick = last_tick.unwrap();
    assert!(
        last_tick <= end + Duration::from_millis(2500),
        "ticks went on {:?} past the leaf's end",
        last_tick.duration_since(end)
    );
    // The connection is gone: a request now is not served on it.
    let after = send.send_request(get("/")).await;
    assert!(
        after.as_ref().map_or(true, |r| r.status() != 200),
        "served after the leaf expired: {after:?}"
    );
}

#[tokio::test]
async fn on_plain_axum_serve_a_request_after_the_leaf_expires_is_401() {
    // `axum::serve` gets no connection deadlines from us: the connection stays open, and the
    // per-request date check is what refuses it.
    let pki = Pki::new();
    let l = listener(pki.config().build().unwrap(), |b| b).await;
    let addr: SocketAddr = l.local_addr();
    tokio::spawn(async move {
        let _ = axum::serve(l, MtlsMakeService::new(app())).await;
    });
    let leaf = short_lived(&pki.ca, 3);
    let mut tls = TestClient::new(&pki.ca)
        .with_cert(&leaf)
        .connect(addr)
        .await
        .unwrap();
    assert!(keep_alive_get(&mut tls).await.contains("200 OK"));
    tokio::time::sleep(until(
        leaf.identity().not_after(),
        Duration::from_millis(1200),
    ))
    .await;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

/// A greeter whose `SayHello` names the caller, and whose `Repeat` streams for ever.
struct Endless;

type Replies = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for Endless {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let cert = mtls_tower::grpc::client_cert(&request)?;
        Ok(Response::new(HelloReply {
            message: cert.subject().to_string(),
        }))
    }

    async fn set_greeting(
        &self,
        _request: Request<SetGreetingRequest>,
    ) -> Result<Response<SetGreetingReply>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

#[tonic::async_trait]
impl Streams for Endless {
    type RepeatStream = Replies;

    async fn repeat(&self, _request: Request<HelloRequest>) -> Result<Response<Replies>, Status> {
        let replies = Ticks::new().map(|_| {
            Ok(HelloReply {
                message: "tick".into(),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn collect(
        &self,
        _request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        Err(Status::unimplemented("not here"))
    }

    type ChatStream = Replies;

    async fn chat(
        &self,
        _request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Replies>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

#[tokio::test]
async fn a_grpc_server_stream_ends_and_calls_fail_after_the_leaf_expires() {
    let pki = Pki::new();
    let routes = Routes::new(GreeterServer::new(Endless)).add_service(StreamsServer::new(Endless));
    let server = Server::start(
        pki.config().build().unwrap(),
        RequireClientCertLayer::any_verified().grpc().layer(routes),
    )
    .await;
    let leaf = short_lived(&pki.ca, 3);
    let channel = grpc_channel(server.addr, pki.ca.cert_pem(), Some(&leaf)).unwrap();
    let mut greeter = GreeterClient::new(channel.clone());
    let hello = || HelloRequest { name: "x".into() };
    greeter.say_hello(hello()).await.unwrap();
    let mut stream = StreamsClient::new(channel)
        .repeat(hello())
        .await
        .unwrap()
        .into_inner();
    let end = leaf.identity().not_after();
    let mut last = None;
    let ended = tokio::time::timeout(until(end, Duration::from_secs(4)), async {
        while let Ok(Some(_)) = stream.message().await {
            last = Some(SystemTime::now());
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the gRPC stream was still sending 4 s after the leaf expired"
    );
    assert!(last.unwrap() <= end + Duration::from_millis(2500));
    // A unary call now: the channel's connection is gone, and a new one is refused at the
    // handshake (the leaf is expired).
    let after = greeter.say_hello(hello()).await;
    assert!(after.is_err(), "served after the leaf expired: {after:?}");
}
