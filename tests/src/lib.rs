//! End-to-end tests for the `mtls` workspace live in `tests/` of this crate: real TLS handshakes,
//! real clients (curl, openssl) against real servers on 127.0.0.1.
