//! A policy loaded from a TOML file (mtls-core feature `serde`), and what a mistake in one looks
//! like: an error that names the line and the rule, at start-up, instead of a hole in production.
//!
//! `cargo run --example policy_from_config`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use mtls_tower::testing::TestCa;
use mtls_tower::Policy;

#[derive(serde::Deserialize)]
struct Config {
    policy: Policy,
}

fn load(text: &str) -> Result<Policy, toml::de::Error> {
    toml::from_str::<Config>(text).map(|c| c.policy)
}

fn main() {
    let text = include_str!("../config/policy.toml");
    let policy = load(text).unwrap();
    println!("loaded: {policy}\n");

    let ca = TestCa::new("Example CA");
    let billing = ca
        .leaf()
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .build()
        .identity();
    let ops = ca
        .leaf()
        .spiffe("spiffe://prod.example/ns/tools/sa/x")
        .dns("deploy.ops.internal")
        .build()
        .identity();
    let contractor = ca
        .leaf()
        .spiffe("spiffe://prod.example/ns/billing/sa/api")
        .org_unit("contractors")
        .build()
        .identity();
    for (name, id, want) in [
        ("billing", &billing, true),
        ("ops tool", &ops, true),
        ("contractor", &contractor, false),
    ] {
        match policy.evaluate(id) {
            mtls_tower::Decision::Allow => println!("{name:<12} allow"),
            mtls_tower::Decision::Deny(reason) => println!("{name:<12} deny: {reason}"),
        }
        assert_eq!(policy.allows(id), want);
    }

    let broken = include_str!("../config/policy_with_mistake.toml");
    let err = load(broken).unwrap_err();
    println!("\nloading config/policy_with_mistake.toml fails, as it should:\n{err}");
    assert!(err.to_string().contains("invalid value for `san`"));
}
