//! Identity parsing from arbitrary DER: never panics; every accessor and formatter works on what
//! parses, and a policy evaluates it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mtls_core::{ClientIdentity, Policy};

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        Policy::any([
            Policy::san("*.internal").unwrap(),
            Policy::trust_domain("prod.example").unwrap(),
            Policy::issuer("CN=x,O=y").unwrap(),
            Policy::not(Policy::ou("z").unwrap()),
            Policy::eku("clientAuth").unwrap(),
        ])
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = ClientIdentity::from_der(data) {
        let _ = format!("{id:?} {} {} {}", id.subject(), id.issuer(), id.serial());
        let _ = (id.spiffe_id(), id.extended_key_usage(), id.key_usage(), id.is_ca());
        for o in id.other_names() {
            let _ = o.value_str();
        }
        let _ = policy().evaluate(&id);
    }
});
