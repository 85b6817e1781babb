//! `#[require_cert(policy = f)]` whose `f` cannot build its policy: found by `check_policies` and
//! by `serve` at startup, and answered with 500 (never a panic) by a server that skipped the
//! check. A test binary of its own: the guards it registers are program-wide.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use mtls_core::testing::{TestCa, TestPki};
use mtls_tower::{
    require_cert, MtlsConfig, MtlsListener, Policy, PolicyError, RequestClientCertExt,
};
use tower::ServiceExt;

fn from_a_bad_setting() -> Result<Policy, PolicyError> {
    // As if read from the environment or a file at startup, with a typo.
    Policy::rule("trust_domian", "prod.example")
}

fn panics() -> Policy {
    Policy::san("f*.bad").unwrap()
}

fn fine() -> Result<Policy, PolicyError> {
    Policy::ou("admins")
}

#[require_cert(policy = from_a_bad_setting)]
async fn bad_setting() -> &'static str {
    "unreachable"
}

#[require_cert(policy = panics)]
async fn panicking() -> &'static str {
    "unreachable"
}

#[require_cert(policy = fine)]
async fn admins() -> &'static str {
    "admins"
}

fn app() -> Router {
    Router::new()
        .route("/bad", get(bad_setting))
        .route("/panics", get(panicking))
        .route("/admins", get(admins))
}

async fn status(path: &str, ou: &str) -> StatusCode {
    let identity = TestCa::new("CA").leaf().org_unit(ou).build().identity();
    let req = Request::get(path)
        .with_client_cert(identity)
        .body(Body::empty())
        .unwrap();
    app().oneshot(req).await.unwrap().status()
}

#[test]
fn check_policies_names_every_handler_whose_policy_cannot_be_built() {
    let err = mtls_tower::check_policies().unwrap_err();
    let failures: Vec<_> = err.failures().collect();
    assert_eq!(failures.len(), 2, "{err}");
    let text = err.to_string();
    assert!(text.contains("policy_check::bad_setting: unknown policy key `trust_domian` (did you mean `trust_domain`?)"), "{text}");
    assert!(
        text.contains("policy_check::panicking: the policy function panicked"),
        "{text}"
    );
    assert!(!text.contains("admins"), "{text}");
}

#[tokio::test]
async fn a_handler_whose_policy_cannot_be_built_answers_500_every_time_without_panicking() {
    for _ in 0..3 {
        assert_eq!(
            status("/bad", "admins").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status("/panics", "admins").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    // A policy function returning `Ok` works as a `fn() -> Policy` does.
    assert_eq!(status("/admins", "admins").await, StatusCode::OK);
    assert_eq!(status("/admins", "users").await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn serve_refuses_to_start_and_says_which_policy() {
    let pki = TestPki::new();
    let server = pki.ca.server_cert("localhost");
    let config = MtlsConfig::builder()
        .server_cert(server.chain().to_vec(), server.key_der())
        .client_ca_certs(vec![pki.ca.cert_der().clone()])
        .build()
        .unwrap();
    let listener = MtlsListener::bind("127.0.0.1:0", config).await.unwrap();
    let err = mtls_tower::serve_with_shutdown(listener, app(), std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("bad_setting"), "{err}");
}
