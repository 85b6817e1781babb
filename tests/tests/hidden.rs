//! A hidden route looks like a missing one, compared byte for byte on the wire over real TLS: a
//! caller that `deny_as_not_found` turns away (denied by the policy, or with no certificate on a
//! `client_auth_optional()` server) gets, for every method and with or without a trailing slash,
//! exactly what the router answers for a path that does not exist; on gRPC, exactly what tonic
//! answers for a service that does not exist (status, headers in order, body, trailers).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use mtls_examples::greeter::{
    Greeter, GreeterServer, HelloReply, HelloRequest, SetGreetingReply, SetGreetingRequest,
};
use mtls_tests::{Pki, Server};
use mtls_tower::testing::{TestCert, TestClient};
use mtls_tower::{require_cert, Policy, RequireClientCertLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use tower::Layer;

fn billing() -> Policy {
    Policy::san("*.billing.internal").unwrap()
}

#[require_cert(san = "*.billing.internal", deny = "not_found")]
async fn by_attribute() -> &'static str {
    "billing by attribute"
}

fn app() -> Router {
    Router::new()
        // The layer around the route's whole `MethodRouter`, as a service: it answers before
        // axum's method routing, so methods the route does not serve get the same 404 (with
        // `MethodRouter::layer` axum would add an `allow` header to it).
        .route_service(
            "/billing",
            RequireClientCertLayer::new(billing())
                .deny_as_not_found()
                .layer(get(|| async { "billing" })),
        )
        .route("/attribute", get(by_attribute))
        .route("/open", get(|| async { "open" }))
}

/// The callers: turned away by the policy, with no certificate, and admitted.
struct Callers {
    denied: TestClient,
    anonymous: TestClient,
    allowed: TestClient,
}

fn callers(pki: &Pki) -> Callers {
    let leaf = |dns: &str| -> TestCert { pki.ca.leaf().dns(dns).build() };
    Callers {
        denied: TestClient::new(&pki.ca).with_cert(&leaf("www.web.internal")),
        anonymous: TestClient::new(&pki.ca),
        allowed: TestClient::new(&pki.ca).with_cert(&leaf("api.billing.internal")),
    }
}

async fn optional_auth_server(pki: &Pki, app: Router) -> Server {
    Server::start(pki.config().client_auth_optional().build().unwrap(), app).await
}

/// The whole HTTP/1.1 response to `method path`, as bytes on the wire, without its `date`.
async fn raw(client: &TestClient, addr: SocketAddr, method: &str, path: &str) -> String {
    let mut tls = client.connect(addr).await.unwrap();
    tls.write_all(
        format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response)
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

#[tokio::test]
async fn a_route_hidden_by_the_layer_answers_every_method_as_a_missing_route() {
    let pki = Pki::new();
    let server = optional_auth_server(&pki, app()).await;
    let c = callers(&pki);
    for (who, client) in [("denied", &c.denied), ("anonymous", &c.anonymous)] {
        for method in METHODS {
            for (hidden, missing) in [("/billing", "/missing"), ("/billing/", "/missing/")] {
                let got = raw(client, server.addr, method, hidden).await;
                let want = raw(client, server.addr, method, missing).await;
                assert_eq!(got, want, "{who} {method} {hidden}");
                assert!(got.starts_with("HTTP/1.1 404"), "{got}");
            }
        }
    }
    // The route is real: the admitted caller gets it, and a 405 for a method it does not serve.
    let got = raw(&c.allowed, server.addr, "GET", "/billing").await;
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("billing"),
        "{got}"
    );
    let got = raw(&c.allowed, server.addr, "POST", "/billing").await;
    assert!(got.starts_with("HTTP/1.1 405"), "{got}");
}

/// The whole HTTP/2 response to `method path` on `send`: status, headers in order (without
/// `date`), body.
async fn h2_raw(
    send: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    method: &str,
    path: &str,
) -> String {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    send.ready().await.unwrap();
    let response = send.send_request(request).await.unwrap();
    let mut out = format!("{}\n", response.status());
    for (name, value) in response.headers() {
        if name != "date" {
            out += &format!("{name}: {}\n", value.to_str().unwrap());
        }
    }
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    out + &format!("body {body:?}")
}

#[tokio::test]
async fn over_http2_too_a_hidden_route_answers_every_method_as_a_missing_route() {
    let pki = Pki::new();
    let server = optional_auth_server(&pki, app()).await;
    let c = callers(&pki);
    for (who, client) in [("denied", &c.denied), ("anonymous", &c.anonymous)] {
        let (mut send, _driver) =
            mtls_tests::h2_client::<http_body_util::Empty<bytes::Bytes>>(client, server.addr).await;
        for method in METHODS {
            for (hidden, missing) in [
                ("/billing", "/missing"),
                ("/billing/", "/missing/"),
                ("/attribute", "/missing"),
            ] {
                if hidden == "/attribute" && !matches!(method, "GET" | "HEAD") {
                    continue; // the attribute hides the handler's own methods only
                }
                let got = h2_raw(&mut send, method, hidden).await;
                let want = h2_raw(&mut send, method, missing).await;
                assert_eq!(got, want, "{who} {method} {hidden}");
                assert!(got.starts_with("404"), "{got}");
            }
        }
    }
}

#[tokio::test]
async fn a_handler_hidden_by_the_attribute_answers_its_own_methods_as_a_missing_route() {
    // The attribute guards the handler, so it hides the methods the handler serves (GET, and
    // HEAD, which axum routes to GET); other methods never reach it (see the layer test).
    let pki = Pki::new();
    let server = optional_auth_server(&pki, app()).await;
    let c = callers(&pki);
    for (who, client) in [("denied", &c.denied), ("anonymous", &c.anonymous)] {
        for method in ["GET", "HEAD"] {
            let got = raw(client, server.addr, method, "/attribute").await;
            let want = raw(client, server.addr, method, "/missing").await;
            assert_eq!(got, want, "{who} {method}");
        }
    }
    let got = raw(&c.allowed, server.addr, "GET", "/attribute").await;
    assert!(got.ends_with("billing by attribute"), "{got}");
}

struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        _request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: "hello".into(),
        }))
    }

    async fn set_greeting(
        &self,
        _request: Request<SetGreetingRequest>,
    ) -> Result<Response<SetGreetingReply>, Status> {
        Ok(Response::new(SetGreetingReply {
            previous: "hello".into(),
        }))
    }
}

#[tokio::test]
async fn a_grpc_service_hidden_by_the_layer_answers_as_a_missing_service() {
    let pki = Pki::new();
    let routes = Routes::new(GreeterServer::new(Hello));
    let hidden = RequireClientCertLayer::new(billing())
        .grpc()
        .deny_as_not_found()
        .layer(routes.clone());
    let guarded = Server::start(pki.config().client_auth_optional().build().unwrap(), hidden).await;
    // What tonic itself answers for a service it does not have.
    let plain = Server::start(pki.config().client_auth_optional().build().unwrap(), routes).await;
    let c = callers(&pki);
    let missing = mtls_tests::grpc_exchange(&c.allowed, plain.addr, "/nope.Nope/Call").await;
    assert!(missing.contains("grpc-status: 12"), "{missing}");
    for (who, client) in [("denied", &c.denied), ("anonymous", &c.anonymous)] {
        for path in [
            "/greeter.Greeter/SayHello",
            "/greeter.Greeter/Nope",
            "/nope.Nope/Call",
        ] {
            let got = mtls_tests::grpc_exchange(client, guarded.addr, path).await;
            assert_eq!(got, missing, "{who} {path}");
        }
    }
    let allowed =
        mtls_tests::grpc_exchange(&c.allowed, guarded.addr, "/greeter.Greeter/SayHello").await;
    assert!(allowed.contains("trailer grpc-status: 0"), "{allowed}");
}
