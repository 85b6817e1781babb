//! Rejection responses: `application/problem+json` bodies, 404 instead of 403 so protected routes
//! cannot be enumerated, a fully custom response, and shadow mode for rolling a policy out.
//! The reason is always in the response's extensions (for your logging layer) and never in the body.
//!
//! `cargo run --example custom_rejection`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mtls_tower::testing::TestCa;
use mtls_tower::{
    CertRejection, ClientIdentity, Policy, RequestClientCertExt, RequireClientCertLayer,
};
use tower::ServiceExt;

fn policy() -> Policy {
    Policy::ou("finance").unwrap()
}

async fn call(
    app: Router,
    id: ClientIdentity,
) -> (StatusCode, String, String, Option<CertRejection>) {
    let req = Request::get("/")
        .with_client_cert(id)
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let rejection = res.extensions().get::<CertRejection>().cloned();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, content_type, body, rejection)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .init();
    let ca = TestCa::new("Example CA");
    let outsider = ca
        .leaf()
        .common_name("intern")
        .org_unit("marketing")
        .build()
        .identity();
    let route = || Router::new().route("/", get(|| async { "ledger" }));

    let problem = route().layer(RequireClientCertLayer::new(policy()).problem_json());
    let (status, ct, body, rejection) = call(problem, outsider.clone()).await;
    println!("problem+json: {status} {ct} {body}");
    println!(
        "  reason (extensions only): {}\n",
        rejection.unwrap().deny_reason().unwrap()
    );
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::FORBIDDEN, "application/problem+json")
    );

    let hidden = route().layer(RequireClientCertLayer::new(policy()).deny_as_not_found());
    let (status, _, body, _) = call(hidden, outsider.clone()).await;
    println!("not-found mode: {status} {body:?}");
    assert_eq!(status, StatusCode::NOT_FOUND);

    let custom = route().layer(
        RequireClientCertLayer::new(policy()).with_rejection_response(|r: &CertRejection| {
            Response::builder()
                .status(r.status())
                .header("cache-control", "no-store")
                .body(Body::from("ask the finance team for access\n"))
                .unwrap()
        }),
    );
    let (status, _, body, _) = call(custom, outsider.clone()).await;
    println!("custom: {status} {body:?}");
    assert_eq!(body, "ask the finance team for access\n");

    println!("\nshadow mode (logs a warning, lets the request through):");
    let shadow = route().layer(RequireClientCertLayer::new(policy()).shadow());
    let (status, _, body, _) = call(shadow, outsider).await;
    println!("shadow: {status} {body:?}");
    assert_eq!(status, StatusCode::OK);
}
