//! nginx `$ssl_client_escaped_cert` parsing: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_core::forwarded::parse_nginx_escaped_cert;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_nginx_escaped_cert(text);
});
