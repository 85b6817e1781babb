//! Email address patterns for `rfc822Name` SAN rules: one mailbox, or any mailbox at a domain.
//!
//! ```
//! use mtls_core::EmailPattern;
//!
//! let one = EmailPattern::parse("ops@example.com").unwrap();
//! assert!(one.matches("ops@EXAMPLE.com")); // the domain is case-insensitive
//! assert!(!one.matches("OPS@example.com")); // the local part is not (RFC 5321 §2.4)
//!
//! let domain = EmailPattern::parse("@example.com").unwrap();
//! assert!(domain.matches("anyone@example.com"));
//! assert!(!domain.matches("anyone@mail.example.com")); // subdomains are not included
//! ```

use std::fmt;
use std::str::FromStr;

/// An email pattern: `local@domain` (one mailbox) or `@domain` (every mailbox at exactly that domain).
///
/// The domain part compares ASCII case-insensitively; the local part compares exactly, as RFC 5321
/// leaves its case significance to the receiving host and a security check must not guess.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailPattern {
    /// Normalised text: local part as written, `@`, lower-cased domain.
    text: Box<str>,
    /// Byte offset of the `@` in `text`.
    at: usize,
}

/// Why a string is not an email pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid email pattern {input:?}: {reason}")]
pub struct EmailPatternError {
    input: String,
    reason: &'static str,
}

impl EmailPatternError {
    fn new(input: &str, reason: &'static str) -> Self {
        EmailPatternError {
            input: crate::truncate_for_display(input),
            reason,
        }
    }
}

impl EmailPattern {
    /// Parses `"user@example.com"` or `"@example.com"`.
    ///
    /// The domain must be a plain ASCII DNS name (use the `xn--` form for internationalised
    /// domains); the local part must be printable ASCII without spaces, `@`, or quotes.
    pub fn parse(s: &str) -> Result<EmailPattern, EmailPatternError> {
        let Some(at) = s.rfind('@') else {
            return Err(EmailPatternError::new(
                s,
                "expected `local@domain`, or `@domain` for every mailbox at a domain",
            ));
        };
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if !local
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'@' && b != b'"')
        {
            return Err(EmailPatternError::new(
                s,
                "the local part must be printable ASCII without spaces, quotes or `@`",
            ));
        }
        if !is_plain_domain(domain) {
            return Err(EmailPatternError::new(
                s,
                "the domain must be an ASCII DNS name such as example.com (no wildcards, no trailing dot)",
            ));
        }
        let text = format!("{local}@{}", domain.to_ascii_lowercase());
        Ok(EmailPattern {
            text: text.into_boxed_str(),
            at,
        })
    }

    /// Whether this pattern stands for every mailbox at its domain (`@domain`).
    pub fn is_domain(&self) -> bool {
        self.at == 0
    }

    /// The domain, lower case.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// The normalised pattern text (`local@domain` or `@domain`, domain lower-cased).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether an email address as presented in a certificate matches this pattern.
    pub fn matches(&self, presented: &str) -> bool {
        let Some(at) = presented.rfind('@') else {
            return false;
        };
        let (local, domain) = (&presented[..at], &presented[at + 1..]);
        if local.is_empty() || !domain.eq_ignore_ascii_case(self.domain()) {
            return false;
        }
        self.is_domain() || local == &self.text[..self.at]
    }
}

/// Normalises a presented email address for exact lookups: local part as is, domain lower-cased.
/// `None` for text that is not `local@domain` with a non-empty local part and a plain domain.
pub(crate) fn normalize_email(presented: &str) -> Option<String> {
    let at = presented.rfind('@')?;
    let (local, domain) = (&presented[..at], &presented[at + 1..]);
    if local.is_empty() || !is_plain_domain(domain) {
        return None;
    }
    Some(format!("{local}@{}", domain.to_ascii_lowercase()))
}

fn is_plain_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for EmailPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for EmailPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailPattern({})", self.text)
    }
}

impl FromStr for EmailPattern {
    type Err = EmailPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EmailPattern::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_mailbox_matches_with_domain_in_any_case() {
        let p = EmailPattern::parse("a.b@Example.COM").unwrap();
        assert_eq!(p.as_str(), "a.b@example.com");
        assert!(p.matches("a.b@example.com"));
        assert!(p.matches("a.b@EXAMPLE.com"));
    }

    #[test]
    fn exact_mailbox_local_part_is_case_sensitive() {
        let p = EmailPattern::parse("ops@example.com").unwrap();
        assert!(!p.matches("Ops@example.com"));
    }

    #[test]
    fn domain_pattern_matches_any_mailbox_at_exactly_that_domain() {
        let p = EmailPattern::parse("@example.com").unwrap();
        assert!(p.is_domain());
        assert!(p.matches("x@example.com"));
        assert!(!p.matches("x@sub.example.com"));
        assert!(!p.matches("x@example.com.evil"));
    }

    #[test]
    fn domain_pattern_does_not_match_an_empty_local_part() {
        let p = EmailPattern::parse("@example.com").unwrap();
        assert!(!p.matches("@example.com"));
    }

    #[test]
    fn presented_address_without_at_never_matches() {
        let p = EmailPattern::parse("@example.com").unwrap();
        assert!(!p.matches("example.com"));
    }

    #[test]
    fn quoted_at_in_presented_local_part_uses_the_last_at() {
        let p = EmailPattern::parse("@example.com").unwrap();
        assert!(!p.matches("x@example.com@evil.test"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for bad in [
            "",
            "example.com",
            "a@",
            "@",
            "a b@example.com",
            "a@exa mple.com",
            "a@*.example.com",
            "a@example.com.",
            "a@-example.com",
            "a@ex..com",
            "\"a\"@example.com",
            "a@bücher.de",
        ] {
            assert!(EmailPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn domains_with_hyphens_and_underscores_inside_labels_are_accepted() {
        for good in [
            "a@my-host.example.com",
            "@_mail.example.com",
            "a@x1-y_2.example",
        ] {
            assert!(EmailPattern::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn display_is_the_normalised_pattern_text() {
        let p = EmailPattern::parse("Ops@Example.COM").unwrap();
        assert_eq!(p.to_string(), "Ops@example.com");
    }

    #[test]
    fn debug_names_the_type_and_the_pattern() {
        let p = EmailPattern::parse("@example.com").unwrap();
        assert_eq!(format!("{p:?}"), "EmailPattern(@example.com)");
    }

    #[test]
    fn normalize_lowercases_only_the_domain() {
        assert_eq!(normalize_email("Ab@EX.com").as_deref(), Some("Ab@ex.com"));
        assert_eq!(normalize_email("@ex.com"), None);
    }
}
