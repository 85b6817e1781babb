//! `TrustedProxyLayer` where a unit test cannot see it: over real sockets, an IPv4 proxy that
//! connects to a dual-stack listener (`[::]`) is seen as `::ffff:a.b.c.d`, and is still the IPv4
//! peer `a.b.c.d` for the networks it is trusted by; and the warning for stripped headers, in the
//! log, only when there were any (its own test binary: the warning's rate limit is per process).

#![allow(clippy::unwrap_used)]

use std::net::{Ipv6Addr, SocketAddr};

use axum::routing::get;
use axum::Router;
use mtls_core::IpNetwork;
use mtls_tests::{Pki, Server};
use mtls_tower::testing::{xfcc_header, Outcome, TestClient};
use mtls_tower::{ClientCert, ForwardedFormat, MtlsListener, PeerAddr, TrustedProxyLayer};
use socket2::{Domain, Socket, Type};

/// A listener on `[::]` (an unused port) that also accepts IPv4, whatever the host's default.
fn dual_stack_listener() -> tokio::net::TcpListener {
    let socket = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
    socket.set_only_v6(false).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())
        .unwrap();
    socket.listen(128).unwrap();
    socket.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(socket.into()).unwrap()
}

/// Echoes the identity the handler sees and the peer address the server saw.
async fn whoami(cert: Option<ClientCert>, peer: axum::Extension<PeerAddr>) -> String {
    let who = cert.map_or("nobody".to_owned(), |c| c.subject().to_string());
    format!("{who} from {}", peer.0 .0.ip())
}

fn serve(pki: &Pki, trusted: &str) -> Server {
    let app = Router::new()
        .route("/", get(whoami))
        .layer(TrustedProxyLayer::by_peer_address(
            [IpNetwork::parse(trusted).unwrap()],
            ForwardedFormat::Xfcc,
        ));
    let listener = MtlsListener::builder(dual_stack_listener(), pki.config().build().unwrap())
        .build()
        .unwrap();
    Server::start_with(listener, app)
}

/// `GET /` from 127.0.0.1, as the proxy (its own certificate) forwarding alice's in XFCC.
async fn get_as_proxy(pki: &Pki, server: &Server) -> Outcome {
    let proxy = pki.ca.leaf().common_name("edge-proxy").build();
    let alice = pki.ca.leaf().common_name("alice").build();
    let v4 = SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
    TestClient::new(&pki.ca)
        .with_cert(&proxy)
        .get_with_headers(v4, "/", &[("x-forwarded-client-cert", xfcc_header(&alice))])
        .await
}

#[tokio::test]
async fn an_ipv4_proxy_on_a_dual_stack_listener_is_trusted_by_its_ipv4_network() {
    let pki = Pki::new();
    let server = serve(&pki, "127.0.0.0/8");
    let outcome = get_as_proxy(&pki, &server).await;
    assert_eq!(
        outcome,
        Outcome::Status(200, "CN=alice from ::ffff:127.0.0.1".into())
    );
}

#[tokio::test]
async fn an_ipv4_proxy_on_a_dual_stack_listener_outside_the_network_is_itself() {
    let pki = Pki::new();
    let server = serve(&pki, "10.0.0.0/8");
    let outcome = get_as_proxy(&pki, &server).await;
    assert_eq!(
        outcome,
        Outcome::Status(200, "CN=edge-proxy from ::ffff:127.0.0.1".into())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn stripping_forged_headers_is_logged_and_a_clean_request_is_not() {
    use tower::ServiceExt;

    let (logs, _guard) = mtls_tests::LogLines::capture_thread();
    let pki = Pki::new();
    let app =
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(TrustedProxyLayer::by_identity(
                mtls_core::Policy::spiffe_id("spiffe://prod.example/ns/edge/sa/proxy").unwrap(),
                ForwardedFormat::Xfcc,
            ));
    let mallory = std::sync::Arc::new(pki.ca.leaf().common_name("mallory").build().identity());
    let request = |forged: bool| {
        let mut b =
            axum::http::Request::get("/").extension(ClientCert::from_handshake(mallory.clone()));
        if forged {
            b = b.header("x-ssl-client-verify", "SUCCESS");
        }
        b.body(axum::body::Body::empty()).unwrap()
    };
    const WARNING: &str = "removed forwarded client-certificate header(s)";
    app.clone().oneshot(request(false)).await.unwrap();
    assert_eq!(logs.matching(WARNING).len(), 0);
    app.oneshot(request(true)).await.unwrap();
    assert_eq!(logs.matching(WARNING).len(), 1);
}
