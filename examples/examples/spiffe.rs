//! SPIFFE identities: SVIDs as SPIRE issues them (one `spiffe://` URI SAN, no useful subject,
//! short-lived, from an intermediate), policies on trust domains and path prefixes, and what does
//! *not* count as a SPIFFE ID.
//!
//! `cargo run --example spiffe`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use mtls_tower::testing::TestPki;
use mtls_tower::{Decision, Policy};

fn main() {
    let pki = TestPki::new();
    let now = SystemTime::now();
    // A SPIRE-style X.509-SVID: no common name, one URI SAN, valid for an hour.
    let svid = pki
        .intermediate
        .leaf()
        .no_common_name()
        .spiffe("spiffe://prod.example/ns/payments/sa/ledger")
        .validity(
            now - Duration::from_secs(60),
            now + Duration::from_secs(3600),
        )
        .build()
        .identity();

    let id = svid.spiffe_id().expect("an SVID has a SPIFFE ID");
    println!("SPIFFE ID     {id}");
    println!("trust domain  {}", id.trust_domain());
    println!("path          {}", id.path());
    println!(
        "subject       {:?} (SVIDs need none)\n",
        svid.subject().as_str()
    );

    let policy = Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::any([
            Policy::spiffe_path_prefix("/ns/payments").unwrap(),
            Policy::spiffe_id("spiffe://prod.example/ns/ops/sa/oncall").unwrap(),
        ])
        .unwrap(),
    ])
    .unwrap();
    println!("policy        {policy}\n");

    let candidates = [
        ("the ledger SVID", svid.clone()),
        (
            "payments, other trust domain",
            pki.ca
                .leaf()
                .spiffe("spiffe://staging.example/ns/payments/sa/ledger")
                .build()
                .identity(),
        ),
        (
            "look-alike path /ns/payments-old",
            pki.ca
                .leaf()
                .spiffe("spiffe://prod.example/ns/payments-old/sa/x")
                .build()
                .identity(),
        ),
        (
            "two URI SANs (not an SVID)",
            pki.ca
                .leaf()
                .spiffe("spiffe://prod.example/ns/payments/sa/ledger")
                .uri("https://payments.example/")
                .build()
                .identity(),
        ),
        (
            "upper-case trust domain (invalid)",
            pki.ca
                .leaf()
                .spiffe("spiffe://Prod.Example/ns/payments/sa/x")
                .build()
                .identity(),
        ),
    ];
    for (name, identity) in &candidates {
        match policy.evaluate(identity) {
            Decision::Allow => println!("{name:<36} allow"),
            Decision::Deny(reason) => println!("{name:<36} deny: {reason}"),
        }
    }
    assert!(policy.allows(&candidates[0].1));
    assert!(candidates[1..].iter().all(|(_, id)| !policy.allows(id)));
    // Mistakes in a policy are errors, not silently broader rules.
    for bad in ["spiffe://prod.example/ns/payments", "Prod.Example"] {
        println!(
            "\nPolicy::trust_domain({bad:?}) -> {}",
            Policy::trust_domain(bad).unwrap_err()
        );
    }
}
