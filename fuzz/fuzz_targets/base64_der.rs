//! Plain base64 DER parsing (Caddy, HAProxy, Traefik): never panics, and every certificate it
//! returns is a DER SEQUENCE.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_core::forwarded::parse_base64_der;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(chain) = parse_base64_der(text) {
        assert!(!chain.is_empty());
        for der in &chain {
            assert_eq!(der.first(), Some(&0x30));
        }
    }
});
