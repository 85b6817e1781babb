//! Evaluation: a non-allocating `allows` walk, an allocating `explain` walk for denials, and the
//! hash-set index behind large `any(..)` lists.

use std::collections::{HashMap, HashSet};

use super::{DenyKind, DenyReason, Node, Rule, Short};
use crate::fingerprint::{Fingerprint, SerialNumber};
#[cfg(feature = "x509")]
use crate::identity::ClientIdentity;
use crate::oid::Oid;

/// Exact-valued alternatives of an `any(..)`, by kind. Each set holds the normalised form that the
/// identity also keeps normalised (DNS names lower case without trailing dot, email domains lower
/// case), so a lookup is a hash probe per certificate value.
#[derive(Clone, Default)]
#[cfg_attr(not(feature = "x509"), allow(dead_code))]
pub(crate) struct AnyIndex {
    dns_exact: HashSet<Box<str>>,
    /// Suffixes of `*.suffix` patterns.
    dns_wildcard: HashSet<Box<str>>,
    spiffe: HashSet<Box<str>>,
    trust_domain: HashSet<Box<str>>,
    uri: HashSet<Box<str>>,
    email_exact: HashSet<Box<str>>,
    email_domain: HashSet<Box<str>>,
    subject: HashMap<Oid, HashSet<Box<str>>>,
    fingerprint: HashSet<Fingerprint>,
    serial: HashSet<SerialNumber>,
}

impl AnyIndex {
    /// Indexes the leaf members it can; returns the positions of the others.
    pub(crate) fn build(members: &[Node]) -> (AnyIndex, Vec<usize>) {
        let mut ix = AnyIndex::default();
        let mut rest = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let Node::Rule(rule) = m else {
                rest.push(i);
                continue;
            };
            match rule {
                Rule::DnsSan(p) => match p.wildcard_suffix() {
                    Some(suffix) => ix.dns_wildcard.insert(suffix.into()),
                    None => ix.dns_exact.insert(p.as_str().into()),
                },
                Rule::SpiffeId(id) => ix.spiffe.insert(id.as_str().into()),
                Rule::TrustDomain(td) => ix.trust_domain.insert(td.as_str().into()),
                Rule::Uri(u) => ix.uri.insert(u.clone()),
                Rule::Email(e) if e.is_domain() => ix.email_domain.insert(e.domain().into()),
                Rule::Email(e) => ix.email_exact.insert(e.as_str().into()),
                Rule::Subject { oid, value } => ix
                    .subject
                    .entry(oid.clone())
                    .or_default()
                    .insert(value.clone()),
                Rule::Fingerprint(f) => ix.fingerprint.insert(*f),
                Rule::Serial(s) => ix.serial.insert(s.clone()),
                _ => {
                    rest.push(i);
                    continue;
                }
            };
        }
        (ix, rest)
    }

    #[cfg(feature = "x509")]
    fn matches(&self, id: &ClientIdentity) -> bool {
        if !self.dns_exact.is_empty() || !self.dns_wildcard.is_empty() {
            for name in &id.dns_normalized {
                if self.dns_exact.contains(&**name) {
                    return true;
                }
                if let Some((first, suffix)) = name.split_once('.') {
                    // A wildcard stands for exactly one whole label. A certificate name that
                    // itself contains `*` is never expanded: `*.a.b` only matches the pattern
                    // text `*.a.b`, never `f*.a.b` or `*.*.b`.
                    let plain = !first.is_empty() && !name.contains('*');
                    let same_text = first == "*" && !suffix.contains('*');
                    if (plain || same_text) && self.dns_wildcard.contains(suffix) {
                        return true;
                    }
                }
            }
        }
        if let Some(spiffe) = id.spiffe_id() {
            if self.spiffe.contains(spiffe.as_str())
                || self.trust_domain.contains(spiffe.trust_domain().as_str())
            {
                return true;
            }
        }
        if !self.uri.is_empty() && id.uris().iter().any(|u| self.uri.contains(u.as_str())) {
            return true;
        }
        if !self.email_exact.is_empty() || !self.email_domain.is_empty() {
            for email in &id.emails_normalized {
                if self.email_exact.contains(&**email) {
                    return true;
                }
                if let Some((_, domain)) = email.rsplit_once('@') {
                    if self.email_domain.contains(domain) {
                        return true;
                    }
                }
            }
        }
        if !self.subject.is_empty() {
            for attr in id.subject().attributes() {
                if let (Some(set), Some(value)) = (self.subject.get(attr.oid()), attr.as_str()) {
                    if set.contains(value) {
                        return true;
                    }
                }
            }
        }
        // The emptiness check keeps the leaf unhashed when no fingerprint is listed: the identity
        // computes its fingerprint on first use.
        (!self.fingerprint.is_empty() && self.fingerprint.contains(id.fingerprint_sha256()))
            || self.serial.contains(id.serial())
    }
}

#[cfg(feature = "x509")]
/// Whether `node` allows `id`. Never allocates.
pub(crate) fn allows(node: &Node, id: &ClientIdentity) -> bool {
    match node {
        Node::Rule(rule) => rule_matches(rule, id),
        Node::All(members) => members.iter().all(|m| allows(m, id)),
        Node::Any(any) => {
            // Skip the index when every alternative is in `rest` (none was indexable).
            (any.rest.len() < any.members.len() && any.index.matches(id))
                || any.rest.iter().any(|&i| allows(&any.members[i], id))
        }
        Node::Not(inner) => !allows(inner, id),
    }
}

#[cfg(feature = "x509")]
/// Whether `uri` starts with `prefix` at a boundary: the prefix ends with `/`, or the URI ends
/// there or goes on with `/`, `?` or `#`. A raw string prefix would let `https://a.example` admit
/// `https://a.example.evil/` and `spiffe://td` admit `spiffe://td.attacker/`.
fn uri_has_prefix(uri: &str, prefix: &str) -> bool {
    match uri.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#']),
    }
}

#[cfg(feature = "x509")]
fn rule_matches(rule: &Rule, id: &ClientIdentity) -> bool {
    match rule {
        // The names normalised once per connection: no per-request lower-casing or label checks.
        // Malformed SANs are not in the list, and `matches` never admits them either.
        Rule::DnsSan(p) => id.dns_normalized.iter().any(|n| p.matches_normalized(n)),
        Rule::Uri(u) => id.uris().iter().any(|x| x.as_str() == &**u),
        Rule::UriPrefix(p) => id.uris().iter().any(|x| uri_has_prefix(x, p)),
        Rule::SpiffeId(want) => id.spiffe_id().is_some_and(|s| s == want),
        Rule::TrustDomain(td) => id.spiffe_id().is_some_and(|s| s.trust_domain() == td),
        // Validated when the rule was built (`Policy::spiffe_path_prefix`, its only constructor).
        Rule::SpiffePathPrefix(p) => id.spiffe_id().is_some_and(|s| s.has_checked_path_prefix(p)),
        Rule::Ip(net) => id.ip_addresses().iter().any(|ip| net.contains(*ip)),
        Rule::Email(p) => id.emails().iter().any(|e| p.matches(e)),
        Rule::Subject { oid, value } => id.subject().has_value(oid, value),
        Rule::IssuerAttr { oid, value } => id.issuer().has_value(oid, value),
        Rule::IssuerDn { rdns, .. } => id.issuer().matches_parsed(rdns),
        Rule::Eku(oid) => id.has_extended_key_usage(oid),
        Rule::Extension { oid, value } => id
            .extension(oid)
            .is_some_and(|e| value.as_deref().is_none_or(|v| e.value() == v)),
        Rule::CertPolicy(oid) => id.certificate_policies().contains(oid),
        Rule::Fingerprint(f) => id.fingerprint_sha256() == f,
        Rule::Serial(s) => id.serial() == s,
    }
}

#[cfg(feature = "x509")]
/// Whether the certificate has any value of the kind `rule` reads.
fn has_field(rule: &Rule, id: &ClientIdentity) -> bool {
    match rule {
        Rule::DnsSan(_) => !id.dns_names().is_empty(),
        Rule::Uri(_) | Rule::UriPrefix(_) => !id.uris().is_empty(),
        Rule::SpiffeId(_) | Rule::TrustDomain(_) | Rule::SpiffePathPrefix(_) => {
            id.spiffe_id().is_some()
        }
        Rule::Ip(_) => !id.ip_addresses().is_empty(),
        Rule::Email(_) => !id.emails().is_empty(),
        Rule::Subject { oid, .. } => id.subject().values(oid).next().is_some(),
        Rule::IssuerAttr { oid, .. } => id.issuer().values(oid).next().is_some(),
        Rule::IssuerDn { .. } | Rule::Fingerprint(_) | Rule::Serial(_) => true,
        Rule::Eku(_) => id.extended_key_usage().is_some(),
        Rule::Extension { oid, .. } => id.extension(oid).is_some(),
        Rule::CertPolicy(_) => !id.certificate_policies().is_empty(),
    }
}

#[cfg(feature = "x509")]
/// Why `node` denies `id`. Only called after `allows` returned false.
pub(crate) fn explain(node: &Node, id: &ClientIdentity) -> DenyReason {
    match node {
        Node::Rule(rule) => {
            let (_, field) = rule.key_and_field();
            let kind = if has_field(rule, id) {
                DenyKind::NoMatch
            } else {
                DenyKind::Missing
            };
            DenyReason {
                rule: rule.to_string(),
                kind,
                field,
            }
        }
        Node::All(members) => match members.iter().find(|m| !allows(m, id)) {
            Some(failed) => explain(failed, id),
            // Not reached when called after a denial; an honest answer all the same.
            None => DenyReason {
                rule: Short(node).to_string(),
                kind: DenyKind::NoMatch,
                field: "value",
            },
        },
        Node::Any(_) => DenyReason {
            rule: Short(node).to_string(),
            kind: DenyKind::NoAlternativeMatched,
            field: "value",
        },
        Node::Not(_) => DenyReason {
            rule: Short(node).to_string(),
            kind: DenyKind::ExcludedMatched,
            field: "value",
        },
    }
}
