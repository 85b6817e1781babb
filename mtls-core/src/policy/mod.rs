//! Authorization policies over a [`ClientIdentity`]: leaf rules for every identity field,
//! combined with [`all`](Policy::all), [`any`](Policy::any) and [`not`](Policy::not), evaluated to
//! a [`Decision`] whose denial says which rule failed.
//!
//! ```
//! use mtls_core::testing::TestCa;
//! use mtls_core::{Decision, Policy};
//!
//! # fn main() -> Result<(), mtls_core::PolicyError> {
//! let policy = Policy::all([
//!     Policy::trust_domain("prod.example")?,
//!     Policy::any([
//!         Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api")?,
//!         Policy::san("*.ops.internal")?,
//!     ])?,
//!     Policy::not(Policy::ou("contractors")?),
//! ])?;
//!
//! let ca = TestCa::new("Example CA");
//! let billing = ca.leaf().spiffe("spiffe://prod.example/ns/billing/sa/api").build().identity();
//! assert!(policy.evaluate(&billing).is_allow());
//!
//! let other = ca.leaf().spiffe("spiffe://prod.example/ns/web/sa/frontend").build().identity();
//! let Decision::Deny(reason) = policy.evaluate(&other) else { panic!("must deny") };
//! // The reason is for logs, never for the client.
//! assert!(reason.to_string().contains("any("), "{reason}");
//! # Ok(()) }
//! ```
//!
//! # Rules
//! Each rule has a key, the same in code, in configuration files (feature `serde`) and in
//! `#[require_cert(..)]`. A leaf rule matches when *any* of the certificate's values of that kind
//! matches; a certificate without such a value never matches (a missing attribute is never `""`).
//!
//! | key | value | matches when |
//! |---|---|---|
//! | `san` | DNS pattern (`svc.internal`, `*.svc.internal`) | a DNS-name SAN matches ([`DnsPattern`]); DNS names only: URI, IP and email SANs have their own keys below |
//! | `uri` | URI | a URI SAN equals it exactly |
//! | `uri_prefix` | URI prefix | a URI SAN starts with it at a boundary: the prefix ends with `/`, or the URI ends there or goes on with `/`, `?` or `#` (`https://a.example` admits `https://a.example/x`, not `https://a.example.evil`) |
//! | `spiffe_id` | SPIFFE ID | the SPIFFE ID equals it |
//! | `trust_domain` | trust domain | the SPIFFE ID is in that trust domain |
//! | `spiffe_path_prefix` | path (`/ns/billing`) | the SPIFFE ID path starts with it, by whole segments |
//! | `ip` | address or CIDR | an IP SAN lies in it ([`IpNetwork`]) |
//! | `email` | `user@domain` or `@domain` | an email SAN matches ([`EmailPattern`]) |
//! | `cn`, `o`, `ou` | text | a subject CN / O / OU equals it |
//! | `subject` | `ATTR=value` (`L=Paris`, `2.5.4.5=1234`) | a subject attribute equals it |
//! | `issuer` | RFC 4514 DN (`CN=Issuing CA,O=Example`) | the issuer DN equals it |
//! | `issuer_cn` | text | an issuer CN equals it |
//! | `eku` | `clientAuth`, ... or OID | the EKU extension lists it |
//! | `extension` | OID, or `OID=hex` | the extension is present (with exactly that value) |
//! | `cert_policy` | OID | the certificate policies extension lists it |
//! | `fingerprint` | `sha256:<64 hex>` | the leaf's SHA-256 fingerprint equals it |
//! | `serial` | hex | the serial number equals it |
//!
//! Each key has a constructor of the same name (`Policy::san`, `Policy::spiffe_id`,
//! `Policy::subject(attribute, value)`, ...; `extension` also has `extension_value` for a value
//! given as bytes). The old keys `spiffe` and `oid` ([`DEPRECATED_KEYS`]) still work and mean
//! `spiffe_id` and `extension`. An unknown key is an error that names the closest known key
//! ([`suggest_key`]): `spiffe_path` gets "did you mean `spiffe_path_prefix`?".
//!
//! Text comparisons are exact and case-sensitive, except DNS names and email domains (ASCII
//! case-insensitive, as DNS is).
//!
//! # Cost
//! [`Policy::evaluate`] does not allocate when it allows. An `any` of exact values (DNS names,
//! wildcard DNS patterns, SPIFFE IDs, trust domains, URIs, emails, subject attributes,
//! fingerprints, serials) is compiled into hash sets when the policy is built, so an allowlist of
//! 10,000 entries costs about what a list of 10 does. Denials allocate a [`DenyReason`].
//!
#![cfg_attr(
    not(feature = "x509"),
    doc = "[`ClientIdentity`]: https://github.com/mtls-rs/mtls/blob/main/mtls-core/src/identity.rs"
)]
#![cfg_attr(
    not(feature = "x509"),
    doc = "[`Policy::evaluate`]: https://github.com/mtls-rs/mtls/blob/main/mtls-core/src/policy/mod.rs"
)]

use std::fmt;
use std::sync::Arc;

use crate::dns::{DnsPattern, DnsPatternError};
use crate::email::{EmailPattern, EmailPatternError};
use crate::fingerprint::{Fingerprint, HexValueError, SerialNumber};
#[cfg(feature = "x509")]
use crate::identity::ClientIdentity;
use crate::ip::{IpNetwork, IpNetworkError};
use crate::name::{parse_rfc4514, NameError};
use crate::oid::{Oid, OidError};
use crate::spiffe::{SpiffeId, SpiffeIdError, TrustDomain};

#[cfg(feature = "serde")]
mod de;
mod eval;

use eval::AnyIndex;

/// A compiled authorization policy over client certificate identities.
///
/// Cheap to clone (an `Arc`), `Send + Sync`, immutable once built. There is no empty policy: every
/// constructor either makes at least one rule or returns an error, so a policy can never allow
/// everything by accident.
///
/// The keys (the same in code, in `#[require_cert(..)]` and in configuration files) and what each
/// matches: the [table in the module docs](crate::policy#rules).
#[derive(Clone)]
pub struct Policy {
    root: Arc<Node>,
}

/// The outcome of [`Policy::evaluate`].
///
#[cfg_attr(
    not(feature = "x509"),
    doc = "[`Policy::evaluate`]: https://github.com/mtls-rs/mtls/blob/main/mtls-core/src/policy/mod.rs"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a decision that is not checked authorizes nothing"]
pub enum Decision {
    /// The identity satisfies the policy.
    Allow,
    /// The identity does not satisfy the policy, and why. The reason is for logs: it names policy
    /// rules and must never be sent to the client.
    Deny(DenyReason),
}

impl Decision {
    /// Whether this is [`Decision::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// Whether this is [`Decision::Deny`].
    pub fn is_deny(&self) -> bool {
        !self.is_allow()
    }

    /// The denial reason, when denied.
    pub fn deny_reason(&self) -> Option<&DenyReason> {
        match self {
            Decision::Allow => None,
            Decision::Deny(r) => Some(r),
        }
    }
}

/// Why a policy denied an identity: the rule that failed, in policy syntax, and how it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyReason {
    rule: String,
    kind: DenyKind,
    field: &'static str,
}

/// How a rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyKind {
    /// The certificate has values of the rule's kind, and none matched.
    NoMatch,
    /// The certificate has no value of the rule's kind at all (no DNS SAN, no SPIFFE ID, ...).
    Missing,
    /// None of the alternatives of an `any(..)` matched.
    NoAlternativeMatched,
    /// The rule inside a `not(..)` matched.
    ExcludedMatched,
}

impl DenyReason {
    /// The failed rule in policy syntax, such as `san = "*.ops.internal"` or `any(...)` (long
    /// lists are shortened).
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// How the rule failed.
    pub fn kind(&self) -> DenyKind {
        self.kind
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DenyKind::NoMatch => write!(
                f,
                "{}: no {} in the certificate matched",
                self.rule, self.field
            ),
            DenyKind::Missing => write!(f, "{}: the certificate has no {}", self.rule, self.field),
            DenyKind::NoAlternativeMatched => {
                write!(f, "{}: none of the alternatives matched", self.rule)
            }
            DenyKind::ExcludedMatched => write!(f, "{}: the excluded rule matched", self.rule),
        }
    }
}

/// Why a policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `any()` or `all()` with no rules. An empty `all` would allow everyone, an empty `any` no one;
    /// neither is ever what the author meant.
    #[error("`{combinator}()` needs at least one rule; an empty {combinator} is refused rather than read as allow-all or deny-all")]
    Empty {
        /// `"any"` or `"all"`.
        combinator: &'static str,
    },
    /// A key that names no rule.
    #[error(
        "unknown policy key `{key}`{}; expected one of: {}, {}",
        suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)")),
        KEYS.join(", "),
        COMBINATORS.join(", ")
    )]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The known key it most likely meant ([`suggest_key`]).
        suggestion: Option<&'static str>,
    },
    /// A key's value is not valid for it.
    #[error("invalid value for `{key}`: {source}")]
    InvalidValue {
        /// The rule key.
        key: &'static str,
        /// What is wrong with the value.
        source: ValueError,
    },
}

/// What is wrong with a rule's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a DNS pattern.
    #[error(transparent)]
    Dns(#[from] DnsPatternError),
    /// Not a SPIFFE ID, trust domain or SPIFFE path.
    #[error(transparent)]
    Spiffe(#[from] SpiffeIdError),
    /// Not an IP address or network.
    #[error(transparent)]
    Ip(#[from] IpNetworkError),
    /// Not an email pattern.
    #[error(transparent)]
    Email(#[from] EmailPatternError),
    /// Not an OID or known name.
    #[error(transparent)]
    Oid(#[from] OidError),
    /// Not a fingerprint or serial number.
    #[error(transparent)]
    Hex(#[from] HexValueError),
    /// Not an RFC 4514 distinguished name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// Every rule key, in documentation order: the one name of each rule, the same in
/// [`Policy::rule`], configuration files, `#[require_cert(..)]` and (for most) the constructor
/// of the same name.
pub const KEYS: &[&str] = &[
    "san",
    "uri",
    "uri_prefix",
    "spiffe_id",
    "trust_domain",
    "spiffe_path_prefix",
    "ip",
    "email",
    "cn",
    "o",
    "ou",
    "subject",
    "issuer",
    "issuer_cn",
    "eku",
    "extension",
    "cert_policy",
    "fingerprint",
    "serial",
];

/// The keys that combine rules, beside [`KEYS`] in configuration files and the attribute.
pub const COMBINATORS: &[&str] = &["any", "all", "not"];

/// Old key names that are still accepted, each with the key that replaced it. They mean exactly
/// what the new key means; a policy displays (and deny reasons name) the new key.
pub const DEPRECATED_KEYS: &[(&str, &str)] = &[("spiffe", "spiffe_id"), ("oid", "extension")];

/// The rule key `key` stands for: itself if it is one of [`KEYS`], the new name if it is one of
/// [`DEPRECATED_KEYS`], else `None`.
///
/// ```
/// use mtls_core::policy::canonical_key;
/// assert_eq!(canonical_key("san"), Some("san"));
/// assert_eq!(canonical_key("spiffe"), Some("spiffe_id"));
/// assert_eq!(canonical_key("sna"), None);
/// ```
pub fn canonical_key(key: &str) -> Option<&'static str> {
    KEYS.iter().copied().find(|k| *k == key).or_else(|| {
        DEPRECATED_KEYS
            .iter()
            .find(|(old, _)| *old == key)
            .map(|(_, new)| *new)
    })
}

/// The known key that `key` most likely meant: a rule key, a combinator or one of `extra` (the
/// attribute adds its settings), for "did you mean" in error messages. Matches common other
/// names (`dns`, `common_name`, `spiffe_path`, ...) and near misses (one or two letters off);
/// `None` when nothing is close.
///
/// ```
/// use mtls_core::policy::suggest_key;
/// assert_eq!(suggest_key("sna", &[]), Some("san"));
/// assert_eq!(suggest_key("common_name", &[]), Some("cn"));
/// assert_eq!(suggest_key("trustdomain", &[]), Some("trust_domain"));
/// assert_eq!(suggest_key("shadwo", &["shadow"]), Some("shadow"));
/// assert_eq!(suggest_key("colour", &[]), None);
/// ```
pub fn suggest_key(key: &str, extra: &[&'static str]) -> Option<&'static str> {
    // Names other tools and specs use for the same thing.
    const OTHER_NAMES: &[(&str, &str)] = &[
        ("dns", "san"),
        ("dns_san", "san"),
        ("san_dns", "san"),
        ("dns_name", "san"),
        ("uri_san", "uri"),
        ("san_uri", "uri"),
        ("spiffe_path", "spiffe_path_prefix"),
        ("path_prefix", "spiffe_path_prefix"),
        ("td", "trust_domain"),
        ("ip_address", "ip"),
        ("ip_san", "ip"),
        ("cidr", "ip"),
        ("email_san", "email"),
        ("rfc822", "email"),
        ("common_name", "cn"),
        ("organization", "o"),
        ("organisation", "o"),
        ("org", "o"),
        ("organizational_unit", "ou"),
        ("org_unit", "ou"),
        ("subject_attr", "subject"),
        ("issuer_dn", "issuer"),
        ("extended_key_usage", "eku"),
        ("ext", "extension"),
        ("policy_oid", "cert_policy"),
        ("certificate_policy", "cert_policy"),
        ("sha256", "fingerprint"),
        ("serial_number", "serial"),
        ("or", "any"),
        ("and", "all"),
    ];
    let lower = key.to_ascii_lowercase().replace('-', "_");
    if let Some(k) = canonical_key(&lower) {
        return Some(k);
    }
    if let Some((_, k)) = OTHER_NAMES.iter().find(|(other, _)| *other == lower) {
        return Some(k);
    }
    let candidates = KEYS.iter().chain(COMBINATORS).chain(extra).copied();
    // Allow one edit for short keys, two for longer ones: `ou` -> `o` is a real mistake, but
    // every two-letter word is within two edits of `cn`.
    let limit = if lower.len() <= 4 { 1 } else { 2 };
    candidates
        // The distance is at least the difference in length: skip the rest (a 64 KiB "key"
        // costs one length comparison per candidate, not a table).
        .filter(|k| k.len().abs_diff(lower.len()) <= limit)
        .map(|k| (edit_distance(&lower, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps), on bytes: keys are ASCII.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// A leaf rule.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Rule {
    DnsSan(DnsPattern),
    Uri(Box<str>),
    UriPrefix(Box<str>),
    SpiffeId(SpiffeId),
    TrustDomain(TrustDomain),
    SpiffePathPrefix(Box<str>),
    Ip(IpNetwork),
    Email(EmailPattern),
    Subject {
        oid: Oid,
        value: Box<str>,
    },
    IssuerAttr {
        oid: Oid,
        value: Box<str>,
    },
    IssuerDn {
        text: Box<str>,
        rdns: Vec<Vec<(Oid, String)>>,
    },
    Eku(Oid),
    Extension {
        oid: Oid,
        value: Option<Box<[u8]>>,
    },
    CertPolicy(Oid),
    Fingerprint(Fingerprint),
    Serial(SerialNumber),
}

#[derive(Clone)]
pub(crate) enum Node {
    Rule(Rule),
    All(Vec<Node>),
    Any(Box<AnyNode>),
    Not(Box<Node>),
}

#[derive(Clone)]
pub(crate) struct AnyNode {
    /// The alternatives as written (flattened), for display and explanations.
    members: Vec<Node>,
    /// Exact-valued leaf alternatives, compiled into hash sets.
    index: AnyIndex,
    /// Positions in `members` of the alternatives the index does not cover.
    rest: Vec<usize>,
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::Rule(a), Node::Rule(b)) => a == b,
            (Node::All(a), Node::All(b)) => a == b,
            (Node::Any(a), Node::Any(b)) => a.members == b.members,
            (Node::Not(a), Node::Not(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for Policy {
    /// Structural equality: the same rules in the same arrangement (after flattening nested
    /// `any`/`all` and removing double negation).
    fn eq(&self, other: &Policy) -> bool {
        self.root == other.root
    }
}

impl Eq for Policy {}

fn invalid(key: &'static str, source: impl Into<ValueError>) -> PolicyError {
    PolicyError::InvalidValue {
        key,
        source: source.into(),
    }
}

fn non_empty<'a>(key: &'static str, value: &'a str) -> Result<&'a str, PolicyError> {
    if value.is_empty() {
        // A certificate without the attribute must not be confused with one that has it empty, and
        // an empty value in a policy is almost always a templating mistake.
        return Err(invalid(key, ValueError::Other("the value is empty".into())));
    }
    Ok(value)
}

impl Policy {
    fn from_node(node: Node) -> Policy {
        Policy {
            root: Arc::new(node),
        }
    }

    fn from_rule(rule: Rule) -> Policy {
        Policy::from_node(Node::Rule(rule))
    }

    /// Builds one leaf rule from its key and textual value: the single parser behind the
    /// constructors below, configuration files and `#[require_cert(..)]`.
    ///
    /// ```
    /// use mtls_core::Policy;
    /// assert_eq!(Policy::rule("san", "*.internal").unwrap(), Policy::san("*.internal").unwrap());
    /// assert!(Policy::rule("sna", "x").unwrap_err().to_string().contains("unknown policy key"));
    /// ```
    pub fn rule(key: &str, value: &str) -> Result<Policy, PolicyError> {
        let Some(canonical) = canonical_key(key) else {
            return Err(PolicyError::UnknownKey {
                key: crate::truncate_for_display(key),
                suggestion: suggest_key(key, &[]),
            });
        };
        // The typed constructors are the parsers; this only finds the one a key names.
        match canonical {
            "san" => Policy::san(value),
            "uri" => Policy::uri(value),
            "uri_prefix" => Policy::uri_prefix(value),
            "spiffe_id" => Policy::spiffe_id(value),
            "trust_domain" => Policy::trust_domain(value),
            "spiffe_path_prefix" => Policy::spiffe_path_prefix(value),
            "ip" => Policy::ip(value),
            "email" => Policy::email(value),
            "cn" => Policy::cn(value),
            "o" => Policy::o(value),
            "ou" => Policy::ou(value),
            "subject" => {
                let (attr, v) = value.split_once('=').ok_or_else(|| {
                    invalid(
                        "subject",
                        ValueError::Other(format!(
                            "expected `ATTRIBUTE=value` (such as `L=Paris` or `2.5.4.5=1234`), got {value:?}"
                        )),
                    )
                })?;
                Policy::subject(attr, v)
            }
            "issuer" => Policy::issuer(value),
            "issuer_cn" => Policy::issuer_cn(value),
            "eku" => Policy::eku(value),
            "extension" => match value.split_once('=') {
                None => Policy::extension(value),
                Some((oid, hex)) => {
                    let der = crate::fingerprint::parse_hex_bytes(hex).ok_or_else(|| {
                        invalid(
                            "extension",
                            ValueError::Other(format!(
                                "the value after `=` must be the extension's DER value in hex, got {hex:?}"
                            )),
                        )
                    })?;
                    Policy::extension_value(oid, &der)
                }
            },
            "cert_policy" => Policy::cert_policy(value),
            "fingerprint" => Policy::fingerprint(value),
            "serial" => Policy::serial(value),
            // `canonical_key` returns only the keys above; should KEYS gain a key without an
            // arm here, it is refused rather than panicking.
            other => Err(PolicyError::UnknownKey {
                key: other.to_owned(),
                suggestion: None,
            }),
        }
    }

    /// A DNS-name SAN matches `pattern` (exact, or `*.` wildcard over one leftmost label): key
    /// `san`. Only DNS names: URI, IP and email SANs have rules of their own (`uri`, `ip`,
    /// `email`).
    pub fn san(pattern: &str) -> Result<Policy, PolicyError> {
        let pattern = DnsPattern::parse(pattern).map_err(|e| invalid("san", e))?;
        Ok(Policy::from_rule(Rule::DnsSan(pattern)))
    }

    /// The old name of [`san`](Self::san).
    #[deprecated(since = "0.1.0", note = "renamed `Policy::san`, after its key `san`")]
    pub fn san_dns(pattern: &str) -> Result<Policy, PolicyError> {
        Policy::san(pattern)
    }

    /// A URI SAN equals `uri` exactly.
    pub fn uri(uri: &str) -> Result<Policy, PolicyError> {
        Ok(Policy::from_rule(Rule::Uri(non_empty("uri", uri)?.into())))
    }

    /// A URI SAN starts with `prefix` at a boundary: the prefix ends with `/`, or the URI ends
    /// right after it or goes on with `/`, `?` or `#`. So `https://a.example` admits
    /// `https://a.example/api` but not `https://a.example.evil/` (nor `https://a.example:8443/`).
    pub fn uri_prefix(prefix: &str) -> Result<Policy, PolicyError> {
        Ok(Policy::from_rule(Rule::UriPrefix(
            non_empty("uri_prefix", prefix)?.into(),
        )))
    }

    /// The certificate's SPIFFE ID equals `id`: key `spiffe_id` (formerly `spiffe`).
    pub fn spiffe_id(id: &str) -> Result<Policy, PolicyError> {
        let id = SpiffeId::parse(id).map_err(|e| invalid("spiffe_id", e))?;
        Ok(Policy::from_rule(Rule::SpiffeId(id)))
    }

    /// The certificate's SPIFFE ID belongs to `trust_domain` (`"prod.example"`).
    pub fn trust_domain(trust_domain: &str) -> Result<Policy, PolicyError> {
        // TrustDomain::parse also takes a whole SPIFFE ID (as go-spiffe does), which here would
        // silently widen `spiffe://td/one/workload` to every workload of `td`.
        if trust_domain.contains(":/") {
            return Err(invalid(
                "trust_domain",
                ValueError::Other(format!(
                    "expected a bare trust domain such as \"prod.example\", got {trust_domain:?}; use `spiffe_id` to match one SPIFFE ID"
                )),
            ));
        }
        let td = TrustDomain::parse(trust_domain).map_err(|e| invalid("trust_domain", e))?;
        Ok(Policy::from_rule(Rule::TrustDomain(td)))
    }

    /// The SPIFFE ID's path starts with `prefix` by whole segments (`/ns/prod` admits
    /// `/ns/prod/sa/x` but not `/ns/production`). Any trust domain: combine with
    /// [`trust_domain`](Self::trust_domain).
    pub fn spiffe_path_prefix(prefix: &str) -> Result<Policy, PolicyError> {
        if prefix.is_empty() || prefix == "/" {
            return Err(invalid(
                "spiffe_path_prefix",
                ValueError::Other(
                    "an empty prefix matches every SPIFFE ID; use `trust_domain` to admit a whole trust domain".into(),
                ),
            ));
        }
        SpiffeId::validate_path(prefix).map_err(|e| invalid("spiffe_path_prefix", e))?;
        Ok(Policy::from_rule(Rule::SpiffePathPrefix(prefix.into())))
    }

    /// An IP-address SAN lies in `network` (`"10.0.0.0/8"`, `"fd00::1"`).
    pub fn ip(network: &str) -> Result<Policy, PolicyError> {
        let network = IpNetwork::parse(network).map_err(|e| invalid("ip", e))?;
        Ok(Policy::from_rule(Rule::Ip(network)))
    }

    /// An email SAN matches `pattern` (`"ops@example.com"` or `"@example.com"`).
    pub fn email(pattern: &str) -> Result<Policy, PolicyError> {
        let pattern = EmailPattern::parse(pattern).map_err(|e| invalid("email", e))?;
        Ok(Policy::from_rule(Rule::Email(pattern)))
    }

    /// A subject common name equals `cn`.
    pub fn cn(cn: &str) -> Result<Policy, PolicyError> {
        Policy::subject_oid("cn", Oid::COMMON_NAME, cn)
    }

    /// A subject organization equals `o`.
    pub fn o(o: &str) -> Result<Policy, PolicyError> {
        Policy::subject_oid("o", Oid::ORGANIZATION, o)
    }

    /// A subject organizational unit equals `ou`.
    pub fn ou(ou: &str) -> Result<Policy, PolicyError> {
        Policy::subject_oid("ou", Oid::ORGANIZATIONAL_UNIT, ou)
    }

    fn subject_oid(key: &'static str, oid: Oid, value: &str) -> Result<Policy, PolicyError> {
        Ok(Policy::from_rule(Rule::Subject {
            oid,
            value: non_empty(key, value)?.into(),
        }))
    }

    /// A subject attribute, named (`"L"`, `"serialNumber"`) or by OID, equals `value`: key
    /// `subject`, whose value is `ATTRIBUTE=value`.
    pub fn subject(attribute: &str, value: &str) -> Result<Policy, PolicyError> {
        if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
            return Err(invalid(
                "subject",
                ValueError::Other(format!(
                    "the value after `=` has leading or trailing spaces, which would be compared exactly; write `{}={}`",
                    attribute.trim(),
                    value.trim()
                )),
            ));
        }
        let oid = Oid::parse_name_or_dotted(attribute.trim()).map_err(|e| invalid("subject", e))?;
        Policy::subject_oid("subject", oid, value)
    }

    /// The old name of [`subject`](Self::subject).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `Policy::subject`, after its key `subject`"
    )]
    pub fn subject_attr(attribute: &str, value: &str) -> Result<Policy, PolicyError> {
        Policy::subject(attribute, value)
    }

    /// The issuer DN equals `dn` (RFC 4514, most specific first: `"CN=Issuing CA,O=Example"`).
    pub fn issuer(dn: &str) -> Result<Policy, PolicyError> {
        Ok(Policy::from_rule(Rule::IssuerDn {
            rdns: parse_rfc4514(dn).map_err(|e| invalid("issuer", e))?,
            text: dn.into(),
        }))
    }

    /// An issuer common name equals `cn`.
    pub fn issuer_cn(cn: &str) -> Result<Policy, PolicyError> {
        Ok(Policy::from_rule(Rule::IssuerAttr {
            oid: Oid::COMMON_NAME,
            value: non_empty("issuer_cn", cn)?.into(),
        }))
    }

    /// The EKU extension lists `eku` (`"clientAuth"` or a dotted OID).
    pub fn eku(eku: &str) -> Result<Policy, PolicyError> {
        let oid = Oid::parse_name_or_dotted(eku).map_err(|e| invalid("eku", e))?;
        Ok(Policy::from_rule(Rule::Eku(oid)))
    }

    /// The extension `oid` is present: key `extension` (formerly `oid`).
    pub fn extension(oid: &str) -> Result<Policy, PolicyError> {
        let oid = Oid::parse_name_or_dotted(oid).map_err(|e| invalid("extension", e))?;
        Ok(Policy::from_rule(Rule::Extension { oid, value: None }))
    }

    /// The extension `oid` is present with exactly this DER value (key `extension` with a value
    /// `OID=hex`).
    pub fn extension_value(oid: &str, value: &[u8]) -> Result<Policy, PolicyError> {
        let oid = Oid::parse_name_or_dotted(oid).map_err(|e| invalid("extension", e))?;
        Ok(Policy::from_rule(Rule::Extension {
            oid,
            value: Some(value.into()),
        }))
    }

    /// The certificate policies extension lists `policy_oid`.
    pub fn cert_policy(policy_oid: &str) -> Result<Policy, PolicyError> {
        let oid = Oid::parse_name_or_dotted(policy_oid).map_err(|e| invalid("cert_policy", e))?;
        Ok(Policy::from_rule(Rule::CertPolicy(oid)))
    }

    /// The leaf's SHA-256 fingerprint equals `fingerprint` (`"sha256:<64 hex>"`): certificate
    /// pinning, which breaks at every renewal by design.
    pub fn fingerprint(fingerprint: &str) -> Result<Policy, PolicyError> {
        let fp = Fingerprint::parse(fingerprint).map_err(|e| invalid("fingerprint", e))?;
        Ok(Policy::from_rule(Rule::Fingerprint(fp)))
    }

    /// The serial number equals `serial` (hex).
    ///
    /// Serials are unique only per issuer: when the client CA bundle has more than one CA (or
    /// intermediates), pair this with [`issuer`](Self::issuer).
    pub fn serial(serial: &str) -> Result<Policy, PolicyError> {
        let serial = SerialNumber::parse(serial).map_err(|e| invalid("serial", e))?;
        Ok(Policy::from_rule(Rule::Serial(serial)))
    }

    /// All of `policies` hold. Nested `all`s are flattened. Empty is an error.
    pub fn all(policies: impl IntoIterator<Item = Policy>) -> Result<Policy, PolicyError> {
        let mut members = Vec::new();
        for p in policies {
            match Arc::unwrap_or_clone(p.root) {
                Node::All(inner) => members.extend(inner),
                node => members.push(node),
            }
        }
        match members.len() {
            0 => Err(PolicyError::Empty { combinator: "all" }),
            1 => Ok(Policy::from_node(members.remove(0))),
            _ => Ok(Policy::from_node(Node::All(members))),
        }
    }

    /// At least one of `policies` holds. Nested `any`s are flattened and exact values compiled
    /// into hash sets. Empty is an error.
    pub fn any(policies: impl IntoIterator<Item = Policy>) -> Result<Policy, PolicyError> {
        let mut members = Vec::new();
        for p in policies {
            match Arc::unwrap_or_clone(p.root) {
                Node::Any(inner) => members.extend(inner.members),
                node => members.push(node),
            }
        }
        match members.len() {
            0 => Err(PolicyError::Empty { combinator: "any" }),
            1 => Ok(Policy::from_node(members.remove(0))),
            _ => {
                let (index, rest) = AnyIndex::build(&members);
                Ok(Policy::from_node(Node::Any(Box::new(AnyNode {
                    members,
                    index,
                    rest,
                }))))
            }
        }
    }

    /// `policy` does not hold. `not(not(p))` is `p`.
    ///
    /// Mind what a negation admits: `not(ou = "contractors")` allows every certificate without
    /// that OU, including ones with no OU at all.
    #[allow(clippy::should_implement_trait)] // also implemented as `std::ops::Not`
    pub fn not(policy: Policy) -> Policy {
        match Arc::unwrap_or_clone(policy.root) {
            Node::Not(inner) => Policy::from_node(*inner),
            node => Policy::from_node(Node::Not(Box::new(node))),
        }
    }

    /// `self` and `other` both hold.
    #[must_use]
    pub fn and(self, other: Policy) -> Policy {
        match Policy::all([self, other]) {
            Ok(p) => p,
            Err(_) => unreachable!("all() of two policies is never empty"),
        }
    }

    /// `self` or `other` holds.
    #[must_use]
    pub fn or(self, other: Policy) -> Policy {
        match Policy::any([self, other]) {
            Ok(p) => p,
            // Two policies are never an empty list.
            Err(_) => unreachable!("any() of two policies is never empty"),
        }
    }

    /// Evaluates the policy. Allocates only when it denies (to build the reason). Feature
    /// `x509` (default).
    #[cfg(feature = "x509")]
    pub fn evaluate(&self, identity: &ClientIdentity) -> Decision {
        if eval::allows(&self.root, identity) {
            Decision::Allow
        } else {
            Decision::Deny(eval::explain(&self.root, identity))
        }
    }

    /// Whether the policy allows `identity`, without building a reason. Never allocates.
    /// Feature `x509` (default).
    #[cfg(feature = "x509")]
    pub fn allows(&self, identity: &ClientIdentity) -> bool {
        eval::allows(&self.root, identity)
    }

    /// The number of leaf rules in the policy.
    pub fn rule_count(&self) -> usize {
        fn count(node: &Node) -> usize {
            match node {
                Node::Rule(_) => 1,
                Node::All(ms) => ms.iter().map(count).sum(),
                Node::Any(any) => any.members.iter().map(count).sum(),
                Node::Not(inner) => count(inner),
            }
        }
        count(&self.root)
    }
}

impl std::ops::Not for Policy {
    type Output = Policy;

    fn not(self) -> Policy {
        Policy::not(self)
    }
}

impl From<DnsPattern> for Policy {
    fn from(p: DnsPattern) -> Policy {
        Policy::from_rule(Rule::DnsSan(p))
    }
}

impl From<SpiffeId> for Policy {
    fn from(id: SpiffeId) -> Policy {
        Policy::from_rule(Rule::SpiffeId(id))
    }
}

impl From<TrustDomain> for Policy {
    fn from(td: TrustDomain) -> Policy {
        Policy::from_rule(Rule::TrustDomain(td))
    }
}

impl From<IpNetwork> for Policy {
    fn from(net: IpNetwork) -> Policy {
        Policy::from_rule(Rule::Ip(net))
    }
}

impl From<EmailPattern> for Policy {
    fn from(p: EmailPattern) -> Policy {
        Policy::from_rule(Rule::Email(p))
    }
}

impl From<Fingerprint> for Policy {
    fn from(f: Fingerprint) -> Policy {
        Policy::from_rule(Rule::Fingerprint(f))
    }
}

impl From<SerialNumber> for Policy {
    fn from(s: SerialNumber) -> Policy {
        Policy::from_rule(Rule::Serial(s))
    }
}

// ---------------------------------------------------------------------------------------------
// Display: the same syntax as `#[require_cert(..)]`.

impl Rule {
    /// The key of this rule, and the certificate field it reads (for deny reasons).
    pub(crate) fn key_and_field(&self) -> (&'static str, &'static str) {
        match self {
            Rule::DnsSan(_) => ("san", "DNS SAN"),
            Rule::Uri(_) => ("uri", "URI SAN"),
            Rule::UriPrefix(_) => ("uri_prefix", "URI SAN"),
            Rule::SpiffeId(_) => ("spiffe_id", "SPIFFE ID"),
            Rule::TrustDomain(_) => ("trust_domain", "SPIFFE ID"),
            Rule::SpiffePathPrefix(_) => ("spiffe_path_prefix", "SPIFFE ID"),
            Rule::Ip(_) => ("ip", "IP address SAN"),
            Rule::Email(_) => ("email", "email SAN"),
            Rule::Subject { oid, .. } if *oid == Oid::COMMON_NAME => ("cn", "subject CN"),
            Rule::Subject { oid, .. } if *oid == Oid::ORGANIZATION => ("o", "subject O"),
            Rule::Subject { oid, .. } if *oid == Oid::ORGANIZATIONAL_UNIT => ("ou", "subject OU"),
            Rule::Subject { .. } => ("subject", "subject attribute of that type"),
            Rule::IssuerAttr { .. } => ("issuer_cn", "issuer CN"),
            Rule::IssuerDn { .. } => ("issuer", "issuer DN"),
            Rule::Eku(_) => ("eku", "extended key usage"),
            Rule::Extension { .. } => ("extension", "extension with that OID"),
            Rule::CertPolicy(_) => ("cert_policy", "certificate policy"),
            Rule::Fingerprint(_) => ("fingerprint", "fingerprint"),
            Rule::Serial(_) => ("serial", "serial number"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, _) = self.key_and_field();
        let value = match self {
            Rule::DnsSan(p) => p.as_str().to_owned(),
            Rule::Uri(u) | Rule::UriPrefix(u) | Rule::SpiffePathPrefix(u) => u.to_string(),
            Rule::SpiffeId(id) => id.as_str().to_owned(),
            Rule::TrustDomain(td) => td.as_str().to_owned(),
            Rule::Ip(n) => n.to_string(),
            Rule::Email(e) => e.as_str().to_owned(),
            Rule::Subject { oid, value } if key == "subject" => {
                format!("{}={value}", oid.name().unwrap_or(oid.as_str()))
            }
            Rule::Subject { value, .. } | Rule::IssuerAttr { value, .. } => value.to_string(),
            Rule::IssuerDn { text, .. } => text.to_string(),
            Rule::Eku(oid) | Rule::CertPolicy(oid) => oid.name().unwrap_or(oid.as_str()).to_owned(),
            Rule::Extension { oid, value: None } => oid.to_string(),
            Rule::Extension {
                oid,
                value: Some(v),
            } => {
                let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
                format!("{oid}={hex}")
            }
            Rule::Fingerprint(fp) => fp.to_string(),
            Rule::Serial(s) => s.to_string(),
        };
        write!(f, "{key} = {value:?}")
    }
}

/// How many alternatives of a long `any(..)` a deny reason shows.
const REASON_LIST_LIMIT: usize = 4;

pub(crate) fn fmt_node(
    node: &Node,
    f: &mut fmt::Formatter<'_>,
    limit: Option<usize>,
) -> fmt::Result {
    let list = |f: &mut fmt::Formatter<'_>, name: &str, members: &[Node]| -> fmt::Result {
        write!(f, "{name}(")?;
        let shown = limit.map_or(members.len(), |l| l.min(members.len()));
        for (i, m) in members[..shown].iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt_node(m, f, limit)?;
        }
        if shown < members.len() {
            write!(f, ", ... {} more", members.len() - shown)?;
        }
        f.write_str(")")
    };
    match node {
        Node::Rule(r) => write!(f, "{r}"),
        Node::All(ms) => list(f, "all", ms),
        Node::Any(any) => list(f, "any", &any.members),
        Node::Not(inner) => {
            f.write_str("not(")?;
            fmt_node(inner, f, limit)?;
            f.write_str(")")
        }
    }
}

/// Displays a node with long lists shortened, for deny reasons.
pub(crate) struct Short<'a>(pub(crate) &'a Node);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_node(self.0, f, Some(REASON_LIST_LIMIT))
    }
}

impl fmt::Display for Policy {
    /// The policy in `#[require_cert(..)]` syntax: `all(trust_domain = "prod.example", not(ou = "x"))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_node(&self.root, f, None)
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Policy(")?;
        fmt_node(&self.root, f, Some(16))?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests;
