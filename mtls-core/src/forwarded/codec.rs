//! The decoders under the header formats: percent-encoding, base64, PEM framing, DER shape.

use super::*;

// ---------------------------------------------------------------------------------------------
// Decoders: percent-encoding, base64, PEM, DER
// ---------------------------------------------------------------------------------------------

/// Strict percent-decoding: every `%` is followed by two hex digits; `+` stays `+`; the result
/// must be UTF-8. The decoding is the `percent-encoding` crate's; it passes a `%` without two
/// hex digits through unchanged, so such a `%` is refused here first.
pub(super) fn percent_decode_utf8(s: &str) -> Result<String, Problem> {
    let bytes = s.as_bytes();
    for (i, _) in s.match_indices('%') {
        let two_hex = bytes
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if !two_hex {
            let mut end = (i + 3).min(bytes.len());
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
        }
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| {
            Problem::new(
                ForwardedErrorKind::BadPercentEncoding,
                format!(
                    "the percent-decoded bytes are not UTF-8 (at decoded byte {})",
                    e.valid_up_to()
                ),
            )
        })
}

/// Whether `c` may appear in a line of base64 (the alphabet or `=`), for PEM line errors that
/// name the line.
pub(super) fn is_base64_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
}

/// Strict base64 (RFC 4648 §4): standard alphabet, `=` padding required and only at the end,
/// unused bits zero. The empty string decodes to no bytes. The `base64` crate's standard engine
/// decodes, and is that strict (canonical padding required, trailing bits refused); this only
/// words its errors.
pub(super) fn base64_decode(s: &str) -> Result<Vec<u8>, Problem> {
    use base64::engine::general_purpose::STANDARD;
    use base64::{DecodeError, Engine as _};

    STANDARD.decode(s).map_err(|e| {
        let message = match e {
            DecodeError::InvalidByte(at, b'=') => format!("misplaced `=` padding at byte {at}"),
            DecodeError::InvalidByte(at, _) => {
                let ch = s
                    .get(at..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or('?');
                format!("{ch:?} at byte {at} is not in the base64 alphabet")
            }
            DecodeError::InvalidLength(_) => format!(
                "{} characters is not a multiple of 4 (`=` padding is required)",
                s.len()
            ),
            DecodeError::InvalidLastSymbol(at, _) => {
                format!("non-zero unused bits at byte {at}, before the `=` padding")
            }
            DecodeError::InvalidPadding => {
                "missing or misplaced `=` padding (canonical padding is required)".to_owned()
            }
        };
        Problem::new(ForwardedErrorKind::BadBase64, message)
    })
}

/// Decodes strict PEM holding one or more `CERTIFICATE` blocks (see the module documentation),
/// checking each as DER.
pub(super) fn pem_certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, Problem> {
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
                if let Some(at) = line.bytes().position(|c| !is_base64_char(c)) {
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
pub(super) fn check_der(der: &[u8]) -> Result<(), Problem> {
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

/// The DER of the one `CERTIFICATE` block in `pem`; more than one is an error.
pub(super) fn one_pem_certificate(pem: &str) -> Result<CertificateDer<'static>, Problem> {
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
