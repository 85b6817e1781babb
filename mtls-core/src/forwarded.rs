//! Parsers for the headers in which a TLS-terminating proxy forwards the client certificate:
//! Envoy's `x-forwarded-client-cert` (XFCC), RFC 9440 `Client-Cert` and `Client-Cert-Chain`, and
//! nginx's `$ssl_client_escaped_cert`.
//!
//! ```
//! use mtls_core::forwarded::{self, ForwardedErrorKind};
//!
//! // Two hops: the front proxy's element first, then the one added by the proxy next to us.
//! let header = "By=spiffe://example.org/front;URI=spiffe://example.org/web,\
//!               By=spiffe://example.org/api;Hash=0123abcd;Subject=\"CN=front, O=Example\";\
//!               URI=spiffe://example.org/front";
//! let elements = forwarded::parse_xfcc(header)?;
//! assert_eq!(elements.len(), 2);
//! // Only the LAST element was written by the proxy that sent us this request.
//! let adjacent = elements.last().expect("two elements");
//! assert_eq!(adjacent.by(), ["spiffe://example.org/api"]);
//! assert_eq!(adjacent.uri(), ["spiffe://example.org/front"]);
//! assert_eq!(adjacent.subject(), Some("CN=front, O=Example"));
//! assert_eq!(adjacent.cert_der()?, None); // this proxy forwards no `Cert`
//!
//! // RFC 9440: a Structured Field Byte Sequence holding the DER (here an empty SEQUENCE).
//! let der = forwarded::parse_client_cert(":MAA=:")?;
//! assert_eq!(der.as_ref(), [0x30, 0x00]);
//!
//! // nginx sends an empty value when the client presented no certificate.
//! let err = forwarded::parse_nginx_escaped_cert("").expect_err("no certificate");
//! assert_eq!(err.kind(), ForwardedErrorKind::Empty);
//!
//! // Errors name the header format and the problem.
//! let err = forwarded::parse_xfcc("By=a;Hash=1;Hash=2").expect_err("duplicate Hash");
//! assert_eq!(err.kind(), ForwardedErrorKind::DuplicateKey);
//! assert_eq!(
//!     err.to_string(),
//!     "invalid x-forwarded-client-cert header: element 1 has more than one `Hash` key (at byte 12)",
//! );
//! # Ok::<(), forwarded::ForwardedError>(())
//! ```
//!
//! These functions are pure: they take the header value as text (an HTTP library's `HeaderValue`
//! converted with `to_str()`, which refuses non-visible-ASCII bytes) and never panic. Every input
//! longer than [`MAX_HEADER_LEN`] bytes is refused before any other work.
//!
//! # Trust
//!
//! A forwarded certificate is a claim made by whoever sent the request. Use it only when the
//! request came straight from a proxy you trust (checked by its address or by its own mutual-TLS
//! identity) and that proxy removes or overwrites the header on requests from anyone else. This
//! module only parses; it does not decide whom to trust, and it does not verify certificates.
//!
//! # `x-forwarded-client-cert` (Envoy)
//!
//! [`parse_xfcc`] returns one [`XfccElement`] per hop, in header order. Envoy appends its element
//! at the end, so **the last element is the one added by the adjacent proxy**; earlier elements
//! were passed along from upstream hops (and, unless every hop sanitises the header, may come from
//! the client itself).
//!
//! Syntax, as Envoy writes it and as we accept it:
//!
//! * Elements are separated by `,`, `key=value` pairs by `;`. Spaces and tabs are allowed after a
//!   `,` (so that field lines joined by an HTTP intermediary with `", "` still parse) and around
//!   the whole value (HTTP strips them anyway); nowhere else. An empty header, or one of only
//!   spaces, has zero elements; an empty element (`,`, `a=b,`, `,a=b`) is an error: Envoy never
//!   writes one.
//! * Keys are HTTP tokens, matched ASCII case-insensitively: `By`, `Hash`, `Cert`, `Chain`,
//!   `Subject`, `URI`, `DNS`. `By`, `URI` and `DNS` may repeat and are kept in header order;
//!   `Hash`, `Cert`, `Chain` and `Subject` may appear once per element
//!   ([`ForwardedErrorKind::DuplicateKey`]). A key without `=` is an error.
//! * **Unknown keys are ignored** (including the legacy `SAN` key, which is *not* mapped to `URI`),
//!   so that a newer proxy can add keys. Some third-party parsers (xfcc-parser, alecholmes'
//!   xfccparser) reject unknown keys instead.
//! * A value is either quoted or unquoted; either may be empty (`URI=`, `Subject=""`). An unquoted
//!   value runs to the next `;` or `,` and must not contain `"`. In a quoted value, `,`, `;` and
//!   `=` are literal, and **`\"` is the only escape**: it stands for `"`. A backslash before any
//!   other character is kept as it is, together with that character, so the RFC 2253 escapes in
//!   the `Subject` that Envoy writes (`O=Acme\, Inc.`, `CN=a\\b`) come through unchanged. After the
//!   closing quote only `;`, `,` or the end may follow; a missing closing quote is an error.
//! * Control characters (other than tab) are refused anywhere, including line breaks from HTTP/1.1
//!   line folding.
//! * `Subject` is returned as an opaque string; it is not parsed as a distinguished name.
//! * `Cert` and `Chain` are URL-encoded PEM. They are percent-decoded while parsing (strictly: a
//!   `%` must be followed by two hex digits, `+` is not a space, and the result must be UTF-8) and
//!   exposed as text by [`XfccElement::cert_pem`] and [`XfccElement::chain_pem`]. The PEM, base64
//!   and DER layers are decoded only when you ask, by [`XfccElement::cert_der`] and
//!   [`XfccElement::chain_der`], which return an error rather than nothing when the value does not
//!   decode. This keeps headers with placeholder values parseable (Envoy's own tests and several
//!   tools use them) while a caller that relies on the certificate cannot overlook a broken one:
//!   a trusted-proxy layer that requires the certificate calls `cert_der()` and refuses the request
//!   on `Err` or `Ok(None)`.
//! * `Hash` is the hex SHA-256 of the DER certificate. [`XfccElement::cert_der`] checks it when
//!   both are present and returns [`ForwardedErrorKind::HashMismatch`] when they disagree. Without
//!   a `Cert`, the `Hash` is an unverifiable claim, returned as it was written.
//!
//! # RFC 9440 `Client-Cert` and `Client-Cert-Chain`
//!
//! [`parse_client_cert`] takes an RFC 8941 Item that must be a Byte Sequence (`:base64:`);
//! [`parse_client_cert_chain`] an RFC 8941 List of at least one Byte Sequence. Decisions:
//!
//! * Leading and trailing spaces are allowed around the field value (RFC 8941 §4.2), and spaces or
//!   tabs around the `,` of a list. Anything else outside the byte sequences is an error,
//!   including HTTP/1.1 line folding (obs-fold), which is not valid in a field value: unfold it
//!   before calling and you are accepting something RFC 9110 forbids, so we refuse it instead.
//! * **Parameters are refused** (`:...:;a=1`): RFC 9440 defines none, and a security header should
//!   not carry data we silently drop. Inner lists are refused as well.
//! * Base64 is strict: the standard alphabet, `=` padding required, unused bits zero. This is
//!   stricter than RFC 8941 §4.2.7, which asks parsers to tolerate missing padding and non-zero pad
//!   bits; RFC 8941 serialisers always pad, and RFC 9440's example does.
//! * Each certificate must be non-empty DER that looks like a SEQUENCE: tag `0x30` and a definite,
//!   minimally encoded length that covers exactly the rest of the bytes. The certificate itself is
//!   not parsed.
//!
//! # nginx `$ssl_client_escaped_cert`
//!
//! [`parse_nginx_escaped_cert`] takes the URL-encoded PEM of one certificate (nginx writes
//! newlines as `%0A`). An empty value is [`ForwardedErrorKind::Empty`]: nginx sends it when the
//! client presented no certificate, and whether that is acceptable is the caller's decision.
//!
//! # PEM
//!
//! PEM is parsed strictly: `-----BEGIN CERTIFICATE-----`, lines of base64, `-----END
//! CERTIFICATE-----`, each on its own line (LF or CRLF). Empty lines may appear between and around
//! blocks but not inside one; any other text, another label or whitespace inside a base64 line is
//! an error.

use std::fmt;

use rustls_pki_types::CertificateDer;

use crate::fingerprint::{hex_digit, hex_pair, Hex};
use crate::Fingerprint;

/// The longest header value, in bytes, that any parser here accepts; longer input is refused with
/// [`ForwardedErrorKind::TooLong`] before any other work.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// How many bytes of input an error message quotes at most.
const MAX_QUOTED_BYTES: usize = 100;

const XFCC: &str = "x-forwarded-client-cert header";
const XFCC_CERT: &str = "x-forwarded-client-cert Cert value";
const XFCC_CHAIN: &str = "x-forwarded-client-cert Chain value";
const CLIENT_CERT: &str = "Client-Cert header";
const CLIENT_CERT_CHAIN: &str = "Client-Cert-Chain header";
const NGINX: &str = "nginx $ssl_client_escaped_cert header";

const BEGIN_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";
const END_CERTIFICATE: &str = "-----END CERTIFICATE-----";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What was wrong with a forwarded-certificate header.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardedErrorKind {
    /// The header is longer than [`MAX_HEADER_LEN`] bytes.
    TooLong,
    /// The header (or an XFCC `Cert` / `Chain` value) is empty where a certificate is required.
    /// For nginx this means the client presented no certificate.
    Empty,
    /// The header does not follow the format's syntax (misplaced separator or quote, key without
    /// `=`, empty element, control character, parameters, ...).
    Syntax,
    /// An XFCC element repeats a key that may appear only once (`Hash`, `Cert`, `Chain`,
    /// `Subject`).
    DuplicateKey,
    /// A `%` not followed by two hex digits, or percent-decoded bytes that are not UTF-8.
    BadPercentEncoding,
    /// Base64 with a character outside the standard alphabet, missing or misplaced padding, or
    /// non-zero unused bits.
    BadBase64,
    /// PEM that is not exactly the expected `CERTIFICATE` block(s).
    BadPem,
    /// Decoded bytes that are not a DER SEQUENCE of consistent length.
    NotDer,
    /// An XFCC `Hash` that is not the SHA-256 of the element's `Cert`.
    HashMismatch,
}

/// The error returned by the parsers in this module.
///
/// Its `Display` output names the header format and the problem, quoting at most 100 bytes of the
/// input with control characters escaped, for example:
///
/// ```text
/// invalid x-forwarded-client-cert header: element 1 has more than one `Hash` key (at byte 12)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {context}: {message}")]
pub struct ForwardedError {
    context: &'static str,
    kind: ForwardedErrorKind,
    message: String,
}

impl ForwardedError {
    fn new(context: &'static str, problem: Problem) -> Self {
        Self {
            context,
            kind: problem.kind,
            message: problem.message,
        }
    }

    /// What was wrong.
    #[must_use]
    pub fn kind(&self) -> ForwardedErrorKind {
        self.kind
    }
}

/// An error before we know which header it belongs to.
#[derive(Debug)]
struct Problem {
    kind: ForwardedErrorKind,
    message: String,
}

impl Problem {
    fn new(kind: ForwardedErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn syntax(message: impl Into<String>) -> Self {
        Self::new(ForwardedErrorKind::Syntax, message)
    }

    /// Prefixes the message with where the problem is (`"element 2: "`).
    fn within(mut self, prefix: fmt::Arguments<'_>) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

/// Writes input quoted and escaped like `{:?}`, cut after [`MAX_QUOTED_BYTES`] bytes.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= MAX_QUOTED_BYTES {
            return write!(f, "{:?}", self.0);
        }
        let mut end = MAX_QUOTED_BYTES;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        let head = self.0.get(..end).unwrap_or_default();
        write!(f, "{head:?}... ({} bytes)", self.0.len())
    }
}

/// Refuses input longer than [`MAX_HEADER_LEN`].
fn check_len(header: &str, context: &'static str) -> Result<(), ForwardedError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(ForwardedError::new(
            context,
            Problem::new(
                ForwardedErrorKind::TooLong,
                format!(
                    "{} bytes long; at most {MAX_HEADER_LEN} are accepted",
                    header.len()
                ),
            ),
        ));
    }
    Ok(())
}

/// Refuses ASCII control characters other than tab (line breaks mean HTTP/1.1 line folding or a
/// broken header).
fn check_no_controls(header: &str) -> Result<(), Problem> {
    let Some(at) = header
        .bytes()
        .position(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    else {
        return Ok(());
    };
    let byte = header.as_bytes().get(at).copied().unwrap_or_default();
    if byte == b'\r' || byte == b'\n' {
        Err(Problem::syntax(format!(
            "line break at byte {at}; HTTP/1.1 line folding (obs-fold) is not allowed in a field \
             value"
        )))
    } else {
        Err(Problem::syntax(format!(
            "control character 0x{byte:02x} at byte {at}"
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// x-forwarded-client-cert
// ---------------------------------------------------------------------------------------------

/// One element of an `x-forwarded-client-cert` header: what one proxy says about the client
/// certificate it saw.
///
/// See the [module documentation](self) for how the header is parsed. Values are returned as they
/// appeared in the header, with quotes removed and `\"` unescaped; `Cert` and `Chain` are also
/// percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XfccElement {
    by: Vec<String>,
    hash: Option<String>,
    cert: Option<String>,
    chain: Option<String>,
    subject: Option<String>,
    uri: Vec<String>,
    dns: Vec<String>,
}

impl XfccElement {
    /// The `By` values: URI SANs of the certificate of the proxy that wrote this element (Envoy
    /// writes one per URI SAN), in header order.
    #[must_use]
    pub fn by(&self) -> &[String] {
        &self.by
    }

    /// The `Hash` value as written: the hex SHA-256 of the client certificate's DER, according to
    /// the proxy. It is checked against `Cert` only by [`XfccElement::cert_der`].
    #[must_use]
    pub fn hash(&self) -> Option<&str> {
        self.hash.as_deref()
    }

    /// The `Cert` value, percent-decoded: the client certificate as PEM text, not yet checked.
    /// Use [`XfccElement::cert_der`] to decode it.
    #[must_use]
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert.as_deref()
    }

    /// Decodes the `Cert` value to DER: `Ok(None)` when the element has no `Cert`.
    ///
    /// # Errors
    ///
    /// When the `Cert` value is empty ([`ForwardedErrorKind::Empty`]), is not exactly one PEM
    /// `CERTIFICATE` block ([`BadPem`](ForwardedErrorKind::BadPem)), has bad base64
    /// ([`BadBase64`](ForwardedErrorKind::BadBase64)) or does not hold a DER SEQUENCE
    /// ([`NotDer`](ForwardedErrorKind::NotDer)), or when the element also has a `Hash` that is not
    /// the hex SHA-256 of that DER ([`HashMismatch`](ForwardedErrorKind::HashMismatch)).
    pub fn cert_der(&self) -> Result<Option<CertificateDer<'static>>, ForwardedError> {
        let Some(pem) = self.cert.as_deref() else {
            return Ok(None);
        };
        let err = |problem| ForwardedError::new(XFCC_CERT, problem);
        let der = one_pem_certificate(pem).map_err(err)?;
        if let Some(hash) = self.hash.as_deref() {
            check_hash(hash, &der).map_err(err)?;
        }
        Ok(Some(der))
    }

    /// The `Chain` value, percent-decoded: PEM text, not yet checked. Use
    /// [`XfccElement::chain_der`] to decode it.
    #[must_use]
    pub fn chain_pem(&self) -> Option<&str> {
        self.chain.as_deref()
    }

    /// Decodes the `Chain` value to DER certificates, in header order: `Ok(None)` when the
    /// element has no `Chain`, otherwise at least one certificate. Envoy's `Chain` holds the whole
    /// chain the client presented, leaf first.
    ///
    /// # Errors
    ///
    /// When the `Chain` value is empty ([`ForwardedErrorKind::Empty`]), is not a sequence of PEM
    /// `CERTIFICATE` blocks ([`BadPem`](ForwardedErrorKind::BadPem)), has bad base64
    /// ([`BadBase64`](ForwardedErrorKind::BadBase64)) or a block does not hold a DER SEQUENCE
    /// ([`NotDer`](ForwardedErrorKind::NotDer)).
    pub fn chain_der(&self) -> Result<Option<Vec<CertificateDer<'static>>>, ForwardedError> {
        match self.chain.as_deref() {
            None => Ok(None),
            Some(pem) => pem_certificates(pem)
                .map(Some)
                .map_err(|problem| ForwardedError::new(XFCC_CHAIN, problem)),
        }
    }

    /// The `Subject` value: the client certificate's subject as the proxy wrote it (Envoy: RFC 2253
    /// form, with its backslash escapes kept). Opaque: not parsed as a distinguished name.
    /// `Some("")` for `Subject=""`, which Envoy writes when the subject is empty.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The `URI` values: the client certificate's URI SANs, in header order.
    #[must_use]
    pub fn uri(&self) -> &[String] {
        &self.uri
    }

    /// The `DNS` values: the client certificate's DNS SANs, in header order.
    #[must_use]
    pub fn dns(&self) -> &[String] {
        &self.dns
    }
}

/// Parses an Envoy `x-forwarded-client-cert` header into its elements, in header order.
///
/// The **last** element is the one added by the adjacent proxy; see the
/// [module documentation](self) for the syntax, the decisions and what is checked when.
///
/// # Errors
///
/// [`ForwardedErrorKind::TooLong`] for input over [`MAX_HEADER_LEN`] bytes;
/// [`Syntax`](ForwardedErrorKind::Syntax) for malformed input;
/// [`DuplicateKey`](ForwardedErrorKind::DuplicateKey) when an element repeats `Hash`, `Cert`,
/// `Chain` or `Subject`; [`BadPercentEncoding`](ForwardedErrorKind::BadPercentEncoding) when a
/// `Cert` or `Chain` value does not percent-decode to UTF-8 text.
///
/// # Examples
///
/// ```
/// use mtls_core::forwarded::parse_xfcc;
///
/// let elements = parse_xfcc(r#"By=",;=\"";URI=;uri=spiffe://a/b;Unknown=ignored"#)?;
/// assert_eq!(elements[0].by(), [r#",;=""#]);
/// assert_eq!(elements[0].uri(), ["", "spiffe://a/b"]);
/// assert!(parse_xfcc("").expect("empty header").is_empty());
/// # Ok::<(), mtls_core::forwarded::ForwardedError>(())
/// ```
pub fn parse_xfcc(header: &str) -> Result<Vec<XfccElement>, ForwardedError> {
    parse_header(header, XFCC, parse_xfcc_inner)
}

fn parse_xfcc_inner(header: &str) -> Result<Vec<XfccElement>, Problem> {
    let is_ows = |c: char| c == ' ' || c == '\t';
    let body = header.trim_start_matches(is_ows);
    let offset = header.len() - body.len();
    let body = body.trim_end_matches(is_ows);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    XfccParser {
        s: body,
        pos: 0,
        offset,
    }
    .elements()
}

/// What every header parser does first: refuse an over-long header before any other work, then
/// control characters; errors name the header (`context`).
fn parse_header<T>(
    header: &str,
    context: &'static str,
    parse: impl FnOnce(&str) -> Result<T, Problem>,
) -> Result<T, ForwardedError> {
    check_len(header, context)?;
    check_no_controls(header)
        .and_then(|()| parse(header))
        .map_err(|p| ForwardedError::new(context, p))
}

/// The XFCC keys this parser knows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum XfccKey {
    By,
    Hash,
    Cert,
    Chain,
    Subject,
    Uri,
    Dns,
}

impl XfccKey {
    const ALL: [XfccKey; 7] = [
        XfccKey::By,
        XfccKey::Hash,
        XfccKey::Cert,
        XfccKey::Chain,
        XfccKey::Subject,
        XfccKey::Uri,
        XfccKey::Dns,
    ];

    /// Keys are case-insensitive, as Envoy reads them.
    fn from_name(name: &str) -> Option<Self> {
        XfccKey::ALL
            .into_iter()
            .find(|key| key.name().eq_ignore_ascii_case(name))
    }

    fn name(self) -> &'static str {
        match self {
            XfccKey::By => "By",
            XfccKey::Hash => "Hash",
            XfccKey::Cert => "Cert",
            XfccKey::Chain => "Chain",
            XfccKey::Subject => "Subject",
            XfccKey::Uri => "URI",
            XfccKey::Dns => "DNS",
        }
    }
}

/// A cursor over the (trimmed) header. Positions only ever stop on ASCII bytes or the end, so
/// every slice is on a character boundary; slicing still goes through `get` so that a mistake
/// here could not panic.
struct XfccParser<'a> {
    s: &'a str,
    pos: usize,
    /// Bytes trimmed from the front of the header, so that messages give positions in the input.
    offset: usize,
}

impl<'a> XfccParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.s.get(start..end).unwrap_or_default()
    }

    /// Position in the original header, for messages.
    fn at(&self, pos: usize) -> usize {
        pos + self.offset
    }

    fn elements(mut self) -> Result<Vec<XfccElement>, Problem> {
        let mut elements = Vec::new();
        loop {
            let number = elements.len() + 1;
            elements.push(self.element(number)?);
            match self.peek() {
                None => return Ok(elements),
                Some(b',') => {
                    self.pos += 1;
                    while matches!(self.peek(), Some(b' ' | b'\t')) {
                        self.pos += 1;
                    }
                }
                // `element` stops only at `,` or the end.
                Some(_) => {
                    return Err(Problem::syntax(format!(
                        "unexpected character at byte {}",
                        self.at(self.pos)
                    )))
                }
            }
        }
    }

    /// One element: `pair (";" pair)*`, stopping before `,` or at the end.
    fn element(&mut self, number: usize) -> Result<XfccElement, Problem> {
        let mut element = XfccElement::default();
        let mut pairs = 0_usize;
        loop {
            let key_start = self.pos;
            while !matches!(self.peek(), None | Some(b'=' | b';' | b',')) {
                self.pos += 1;
            }
            let name = self.slice(key_start, self.pos);
            if self.peek() != Some(b'=') {
                return Err(Problem::syntax(if !name.is_empty() {
                    format!(
                        "element {number}: key {} has no `=` (at byte {})",
                        Quoted(name),
                        self.at(key_start)
                    )
                } else if pairs == 0 {
                    format!("element {number} is empty (at byte {})", self.at(key_start))
                } else {
                    format!(
                        "element {number}: empty pair after `;` (at byte {})",
                        self.at(key_start)
                    )
                }));
            }
            if !is_token(name) {
                return Err(Problem::syntax(format!(
                    "element {number}: {} is not a valid key (at byte {})",
                    Quoted(name),
                    self.at(key_start)
                )));
            }
            self.pos += 1; // `=`
            let value = self
                .value()
                .map_err(|p| p.within(format_args!("element {number}, key {}", Quoted(name))))?;
            if let Some(key) = XfccKey::from_name(name) {
                store(&mut element, key, value).map_err(|p| {
                    // A decoding error carries its own position, within the value.
                    let at = match p.kind {
                        ForwardedErrorKind::DuplicateKey => {
                            format!(" (at byte {})", self.at(key_start))
                        }
                        _ => String::new(),
                    };
                    Problem::new(p.kind, format!("element {number} {}{at}", p.message))
                })?;
            }
            pairs += 1;
            match self.peek() {
                Some(b';') => self.pos += 1,
                _ => return Ok(element),
            }
        }
    }

    /// A quoted or unquoted value, stopping before `;`, `,` or the end.
    fn value(&mut self) -> Result<String, Problem> {
        if self.peek() != Some(b'"') {
            let start = self.pos;
            while let Some(b) = self.peek() {
                match b {
                    b';' | b',' => break,
                    b'"' => {
                        return Err(Problem::syntax(format!(
                            "`\"` inside an unquoted value (at byte {})",
                            self.at(self.pos)
                        )))
                    }
                    _ => self.pos += 1,
                }
            }
            return Ok(self.slice(start, self.pos).to_owned());
        }
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => {
                    return Err(Problem::syntax(format!(
                        "the quote at byte {} is never closed",
                        self.at(open)
                    )))
                }
                Some(b'"') => {
                    value.push_str(self.slice(run, self.pos));
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let next = self.s.as_bytes().get(self.pos + 1).copied();
                    match next {
                        Some(b'"') => {
                            value.push_str(self.slice(run, self.pos));
                            value.push('"');
                            self.pos += 2;
                            run = self.pos;
                        }
                        // Kept as is, with the character it precedes (RFC 2253 escapes in a
                        // Subject). Skipping one byte of a multi-byte character is harmless: its
                        // continuation bytes are never ASCII, so the next stop is a boundary.
                        Some(_) => self.pos += 2,
                        None => {
                            return Err(Problem::syntax(format!(
                                "the quote at byte {} is never closed",
                                self.at(open)
                            )))
                        }
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
        match self.peek() {
            None | Some(b';' | b',') => Ok(value),
            Some(_) => Err(Problem::syntax(format!(
                "unexpected text after the closing quote at byte {}: {}",
                self.at(self.pos - 1),
                Quoted(self.slice(self.pos, self.s.len()))
            ))),
        }
    }
}

/// Stores one known pair in `element`; the message of an error continues "element N ...".
fn store(element: &mut XfccElement, key: XfccKey, value: String) -> Result<(), Problem> {
    let slot = match key {
        XfccKey::By => {
            element.by.push(value);
            return Ok(());
        }
        XfccKey::Uri => {
            element.uri.push(value);
            return Ok(());
        }
        XfccKey::Dns => {
            element.dns.push(value);
            return Ok(());
        }
        XfccKey::Hash => &mut element.hash,
        XfccKey::Cert => &mut element.cert,
        XfccKey::Chain => &mut element.chain,
        XfccKey::Subject => &mut element.subject,
    };
    if slot.is_some() {
        return Err(Problem::new(
            ForwardedErrorKind::DuplicateKey,
            format!("has more than one `{}` key", key.name()),
        ));
    }
    let value = match key {
        XfccKey::Cert | XfccKey::Chain => percent_decode_utf8(&value)
            .map_err(|p| Problem::new(p.kind, format!("`{}` value: {}", key.name(), p.message)))?,
        _ => value,
    };
    *slot = Some(value);
    Ok(())
}

/// An HTTP token (RFC 9110 §5.6.2): one or more `tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Checks an XFCC `Hash` against the DER it should be the SHA-256 of (hex, either case).
fn check_hash(hash: &str, der: &[u8]) -> Result<(), Problem> {
    let actual = Fingerprint::of_der(der);
    let expected = hash.as_bytes().chunks(2).map(hex_pair);
    if hash.len() == 2 * actual.as_bytes().len() && expected.eq(actual.as_bytes().map(Some)) {
        Ok(())
    } else {
        Err(Problem::new(
            ForwardedErrorKind::HashMismatch,
            format!(
                "the element's Hash {} is not the SHA-256 of this certificate ({})",
                Quoted(hash),
                Hex(actual.as_bytes())
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 9440
// ---------------------------------------------------------------------------------------------

/// Parses an RFC 9440 `Client-Cert` header: an RFC 8941 Byte Sequence holding the DER of the
/// client certificate.
///
/// Spaces around the value are allowed; parameters are not. See the [module documentation](self)
/// for the decisions.
///
/// # Errors
///
/// [`ForwardedErrorKind::TooLong`] over [`MAX_HEADER_LEN`] bytes; [`Empty`](ForwardedErrorKind::Empty)
/// for an empty or all-space value; [`Syntax`](ForwardedErrorKind::Syntax) when the value is not
/// a single Byte Sequence without parameters; [`BadBase64`](ForwardedErrorKind::BadBase64);
/// [`NotDer`](ForwardedErrorKind::NotDer) when the bytes are not a DER SEQUENCE.
///
/// # Examples
///
/// ```
/// use mtls_core::forwarded::{parse_client_cert, ForwardedErrorKind};
///
/// assert_eq!(parse_client_cert(" :MAA=: ")?.as_ref(), [0x30, 0x00]);
/// let err = parse_client_cert(":MAA:").expect_err("padding is required");
/// assert_eq!(err.kind(), ForwardedErrorKind::BadBase64);
/// # Ok::<(), mtls_core::forwarded::ForwardedError>(())
/// ```
pub fn parse_client_cert(header: &str) -> Result<CertificateDer<'static>, ForwardedError> {
    parse_header(header, CLIENT_CERT, parse_client_cert_inner)
}

fn parse_client_cert_inner(header: &str) -> Result<CertificateDer<'static>, Problem> {
    let input = header.trim_start_matches(' ');
    if input.trim_end_matches(' ').is_empty() {
        return Err(Problem::new(
            ForwardedErrorKind::Empty,
            "the value is empty; RFC 9440 requires a byte sequence (an absent header means no \
             certificate)",
        ));
    }
    let (der, rest) = sf_byte_sequence(input)?;
    let rest = rest.trim_start_matches(' ');
    if rest.starts_with(';') {
        return Err(parameters_refused());
    }
    if rest.starts_with(',') {
        return Err(Problem::syntax(
            "a list is not allowed here; a chain belongs in Client-Cert-Chain",
        ));
    }
    if !rest.is_empty() {
        return Err(Problem::syntax(format!(
            "unexpected text after the byte sequence: {}",
            Quoted(rest)
        )));
    }
    check_der(&der)?;
    Ok(CertificateDer::from(der))
}

/// Parses an RFC 9440 `Client-Cert-Chain` header: an RFC 8941 List of Byte Sequences, each the
/// DER of a certificate, in header order (RFC 9440: the certificates that chain the
/// `Client-Cert` leaf to a trust anchor, issuer after subject; the leaf itself is not included).
///
/// # Errors
///
/// [`ForwardedErrorKind::TooLong`] over [`MAX_HEADER_LEN`] bytes; [`Empty`](ForwardedErrorKind::Empty)
/// for an empty list; [`Syntax`](ForwardedErrorKind::Syntax) for anything but a list of Byte
/// Sequences without parameters (a trailing comma, inner lists, line folding, ...);
/// [`BadBase64`](ForwardedErrorKind::BadBase64); [`NotDer`](ForwardedErrorKind::NotDer).
///
/// # Examples
///
/// ```
/// use mtls_core::forwarded::parse_client_cert_chain;
///
/// let chain = parse_client_cert_chain(":MAA=:,\t:MAIFAA==:")?;
/// assert_eq!(chain.len(), 2);
/// assert_eq!(chain[1].as_ref(), [0x30, 0x02, 0x05, 0x00]);
/// assert!(parse_client_cert_chain(":MAA=:,").is_err());
/// # Ok::<(), mtls_core::forwarded::ForwardedError>(())
/// ```
pub fn parse_client_cert_chain(
    header: &str,
) -> Result<Vec<CertificateDer<'static>>, ForwardedError> {
    parse_header(header, CLIENT_CERT_CHAIN, parse_client_cert_chain_inner)
}

fn parse_client_cert_chain_inner(header: &str) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let is_ows = |c: char| c == ' ' || c == '\t';
    let mut input = header.trim_start_matches(' ');
    if input.trim_end_matches(' ').is_empty() {
        return Err(Problem::new(
            ForwardedErrorKind::Empty,
            "the list is empty; RFC 9440 requires at least one certificate (an absent header \
             means no chain)",
        ));
    }
    let mut chain = Vec::new();
    loop {
        let number = chain.len() + 1;
        if input.starts_with('(') {
            return Err(Problem::syntax(format!(
                "member {number} is an inner list; only byte sequences are allowed"
            )));
        }
        let (der, rest) =
            sf_byte_sequence(input).map_err(|p| p.within(format_args!("member {number}")))?;
        if rest.starts_with(';') {
            return Err(parameters_refused().within(format_args!("member {number}")));
        }
        check_der(&der).map_err(|p| p.within(format_args!("member {number}")))?;
        chain.push(CertificateDer::from(der));
        let rest = rest.trim_start_matches(is_ows);
        if rest.is_empty() {
            return Ok(chain);
        }
        let Some(rest) = rest.strip_prefix(',') else {
            return Err(Problem::syntax(format!(
                "expected `,` after member {number}, found {}",
                Quoted(rest)
            )));
        };
        input = rest.trim_start_matches(is_ows);
        if input.is_empty() {
            return Err(Problem::syntax(format!(
                "trailing `,` after member {number}"
            )));
        }
    }
}

fn parameters_refused() -> Problem {
    Problem::syntax("parameters (`;key=value`) are not accepted; RFC 9440 defines none")
}

/// Parses an RFC 8941 Byte Sequence (`:base64:`) at the start of `input`; returns its bytes and
/// the rest of the input.
fn sf_byte_sequence(input: &str) -> Result<(Vec<u8>, &str), Problem> {
    let Some(after_colon) = input.strip_prefix(':') else {
        let hint = if input.starts_with("-----BEGIN") {
            " (this looks like PEM; RFC 9440 carries base64 DER between colons)"
        } else {
            ""
        };
        return Err(Problem::syntax(format!(
            "expected a byte sequence `:base64:`, found {}{hint}",
            Quoted(input)
        )));
    };
    let Some(end) = after_colon.find(':') else {
        return Err(Problem::syntax("the byte sequence has no closing `:`"));
    };
    let content = after_colon.get(..end).unwrap_or_default();
    let rest = after_colon.get(end + 1..).unwrap_or_default();
    let bytes = base64_decode(content)?;
    Ok((bytes, rest))
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// Parses nginx's `$ssl_client_escaped_cert`: the URL-encoded PEM of the client certificate.
///
/// Spaces and tabs around the value are ignored (HTTP strips them anyway).
///
/// # Errors
///
/// [`ForwardedErrorKind::TooLong`] over [`MAX_HEADER_LEN`] bytes; [`Empty`](ForwardedErrorKind::Empty)
/// for an empty value, which nginx sends when the client presented no certificate;
/// [`Syntax`](ForwardedErrorKind::Syntax) for control characters;
/// [`BadPercentEncoding`](ForwardedErrorKind::BadPercentEncoding);
/// [`BadPem`](ForwardedErrorKind::BadPem) unless the text is exactly one `CERTIFICATE` block;
/// [`BadBase64`](ForwardedErrorKind::BadBase64); [`NotDer`](ForwardedErrorKind::NotDer).
///
/// # Examples
///
/// ```
/// use mtls_core::forwarded::parse_nginx_escaped_cert;
///
/// let header = "-----BEGIN%20CERTIFICATE-----%0AMAA%3D%0A-----END%20CERTIFICATE-----%0A";
/// assert_eq!(parse_nginx_escaped_cert(header)?.as_ref(), [0x30, 0x00]);
/// # Ok::<(), mtls_core::forwarded::ForwardedError>(())
/// ```
pub fn parse_nginx_escaped_cert(header: &str) -> Result<CertificateDer<'static>, ForwardedError> {
    parse_header(header, NGINX, parse_nginx_inner)
}

fn parse_nginx_inner(header: &str) -> Result<CertificateDer<'static>, Problem> {
    let value = header.trim_matches(|c| c == ' ' || c == '\t');
    if value.is_empty() {
        return Err(Problem::new(
            ForwardedErrorKind::Empty,
            "the value is empty: nginx sends that when the client presented no certificate",
        ));
    }
    one_pem_certificate(&percent_decode_utf8(value)?)
}

/// The DER of the one `CERTIFICATE` block in `pem`; more than one is an error.
fn one_pem_certificate(pem: &str) -> Result<CertificateDer<'static>, Problem> {
    // `pem_certificates` never returns an empty list.
    let certs = pem_certificates(pem)?;
    <[_; 1]>::try_from(certs).map(|[der]| der).map_err(|certs| {
        Problem::new(
            ForwardedErrorKind::BadPem,
            format!(
                "{} CERTIFICATE blocks; exactly one was expected",
                certs.len()
            ),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Decoders: percent-encoding, base64, PEM, DER
// ---------------------------------------------------------------------------------------------

/// Strict percent-decoding: every `%` is followed by two hex digits; `+` stays `+`; the result
/// must be UTF-8.
fn percent_decode_utf8(s: &str) -> Result<String, Problem> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).copied().and_then(hex_digit);
        let lo = bytes.get(i + 2).copied().and_then(hex_digit);
        let (Some(hi), Some(lo)) = (hi, lo) else {
            let end = (i + 3).min(bytes.len());
            let mut end = end;
            while !s.is_char_boundary(end) {
                end += 1;
            }
            return Err(Problem::new(
                ForwardedErrorKind::BadPercentEncoding,
                format!(
                    "`%` at byte {i} of the value is not followed by two hex digits: {}",
                    Quoted(s.get(i..end).unwrap_or_default())
                ),
            ));
        };
        out.push((hi << 4) | lo);
        i += 3;
    }
    String::from_utf8(out).map_err(|e| {
        Problem::new(
            ForwardedErrorKind::BadPercentEncoding,
            format!(
                "the percent-decoded bytes are not UTF-8 (at decoded byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Strict base64 (RFC 4648 §4): standard alphabet, `=` padding required and only at the end,
/// unused bits zero. The empty string decodes to no bytes.
fn base64_decode(s: &str) -> Result<Vec<u8>, Problem> {
    let bad = |message: String| Problem::new(ForwardedErrorKind::BadBase64, message);
    let bytes = s.as_bytes();
    if let Some(at) = bytes
        .iter()
        .position(|&c| base64_value(c).is_none() && c != b'=')
    {
        let ch = s
            .get(at..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or('?');
        return Err(bad(format!(
            "{ch:?} at byte {at} is not in the base64 alphabet"
        )));
    }
    if !bytes.len().is_multiple_of(4) {
        return Err(bad(format!(
            "{} characters is not a multiple of 4 (`=` padding is required)",
            bytes.len()
        )));
    }
    let quads = bytes.len() / 4;
    let mut out = Vec::with_capacity(quads * 3);
    for (index, quad) in bytes.chunks_exact(4).enumerate() {
        let last = index + 1 == quads;
        let v = |i: usize| quad.get(i).copied().and_then(base64_value);
        match (v(0), v(1), v(2), v(3)) {
            (Some(a), Some(b), Some(c), Some(d)) => {
                out.push((a << 2) | (b >> 4));
                out.push((b << 4) | (c >> 2));
                out.push((c << 6) | d);
            }
            (Some(a), Some(b), Some(c), None) if last && quad.get(3) == Some(&b'=') => {
                if c & 0x03 != 0 {
                    return Err(bad("non-zero unused bits before the `=` padding".into()));
                }
                out.push((a << 2) | (b >> 4));
                out.push((b << 4) | (c >> 2));
            }
            (Some(a), Some(b), None, None) if last && quad.get(2..) == Some(b"==".as_slice()) => {
                if b & 0x0f != 0 {
                    return Err(bad("non-zero unused bits before the `=` padding".into()));
                }
                out.push((a << 2) | (b >> 4));
            }
            _ => {
                return Err(bad(format!(
                    "misplaced `=` padding in characters {}..{}",
                    index * 4,
                    index * 4 + 4
                )))
            }
        }
    }
    Ok(out)
}

/// Decodes strict PEM holding one or more `CERTIFICATE` blocks (see the module documentation),
/// checking each as DER.
fn pem_certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let bad_pem = |message: String| Problem::new(ForwardedErrorKind::BadPem, message);
    if text
        .trim_matches(|c: char| c.is_ascii_whitespace())
        .is_empty()
    {
        return Err(Problem::new(
            ForwardedErrorKind::Empty,
            "the value is empty; a PEM CERTIFICATE block was expected",
        ));
    }
    let mut certs = Vec::new();
    // Base64 of the block being read; `None` outside a block.
    let mut block: Option<String> = None;
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        match block.as_mut() {
            None if line.is_empty() => {}
            None if line == BEGIN_CERTIFICATE => block = Some(String::new()),
            None if line.starts_with("-----BEGIN ") => {
                return Err(bad_pem(format!(
                    "line {number}: {} is not a `{BEGIN_CERTIFICATE}` line",
                    Quoted(line)
                )))
            }
            None => {
                return Err(bad_pem(format!(
                    "line {number}: text outside a CERTIFICATE block: {}",
                    Quoted(line)
                )))
            }
            Some(base64) if line == END_CERTIFICATE => {
                let der = base64_decode(base64)
                    .map_err(|p| p.within(format_args!("the block ending on line {number}")))?;
                check_der(&der)
                    .map_err(|p| p.within(format_args!("the block ending on line {number}")))?;
                certs.push(CertificateDer::from(der));
                block = None;
            }
            Some(_) if line.is_empty() || line.starts_with("-----") => {
                return Err(bad_pem(format!(
                    "line {number}: expected base64 or `{END_CERTIFICATE}`, found {}",
                    Quoted(line)
                )))
            }
            Some(base64) => {
                if let Some(at) = line
                    .bytes()
                    .position(|c| base64_value(c).is_none() && c != b'=')
                {
                    return Err(Problem::new(
                        ForwardedErrorKind::BadBase64,
                        format!(
                            "line {number}: byte {at} is not in the base64 alphabet: {}",
                            Quoted(line)
                        ),
                    ));
                }
                base64.push_str(line);
            }
        }
    }
    if block.is_some() {
        return Err(bad_pem(format!("no `{END_CERTIFICATE}` line")));
    }
    if certs.is_empty() {
        return Err(bad_pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// Checks that `der` is one DER SEQUENCE: tag `0x30`, then a definite, minimally encoded length
/// equal to the number of bytes that follow. The contents are not parsed.
fn check_der(der: &[u8]) -> Result<(), Problem> {
    let not_der = |message: String| Problem::new(ForwardedErrorKind::NotDer, message);
    let Some((&tag, rest)) = der.split_first() else {
        return Err(not_der("no bytes; a DER certificate was expected".into()));
    };
    if tag != 0x30 {
        return Err(not_der(format!(
            "starts with byte 0x{tag:02x}; a DER certificate starts with a SEQUENCE (0x30)"
        )));
    }
    let Some((&first, rest)) = rest.split_first() else {
        return Err(not_der("the SEQUENCE has no length".into()));
    };
    let (len, body) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(not_der(format!(
                "unsupported SEQUENCE length form 0x{first:02x}"
            )));
        }
        let (Some(len_bytes), Some(body)) = (rest.get(..count), rest.get(count..)) else {
            return Err(not_der("the SEQUENCE length is cut short".into()));
        };
        if len_bytes.first() == Some(&0) {
            return Err(not_der(
                "the SEQUENCE length has a leading zero byte (not DER)".into(),
            ));
        }
        let len = len_bytes
            .iter()
            .fold(0_usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err(not_der(
                "the SEQUENCE length uses the long form for a short length (not DER)".into(),
            ));
        }
        (len, body)
    };
    if len != body.len() {
        return Err(not_der(format!(
            "the SEQUENCE length is {len} but {} bytes follow",
            body.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForwardedErrorKind as K;

    /// RFC 9440 Appendix A's client certificate (expired 2021-01-23; only decoded here).
    const LEAF: &[u8] = include_bytes!("../tests/data/rfc9440/cert0.der");
    const LEAF_SHA256: &str = "bfaf1f7e070f9fa8dd62905f158da73f84a1136624fbafcc9393c8f7287a69eb";
    /// RFC 9440 Appendix A's intermediate CA certificate.
    const INTERMEDIATE: &[u8] = include_bytes!("../tests/data/rfc9440/cert1.der");

    pub(super) use crate::testing::{base64_encode as b64, url_encode};

    /// A DER SEQUENCE around `content`.
    pub(super) fn der_seq(content: &[u8]) -> Vec<u8> {
        crate::testing::der_tlv(0x30, content)
    }

    /// PEM with 64-character lines, as OpenSSL writes it.
    pub(super) fn pem(der: &[u8]) -> String {
        let body = b64(der);
        let mut out = format!("{BEGIN_CERTIFICATE}\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str(END_CERTIFICATE);
        out.push('\n');
        out
    }

    fn xfcc_kind(header: &str) -> ForwardedErrorKind {
        parse_xfcc(header).expect_err(header).kind()
    }

    fn one(header: &str) -> XfccElement {
        let mut elements = parse_xfcc(header).unwrap();
        assert_eq!(elements.len(), 1, "{header:?}");
        elements.pop().unwrap()
    }

    fn cert_element(hash: Option<&str>, der: &[u8]) -> String {
        let hash = hash.map(|h| format!("Hash={h};")).unwrap_or_default();
        format!(
            "By=spiffe://example.org/proxy;{hash}Cert=\"{}\";URI=spiffe://example.org/client",
            url_encode(&pem(der))
        )
    }

    // --- all parsers -----------------------------------------------------------------------

    #[test]
    fn oversized_input_is_refused_first() {
        // Garbage that would otherwise be a syntax error: the length check comes first.
        let long = "\n".repeat(MAX_HEADER_LEN + 1);
        assert_eq!(parse_xfcc(&long).unwrap_err().kind(), K::TooLong);
        assert_eq!(parse_client_cert(&long).unwrap_err().kind(), K::TooLong);
        assert_eq!(
            parse_client_cert_chain(&long).unwrap_err().kind(),
            K::TooLong
        );
        assert_eq!(
            parse_nginx_escaped_cert(&long).unwrap_err().kind(),
            K::TooLong
        );
        let err = parse_xfcc(&long).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid x-forwarded-client-cert header: 65537 bytes long; at most 65536 are accepted"
        );
    }

    #[test]
    fn input_of_exactly_the_maximum_length_is_parsed() {
        let header = format!("By={}", "a".repeat(MAX_HEADER_LEN - 3));
        assert_eq!(header.len(), MAX_HEADER_LEN);
        assert_eq!(one(&header).by()[0].len(), MAX_HEADER_LEN - 3);
    }

    #[test]
    fn error_messages_quote_at_most_100_bytes_of_input() {
        let key = "k".repeat(5000);
        let err = parse_xfcc(&key).unwrap_err();
        assert_eq!(err.kind(), K::Syntax);
        let msg = err.to_string();
        assert!(msg.starts_with("invalid x-forwarded-client-cert header: element 1: key \"kkk"));
        assert!(msg.contains("... (5000 bytes)"), "{msg}");
        assert!(msg.len() < 250, "{msg}");
    }

    #[test]
    fn error_messages_cut_on_a_character_boundary() {
        // 99 ASCII bytes, then two-byte characters: byte 100 is inside one.
        let key = format!("{}{}", "k".repeat(99), "é".repeat(10));
        let msg = parse_xfcc(&key).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("{}\"... (119 bytes)", "k".repeat(99))),
            "{msg}"
        );
    }

    #[test]
    fn error_messages_escape_control_characters() {
        // `%0c` decodes to a form feed inside the PEM text.
        let header = "-----BEGIN%20CERTIFICATE-----%0cert%0A-----END%20CERTIFICATE-----%0A";
        let err = parse_nginx_escaped_cert(header).unwrap_err();
        assert_eq!(err.kind(), K::BadPem);
        let msg = err.to_string();
        assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
        assert!(msg.contains(r"\u{c}ert"), "{msg}");
    }

    #[test]
    fn control_characters_are_refused() {
        for header in ["By=a\0", "By=a\u{7f}", "By=\"a\rb\""] {
            assert_eq!(xfcc_kind(header), K::Syntax, "{header:?}");
        }
        assert_eq!(parse_client_cert(":MAA=:\0").unwrap_err().kind(), K::Syntax);
        assert_eq!(
            parse_nginx_escaped_cert("-----BEGIN\u{1}")
                .unwrap_err()
                .kind(),
            K::Syntax
        );
    }

    #[test]
    fn line_folding_is_refused_with_a_hint() {
        let err = parse_xfcc("By=a;\r\n URI=b").unwrap_err();
        assert_eq!(err.kind(), K::Syntax);
        assert!(err.to_string().contains("obs-fold"), "{err}");
    }

    #[test]
    fn tabs_are_not_control_characters() {
        assert_eq!(one("By=\"a\tb\"").by(), ["a\tb"]);
    }

    // --- XFCC syntax -------------------------------------------------------------------------

    #[test]
    fn empty_header_has_no_elements() {
        assert_eq!(parse_xfcc("").unwrap(), vec![]);
        assert_eq!(parse_xfcc(" \t ").unwrap(), vec![]);
    }

    #[test]
    fn elements_are_in_header_order_with_the_adjacent_proxy_last() {
        let elements = parse_xfcc(
            "By=spiffe://a/front;URI=spiffe://a/client,By=spiffe://a/api;URI=spiffe://a/front",
        )
        .unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[0].uri(), ["spiffe://a/client"]);
        assert_eq!(elements[1].by(), ["spiffe://a/api"]);
        assert_eq!(elements[1].uri(), ["spiffe://a/front"]);
    }

    #[test]
    fn keys_are_case_insensitive() {
        let e = one("by=a;HASH=h;subJect=s;uri=u;Dns=d;CERT=c;chain=x");
        assert_eq!(e.by(), ["a"]);
        assert_eq!(e.hash(), Some("h"));
        assert_eq!(e.subject(), Some("s"));
        assert_eq!(e.uri(), ["u"]);
        assert_eq!(e.dns(), ["d"]);
        assert_eq!(e.cert_pem(), Some("c"));
        assert_eq!(e.chain_pem(), Some("x"));
    }

    #[test]
    fn multi_valued_keys_keep_header_order() {
        let e = one("DNS=b;By=1;URI=x;DNS=a;By=2;URI=y;DNS=c");
        assert_eq!(e.by(), ["1", "2"]);
        assert_eq!(e.uri(), ["x", "y"]);
        assert_eq!(e.dns(), ["b", "a", "c"]);
    }

    #[test]
    fn single_valued_keys_may_not_repeat() {
        for key in ["Hash", "Cert", "Chain", "Subject"] {
            let header = format!("By=a;{key}=1;{}=2", key.to_ascii_lowercase());
            let err = parse_xfcc(&header).unwrap_err();
            assert_eq!(err.kind(), K::DuplicateKey, "{header}");
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn the_same_key_in_different_elements_is_not_a_duplicate() {
        assert_eq!(parse_xfcc("Hash=1,Hash=2").unwrap().len(), 2);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let e = one("Foo=bar;By=a;SAN=legacy;X-Y=\"q;,\"");
        assert_eq!(e.by(), ["a"]);
        assert_eq!(e.uri(), [] as [String; 0]);
        assert_eq!(one("unknown=hello"), XfccElement::default());
    }

    #[test]
    fn keys_must_be_tokens() {
        for header in ["B y=1", "\"By\"=1", "By;=1", "=1", "By=1;=2"] {
            assert_eq!(xfcc_kind(header), K::Syntax, "{header:?}");
        }
    }

    #[test]
    fn a_key_without_equals_is_rejected() {
        for header in ["Hash", "Hash=;Hash", "By=a,URI", "junk xfcc header"] {
            assert_eq!(xfcc_kind(header), K::Syntax, "{header:?}");
        }
        let msg = parse_xfcc("By=a,URI").unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid x-forwarded-client-cert header: element 2: key \"URI\" has no `=` (at byte 5)"
        );
    }

    #[test]
    fn empty_elements_and_pairs_are_rejected() {
        for header in [
            ",",
            "By=a,",
            ",By=a",
            "By=a,,By=b",
            "By=a;",
            "By=a;;URI=b",
            "By=a, ",
        ] {
            assert_eq!(xfcc_kind(header), K::Syntax, "{header:?}");
        }
    }

    #[test]
    fn spaces_are_allowed_after_element_commas_only() {
        assert_eq!(parse_xfcc("By=a, \tBy=b").unwrap().len(), 2);
        assert_eq!(one("  By=a  ").by(), ["a"]);
        assert_eq!(xfcc_kind("By =a"), K::Syntax);
        assert_eq!(xfcc_kind("By=a; URI=b"), K::Syntax);
        // Inside an unquoted value, spaces are part of it.
        assert_eq!(
            one("Chain=hello! world!").chain_pem(),
            Some("hello! world!")
        );
    }

    #[test]
    fn empty_values_are_allowed() {
        let e = one("By=;URI=;Hash=;Subject=\"\";DNS=\"\"");
        assert_eq!(e.by(), [""]);
        assert_eq!(e.uri(), [""]);
        assert_eq!(e.hash(), Some(""));
        assert_eq!(e.subject(), Some(""));
        assert_eq!(e.dns(), [""]);
    }

    #[test]
    fn quoted_separators_are_literal() {
        let e = one(r#"By=",;=";Subject="a=b;c,d""#);
        assert_eq!(e.by(), [",;="]);
        assert_eq!(e.subject(), Some("a=b;c,d"));
    }

    #[test]
    fn escaped_quote_is_unescaped() {
        assert_eq!(one(r#"By="say \"hi\"""#).by(), [r#"say "hi""#]);
        assert_eq!(one(r#"By="\"""#).by(), ["\""]);
    }

    #[test]
    fn other_backslashes_are_kept_verbatim() {
        // RFC 2253 escapes, as Envoy writes them in Subject.
        let e = one(r#"Subject="CN=hello,O=Acme\, Inc.,L=a\\b\+c""#);
        assert_eq!(e.subject(), Some(r"CN=hello,O=Acme\, Inc.,L=a\\b\+c"));
        // A backslash pair `\\` does not escape the quote that follows it.
        assert_eq!(one(r#"Subject="CN=a\\";By=x"#).subject(), Some(r"CN=a\\"));
        // Unquoted values keep backslashes too.
        assert_eq!(one(r"By=a\b").by(), [r"a\b"]);
    }

    #[test]
    fn backslash_before_a_multibyte_character_is_kept() {
        assert_eq!(one("By=\"\\é\\€x\"").by(), ["\\é\\€x"]);
    }

    #[test]
    fn unbalanced_quotes_are_rejected() {
        for header in [r#"By="abc"#, r#"By="abc\""#, r#"By="abc\"#, r#"By=""#] {
            assert_eq!(xfcc_kind(header), K::Syntax, "{header:?}");
        }
        let msg = parse_xfcc(r#"By=a;URI="x"#).unwrap_err().to_string();
        assert!(msg.contains("the quote at byte 9 is never closed"), "{msg}");
    }

    #[test]
    fn text_after_a_closing_quote_is_rejected() {
        for header in [
            r#"By="a"b"#,
            r#"By="a" ;URI=b"#,
            r#"Subject="/L=\"San Francisco"/OU=Lyft";By=a"#,
            r#"By="a""b""#,
        ] {
            assert_eq!(xfcc_kind(header), K::Syntax, "{header:?}");
        }
    }

    #[test]
    fn a_quote_inside_an_unquoted_value_is_rejected() {
        assert_eq!(xfcc_kind(r#"By=a"b""#), K::Syntax);
    }

    #[test]
    fn subject_is_opaque() {
        assert_eq!(one("Subject=\"random\"").subject(), Some("random"));
        assert_eq!(one("Subject=random=hello").subject(), Some("random=hello"));
    }

    // --- XFCC Cert, Chain and Hash -----------------------------------------------------------

    #[test]
    fn cert_and_chain_are_percent_decoded_while_parsing() {
        let e = one("Cert=\"%3D%3Dabc%0Ade%3D\";Chain=\"a%2Bb+c%25\"");
        assert_eq!(e.cert_pem(), Some("==abc\nde="));
        // `+` is not a space.
        assert_eq!(e.chain_pem(), Some("a+b+c%"));
    }

    #[test]
    fn other_values_are_not_percent_decoded() {
        let e = one("By=a%20b;URI=%zz;Hash=%;Subject=%41");
        assert_eq!(e.by(), ["a%20b"]);
        assert_eq!(e.uri(), ["%zz"]);
        assert_eq!(e.hash(), Some("%"));
        assert_eq!(e.subject(), Some("%41"));
    }

    #[test]
    fn percent_escapes_accept_either_case_of_hex() {
        assert_eq!(one("Cert=%2f%2F%0a").cert_pem(), Some("//\n"));
    }

    #[test]
    fn bad_percent_escapes_are_rejected() {
        for value in ["%", "%4", "%zz", "%4g", "abc%", "%%41", "%é1"] {
            let header = format!("By=a;Cert=\"{value}\"");
            let err = parse_xfcc(&header).unwrap_err();
            assert_eq!(err.kind(), K::BadPercentEncoding, "{header:?}");
            assert!(err.to_string().contains("`Cert` value"), "{err}");
        }
        assert_eq!(xfcc_kind("Chain=%G0"), K::BadPercentEncoding);
    }

    #[test]
    fn percent_decoding_must_give_utf8() {
        assert_eq!(xfcc_kind("Cert=%FF"), K::BadPercentEncoding);
        assert_eq!(xfcc_kind("Cert=%C3"), K::BadPercentEncoding);
        assert_eq!(one("Cert=%C3%A9").cert_pem(), Some("é"));
    }

    #[test]
    fn cert_der_decodes_the_certificate_and_checks_the_hash() {
        let e = one(&cert_element(Some(LEAF_SHA256), LEAF));
        assert_eq!(e.hash(), Some(LEAF_SHA256));
        assert_eq!(e.cert_pem(), Some(pem(LEAF).as_str()));
        assert_eq!(e.cert_der().unwrap().unwrap().as_ref(), LEAF);
    }

    #[test]
    fn hash_comparison_ignores_hex_case() {
        let e = one(&cert_element(Some(&LEAF_SHA256.to_ascii_uppercase()), LEAF));
        assert_eq!(e.cert_der().unwrap().unwrap().as_ref(), LEAF);
    }

    #[test]
    fn a_hash_that_disagrees_with_the_cert_is_an_error() {
        let wrong = LEAF_SHA256.replace('b', "c");
        for hash in [wrong.as_str(), "hash", "", &LEAF_SHA256[..63]] {
            let e = one(&cert_element(Some(hash), LEAF));
            let err = e.cert_der().unwrap_err();
            assert_eq!(err.kind(), K::HashMismatch, "{hash:?}");
            assert!(err.to_string().contains(LEAF_SHA256), "{err}");
        }
    }

    #[test]
    fn a_hash_of_another_certificate_is_an_error() {
        let e = one(&cert_element(Some(LEAF_SHA256), INTERMEDIATE));
        assert_eq!(e.cert_der().unwrap_err().kind(), K::HashMismatch);
    }

    #[test]
    fn cert_der_without_hash_decodes() {
        let e = one(&cert_element(None, LEAF));
        assert_eq!(e.cert_der().unwrap().unwrap().as_ref(), LEAF);
    }

    #[test]
    fn cert_der_is_none_without_cert() {
        let e = one(&format!("Hash={LEAF_SHA256};URI=spiffe://a/b"));
        assert_eq!(e.cert_der().unwrap(), None);
        assert_eq!(e.chain_der().unwrap(), None);
    }

    #[test]
    fn an_undecodable_cert_parses_but_cert_der_fails() {
        let e = one(
            "Hash=hash;Cert=\"-----BEGIN%20CERTIFICATE-----%0cert%0A-----END%20CERTIFICATE-----%0A\"",
        );
        assert!(e.cert_pem().is_some());
        assert_eq!(e.cert_der().unwrap_err().kind(), K::BadPem);
        let e = one("Cert=\"%3D%3Dabc%0Ade%3D\"");
        assert_eq!(e.cert_der().unwrap_err().kind(), K::BadPem);
    }

    #[test]
    fn an_empty_cert_is_an_error_when_decoded() {
        assert_eq!(one("Cert=\"\"").cert_der().unwrap_err().kind(), K::Empty);
        assert_eq!(one("Chain=").chain_der().unwrap_err().kind(), K::Empty);
    }

    #[test]
    fn cert_must_be_exactly_one_block() {
        let two = format!("{}{}", pem(LEAF), pem(INTERMEDIATE));
        let e = one(&format!("Cert=\"{}\"", url_encode(&two)));
        let err = e.cert_der().unwrap_err();
        assert_eq!(err.kind(), K::BadPem);
        assert!(err.to_string().contains("2 CERTIFICATE blocks"), "{err}");
    }

    #[test]
    fn chain_der_decodes_every_block_in_order() {
        let chain = format!("{}{}", pem(LEAF), pem(INTERMEDIATE));
        let e = one(&format!("Chain=\"{}\"", url_encode(&chain)));
        let ders = e.chain_der().unwrap().unwrap();
        assert_eq!(ders.len(), 2);
        assert_eq!(ders[0].as_ref(), LEAF);
        assert_eq!(ders[1].as_ref(), INTERMEDIATE);
    }

    #[test]
    fn chain_der_reports_a_bad_block() {
        let chain = format!("{}{}", pem(LEAF), pem(b"\x31\x00"));
        let e = one(&format!("Chain=\"{}\"", url_encode(&chain)));
        let err = e.chain_der().unwrap_err();
        assert_eq!(err.kind(), K::NotDer);
        assert!(err
            .to_string()
            .starts_with("invalid x-forwarded-client-cert Chain value"));
    }

    // --- PEM ---------------------------------------------------------------------------------

    #[test]
    fn pem_accepts_crlf_and_blank_lines_between_blocks() {
        let text = format!("\n{}\n\n{}", pem(LEAF), pem(INTERMEDIATE)).replace('\n', "\r\n");
        assert_eq!(pem_certificates(&text).unwrap().len(), 2);
    }

    #[test]
    fn pem_accepts_any_line_length_and_no_final_newline() {
        let text = format!("{BEGIN_CERTIFICATE}\n{}\n{END_CERTIFICATE}", b64(LEAF));
        assert_eq!(pem_certificates(&text).unwrap()[0].as_ref(), LEAF);
    }

    #[test]
    fn pem_rejects_anything_else() {
        let body = b64(LEAF);
        let (head, tail) = body.split_at(64);
        for (text, kind) in [
            (format!("junk\n{}", pem(LEAF)), K::BadPem),
            (format!("{}junk\n", pem(LEAF)), K::BadPem),
            (pem(LEAF).replace("CERTIFICATE", "PRIVATE KEY"), K::BadPem),
            (pem(LEAF).replacen("-----\n", "----- \n", 1), K::BadPem),
            (format!("{BEGIN_CERTIFICATE}\n{body}\n"), K::BadPem),
            (
                format!("{BEGIN_CERTIFICATE}\n{head}\n\n{tail}\n{END_CERTIFICATE}\n"),
                K::BadPem,
            ),
            (
                format!("{BEGIN_CERTIFICATE}\n{head} \n{tail}\n{END_CERTIFICATE}\n"),
                K::BadBase64,
            ),
            (
                format!("{BEGIN_CERTIFICATE}\n{body}\n{BEGIN_CERTIFICATE}\n"),
                K::BadPem,
            ),
            (
                format!("{BEGIN_CERTIFICATE}\n{body}={body}\n{END_CERTIFICATE}\n"),
                K::BadBase64,
            ),
            (
                format!("{BEGIN_CERTIFICATE}\n{END_CERTIFICATE}\n"),
                K::NotDer,
            ),
            ("\n \n".to_owned(), K::Empty),
        ] {
            assert_eq!(pem_certificates(&text).unwrap_err().kind, kind, "{text:?}");
        }
    }

    // --- RFC 9440 ----------------------------------------------------------------------------

    #[test]
    fn client_cert_decodes_a_byte_sequence() {
        let header = format!("  :{}:  ", b64(LEAF));
        assert_eq!(parse_client_cert(&header).unwrap().as_ref(), LEAF);
    }

    #[test]
    fn client_cert_empty_is_its_own_kind() {
        for header in ["", "   "] {
            assert_eq!(parse_client_cert(header).unwrap_err().kind(), K::Empty);
        }
    }

    #[test]
    fn client_cert_refuses_parameters() {
        let err = parse_client_cert(":MAA=:;a=1").unwrap_err();
        assert_eq!(err.kind(), K::Syntax);
        assert!(err.to_string().contains("parameters"), "{err}");
    }

    #[test]
    fn client_cert_refuses_a_list() {
        let err = parse_client_cert(":MAA=:, :MAA=:").unwrap_err();
        assert_eq!(err.kind(), K::Syntax);
        assert!(err.to_string().contains("Client-Cert-Chain"), "{err}");
    }

    #[test]
    fn client_cert_allows_only_spaces_around_the_item() {
        for header in ["\t:MAA=:", ":MAA=:\t", ":MAA=: x", "x:MAA=:", ":MAA=::"] {
            assert_eq!(
                parse_client_cert(header).unwrap_err().kind(),
                K::Syntax,
                "{header:?}"
            );
        }
    }

    #[test]
    fn client_cert_refuses_pem_with_a_hint() {
        let err = parse_client_cert(&pem(LEAF).replace('\n', "")).unwrap_err();
        assert_eq!(err.kind(), K::Syntax);
        assert!(err.to_string().contains("looks like PEM"), "{err}");
    }

    #[test]
    fn client_cert_requires_the_closing_colon() {
        assert_eq!(parse_client_cert(":MAA=").unwrap_err().kind(), K::Syntax);
    }

    #[test]
    fn client_cert_base64_is_strict() {
        for header in [
            ":MAA:",      // missing padding
            ":MAB=:",     // non-zero unused bits
            ":MA==MAA=:", // padding in the middle
            ":MA-_:",     // URL-safe alphabet
            ":MA A=:",    // space
            ":M===:",     // too much padding
        ] {
            assert_eq!(
                parse_client_cert(header).unwrap_err().kind(),
                K::BadBase64,
                "{header:?}"
            );
        }
    }

    #[test]
    fn client_cert_must_be_a_der_sequence() {
        for der in [
            &b""[..],                        // empty
            b"\x31\x00",                     // SET, not SEQUENCE
            b"\x30",                         // no length
            b"\x30\x01",                     // length longer than the content
            b"\x30\x00\x00",                 // trailing byte
            b"\x30\x80\x00\x00",             // indefinite length
            b"\x30\x81\x01\x00",             // long form for a short length
            b"\x30\x82\x00\x81",             // leading zero length byte
            b"\x30\x82\x01",                 // length cut short
            b"\x30\x85\x01\x00\x00\x00\x00", // five length bytes
        ] {
            let err = parse_client_cert(&format!(":{}:", b64(der))).unwrap_err();
            assert_eq!(err.kind(), K::NotDer, "{der:02x?}");
        }
    }

    #[test]
    fn long_form_der_lengths_are_accepted() {
        for len in [0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0x100_0000] {
            assert!(check_der(&der_seq(&vec![0; len])).is_ok(), "{len:#x}");
        }
        let der = der_seq(&[0; 0x1234]);
        assert_eq!(
            parse_client_cert(&format!(":{}:", b64(&der)))
                .unwrap()
                .as_ref(),
            der
        );
    }

    #[test]
    fn client_cert_chain_decodes_a_list_in_order() {
        let header = format!(" :{}:  ,\t :{}: \t", b64(LEAF), b64(INTERMEDIATE));
        let chain = parse_client_cert_chain(&header).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].as_ref(), LEAF);
        assert_eq!(chain[1].as_ref(), INTERMEDIATE);
        assert_eq!(parse_client_cert_chain(":MAA=:").unwrap().len(), 1);
    }

    #[test]
    fn client_cert_chain_must_not_be_empty() {
        for header in ["", "  "] {
            assert_eq!(
                parse_client_cert_chain(header).unwrap_err().kind(),
                K::Empty
            );
        }
    }

    #[test]
    fn client_cert_chain_list_syntax_is_strict() {
        for header in [
            ":MAA=:,",
            ":MAA=:, ",
            ",:MAA=:",
            ":MAA=:,,:MAA=:",
            ":MAA=: :MAA=:",
            "(:MAA=:)",
            ":MAA=:;a=1, :MAA=:",
            ":MAA=:, :MAA=:;a",
            "\t:MAA=:",
        ] {
            assert_eq!(
                parse_client_cert_chain(header).unwrap_err().kind(),
                K::Syntax,
                "{header:?}"
            );
        }
    }

    #[test]
    fn client_cert_chain_names_the_bad_member() {
        let err = parse_client_cert_chain(":MAA=:, :MQA=:").unwrap_err();
        assert_eq!(err.kind(), K::NotDer);
        assert!(
            err.to_string()
                .starts_with("invalid Client-Cert-Chain header: member 2:"),
            "{err}"
        );
    }

    // --- nginx -------------------------------------------------------------------------------

    #[test]
    fn nginx_decodes_the_escaped_pem() {
        let header = url_encode(&pem(LEAF));
        assert!(header.contains("%0A"));
        assert_eq!(parse_nginx_escaped_cert(&header).unwrap().as_ref(), LEAF);
    }

    #[test]
    fn nginx_empty_means_no_certificate() {
        let err = parse_nginx_escaped_cert("").unwrap_err();
        assert_eq!(err.kind(), K::Empty);
        assert!(err.to_string().contains("no certificate"), "{err}");
        assert_eq!(parse_nginx_escaped_cert(" ").unwrap_err().kind(), K::Empty);
        // Percent-encoded whitespace is an empty PEM, too.
        assert_eq!(
            parse_nginx_escaped_cert("%0A").unwrap_err().kind(),
            K::Empty
        );
    }

    #[test]
    fn nginx_rejects_two_certificates() {
        let header = url_encode(&format!("{}{}", pem(LEAF), pem(INTERMEDIATE)));
        assert_eq!(
            parse_nginx_escaped_cert(&header).unwrap_err().kind(),
            K::BadPem
        );
    }

    #[test]
    fn nginx_rejects_bad_percent_encoding() {
        let header = url_encode(&pem(LEAF)).replacen("%0A", "%0", 1);
        assert_eq!(
            parse_nginx_escaped_cert(&header).unwrap_err().kind(),
            K::BadPercentEncoding
        );
    }

    #[test]
    fn nginx_rejects_unescaped_line_breaks() {
        assert_eq!(
            parse_nginx_escaped_cert(&pem(LEAF)).unwrap_err().kind(),
            K::Syntax
        );
    }

    // --- base64 ------------------------------------------------------------------------------

    #[test]
    fn base64_decodes_the_rfc_4648_vectors() {
        for (encoded, decoded) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(base64_decode(encoded).unwrap(), decoded.as_bytes());
            assert_eq!(b64(decoded.as_bytes()), encoded);
        }
    }

    #[test]
    fn base64_rejects_misplaced_padding() {
        for bad in [
            "Zg==Zg==", "Z===", "====", "=AAA", "Zm=v", "Zg=", "Zg", "Zh==", "Zm9=x===",
        ] {
            assert_eq!(
                base64_decode(bad).unwrap_err().kind,
                K::BadBase64,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn base64_names_a_non_ascii_character() {
        let err = base64_decode("Zm9€").unwrap_err();
        assert!(err.message.contains("'€' at byte 3"), "{}", err.message);
    }
}

#[cfg(test)]
mod proptests {
    use super::tests::{b64, der_seq, url_encode};
    use super::*;
    use proptest::prelude::*;

    /// Test-only XFCC serializer: Envoy's key order, keys in the given case, values quoted when
    /// needed (or when `force_quotes`), `Cert` and `Chain` URL-encoded and always quoted.
    fn serialize(elements: &[XfccElement], upper_keys: bool, force_quotes: bool) -> String {
        let quote = |v: &str| format!("\"{}\"", v.replace('"', "\\\""));
        let value = |v: &str| {
            let needs = v.contains([',', ';', '"'])
                || v.starts_with([' ', '\t'])
                || v.ends_with([' ', '\t']);
            if needs || force_quotes {
                quote(v)
            } else {
                v.to_owned()
            }
        };
        let key = |k: &str| {
            if upper_keys {
                k.to_ascii_uppercase()
            } else {
                k.to_owned()
            }
        };
        elements
            .iter()
            .map(|e| {
                let mut pairs = Vec::new();
                pairs.extend(e.by.iter().map(|v| format!("{}={}", key("By"), value(v))));
                pairs.extend(
                    e.hash
                        .iter()
                        .map(|v| format!("{}={}", key("Hash"), value(v))),
                );
                pairs.extend(
                    e.subject
                        .iter()
                        .map(|v| format!("{}={}", key("Subject"), quote(v))),
                );
                pairs.extend(e.uri.iter().map(|v| format!("{}={}", key("URI"), value(v))));
                pairs.extend(
                    e.cert
                        .iter()
                        .map(|v| format!("{}={}", key("Cert"), quote(&url_encode(v)))),
                );
                pairs.extend(
                    e.chain
                        .iter()
                        .map(|v| format!("{}={}", key("Chain"), quote(&url_encode(v)))),
                );
                pairs.extend(e.dns.iter().map(|v| format!("{}={}", key("DNS"), value(v))));
                pairs.join(";")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Values that can be written in XFCC: any of these characters, with backslashes only before
    /// a character other than `"` (in quotes, `\"` always means `"`).
    fn value() -> impl Strategy<Value = String> {
        "([a-zA-Z0-9 :/.=,;\"_é€-]|\\\\[a-z,;=\\\\+]){0,12}"
    }

    fn element() -> impl Strategy<Value = XfccElement> {
        (
            prop::collection::vec(value(), 0..3),
            prop::option::of(value()),
            prop::option::of(any::<String>()),
            prop::option::of(any::<String>()),
            prop::option::of(value()),
            prop::collection::vec(value(), 0..3),
            prop::collection::vec(value(), 0..3),
        )
            .prop_map(|(by, hash, cert, chain, subject, uri, dns)| XfccElement {
                by,
                hash,
                cert,
                chain,
                subject,
                uri,
                dns,
            })
            .prop_filter("an element needs at least one pair", |e| {
                !(e.by.is_empty()
                    && e.hash.is_none()
                    && e.cert.is_none()
                    && e.chain.is_none()
                    && e.subject.is_none()
                    && e.uri.is_empty()
                    && e.dns.is_empty())
            })
    }

    /// Text made mostly of the characters the parsers care about.
    fn tricky() -> impl Strategy<Value = String> {
        "([=;,\"\\\\%: \t\r\n()-]|By|Hash|Cert|Chain|Subject|URI|DNS|-----BEGIN CERTIFICATE-----|-----END CERTIFICATE-----|%0A|%2|MAA=|[a-zA-Z0-9+/]|é){0,40}"
    }

    fn exercise(input: &str) {
        if let Ok(elements) = parse_xfcc(input) {
            for e in &elements {
                let _ = e.cert_der();
                let _ = e.chain_der();
            }
        }
        let _ = parse_client_cert(input);
        let _ = parse_client_cert_chain(input);
        let _ = parse_nginx_escaped_cert(input);
        let _ = pem_certificates(input);
        let _ = base64_decode(input);
        let _ = percent_decode_utf8(input);
        if let Err(err) = parse_xfcc(input) {
            let _ = err.to_string();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn never_panics_on_arbitrary_strings(input in any::<String>()) {
            exercise(&input);
        }

        #[test]
        fn never_panics_on_tricky_strings(input in tricky()) {
            exercise(&input);
        }

        #[test]
        fn xfcc_round_trips(
            elements in prop::collection::vec(element(), 1..4),
            upper_keys in any::<bool>(),
            force_quotes in any::<bool>(),
        ) {
            let header = serialize(&elements, upper_keys, force_quotes);
            prop_assert_eq!(parse_xfcc(&header).unwrap(), elements, "{}", header);
        }

        #[test]
        fn base64_round_trips(data in prop::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(base64_decode(&b64(&data)).unwrap(), data);
        }

        #[test]
        fn base64_rejects_non_zero_pad_bits(
            data in prop::collection::vec(any::<u8>(), 1..50),
            bit in 0_u8..4,
        ) {
            // A length that is not a multiple of 3, so that the encoding ends in padding.
            let len = data.len() - usize::from(data.len().is_multiple_of(3));
            let mut encoded = b64(&data[..len]).into_bytes();
            // The last data character before the padding carries 4 (one `=`: 2) unused bits.
            let pads = encoded.iter().filter(|&&c| c == b'=').count();
            let unused_bits = if pads == 2 { 4 } else { 2 };
            let at = encoded.len() - pads - 1;
            let value = base64_value(encoded[at]).unwrap() | (1 << (bit % unused_bits));
            encoded[at] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[usize::from(value)];
            let encoded = String::from_utf8(encoded).unwrap();
            prop_assert_eq!(base64_decode(&encoded).unwrap_err().kind, ForwardedErrorKind::BadBase64);
        }

        #[test]
        fn percent_decoding_round_trips(text in any::<String>()) {
            prop_assert_eq!(percent_decode_utf8(&url_encode(&text)).unwrap(), text);
        }

        #[test]
        fn any_der_sequence_is_accepted(content in prop::collection::vec(any::<u8>(), 0..600)) {
            let der = der_seq(&content);
            let header = format!(":{}:", b64(&der));
            let parsed = parse_client_cert(&header).unwrap();
            prop_assert_eq!(parsed.as_ref(), der.as_slice());
        }
    }
}
