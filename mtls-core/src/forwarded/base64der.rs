//! Plain base64 DER: Caddy, HAProxy and Traefik.

use super::*;

// ---------------------------------------------------------------------------------------------
// Plain base64 DER
// ---------------------------------------------------------------------------------------------

/// Parses a header that holds the client certificate as plain base64 DER, optionally followed by
/// the rest of its chain, `,`-separated: Caddy's
/// `{http.request.tls.client.certificate_der_base64}`, HAProxy's `%[ssl_c_der,base64]`, and
/// Traefik's `X-Forwarded-Tls-Client-Cert` (each certificate's PEM body without its delimiters
/// and line breaks, which is the same thing, the client's chain after its leaf). Returns the
/// certificates in header order, the leaf first.
///
/// Spaces and tabs around the value, and after each `,`, are ignored (HTTP strips the former;
/// an intermediary that joins field lines writes `", "`). Each certificate is strict base64
/// (standard alphabet, `=` padding required, unused bits zero; no line breaks, spaces or URL
/// escapes) and must be a DER SEQUENCE. A value in another format (RFC 9440's `:...:`, PEM,
/// URL-encoded) is refused with a message that says which format it looks like.
///
/// # Errors
///
/// [`ForwardedErrorKind::TooLong`] over [`MAX_HEADER_LEN`] bytes;
/// [`Empty`](ForwardedErrorKind::Empty) for an empty value, which Caddy and HAProxy send when
/// the client presented no certificate (whether that is acceptable is the caller's decision);
/// [`Syntax`](ForwardedErrorKind::Syntax) for control characters, an empty list member or a
/// value in another format; [`BadBase64`](ForwardedErrorKind::BadBase64);
/// [`NotDer`](ForwardedErrorKind::NotDer).
///
/// # Examples
///
/// ```
/// use mtls_core::forwarded::{parse_base64_der, ForwardedErrorKind};
///
/// let chain = parse_base64_der("MAA=,MAIFAA==")?;
/// assert_eq!(chain.len(), 2);
/// assert_eq!(chain[0].as_ref(), [0x30, 0x00]);
///
/// let err = parse_base64_der(":MAA=:").expect_err("RFC 9440 is another format");
/// assert_eq!(err.kind(), ForwardedErrorKind::Syntax);
/// # Ok::<(), mtls_core::forwarded::ForwardedError>(())
/// ```
pub fn parse_base64_der(header: &str) -> Result<Vec<CertificateDer<'static>>, ForwardedError> {
    parse_header(header, BASE64_DER, parse_base64_der_inner)
}

pub(super) fn parse_base64_der_inner(
    header: &str,
) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let is_ows = |c: char| c == ' ' || c == '\t';
    let value = header.trim_matches(is_ows);
    if value.is_empty() {
        return Err(Problem::new(
            ForwardedErrorKind::Empty,
            "the value is empty: Caddy and HAProxy send that when the client presented no \
             certificate",
        ));
    }
    if let Some(format) = other_format(value) {
        return Err(Problem::syntax(format!(
            "the value looks like {format}, not plain base64 DER"
        )));
    }
    let mut chain = Vec::new();
    for (i, member) in value.split(',').enumerate() {
        let number = i + 1;
        let member = member.trim_start_matches(is_ows);
        if member.is_empty() {
            return Err(Problem::syntax(format!("certificate {number} is empty")));
        }
        let der =
            base64_decode(member).map_err(|p| p.within(format_args!("certificate {number}")))?;
        check_der(&der).map_err(|p| p.within(format_args!("certificate {number}")))?;
        chain.push(CertificateDer::from(der));
    }
    Ok(chain)
}

/// The format `value` is in when it is plainly not base64 DER, for an error that says so: a
/// proxy configured for one format and a layer for another is the likely mistake.
fn other_format(value: &str) -> Option<&'static str> {
    if value.starts_with(':') {
        Some("an RFC 9440 byte sequence (`:...:`); use the RFC 9440 format")
    } else if value.starts_with("-----BEGIN%20") {
        Some("URL-encoded PEM (nginx's $ssl_client_escaped_cert)")
    } else if value.starts_with("-----BEGIN") {
        Some("PEM")
    } else if value.contains('%') {
        Some("URL-encoded text (a `%` escape)")
    } else {
        None
    }
}
