//! `#[require_cert]` at run time: a router with several annotated handlers and different policies,
//! driven with certificates from the test PKI (the same checks over real TLS are in `tests/`).

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mtls_core::testing::TestCa;
use mtls_core::ClientIdentity;
use mtls_tower::{
    require_cert, CertRejection, ClientCert, Policy, RejectionKind, RequestClientCertExt,
    RequireClientCertLayer,
};
use tower::ServiceExt;

mod policies {
    use mtls_tower::Policy;

    pub(crate) fn admins() -> Policy {
        Policy::ou("admins").unwrap()
    }
}

#[require_cert(san = "*.billing.internal")]
async fn billing(cert: ClientCert) -> String {
    format!("billing for {}", cert.dns_names()[0])
}

#[require_cert(any(
    spiffe_id = "spiffe://prod.example/ns/billing/sa/api",
    san = "*.ops.internal"
))]
async fn either() -> &'static str {
    "either"
}

#[require_cert(trust_domain = "prod.example", not(ou = "contractors"))]
async fn staff() -> &'static str {
    "staff"
}

#[require_cert]
async fn anyone() -> &'static str {
    "anyone"
}

#[require_cert(policy = policies::admins)]
async fn admin() -> &'static str {
    "admin"
}

#[require_cert(cn = ["alice", "bob"], deny = "not_found")]
async fn hidden() -> &'static str {
    "hidden"
}

#[require_cert(cn = "alice", shadow)]
async fn shadowed() -> &'static str {
    "shadowed"
}

#[require_cert(cn = "alice")]
#[require_cert(o = "Example")]
async fn stacked() -> &'static str {
    "stacked"
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[derive(serde::Deserialize)]
struct Order {
    item: String,
}

#[derive(serde::Deserialize)]
struct Page {
    n: u32,
}

/// State, path, query and a JSON body (a body extractor must come last; the guard goes first).
#[require_cert(cn = "alice")]
async fn order(
    State(state): State<AppState>,
    Path(id): Path<u32>,
    Query(page): Query<Page>,
    Json(order): Json<Order>,
) -> Result<String, StatusCode> {
    if order.item.is_empty() {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(format!("{} {id} {} {}", state.greeting, page.n, order.item))
}

// `not(..)` of several items denies only a certificate that matches all of them.
#[require_cert(not(ou = "contractors", cn = "bob"))]
async fn not_both() -> &'static str {
    "not both"
}

fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("Macro Test CA"))
}

fn app() -> Router {
    Router::new()
        .route("/billing", get(billing))
        .route("/either", get(either))
        .route("/staff", get(staff))
        .route("/anyone", get(anyone))
        .route("/admin", get(admin))
        .route("/hidden", get(hidden))
        .route("/shadowed", get(shadowed))
        .route("/stacked", get(stacked))
        .route("/not-both", get(not_both))
        .route("/orders/{id}", post(order))
        .with_state(AppState { greeting: "hi" })
}

async fn call(
    app: Router,
    path: &str,
    id: Option<ClientIdentity>,
) -> (StatusCode, String, Option<CertRejection>) {
    let req = Request::get(path);
    let req = match id {
        Some(id) => req.with_client_cert(id),
        None => req,
    };
    let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let rejection = res.extensions().get::<CertRejection>().cloned();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, body, rejection)
}

async fn status(path: &str, id: ClientIdentity) -> StatusCode {
    call(app(), path, Some(id)).await.0
}

#[tokio::test]
async fn missing_certificate_is_401_with_the_rejection_extension() {
    let (status, body, rejection) = call(app(), "/billing", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, "client certificate required\n");
    assert_eq!(
        rejection.unwrap().kind(),
        &RejectionKind::MissingCertificate
    );
}

#[tokio::test]
async fn san_rule_allows_and_denies() {
    let (status, body, _) = call(
        app(),
        "/billing",
        Some(ca().leaf().dns("api.billing.internal").build().identity()),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "billing for api.billing.internal")
    );
    let (status, body, rejection) = call(
        app(),
        "/billing",
        Some(ca().leaf().dns("www.web.internal").build().identity()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "forbidden\n");
    assert!(rejection
        .unwrap()
        .deny_reason()
        .unwrap()
        .to_string()
        .contains("*.billing.internal"));
}

#[tokio::test]
async fn any_allows_either_alternative() {
    let spiffe = ca()
        .leaf()
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .build()
        .identity();
    let ops = ca().leaf().dns("x.ops.internal").build().identity();
    let neither = ca().leaf().dns("x.web.internal").build().identity();
    assert_eq!(status("/either", spiffe).await, StatusCode::OK);
    assert_eq!(status("/either", ops).await, StatusCode::OK);
    assert_eq!(status("/either", neither).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn top_level_keys_are_anded() {
    let staff = ca()
        .leaf()
        .spiffe("spiffe://prod.example/ns/a/sa/b")
        .org_unit("eng")
        .build()
        .identity();
    let contractor = ca()
        .leaf()
        .spiffe("spiffe://prod.example/ns/a/sa/b")
        .org_unit("contractors")
        .build()
        .identity();
    let dev = ca()
        .leaf()
        .spiffe("spiffe://dev.example/ns/a/sa/b")
        .build()
        .identity();
    assert_eq!(status("/staff", staff).await, StatusCode::OK);
    assert_eq!(status("/staff", contractor).await, StatusCode::FORBIDDEN);
    assert_eq!(status("/staff", dev).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bare_attribute_admits_any_verified_certificate() {
    assert_eq!(
        status("/anyone", ca().leaf().build().identity()).await,
        StatusCode::OK
    );
    assert_eq!(
        call(app(), "/anyone", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn policy_from_a_function() {
    assert_eq!(
        status("/admin", ca().leaf().org_unit("admins").build().identity()).await,
        StatusCode::OK
    );
    assert_eq!(
        status("/admin", ca().leaf().org_unit("users").build().identity()).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn list_value_and_not_found_mode() {
    assert_eq!(
        status("/hidden", ca().leaf().common_name("bob").build().identity()).await,
        StatusCode::OK
    );
    let (status, body, _) = call(
        app(),
        "/hidden",
        Some(ca().leaf().common_name("eve").build().identity()),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
}

#[tokio::test]
async fn shadow_mode_lets_denied_requests_through() {
    assert_eq!(
        status(
            "/shadowed",
            ca().leaf().common_name("eve").build().identity()
        )
        .await,
        StatusCode::OK
    );
    // Shadow mode enforces nothing, not even the certificate's presence.
    assert_eq!(call(app(), "/shadowed", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn stacked_attributes_both_apply() {
    let both = ca()
        .leaf()
        .common_name("alice")
        .organization("Example")
        .build()
        .identity();
    let cn_only = ca().leaf().common_name("alice").build().identity();
    let o_only = ca()
        .leaf()
        .common_name("bob")
        .organization("Example")
        .build()
        .identity();
    assert_eq!(status("/stacked", both).await, StatusCode::OK);
    assert_eq!(status("/stacked", cn_only).await, StatusCode::FORBIDDEN);
    assert_eq!(status("/stacked", o_only).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn works_with_state_path_query_and_a_json_body() {
    let req = |id: ClientIdentity| {
        Request::post("/orders/7?n=3")
            .header("content-type", "application/json")
            .with_client_cert(id)
            .body(Body::from(r#"{"item":"tea"}"#))
            .unwrap()
    };
    let res = app()
        .oneshot(req(ca().leaf().common_name("alice").build().identity()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hi 7 3 tea");
    let res = app()
        .oneshot(req(ca().leaf().common_name("eve").build().identity()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn attribute_adds_to_a_router_wide_layer_and_cannot_weaken_it() {
    let app = app().layer(RequireClientCertLayer::new(Policy::o("Example").unwrap()));
    // /anyone allows any certificate, but the router-wide layer still demands O=Example.
    let outsider = ca().leaf().build().identity();
    assert_eq!(
        call(app.clone(), "/anyone", Some(outsider)).await.0,
        StatusCode::FORBIDDEN
    );
    let insider = ca().leaf().organization("Example").build().identity();
    assert_eq!(
        call(app.clone(), "/anyone", Some(insider.clone())).await.0,
        StatusCode::OK
    );
    // And the route's own policy still applies on top.
    assert_eq!(
        call(app, "/billing", Some(insider)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn not_of_several_items_denies_only_a_certificate_that_has_them_all() {
    let id = |ou: &str, cn: &str| ca().leaf().org_unit(ou).common_name(cn).build().identity();
    // Either item alone: not(ou AND cn) holds. An `any` inside `not` would deny these.
    assert_eq!(
        status("/not-both", id("contractors", "alice")).await,
        StatusCode::OK
    );
    assert_eq!(
        status("/not-both", id("staff", "bob")).await,
        StatusCode::OK
    );
    // Both: denied.
    assert_eq!(
        status("/not-both", id("contractors", "bob")).await,
        StatusCode::FORBIDDEN
    );
}
