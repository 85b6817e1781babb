//! Checks `mtls_core::spiffe` against the external SPIFFE ID vectors in
//! `tests/data/spiffe_ids.tsv` (sources and licences: `tests/data/README.md`).
//!
//! Every row is checked and every mismatch is collected, so one run reports
//! all failures. Rows are not skipped; where this crate deliberately differs
//! from a row's `expected` column the row is still checked, against our own
//! expectation:
//!
//! * `DISAGREE` rows whose `expected` is `valid` record what rust-spiffe or
//!   java-spiffe do (fold upper case). We follow go-spiffe and require a
//!   rejection: `wrong_scheme` when the scheme is not exactly `spiffe://`,
//!   otherwise `bad_trust_domain_char`. `DISAGREE` rows marked `invalid` are
//!   go-spiffe's own expectations and are checked as written.
//! * [`OVERRIDES`] lists the few other rows where a project decision differs
//!   from the source's answer; each override must match exactly one row.
//!
//! Inputs are unescaped to bytes. A row whose bytes are not UTF-8 cannot be
//! passed to our `&str` API; such a row must be `invalid`, and it is checked
//! through its lossy decoding (U+FFFD is an invalid character in every
//! position, so the expected error kind is unchanged). The file currently has
//! no such rows; the count is asserted so a change is noticed.

use mtls_core::{SpiffeId, SpiffeIdError, SpiffeIdErrorKind, TrustDomain};

const TSV_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/spiffe_ids.tsv");

const HEADER: &str =
    "source\tsource_ref\tapi\tinput\texpected\ttrust_domain\tpath\terror_kind\tnote";

/// Data rows in the file (the header excluded).
const EXPECTED_ROWS: usize = 930;
/// Rows whose note starts with `DISAGREE`.
const EXPECTED_DISAGREE_ROWS: usize = 89;
/// Rows whose input bytes are not valid UTF-8.
const EXPECTED_NON_UTF8_ROWS: usize = 0;

/// What we expect from one row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Accepted, with this trust domain (may be empty) and path.
    Valid { trust_domain: String, path: String },
    /// Rejected, with this kind when one is given.
    Invalid(Option<SpiffeIdErrorKind>),
}

/// A row where a project decision overrides the row's own answer.
struct Override {
    api: &'static str,
    input: fn() -> String,
    expect: fn() -> Expect,
    why: &'static str,
}

const OVERRIDES: &[Override] = &[
    Override {
        api: "parse_id",
        input: || format!("spiffe://example.org/{}", "a".repeat(2028)),
        expect: || Expect::Invalid(Some(SpiffeIdErrorKind::TooLong)),
        why: "2049-byte ID: rust-spiffe parses it, but our decision caps IDs at 2048 bytes",
    },
    Override {
        api: "validate_path",
        input: || "   ".to_owned(),
        expect: || Expect::Invalid(Some(SpiffeIdErrorKind::MissingLeadingSlash)),
        why: "java-spiffe trims whitespace to empty; go-spiffe does not trim, so no leading slash",
    },
];

struct Row<'a> {
    line: usize,
    api: &'a str,
    input: Vec<u8>,
    raw_input: &'a str,
    expected: &'a str,
    trust_domain: String,
    path: String,
    error_kind: &'a str,
    note: &'a str,
}

/// Undoes the TSV escaping: `\\` is a backslash, `\xNN` a byte, all else literal.
fn unescape(field: &str) -> Result<Vec<u8>, String> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = field
                    .get(i + 2..i + 4)
                    .ok_or_else(|| format!("truncated \\x escape in {field:?}"))?;
                let byte = u8::from_str_radix(hex, 16)
                    .map_err(|e| format!("bad \\x escape {hex:?} in {field:?}: {e}"))?;
                out.push(byte);
                i += 4;
            }
            _ => return Err(format!("bad escape at byte {i} in {field:?}")),
        }
    }
    Ok(out)
}

fn unescape_text(field: &str) -> Result<String, String> {
    String::from_utf8(unescape(field)?).map_err(|e| format!("{field:?} is not UTF-8: {e}"))
}

fn parse_row(line: usize, text: &str) -> Result<Row<'_>, String> {
    let cols: Vec<&str> = text.split('\t').collect();
    let [_source, _source_ref, api, input, expected, trust_domain, path, error_kind, note] =
        cols[..]
    else {
        return Err(format!("expected 9 columns, found {}", cols.len()));
    };
    Ok(Row {
        line,
        api,
        input: unescape(input)?,
        raw_input: input,
        expected,
        trust_domain: unescape_text(trust_domain)?,
        path: unescape_text(path)?,
        error_kind,
        note,
    })
}

/// Maps the TSV's normalised error names to our kinds (written out here rather
/// than using `SpiffeIdErrorKind::as_str`, so the test does not trust the code).
fn kind_from_tsv(name: &str) -> Result<SpiffeIdErrorKind, String> {
    Ok(match name {
        "empty" => SpiffeIdErrorKind::Empty,
        "wrong_scheme" => SpiffeIdErrorKind::WrongScheme,
        "missing_trust_domain" => SpiffeIdErrorKind::MissingTrustDomain,
        "bad_trust_domain_char" => SpiffeIdErrorKind::BadTrustDomainChar,
        "bad_path_segment_char" => SpiffeIdErrorKind::BadPathSegmentChar,
        "dot_segment" => SpiffeIdErrorKind::DotSegment,
        "empty_segment" => SpiffeIdErrorKind::EmptySegment,
        "trailing_slash" => SpiffeIdErrorKind::TrailingSlash,
        "missing_leading_slash" => SpiffeIdErrorKind::MissingLeadingSlash,
        "too_long" => SpiffeIdErrorKind::TooLong,
        other => return Err(format!("unknown error_kind {other:?}")),
    })
}

/// Our expectation for a row, and whether an override was used (its index).
fn expectation(row: &Row<'_>, input: &str) -> Result<(Expect, Option<usize>), String> {
    for (i, o) in OVERRIDES.iter().enumerate() {
        if o.api == row.api && (o.input)() == input {
            return Ok(((o.expect)(), Some(i)));
        }
    }
    let from_row = match row.expected {
        "valid" => Expect::Valid {
            trust_domain: row.trust_domain.clone(),
            path: row.path.clone(),
        },
        "invalid" if row.error_kind.is_empty() => Expect::Invalid(None),
        "invalid" => Expect::Invalid(Some(kind_from_tsv(row.error_kind)?)),
        other => return Err(format!("unknown expected value {other:?}")),
    };
    if row.note.starts_with("DISAGREE") && row.expected == "valid" {
        // Go-spiffe's answer: the scheme check comes first, then trust-domain chars.
        let looks_like_id = row.api == "parse_id" || input.contains(":/");
        let kind = if looks_like_id && !input.starts_with("spiffe://") {
            SpiffeIdErrorKind::WrongScheme
        } else {
            SpiffeIdErrorKind::BadTrustDomainChar
        };
        // Where the note names go-spiffe's error, it must agree with ours.
        if let Some(named) = row.note.split('(').nth(1).and_then(|s| s.split(')').next()) {
            if kind_from_tsv(named)? != kind {
                return Err(format!("note names {named:?} but we derived {kind:?}"));
            }
        }
        return Ok((Expect::Invalid(Some(kind)), None));
    }
    Ok((from_row, None))
}

/// What our code does with a row's input, in the same terms as `Expect`.
fn actual(api: &str, input: &str) -> Result<Expect, String> {
    let outcome = |r: Result<(String, String), SpiffeIdError>| match r {
        Ok((trust_domain, path)) => Expect::Valid { trust_domain, path },
        Err(e) => Expect::Invalid(Some(e.kind())),
    };
    Ok(match api {
        "parse_id" => outcome(
            SpiffeId::parse(input)
                .map(|id| (id.trust_domain().as_str().to_owned(), id.path().to_owned())),
        ),
        "parse_trust_domain" => {
            outcome(TrustDomain::parse(input).map(|td| (td.as_str().to_owned(), String::new())))
        }
        "validate_path" => {
            outcome(SpiffeId::validate_path(input).map(|()| (String::new(), input.to_owned())))
        }
        "validate_segment" => outcome(
            SpiffeId::validate_path_segment(input).map(|()| (String::new(), format!("/{input}"))),
        ),
        other => return Err(format!("unknown api {other:?}")),
    })
}

/// Extra consistency checks for an accepted `parse_id` row.
fn check_valid_id(input: &str) -> Result<(), String> {
    let id = SpiffeId::parse(input).map_err(|e| e.to_string())?;
    if id.to_string() != input {
        return Err(format!("Display gave {:?}", id.to_string()));
    }
    let td = TrustDomain::parse(input).map_err(|e| format!("TrustDomain::parse: {e}"))?;
    if &td != id.trust_domain() {
        return Err(format!("TrustDomain::parse gave {td:?}"));
    }
    let rebuilt = SpiffeId::from_path(id.trust_domain(), id.path()).map_err(|e| e.to_string())?;
    if rebuilt != id {
        return Err(format!("from_path rebuilt {rebuilt:?}"));
    }
    Ok(())
}

fn check_row(row: &Row<'_>, non_utf8: &mut usize, used: &mut [usize]) -> Result<(), String> {
    let input = match String::from_utf8(row.input.clone()) {
        Ok(s) => s,
        Err(_) => {
            *non_utf8 += 1;
            if row.expected != "invalid" {
                return Err("input is not UTF-8 but the row expects it to be valid".to_owned());
            }
            String::from_utf8_lossy(&row.input).into_owned()
        }
    };
    let (expect, override_used) = expectation(row, &input)?;
    if let Some(i) = override_used {
        used[i] += 1;
    }
    let got = actual(row.api, &input)?;
    let matches = match (&expect, &got) {
        (Expect::Invalid(None), Expect::Invalid(_)) => true,
        (e, g) => e == g,
    };
    if !matches {
        return Err(format!("expected {expect:?}, got {got:?}"));
    }
    if row.api == "parse_id" && matches!(got, Expect::Valid { .. }) {
        check_valid_id(&input)?;
    }
    Ok(())
}

#[test]
fn spiffe_id_vectors() {
    let tsv = std::fs::read_to_string(TSV_PATH).expect("read tests/data/spiffe_ids.tsv");
    let mut lines = tsv.lines().enumerate();
    assert_eq!(
        lines.next().map(|(_, l)| l),
        Some(HEADER),
        "unexpected TSV header"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut disagree = 0;
    let mut non_utf8 = 0;
    let mut overrides_used = vec![0; OVERRIDES.len()];

    for (index, text) in lines {
        let line = index + 1;
        let row = match parse_row(line, text) {
            Ok(row) => row,
            Err(e) => {
                failures.push(format!("line {line}: malformed row: {e}"));
                continue;
            }
        };
        checked += 1;
        if row.note.starts_with("DISAGREE") {
            disagree += 1;
        }
        if let Err(e) = check_row(&row, &mut non_utf8, &mut overrides_used) {
            failures.push(format!(
                "line {} [{}] {:?}: {e}",
                row.line, row.api, row.raw_input
            ));
        }
    }

    for (o, &n) in OVERRIDES.iter().zip(&overrides_used) {
        if n != 1 {
            failures.push(format!(
                "override used {n} times instead of once: {}",
                o.why
            ));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {checked} SPIFFE vector rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, EXPECTED_ROWS, "rows checked");
    assert_eq!(disagree, EXPECTED_DISAGREE_ROWS, "DISAGREE rows");
    assert_eq!(non_utf8, EXPECTED_NON_UTF8_ROWS, "non-UTF-8 rows");
}

#[test]
fn unescape_handles_backslash_and_hex_bytes() {
    assert_eq!(
        unescape(r"a\\b\x00\xC3\xA9\xFF"),
        Ok(b"a\\b\x00\xC3\xA9\xFF".to_vec())
    );
    assert!(unescape(r"\q").is_err());
    assert!(unescape(r"\x4").is_err());
}
