//! Envoy `x-forwarded-client-cert` parsing: never panics; what parses decodes or errors cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_core::forwarded::parse_xfcc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(elements) = parse_xfcc(text) {
        for e in &elements {
            let _ = e.cert_der();
            let _ = e.chain_der();
            let _ = (e.by(), e.hash(), e.subject(), e.uri(), e.dns());
        }
    }
});
