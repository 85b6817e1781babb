//! RFC 9440 `Client-Cert` and `Client-Cert-Chain`.

use super::*;

// ---------------------------------------------------------------------------------------------
// RFC 9440
// ---------------------------------------------------------------------------------------------

/// Parses an RFC 9440 `Client-Cert` header: an RFC 8941 Byte Sequence holding the DER of the
/// client certificate.
///
/// Spaces around the value are allowed; parameters are not. See the [module documentation](super)
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

pub(super) fn parse_client_cert_inner(header: &str) -> Result<CertificateDer<'static>, Problem> {
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

pub(super) fn parse_client_cert_chain_inner(
    header: &str,
) -> Result<Vec<CertificateDer<'static>>, Problem> {
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

pub(super) fn parameters_refused() -> Problem {
    Problem::syntax("parameters (`;key=value`) are not accepted; RFC 9440 defines none")
}

/// Parses an RFC 8941 Byte Sequence (`:base64:`) at the start of `input`; returns its bytes and
/// the rest of the input.
pub(super) fn sf_byte_sequence(input: &str) -> Result<(Vec<u8>, &str), Problem> {
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
