//! DnsPattern, SpiffeId, TrustDomain, IpNetwork, EmailPattern, Oid and policy rule parsing: never
//! panics; parse(display(x)) == x; a pattern matches its own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_core::{DnsPattern, EmailPattern, IpNetwork, Oid, Policy, SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = DnsPattern::parse(text) {
        assert_eq!(DnsPattern::parse(p.as_str()).as_ref(), Ok(&p));
        assert!(p.matches(p.as_str()));
    }
    let _ = DnsPattern::parse("*.internal").map(|p| p.matches(text));
    if let Ok(id) = SpiffeId::parse(text) {
        assert_eq!(SpiffeId::parse(&id.to_string()).as_ref(), Ok(&id));
        let _ = id.has_path_prefix(text);
    }
    let _ = TrustDomain::parse(text);
    if let Ok(n) = IpNetwork::parse(text) {
        assert_eq!(IpNetwork::parse(&n.to_string()), Ok(n));
    }
    let _ = EmailPattern::parse(text).map(|p| p.matches(text));
    let _ = Oid::parse_name_or_dotted(text);
    if let Some((key, value)) = text.split_once('=') {
        let _ = Policy::rule(key, value).map(|p| p.to_string());
    }
});
