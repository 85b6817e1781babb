//! Behaviour of the layer and the extractors, one behaviour per test, driven with `oneshot`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::OnceLock;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mtls_core::testing::TestCa;
use mtls_core::{ClientIdentity, Policy};
use tower::{ServiceBuilder, ServiceExt};

use crate::{
    CertRejection, ClientCert, RejectionKind, RequestClientCertExt, RequireClientCertLayer,
};

fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("Layer Test CA"))
}

fn billing() -> ClientIdentity {
    ca().leaf()
        .dns("api.billing.internal")
        .org_unit("payments")
        .build()
        .identity()
}

fn web() -> ClientIdentity {
    ca().leaf().dns("www.web.internal").build().identity()
}

fn billing_policy() -> Policy {
    Policy::san("*.billing.internal").unwrap()
}

fn app(layer: RequireClientCertLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer)
}

fn get_with(identity: Option<ClientIdentity>) -> Request<Body> {
    let builder = Request::get("/?token=secret");
    let builder = match identity {
        Some(id) => builder.with_client_cert(id),
        None => builder,
    };
    builder.body(Body::empty()).unwrap()
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

async fn body_string(res: Response<Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Runs `f` and returns the log events it emitted on this thread.
///
/// One global subscriber writes into a per-thread buffer: scoped subscribers (`with_default`) race
/// with tracing's callsite interest cache when tests run in parallel.
fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    thread_local! {
        static LOGS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    struct ThreadBuf;
    impl io::Write for ThreadBuf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            LOGS.with(|l| l.borrow_mut().extend_from_slice(b));
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadBuf)
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    LOGS.with(|l| l.borrow_mut().clear());
    let out = f();
    let logs = LOGS.with(|l| String::from_utf8(l.borrow().clone()).unwrap());
    (out, logs)
}

#[test]
fn missing_certificate_is_401() {
    let res = block_on(app(RequireClientCertLayer::new(billing_policy())).oneshot(get_with(None)))
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions().get::<CertRejection>().unwrap().kind(),
        &RejectionKind::MissingCertificate
    );
}

fn expired_billing() -> ClientIdentity {
    ca().leaf()
        .dns("api.billing.internal")
        .expired()
        .build()
        .identity()
}

fn not_yet_valid_billing() -> ClientIdentity {
    ca().leaf()
        .dns("api.billing.internal")
        .not_yet_valid()
        .build()
        .identity()
}

fn expired_chain_billing() -> ClientIdentity {
    // The leaf is good for 30 days; the intermediate that issued it ends in a second.
    let now = std::time::SystemTime::now();
    let short = ca().intermediate_with_validity(
        "Short-lived intermediate",
        now - std::time::Duration::from_secs(3600),
        // X.509 times are whole seconds: this ends 1 to 2 s from now.
        now + std::time::Duration::from_secs(2),
    );
    short.leaf().dns("api.billing.internal").build().identity()
}

#[test]
fn an_expired_certificate_that_the_policy_allows_is_401() {
    let res = block_on(
        app(RequireClientCertLayer::new(billing_policy()))
            .oneshot(get_with(Some(expired_billing()))),
    )
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions().get::<CertRejection>().unwrap().kind(),
        &RejectionKind::CertificateExpired
    );
}

#[test]
fn an_expired_certificate_is_401_for_any_verified_too() {
    let res = block_on(
        app(RequireClientCertLayer::any_verified()).oneshot(get_with(Some(expired_billing()))),
    )
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn a_certificate_whose_intermediate_expired_is_401() {
    let id = expired_chain_billing();
    let cert = ClientCert::for_tests(id);
    assert!(cert.valid_until() < cert.not_after());
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let req = Request::get("/")
        .extension(cert)
        .body(Body::empty())
        .unwrap();
    let res = block_on(app(RequireClientCertLayer::new(billing_policy())).oneshot(req)).unwrap();
    assert_eq!(
        res.extensions().get::<CertRejection>().unwrap().kind(),
        &RejectionKind::CertificateExpired
    );
}

#[test]
fn a_not_yet_valid_certificate_is_401() {
    let res = block_on(
        app(RequireClientCertLayer::new(billing_policy()))
            .oneshot(get_with(Some(not_yet_valid_billing()))),
    )
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions().get::<CertRejection>().unwrap().kind(),
        &RejectionKind::CertificateNotYetValid
    );
}

#[test]
fn the_extractor_refuses_an_expired_certificate() {
    let app = Router::new().route(
        "/",
        get(|cert: ClientCert| async move { cert.subject().to_string() }),
    );
    let res = block_on(app.oneshot(get_with(Some(expired_billing())))).unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions().get::<CertRejection>().unwrap().kind(),
        &RejectionKind::CertificateExpired
    );
}

#[test]
fn the_optional_extractor_sees_no_expired_certificate() {
    let app = Router::new().route(
        "/",
        get(|cert: Option<ClientCert>| async move {
            if cert.is_some() {
                "some"
            } else {
                "none"
            }
        }),
    );
    let res = block_on(app.clone().oneshot(get_with(Some(expired_billing())))).unwrap();
    assert_eq!(block_on(body_string(res)), "none");
    let res = block_on(app.oneshot(get_with(Some(billing())))).unwrap();
    assert_eq!(block_on(body_string(res)), "some");
}

#[test]
fn allowed_certificate_reaches_the_handler() {
    let res = block_on(
        app(RequireClientCertLayer::new(billing_policy())).oneshot(get_with(Some(billing()))),
    )
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<CertRejection>().is_none());
    assert_eq!(block_on(body_string(res)), "ok");
}

#[test]
fn denied_certificate_is_403() {
    let res =
        block_on(app(RequireClientCertLayer::new(billing_policy())).oneshot(get_with(Some(web()))))
            .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[test]
fn not_found_mode_answers_denials_with_404() {
    let layer = RequireClientCertLayer::new(billing_policy()).deny_as_not_found();
    let res = block_on(app(layer).oneshot(get_with(Some(web())))).unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(block_on(body_string(res)), "");
}

#[test]
fn not_found_mode_answers_a_missing_certificate_with_404_too() {
    // 401 on a route where a missing one answers 404 would give the route away.
    let layer = RequireClientCertLayer::new(billing_policy()).deny_as_not_found();
    let res = block_on(app(layer).oneshot(get_with(None))).unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        res.extensions().get::<CertRejection>().unwrap().kind(),
        &RejectionKind::MissingCertificate
    );
}

#[test]
fn not_found_mode_answers_exactly_as_the_router_for_a_missing_route() {
    let layer = RequireClientCertLayer::new(billing_policy())
        .problem_json()
        .deny_as_not_found();
    let denied = block_on(app(layer).oneshot(get_with(Some(web())))).unwrap();
    let mut to_missing = get_with(Some(web()));
    *to_missing.uri_mut() = "/nope".parse().unwrap();
    let missing = block_on(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .oneshot(to_missing),
    )
    .unwrap();
    // Headers differ here only by the `content-length: 0` axum's routes add and hyper adds on
    // the wire anyway; tests/tests/hidden.rs compares the bytes on the wire.
    assert_eq!(denied.status(), missing.status());
    assert_eq!(
        block_on(body_string(denied)),
        block_on(body_string(missing))
    );
}

#[test]
fn any_verified_admits_every_certificate_and_no_request_without_one() {
    let res = block_on(app(RequireClientCertLayer::any_verified()).oneshot(get_with(Some(web()))))
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res =
        block_on(app(RequireClientCertLayer::any_verified()).oneshot(get_with(None))).unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn shadow_mode_lets_a_denied_request_through_and_logs_it() {
    let layer = RequireClientCertLayer::new(billing_policy()).shadow();
    let (res, logs) = with_logs(|| block_on(app(layer).oneshot(get_with(Some(web())))).unwrap());
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<CertRejection>().is_none());
    assert!(logs.contains("shadow mode: would reject"), "{logs}");
    assert!(logs.contains("san = \"*.billing.internal\""), "{logs}");
}

#[test]
fn shadow_mode_lets_a_request_without_certificate_through_and_logs_it() {
    let layer = RequireClientCertLayer::new(billing_policy()).shadow();
    let (res, logs) = with_logs(|| block_on(app(layer).oneshot(get_with(None))).unwrap());
    assert_eq!(res.status(), StatusCode::OK);
    assert!(logs.contains("no verified client certificate"), "{logs}");
}

#[test]
fn custom_rejection_response_replaces_the_body_and_keeps_the_rejection() {
    let layer = RequireClientCertLayer::new(billing_policy()).with_rejection_response(
        |r: &CertRejection| {
            Response::builder()
                .status(StatusCode::IM_A_TEAPOT)
                .header("x-rejected", r.status().as_str())
                .body(Body::from("custom"))
                .unwrap()
        },
    );
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let res = block_on(app.oneshot(get_with(Some(web())))).unwrap();
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(res.headers()["x-rejected"], "403");
    assert!(res.extensions().get::<CertRejection>().is_some());
    assert_eq!(block_on(body_string(res)), "custom");
}

#[test]
fn problem_json_bodies_have_the_problem_content_type() {
    let layer = RequireClientCertLayer::new(billing_policy()).problem_json();
    let res = block_on(app(layer).oneshot(get_with(Some(web())))).unwrap();
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(
        block_on(body_string(res)),
        r#"{"type":"about:blank","title":"Forbidden","status":403}"#
    );
}

#[test]
fn deny_reason_reaches_extensions_and_log_but_never_the_body() {
    let (res, logs) = with_logs(|| {
        block_on(app(RequireClientCertLayer::new(billing_policy())).oneshot(get_with(Some(web()))))
            .unwrap()
    });
    let rejection = res.extensions().get::<CertRejection>().cloned().unwrap();
    let reason = rejection.deny_reason().unwrap().to_string();
    assert!(reason.contains("san = \"*.billing.internal\""), "{reason}");
    // The log event names the rule, the certificate, and the path without its query string.
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("*.billing.internal"), "{logs}");
    assert!(logs.contains("fingerprint=sha256:"), "{logs}");
    assert!(logs.contains("subject=\"CN=test-client\""), "{logs}");
    assert!(logs.contains("path=\"/\""), "{logs}");
    assert!(!logs.contains("secret"), "{logs}");
    let body = block_on(body_string(res));
    assert_eq!(body, "forbidden\n");
    assert!(!body.contains("billing"));
}

#[test]
fn route_policy_adds_to_the_router_policy() {
    // Router-wide: the billing SAN. Route: also the `payments` OU.
    let app = Router::new()
        .route(
            "/admin",
            get(|| async { "admin" })
                .route_layer(RequireClientCertLayer::new(Policy::ou("payments").unwrap())),
        )
        .route("/", get(|| async { "ok" }))
        .layer(RequireClientCertLayer::new(billing_policy()));
    let status = |path: &str, id: ClientIdentity| {
        let req = Request::get(path)
            .with_client_cert(id)
            .body(Body::empty())
            .unwrap();
        block_on(app.clone().oneshot(req)).unwrap().status()
    };
    assert_eq!(status("/admin", billing()), StatusCode::OK);
    assert_eq!(status("/", billing()), StatusCode::OK);
    // Passes the route policy (OU) but not the router-wide one (SAN): still refused.
    let ou_only = ca()
        .leaf()
        .dns("x.web.internal")
        .org_unit("payments")
        .build()
        .identity();
    assert_eq!(status("/admin", ou_only.clone()), StatusCode::FORBIDDEN);
    assert_eq!(status("/", ou_only), StatusCode::FORBIDDEN);
    // Passes the router-wide one but not the route's.
    let san_only = ca().leaf().dns("x.billing.internal").build().identity();
    assert_eq!(status("/admin", san_only.clone()), StatusCode::FORBIDDEN);
    assert_eq!(status("/", san_only), StatusCode::OK);
}

#[test]
fn a_permissive_route_layer_cannot_switch_off_the_router_policy() {
    let app = Router::new()
        .route(
            "/open",
            get(|| async { "open" }).route_layer(RequireClientCertLayer::any_verified()),
        )
        .layer(RequireClientCertLayer::new(billing_policy()));
    let req = Request::get("/open")
        .with_client_cert(web())
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        block_on(app.oneshot(req)).unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[test]
fn works_in_a_service_builder_around_a_plain_tower_service() {
    let svc = ServiceBuilder::new()
        .layer(RequireClientCertLayer::new(billing_policy()))
        .service(tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
        }));
    let ok = Request::get("/")
        .with_client_cert(billing())
        .body(())
        .unwrap();
    assert_eq!(
        block_on(svc.clone().oneshot(ok)).unwrap().status(),
        StatusCode::OK
    );
    let denied = Request::get("/").with_client_cert(web()).body(()).unwrap();
    let res = block_on(svc.clone().oneshot(denied)).unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = block_on(res.into_body().collect()).unwrap().to_bytes();
    assert_eq!(&body[..], b"forbidden\n");
    let missing = Request::get("/").body(()).unwrap();
    assert_eq!(
        block_on(svc.oneshot(missing)).unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn extractor_without_certificate_is_401() {
    let app: Router = Router::new().route(
        "/",
        get(|cert: ClientCert| async move { cert.subject().to_string() }),
    );
    let res = block_on(app.oneshot(get_with(None))).unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.extensions().get::<CertRejection>().is_some());
}

#[test]
fn extractor_gives_the_identity() {
    let app: Router = Router::new().route(
        "/",
        get(|cert: ClientCert| async move { cert.dns_names()[0].clone() }),
    );
    let res = block_on(app.oneshot(get_with(Some(billing())))).unwrap();
    assert_eq!(block_on(body_string(res)), "api.billing.internal");
}

#[test]
fn optional_extractor_serves_both() {
    let app: Router = Router::new().route(
        "/",
        get(|cert: Option<ClientCert>| async move {
            match cert {
                Some(c) => format!("hello {}", c.subject()),
                None => "hello stranger".to_owned(),
            }
        }),
    );
    assert_eq!(
        block_on(body_string(
            block_on(app.clone().oneshot(get_with(None))).unwrap()
        )),
        "hello stranger"
    );
    assert_eq!(
        block_on(body_string(
            block_on(app.oneshot(get_with(Some(web())))).unwrap()
        )),
        "hello CN=test-client"
    );
}

#[test]
fn client_cert_records_its_source() {
    let cert = ClientCert::for_tests(web());
    assert_eq!(cert.source(), &crate::CertSource::TlsHandshake);
    let proxied = ClientCert::from_trusted_proxy(
        cert.identity_arc().clone(),
        http::HeaderName::from_static("x-forwarded-client-cert"),
    );
    assert!(
        matches!(proxied.source(), crate::CertSource::TrustedProxy { header } if header == "x-forwarded-client-cert")
    );
}

/// A reload warns with the window the new configuration was built with, not the default.
#[test]
fn a_reload_warns_about_expiry_with_the_configured_window() {
    use crate::{MtlsConfig, MtlsListener};
    use std::time::Duration;

    let pki = mtls_core::testing::TestPki::new();
    // Test server certificates live 30 days: inside the default 30-day window, outside one day.
    let server = pki.ca.server_cert("localhost");
    let build = |window: Option<Duration>| {
        let mut b = MtlsConfig::builder()
            .server_cert(server.chain().to_vec(), server.key_der())
            .client_ca_certs(vec![pki.ca.cert_der().clone()]);
        if let Some(window) = window {
            b = b.expiry_warning(window);
        }
        b.build().unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(MtlsListener::bind("127.0.0.1:0", build(None)))
        .unwrap();
    let handle = listener.reload_handle();
    let one_day = build(Some(Duration::from_secs(86400)));
    let ((), logs) = with_logs(|| handle.reload(one_day));
    assert!(!logs.contains("expires soon"), "{logs}");
    let default_window = build(None);
    let ((), logs) = with_logs(|| handle.reload(default_window));
    assert!(
        logs.contains("the server certificate expires soon"),
        "{logs}"
    );
}

/// While the server certificate is close to its end, a listener repeats the warning every six
/// hours, the first time six hours after `build()` warned (not at once, which read as two
/// problems at startup).
#[test]
fn a_listener_repeats_the_expiry_warning_every_six_hours_and_not_at_startup() {
    use crate::{MtlsConfig, MtlsListener};
    use std::time::Duration;

    let pki = mtls_core::testing::TestPki::new();
    // Test server certificates live 30 days: inside the default 30-day window.
    let server = pki.ca.server_cert("localhost");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let six_hours = Duration::from_secs(6 * 3600);
    let count = |logs: &str| logs.matches("the server certificate expires soon").count();

    let ((), logs) = with_logs(|| {
        rt.block_on(async {
            let config = MtlsConfig::builder()
                .server_cert(server.chain().to_vec(), server.key_der())
                .client_ca_certs(vec![pki.ca.cert_der().clone()])
                .build()
                .unwrap();
            let mut listener = MtlsListener::bind("127.0.0.1:0", config).await.unwrap();
            // The first accept starts the accept loop and the expiry watch; the task lives
            // as long as the runtime.
            tokio::spawn(async move {
                let _ = listener.accept().await;
            });
            tokio::time::sleep(six_hours - Duration::from_secs(60)).await;
        })
    });
    assert_eq!(
        count(&logs),
        1,
        "only build()'s warning in the first six hours: {logs}"
    );

    let ((), logs) = with_logs(|| {
        rt.block_on(async { tokio::time::sleep(Duration::from_secs(120)).await });
    });
    assert_eq!(count(&logs), 1, "the watch's warning at six hours: {logs}");
}
