//! The I/O-free core of the `mtls` workspace: who is calling, proven by certificate.
//!
//! `mtls-core` turns a client certificate that the TLS stack has *already verified* into a
//! [`ClientIdentity`] (parsed once per connection), and decides with a [`Policy`] whether that
//! identity may do something, with a [`DenyReason`] that names the rule that failed. It also has the
//! name types policies are made of: [`DnsPattern`], [`SpiffeId`] / [`TrustDomain`],
//! [`IpNetwork`], [`EmailPattern`], [`Oid`], [`Fingerprint`], [`SerialNumber`].
//!
//! It does no networking and no certificate *verification*: pair it with `mtls-tower`, which
//! serves mutual TLS with rustls, injects the identity into every request and enforces policies.
//!
//! ```
//! use mtls_core::testing::TestPki;
//! use mtls_core::{ClientIdentity, Decision, DenyKind, Policy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pki = TestPki::new(); // feature `testing`: a throwaway PKI
//! let cert = pki.ca.leaf().dns("billing.svc.internal").build();
//!
//! // Once per connection, from the verified chain (leaf first):
//! let identity = ClientIdentity::from_der_chain(cert.chain())?;
//!
//! // Once at start-up:
//! let policy = Policy::san("*.svc.internal")?.and(Policy::eku("clientAuth")?);
//!
//! // Per request:
//! assert_eq!(policy.evaluate(&identity), Decision::Allow);
//!
//! let other = pki.ca.leaf().dns("web.public.example").build().identity();
//! let decision = policy.evaluate(&other);
//! assert_eq!(decision.deny_reason().unwrap().kind(), DenyKind::NoMatch);
//! # Ok(()) }
//! ```
//!
//! # Features
//! - `serde`: `Policy` implements `Deserialize`, to load policies from TOML, JSON, YAML, ...
//! - `testing`: [`testing`][testing-module], a small rcgen-based test PKI for your own tests.
//! - `x509` (default): [`ClientIdentity`], fingerprints, the forwarded headers and policy
//!   evaluation. Without it (as mtls-macros uses this crate) policies are built, parsed and
//!   displayed but not evaluated, and x509-parser and sha2 are not compiled.
//!
// The feature-gated module: an intra-doc link with the feature, docs.rs without it, so that
// `cargo doc` is clean with any feature set.
// Without `x509` the evaluation half is compiled out; helpers only it uses (formatting of deny
// reasons, presented-name normalisation) are then unused, which is expected, not a bug.
#![cfg_attr(not(feature = "x509"), allow(dead_code, unused_imports))]
#![cfg_attr(
    not(feature = "x509"),
    doc = "[`ClientIdentity`]: https://github.com/mtls-rs/mtls/blob/main/mtls-core/src/identity.rs"
)]
#![cfg_attr(feature = "testing", doc = "[testing-module]: crate::testing")]
#![cfg_attr(
    not(feature = "testing"),
    doc = "[testing-module]: https://github.com/mtls-rs/mtls/blob/main/mtls-core/src/testing.rs"
)]
// docs.rs (`--cfg docsrs`, nightly): a badge on each item that needs a feature. `doc_cfg` took
// over `doc_auto_cfg` (removed in Rust 1.92) and marks feature-gated items by itself.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod dns;
pub mod email;
pub mod fingerprint;
#[cfg(feature = "x509")]
pub mod forwarded;
#[cfg(feature = "x509")]
pub mod identity;
pub mod ip;
pub mod name;
pub mod oid;
pub mod policy;
pub mod spiffe;
#[cfg(feature = "testing")]
pub mod testing;

pub use dns::{normalize_dns_name, DnsPattern, DnsPatternError, DnsPatternErrorKind};
pub use email::{EmailPattern, EmailPatternError};
pub use fingerprint::{Fingerprint, HexValueError, SerialNumber};
#[cfg(feature = "x509")]
pub use identity::{
    BasicConstraints, ClientIdentity, Extension, IdentityError, KeyUsage, OtherName,
};
pub use ip::{IpNetwork, IpNetworkError};
pub use name::{AttributeValue, DistinguishedName, NameAttribute, NameError};
pub use oid::{Oid, OidError};
pub use policy::{Decision, DenyKind, DenyReason, Policy, PolicyError, ValueError};
pub use spiffe::{SpiffeId, SpiffeIdError, SpiffeIdErrorKind, TrustDomain};

/// The certificate types this crate takes, re-exported so callers need not name the crate.
#[cfg(feature = "x509")]
pub use rustls_pki_types::CertificateDer;

/// Shortens user input quoted in an error message, on a character boundary.
pub(crate) fn truncate_for_display(s: &str) -> String {
    const MAX: usize = 100;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// This crate's README (its crates.io page), compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
