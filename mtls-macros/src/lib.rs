//! `#[require_cert(..)]`: per-route client-certificate policies for axum handlers, validated at
//! compile time.
//!
//! Not written yet: this crate is a placeholder in the workspace so that the layout is final. The
//! attribute will be re-exported by `mtls-tower`; use that crate's `RequireClientCertLayer` until then.
