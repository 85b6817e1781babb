//! Criterion benchmarks for mtls-core: identity parsing and policy evaluation.
//!
//! Run with `cargo bench -p mtls-core`. The allowlist benchmarks compare a 10-entry and a
//! 10,000-entry `any(..)`; the ratio should be close to 1 since exact values are hashed.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mtls_core::testing::TestCa;
use mtls_core::{ClientIdentity, Policy};

fn typical_leaf(ca: &TestCa) -> mtls_core::testing::TestCert {
    ca.leaf()
        .common_name("billing-api")
        .organization("Example Corp")
        .org_unit("payments")
        .dns("billing.svc.internal")
        .dns("billing.prod.internal")
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .build()
}

fn parse(c: &mut Criterion) {
    let ca = TestCa::new("Bench CA");
    let int = ca.intermediate("Bench Intermediate");
    let leaf = typical_leaf(&int);
    c.bench_function(
        "identity/from_der_chain (typical leaf + intermediate)",
        |b| b.iter(|| ClientIdentity::from_der_chain(black_box(leaf.chain())).unwrap()),
    );
}

fn evaluate(c: &mut Criterion) {
    let ca = TestCa::new("Bench CA");
    let id = typical_leaf(&ca).identity();
    let three = Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::san("*.svc.internal").unwrap(),
        !Policy::ou("contractors").unwrap(),
    ])
    .unwrap();
    assert!(three.allows(&id));
    c.bench_function("policy/evaluate 3 rules (allow)", |b| {
        b.iter(|| black_box(&three).evaluate(black_box(&id)))
    });
    let deny = typical_leaf(&ca);
    let deny_id = deny.identity();
    let strict = Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::san("*.ops.internal").unwrap(),
    ])
    .unwrap();
    c.bench_function("policy/evaluate 2 rules (deny, builds reason)", |b| {
        b.iter(|| black_box(&strict).evaluate(black_box(&deny_id)))
    });
}

fn allowlists(c: &mut Criterion) {
    let ca = TestCa::new("Bench CA");
    let id = typical_leaf(&ca).identity();
    let mut group = c.benchmark_group("policy/allowlist");
    for n in [1usize, 10, 100, 10_000] {
        // The identity's values come last, so a linear scan would pay for all n entries.
        let sans = Policy::any(
            (0..n - 1)
                .map(|i| Policy::san(&format!("host-{i}.svc.internal")).unwrap())
                .chain([Policy::san("billing.prod.internal").unwrap()]),
        )
        .unwrap();
        let spiffe = Policy::any(
            (0..n - 1)
                .map(|i| {
                    Policy::spiffe_id(&format!("spiffe://prod.example/ns/n{i}/sa/api")).unwrap()
                })
                .chain([Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap()]),
        )
        .unwrap();
        let wildcards = Policy::any(
            (0..n - 1)
                .map(|i| Policy::san(&format!("*.zone{i}.internal")).unwrap())
                .chain([Policy::san("*.prod.internal").unwrap()]),
        )
        .unwrap();
        let misses =
            Policy::any((0..n).map(|i| Policy::san(&format!("host-{i}.other.internal")).unwrap()))
                .unwrap();
        assert!(sans.allows(&id) && spiffe.allows(&id) && wildcards.allows(&id));
        assert!(!misses.allows(&id));
        group.bench_with_input(BenchmarkId::new("san_exact_allow", n), &sans, |b, p| {
            b.iter(|| p.evaluate(black_box(&id)))
        });
        group.bench_with_input(
            BenchmarkId::new("spiffe_exact_allow", n),
            &spiffe,
            |b, p| b.iter(|| p.evaluate(black_box(&id))),
        );
        group.bench_with_input(
            BenchmarkId::new("san_wildcard_allow", n),
            &wildcards,
            |b, p| b.iter(|| p.evaluate(black_box(&id))),
        );
        group.bench_with_input(
            BenchmarkId::new("san_exact_miss_allows_only", n),
            &misses,
            |b, p| b.iter(|| p.allows(black_box(&id))),
        );
    }
    group.finish();
}

criterion_group!(benches, parse, evaluate, allowlists);
criterion_main!(benches);
