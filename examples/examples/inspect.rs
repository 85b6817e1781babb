//! Parse client certificates into identities and evaluate a policy against them.
//!
//! `cargo run --example inspect` makes a throwaway PKI, issues a few client certificates, and
//! prints what `mtls-core` reads from each and what the policy decides (with the reason for
//! denials, as a server would log it).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use mtls_core::testing::TestPki;
use mtls_core::{ClientIdentity, Decision, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pki = TestPki::new();
    let policy = Policy::all([
        Policy::trust_domain("prod.example")?,
        Policy::any([
            Policy::spiffe_path_prefix("/ns/billing")?,
            Policy::san("*.ops.internal")?,
        ])?,
        !Policy::ou("contractors")?,
    ])?;
    println!("policy: {policy}\n");

    let clients = [
        (
            "billing api",
            pki.ca
                .leaf()
                .spiffe("spiffe://prod.example/ns/billing/sa/api")
                .build(),
        ),
        (
            "web frontend",
            pki.ca
                .leaf()
                .spiffe("spiffe://prod.example/ns/web/sa/frontend")
                .build(),
        ),
        (
            "contractor tool",
            pki.intermediate
                .leaf()
                .org_unit("contractors")
                .spiffe("spiffe://prod.example/ns/billing/sa/tool")
                .build(),
        ),
        (
            "dev cluster",
            pki.ca
                .leaf()
                .spiffe("spiffe://dev.example/ns/billing/sa/api")
                .build(),
        ),
    ];
    for (name, cert) in &clients {
        let id = ClientIdentity::from_der_chain(cert.chain())?;
        println!("{name}");
        println!("  subject     {}", id.subject());
        println!("  issuer      {}", id.issuer());
        println!(
            "  spiffe id   {}",
            id.spiffe_id().map_or("-".into(), |s| s.to_string())
        );
        println!("  fingerprint {}", id.fingerprint_sha256());
        match policy.evaluate(&id) {
            Decision::Allow => println!("  decision    allow\n"),
            Decision::Deny(reason) => println!("  decision    deny ({reason})\n"),
        }
    }
    Ok(())
}
