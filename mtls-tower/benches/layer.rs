//! The per-request cost of `RequireClientCertLayer` and of the `ClientCert` extractor.
//!
//! `cargo bench -p mtls-tower --bench layer`. Each request is built outside the timed section
//! (`iter_batched`), so the figures are the service call alone: compare `echo/bare` with
//! `echo/layer ...` for the layer's cost.

#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use axum_core::extract::FromRequestParts;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{Request, Response};
use mtls_core::testing::TestCa;
use mtls_core::Policy;
use mtls_tower::{ClientCert, RequireClientCertLayer};
use tower::{Layer, Service};

/// Polls a future that is ready at once (every future here is).
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("benchmark future was not ready"),
    }
}

fn echo(_req: Request<()>) -> std::future::Ready<Result<Response<&'static str>, Infallible>> {
    ready(Ok(Response::new("ok")))
}

fn layer(c: &mut Criterion) {
    let ca = TestCa::new("Bench CA");
    let allowed = ca
        .leaf()
        .dns("api.billing.internal")
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .build()
        .identity();
    let denied = ca
        .leaf()
        .dns("api.billing.internal")
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .org_unit("contractors")
        .build()
        .identity();
    let policy = Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::san("*.billing.internal").unwrap(),
        !Policy::ou("contractors").unwrap(),
    ])
    .unwrap();

    let mut bare = tower::service_fn(echo);
    let mut guarded = RequireClientCertLayer::new(policy).layer(tower::service_fn(echo));
    // As the server does: one Arc'd identity per connection, a cheap ClientCert per request.
    let allowed = Arc::new(allowed);
    let denied = Arc::new(denied);
    let request = |id: &Arc<mtls_core::ClientIdentity>| {
        Request::get("/")
            .extension(ClientCert::from_handshake(id.clone()))
            .body(())
            .unwrap()
    };

    let mut group = c.benchmark_group("echo");
    group.bench_function("bare", |b| {
        b.iter_batched(
            || request(&allowed),
            |req| now(bare.call(black_box(req))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("layer 3 rules, allow", |b| {
        b.iter_batched(
            || request(&allowed),
            |req| now(guarded.call(black_box(req))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("layer 3 rules, deny (403 + reason + log)", |b| {
        b.iter_batched(
            || request(&denied),
            |req| now(guarded.call(black_box(req))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let (mut parts, ()) = request(&allowed).into_parts();
    c.bench_function("extractor/ClientCert", |b| {
        b.iter(|| now(ClientCert::from_request_parts(black_box(&mut parts), &())).unwrap())
    });
}

#[mtls_tower::require_cert(
    trust_domain = "prod.example",
    san = "*.billing.internal",
    not(ou = "contractors")
)]
async fn guarded_handler() -> &'static str {
    "ok"
}

async fn plain_handler() -> &'static str {
    "ok"
}

/// The same 3-rule policy as a router-wide layer and as `#[require_cert]`, on an axum router.
fn router(c: &mut Criterion) {
    use axum::routing::get;
    let ca = TestCa::new("Bench CA");
    let allowed = Arc::new(
        ca.leaf()
            .dns("api.billing.internal")
            .spiffe("spiffe://prod.example/ns/billing/sa/api")
            .build()
            .identity(),
    );
    let policy = Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::san("*.billing.internal").unwrap(),
        !Policy::ou("contractors").unwrap(),
    ])
    .unwrap();
    let mut bare = axum::Router::new().route("/", get(plain_handler));
    let mut layered = axum::Router::new()
        .route("/", get(plain_handler))
        .layer(RequireClientCertLayer::new(policy));
    let mut attributed = axum::Router::new().route("/", get(guarded_handler));
    let request = || {
        Request::get("/")
            .extension(ClientCert::from_handshake(allowed.clone()))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let mut group = c.benchmark_group("axum router");
    for (name, svc) in [
        ("bare", &mut bare),
        ("layer 3 rules", &mut layered),
        ("#[require_cert] 3 rules", &mut attributed),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                request,
                |req| now(Service::call(svc, black_box(req))).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, layer, router);
criterion_main!(benches);
