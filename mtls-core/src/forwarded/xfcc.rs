//! Envoy's `x-forwarded-client-cert` (XFCC).

use super::*;

// ---------------------------------------------------------------------------------------------
// x-forwarded-client-cert
// ---------------------------------------------------------------------------------------------

/// One element of an `x-forwarded-client-cert` header: what one proxy says about the client
/// certificate it saw.
///
/// See the [module documentation](super) for how the header is parsed. Values are returned as they
/// appeared in the header, with quotes removed and `\"` unescaped; `Cert` and `Chain` are also
/// percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XfccElement {
    pub(super) by: Vec<String>,
    pub(super) hash: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) chain: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) uri: Vec<String>,
    pub(super) dns: Vec<String>,
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
/// [module documentation](super) for the syntax, the decisions and what is checked when.
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

pub(super) fn parse_xfcc_inner(header: &str) -> Result<Vec<XfccElement>, Problem> {
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

/// The XFCC keys this parser knows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum XfccKey {
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
pub(super) struct XfccParser<'a> {
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
pub(super) fn store(element: &mut XfccElement, key: XfccKey, value: String) -> Result<(), Problem> {
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
pub(super) fn is_token(s: &str) -> bool {
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
pub(super) fn check_hash(hash: &str, der: &[u8]) -> Result<(), Problem> {
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
