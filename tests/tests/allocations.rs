//! What the allow path allocates (issue 20), counted by a counting global allocator
//! (`allocation-counter`, per thread) around one request, with the futures polled to completion
//! on this thread.
//!
//! Each test compares the same work with and without the piece under test, so that what axum,
//! http or the inner service allocate themselves does not count: the layer's and the route
//! guard's checks allocate nothing when they allow, and `AddClientCert` allocates only what
//! `http::Extensions` needs for the values it inserts (it boxes every value; http has no way to
//! reserve room).

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, Response};
use mtls_core::testing::TestCa;
use mtls_core::{ClientIdentity, Policy};
use mtls_tower::{require_cert, AddClientCert, ClientCert, PeerAddr, RequireClientCertLayer};
use tower::{Layer, Service, ServiceExt};

/// Polls `fut` once with a no-op waker; everything here completes without waiting.
fn ready<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the future should complete without waiting"),
    }
}

/// Allocations made on this thread by `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

fn identity() -> &'static ClientIdentity {
    static ID: OnceLock<ClientIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        let ca = TestCa::new("Allocations CA");
        ca.leaf()
            .common_name("api")
            .org_unit("engineering")
            .dns("api.billing.internal")
            .spiffe("spiffe://prod.example/ns/billing/sa/api")
            .build()
            .identity()
    })
}

/// The load tool's router-wide policy: three rules, one of them a negation.
fn policy() -> Policy {
    Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::san("*.billing.internal").unwrap(),
        !Policy::ou("contractors").unwrap(),
    ])
    .unwrap()
}

/// A request that carries the connection's certificate, as `AddClientCert` leaves it.
fn request_with_cert<B>(body: B) -> Request<B> {
    let mut req = Request::get("/api").body(body).unwrap();
    req.extensions_mut()
        .insert(ClientCert::for_tests(identity().clone()));
    req
}

/// An inner service that allocates nothing itself.
fn inner() -> impl Service<
    Request<()>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<String>, Infallible>>,
> + Clone {
    tower::service_fn(|_req: Request<()>| async { Ok(Response::new(String::new())) })
}

#[test]
fn policy_evaluation_allocates_nothing_when_it_allows() {
    let policy = policy();
    let id = identity();
    assert!(policy.allows(id));
    assert_eq!(allocations(|| assert!(policy.allows(id))), 0);
    assert_eq!(
        allocations(|| assert!(policy.evaluate(id).is_allow())),
        0,
        "evaluate allocates only to explain a denial"
    );
}

#[test]
fn the_layer_allocates_nothing_when_it_allows() {
    let mut bare = inner();
    let mut guarded = RequireClientCertLayer::new(policy()).layer(inner());
    // Warm up both (first calls may initialise statics, such as the tracing callsites).
    for _ in 0..2 {
        let res = ready(guarded.call(request_with_cert(()))).unwrap();
        assert_eq!(res.status(), 200);
    }
    let (req_a, req_b) = (request_with_cert(()), request_with_cert(()));
    let without = allocations(|| drop(ready(bare.call(req_a))));
    let with = allocations(|| {
        let res = ready(guarded.call(req_b)).unwrap();
        assert_eq!(res.status(), 200);
    });
    assert_eq!(with, without, "the layer's allow path allocated");
}

#[test]
fn the_layer_denies_without_a_certificate_and_that_is_counted_apart() {
    // Not a limit on the deny path (it builds a response and a reason), only that a test of the
    // allow path above cannot pass by denying.
    let mut guarded = RequireClientCertLayer::new(policy()).layer(inner());
    let res = ready(guarded.call(Request::get("/api").body(()).unwrap())).unwrap();
    assert_eq!(res.status(), 401);
}

#[test]
fn add_client_cert_allocates_only_the_extensions_it_inserts() {
    let peer: SocketAddr = "192.0.2.1:443".parse().unwrap();
    let cert = ClientCert::for_tests(identity().clone());
    let mut svc = AddClientCert::new(inner(), Some(cert.clone())).with_remote_addr(peer);
    ready(svc.call(Request::new(()))).unwrap();

    let by_hand = allocations(|| {
        let mut req = Request::new(());
        req.extensions_mut().insert(cert.clone());
        req.extensions_mut().insert(PeerAddr(peer));
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req.extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(peer),
            });
        drop(ready(inner().call(req)));
    });
    let through = allocations(|| drop(ready(svc.call(Request::new(())))));
    assert_eq!(through, by_hand);
}

#[require_cert(spiffe_path_prefix = "/ns/billing")]
async fn guarded_handler() -> &'static str {
    "ok"
}

async fn plain_handler() -> &'static str {
    "ok"
}

#[test]
fn the_route_guard_allocates_nothing_when_it_allows() {
    let guarded = Router::new().route("/api", get(guarded_handler));
    let plain = Router::new().route("/api", get(plain_handler));
    let run = |router: &Router| {
        let res = ready(router.clone().oneshot(request_with_cert(Body::empty()))).unwrap();
        assert_eq!(res.status(), 200);
    };
    for _ in 0..2 {
        run(&guarded);
        run(&plain);
    }
    let without = allocations(|| run(&plain));
    let with = allocations(|| run(&guarded));
    assert_eq!(with, without, "the guard's allow path allocated");
}
