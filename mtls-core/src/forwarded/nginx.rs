//! nginx `$ssl_client_escaped_cert`.

use super::*;

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

pub(super) fn parse_nginx_inner(header: &str) -> Result<CertificateDer<'static>, Problem> {
    let value = header.trim_matches(|c| c == ' ' || c == '\t');
    if value.is_empty() {
        return Err(Problem::new(
            ForwardedErrorKind::Empty,
            "the value is empty: nginx sends that when the client presented no certificate",
        ));
    }
    one_pem_certificate(&percent_decode_utf8(value)?)
}
