//! Checks [`DnsPattern`] against external vectors from webpki, Go `crypto/x509`, CPython and
//! RFC 6125.
//!
//! `tests/data/dns_wildcards.tsv` holds the `dns_san` rows of the project's shared vectors on which
//! webpki, Go and Python all agree (`all3:*`) or disagree (`DISAGREE ...`). Sources, licences, the
//! escaping rule, how a row is read and every decision are in `tests/data/README.md`.
//!
//! In the vectors, `pattern` is the name a certificate *presents* and `host` is the *reference*
//! name; in our API the policy side is the pattern. So a row is read one of two ways:
//!
//! * presented name without `*`: the reference name is the policy, `DnsPattern::parse(host)`, and
//!   it is matched against the presented name (a reference name that does not parse as a policy
//!   matches nothing);
//! * presented name with `*`: the presented wildcard is used as a policy,
//!   `DnsPattern::parse(pattern)`, and matched against the reference name. In addition, the
//!   reference name used as a policy must not expand the presented wildcard: it may match it only
//!   when both are the same name.
//!
//! `all3` rows must agree with the libraries unless listed in [`ALLOWLIST`] (a README decision
//! wins); every `DISAGREE` row must be listed in [`DISAGREEMENTS`] with what we do. All mismatches
//! are reported at once.

use mtls_core::{normalize_dns_name, DnsPattern};

const VECTORS: &str = include_str!("data/dns_wildcards.tsv");

const HEADER: &str =
    "kind\tpattern\thost\tresult\tsource\twebpki_model\tgo_model\tpython_model\tagreement\tref\tnote";

/// `all3:match` plus `all3:no_match` rows in the file.
const EXPECTED_ALL3_ROWS: usize = 163;
/// `DISAGREE` rows in the file.
const EXPECTED_DISAGREE_ROWS: usize = 33;
/// Rows per reading: reference name as policy (parsed, rejected at parse), presented wildcard as
/// policy (parsed, rejected at parse).
const EXPECTED_READINGS: [usize; 4] = [57, 12, 55, 72];
/// Rows whose presented name contains `*` and whose reference name parses as a policy, on which the
/// no-expansion rule is checked.
const EXPECTED_NO_EXPANSION_CHECKS: usize = 117;

/// A row whose expected outcome is set by one of our decisions rather than by the libraries.
struct Override {
    /// Line number in `tests/data/dns_wildcards.tsv` (the header is line 1).
    line: usize,
    /// The row's `pattern` column (decoded): the name the certificate presents.
    presented: &'static str,
    /// The row's `host` column (decoded): the reference name.
    reference: &'static str,
    /// Whether we match.
    ours: bool,
    /// Which decision applies (see `tests/data/README.md`).
    why: &'static str,
}

/// `all3` rows that contradict a decision in the shared README; the decision wins.
const ALLOWLIST: &[Override] = &[
    Override {
        line: 19,
        presented: "example.",
        reference: "example",
        ours: true,
        why: "T1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 23,
        presented: "example.com.",
        reference: "example.com",
        ours: true,
        why: "T1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 96,
        presented: "foo.com.",
        reference: "foo.com",
        ours: true,
        why: "T1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 99,
        presented: "f.",
        reference: "f",
        ours: true,
        why: "T1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 102,
        presented: "*.bar.foo.com.",
        reference: "www-3.bar.foo.com",
        ours: true,
        why: "T1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 105,
        presented: "*.com.",
        reference: "example.com",
        ours: true,
        why: "T1 + W1: trailing dot ignored; a wildcard may stand over a single label",
    },
    Override {
        line: 110,
        presented: "*.co.uk.",
        reference: "foo.co.uk",
        ours: true,
        why: "T1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 129,
        presented: "www.example.com",
        reference: "*.example.com",
        ours: true,
        why: "R1: a reference `*` is literal to the libraries; our policy `*` covers one label",
    },
    Override {
        line: 134,
        presented: "example.com.",
        reference: "example.com",
        ours: true,
        why: "T1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 137,
        presented: "*.com.",
        reference: "example.com",
        ours: true,
        why: "T1 + W1: trailing dot ignored; a wildcard may stand over a single label",
    },
];

/// Every `DISAGREE` row, with what we do.
const DISAGREEMENTS: &[Override] = &[
    Override {
        line: 17,
        presented: "example.",
        reference: "example.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 18,
        presented: "example",
        reference: "example.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 21,
        presented: "example.com.",
        reference: "example.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 22,
        presented: "example.com",
        reference: "example.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 53,
        presented: "*.org",
        reference: "test.org",
        ours: true,
        why: "D2: a policy wildcard may stand over a single label",
    },
    Override {
        line: 83,
        presented: "*.example",
        reference: "test.example",
        ours: true,
        why: "D2: a policy wildcard may stand over a single label",
    },
    Override {
        line: 85,
        presented: "*.com",
        reference: "foo.com",
        ours: true,
        why: "D2: a policy wildcard may stand over a single label",
    },
    Override {
        line: 86,
        presented: "*.us",
        reference: "foo.us",
        ours: true,
        why: "D2: a policy wildcard may stand over a single label",
    },
    Override {
        line: 91,
        presented: "*.xn--mgbaam7a8h",
        reference: "example.xn--mgbaam7a8h",
        ours: true,
        why: "D2: a policy wildcard may stand over a single label",
    },
    Override {
        line: 97,
        presented: "foo.com",
        reference: "foo.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 98,
        presented: "foo.com.",
        reference: "foo.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 100,
        presented: "f",
        reference: "f.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 101,
        presented: "f.",
        reference: "f.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 103,
        presented: "*.bar.foo.com",
        reference: "www-3.bar.foo.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 104,
        presented: "*.bar.foo.com.",
        reference: "www-3.bar.foo.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 106,
        presented: "*.com",
        reference: "example.com.",
        ours: true,
        why: "D1 + D2: trailing dot ignored; single-label wildcard base allowed",
    },
    Override {
        line: 107,
        presented: "*.com.",
        reference: "example.com.",
        ours: true,
        why: "D1 + D2: trailing dot ignored; single-label wildcard base allowed",
    },
    Override {
        line: 108,
        presented: "*.",
        reference: "foo.",
        ours: false,
        why: "D3: a lone `*` (or `*.`) is rejected at parse",
    },
    Override {
        line: 111,
        presented: "*.co.uk.",
        reference: "foo.co.uk.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 120,
        presented: "*.example.com",
        reference: "www.example.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 122,
        presented: "*.example.com",
        reference: "https://www.example.com",
        ours: false,
        why: "D4: malformed names never match; such policy text is rejected at parse",
    },
    Override {
        line: 123,
        presented: "*.example..com",
        reference: "www.example..com",
        ours: false,
        why: "D4: malformed names never match; such policy text is rejected at parse",
    },
    Override {
        line: 124,
        presented: "www.example..com",
        reference: "www.example..com",
        ours: false,
        why: "D4: malformed names never match; such policy text is rejected at parse",
    },
    Override {
        line: 132,
        presented: ".",
        reference: ".",
        ours: false,
        why: "D4: malformed names never match; such policy text is rejected at parse",
    },
    Override {
        line: 133,
        presented: "example.com",
        reference: "example.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 135,
        presented: "example.com.",
        reference: "example.com.",
        ours: true,
        why: "D1: one trailing dot is ignored on both sides",
    },
    Override {
        line: 136,
        presented: "*.com.",
        reference: "example.com.",
        ours: true,
        why: "D1 + D2: trailing dot ignored; single-label wildcard base allowed",
    },
    Override {
        line: 138,
        presented: "*.com",
        reference: "example.com",
        ours: true,
        why: "D2: a policy wildcard may stand over a single label",
    },
    Override {
        line: 139,
        presented: "*.com",
        reference: "example.com.",
        ours: true,
        why: "D1 + D2: trailing dot ignored; single-label wildcard base allowed",
    },
    Override {
        line: 140,
        presented: "foo:bar",
        reference: "foo:bar",
        ours: false,
        why: "D4: malformed names never match; such policy text is rejected at parse",
    },
    Override {
        line: 141,
        presented: "*.foo:bar",
        reference: "xxx.foo:bar",
        ours: false,
        why: "D4: malformed names never match; such policy text is rejected at parse",
    },
    Override {
        line: 149,
        presented: "[2001:4860:4860::8888]",
        reference: "[2001:4860:4860::8888]",
        ours: false,
        why: "D5: an IP address is not a DNS pattern (use an IP rule)",
    },
    Override {
        line: 167,
        presented: "null.python.org\0example.org",
        reference: "null.python.org\0example.org",
        ours: false,
        why: "D4: malformed names never match; such policy text is rejected at parse",
    },
];

/// One parsed line of the vectors file.
struct Row {
    line: usize,
    kind: String,
    presented: String,
    reference: String,
    agreement: String,
}

/// Decodes a `pattern` or `host` field: bytes 0x21-0x7E literal, `\\` for a backslash, `\xNN` for
/// any other byte.
fn unescape(field: &str) -> Result<String, String> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => match bytes.get(i + 1) {
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
                _ => return Err(format!("unknown escape in {field:?}")),
            },
            byte @ 0x21..=0x7e => {
                out.push(byte);
                i += 1;
            }
            byte => return Err(format!("unescaped byte {byte:#04x} in {field:?}")),
        }
    }
    String::from_utf8(out).map_err(|e| format!("{field:?} is not UTF-8 once decoded: {e}"))
}

fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(HEADER) => {}
        other => return Err(format!("unexpected header {other:?}")),
    }
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let fields: Vec<&str> = line.split('\t').collect();
        let [kind, pattern, host, _result, _source, _webpki, _go, _python, agreement, _ref, _note] =
            fields[..]
        else {
            return Err(format!(
                "line {number}: expected 11 columns, found {}",
                fields.len()
            ));
        };
        rows.push(Row {
            line: number,
            kind: kind.to_owned(),
            presented: unescape(pattern).map_err(|e| format!("line {number}: pattern: {e}"))?,
            reference: unescape(host).map_err(|e| format!("line {number}: host: {e}"))?,
            agreement: agreement.to_owned(),
        });
    }
    Ok(rows)
}

/// How a row was read, for messages.
#[derive(Debug)]
enum Reading {
    /// The reference name is the policy; it parsed.
    ReferenceAsPolicy,
    /// The reference name is the policy; it was rejected at parse, so nothing matches.
    ReferenceRejectedAtParse,
    /// The presented wildcard is the policy; it parsed.
    PresentedAsPolicy,
    /// The presented wildcard is the policy; it was rejected at parse, so nothing matches.
    PresentedRejectedAtParse,
}

/// Our outcome for a row under the reading that fits it (see the file's top comment).
fn our_outcome(presented: &str, reference: &str) -> (bool, Reading) {
    if presented.contains('*') {
        match DnsPattern::parse(presented) {
            Ok(policy) => (policy.matches(reference), Reading::PresentedAsPolicy),
            Err(_) => (false, Reading::PresentedRejectedAtParse),
        }
    } else {
        match DnsPattern::parse(reference) {
            Ok(policy) => (policy.matches(presented), Reading::ReferenceAsPolicy),
            Err(_) => (false, Reading::ReferenceRejectedAtParse),
        }
    }
}

/// A presented name containing `*` is never expanded: the reference name used as a policy matches
/// it only when both normalise to the same text. Returns `Ok(false)` when the reference name is
/// rejected as a policy (nothing to check), `Ok(true)` when the rule held, and a message when it
/// did not.
fn check_no_expansion(row: &Row) -> Result<bool, String> {
    let Ok(policy) = DnsPattern::parse(&row.reference) else {
        return Ok(false);
    };
    let same_name = normalize_dns_name(&row.presented).is_some_and(|name| name == policy.as_str());
    let got = policy.matches(&row.presented);
    if got == same_name {
        return Ok(true);
    }
    Err(format!(
        "line {}: policy {:?} {} presented wildcard {:?} (a presented `*` must match only an \
         identical policy)",
        row.line,
        policy.as_str(),
        if got { "matched" } else { "did not match" },
        row.presented,
    ))
}

fn find<'a>(table: &'a [Override], row: &Row) -> Option<&'a Override> {
    table.iter().find(|entry| entry.line == row.line)
}

/// Checks that a table entry still describes its row.
fn check_entry(entry: &Override, row: &Row) -> Option<String> {
    (entry.presented != row.presented || entry.reference != row.reference).then(|| {
        format!(
            "line {}: table entry is for ({:?}, {:?}) but the row is ({:?}, {:?})",
            row.line, entry.presented, entry.reference, row.presented, row.reference
        )
    })
}

#[test]
fn dns_san_vectors_follow_our_rules() {
    let rows = match parse_rows(VECTORS) {
        Ok(rows) => rows,
        Err(e) => panic!("cannot read tests/data/dns_wildcards.tsv: {e}"),
    };

    let mut failures = Vec::new();
    let mut all3 = 0usize;
    let mut disagree = 0usize;
    let mut no_expansion_checked = 0usize;
    let mut readings = [0usize; 4];
    let mut allowlisted = Vec::new();
    let mut decided = Vec::new();

    for row in &rows {
        if row.kind != "dns_san" {
            failures.push(format!(
                "line {}: kind {:?}; only dns_san rows belong in this file",
                row.line, row.kind
            ));
            continue;
        }
        if row.presented.contains('*') {
            match check_no_expansion(row) {
                Ok(true) => no_expansion_checked += 1,
                Ok(false) => {}
                Err(message) => failures.push(message),
            }
        }
        let (got, reading) = our_outcome(&row.presented, &row.reference);
        match reading {
            Reading::ReferenceAsPolicy => readings[0] += 1,
            Reading::ReferenceRejectedAtParse => readings[1] += 1,
            Reading::PresentedAsPolicy => readings[2] += 1,
            Reading::PresentedRejectedAtParse => readings[3] += 1,
        }

        let expected = match row.agreement.as_str() {
            "all3:match" | "all3:no_match" => {
                all3 += 1;
                let libraries = row.agreement == "all3:match";
                match find(ALLOWLIST, row) {
                    Some(entry) => {
                        allowlisted.push(row.line);
                        failures.extend(check_entry(entry, row));
                        if entry.ours == libraries {
                            failures.push(format!(
                                "line {}: allowlisted but the libraries already say {libraries}; \
                                 remove the entry",
                                row.line
                            ));
                        }
                        (entry.ours, entry.why)
                    }
                    None => (libraries, "webpki, Go and Python agree"),
                }
            }
            agreement if agreement.starts_with("DISAGREE") => {
                disagree += 1;
                match find(DISAGREEMENTS, row) {
                    Some(entry) => {
                        decided.push(row.line);
                        failures.extend(check_entry(entry, row));
                        (entry.ours, entry.why)
                    }
                    None => {
                        failures.push(format!(
                            "line {}: DISAGREE row ({:?}, {:?}) has no decision; we say {got} \
                             ({reading:?}); add it to DISAGREEMENTS and tests/data/README.md",
                            row.line, row.presented, row.reference
                        ));
                        continue;
                    }
                }
            }
            other => {
                failures.push(format!("line {}: unknown agreement {other:?}", row.line));
                continue;
            }
        };
        let (want, why) = expected;
        if got != want {
            failures.push(format!(
                "line {}: presented {:?}, reference {:?}: expected {want} ({why}), got {got} \
                 ({reading:?})",
                row.line, row.presented, row.reference
            ));
        }
    }

    for (table, used, name) in [
        (ALLOWLIST, &allowlisted, "ALLOWLIST"),
        (DISAGREEMENTS, &decided, "DISAGREEMENTS"),
    ] {
        for entry in table {
            if !used.contains(&entry.line) {
                failures.push(format!(
                    "{name} entry for line {} matches no row of its kind",
                    entry.line
                ));
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} problem(s) in {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(all3, EXPECTED_ALL3_ROWS, "all3 rows checked");
    assert_eq!(disagree, EXPECTED_DISAGREE_ROWS, "DISAGREE rows checked");
    assert_eq!(
        readings, EXPECTED_READINGS,
        "rows per reading: [reference as policy, reference rejected at parse, presented wildcard \
         as policy, presented wildcard rejected at parse]"
    );
    assert_eq!(
        no_expansion_checked, EXPECTED_NO_EXPANSION_CHECKS,
        "rows checked for no expansion of a presented `*`"
    );
    assert_eq!(rows.len(), all3 + disagree, "every row was checked");
    assert_eq!(allowlisted.len(), ALLOWLIST.len(), "allowlist entries used");
    assert_eq!(decided.len(), DISAGREEMENTS.len(), "decisions used");
}

#[test]
fn unescape_decodes_the_shared_escaping_rule() {
    assert_eq!(unescape(r"a\\b").as_deref(), Ok(r"a\b"));
    assert_eq!(unescape(r"a\x00b\x20c").as_deref(), Ok("a\0b c"));
    assert_eq!(unescape(r"\xc3\xa9").as_deref(), Ok("é"));
}

#[test]
fn unescape_rejects_malformed_fields() {
    assert!(unescape("a b").is_err());
    assert!(unescape(r"a\q").is_err());
    assert!(unescape(r"a\x4").is_err());
    assert!(unescape(r"\xff").is_err());
}
