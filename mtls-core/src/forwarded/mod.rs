//! Parsers for the headers in which a TLS-terminating proxy forwards the client certificate:
//! Envoy's `x-forwarded-client-cert` (XFCC), RFC 9440 `Client-Cert` and `Client-Cert-Chain`,
//! nginx's `$ssl_client_escaped_cert`, and plain base64 DER (Caddy, HAProxy, Traefik).
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
//! One file per format (`xfcc.rs`, `rfc9440.rs`, `nginx.rs`, `base64der.rs`) over shared decoders
//! (`codec.rs`).
//! They live here, in mtls-core, rather than next to mtls-tower's `TrustedProxyLayer`: they do
//! no I/O and need no HTTP or TLS stack, so they are fuzzed on their own (`fuzz/`), checked
//! against other projects' vectors, and usable by any server, not only a Tower one. What the
//! layer adds is trust (which peer may send them) and header hygiene, which need the request.
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
//! # Plain base64 DER (Caddy, HAProxy, Traefik)
//!
//! [`parse_base64_der`] takes the base64 of the client certificate's DER, as Caddy's
//! `{http.request.tls.client.certificate_der_base64}` and HAProxy's `%[ssl_c_der,base64]` write
//! it, optionally followed by more certificates, `,`-separated, as Traefik's
//! `X-Forwarded-Tls-Client-Cert` lists the client's chain after its leaf. Decisions:
//!
//! * The same strict base64 as RFC 9440's, and each certificate a DER SEQUENCE.
//! * Spaces and tabs around the value and after a `,` are ignored; an empty member (`a,,b`, a
//!   trailing `,`) is an error.
//! * An empty value is [`ForwardedErrorKind::Empty`]: Caddy and HAProxy send it when the client
//!   presented no certificate.
//! * A value that is plainly another format (`:...:`, PEM, anything with a `%` escape) is a
//!   [`Syntax`](ForwardedErrorKind::Syntax) error naming that format, never decoded leniently:
//!   the proxy and the layer disagree about the format, and the operator should hear so.
//!
//! # PEM
//!
//! PEM is parsed strictly: `-----BEGIN CERTIFICATE-----`, lines of base64, `-----END
//! CERTIFICATE-----`, each on its own line (LF or CRLF). Empty lines may appear between and around
//! blocks but not inside one; any other text, another label or whitespace inside a base64 line is
//! an error.
//!
//! The codecs are well-kept crates': base64 is the `base64` crate's standard engine (which
//! requires canonical padding and refuses non-zero unused bits, so nothing was loosened), and
//! percent-decoding is the `percent-encoding` crate's (after a check that every `%` has two hex
//! digits, which that crate would pass through). The PEM *framing* above is checked here, line by
//! line, rather than by rustls-pki-types' PEM reader, which mtls-tower uses for configuration
//! files: that reader skips text outside blocks and blocks of other labels, and a header that
//! carries anything beside the certificate is refused here on purpose (what a trusted proxy
//! forwards must be exactly the certificate, so that two readers cannot see two different ones).

use std::fmt;

use rustls_pki_types::CertificateDer;

use crate::fingerprint::{hex_pair, Hex};
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
const BASE64_DER: &str = "base64 DER client certificate header";

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

mod base64der;
mod codec;
mod nginx;
mod rfc9440;
mod xfcc;

pub use base64der::parse_base64_der;
use codec::{base64_decode, check_der, one_pem_certificate, pem_certificates, percent_decode_utf8};
pub use nginx::parse_nginx_escaped_cert;
pub use rfc9440::{parse_client_cert, parse_client_cert_chain};
pub use xfcc::{parse_xfcc, XfccElement};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
