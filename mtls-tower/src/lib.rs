//! Mutual TLS that is real for Axum and Tower services.
//!
//! This crate will hold the Tower layer that enforces client-certificate policies, the axum
//! extractors and the secure rustls serving path. Today it re-exports [`mtls_core`], the identity
//! and policy engine those parts are built on; see the workspace README for the plan.
//!
//! ```
//! use mtls_tower::mtls_core::Policy;
//! assert!(Policy::san_dns("*.svc.internal").is_ok());
//! ```

pub use mtls_core;
