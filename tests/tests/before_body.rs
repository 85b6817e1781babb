//! Authorization before cost, over real TLS. An axum handler's guard answers on the request
//! head, before any of the body is read: a rejected caller's cost does not depend on what it
//! sends. The same for tonic methods' `#[require_cert]` behind `grpc::guard_methods`; without
//! it, tonic decodes the message before the method's check runs, and the listener's body
//! budgets are what bound a rejected caller (the last test measures both).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use mtls_examples::greeter::{
    Greeter, GreeterServer, HelloReply, HelloRequest, SetGreetingReply, SetGreetingRequest,
};
use mtls_tests::{GrpcPrefixed, Pki, Server};
use mtls_tower::grpc::guard_methods;
use mtls_tower::require_cert;
use mtls_tower::testing::TestClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The tests of this file run one at a time: the memory test reads the process's RSS, which the
/// others' servers would move.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _one = ONE_AT_A_TIME.lock().await;
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

/// The same trait, no attributes.
struct Unguarded;

#[tonic::async_trait]
impl Greeter for Unguarded {
    async fn say_hello(
        &self,
        _request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(HelloReply {
            message: "hello".into(),
        }))
    }

    async fn set_greeting(
        &self,
        _request: tonic::Request<SetGreetingRequest>,
    ) -> Result<tonic::Response<SetGreetingReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

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

    #[require_cert(san = "*.ops.internal")]
    async fn set_greeting(
        &self,
        _request: tonic::Request<SetGreetingRequest>,
    ) -> Result<tonic::Response<SetGreetingReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

/// An optional-auth server whose only checks are `Guarded`'s method attributes, with or without
/// `guard_methods` in front.
async fn grpc_server(pki: &Pki, guarded: bool) -> Server {
    let config = pki.config().client_auth_optional().build().unwrap();
    if guarded {
        let routes = tonic::service::Routes::new(guard_methods(GreeterServer::new(Guarded)));
        Server::start(config, routes).await
    } else {
        let routes = tonic::service::Routes::new(GreeterServer::new(Guarded));
        Server::start(config, routes).await
    }
}

/// `SayHello` with a 4 MiB message of which only the first bytes come: the response head and
/// `grpc-status`, or `None` if there is none within `patience` (tonic waits for the message).
async fn unfinished_call(
    client: &TestClient,
    server: &Server,
    patience: Duration,
) -> Option<String> {
    unfinished_call_to(client, server, "/greeter.Greeter/SayHello", patience).await
}

/// [`unfinished_call`] to another method.
async fn unfinished_call_to(
    client: &TestClient,
    server: &Server,
    path: &str,
    patience: Duration,
) -> Option<String> {
    let (mut send, _driver) = mtls_tests::h2_client::<GrpcPrefixed>(client, server.addr).await;
    let request = http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(GrpcPrefixed::new(4 << 20, 1000))
        .unwrap();
    let response = tokio::time::timeout(patience, send.send_request(request))
        .await
        .ok()?
        .unwrap();
    Some(format!(
        "{} grpc-status {:?}",
        response.status(),
        response.headers().get("grpc-status")
    ))
}

#[test]
fn guard_methods_finds_every_guarded_method_of_the_impl() {
    let wrapped = guard_methods(GreeterServer::new(Guarded));
    let mut methods: Vec<&str> = wrapped.guarded_methods().collect();
    methods.sort_unstable();
    assert_eq!(methods, ["SayHello", "SetGreeting"]);
    // Another impl of the same trait, without attributes, gets none of them.
    let plain = guard_methods(GreeterServer::new(Unguarded));
    assert_eq!(plain.guarded_methods().count(), 0);
}

#[tokio::test]
async fn behind_guard_methods_a_rejected_call_is_answered_before_its_message_is_complete() {
    let _one = ONE_AT_A_TIME.lock().await;
    let pki = Pki::new();
    let server = grpc_server(&pki, true).await;
    let denied = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("www.web.internal").build());
    let answer = unfinished_call(&denied, &server, Duration::from_secs(3)).await;
    assert_eq!(answer.as_deref(), Some("200 OK grpc-status Some(\"7\")"));
    let anonymous = TestClient::new(&pki.ca);
    let answer = unfinished_call(&anonymous, &server, Duration::from_secs(3)).await;
    assert_eq!(answer.as_deref(), Some("200 OK grpc-status Some(\"16\")"));
}

#[tokio::test]
async fn behind_guard_methods_each_route_is_judged_by_its_own_methods_policy() {
    let _one = ONE_AT_A_TIME.lock().await;
    // SayHello admits billing, SetGreeting only ops: the billing caller's unfinished SayHello
    // waits for its message (allowed), its SetGreeting is denied at once.
    let pki = Pki::new();
    let server = grpc_server(&pki, true).await;
    let billing =
        TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("api.billing.internal").build());
    let say_hello = unfinished_call(&billing, &server, Duration::from_secs(1)).await;
    assert_eq!(say_hello, None);
    let set_greeting = unfinished_call_to(
        &billing,
        &server,
        "/greeter.Greeter/SetGreeting",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        set_greeting.as_deref(),
        Some("200 OK grpc-status Some(\"7\")")
    );
}

#[tokio::test]
async fn without_guard_methods_tonic_waits_for_the_message_before_the_check() {
    let _one = ONE_AT_A_TIME.lock().await;
    // What `guard_methods` changes: the same call gets no answer while its message is unfinished.
    let pki = Pki::new();
    let server = grpc_server(&pki, false).await;
    let denied = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("www.web.internal").build());
    let answer = unfinished_call(&denied, &server, Duration::from_secs(1)).await;
    assert_eq!(answer, None);
}

#[tokio::test]
async fn guard_methods_answers_byte_for_byte_as_the_method_would() {
    let _one = ONE_AT_A_TIME.lock().await;
    let pki = Pki::new();
    let (with, without) = (
        grpc_server(&pki, true).await,
        grpc_server(&pki, false).await,
    );
    let denied = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("www.web.internal").build());
    let anonymous = TestClient::new(&pki.ca);
    let allowed =
        TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("api.billing.internal").build());
    for (who, client) in [
        ("denied", &denied),
        ("anonymous", &anonymous),
        ("allowed", &allowed),
    ] {
        let path = "/greeter.Greeter/SayHello";
        let got = mtls_tests::grpc_exchange(client, with.addr, path).await;
        let want = mtls_tests::grpc_exchange(client, without.addr, path).await;
        assert_eq!(got, want, "{who}");
    }
}

/// 100 streams of 4 MiB gRPC messages that never finish, on one connection of `client`, against
/// [`grpc_server`], with the default limits: the server's RSS growth in MiB after 3 s.
async fn rss_growth_under_unfinished_messages(
    pki: &Pki,
    client: &TestClient,
    guarded: bool,
) -> u64 {
    let server = grpc_server(pki, guarded).await;
    let before = mtls_tests::rss_kib().unwrap();
    let (send, _driver) = mtls_tests::h2_client::<GrpcPrefixed>(client, server.addr).await;
    let calls = mtls_tests::unfinished_grpc_calls(&send, "/greeter.Greeter/SayHello", 100);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let growth = mtls_tests::rss_kib().unwrap().saturating_sub(before) / 1024;
    for c in calls {
        c.abort();
    }
    growth
}

// RSS is the process's: one test for every figure, guarded first (the allocator keeps what the
// unguarded run takes), with the file's other tests held off by `ONE_AT_A_TIME`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_grpc_callers_hold_nothing_behind_guard_methods_and_the_budget_without() {
    let _one = ONE_AT_A_TIME.lock().await;
    let pki = Pki::new();
    let denied = TestClient::new(&pki.ca).with_cert(&pki.ca.leaf().dns("www.web.internal").build());
    let anonymous = TestClient::new(&pki.ca);
    // Behind the wrapper nothing is read; without it, the per-connection budget (4 MiB) and
    // HTTP/2 buffers.
    for (guarded, bound) in [(true, 4), (false, 12)] {
        for (who, client) in [("denied", &denied), ("anonymous", &anonymous)] {
            let growth = rss_growth_under_unfinished_messages(&pki, client, guarded).await;
            println!("guard_methods {guarded}, {who} caller: RSS +{growth} MiB");
            assert!(
                growth <= bound,
                "{who} caller, guard_methods {guarded}: the server held {growth} MiB"
            );
        }
    }
}
