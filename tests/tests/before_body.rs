//! Authorization before cost, over real TLS. An axum handler's guard answers on the request
//! head, before any of the body is read: a rejected caller's cost does not depend on what it
//! sends. A tonic method's guard runs after tonic has decoded the message (see `mtls_tower::grpc`),
//! so there what a rejected caller can make the server hold is bounded by the listener's body
//! budgets, which the last tests measure.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use mtls_examples::greeter::{
    Greeter, GreeterServer, HelloReply, HelloRequest, SetGreetingReply, SetGreetingRequest,
};
use mtls_tests::{GrpcPrefixed, Pki, Server};
use mtls_tower::require_cert;
use mtls_tower::testing::TestClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[require_cert(san = "*.billing.internal")]
async fn upload(body: Bytes) -> String {
    format!("{} bytes", body.len())
}

/// Sends the head of a 64 MiB upload and a few bytes of it, then reads what comes back within
/// `patience`, without sending more.
async fn head_only(client: &TestClient, server: &Server, patience: Duration) -> String {
    let mut tls = client.connect(server.addr).await.unwrap();
    tls.write_all(
        b"POST /upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 67108864\r\n\r\nfirst bytes",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(patience, tls.read(&mut buf))
        .await
        .expect("no answer on the head alone: the guard waited for the body")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_denied_upload_is_answered_on_its_head_before_the_body_is_read() {
    let pki = Pki::new();
    let app = Router::new().route("/upload", post(upload));
    let server = Server::start(pki.config().client_auth_optional().build().unwrap(), app).await;
    let denied = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("www.web.internal").build());
    let answer = head_only(&denied, &server, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let anonymous = TestClient::new(&pki.ca);
    let answer = head_only(&anonymous, &server, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // The admitted caller's handler does wait for the body: the head alone gets no answer.
    let allowed =
        TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("api.billing.internal").build());
    let mut tls = allowed.connect(server.addr).await.unwrap();
    tls.write_all(b"POST /upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\n\r\nab")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), tls.read(&mut buf))
            .await
            .is_err(),
        "the handler answered before its body arrived"
    );
    tls.write_all(b"cde").await.unwrap();
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("5 bytes"));
}

struct Guarded;

#[tonic::async_trait]
impl Greeter for Guarded {
    #[require_cert(san = "*.billing.internal")]
    async fn say_hello(
        &self,
        _request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(HelloReply {
            message: "hello".into(),
        }))
    }

    #[require_cert(san = "*.billing.internal")]
    async fn set_greeting(
        &self,
        _request: tonic::Request<SetGreetingRequest>,
    ) -> Result<tonic::Response<SetGreetingReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

/// 100 streams of 4 MiB gRPC messages that never finish, on one connection of `client`, against
/// an optional-auth server whose only checks are the method attributes, with the default limits:
/// the server's RSS growth in MiB after 3 s.
async fn rss_growth_under_unfinished_messages(pki: &Pki, client: &TestClient) -> u64 {
    let routes = tonic::service::Routes::new(GreeterServer::new(Guarded));
    let server = Server::start(pki.config().client_auth_optional().build().unwrap(), routes).await;
    let before = mtls_tests::rss_kib().unwrap();
    let (send, _driver) = mtls_tests::h2_client::<GrpcPrefixed>(client, server.addr).await;
    let mut calls = Vec::new();
    for _ in 0..100 {
        let mut send = send.clone();
        let request = http::Request::post("https://localhost/greeter.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(GrpcPrefixed::new(4 << 20, (4 << 20) - 1))
            .unwrap();
        calls.push(tokio::spawn(async move {
            send.ready().await.unwrap();
            let _ = send.send_request(request).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let growth = mtls_tests::rss_kib().unwrap().saturating_sub(before) / 1024;
    for c in calls {
        c.abort();
    }
    growth
}

// One test, run alone in this file's process for RSS: both callers, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_grpc_callers_hold_no_more_than_the_connection_budget() {
    let pki = Pki::new();
    let denied = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("www.web.internal").build());
    let growth = rss_growth_under_unfinished_messages(&pki, &denied).await;
    println!("denied caller: RSS +{growth} MiB");
    assert!(
        growth <= 12,
        "a denied caller made the server hold {growth} MiB"
    );
    let anonymous = TestClient::new(&pki.ca);
    let growth = rss_growth_under_unfinished_messages(&pki, &anonymous).await;
    println!("anonymous caller: RSS +{growth} MiB");
    assert!(
        growth <= 12,
        "a caller without a certificate made the server hold {growth} MiB"
    );
}
