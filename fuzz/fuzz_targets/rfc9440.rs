//! RFC 9440 `Client-Cert` / `Client-Cert-Chain` parsing: never panics; a parsed item is DER.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_core::forwarded::{parse_client_cert, parse_client_cert_chain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cert) = parse_client_cert(text) {
        assert_eq!(cert.as_ref().first(), Some(&0x30));
        let _ = mtls_core::ClientIdentity::from_der(cert.as_ref());
    }
    if let Ok(chain) = parse_client_cert_chain(text) {
        assert!(!chain.is_empty());
    }
});
