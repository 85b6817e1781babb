//! Policies from configuration text (JSON and TOML): never panics; what loads displays and
//! evaluates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_core::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = serde_json::from_str::<Policy>(text) {
        let _ = p.to_string();
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[allow(dead_code)]
        policy: Policy,
    }
    let _ = toml::from_str::<Config>(text);
});
