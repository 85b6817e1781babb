//! SPIFFE IDs and trust domains, parsed exactly as the SPIFFE reference
//! implementation (go-spiffe's `spiffeid` package) parses them.
//!
//! ```
//! use mtls_core::{SpiffeId, SpiffeIdErrorKind, TrustDomain};
//!
//! let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/web")?;
//! assert_eq!(id.trust_domain().as_str(), "example.org");
//! assert_eq!(id.path(), "/ns/prod/sa/web");
//! assert_eq!(id.segments().collect::<Vec<_>>(), ["ns", "prod", "sa", "web"]);
//! assert!(id.has_path_prefix("/ns/prod"));
//! assert!(!id.has_path_prefix("/ns/pro"));
//!
//! let td = TrustDomain::parse("example.org")?;
//! assert!(id.is_member_of(&td));
//! assert_eq!(SpiffeId::from_segments(&td, &["ns", "prod", "sa", "web"])?, id);
//!
//! // Upper case is rejected, never folded to lower case.
//! let err = SpiffeId::parse("spiffe://Example.org/web").unwrap_err();
//! assert_eq!(err.kind(), SpiffeIdErrorKind::BadTrustDomainChar);
//! # Ok::<(), mtls_core::SpiffeIdError>(())
//! ```
//!
//! # Syntax
//!
//! A SPIFFE ID is `spiffe://<trust domain><path>` where
//!
//! * the scheme is exactly `spiffe://` (lower case; `SPIFFE://` is rejected);
//! * the trust domain is non-empty, at most [`TrustDomain::MAX_LEN`] (255) bytes,
//!   and uses only `a-z`, `0-9`, `.`, `-` and `_`. Upper-case letters are
//!   **rejected**, not lower-cased;
//! * the path is empty or a sequence of `/segment`, each segment non-empty,
//!   not `.` or `..`, and using only `a-z`, `A-Z`, `0-9`, `.`, `-` and `_`.
//!   There is no trailing slash. Paths are case-sensitive;
//! * the whole ID is at most [`SpiffeId::MAX_LEN`] (2048) bytes.
//!
//! Query strings, fragments, user info, ports and percent-encoding are not
//! special: `?`, `#`, `@`, `:` and `%` are simply invalid characters.
//!
//! go-spiffe itself enforces no length limits; the two limits above are this
//! crate's decision (RFC 3986 host length and the SPIFFE specification's
//! 2048-byte bound). Some other implementations (rust-spiffe, java-spiffe)
//! accept upper-case schemes and trust domains and lower-case them; this
//! module deliberately does not.

use std::fmt;
use std::str::FromStr;

/// The only accepted scheme prefix.
const SCHEME_PREFIX: &str = "spiffe://";

/// How many characters of the offending input an error's `Display` shows.
const DISPLAY_INPUT_CHARS: usize = 100;

/// A SPIFFE trust domain name, such as `example.org`.
///
/// Always valid: non-empty, at most [`TrustDomain::MAX_LEN`] bytes, and made of
/// lowercase ASCII letters, digits, `.`, `-` and `_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain {
    name: String,
}

impl TrustDomain {
    /// The maximum length of a trust domain name, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Parses a trust domain from either a bare trust domain name
    /// (`"example.org"`) or a SPIFFE ID (`"spiffe://example.org/path"`),
    /// like go-spiffe's `spiffeid.TrustDomainFromString`.
    ///
    /// An input containing `:/` is treated as a SPIFFE ID and the *whole* ID
    /// is validated, path included; anything else must be a bare name.
    ///
    /// ```
    /// use mtls_core::TrustDomain;
    ///
    /// assert_eq!(TrustDomain::parse("example.org")?.as_str(), "example.org");
    /// assert_eq!(TrustDomain::parse("spiffe://example.org/web")?.as_str(), "example.org");
    /// assert!(TrustDomain::parse("Example.org").is_err());
    /// assert!(TrustDomain::parse("spiffe://example.org/bad/").is_err());
    /// # Ok::<(), mtls_core::SpiffeIdError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SpiffeIdErrorKind::MissingTrustDomain`] for an empty input,
    /// [`SpiffeIdErrorKind::BadTrustDomainChar`] or
    /// [`SpiffeIdErrorKind::TooLong`] for a bad name, and any error of
    /// [`SpiffeId::parse`] for an input that looks like a SPIFFE ID.
    pub fn parse(id_or_name: &str) -> Result<Self, SpiffeIdError> {
        if id_or_name.is_empty() {
            return Err(SpiffeIdError::new(
                Reason::MissingTrustDomain,
                Subject::TrustDomain,
                id_or_name,
            ));
        }
        if id_or_name.contains(":/") {
            return SpiffeId::parse(id_or_name).map(|id| id.trust_domain);
        }
        check_trust_domain_name(id_or_name)
            .map_err(|reason| SpiffeIdError::new(reason, Subject::TrustDomain, id_or_name))?;
        Ok(TrustDomain {
            name: id_or_name.to_owned(),
        })
    }

    /// The trust domain name, e.g. `example.org`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The SPIFFE ID string of the trust domain itself, e.g. `spiffe://example.org`.
    #[must_use]
    pub fn id_string(&self) -> String {
        format!("{SCHEME_PREFIX}{}", self.name)
    }
}

impl fmt::Display for TrustDomain {
    /// Writes the bare trust domain name, e.g. `example.org`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    /// Same as [`TrustDomain::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A validated SPIFFE ID, such as `spiffe://example.org/ns/prod/sa/web`.
///
/// The full ID is stored once; [`SpiffeId::as_str`], [`SpiffeId::path`] and
/// [`SpiffeId::segments`] borrow from it without allocating. Comparison,
/// ordering and hashing are those of the ID string (byte-wise, case-sensitive).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID, `spiffe://<trust domain><path>`.
    id: String,
    /// The trust domain, a copy of the bytes right after the scheme.
    trust_domain: TrustDomain,
}

impl SpiffeId {
    /// The maximum length of a SPIFFE ID, in bytes.
    pub const MAX_LEN: usize = 2048;

    /// Parses a SPIFFE ID, like go-spiffe's `spiffeid.FromString` plus the
    /// length limits described in the [module documentation](self).
    ///
    /// ```
    /// use mtls_core::{SpiffeId, SpiffeIdErrorKind};
    ///
    /// let id = SpiffeId::parse("spiffe://example.org/web")?;
    /// assert_eq!(id.as_str(), "spiffe://example.org/web");
    ///
    /// let err = SpiffeId::parse("spiffe://example.org/web/").unwrap_err();
    /// assert_eq!(err.kind(), SpiffeIdErrorKind::TrailingSlash);
    /// # Ok::<(), mtls_core::SpiffeIdError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Checks run in this order and the first failure is reported:
    /// [`SpiffeIdErrorKind::Empty`], [`SpiffeIdErrorKind::WrongScheme`],
    /// [`SpiffeIdErrorKind::TooLong`] (whole ID), then the trust domain
    /// ([`SpiffeIdErrorKind::BadTrustDomainChar`],
    /// [`SpiffeIdErrorKind::MissingTrustDomain`],
    /// [`SpiffeIdErrorKind::TooLong`]), then the path as in
    /// [`SpiffeId::validate_path`].
    pub fn parse(id: &str) -> Result<Self, SpiffeIdError> {
        let err = |reason| SpiffeIdError::new(reason, Subject::Id, id);

        if id.is_empty() {
            return Err(err(Reason::Empty));
        }
        let Some(rest) = id.strip_prefix(SCHEME_PREFIX) else {
            return Err(err(Reason::WrongScheme));
        };
        if id.len() > Self::MAX_LEN {
            return Err(err(Reason::IdTooLong(id.len())));
        }

        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        if let Some(i) = td.bytes().position(|b| !is_trust_domain_byte(b)) {
            return Err(err(Reason::BadTrustDomainChar(char_at(td, i))));
        }
        if td.is_empty() {
            return Err(err(Reason::MissingTrustDomain));
        }
        if td.len() > TrustDomain::MAX_LEN {
            return Err(err(Reason::TrustDomainTooLong(td.len())));
        }
        check_path(path).map_err(err)?;

        Ok(SpiffeId {
            id: id.to_owned(),
            trust_domain: TrustDomain {
                name: td.to_owned(),
            },
        })
    }

    /// Builds a SPIFFE ID from a trust domain and a path, like go-spiffe's
    /// `spiffeid.FromPath`.
    ///
    /// `path` must be empty or start with `/`; it is validated exactly like
    /// [`SpiffeId::validate_path`] (no escaping or normalisation is done).
    ///
    /// ```
    /// use mtls_core::{SpiffeId, TrustDomain};
    ///
    /// let td = TrustDomain::parse("example.org")?;
    /// assert_eq!(SpiffeId::from_path(&td, "/web")?.as_str(), "spiffe://example.org/web");
    /// assert_eq!(SpiffeId::from_path(&td, "")?.as_str(), "spiffe://example.org");
    /// assert!(SpiffeId::from_path(&td, "web").is_err());
    /// # Ok::<(), mtls_core::SpiffeIdError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Any error of [`SpiffeId::validate_path`], or
    /// [`SpiffeIdErrorKind::TooLong`] if the resulting ID would be longer than
    /// [`SpiffeId::MAX_LEN`] bytes.
    pub fn from_path(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        Self::validate_path(path)?;
        Self::assemble(trust_domain, path)
    }

    /// Builds a SPIFFE ID from a trust domain and path segments (without
    /// slashes), like go-spiffe's `spiffeid.FromSegments`. No segments gives
    /// the ID of the trust domain itself.
    ///
    /// ```
    /// use mtls_core::{SpiffeId, TrustDomain};
    ///
    /// let td = TrustDomain::parse("example.org")?;
    /// let id = SpiffeId::from_segments(&td, &["ns", "prod"])?;
    /// assert_eq!(id.as_str(), "spiffe://example.org/ns/prod");
    /// assert!(SpiffeId::from_segments(&td, &["a/b"]).is_err());
    /// # Ok::<(), mtls_core::SpiffeIdError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first segment failing [`SpiffeId::validate_path_segment`], or
    /// [`SpiffeIdErrorKind::TooLong`] if the resulting ID would be longer than
    /// [`SpiffeId::MAX_LEN`] bytes.
    pub fn from_segments(
        trust_domain: &TrustDomain,
        segments: &[&str],
    ) -> Result<Self, SpiffeIdError> {
        let mut path = String::new();
        for segment in segments {
            Self::validate_path_segment(segment)?;
            path.push('/');
            path.push_str(segment);
        }
        Self::assemble(trust_domain, &path)
    }

    /// Checks that `path` is a valid SPIFFE ID path, like go-spiffe's
    /// `spiffeid.ValidatePath`: empty, or `/segment` repeated.
    ///
    /// The path is scanned left to right and the first problem found is
    /// reported. No length limit is applied here.
    ///
    /// ```
    /// use mtls_core::SpiffeId;
    ///
    /// assert!(SpiffeId::validate_path("").is_ok());
    /// assert!(SpiffeId::validate_path("/ns/prod").is_ok());
    /// assert!(SpiffeId::validate_path("/ns/../prod").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`SpiffeIdErrorKind::MissingLeadingSlash`],
    /// [`SpiffeIdErrorKind::BadPathSegmentChar`],
    /// [`SpiffeIdErrorKind::EmptySegment`], [`SpiffeIdErrorKind::DotSegment`]
    /// or [`SpiffeIdErrorKind::TrailingSlash`].
    pub fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
        check_path(path).map_err(|reason| SpiffeIdError::new(reason, Subject::Path, path))
    }

    /// Checks that `segment` is a valid single path segment (no slashes), like
    /// go-spiffe's `spiffeid.ValidatePathSegment`.
    ///
    /// ```
    /// use mtls_core::{SpiffeId, SpiffeIdErrorKind};
    ///
    /// assert!(SpiffeId::validate_path_segment("web").is_ok());
    /// let err = SpiffeId::validate_path_segment("..").unwrap_err();
    /// assert_eq!(err.kind(), SpiffeIdErrorKind::DotSegment);
    /// ```
    ///
    /// # Errors
    ///
    /// [`SpiffeIdErrorKind::EmptySegment`], [`SpiffeIdErrorKind::DotSegment`]
    /// or [`SpiffeIdErrorKind::BadPathSegmentChar`].
    pub fn validate_path_segment(segment: &str) -> Result<(), SpiffeIdError> {
        check_segment(segment)
            .map_err(|reason| SpiffeIdError::new(reason, Subject::PathSegment, segment))
    }

    /// The whole ID, e.g. `spiffe://example.org/web`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain of this ID.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path: empty, or starting with `/` (e.g. `/ns/prod`).
    #[must_use]
    pub fn path(&self) -> &str {
        // Both parts are ASCII, so this index is always a char boundary; `get`
        // keeps even a broken invariant from panicking.
        self.id
            .get(SCHEME_PREFIX.len() + self.trust_domain.name.len()..)
            .unwrap_or_default()
    }

    /// The path segments, without slashes; nothing for an ID with an empty path.
    ///
    /// ```
    /// use mtls_core::SpiffeId;
    ///
    /// let id = SpiffeId::parse("spiffe://example.org/ns/prod")?;
    /// assert_eq!(id.segments().collect::<Vec<_>>(), ["ns", "prod"]);
    /// let td_only = SpiffeId::parse("spiffe://example.org")?;
    /// assert_eq!(td_only.segments().count(), 0);
    /// # Ok::<(), mtls_core::SpiffeIdError>(())
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        // A valid path is "" or "/seg/seg": splitting gives a leading "" to skip.
        self.path().split('/').skip(1)
    }

    /// Whether this ID belongs to `trust_domain`.
    #[must_use]
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        self.trust_domain == *trust_domain
    }

    /// Whether `prefix` is a prefix of this ID's path **on whole segments**
    /// (case-sensitive; the trust domain is not considered).
    ///
    /// `/ns/prod` is a prefix of `/ns/prod` and `/ns/prod/sa/web`, but not of
    /// `/ns/production`. The empty prefix matches every ID. A `prefix` that is
    /// not itself a valid SPIFFE path (see [`SpiffeId::validate_path`]) — for
    /// example `ns/prod` or `/ns/prod/` — matches nothing.
    ///
    /// ```
    /// use mtls_core::SpiffeId;
    ///
    /// let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/web")?;
    /// assert!(id.has_path_prefix("/ns/prod"));
    /// assert!(id.has_path_prefix("/ns/prod/sa/web"));
    /// assert!(!id.has_path_prefix("/ns/pro"));
    /// assert!(!id.has_path_prefix("/ns/prod/"));
    /// assert!(!SpiffeId::parse("spiffe://example.org/ns/production")?.has_path_prefix("/ns/prod"));
    /// # Ok::<(), mtls_core::SpiffeIdError>(())
    /// ```
    #[must_use]
    pub fn has_path_prefix(&self, prefix: &str) -> bool {
        check_path(prefix).is_ok() && self.has_checked_path_prefix(prefix)
    }

    /// [`has_path_prefix`](Self::has_path_prefix) for a prefix already validated as a SPIFFE
    /// path (what `Policy::spiffe_path_prefix` stores), without validating it again on every
    /// request. An unvalidated prefix such as `/ns/` would match more than whole segments.
    pub(crate) fn has_checked_path_prefix(&self, prefix: &str) -> bool {
        debug_assert!(check_path(prefix).is_ok());
        match self.path().strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Builds the ID from a trust domain and an already validated path,
    /// enforcing only the total length.
    fn assemble(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        let len = SCHEME_PREFIX.len() + trust_domain.name.len() + path.len();
        if len > Self::MAX_LEN {
            return Err(SpiffeIdError::new(
                Reason::IdTooLong(len),
                Subject::Path,
                path,
            ));
        }
        let mut id = String::with_capacity(len);
        id.push_str(SCHEME_PREFIX);
        id.push_str(&trust_domain.name);
        id.push_str(path);
        Ok(SpiffeId {
            id,
            trust_domain: trust_domain.clone(),
        })
    }
}

impl fmt::Display for SpiffeId {
    /// Writes the whole ID, exactly as parsed or built.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    /// Same as [`SpiffeId::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The category of a [`SpiffeIdError`].
///
/// [`SpiffeIdErrorKind::as_str`] gives the stable `snake_case` name used in the
/// test vectors (e.g. `bad_trust_domain_char`).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpiffeIdErrorKind {
    /// The SPIFFE ID is the empty string.
    Empty,
    /// The input does not start with exactly `spiffe://`.
    WrongScheme,
    /// Nothing between `spiffe://` and the path, or an empty trust domain name.
    MissingTrustDomain,
    /// The trust domain has a character other than `a-z`, `0-9`, `.`, `-`, `_`.
    BadTrustDomainChar,
    /// A path segment has a character other than `a-z`, `A-Z`, `0-9`, `.`, `-`, `_`.
    BadPathSegmentChar,
    /// A path segment is `.` or `..`.
    DotSegment,
    /// A path has `//`, or a segment is empty.
    EmptySegment,
    /// A path ends with `/`.
    TrailingSlash,
    /// A non-empty path does not start with `/`.
    MissingLeadingSlash,
    /// The ID is longer than [`SpiffeId::MAX_LEN`] bytes or the trust domain
    /// longer than [`TrustDomain::MAX_LEN`] bytes.
    TooLong,
}

impl SpiffeIdErrorKind {
    /// A stable `snake_case` name for the kind, e.g. `"trailing_slash"`,
    /// suitable for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::WrongScheme => "wrong_scheme",
            Self::MissingTrustDomain => "missing_trust_domain",
            Self::BadTrustDomainChar => "bad_trust_domain_char",
            Self::BadPathSegmentChar => "bad_path_segment_char",
            Self::DotSegment => "dot_segment",
            Self::EmptySegment => "empty_segment",
            Self::TrailingSlash => "trailing_slash",
            Self::MissingLeadingSlash => "missing_leading_slash",
            Self::TooLong => "too_long",
        }
    }
}

impl fmt::Display for SpiffeIdErrorKind {
    /// Writes [`SpiffeIdErrorKind::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a SPIFFE ID, trust domain, path or path segment was rejected.
///
/// Use [`SpiffeIdError::kind`] to branch on the cause. `Display` names what was
/// being parsed, quotes the input (escaped, and cut to its first 100
/// characters), and says what is wrong, e.g.
/// `invalid SPIFFE ID "spiffe://Example.org": trust domain characters are
/// limited to lowercase letters, numbers, dots, dashes, and underscores (found 'E')`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {subject} {}: {reason}", DisplayInput(&self.input))]
pub struct SpiffeIdError {
    reason: Reason,
    subject: Subject,
    input: String,
}

impl SpiffeIdError {
    fn new(reason: Reason, subject: Subject, input: &str) -> Self {
        SpiffeIdError {
            reason,
            subject,
            input: input.to_owned(),
        }
    }

    /// The category of the error.
    #[must_use]
    pub fn kind(&self) -> SpiffeIdErrorKind {
        match self.reason {
            Reason::Empty => SpiffeIdErrorKind::Empty,
            Reason::WrongScheme => SpiffeIdErrorKind::WrongScheme,
            Reason::MissingTrustDomain => SpiffeIdErrorKind::MissingTrustDomain,
            Reason::BadTrustDomainChar(_) => SpiffeIdErrorKind::BadTrustDomainChar,
            Reason::BadPathSegmentChar(_) => SpiffeIdErrorKind::BadPathSegmentChar,
            Reason::DotSegment => SpiffeIdErrorKind::DotSegment,
            Reason::EmptySegment => SpiffeIdErrorKind::EmptySegment,
            Reason::TrailingSlash => SpiffeIdErrorKind::TrailingSlash,
            Reason::MissingLeadingSlash => SpiffeIdErrorKind::MissingLeadingSlash,
            Reason::IdTooLong(_) | Reason::TrustDomainTooLong(_) => SpiffeIdErrorKind::TooLong,
        }
    }

    /// The rejected input, in full: the SPIFFE ID, trust domain, path or path
    /// segment that was being checked. It is untrusted text; prefer the
    /// escaped, truncated form that `Display` produces when logging.
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// What was being parsed when an error occurred (for the error message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    Id,
    TrustDomain,
    Path,
    PathSegment,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::Id => "SPIFFE ID",
            Subject::TrustDomain => "trust domain",
            Subject::Path => "SPIFFE ID path",
            Subject::PathSegment => "SPIFFE ID path segment",
        })
    }
}

/// The precise cause of an error; finer than [`SpiffeIdErrorKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Empty,
    WrongScheme,
    MissingTrustDomain,
    BadTrustDomainChar(char),
    BadPathSegmentChar(char),
    DotSegment,
    EmptySegment,
    TrailingSlash,
    MissingLeadingSlash,
    IdTooLong(usize),
    TrustDomainTooLong(usize),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Empty => f.write_str("input is empty"),
            Reason::WrongScheme => {
                f.write_str("scheme is missing or invalid (must be exactly \"spiffe://\")")
            }
            Reason::MissingTrustDomain => f.write_str("trust domain is missing"),
            Reason::BadTrustDomainChar(c) => write!(
                f,
                "trust domain characters are limited to lowercase letters, numbers, dots, \
                 dashes, and underscores (found {c:?})"
            ),
            Reason::BadPathSegmentChar(c) => write!(
                f,
                "path segment characters are limited to letters, numbers, dots, dashes, and \
                 underscores (found {c:?})"
            ),
            Reason::DotSegment => f.write_str("path cannot contain dot segments"),
            Reason::EmptySegment => f.write_str("path cannot contain empty segments"),
            Reason::TrailingSlash => f.write_str("path cannot have a trailing slash"),
            Reason::MissingLeadingSlash => f.write_str("path must have a leading slash"),
            Reason::IdTooLong(len) => write!(
                f,
                "SPIFFE ID is {len} bytes long, more than the maximum of {} bytes",
                SpiffeId::MAX_LEN
            ),
            Reason::TrustDomainTooLong(len) => write!(
                f,
                "trust domain is {len} bytes long, more than the maximum of {} bytes",
                TrustDomain::MAX_LEN
            ),
        }
    }
}

/// Shows untrusted input escaped and quoted, cut to its first
/// [`DISPLAY_INPUT_CHARS`] characters.
struct DisplayInput<'a>(&'a str);

impl fmt::Display for DisplayInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(DISPLAY_INPUT_CHARS) {
            Some((cut, _)) => write!(
                f,
                "{:?}... ({} bytes in total)",
                self.0.get(..cut).unwrap_or_default(),
                self.0.len()
            ),
            None => write!(f, "{:?}", self.0),
        }
    }
}

fn is_trust_domain_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn is_path_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// The character starting at byte `i` of `s`.
///
/// Callers pass the first byte that failed an ASCII-only check, so every byte
/// before it is ASCII and `i` is a char boundary; should that ever not hold,
/// U+FFFD is returned instead of panicking.
fn char_at(s: &str, i: usize) -> char {
    s.get(i..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Validates a bare trust domain name (characters first, then length, as
/// go-spiffe does).
fn check_trust_domain_name(name: &str) -> Result<(), Reason> {
    if let Some(i) = name.bytes().position(|b| !is_trust_domain_byte(b)) {
        return Err(Reason::BadTrustDomainChar(char_at(name, i)));
    }
    if name.len() > TrustDomain::MAX_LEN {
        return Err(Reason::TrustDomainTooLong(name.len()));
    }
    Ok(())
}

/// Validates a path, scanning left to right and reporting the first problem,
/// in the same order as go-spiffe's `ValidatePath`.
fn check_path(path: &str) -> Result<(), Reason> {
    let Some(rest) = path.strip_prefix('/') else {
        return if path.is_empty() {
            Ok(())
        } else {
            Err(Reason::MissingLeadingSlash)
        };
    };
    // go-spiffe scans byte by byte and checks each segment when it reaches the
    // slash that ends it. Empty, dot and bad-character segments are mutually
    // exclusive, so checking whole segments in order reports the same error.
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        match check_segment(segment) {
            Err(Reason::EmptySegment) if segments.peek().is_none() => {
                return Err(Reason::TrailingSlash)
            }
            result => result?,
        }
    }
    Ok(())
}

/// Validates one path segment (no slashes expected), like go-spiffe's
/// `ValidatePathSegment`.
fn check_segment(segment: &str) -> Result<(), Reason> {
    match segment {
        "" => Err(Reason::EmptySegment),
        "." | ".." => Err(Reason::DotSegment),
        _ => match segment.bytes().position(|b| !is_path_segment_byte(b)) {
            Some(i) => Err(Reason::BadPathSegmentChar(char_at(segment, i))),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).expect("test ID should parse")
    }

    fn td(s: &str) -> TrustDomain {
        TrustDomain::parse(s).expect("test trust domain should parse")
    }

    fn id_kind(s: &str) -> Option<SpiffeIdErrorKind> {
        SpiffeId::parse(s).err().map(|e| e.kind())
    }

    fn td_kind(s: &str) -> Option<SpiffeIdErrorKind> {
        TrustDomain::parse(s).err().map(|e| e.kind())
    }

    fn path_kind(s: &str) -> Option<SpiffeIdErrorKind> {
        SpiffeId::validate_path(s).err().map(|e| e.kind())
    }

    use SpiffeIdErrorKind as K;

    // --- SpiffeId::parse -------------------------------------------------

    #[test]
    fn parse_splits_trust_domain_and_path() {
        let id = id("spiffe://example.org/ns/prod");
        assert_eq!(id.trust_domain().as_str(), "example.org");
        assert_eq!(id.path(), "/ns/prod");
        assert_eq!(id.as_str(), "spiffe://example.org/ns/prod");
    }

    #[test]
    fn parse_accepts_trust_domain_only_id_with_empty_path() {
        let id = id("spiffe://example.org");
        assert_eq!(id.path(), "");
        assert_eq!(id.segments().count(), 0);
    }

    #[test]
    fn parse_rejects_empty_input() {
        assert_eq!(id_kind(""), Some(K::Empty));
    }

    #[test]
    fn parse_rejects_upper_case_scheme_instead_of_folding() {
        assert_eq!(id_kind("SPIFFE://example.org/a"), Some(K::WrongScheme));
        assert_eq!(id_kind("Spiffe://"), Some(K::WrongScheme));
    }

    #[test]
    fn parse_rejects_other_schemes_and_missing_slashes() {
        for s in [
            "http://example.org",
            "spiffe:/example.org",
            "spiffe:example.org",
            "example.org",
        ] {
            assert_eq!(id_kind(s), Some(K::WrongScheme), "{s}");
        }
    }

    #[test]
    fn parse_rejects_upper_case_trust_domain_instead_of_folding() {
        assert_eq!(
            id_kind("spiffe://Example.org/a"),
            Some(K::BadTrustDomainChar)
        );
    }

    #[test]
    fn parse_rejects_missing_trust_domain() {
        assert_eq!(id_kind("spiffe://"), Some(K::MissingTrustDomain));
        assert_eq!(id_kind("spiffe:///path"), Some(K::MissingTrustDomain));
    }

    #[test]
    fn parse_treats_port_userinfo_query_and_fragment_as_bad_chars() {
        assert_eq!(
            id_kind("spiffe://example.org:443/a"),
            Some(K::BadTrustDomainChar)
        );
        assert_eq!(
            id_kind("spiffe://user@example.org/a"),
            Some(K::BadTrustDomainChar)
        );
        assert_eq!(
            id_kind("spiffe://example.org/a?x=1"),
            Some(K::BadPathSegmentChar)
        );
        assert_eq!(
            id_kind("spiffe://example.org/a#frag"),
            Some(K::BadPathSegmentChar)
        );
        assert_eq!(
            id_kind("spiffe://example.org/a%20b"),
            Some(K::BadPathSegmentChar)
        );
    }

    #[test]
    fn parse_keeps_path_case() {
        assert_eq!(id("spiffe://example.org/MyService").path(), "/MyService");
        assert_ne!(id("spiffe://example.org/A"), id("spiffe://example.org/a"));
    }

    #[test]
    fn parse_rejects_trailing_slash() {
        assert_eq!(id_kind("spiffe://example.org/"), Some(K::TrailingSlash));
        assert_eq!(id_kind("spiffe://example.org/a/"), Some(K::TrailingSlash));
    }

    #[test]
    fn parse_rejects_empty_segments() {
        assert_eq!(id_kind("spiffe://example.org//a"), Some(K::EmptySegment));
        assert_eq!(id_kind("spiffe://example.org/a//b"), Some(K::EmptySegment));
    }

    #[test]
    fn parse_rejects_dot_segments_but_not_dot_prefixed_names() {
        assert_eq!(id_kind("spiffe://example.org/a/./b"), Some(K::DotSegment));
        assert_eq!(id_kind("spiffe://example.org/a/.."), Some(K::DotSegment));
        assert_eq!(id("spiffe://example.org/.a/..b/...").path(), "/.a/..b/...");
    }

    #[test]
    fn parse_rejects_non_ascii_without_panicking() {
        assert_eq!(
            id_kind("spiffe://exämple.org/a"),
            Some(K::BadTrustDomainChar)
        );
        assert_eq!(
            id_kind("spiffe://example.org/🤯"),
            Some(K::BadPathSegmentChar)
        );
        assert_eq!(id_kind("spiffé://example.org"), Some(K::WrongScheme));
    }

    #[test]
    fn parse_accepts_id_of_exactly_max_len() {
        let s = format!("spiffe://example.org/{}", "a".repeat(2048 - 21));
        assert_eq!(s.len(), SpiffeId::MAX_LEN);
        assert_eq!(id(&s).as_str(), s);
    }

    #[test]
    fn parse_rejects_id_longer_than_max_len() {
        let s = format!("spiffe://example.org/{}", "a".repeat(2048 - 20));
        assert_eq!(id_kind(&s), Some(K::TooLong));
    }

    #[test]
    fn parse_rejects_trust_domain_longer_than_255_bytes_inside_id() {
        assert!(SpiffeId::parse(&format!("spiffe://{}", "a".repeat(255))).is_ok());
        let s = format!("spiffe://{}/a", "a".repeat(256));
        assert_eq!(id_kind(&s), Some(K::TooLong));
    }

    #[test]
    fn parse_reports_first_path_problem_from_the_left() {
        assert_eq!(
            id_kind("spiffe://example.org/a$/"),
            Some(K::BadPathSegmentChar)
        );
        assert_eq!(id_kind("spiffe://example.org//$"), Some(K::EmptySegment));
        assert_eq!(id_kind("spiffe://example.org/./$"), Some(K::DotSegment));
    }

    #[test]
    fn from_str_matches_parse() {
        let parsed: SpiffeId = "spiffe://example.org/a".parse().expect("valid");
        assert_eq!(parsed, id("spiffe://example.org/a"));
        assert!("spiffe://".parse::<SpiffeId>().is_err());
    }

    #[test]
    fn display_gives_back_the_id() {
        assert_eq!(
            id("spiffe://example.org/a/b").to_string(),
            "spiffe://example.org/a/b"
        );
    }

    // --- accessors ---------------------------------------------------------

    #[test]
    fn segments_yields_each_path_segment() {
        let id = id("spiffe://example.org/ns/prod/sa/web");
        assert_eq!(
            id.segments().collect::<Vec<_>>(),
            ["ns", "prod", "sa", "web"]
        );
    }

    #[test]
    fn is_member_of_compares_trust_domains() {
        let id = id("spiffe://example.org/a");
        assert!(id.is_member_of(&td("example.org")));
        assert!(!id.is_member_of(&td("example.com")));
        assert!(!id.is_member_of(&td("sub.example.org")));
    }

    #[test]
    fn has_path_prefix_matches_whole_segments_only() {
        let id = id("spiffe://example.org/ns/prod/sa/x");
        assert!(id.has_path_prefix("/ns/prod"));
        assert!(id.has_path_prefix("/ns/prod/sa/x"));
        assert!(id.has_path_prefix("/ns"));
        assert!(!id.has_path_prefix("/ns/pro"));
        assert!(!id.has_path_prefix("/ns/prod/sa/x/y"));
        assert!(!self::id("spiffe://example.org/ns/production").has_path_prefix("/ns/prod"));
    }

    #[test]
    fn has_path_prefix_empty_prefix_matches_everything() {
        assert!(id("spiffe://example.org").has_path_prefix(""));
        assert!(id("spiffe://example.org/a").has_path_prefix(""));
    }

    #[test]
    fn has_path_prefix_rejects_invalid_prefixes() {
        let id = id("spiffe://example.org/ns/prod");
        for prefix in ["/", "/ns/", "ns", "ns/prod", "//ns", "/ns/./prod"] {
            assert!(!id.has_path_prefix(prefix), "{prefix}");
        }
    }

    #[test]
    fn has_path_prefix_is_case_sensitive() {
        assert!(!id("spiffe://example.org/NS/prod").has_path_prefix("/ns"));
    }

    // --- constructors -------------------------------------------------------

    #[test]
    fn from_path_builds_the_id() {
        let td = td("example.org");
        assert_eq!(
            SpiffeId::from_path(&td, "/a/b").expect("valid").as_str(),
            "spiffe://example.org/a/b"
        );
        assert_eq!(
            SpiffeId::from_path(&td, "").expect("valid").as_str(),
            "spiffe://example.org"
        );
    }

    #[test]
    fn from_path_validates_the_path() {
        let td = td("example.org");
        let kind = |p: &str| SpiffeId::from_path(&td, p).err().map(|e| e.kind());
        assert_eq!(kind("a"), Some(K::MissingLeadingSlash));
        assert_eq!(kind("/a/"), Some(K::TrailingSlash));
        assert_eq!(kind("/a/../b"), Some(K::DotSegment));
        assert_eq!(kind("/a b"), Some(K::BadPathSegmentChar));
    }

    #[test]
    fn from_path_rejects_result_longer_than_max_len() {
        let td = td("example.org");
        let fits = format!("/{}", "a".repeat(2048 - 21));
        assert!(SpiffeId::from_path(&td, &fits).is_ok());
        let too_long = format!("/{}", "a".repeat(2048 - 20));
        let err = SpiffeId::from_path(&td, &too_long).expect_err("too long");
        assert_eq!(err.kind(), K::TooLong);
    }

    #[test]
    fn from_segments_joins_segments_with_slashes() {
        let id = SpiffeId::from_segments(&td("example.org"), &["a", "B", "c-d"]).expect("valid");
        assert_eq!(id.as_str(), "spiffe://example.org/a/B/c-d");
    }

    #[test]
    fn from_segments_with_no_segments_is_the_trust_domain_id() {
        let td = td("example.org");
        let id = SpiffeId::from_segments(&td, &[]).expect("valid");
        assert_eq!(id.as_str(), td.id_string());
    }

    #[test]
    fn from_segments_rejects_bad_segments() {
        let td = td("example.org");
        let kind = |segs: &[&str]| SpiffeId::from_segments(&td, segs).err().map(|e| e.kind());
        assert_eq!(kind(&["a", ""]), Some(K::EmptySegment));
        assert_eq!(kind(&[".."]), Some(K::DotSegment));
        assert_eq!(kind(&["a/b"]), Some(K::BadPathSegmentChar));
    }

    // --- validate_path / validate_path_segment ----------------------------

    #[test]
    fn validate_path_accepts_empty_and_slash_separated_segments() {
        assert_eq!(path_kind(""), None);
        assert_eq!(path_kind("/a"), None);
        assert_eq!(path_kind("/a/B/0/.x/_-."), None);
    }

    #[test]
    fn validate_path_requires_leading_slash() {
        assert_eq!(path_kind("a/b"), Some(K::MissingLeadingSlash));
        assert_eq!(path_kind(" /a"), Some(K::MissingLeadingSlash));
    }

    #[test]
    fn validate_path_does_not_trim_whitespace() {
        assert_eq!(path_kind("   "), Some(K::MissingLeadingSlash));
    }

    #[test]
    fn validate_path_rejects_lone_slash_as_trailing_slash() {
        assert_eq!(path_kind("/"), Some(K::TrailingSlash));
    }

    #[test]
    fn validate_path_segment_accepts_segment_chars() {
        assert!(SpiffeId::validate_path_segment("aZ09.-_").is_ok());
        assert!(SpiffeId::validate_path_segment("...").is_ok());
    }

    #[test]
    fn validate_path_segment_rejects_empty_dots_and_slashes() {
        let kind = |s: &str| SpiffeId::validate_path_segment(s).err().map(|e| e.kind());
        assert_eq!(kind(""), Some(K::EmptySegment));
        assert_eq!(kind("."), Some(K::DotSegment));
        assert_eq!(kind(".."), Some(K::DotSegment));
        assert_eq!(kind("/"), Some(K::BadPathSegmentChar));
    }

    // --- TrustDomain --------------------------------------------------------

    #[test]
    fn trust_domain_parse_accepts_bare_name() {
        let td = td("example.org");
        assert_eq!(td.as_str(), "example.org");
        assert_eq!(td.to_string(), "example.org");
        assert_eq!(td.id_string(), "spiffe://example.org");
    }

    #[test]
    fn trust_domain_parse_accepts_spiffe_id_and_returns_its_trust_domain() {
        assert_eq!(td("spiffe://example.org/a/b"), td("example.org"));
        assert_eq!(td("spiffe://example.org"), td("example.org"));
    }

    #[test]
    fn trust_domain_parse_validates_the_whole_id() {
        assert_eq!(td_kind("spiffe://example.org/a/"), Some(K::TrailingSlash));
        assert_eq!(td_kind("spiffe:/example.org"), Some(K::WrongScheme));
        assert_eq!(td_kind("://example.org"), Some(K::WrongScheme));
        assert_eq!(td_kind("spiffe://"), Some(K::MissingTrustDomain));
    }

    #[test]
    fn trust_domain_parse_rejects_empty_as_missing() {
        assert_eq!(td_kind(""), Some(K::MissingTrustDomain));
    }

    #[test]
    fn trust_domain_parse_rejects_upper_case_instead_of_folding() {
        assert_eq!(td_kind("Example.org"), Some(K::BadTrustDomainChar));
    }

    #[test]
    fn trust_domain_parse_rejects_scheme_without_slash_as_bad_char() {
        assert_eq!(td_kind("spiffe:example.org"), Some(K::BadTrustDomainChar));
    }

    #[test]
    fn trust_domain_parse_enforces_255_byte_limit() {
        assert!(TrustDomain::parse(&"a".repeat(255)).is_ok());
        assert_eq!(td_kind(&"a".repeat(256)), Some(K::TooLong));
    }

    #[test]
    fn trust_domain_from_str_matches_parse() {
        let parsed: TrustDomain = "example.org".parse().expect("valid");
        assert_eq!(parsed, td("example.org"));
    }

    // --- errors -------------------------------------------------------------

    #[test]
    fn error_display_names_input_and_problem() {
        let err = SpiffeId::parse("spiffe://Example.org").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "invalid SPIFFE ID \"spiffe://Example.org\": trust domain characters are limited \
             to lowercase letters, numbers, dots, dashes, and underscores (found 'E')"
        );
    }

    #[test]
    fn error_display_says_what_was_parsed() {
        let td_err = TrustDomain::parse("a b").expect_err("invalid");
        assert!(td_err
            .to_string()
            .starts_with("invalid trust domain \"a b\": "));
        let path_err = SpiffeId::validate_path("/a/").expect_err("invalid");
        assert_eq!(
            path_err.to_string(),
            "invalid SPIFFE ID path \"/a/\": path cannot have a trailing slash"
        );
    }

    #[test]
    fn error_display_escapes_control_characters() {
        let err = SpiffeId::parse("spiffe://a\n\u{1b}[31m").expect_err("invalid");
        let shown = err.to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(shown.contains("found '\\n'"), "{shown}");
    }

    #[test]
    fn error_display_truncates_long_input_to_100_chars() {
        let input = format!("spiffe://example.org/{}", "é".repeat(500));
        let err = SpiffeId::parse(&input).expect_err("invalid");
        let shown = err.to_string();
        let expected_prefix: String = input.chars().take(100).collect();
        assert!(
            shown.contains(&format!("{expected_prefix:?}...")),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("({} bytes in total)", input.len())),
            "{shown}"
        );
        assert!(!shown.contains(&input));
        assert_eq!(err.input(), input);
    }

    #[test]
    fn error_display_reports_lengths_for_too_long() {
        let err = TrustDomain::parse(&"a".repeat(300)).expect_err("too long");
        assert!(err
            .to_string()
            .ends_with("trust domain is 300 bytes long, more than the maximum of 255 bytes"));
    }

    #[test]
    fn error_kind_names_are_snake_case() {
        assert_eq!(K::BadTrustDomainChar.as_str(), "bad_trust_domain_char");
        assert_eq!(K::TooLong.to_string(), "too_long");
    }

    // --- properties -------------------------------------------------------------

    /// Strings that are often valid SPIFFE IDs, plus near misses in each part.
    fn spiffe_like() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![
            8 => Just("spiffe://".to_owned()),
            1 => "(spiffe|SPIFFE|Spiffe|http|)(://|:/|:|)",
        ];
        let trust_domain = prop_oneof![
            8 => "[a-z0-9._-]{1,12}",
            1 => "[a-zA-Z0-9.:@\\[\\]é-]{0,12}",
        ];
        let segment = prop_oneof![
            8 => "[a-zA-Z0-9._-]{1,6}",
            1 => "(|\\.|\\.\\.|[a-z]*[%é?#@ /][a-z]*)",
        ];
        let trailing_slash = prop_oneof![8 => Just(""), 1 => Just("/")];
        (
            scheme,
            trust_domain,
            proptest::collection::vec(segment, 0..5),
            trailing_slash,
        )
            .prop_map(|(scheme, td, segments, trailing)| {
                let mut s = scheme + &td;
                for segment in segments {
                    s.push('/');
                    s.push_str(&segment);
                }
                s + trailing
            })
    }

    fn check_parsed_invariants(input: &str, id: &SpiffeId) -> Result<(), TestCaseError> {
        prop_assert_eq!(id.as_str(), input);
        let reparsed = SpiffeId::parse(&id.to_string());
        prop_assert_eq!(reparsed.as_ref(), Ok(id));
        let rebuilt = SpiffeId::from_path(id.trust_domain(), id.path());
        prop_assert_eq!(rebuilt.as_ref(), Ok(id));
        let segments: Vec<&str> = id.segments().collect();
        let from_segments = SpiffeId::from_segments(id.trust_domain(), &segments);
        prop_assert_eq!(from_segments.as_ref(), Ok(id));
        let td = TrustDomain::parse(input);
        prop_assert_eq!(td.as_ref(), Ok(id.trust_domain()));
        prop_assert!(id.has_path_prefix(id.path()));
        Ok(())
    }

    proptest! {
        #[test]
        fn any_string_parses_or_errors_without_panicking(s in any::<String>()) {
            match SpiffeId::parse(&s) {
                Ok(id) => check_parsed_invariants(&s, &id)?,
                Err(e) => { let _ = e.to_string(); }
            }
            let _ = TrustDomain::parse(&s).map_err(|e| e.to_string());
            let _ = SpiffeId::validate_path(&s).map_err(|e| e.to_string());
            let _ = SpiffeId::validate_path_segment(&s).map_err(|e| e.to_string());
        }

        #[test]
        fn spiffe_like_strings_round_trip_when_valid(s in spiffe_like()) {
            if let Ok(id) = SpiffeId::parse(&s) {
                check_parsed_invariants(&s, &id)?;
            }
        }

        #[test]
        fn generated_valid_ids_parse_and_round_trip(
            td_name in "[a-z0-9._-]{1,20}",
            segments in proptest::collection::vec("[a-zA-Z0-9._-]{1,10}", 0..6),
        ) {
            let segments: Vec<&str> = segments
                .iter()
                .map(String::as_str)
                .filter(|s| *s != "." && *s != "..")
                .collect();
            let td = TrustDomain::parse(&td_name).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let id = SpiffeId::from_segments(&td, &segments)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_parsed_invariants(&id.to_string(), &id)?;
            prop_assert_eq!(id.segments().collect::<Vec<_>>(), segments);
        }
    }
}
