//! Policies loaded from configuration files (feature `serde`), and the errors that point at the
//! mistake.

#![allow(clippy::unwrap_used)]

use mtls_core::testing::TestCa;
use mtls_core::Policy;
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    policy: Policy,
}

fn toml_policy(text: &str) -> Result<Policy, toml::de::Error> {
    toml::from_str::<Config>(text).map(|c| c.policy)
}

#[test]
fn toml_policy_equals_the_same_policy_built_in_code() {
    let loaded = toml_policy(
        r#"
        [policy]
        trust_domain = "prod.example"
        any = [
            { spiffe_id = "spiffe://prod.example/ns/billing/sa/api" },
            { san = ["*.ops.internal", "admin.internal"] },
        ]
        not = { ou = "contractors" }
        "#,
    )
    .unwrap();
    let built = Policy::all([
        Policy::trust_domain("prod.example").unwrap(),
        Policy::any([
            Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api").unwrap(),
            Policy::san("*.ops.internal").unwrap(),
            Policy::san("admin.internal").unwrap(),
        ])
        .unwrap(),
        !Policy::ou("contractors").unwrap(),
    ])
    .unwrap();
    assert_eq!(loaded, built, "{loaded}");
}

#[test]
fn json_policy_is_evaluated() {
    let policy: Policy =
        serde_json::from_str(r#"{ "san": "*.svc.internal", "eku": "clientAuth" }"#).unwrap();
    let ca = TestCa::new("Config CA");
    assert!(policy.allows(&ca.leaf().dns("a.svc.internal").build().identity()));
    assert!(!policy.allows(&ca.leaf().dns("a.web.internal").build().identity()));
}

#[test]
fn a_list_value_means_any_of_them() {
    let policy: Policy = serde_json::from_str(r#"{ "cn": ["a", "b"] }"#).unwrap();
    assert_eq!(policy.to_string(), r#"any(cn = "a", cn = "b")"#);
}

#[test]
fn invalid_value_in_toml_reports_line_and_key() {
    let err = toml_policy(
        r#"
        [policy]
        trust_domain = "prod.example"
        san = "f*.example.com"
        "#,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("line 4"), "{msg}");
    assert!(msg.contains("invalid value for `san`"), "{msg}");
    assert!(msg.contains("wildcard"), "{msg}");
}

#[test]
fn unknown_key_in_json_reports_position() {
    let err = serde_json::from_str::<Policy>("{\n  \"sna\": \"a.internal\"\n}").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown policy key `sna`"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn empty_policy_is_an_error() {
    let err = serde_json::from_str::<Policy>("{}").unwrap_err();
    assert!(err.to_string().contains("no rules"), "{err}");
}

#[test]
fn empty_any_is_an_error() {
    let err = serde_json::from_str::<Policy>(r#"{ "any": [] }"#).unwrap_err();
    assert!(
        err.to_string().contains("`any()` needs at least one rule"),
        "{err}"
    );
}

#[test]
fn empty_value_list_is_an_error() {
    let err = serde_json::from_str::<Policy>(r#"{ "san": [] }"#).unwrap_err();
    assert!(err.to_string().contains("empty list"), "{err}");
}

#[test]
fn duplicate_key_is_an_error() {
    let err = serde_json::from_str::<Policy>(r#"{ "cn": "a", "cn": "b" }"#).unwrap_err();
    assert!(
        err.to_string().contains("duplicate policy key `cn`"),
        "{err}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_an_error() {
    assert!(serde_json::from_str::<Policy>(r#"{ "cn": 5 }"#).is_err());
    assert!(serde_json::from_str::<Policy>(r#"["cn"]"#).is_err());
    assert!(serde_json::from_str::<Policy>(r#"{ "not": [] }"#).is_err());
}

#[test]
fn an_unknown_key_names_the_key_it_most_likely_meant_and_lists_the_combinators() {
    let err = toml_policy("[policy]\nspiffe_path = \"/ns/billing\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean `spiffe_path_prefix`?"), "{err}");
    // The same list as the attribute's (less its own settings): combinators included.
    assert!(err.contains("serial, any, all, not"), "{err}");
}

#[test]
fn the_old_keys_spiffe_and_oid_still_load_and_display_under_their_new_names() {
    let old = toml_policy(
        "[policy]\nspiffe = \"spiffe://prod.example/a\"\noid = \"1.3.6.1.4.1.99999.1\"\n",
    )
    .unwrap();
    let new = toml_policy(
        "[policy]\nspiffe_id = \"spiffe://prod.example/a\"\nextension = \"1.3.6.1.4.1.99999.1\"\n",
    )
    .unwrap();
    assert_eq!(old, new);
    assert_eq!(
        old.to_string(),
        r#"all(spiffe_id = "spiffe://prod.example/a", extension = "1.3.6.1.4.1.99999.1")"#
    );
}

#[test]
fn an_old_key_and_its_new_name_together_are_a_duplicate() {
    let err = toml_policy(
        "[policy]\nspiffe = \"spiffe://prod.example/a\"\nspiffe_id = \"spiffe://prod.example/b\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("duplicate policy key `spiffe_id`"), "{err}");
}

#[test]
fn not_of_a_map_with_several_keys_denies_only_a_certificate_that_has_them_all() {
    let policy = toml_policy("[policy]\nnot = { ou = \"contractors\", cn = \"bob\" }\n").unwrap();
    let ca = TestCa::new("Not CA");
    let id = |ou: &str, cn: &str| ca.leaf().org_unit(ou).common_name(cn).build().identity();
    assert!(policy.allows(&id("contractors", "alice")));
    assert!(policy.allows(&id("staff", "bob")));
    assert!(!policy.allows(&id("contractors", "bob")));
    assert_eq!(
        policy,
        Policy::not(
            Policy::all([
                Policy::ou("contractors").unwrap(),
                Policy::cn("bob").unwrap()
            ])
            .unwrap()
        )
    );
}

#[test]
fn a_policy_that_is_not_a_map_says_what_a_policy_is() {
    let err = toml_policy("policy = \"san\"\n").unwrap_err().to_string();
    assert!(
        err.contains("expected a policy: a map of rule keys (san, uri,"),
        "{err}"
    );
    assert!(err.contains("or combinators (any, all, not)"), "{err}");
}

#[test]
fn a_rule_value_that_is_not_text_says_a_string_or_a_list_is_expected() {
    let err = toml_policy("[policy]\nsan = 5\n").unwrap_err().to_string();
    assert!(
        err.contains("expected a string or a list of strings"),
        "{err}"
    );
}
