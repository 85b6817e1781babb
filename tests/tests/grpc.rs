//! gRPC end to end: the example protocol (`greeter.Greeter`, and `greeter.Streams` for the
//! streaming shapes) served by `mtls_tower::serve` over
//! real TLS on 127.0.0.1, called by tonic clients with tonic's own rustls client
//! (`ClientTlsConfig`). Policies come from `#[require_cert]` on the service methods and from a
//! server-wide `RequireClientCertLayer::grpc()`.

#![allow(clippy::unwrap_used)]

use mtls_examples::greeter::{
    Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest, SetGreetingReply,
    SetGreetingRequest, Streams, StreamsClient, StreamsServer,
};
use mtls_examples::{grpc_channel, handshake_refused, tls_alert};
use mtls_tests::{Pki, Server, TempDir};
use mtls_tower::grpc::GrpcTimeoutLayer;
use mtls_tower::testing::{client_cert_header, xfcc_header, TestCert};
use mtls_tower::{require_cert, MtlsConfig, Policy, RequireClientCertLayer};
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio_stream::{Stream, StreamExt};
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};
use tower::Layer;

const BILLING: &str = "spiffe://example.org/ns/billing/sa/api";
const WEB: &str = "spiffe://example.org/ns/web/sa/frontend";
const ADMIN: &str = "spiffe://example.org/ns/ops/sa/admin";
/// A `HelloRequest` with this name takes a minute to answer.
const SLOW: &str = "slow";

struct TestGreeter;

#[tonic::async_trait]
impl Greeter for TestGreeter {
    /// Answers with what the server knows of the call: the caller's SPIFFE ID from the handshake,
    /// and the peer address and local port tonic reports.
    #[require_cert(spiffe_path_prefix = ["/ns/billing", "/ns/ops"])]
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        if request.get_ref().name == SLOW {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        let caller = mtls_tower::grpc::client_cert(&request)?
            .spiffe_id()
            .map(ToString::to_string)
            .unwrap_or_default();
        let peer = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let port = request
            .local_addr()
            .map(|a| a.port().to_string())
            .unwrap_or_default();
        let message = format!("{caller} {peer} {port}");
        Ok(Response::new(HelloReply { message }))
    }

    #[require_cert(spiffe_id = "spiffe://example.org/ns/ops/sa/admin")]
    async fn set_greeting(
        &self,
        _request: Request<SetGreetingRequest>,
    ) -> Result<Response<SetGreetingReply>, Status> {
        Ok(Response::new(SetGreetingReply {
            previous: "hello".into(),
        }))
    }
}

fn trust_domain() -> RequireClientCertLayer {
    RequireClientCertLayer::new(Policy::trust_domain("example.org").unwrap())
}

/// Serves the greeter behind `layer` with gRPC rejections.
async fn start(config: MtlsConfig, layer: RequireClientCertLayer) -> Server {
    let routes = Routes::new(GreeterServer::new(TestGreeter));
    Server::start(config, layer.grpc().layer(routes)).await
}

fn client(pki: &Pki, server: &Server, cert: Option<&TestCert>) -> GreeterClient<Channel> {
    GreeterClient::new(grpc_channel(server.addr, pki.ca.cert_pem(), cert).unwrap())
}

fn spiffe(pki: &Pki, id: &str) -> TestCert {
    pki.ca.leaf().spiffe(id).build()
}

/// The handshake was refused; with `alert` when tonic got to read it (it may see only the closed
/// connection: see `handshake_refused`). The exact alerts are checked with a rustls client that
/// always reads them, in `handshake.rs`.
fn assert_refused(status: &Status, alert: &str) {
    match tls_alert(status) {
        Some(got) => assert_eq!(got, alert, "{status}"),
        None => assert!(
            handshake_refused(status),
            "not a refused handshake: {status}"
        ),
    }
}

fn hello() -> HelloRequest {
    HelloRequest { name: "x".into() }
}

/// `SayHello` on a new connection presenting `cert`: the reply's message.
async fn say_hello(pki: &Pki, server: &Server, cert: Option<&TestCert>) -> Result<String, Status> {
    let reply = client(pki, server, cert).say_hello(hello()).await?;
    Ok(reply.into_inner().message)
}

/// `SetGreeting` on a new connection presenting `cert`: the greeting it replaced.
async fn set_greeting(
    pki: &Pki,
    server: &Server,
    cert: Option<&TestCert>,
) -> Result<String, Status> {
    let request = SetGreetingRequest {
        greeting: "hi".into(),
    };
    let reply = client(pki, server, cert).set_greeting(request).await?;
    Ok(reply.into_inner().previous)
}

#[tokio::test]
async fn allowed_client_reaches_the_method_with_its_handshake_identity() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let billing = spiffe(&pki, BILLING);
    let answer = say_hello(&pki, &server, Some(&billing)).await.unwrap();
    assert_eq!(
        answer,
        format!("{BILLING} 127.0.0.1 {}", server.addr.port())
    );
    let admin = spiffe(&pki, ADMIN);
    assert_eq!(
        set_greeting(&pki, &server, Some(&admin)).await.unwrap(),
        "hello"
    );
}

/// A tonic channel through `MtlsClientConfig::connector()` (not tonic's own TLS), presenting
/// `cert` and authorizing the server by `server_policy`.
fn channel_through_connector(
    pki: &Pki,
    server: &Server,
    cert: &TestCert,
    server_policy: Policy,
) -> Channel {
    let config = mtls_tower::MtlsClientConfig::builder()
        .client_cert(cert.chain().to_vec(), cert.key_der())
        .server_ca_certs(vec![pki.ca.cert_der().clone()])
        .authorize_server(server_policy)
        .verify_hostname_too()
        .alpn_protocols(vec![b"h2".to_vec()])
        .build()
        .unwrap();
    // `http://`: tonic adds no TLS of its own; the connector always does.
    tonic::transport::Endpoint::from_shared(format!("http://localhost:{}", server.addr.port()))
        .unwrap()
        .connect_with_connector_lazy(config.connector())
}

#[tokio::test]
async fn a_tonic_channel_through_the_client_connector_reaches_the_method() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let billing = spiffe(&pki, BILLING);
    let channel =
        channel_through_connector(&pki, &server, &billing, Policy::cn("localhost").unwrap());
    let reply = GreeterClient::new(channel)
        .say_hello(hello())
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner().message,
        format!("{BILLING} 127.0.0.1 {}", server.addr.port())
    );
}

#[tokio::test]
async fn a_tonic_channel_through_the_client_connector_refuses_a_denied_server() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let billing = spiffe(&pki, BILLING);
    let channel =
        channel_through_connector(&pki, &server, &billing, Policy::cn("billing-api").unwrap());
    let status = GreeterClient::new(channel)
        .say_hello(hello())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    let mut chain = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&status);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    assert!(
        chain
            .iter()
            .any(|e| e.contains("refused by the server policy")),
        "{chain:?}"
    );
    // And typed: the policy's own reason, through tonic's and hyper's wrapping.
    let denied = mtls_tower::ServerDenied::find_in(&status).expect("a ServerDenied in the chain");
    assert!(denied.reason().rule().starts_with("cn"), "{denied}");
}

#[tokio::test]
async fn method_policy_denial_is_permission_denied() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let billing = spiffe(&pki, BILLING);
    let status = set_greeting(&pki, &server, Some(&billing))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "permission denied");
    let web = spiffe(&pki, WEB);
    let status = say_hello(&pki, &server, Some(&web)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn server_wide_layer_denial_is_a_grpc_status_not_an_http_403() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    // Same CA, a path the method allows, another trust domain: the layer refuses it.
    let partner = spiffe(&pki, "spiffe://partner.example/ns/billing/sa/api");
    let status = say_hello(&pki, &server, Some(&partner)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "permission denied");
    // A trailers-only gRPC response: the status came in grpc-status, with gRPC's content type.
    assert_eq!(
        status.metadata().get("content-type").unwrap(),
        "application/grpc"
    );
}

#[tokio::test]
async fn client_without_certificate_is_refused_at_the_handshake() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let status = say_hello(&pki, &server, None).await.unwrap_err();
    assert_refused(&status, "CertificateRequired");
}

#[tokio::test]
async fn client_from_a_rogue_ca_is_refused_at_the_handshake() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let mallory = pki.rogue_ca.leaf().spiffe(ADMIN).build();
    let status = set_greeting(&pki, &server, Some(&mallory))
        .await
        .unwrap_err();
    assert_refused(&status, "UnknownCA");
}

#[tokio::test]
async fn revoked_client_is_refused_at_the_handshake() {
    let pki = Pki::new();
    let billing = spiffe(&pki, BILLING);
    let crl = pki.ca.crl(&[&billing.serial()]);
    let config = pki.config().crls(vec![crl.der().clone()]).build().unwrap();
    let server = start(config, trust_domain()).await;
    let status = say_hello(&pki, &server, Some(&billing)).await.unwrap_err();
    assert_refused(&status, "CertificateRevoked");
}

#[tokio::test]
async fn optional_client_auth_without_certificate_the_layer_answers_unauthenticated() {
    let pki = Pki::new();
    let config = pki.config().client_auth_optional().build().unwrap();
    let server = start(config, trust_domain()).await;
    let status = say_hello(&pki, &server, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "client certificate required");
}

#[tokio::test]
async fn optional_client_auth_without_a_layer_the_method_answers_unauthenticated() {
    let pki = Pki::new();
    let config = pki.config().client_auth_optional().build().unwrap();
    // No server-wide layer: only the method's #[require_cert] stands in the way.
    let server = Server::start(config, Routes::new(GreeterServer::new(TestGreeter))).await;
    let status = say_hello(&pki, &server, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "client certificate required");
    let billing = spiffe(&pki, BILLING);
    assert!(say_hello(&pki, &server, Some(&billing)).await.is_ok());
    let web = spiffe(&pki, WEB);
    let status = say_hello(&pki, &server, Some(&web)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn not_found_mode_answers_like_an_unknown_method() {
    let pki = Pki::new();
    let server = start(
        pki.config().build().unwrap(),
        trust_domain().deny_as_not_found(),
    )
    .await;
    let partner = spiffe(&pki, "spiffe://partner.example/ns/billing/sa/api");
    let denied = say_hello(&pki, &server, Some(&partner)).await.unwrap_err();

    // A method the server does not have, called by an allowed client.
    let billing = spiffe(&pki, BILLING);
    let channel = grpc_channel(server.addr, pki.ca.cert_pem(), Some(&billing)).unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let unknown = grpc
        .unary::<HelloRequest, HelloReply, _>(
            Request::new(hello()),
            http::uri::PathAndQuery::from_static("/greeter.Greeter/NoSuchMethod"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();

    assert_eq!(denied.code(), Code::Unimplemented);
    assert_eq!(unknown.code(), Code::Unimplemented);
    assert_eq!(denied.message(), unknown.message());
}

#[tokio::test]
async fn forged_certificate_metadata_is_ignored_without_a_trusted_proxy() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let web = spiffe(&pki, WEB);
    let admin = spiffe(&pki, ADMIN);
    let mut request = Request::new(SetGreetingRequest {
        greeting: "owned".into(),
    });
    // The web frontend claims, in every forwarded-certificate format, to be the ops admin.
    let metadata = request.metadata_mut();
    metadata.insert(
        "x-forwarded-client-cert",
        xfcc_header(&admin).parse().unwrap(),
    );
    metadata.insert("client-cert", client_cert_header(&admin).parse().unwrap());
    let status = client(&pki, &server, Some(&web))
        .set_greeting(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

/// The greeter called by Python's grpcio (gRPC C-core and BoringSSL: another implementation of
/// both gRPC and TLS), through `tests/grpc_client.py`. Returns its one line of output.
async fn grpcio(pki: &Pki, server: &Server, cert: Option<&TestCert>, method: &str) -> String {
    let dir = TempDir::new("grpcio");
    let ca = dir.write("ca.pem", pki.ca.cert_pem());
    let (cert, key) = match cert {
        Some(c) => dir.write_cert("client", c),
        None => ("-".into(), "-".into()),
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/grpc_client.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(server.addr.to_string())
        .arg(&ca)
        .arg(&cert)
        .arg(&key)
        .arg(method)
        .arg("grpcio")
        .output()
        .await
        .expect("python3 runs (.ci/run installs grpcio: pip install grpcio)");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        output.status.success() && !stdout.is_empty(),
        "grpc_client.py failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
#[ignore = "needs python3 with grpcio (.ci/run installs it)"]
async fn grpcio_client_allowed_and_denied_by_method_policy() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let billing = spiffe(&pki, BILLING);
    let ok = grpcio(&pki, &server, Some(&billing), "SayHello").await;
    assert_eq!(ok, format!("OK {BILLING} 127.0.0.1 {}", server.addr.port()));
    let denied = grpcio(&pki, &server, Some(&billing), "SetGreeting").await;
    assert_eq!(denied, "ERR PERMISSION_DENIED permission denied");
    let admin = spiffe(&pki, ADMIN);
    assert_eq!(
        grpcio(&pki, &server, Some(&admin), "SetGreeting").await,
        "OK hello"
    );
}

#[tokio::test]
#[ignore = "needs python3 with grpcio (.ci/run installs it)"]
async fn grpcio_client_denied_by_the_server_wide_layer() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    let partner = spiffe(&pki, "spiffe://partner.example/ns/billing/sa/api");
    let denied = grpcio(&pki, &server, Some(&partner), "SayHello").await;
    assert_eq!(denied, "ERR PERMISSION_DENIED permission denied");
}

#[tokio::test]
#[ignore = "needs python3 with grpcio (.ci/run installs it)"]
async fn grpcio_client_without_certificate_or_from_a_rogue_ca_is_refused() {
    let pki = Pki::new();
    let server = start(pki.config().build().unwrap(), trust_domain()).await;
    // gRPC C-core does not surface the alert's name: in TLS 1.3 the server's alert arrives after
    // the client considers the handshake done, and C-core reports the failed read of it
    // ("TSI_DATA_CORRUPTED") as UNAVAILABLE. The same client with a good certificate gets through.
    let none = grpcio(&pki, &server, None, "SayHello").await;
    assert!(none.starts_with("ERR UNAVAILABLE"), "{none}");
    let mallory = pki.rogue_ca.leaf().spiffe(BILLING).build();
    let rogue = grpcio(&pki, &server, Some(&mallory), "SayHello").await;
    assert!(rogue.starts_with("ERR UNAVAILABLE"), "{rogue}");
    eprintln!("no certificate: {none}\nrogue CA: {rogue}");
    let billing = spiffe(&pki, BILLING);
    assert!(grpcio(&pki, &server, Some(&billing), "SayHello")
        .await
        .starts_with("OK "));
}

#[tokio::test]
async fn a_call_past_the_server_deadline_ends_with_deadline_exceeded() {
    let pki = Pki::new();
    let routes = Routes::new(GreeterServer::new(TestGreeter));
    let routes = GrpcTimeoutLayer::new()
        .max(Duration::from_millis(300))
        .layer(routes);
    let app = trust_domain().grpc().layer(routes);
    let server = Server::start(pki.config().build().unwrap(), app).await;
    let billing = spiffe(&pki, BILLING);
    let mut client = client(&pki, &server, Some(&billing));

    let started = Instant::now();
    let slow = HelloRequest { name: SLOW.into() };
    let status = client.say_hello(slow).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert_eq!(status.message(), "deadline exceeded");
    // The method sleeps a minute; the deadline ended the call long before that.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // A call within the deadline on the same connection is answered.
    assert!(client.say_hello(hello()).await.is_ok());
}

/// The replies of a server-streaming method.
type Replies = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

/// The three streaming shapes, each under the same method policy: the billing namespace.
struct TestStreams;

/// The caller's SPIFFE ID, for the replies.
fn caller<T>(request: &Request<T>) -> Result<String, Status> {
    let cert = mtls_tower::grpc::client_cert(request)?;
    Ok(cert
        .spiffe_id()
        .map(ToString::to_string)
        .unwrap_or_default())
}

#[tonic::async_trait]
impl Streams for TestStreams {
    type RepeatStream = Replies;

    #[require_cert(spiffe_path_prefix = "/ns/billing")]
    async fn repeat(&self, request: Request<HelloRequest>) -> Result<Response<Replies>, Status> {
        let caller = caller(&request)?;
        let name = request.into_inner().name;
        let replies: Vec<_> = (1..=3)
            .map(|i| {
                let message = format!("{i} {name} {caller}");
                Ok(HelloReply { message })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }

    #[require_cert(spiffe_path_prefix = "/ns/billing")]
    async fn collect(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        let caller = caller(&request)?;
        let mut requests = request.into_inner();
        let mut names = Vec::new();
        while let Some(request) = requests.message().await? {
            names.push(request.name);
        }
        let message = format!("{} {caller}", names.join(","));
        Ok(Response::new(HelloReply { message }))
    }

    type ChatStream = Replies;

    #[require_cert(spiffe_path_prefix = "/ns/billing")]
    async fn chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Replies>, Status> {
        let caller = caller(&request)?;
        let replies = request.into_inner().map(move |request| {
            let message = format!("{} {caller}", request?.name);
            Ok(HelloReply { message })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Every message of a server stream.
async fn all_replies(mut replies: Streaming<HelloReply>) -> Result<Vec<String>, Status> {
    let mut messages = Vec::new();
    while let Some(reply) = replies.message().await? {
        messages.push(reply.message);
    }
    Ok(messages)
}

/// Calls the three streaming methods; each answer is every message the client received.
async fn call_streams(
    pki: &Pki,
    server: &Server,
    cert: Option<&TestCert>,
) -> [Result<Vec<String>, Status>; 3] {
    let channel = grpc_channel(server.addr, pki.ca.cert_pem(), cert).unwrap();
    let mut client = StreamsClient::new(channel);
    let hello = |name: &str| HelloRequest { name: name.into() };
    let repeat = match client.repeat(hello("ann")).await {
        Ok(replies) => all_replies(replies.into_inner()).await,
        Err(status) => Err(status),
    };
    let requests = tokio_stream::iter([hello("ann"), hello("bob")]);
    let collect = client
        .collect(requests)
        .await
        .map(|reply| vec![reply.into_inner().message]);
    let requests = tokio_stream::iter([hello("ann"), hello("bob")]);
    let chat = match client.chat(requests).await {
        Ok(replies) => all_replies(replies.into_inner()).await,
        Err(status) => Err(status),
    };
    [repeat, collect, chat]
}

/// Serves `TestStreams` with no server-wide layer: only the methods' own checks.
async fn start_streams(config: MtlsConfig) -> Server {
    Server::start(config, Routes::new(StreamsServer::new(TestStreams))).await
}

#[tokio::test]
async fn streaming_methods_serve_a_client_their_policy_allows() {
    let pki = Pki::new();
    let server = start_streams(pki.config().build().unwrap()).await;
    let billing = spiffe(&pki, BILLING);
    let [repeat, collect, chat] = call_streams(&pki, &server, Some(&billing)).await;
    assert_eq!(
        repeat.unwrap(),
        [1, 2, 3].map(|i| format!("{i} ann {BILLING}"))
    );
    assert_eq!(collect.unwrap(), [format!("ann,bob {BILLING}")]);
    assert_eq!(
        chat.unwrap(),
        [format!("ann {BILLING}"), format!("bob {BILLING}")]
    );
}

#[tokio::test]
async fn streaming_methods_deny_a_client_outside_their_policy_before_any_message() {
    let pki = Pki::new();
    let server = start_streams(pki.config().build().unwrap()).await;
    let web = spiffe(&pki, WEB);
    let answers = call_streams(&pki, &server, Some(&web)).await;
    for (method, answer) in ["repeat", "collect", "chat"].into_iter().zip(answers) {
        let status = answer.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{method}: {status}");
        assert_eq!(status.message(), "permission denied", "{method}");
    }
}

#[tokio::test]
async fn streaming_methods_without_a_certificate_are_unauthenticated() {
    let pki = Pki::new();
    let config = pki.config().client_auth_optional().build().unwrap();
    let server = start_streams(config).await;
    let answers = call_streams(&pki, &server, None).await;
    for (method, answer) in ["repeat", "collect", "chat"].into_iter().zip(answers) {
        let status = answer.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{method}: {status}");
    }
}

/// `SayHello("slow")` written by hand over HTTP/1.1 with the given `grpc-timeout`, returning the
/// response head and how long it took. tonic's client enforces a deadline it sends on its own,
/// so only a hand-made call shows that the server enforces it.
async fn hand_made_slow_call(
    pki: &Pki,
    server: &Server,
    cert: &TestCert,
    grpc_timeout: &str,
) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut tls = mtls_tower::testing::TestClient::new(&pki.ca)
        .with_cert(cert)
        .connect(server.addr)
        .await
        .unwrap();
    // One gRPC message: not compressed, 6 bytes long, field 1 = "slow".
    let message = b"\x00\x00\x00\x00\x06\x0a\x04slow";
    let head = format!(
        "POST /greeter.Greeter/SayHello HTTP/1.1\r\nhost: localhost\r\n\
         content-type: application/grpc\r\nte: trailers\r\ngrpc-timeout: {grpc_timeout}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        message.len()
    );
    let started = Instant::now();
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(message).await.unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    (response, started.elapsed())
}

#[tokio::test]
async fn the_server_enforces_the_deadline_a_client_sends() {
    let pki = Pki::new();
    let routes = GrpcTimeoutLayer::new().layer(Routes::new(GreeterServer::new(TestGreeter)));
    let server = Server::start(pki.config().build().unwrap(), routes).await;
    let billing = spiffe(&pki, BILLING);

    let (response, took) = hand_made_slow_call(&pki, &server, &billing, "300m").await;
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("grpc-status: 4\r\n"), "{response}");
    // The method sleeps a minute; the client's deadline ended the call long before that.
    assert!(took < Duration::from_secs(30), "{took:?}");

    let (response, _) = hand_made_slow_call(&pki, &server, &billing, "+1S").await;
    assert!(response.contains("grpc-status: 13\r\n"), "{response}");
    assert!(
        response.contains("grpc-message: malformed%20grpc-timeout\r\n"),
        "{response}"
    );
}
