use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;
use crate::testing::{TestCa, TestCert};

fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("Policy Test CA"))
}

fn id(
    build: impl FnOnce(crate::testing::LeafBuilder<'_>) -> crate::testing::LeafBuilder<'_>,
) -> ClientIdentity {
    build(ca().leaf()).build().identity()
}

fn assert_allows(p: &Policy, id: &ClientIdentity) {
    assert_eq!(p.evaluate(id), Decision::Allow, "{p} should allow {id:?}");
    assert!(p.allows(id));
}

fn deny_reason(p: &Policy, id: &ClientIdentity) -> DenyReason {
    match p.evaluate(id) {
        Decision::Deny(r) => {
            assert!(!p.allows(id));
            r
        }
        Decision::Allow => panic!("{p} should deny {id:?}"),
    }
}

// ----- one test per rule kind -----

#[test]
fn san_exact_and_wildcard() {
    let cert = id(|l| l.dns("api.svc.internal"));
    assert_allows(&Policy::san("API.svc.internal").unwrap(), &cert);
    assert_allows(&Policy::san("*.svc.internal").unwrap(), &cert);
    assert_eq!(
        deny_reason(&Policy::san("*.internal").unwrap(), &cert).kind(),
        DenyKind::NoMatch
    );
}

#[test]
fn san_rule_without_dns_sans_is_missing() {
    let cert = id(|l| l);
    let r = deny_reason(&Policy::san("a.internal").unwrap(), &cert);
    assert_eq!(r.kind(), DenyKind::Missing);
    assert_eq!(
        r.to_string(),
        "san = \"a.internal\": the certificate has no DNS SAN"
    );
}

#[test]
fn uri_prefix_matches_only_at_a_boundary() {
    let prefix = Policy::uri_prefix("https://a.example").unwrap();
    for uri in [
        "https://a.example",
        "https://a.example/",
        "https://a.example/api",
        "https://a.example?x=1",
        "https://a.example#f",
    ] {
        assert_allows(&prefix, &id(|l| l.uri(uri)));
    }
    for uri in [
        "https://a.example.evil/",
        "https://a.examplex",
        "https://a.example:8443/",
        "https://a.exampl",
    ] {
        deny_reason(&prefix, &id(|l| l.uri(uri)));
    }
    // A prefix ending in `/` is a boundary itself.
    let dir = Policy::uri_prefix("https://a.example/ns/").unwrap();
    assert_allows(&dir, &id(|l| l.uri("https://a.example/ns/billing")));
    deny_reason(&dir, &id(|l| l.uri("https://a.example/nsx")));
    // A SPIFFE-looking prefix cannot be widened to another trust domain.
    let td = Policy::uri_prefix("spiffe://prod.example").unwrap();
    deny_reason(&td, &id(|l| l.uri("spiffe://prod.example.attacker/x")));
}

#[test]
fn uri_exact_and_prefix() {
    let cert = id(|l| l.uri("https://svc.example/api"));
    assert_allows(&Policy::uri("https://svc.example/api").unwrap(), &cert);
    assert_allows(&Policy::uri_prefix("https://svc.example/").unwrap(), &cert);
    deny_reason(&Policy::uri("https://svc.example/api/").unwrap(), &cert);
    deny_reason(
        &Policy::uri_prefix("https://other.example/").unwrap(),
        &cert,
    );
}

#[test]
fn spiffe_id_trust_domain_and_path_prefix() {
    let cert = id(|l| l.spiffe("spiffe://prod.example/ns/billing/sa/api"));
    assert_allows(
        &Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap(),
        &cert,
    );
    assert_allows(&Policy::trust_domain("prod.example").unwrap(), &cert);
    assert_allows(&Policy::spiffe_path_prefix("/ns/billing").unwrap(), &cert);
    deny_reason(&Policy::spiffe_path_prefix("/ns/bill").unwrap(), &cert);
    deny_reason(&Policy::trust_domain("dev.example").unwrap(), &cert);
    deny_reason(
        &Policy::spiffe_id("spiffe://prod.example/ns/billing").unwrap(),
        &cert,
    );
}

#[test]
fn spiffe_rules_deny_a_certificate_with_two_uri_sans() {
    let cert = id(|l| l.spiffe("spiffe://prod.example/a").uri("https://x.example"));
    let r = deny_reason(&Policy::trust_domain("prod.example").unwrap(), &cert);
    assert_eq!(r.kind(), DenyKind::Missing);
}

#[test]
fn empty_spiffe_path_prefix_is_refused() {
    for p in ["", "/"] {
        assert!(Policy::spiffe_path_prefix(p).is_err(), "{p:?}");
    }
    assert!(Policy::spiffe_path_prefix("ns").is_err());
}

#[test]
fn ip_in_network() {
    let cert = id(|l| l.ip("10.1.2.3".parse().unwrap()));
    assert_allows(&Policy::ip("10.1.0.0/16").unwrap(), &cert);
    assert_allows(&Policy::ip("10.1.2.3").unwrap(), &cert);
    deny_reason(&Policy::ip("10.2.0.0/16").unwrap(), &cert);
}

#[test]
fn email_exact_and_domain() {
    let cert = id(|l| l.email("ops@Example.com"));
    assert_allows(&Policy::email("ops@example.com").unwrap(), &cert);
    assert_allows(&Policy::email("@example.com").unwrap(), &cert);
    deny_reason(&Policy::email("dev@example.com").unwrap(), &cert);
}

#[test]
fn subject_cn_o_ou_and_any_attribute() {
    let cert = id(|l| {
        l.common_name("svc-a")
            .organization("Example")
            .org_unit("payments")
            .subject_attr(&Oid::LOCALITY, "Paris")
    });
    assert_allows(&Policy::cn("svc-a").unwrap(), &cert);
    assert_allows(&Policy::o("Example").unwrap(), &cert);
    assert_allows(&Policy::ou("payments").unwrap(), &cert);
    assert_allows(&Policy::subject("L", "Paris").unwrap(), &cert);
    assert_allows(&Policy::subject("2.5.4.7", "Paris").unwrap(), &cert);
    assert_allows(&Policy::rule("subject", "L=Paris").unwrap(), &cert);
    deny_reason(&Policy::cn("SVC-A").unwrap(), &cert);
}

#[test]
fn missing_attribute_never_equals_empty_and_empty_values_are_refused() {
    for key in ["cn", "o", "ou", "issuer_cn", "uri", "uri_prefix"] {
        let err = Policy::rule(key, "").unwrap_err();
        assert!(
            matches!(err, PolicyError::InvalidValue { .. }),
            "{key}: {err}"
        );
    }
    assert!(Policy::rule("subject", "L=").is_err());
    let cert = id(|l| l);
    assert_eq!(
        deny_reason(&Policy::ou("x").unwrap(), &cert).kind(),
        DenyKind::Missing
    );
}

#[test]
fn issuer_dn_and_issuer_cn() {
    let cert = id(|l| l);
    assert_allows(&Policy::issuer("CN=Policy Test CA").unwrap(), &cert);
    assert_allows(&Policy::issuer_cn("Policy Test CA").unwrap(), &cert);
    deny_reason(&Policy::issuer("CN=Policy Test CA,O=Other").unwrap(), &cert);
    deny_reason(&Policy::issuer_cn("Other CA").unwrap(), &cert);
}

#[test]
fn eku_by_name_and_oid() {
    let cert = id(|l| l);
    assert_allows(&Policy::eku("clientAuth").unwrap(), &cert);
    assert_allows(&Policy::eku("1.3.6.1.5.5.7.3.2").unwrap(), &cert);
    deny_reason(&Policy::eku("serverAuth").unwrap(), &cert);
    let no_eku = id(|l| l.no_eku());
    assert_eq!(
        deny_reason(&Policy::eku("clientAuth").unwrap(), &no_eku).kind(),
        DenyKind::Missing
    );
}

#[test]
fn extension_present_and_with_value() {
    let oid = Oid::parse("1.3.6.1.4.1.99999.1").unwrap();
    let cert = id(|l| l.extension(&oid, false, &[0x0c, 0x02, b'o', b'k']));
    assert_allows(&Policy::extension("1.3.6.1.4.1.99999.1").unwrap(), &cert);
    assert_allows(
        &Policy::rule("extension", "1.3.6.1.4.1.99999.1=0c026f6b").unwrap(),
        &cert,
    );
    assert_allows(
        &Policy::extension_value("1.3.6.1.4.1.99999.1", b"\x0c\x02ok").unwrap(),
        &cert,
    );
    deny_reason(
        &Policy::rule("extension", "1.3.6.1.4.1.99999.1=0c026f6c").unwrap(),
        &cert,
    );
    deny_reason(&Policy::extension("1.3.6.1.4.1.99999.2").unwrap(), &cert);
    assert!(Policy::rule("extension", "1.3.6.1.4.1.99999.1=zz").is_err());
}

#[test]
fn certificate_policy() {
    let p = Oid::parse("2.23.140.1.2.1").unwrap();
    let cert = id(|l| l.certificate_policy(&p));
    assert_allows(&Policy::cert_policy("2.23.140.1.2.1").unwrap(), &cert);
    deny_reason(&Policy::cert_policy("2.23.140.1.2.2").unwrap(), &cert);
}

#[test]
fn a_policy_without_a_fingerprint_leaves_the_leaf_unhashed() {
    // The identity hashes its leaf on first use; a policy that never reads the fingerprint must
    // not pay for it, on allow or deny, through the `any(..)` index or a single rule.
    let cert = id(|l| l.dns("a.internal").common_name("a"));
    let indexed = Policy::any([
        Policy::san("b.internal").unwrap(),
        Policy::san("c.internal").unwrap(),
    ])
    .unwrap();
    deny_reason(&indexed, &cert);
    assert_allows(&Policy::san("a.internal").unwrap(), &cert);
    assert!(cert.fingerprint_is_unset(), "no rule read the fingerprint");
}

#[test]
fn a_fingerprint_in_an_any_list_is_matched_through_the_index() {
    let cert = id(|l| l.dns("a.internal"));
    let fp = Fingerprint::of_der(cert.der()).to_string();
    let p = Policy::any([
        Policy::san("b.internal").unwrap(),
        Policy::fingerprint(&fp).unwrap(),
    ])
    .unwrap();
    assert_allows(&p, &cert);
    deny_reason(&p, &id(|l| l.dns("a.internal")));
}

#[test]
fn fingerprint_pin() {
    let cert = id(|l| l);
    let fp = cert.fingerprint_sha256().to_string();
    assert_allows(&Policy::fingerprint(&fp).unwrap(), &cert);
    let other = id(|l| l);
    deny_reason(&Policy::fingerprint(&fp).unwrap(), &other);
}

#[test]
fn serial_number() {
    let cert = id(|l| l.serial(&[0x0a, 0xbc]));
    assert_allows(&Policy::serial("0abc").unwrap(), &cert);
    assert_allows(&Policy::serial("0A:BC").unwrap(), &cert);
    deny_reason(&Policy::serial("0abd").unwrap(), &cert);
}

// ----- combinators -----

#[test]
fn empty_any_and_all_are_errors() {
    assert_eq!(
        Policy::any([]).unwrap_err(),
        PolicyError::Empty { combinator: "any" }
    );
    assert_eq!(
        Policy::all([]).unwrap_err(),
        PolicyError::Empty { combinator: "all" }
    );
}

#[test]
fn all_reports_the_first_failing_rule() {
    let cert = id(|l| l.dns("a.internal").org_unit("eng"));
    let p = Policy::all([
        Policy::san("a.internal").unwrap(),
        Policy::ou("ops").unwrap(),
        Policy::cn("never").unwrap(),
    ])
    .unwrap();
    let r = deny_reason(&p, &cert);
    assert_eq!(r.rule(), "ou = \"ops\"");
    assert_eq!(r.kind(), DenyKind::NoMatch);
}

#[test]
fn any_denial_names_the_alternatives_shortened() {
    let cert = id(|l| l.dns("zzz.internal"));
    let p = Policy::any((0..10).map(|i| Policy::san(&format!("h{i}.internal")).unwrap())).unwrap();
    let r = deny_reason(&p, &cert);
    assert_eq!(r.kind(), DenyKind::NoAlternativeMatched);
    assert!(r.rule().ends_with(", ... 6 more)"), "{}", r.rule());
}

#[test]
fn not_denial_names_the_excluded_rule() {
    let cert = id(|l| l.org_unit("contractors"));
    let r = deny_reason(&!Policy::ou("contractors").unwrap(), &cert);
    assert_eq!(r.kind(), DenyKind::ExcludedMatched);
    assert_eq!(r.rule(), "not(ou = \"contractors\")");
}

#[test]
fn nested_any_and_all_flatten() {
    let a = Policy::cn("a").unwrap();
    let b = Policy::cn("b").unwrap();
    let c = Policy::cn("c").unwrap();
    let nested = Policy::any([Policy::any([a.clone(), b.clone()]).unwrap(), c.clone()]).unwrap();
    assert_eq!(
        nested.to_string(),
        "any(cn = \"a\", cn = \"b\", cn = \"c\")"
    );
    let nested = a.clone().and(b.clone()).and(c.clone());
    assert_eq!(
        nested.to_string(),
        "all(cn = \"a\", cn = \"b\", cn = \"c\")"
    );
    assert_eq!(nested.rule_count(), 3);
}

#[test]
fn double_negation_is_removed() {
    let a = Policy::cn("a").unwrap();
    assert_eq!(!!a.clone(), a);
}

#[test]
fn display_uses_require_cert_syntax() {
    let p = Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::any([
            Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap(),
            Policy::san("*.ops.internal").unwrap(),
        ])
        .unwrap(),
        !Policy::ou("contractors").unwrap(),
        Policy::subject("l", "Paris").unwrap(),
        Policy::eku("1.3.6.1.5.5.7.3.2").unwrap(),
    ])
    .unwrap();
    assert_eq!(
        p.to_string(),
        "all(trust_domain = \"prod.example\", any(spiffe_id = \"spiffe://prod.example/ns/billing/sa/api\", \
         san = \"*.ops.internal\"), not(ou = \"contractors\"), subject = \"L=Paris\", eku = \"clientAuth\")"
    );
}

#[test]
fn unknown_key_error_lists_the_keys() {
    let err = Policy::rule("common_name", "x").unwrap_err().to_string();
    assert!(err.contains("unknown policy key `common_name`"), "{err}");
    assert!(err.contains("san, uri"), "{err}");
}

#[test]
fn invalid_values_say_which_key_and_why() {
    let err = Policy::san("f*.example.com").unwrap_err();
    assert!(matches!(
        err,
        PolicyError::InvalidValue {
            key: "san",
            source: ValueError::Dns(_)
        }
    ));
    let err = Policy::spiffe_id("spiffe://Prod/x").unwrap_err();
    assert!(matches!(
        err,
        PolicyError::InvalidValue {
            key: "spiffe_id",
            source: ValueError::Spiffe(_)
        }
    ));
    let err = Policy::ip("10.0.0.1/8").unwrap_err();
    assert!(
        err.to_string().starts_with("invalid value for `ip`: "),
        "{err}"
    );
    assert!(Policy::eku("clientauthentication").is_err());
    assert!(Policy::fingerprint("sha256:abc").is_err());
    assert!(Policy::issuer("CN=a;b").is_err());
    assert!(Policy::subject("NotAnAttribute", "x").is_err());
}

// ----- the index behind large any() lists -----

#[test]
fn indexed_any_covers_every_exact_kind() {
    let l = Oid::LOCALITY;
    let cert_a = id(|b| {
        b.dns("x.a.internal")
            .spiffe("spiffe://td.example/w")
            .email("u@Mail.example")
            .subject_attr(&l, "Lyon")
            .serial(&[7])
    });
    let fp = cert_a.fingerprint_sha256().to_string();
    let filler = (0..50).map(|i| Policy::san(&format!("filler{i}.internal")).unwrap());
    for alt in [
        Policy::san("x.a.internal").unwrap(),
        Policy::san("*.a.internal").unwrap(),
        Policy::spiffe_id("spiffe://td.example/w").unwrap(),
        Policy::trust_domain("td.example").unwrap(),
        Policy::uri("spiffe://td.example/w").unwrap(),
        Policy::email("u@mail.example").unwrap(),
        Policy::email("@mail.example").unwrap(),
        Policy::subject("L", "Lyon").unwrap(),
        Policy::fingerprint(&fp).unwrap(),
        Policy::serial("07").unwrap(),
    ] {
        let p = Policy::any(filler.clone().chain([alt.clone()])).unwrap();
        assert_allows(&p, &cert_a);
        let other = id(|b| b.dns("x.b.internal"));
        deny_reason(&p, &other);
    }
}

#[test]
fn indexed_wildcard_never_expands_a_certificate_wildcard() {
    let p = Policy::any([
        Policy::san("*.a.internal").unwrap(),
        Policy::cn("zz").unwrap(),
    ])
    .unwrap();
    assert_allows(&p, &id(|b| b.dns("*.a.internal")));
    deny_reason(&p, &id(|b| b.dns("f*.a.internal")));
    deny_reason(&p, &id(|b| b.dns("*.*.internal")));
    deny_reason(&p, &id(|b| b.dns("a.internal")));
    deny_reason(&p, &id(|b| b.dns("x.y.a.internal")));
}

// ----- property tests: the compiled policy agrees with a naive evaluator -----

/// A small universe of values so random identities and random policies often meet.
const DNS: &[&str] = &[
    "a.internal",
    "b.internal",
    "x.a.internal",
    "*.a.internal",
    "A.Internal.",
];
const DNS_PATTERNS: &[&str] = &[
    "a.internal",
    "b.internal",
    "*.a.internal",
    "*.internal",
    "x.a.internal",
];
const SPIFFE: &[&str] = &[
    "spiffe://one.example/a",
    "spiffe://two.example/a/b",
    "spiffe://one.example/a/b",
];
const OUS: &[&str] = &["eng", "ops"];
const EMAILS: &[&str] = &["u@one.example", "v@two.example"];

fn universe() -> &'static Vec<(TestCert, ClientIdentity)> {
    static U: OnceLock<Vec<(TestCert, ClientIdentity)>> = OnceLock::new();
    U.get_or_init(|| {
        // 32 identities: each bit pattern picks which values a certificate carries.
        (0u32..32)
            .map(|bits| {
                let mut b = ca().leaf();
                for (i, d) in DNS.iter().enumerate() {
                    if (bits >> i) & 1 == 1 {
                        b = b.dns(d);
                    }
                }
                b = b.spiffe(SPIFFE[(bits % 3) as usize]);
                if bits % 4 == 0 {
                    b = b.org_unit(OUS[((bits / 4) % 2) as usize]);
                }
                if bits % 5 < 2 {
                    b = b.email(EMAILS[(bits % 5) as usize]);
                }
                let cert = b.build();
                let identity = cert.identity();
                (cert, identity)
            })
            .collect()
    })
}

fn leaf_strategy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        proptest::sample::select(DNS_PATTERNS).prop_map(|p| Policy::san(p).unwrap()),
        proptest::sample::select(SPIFFE).prop_map(|s| Policy::spiffe_id(s).unwrap()),
        proptest::sample::select(&["one.example", "two.example"][..])
            .prop_map(|t| Policy::trust_domain(t).unwrap()),
        proptest::sample::select(&["/a", "/a/b"][..])
            .prop_map(|p| Policy::spiffe_path_prefix(p).unwrap()),
        proptest::sample::select(OUS).prop_map(|o| Policy::ou(o).unwrap()),
        proptest::sample::select(&["@one.example", "v@two.example", "u@two.example"][..])
            .prop_map(|e| Policy::email(e).unwrap()),
        proptest::sample::select(SPIFFE).prop_map(|s| Policy::uri(s).unwrap()),
    ]
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    leaf_strategy().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..6).prop_map(|v| Policy::any(v).unwrap()),
            proptest::collection::vec(inner.clone(), 1..6).prop_map(|v| Policy::all(v).unwrap()),
            inner.prop_map(Policy::not),
        ]
    })
}

/// The reference semantics: a straightforward walk with no index and no flattening tricks.
fn naive(node: &Node, id: &ClientIdentity) -> bool {
    match node {
        Node::Rule(r) => eval::allows(&Node::Rule(r.clone()), id),
        Node::All(ms) => ms.iter().all(|m| naive(m, id)),
        Node::Any(any) => any.members.iter().any(|m| naive(m, id)),
        Node::Not(inner) => !naive(inner, id),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compiled_evaluation_agrees_with_naive(p in policy_strategy()) {
        for (_, identity) in universe() {
            prop_assert_eq!(p.allows(identity), naive(&p.root, identity), "{}", p);
            prop_assert_eq!(p.evaluate(identity).is_allow(), p.allows(identity));
        }
    }

    #[test]
    fn double_negation_is_identity(p in policy_strategy()) {
        let nn = Policy::not(Policy::not(p.clone()));
        for (_, identity) in universe() {
            prop_assert_eq!(nn.allows(identity), p.allows(identity));
        }
    }

    #[test]
    fn any_and_all_are_or_and_and(p in policy_strategy(), q in policy_strategy()) {
        let any = Policy::any([p.clone(), q.clone()]).unwrap();
        let all = Policy::all([p.clone(), q.clone()]).unwrap();
        for (_, identity) in universe() {
            let (a, b) = (p.allows(identity), q.allows(identity));
            prop_assert_eq!(any.allows(identity), a || b);
            prop_assert_eq!(all.allows(identity), a && b);
        }
    }

    #[test]
    fn de_morgan(p in policy_strategy(), q in policy_strategy()) {
        let lhs = !Policy::any([p.clone(), q.clone()]).unwrap();
        let rhs = Policy::all([!p.clone(), !q.clone()]).unwrap();
        for (_, identity) in universe() {
            prop_assert_eq!(lhs.allows(identity), rhs.allows(identity));
        }
    }

    #[test]
    fn any_is_commutative_and_idempotent(p in policy_strategy(), q in policy_strategy()) {
        let pq = Policy::any([p.clone(), q.clone()]).unwrap();
        let qp = Policy::any([q.clone(), p.clone()]).unwrap();
        let pp = Policy::any([p.clone(), p.clone()]).unwrap();
        for (_, identity) in universe() {
            prop_assert_eq!(pq.allows(identity), qp.allows(identity));
            prop_assert_eq!(pp.allows(identity), p.allows(identity));
        }
    }

    #[test]
    fn a_denial_always_has_a_reason_naming_a_rule(p in policy_strategy()) {
        for (_, identity) in universe() {
            if let Decision::Deny(r) = p.evaluate(identity) {
                prop_assert!(!r.rule().is_empty());
                prop_assert!(KEYS.iter().any(|k| r.rule().contains(k)), "{}", r);
            }
        }
    }
}

// ----- regressions from review -----

#[test]
fn not_of_an_oid_with_a_large_first_sub_identifier_denies_a_certificate_that_has_it() {
    let oid = Oid::parse("2.999.1").unwrap();
    let cert = id(|l| l.extension(&oid, false, &[5, 0]));
    assert!(!Policy::not(Policy::extension("2.999.1").unwrap()).allows(&cert));
}

#[test]
fn trust_domain_rule_refuses_a_whole_spiffe_id() {
    let err = Policy::trust_domain("spiffe://prod.example/ns/billing/sa/api").unwrap_err();
    assert!(err.to_string().contains("use `spiffe_id`"), "{err}");
}

#[test]
fn subject_rule_refuses_spaces_around_the_value() {
    assert!(Policy::rule("subject", "L = Paris").is_err());
    assert!(Policy::rule("subject", "L =Paris").is_ok());
}

mod key_names {
    use crate::policy::{canonical_key, suggest_key, COMBINATORS, DEPRECATED_KEYS, KEYS};
    use crate::Policy;

    #[test]
    fn every_key_is_its_own_canonical_name_and_every_old_name_maps_to_a_key() {
        for key in KEYS {
            assert_eq!(canonical_key(key), Some(*key));
        }
        for (old, new) in DEPRECATED_KEYS {
            assert!(KEYS.contains(new), "{new}");
            assert!(!KEYS.contains(old), "{old}");
            assert_eq!(canonical_key(old), Some(*new));
        }
    }

    #[test]
    fn a_deprecated_key_builds_the_same_rule_as_its_new_name() {
        assert_eq!(
            Policy::rule("spiffe", "spiffe://td/x").unwrap(),
            Policy::spiffe_id("spiffe://td/x").unwrap()
        );
        assert_eq!(
            Policy::rule("oid", "2.999.1").unwrap(),
            Policy::extension("2.999.1").unwrap()
        );
    }

    #[test]
    fn an_unknown_key_error_carries_the_suggestion() {
        let err = Policy::rule("trustdomain", "prod.example").unwrap_err();
        assert!(
            err.to_string().contains("did you mean `trust_domain`?"),
            "{err}"
        );
        let err = Policy::rule("colour", "blue").unwrap_err();
        assert!(!err.to_string().contains("did you mean"), "{err}");
    }

    #[test]
    fn a_key_one_letter_off_is_suggested() {
        // Three-letter keys are one edit from each other (`ku` is as near `ou` as `eku`).
        for key in KEYS.iter().chain(COMBINATORS).filter(|k| k.len() > 3) {
            let dropped: String = key.chars().skip(1).collect();
            assert_eq!(suggest_key(&dropped, &[]), Some(*key), "{dropped}");
            let mut swapped: Vec<char> = key.chars().collect();
            swapped.swap(0, 1);
            let swapped: String = swapped.into_iter().collect();
            assert_eq!(suggest_key(&swapped, &[]), Some(*key), "{swapped}");
        }
    }

    #[test]
    fn other_spellings_and_case_find_the_key() {
        assert_eq!(suggest_key("SAN", &[]), Some("san"));
        assert_eq!(
            suggest_key("spiffe-path-prefix", &[]),
            Some("spiffe_path_prefix")
        );
        assert_eq!(suggest_key("dns", &[]), Some("san"));
        assert_eq!(suggest_key("organizational_unit", &[]), Some("ou"));
        assert_eq!(suggest_key("serial_number", &[]), Some("serial"));
    }

    #[test]
    fn a_long_key_two_edits_off_is_suggested_and_a_short_one_is_not() {
        // Two letters left out of an eighteen-letter key: still that key.
        assert_eq!(
            suggest_key("spiffe_pth_prefx", &[]),
            Some("spiffe_path_prefix")
        );
        // Two edits from a two-letter key is any two-letter word: no suggestion.
        assert_eq!(suggest_key("zz", &[]), None);
    }

    #[test]
    fn the_edit_distance_counts_an_adjacent_swap_as_one_edit() {
        use crate::policy::edit_distance;
        for (a, b, d) in [
            ("", "abc", 3),
            ("kitten", "sitting", 3),
            ("ab", "ba", 1),
            ("abcd", "badc", 2),
            ("spiffe", "spifef", 1),
            // Optimal string alignment: a swapped pair is not edited again.
            ("ca", "abc", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a:?} {b:?}");
            assert_eq!(edit_distance(b, a), d, "{b:?} {a:?}");
        }
    }

    #[test]
    fn a_very_long_key_gets_no_suggestion_and_no_quadratic_work() {
        let long = "x".repeat(100_000);
        assert_eq!(suggest_key(&long, &[]), None);
    }
}
