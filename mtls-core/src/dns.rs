//! DNS name patterns for authorization policies, and normalisation of presented DNS names.
//!
//! A [`DnsPattern`] is written by a service owner in an authorization *policy* and is matched
//! against the DNS names that a client certificate *presents* in its subject alternative name (SAN)
//! extension.
//!
//! ```
//! use mtls_core::DnsPattern;
//!
//! // An exact name matches itself, ASCII case-insensitively, with or without one trailing dot.
//! let exact: DnsPattern = "svc-a.internal".parse()?;
//! assert!(exact.matches("SVC-A.internal."));
//! assert!(!exact.matches("svc-b.internal"));
//!
//! // A wildcard is the whole leftmost label and stands for exactly one label.
//! let any_service = DnsPattern::parse("*.svc.internal")?;
//! assert!(any_service.matches("billing.svc.internal"));
//! assert!(!any_service.matches("svc.internal")); // zero labels
//! assert!(!any_service.matches("a.billing.svc.internal")); // two labels
//! assert_eq!(any_service.wildcard_suffix(), Some("svc.internal"));
//!
//! // A wildcard in a certificate is never expanded: it only matches the identical policy text.
//! assert!(any_service.matches("*.svc.internal"));
//! assert!(!exact.matches("*.internal"));
//!
//! // Mistakes are reported with the input and a specific reason.
//! let err = DnsPattern::parse("f*.example.com").expect_err("partial-label wildcards are rejected");
//! assert_eq!(
//!     err.to_string(),
//!     r#"invalid DNS pattern "f*.example.com": a wildcard must be the whole leftmost label ("*.example.com")"#,
//! );
//! # Ok::<(), mtls_core::DnsPatternError>(())
//! ```
//!
//! # Pattern syntax
//!
//! * An exact name (`svc-a.internal`, `localhost`) or a wildcard whose whole leftmost label is `*`
//!   (`*.svc.internal`). `f*.x`, `*f.x`, `*.*.x`, `a.*.x`, a lone `*` and `*.` are rejected.
//! * A wildcard may stand over a single label: `*.internal` is valid. This deliberately differs
//!   from webpki, Go and Python, which refuse wildcards directly under a top-level domain when
//!   verifying *servers*; here the pattern is written by the service owner for their own (often
//!   internal) domain.
//! * Labels are 1 to 63 bytes of ASCII letters, digits and hyphens, and neither start nor end with
//!   a hyphen. Underscores are rejected (no external vector needs them), and a presented name that
//!   contains one is malformed (see [`normalize_dns_name`]). The whole name is at most 253 bytes,
//!   not counting one optional trailing dot, which is ignored; two trailing dots are an error.
//! * Only ASCII: an internationalised name must be written in its IDNA A-label (`xn--`, punycode)
//!   form. A-labels are compared as text; they are not decoded or checked as punycode.
//! * Case is folded: the pattern is stored in lower case.
//! * Input that looks like an IP address (`10.0.0.1`, `::1`, `[::1]`, `10.0.0.0/8`, or any name
//!   whose last label is all digits, such as `*.0.0.1`) is rejected with a hint to use an IP rule
//!   instead.
//!
//! # Matching presented names
//!
//! [`DnsPattern::matches`] takes a DNS SAN string exactly as found in a certificate. It compares
//! ASCII case-insensitively and ignores one trailing dot. A presented name that contains `*` is
//! never expanded; it matches only a pattern whose normalised text is equal to it. A malformed
//! presented name (see [`normalize_dns_name`]) never matches anything.
//!
//! # Normalising once, looking up many times
//!
//! A policy engine that holds many patterns can normalise each certificate SAN once with
//! [`normalize_dns_name`] and then use hash lookups. For every presented name `n` for which
//! `normalize_dns_name(n)` is `Some(m)`, and every pattern `p`:
//!
//! ```text
//! p.matches(n) == if p.is_wildcard() {
//!     m == p.as_str()
//!         || (!m.contains('*')
//!             && m.split_once('.').is_some_and(|(first, rest)| {
//!                 !first.is_empty() && Some(rest) == p.wildcard_suffix()
//!             }))
//! } else {
//!     m == p.as_str()
//! }
//! ```
//!
//! and when `normalize_dns_name(n)` is `None`, `p.matches(n)` is `false` for every `p`. So exact
//! patterns can be kept in a set keyed by [`DnsPattern::as_str`], and wildcard patterns in a set
//! keyed by [`DnsPattern::wildcard_suffix`] (looked up with the part of `m` after its first dot,
//! when `m` has no `*`) plus a set keyed by their text (looked up with `m` itself).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Longest name, in bytes, without the optional trailing dot (RFC 1035 §2.3.4 less the root label).
const MAX_NAME_LEN: usize = 253;
/// Longest label, in bytes (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
/// How many characters of the input an error message shows before truncating it.
const MAX_DISPLAYED_CHARS: usize = 64;

/// A DNS name pattern from an authorization policy: an exact name or a `*.`-leftmost-label
/// wildcard.
///
/// Build one with [`DnsPattern::parse`] (or [`str::parse`]); match it against DNS names presented
/// in a client certificate with [`DnsPattern::matches`]. Equality, ordering and hashing use the
/// normalised text ([`DnsPattern::as_str`]), so `SVC.internal.` and `svc.internal` are the same
/// pattern. See the [module documentation](self) for the syntax and the matching rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsPattern {
    /// Normalised text: lower case, no trailing dot, `*.` kept for wildcards.
    text: String,
}

impl DnsPattern {
    /// Parses a policy pattern: an exact DNS name (`svc-a.internal`) or a wildcard whose whole
    /// leftmost label is `*` (`*.svc.internal`).
    ///
    /// The result is normalised to lower case without a trailing dot.
    ///
    /// # Errors
    ///
    /// Returns a [`DnsPatternError`] naming the input and the reason (see [`DnsPatternErrorKind`])
    /// when the text is not a valid pattern under the rules in the [module documentation](self).
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls_core::{DnsPattern, DnsPatternErrorKind};
    ///
    /// let p = DnsPattern::parse("API.Example.COM.")?;
    /// assert_eq!(p.as_str(), "api.example.com");
    ///
    /// let err = DnsPattern::parse("a.*.example.com").expect_err("inner wildcards are rejected");
    /// assert_eq!(err.kind(), DnsPatternErrorKind::WildcardNotLeftmost);
    /// # Ok::<(), mtls_core::DnsPatternError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, DnsPatternError> {
        let name = validate_pattern(input).map_err(|kind| DnsPatternError::new(input, kind))?;
        Ok(Self {
            text: name.to_ascii_lowercase(),
        })
    }

    /// Whether `presented`, a DNS SAN string as found in a certificate, is matched by this pattern.
    ///
    /// Comparison is ASCII case-insensitive and one trailing dot on `presented` is ignored. A
    /// wildcard pattern matches a name with exactly one more (non-empty) label in front of its
    /// suffix. A presented name containing `*` is never expanded: it matches only a pattern with
    /// the same normalised text. Malformed presented names (see [`normalize_dns_name`]) never
    /// match. This method does not allocate.
    ///
    /// # Examples
    ///
    /// ```
    /// use mtls_core::DnsPattern;
    ///
    /// let p = DnsPattern::parse("*.svc.internal")?;
    /// assert!(p.matches("Billing.SVC.internal."));
    /// assert!(!p.matches("svc.internal"));
    /// assert!(!p.matches("billing..svc.internal"));
    /// # Ok::<(), mtls_core::DnsPatternError>(())
    /// ```
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        let Some(name) = strip_presented(presented) else {
            return false;
        };
        if name.eq_ignore_ascii_case(&self.text) {
            return true;
        }
        let Some(suffix) = self.wildcard_suffix() else {
            return false;
        };
        if name.as_bytes().contains(&b'*') {
            return false;
        }
        match name.split_once('.') {
            Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        }
    }

    /// [`matches`](Self::matches) for a name that [`normalize_dns_name`] already returned (lower
    /// case, no trailing dot, well-formed): the identity normalises its DNS SANs once per
    /// connection, so a request's policy check is plain byte comparisons. Given any other text it
    /// is not a substitute for `matches`, which is why it is not public.
    pub(crate) fn matches_normalized(&self, name: &str) -> bool {
        debug_assert_eq!(normalize_dns_name(name).as_deref(), Some(name));
        if name == self.text.as_str() {
            return true;
        }
        let Some(suffix) = self.wildcard_suffix() else {
            return false;
        };
        // The same rules as `matches`: `name` is one non-empty label, a dot and the suffix, and
        // a presented `*` is never expanded. The suffix has no `*` (a pattern's wildcard can only
        // be its whole leftmost label), so only the first label needs looking at. Byte
        // comparisons rather than `split_once`: this runs on every request.
        let (name, suffix) = (name.as_bytes(), suffix.as_bytes());
        debug_assert!(!suffix.contains(&b'*'));
        let Some(first_len) = name.len().checked_sub(suffix.len() + 1) else {
            return false;
        };
        first_len > 0
            && name[first_len] == b'.'
            && &name[first_len + 1..] == suffix
            && !name[..first_len].iter().any(|&b| b == b'.' || b == b'*')
    }

    /// The normalised pattern text: lower case, without a trailing dot, with `*.` kept for
    /// wildcards.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this pattern is a wildcard (`*.suffix`).
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        self.text.starts_with("*.")
    }

    /// For a wildcard pattern, the normalised part after `*.` (`b.c` for `*.b.c`); `None` for an
    /// exact name.
    #[must_use]
    pub fn wildcard_suffix(&self) -> Option<&str> {
        self.text.strip_prefix("*.")
    }
}

impl fmt::Display for DnsPattern {
    /// Writes the normalised text, as [`DnsPattern::as_str`] returns it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for DnsPattern {
    type Err = DnsPatternError;

    /// Same as [`DnsPattern::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Normalises a DNS name presented in a certificate: lower case, one trailing dot removed.
///
/// Returns `None` when the name is malformed, in which case no [`DnsPattern`] matches it:
///
/// * empty, or only a dot;
/// * more than one trailing dot, a leading dot or an empty label (`a..b`);
/// * a byte other than an ASCII letter, digit, hyphen or `*` (so non-ASCII text, underscores,
///   spaces, NUL bytes, `:` and `/` all make a name malformed);
/// * a label that starts or ends with a hyphen, or is longer than 63 bytes;
/// * longer than 253 bytes without the trailing dot.
///
/// A `*` anywhere is kept as it is: such a name can only be equal to a wildcard pattern's text. The
/// result borrows from `presented` unless upper-case letters had to be folded. For any name `n`
/// where this returns `Some(m)`, `pattern.matches(n)` depends only on `m`; the [module
/// documentation](self#normalising-once-looking-up-many-times) states the exact relation.
///
/// # Examples
///
/// ```
/// use mtls_core::normalize_dns_name;
///
/// assert_eq!(normalize_dns_name("Svc-A.Internal.").as_deref(), Some("svc-a.internal"));
/// assert_eq!(normalize_dns_name("*.internal").as_deref(), Some("*.internal"));
/// assert_eq!(normalize_dns_name("a..internal"), None);
/// assert_eq!(normalize_dns_name("internal.."), None);
/// ```
#[must_use]
pub fn normalize_dns_name(presented: &str) -> Option<Cow<'_, str>> {
    let name = strip_presented(presented)?;
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// Why a [`DnsPattern`] could not be parsed; see [`DnsPatternError::kind`].
///
/// New kinds may be added in minor releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DnsPatternErrorKind {
    /// The input is empty.
    Empty,
    /// The input contains non-ASCII characters; internationalised names must be written as IDNA
    /// A-labels (`xn--...`).
    NonAscii,
    /// The input looks like an IP address (it parses as one, optionally in brackets or with a
    /// `/prefix`, or its last label is all digits); addresses belong in IP rules.
    LooksLikeIpAddress,
    /// The input ends in more than one dot.
    MultipleTrailingDots,
    /// The input is a lone dot, starts with a dot or has two dots in a row.
    EmptyLabel,
    /// The name is longer than 253 bytes (not counting one trailing dot).
    NameTooLong {
        /// Length of the name in bytes, without the trailing dot.
        len: usize,
    },
    /// A label is longer than 63 bytes.
    LabelTooLong {
        /// Length of the offending label in bytes.
        len: usize,
    },
    /// A label contains a character other than an ASCII letter, digit or hyphen (or the leftmost
    /// `*`).
    InvalidCharacter {
        /// The first offending character.
        ch: char,
    },
    /// A label starts or ends with a hyphen.
    HyphenAtLabelEdge,
    /// The leftmost label mixes `*` with other characters (`f*.example.com`).
    PartialLabelWildcard,
    /// A `*` appears in a label other than the leftmost one (`a.*.example.com`, `*.*.example.com`).
    WildcardNotLeftmost,
    /// The pattern is a lone `*` (or `*.`) with no parent domain.
    BareWildcard,
}

/// The error returned when a [`DnsPattern`] cannot be parsed.
///
/// It keeps the input and the [`DnsPatternErrorKind`]; its `Display` output names both, with long
/// input truncated and control characters escaped, for example:
///
/// ```text
/// invalid DNS pattern "f*.example.com": a wildcard must be the whole leftmost label ("*.example.com")
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DnsPatternError {
    input: String,
    kind: DnsPatternErrorKind,
}

impl DnsPatternError {
    fn new(input: &str, kind: DnsPatternErrorKind) -> Self {
        Self {
            input: input.to_owned(),
            kind,
        }
    }

    /// What was wrong with the input.
    #[must_use]
    pub fn kind(&self) -> DnsPatternErrorKind {
        self.kind
    }

    /// The text that failed to parse, in full.
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for DnsPatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DnsPatternErrorKind as K;
        write!(f, "invalid DNS pattern {}: ", Quoted(&self.input))?;
        match self.kind {
            K::Empty => f.write_str("the pattern is empty"),
            K::NonAscii => f.write_str(
                "it contains non-ASCII characters; write internationalised labels in their IDNA \
                 A-label (punycode) form, e.g. \"xn--bcher-kva.example\" for \"bücher.example\"",
            ),
            K::LooksLikeIpAddress => {
                if looks_like_ip_address(&self.input) {
                    f.write_str(
                        "this is an IP address or network, not a DNS name; use an IP rule \
                         (`ip = ...`)",
                    )
                } else {
                    f.write_str(
                        "its last label is all digits, so it looks like an IP address, not a DNS \
                         name; use an IP rule (`ip = ...`) for addresses",
                    )
                }
            }
            K::MultipleTrailingDots => f.write_str(
                "it ends in more than one dot (one trailing dot is allowed and ignored)",
            ),
            K::EmptyLabel => {
                if self.input == "." {
                    f.write_str("a name needs at least one label")
                } else if self.input.starts_with('.') {
                    f.write_str("it starts with a dot (an empty label)")
                } else {
                    f.write_str("it has two dots in a row (an empty label)")
                }
            }
            K::NameTooLong { len } => write!(
                f,
                "the name is {len} bytes long; at most {MAX_NAME_LEN} are allowed (not counting a \
                 trailing dot)"
            ),
            K::LabelTooLong { len } => write!(
                f,
                "a label is {len} bytes long; at most {MAX_LABEL_LEN} are allowed"
            ),
            K::InvalidCharacter { ch: '_' } => f.write_str(
                "underscores are not allowed; labels may contain only ASCII letters, digits and \
                 hyphens",
            ),
            K::InvalidCharacter { ch } => {
                write!(
                    f,
                    "character {ch:?} is not allowed; labels may contain only ASCII letters, \
                     digits and hyphens"
                )?;
                if self.input.contains("://") {
                    f.write_str(" (write the host name alone, not a URL)")?;
                }
                Ok(())
            }
            K::HyphenAtLabelEdge => f.write_str("a label must not start or end with a hyphen"),
            K::PartialLabelWildcard => {
                f.write_str("a wildcard must be the whole leftmost label")?;
                let name = self.input.strip_suffix('.').unwrap_or(&self.input);
                match name.split_once('.') {
                    Some((_, rest)) if !rest.is_empty() => {
                        write!(f, " ({})", Quoted(&format!("*.{rest}")))
                    }
                    _ => f.write_str(" (as in \"*.example.com\")"),
                }
            }
            K::WildcardNotLeftmost => f.write_str(
                "a wildcard may appear only once, as the whole leftmost label (as in \
                 \"*.example.com\")",
            ),
            K::BareWildcard => f.write_str(
                "a wildcard needs a parent domain (as in \"*.example.com\"); a lone \"*\" is not \
                 allowed",
            ),
        }
    }
}

/// Writes a string quoted and escaped like `{:?}`, cut after [`MAX_DISPLAYED_CHARS`] characters.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_DISPLAYED_CHARS) {
            Some((end, _)) => {
                let head = self.0.get(..end).unwrap_or_default();
                write!(f, "{head:?}... ({} bytes)", self.0.len())
            }
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// Letter, digit or hyphen.
fn is_ldh(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Whether the input parses as an IP address, optionally in brackets or followed by `/prefix`.
fn looks_like_ip_address(input: &str) -> bool {
    let addr = input.split_once('/').map_or(input, |(addr, _)| addr);
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    addr.parse::<IpAddr>().is_ok()
}

/// Checks a policy pattern and returns it without its trailing dot (case not yet folded).
fn validate_pattern(input: &str) -> Result<&str, DnsPatternErrorKind> {
    use DnsPatternErrorKind as K;
    if input.is_empty() {
        return Err(K::Empty);
    }
    if !input.is_ascii() {
        return Err(K::NonAscii);
    }
    if looks_like_ip_address(input) {
        return Err(K::LooksLikeIpAddress);
    }
    let name = match input.strip_suffix('.') {
        Some(rest) if rest.ends_with('.') => return Err(K::MultipleTrailingDots),
        Some(rest) => rest,
        None => input,
    };
    if name.is_empty() {
        return Err(K::EmptyLabel);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(K::NameTooLong { len: name.len() });
    }
    let mut labels = 0usize;
    let mut wildcard = false;
    let mut last = "";
    for (index, label) in name.split('.').enumerate() {
        let bytes = label.as_bytes();
        if bytes.is_empty() {
            return Err(K::EmptyLabel);
        }
        if bytes.contains(&b'*') {
            match (index, label) {
                (0, "*") => wildcard = true,
                (0, _) => return Err(K::PartialLabelWildcard),
                _ => return Err(K::WildcardNotLeftmost),
            }
        } else {
            if bytes.len() > MAX_LABEL_LEN {
                return Err(K::LabelTooLong { len: bytes.len() });
            }
            if let Some(&b) = bytes.iter().find(|&&b| !is_ldh(b)) {
                return Err(K::InvalidCharacter { ch: char::from(b) });
            }
            if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
                return Err(K::HyphenAtLabelEdge);
            }
        }
        labels += 1;
        last = label;
    }
    if wildcard && labels == 1 {
        return Err(K::BareWildcard);
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(K::LooksLikeIpAddress);
    }
    Ok(name)
}

/// Checks a presented name and returns it without its trailing dot (case not folded), or `None`
/// when it is malformed (see [`normalize_dns_name`]).
fn strip_presented(presented: &str) -> Option<&str> {
    let name = presented.strip_suffix('.').unwrap_or(presented);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let well_formed = name.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(&first), Some(&last)) => {
                bytes.len() <= MAX_LABEL_LEN
                    && first != b'-'
                    && last != b'-'
                    && bytes.iter().all(|&b| is_ldh(b) || b == b'*')
            }
            _ => false,
        }
    });
    well_formed.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> DnsPattern {
        DnsPattern::parse(text).expect("test pattern should parse")
    }

    fn kind_of(text: &str) -> DnsPatternErrorKind {
        DnsPattern::parse(text)
            .expect_err("test input should be rejected")
            .kind()
    }

    fn message_of(text: &str) -> String {
        DnsPattern::parse(text)
            .expect_err("test input should be rejected")
            .to_string()
    }

    // ----- parsing: accepted forms -----

    #[test]
    fn parse_lowercases_an_exact_name() {
        assert_eq!(pattern("Svc-A.Internal").as_str(), "svc-a.internal");
    }

    #[test]
    fn parse_accepts_a_single_label_exact_name() {
        assert_eq!(pattern("localhost").as_str(), "localhost");
    }

    #[test]
    fn parse_accepts_a_wildcard_over_a_multi_label_suffix() {
        let p = pattern("*.SVC.internal");
        assert_eq!(p.as_str(), "*.svc.internal");
        assert!(p.is_wildcard());
        assert_eq!(p.wildcard_suffix(), Some("svc.internal"));
    }

    #[test]
    fn parse_accepts_a_wildcard_over_a_single_label() {
        assert_eq!(pattern("*.internal").wildcard_suffix(), Some("internal"));
    }

    #[test]
    fn parse_ignores_one_trailing_dot() {
        assert_eq!(pattern("a.b."), pattern("a.b"));
        assert_eq!(pattern("*.b.").as_str(), "*.b");
    }

    #[test]
    fn parse_accepts_punycode_a_labels() {
        assert_eq!(
            pattern("XN--bcher-kva.example").as_str(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn parse_accepts_inner_hyphens_and_digit_labels() {
        assert_eq!(pattern("a-1.0.b--c.x9").as_str(), "a-1.0.b--c.x9");
    }

    #[test]
    fn parse_accepts_labels_of_63_bytes() {
        let label = "a".repeat(63);
        assert_eq!(pattern(&format!("{label}.x")).as_str().len(), 65);
    }

    #[test]
    fn parse_accepts_a_253_byte_name_with_or_without_trailing_dot() {
        let name = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(name.len(), 253);
        assert_eq!(pattern(&name), pattern(&format!("{name}.")));
    }

    // ----- parsing: rejected forms -----

    #[test]
    fn parse_rejects_the_empty_string() {
        assert_eq!(kind_of(""), DnsPatternErrorKind::Empty);
    }

    #[test]
    fn parse_rejects_a_lone_dot() {
        assert_eq!(kind_of("."), DnsPatternErrorKind::EmptyLabel);
    }

    #[test]
    fn parse_rejects_a_leading_dot() {
        assert_eq!(kind_of(".a.b"), DnsPatternErrorKind::EmptyLabel);
    }

    #[test]
    fn parse_rejects_an_empty_inner_label() {
        assert_eq!(kind_of("a..b"), DnsPatternErrorKind::EmptyLabel);
    }

    #[test]
    fn parse_rejects_two_trailing_dots() {
        assert_eq!(kind_of("a.b.."), DnsPatternErrorKind::MultipleTrailingDots);
    }

    #[test]
    fn parse_rejects_a_wildcard_prefix_inside_a_label() {
        assert_eq!(
            kind_of("f*.example.com"),
            DnsPatternErrorKind::PartialLabelWildcard
        );
    }

    #[test]
    fn parse_rejects_a_wildcard_suffix_inside_a_label() {
        assert_eq!(
            kind_of("*f.example.com"),
            DnsPatternErrorKind::PartialLabelWildcard
        );
    }

    #[test]
    fn parse_rejects_two_wildcard_labels() {
        assert_eq!(
            kind_of("*.*.example.com"),
            DnsPatternErrorKind::WildcardNotLeftmost
        );
    }

    #[test]
    fn parse_rejects_a_wildcard_in_an_inner_label() {
        assert_eq!(
            kind_of("a.*.example.com"),
            DnsPatternErrorKind::WildcardNotLeftmost
        );
    }

    #[test]
    fn parse_rejects_a_lone_wildcard() {
        assert_eq!(kind_of("*"), DnsPatternErrorKind::BareWildcard);
        assert_eq!(kind_of("*."), DnsPatternErrorKind::BareWildcard);
    }

    #[test]
    fn parse_rejects_non_ascii_and_points_at_punycode() {
        assert_eq!(kind_of("bücher.example"), DnsPatternErrorKind::NonAscii);
        assert!(message_of("bücher.example").contains("xn--"));
    }

    #[test]
    fn parse_rejects_underscores() {
        assert_eq!(
            kind_of("_srv.example.com"),
            DnsPatternErrorKind::InvalidCharacter { ch: '_' }
        );
        assert!(message_of("_srv.example.com").contains("underscores are not allowed"));
    }

    #[test]
    fn parse_rejects_punctuation_and_control_characters() {
        assert_eq!(
            kind_of("a b.example"),
            DnsPatternErrorKind::InvalidCharacter { ch: ' ' }
        );
        assert_eq!(
            kind_of("a.example\0.org"),
            DnsPatternErrorKind::InvalidCharacter { ch: '\0' }
        );
    }

    #[test]
    fn parse_rejects_a_url_with_a_hint() {
        assert_eq!(
            kind_of("https://www.example.com"),
            DnsPatternErrorKind::InvalidCharacter { ch: ':' }
        );
        assert!(message_of("https://www.example.com").contains("not a URL"));
    }

    #[test]
    fn parse_rejects_hyphens_at_label_edges() {
        assert_eq!(
            kind_of("-a.example"),
            DnsPatternErrorKind::HyphenAtLabelEdge
        );
        assert_eq!(
            kind_of("a-.example"),
            DnsPatternErrorKind::HyphenAtLabelEdge
        );
        assert_eq!(
            kind_of("*.-a.example"),
            DnsPatternErrorKind::HyphenAtLabelEdge
        );
    }

    #[test]
    fn parse_rejects_labels_over_63_bytes() {
        let label = "a".repeat(64);
        assert_eq!(
            kind_of(&format!("{label}.x")),
            DnsPatternErrorKind::LabelTooLong { len: 64 }
        );
    }

    #[test]
    fn parse_rejects_names_over_253_bytes() {
        let name = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        assert_eq!(
            kind_of(&name),
            DnsPatternErrorKind::NameTooLong { len: 254 }
        );
    }

    #[test]
    fn parse_rejects_ipv4_addresses_and_points_at_ip_rules() {
        assert_eq!(kind_of("10.0.0.1"), DnsPatternErrorKind::LooksLikeIpAddress);
        assert!(message_of("10.0.0.1").contains("ip = "));
    }

    #[test]
    fn parse_rejects_ipv6_addresses_bare_or_bracketed() {
        assert_eq!(kind_of("::1"), DnsPatternErrorKind::LooksLikeIpAddress);
        assert_eq!(
            kind_of("[2001:db8::1]"),
            DnsPatternErrorKind::LooksLikeIpAddress
        );
    }

    #[test]
    fn parse_rejects_cidr_blocks() {
        assert_eq!(
            kind_of("10.0.0.0/8"),
            DnsPatternErrorKind::LooksLikeIpAddress
        );
    }

    #[test]
    fn parse_rejects_an_all_numeric_last_label() {
        assert_eq!(kind_of("*.0.0.1"), DnsPatternErrorKind::LooksLikeIpAddress);
        assert_eq!(kind_of("foo.123"), DnsPatternErrorKind::LooksLikeIpAddress);
        assert_eq!(kind_of("1.2.3."), DnsPatternErrorKind::LooksLikeIpAddress);
        assert!(message_of("foo.123").contains("last label is all digits"));
    }

    // ----- error values and messages -----

    #[test]
    fn error_message_for_a_partial_wildcard_suggests_the_whole_label() {
        assert_eq!(
            message_of("f*.example.com"),
            r#"invalid DNS pattern "f*.example.com": a wildcard must be the whole leftmost label ("*.example.com")"#
        );
    }

    #[test]
    fn error_messages_tell_a_lone_dot_from_a_leading_one_and_a_doubled_one() {
        assert!(message_of(".").ends_with("a name needs at least one label"));
        assert!(message_of(".example.com").ends_with("it starts with a dot (an empty label)"));
        assert!(message_of("a..example.com").ends_with("two dots in a row (an empty label)"));
    }

    #[test]
    fn error_message_for_a_partial_wildcard_alone_gives_an_example() {
        assert!(
            message_of("f*").ends_with(
                r#"a wildcard must be the whole leftmost label (as in "*.example.com")"#
            ),
            "{}",
            message_of("f*")
        );
    }

    #[test]
    fn error_exposes_the_full_input_and_the_kind() {
        let long = format!("{}.b", "a".repeat(300));
        let err = DnsPattern::parse(&long).expect_err("label too long");
        assert_eq!(err.input(), long);
        assert_eq!(err.kind(), DnsPatternErrorKind::NameTooLong { len: 302 });
    }

    #[test]
    fn error_display_truncates_long_input() {
        let long = format!("{}.b", "a".repeat(300));
        let shown = message_of(&long);
        assert!(shown.len() < 250, "{shown}");
        assert!(shown.contains("... (302 bytes)"), "{shown}");
    }

    #[test]
    fn error_display_truncates_multi_byte_input_on_a_char_boundary() {
        let shown = message_of(&"é".repeat(100));
        assert!(shown.contains(&"é".repeat(MAX_DISPLAYED_CHARS)), "{shown}");
        assert!(
            !shown.contains(&"é".repeat(MAX_DISPLAYED_CHARS + 1)),
            "{shown}"
        );
    }

    #[test]
    fn error_display_escapes_control_characters_and_quotes() {
        let shown = message_of("a\"\n.example");
        assert!(
            shown.starts_with(r#"invalid DNS pattern "a\"\n.example""#),
            "{shown}"
        );
    }

    #[test]
    fn error_is_a_std_error() {
        fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
        assert_error(&DnsPattern::parse("").expect_err("empty"));
    }

    // ----- matching: exact patterns -----

    #[test]
    fn exact_pattern_matches_its_own_name() {
        assert!(pattern("svc-a.internal").matches("svc-a.internal"));
    }

    #[test]
    fn exact_pattern_matches_ascii_case_insensitively() {
        assert!(pattern("svc-a.internal").matches("SVC-A.Internal"));
        assert!(pattern("SVC-A.internal").matches("svc-a.internal"));
    }

    #[test]
    fn exact_pattern_ignores_one_trailing_dot_on_the_presented_name() {
        assert!(pattern("svc-a.internal").matches("svc-a.internal."));
        assert!(pattern("svc-a.internal.").matches("svc-a.internal"));
    }

    #[test]
    fn exact_pattern_does_not_match_two_trailing_dots() {
        assert!(!pattern("svc-a.internal").matches("svc-a.internal.."));
    }

    #[test]
    fn exact_pattern_does_not_match_a_subdomain_or_parent() {
        let p = pattern("svc-a.internal");
        assert!(!p.matches("x.svc-a.internal"));
        assert!(!p.matches("internal"));
    }

    #[test]
    fn exact_pattern_does_not_expand_a_presented_wildcard() {
        assert!(!pattern("www.example.com").matches("*.example.com"));
    }

    // ----- matching: wildcard patterns -----

    #[test]
    fn wildcard_matches_exactly_one_extra_label() {
        assert!(pattern("*.svc.internal").matches("billing.svc.internal"));
    }

    #[test]
    fn wildcard_does_not_match_its_bare_suffix() {
        assert!(!pattern("*.svc.internal").matches("svc.internal"));
    }

    #[test]
    fn wildcard_does_not_match_two_extra_labels() {
        assert!(!pattern("*.svc.internal").matches("a.billing.svc.internal"));
    }

    #[test]
    fn wildcard_over_a_single_label_matches_one_extra_label() {
        let p = pattern("*.internal");
        assert!(p.matches("svc.internal"));
        assert!(!p.matches("internal"));
        assert!(!p.matches("a.svc.internal"));
    }

    #[test]
    fn wildcard_matches_case_insensitively_and_ignores_one_trailing_dot() {
        assert!(pattern("*.Svc.internal").matches("BILLING.svc.INTERNAL."));
    }

    #[test]
    fn wildcard_does_not_match_a_lookalike_suffix() {
        assert!(!pattern("*.svc.internal").matches("billing.xsvc.internal"));
        assert!(!pattern("*.svc.internal").matches("billingsvc.internal"));
    }

    #[test]
    fn wildcard_matches_an_identical_presented_wildcard() {
        assert!(pattern("*.example.com").matches("*.EXAMPLE.com."));
    }

    #[test]
    fn wildcard_does_not_match_a_presented_wildcard_one_level_down() {
        assert!(!pattern("*.example.com").matches("*.sub.example.com"));
    }

    #[test]
    fn presented_partial_wildcard_matches_nothing() {
        assert!(!pattern("*.example.com").matches("f*.example.com"));
        assert!(!pattern("foo.example.com").matches("f*.example.com"));
    }

    #[test]
    fn wildcard_does_not_match_a_leftmost_label_with_an_edge_hyphen() {
        assert!(!pattern("*.example.com").matches("-a.example.com"));
    }

    // ----- matching: malformed presented names -----

    #[test]
    fn malformed_presented_names_never_match() {
        let exact = pattern("a.b");
        let wild = pattern("*.b");
        for presented in [
            "", ".", "..", ".a.b", "a..b", "a.b..", "a.b\0", "a_x.b", "a b.b", "ä.b", "a:b.b",
        ] {
            assert!(!exact.matches(presented), "{presented:?}");
            assert!(!wild.matches(presented), "{presented:?}");
        }
    }

    #[test]
    fn presented_names_with_overlong_labels_never_match() {
        let label = "a".repeat(64);
        assert!(!pattern("*.b").matches(&format!("{label}.b")));
    }

    #[test]
    fn presented_names_over_253_bytes_never_match() {
        let suffix = format!("{0}.{0}.{0}", "a".repeat(63));
        let p = pattern(&format!("*.{suffix}"));
        assert!(p.matches(&format!("{}.{suffix}", "c".repeat(61))));
        assert!(!p.matches(&format!("{}.{suffix}", "c".repeat(62))));
    }

    // ----- normalize_dns_name -----

    #[test]
    fn normalize_lowercases_and_strips_one_trailing_dot() {
        assert_eq!(
            normalize_dns_name("Svc-A.Internal.").as_deref(),
            Some("svc-a.internal")
        );
    }

    #[test]
    fn normalize_borrows_a_name_that_is_already_normal() {
        assert!(matches!(
            normalize_dns_name("svc.internal."),
            Some(Cow::Borrowed("svc.internal"))
        ));
    }

    #[test]
    fn normalize_keeps_wildcards_as_text() {
        assert_eq!(
            normalize_dns_name("F*.Example.com").as_deref(),
            Some("f*.example.com")
        );
    }

    #[test]
    fn normalize_rejects_malformed_names() {
        for presented in [
            "", ".", "a..b", ".a", "a..", "a.-b", "a_b.c", "ä.b", "a\0.b", "a b",
        ] {
            assert_eq!(normalize_dns_name(presented), None, "{presented:?}");
        }
    }

    // ----- traits and accessors -----

    #[test]
    fn display_and_from_str_round_trip() {
        let p: DnsPattern = "*.Example.COM.".parse().expect("valid");
        assert_eq!(p.to_string(), "*.example.com");
        assert_eq!(p.to_string().parse::<DnsPattern>(), Ok(p));
    }

    #[test]
    fn exact_pattern_has_no_wildcard_suffix() {
        let p = pattern("www.example.com");
        assert!(!p.is_wildcard());
        assert_eq!(p.wildcard_suffix(), None);
    }

    #[test]
    fn equality_and_hash_use_the_normalised_text() {
        use std::collections::HashSet;
        let set: HashSet<DnsPattern> = ["A.b", "a.B.", "a.b"].into_iter().map(pattern).collect();
        assert_eq!(set.len(), 1);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    /// Valid labels, biased towards a few values so that generated names often collide.
    fn label() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => select(vec!["a", "b", "svc", "internal", "SVC", "A", "xn--bcher-kva", "x-y", "1"])
                .prop_map(String::from),
            1 => "[a-zA-Z0-9]([a-zA-Z0-9-]{0,3}[a-zA-Z0-9])?",
        ]
    }

    /// Valid patterns, wildcard or not as `wildcard` says.
    fn pattern_where(wildcard: impl Strategy<Value = bool>) -> impl Strategy<Value = DnsPattern> {
        (wildcard, prop::collection::vec(label(), 1..4)).prop_filter_map(
            "the last label must not be numeric",
            |(wildcard, labels)| {
                let text = labels.join(".");
                let text = if wildcard { format!("*.{text}") } else { text };
                DnsPattern::parse(&text).ok()
            },
        )
    }

    /// Valid patterns, exact or wildcard.
    fn dns_pattern() -> impl Strategy<Value = DnsPattern> {
        pattern_where(any::<bool>())
    }

    /// Flips the case of the ASCII letters selected by `mask`.
    fn recase(name: &str, mask: &[bool]) -> String {
        name.chars()
            .zip(mask.iter().copied().chain(std::iter::repeat(false)))
            .map(|(c, flip)| match (flip, c.is_ascii_uppercase()) {
                (false, _) => c,
                (true, true) => c.to_ascii_lowercase(),
                (true, false) => c.to_ascii_uppercase(),
            })
            .collect()
    }

    /// A presented name derived from a pattern by one of several edits, so that matches are common.
    fn derived_name(p: &DnsPattern, extra: &str, edit: u8) -> String {
        let text = p.as_str();
        let suffix = p.wildcard_suffix().unwrap_or(text);
        match edit {
            0 => text.to_owned(),
            1 => format!("{extra}.{suffix}"),
            2 => format!("{extra}.{text}"),
            3 => suffix.to_owned(),
            4 => format!("{extra}.{extra}.{suffix}"),
            5 => format!("*.{suffix}"),
            6 => format!("{extra}*.{suffix}"),
            7 => format!(".{text}"),
            8 => text.replacen('.', "..", 1),
            9 => format!("{extra}_.{suffix}"),
            _ => format!("-{extra}.{suffix}"),
        }
    }

    /// A presented name: derived from the pattern, or random text.
    fn presented_for(p: DnsPattern) -> impl Strategy<Value = (DnsPattern, String)> {
        let derived = (
            label(),
            0u8..=10,
            prop::collection::vec(any::<bool>(), 0..40),
            0usize..3,
        )
            .prop_map({
                let p = p.clone();
                move |(extra, edit, mask, dots)| {
                    let name = recase(&derived_name(&p, &extra, edit), &mask);
                    format!("{name}{}", ".".repeat(dots))
                }
            });
        let name = prop_oneof![
            6 => derived,
            2 => "[a-zA-Z0-9.*_-]{0,16}",
            1 => any::<String>(),
        ];
        (Just(p), name)
    }

    fn pattern_and_name() -> impl Strategy<Value = (DnsPattern, String)> {
        dns_pattern().prop_flat_map(presented_for)
    }

    /// The documented relation between `matches` and `normalize_dns_name`, written with
    /// allocations.
    fn model(p: &DnsPattern, normalized: &str) -> bool {
        match p.wildcard_suffix() {
            None => normalized == p.as_str(),
            Some(suffix) => {
                normalized == p.as_str()
                    || (!normalized.contains('*')
                        && normalized
                            .split_once('.')
                            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn matches_agrees_with_the_normalised_model((p, name) in pattern_and_name()) {
            match normalize_dns_name(&name) {
                Some(normalized) => prop_assert_eq!(p.matches(&name), model(&p, &normalized)),
                None => prop_assert!(!p.matches(&name)),
            }
        }

        #[test]
        fn matches_normalized_agrees_with_matches((p, name) in pattern_and_name()) {
            if let Some(normalized) = normalize_dns_name(&name) {
                prop_assert_eq!(p.matches_normalized(&normalized), p.matches(&name));
            }
        }

        #[test]
        fn matching_is_ascii_case_insensitive(
            (p, name) in pattern_and_name(),
            mask in prop::collection::vec(any::<bool>(), 0..40),
        ) {
            prop_assert_eq!(p.matches(&name), p.matches(&recase(&name, &mask)));
            prop_assert_eq!(p.matches(&name), p.matches(&name.to_ascii_uppercase()));
        }

        #[test]
        fn one_trailing_dot_is_irrelevant((p, name) in pattern_and_name()) {
            let bare = name.trim_end_matches('.');
            prop_assert_eq!(p.matches(bare), p.matches(&format!("{bare}.")));
        }

        #[test]
        fn wildcard_matches_one_label_never_zero_or_two(
            p in pattern_where(Just(true)),
            first in label(),
            second in label(),
        ) {
            let suffix = p.wildcard_suffix().unwrap_or_default();
            let one_label = format!("{first}.{suffix}");
            let two_labels = format!("{first}.{second}.{suffix}");
            prop_assert!(p.matches(&one_label));
            prop_assert!(!p.matches(suffix));
            prop_assert!(!p.matches(&two_labels));
        }

        #[test]
        fn parsing_the_normalised_text_gives_the_same_pattern(p in dns_pattern()) {
            prop_assert_eq!(DnsPattern::parse(p.as_str()), Ok(p.clone()));
            let shouted = format!("{}.", p.as_str().to_ascii_uppercase());
            prop_assert_eq!(DnsPattern::parse(&shouted), Ok(p.clone()));
            prop_assert_eq!(p.to_string().parse::<DnsPattern>(), Ok(p));
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>(), p in dns_pattern()) {
            if let Err(err) = DnsPattern::parse(&text) {
                prop_assert!(!err.to_string().is_empty());
            }
            let _ = p.matches(&text);
            let _ = normalize_dns_name(&text);
        }

        #[test]
        fn never_panics_on_dns_like_text(text in "[a-zA-Z0-9.*_:/-]{0,300}", p in dns_pattern()) {
            match DnsPattern::parse(&text) {
                Ok(parsed) => prop_assert!(parsed.matches(&text)),
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
            let _ = p.matches(&text);
        }
    }
}
