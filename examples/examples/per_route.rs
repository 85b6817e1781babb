//! Per-route policies two ways, side by side: `#[require_cert]` on the handler, and a
//! `RequireClientCertLayer` on the route with `route_layer`. Both add to the router-wide layer.
//!
//! `cargo run --example per_route` drives the router in-process (no TLS: the test helper puts the
//! client certificate on each request, as the server does from the handshake) and checks every
//! outcome.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use mtls_tower::testing::TestCa;
use mtls_tower::{
    require_cert, ClientIdentity, Policy, RequestClientCertExt, RequireClientCertLayer,
};
use tower::ServiceExt;

/// The attribute: the policy sits on the handler, literals checked at compile time.
#[require_cert(spiffe_path_prefix = "/ns/billing")]
async fn refunds() -> &'static str {
    "refunds"
}

async fn reports() -> &'static str {
    "reports"
}

fn app() -> Router {
    Router::new()
        .route("/refunds", get(refunds))
        // The layer: the policy sits on the route, built at run time (from config, say).
        .route(
            "/reports",
            get(reports).route_layer(RequireClientCertLayer::new(
                Policy::spiffe_path_prefix("/ns/analytics").unwrap(),
            )),
        )
        // Router-wide: only our trust domain.
        .layer(RequireClientCertLayer::new(
            Policy::trust_domain("prod.example").unwrap(),
        ))
}

async fn status(path: &str, id: ClientIdentity) -> StatusCode {
    let req = Request::get(path)
        .with_client_cert(id)
        .body(Body::empty())
        .unwrap();
    app().oneshot(req).await.unwrap().status()
}

#[tokio::main]
async fn main() {
    let ca = TestCa::new("Example CA");
    let svid = |id: &str| ca.leaf().spiffe(id).build().identity();
    let cases = [
        (
            "spiffe://prod.example/ns/billing/sa/api",
            "/refunds",
            StatusCode::OK,
        ),
        (
            "spiffe://prod.example/ns/billing/sa/api",
            "/reports",
            StatusCode::FORBIDDEN,
        ),
        (
            "spiffe://prod.example/ns/analytics/sa/job",
            "/reports",
            StatusCode::OK,
        ),
        (
            "spiffe://prod.example/ns/analytics/sa/job",
            "/refunds",
            StatusCode::FORBIDDEN,
        ),
        // Right path, wrong trust domain: the router-wide layer refuses it on both routes.
        (
            "spiffe://dev.example/ns/billing/sa/api",
            "/refunds",
            StatusCode::FORBIDDEN,
        ),
        (
            "spiffe://dev.example/ns/analytics/sa/job",
            "/reports",
            StatusCode::FORBIDDEN,
        ),
    ];
    for (id, path, want) in cases {
        let got = status(path, svid(id)).await;
        println!("{id:<45} {path:<10} {got}");
        assert_eq!(got, want, "{id} on {path}");
    }
    println!("\nall outcomes as expected");
}
