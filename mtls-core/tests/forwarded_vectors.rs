//! Checks `mtls_core::forwarded` against external vectors: Envoy `x-forwarded-client-cert`
//! parse and generation cases collected from Envoy and five third-party parsers
//! (`tests/data/xfcc.json`), and RFC 9440 Appendix A (`tests/data/rfc9440/`).
//!
//! Sources, licences and every decision are in `tests/data/README.md`.
//!
//! Every XFCC parse case must match the vectors unless it is listed in [`DEVIATIONS`], which says
//! which decision wins and what we do instead; an entry that no longer deviates fails the test
//! (the list cannot go stale). Cases the vectors expect to fail must fail with the kind in
//! [`ERROR_KINDS`]. All mismatches are reported at once.

use mtls_core::forwarded::{
    parse_client_cert, parse_client_cert_chain, parse_xfcc, ForwardedErrorKind, XfccElement,
};
use serde_json::{json, Value};

const XFCC_JSON: &str = include_str!("data/xfcc.json");
const EXPECTED_PARSE_CASES: usize = 29;
const EXPECTED_GENERATION_CASES: usize = 11;
const EXPECTED_TRUSTED_PROXY_CASES: usize = 6;
/// Non-null `incoming` (10) plus non-null `outgoing` (8) headers in the generation cases.
const EXPECTED_GENERATED_HEADERS: usize = 18;

/// What we do with a parse case whose expectation contradicts one of our decisions.
enum Ours {
    /// We accept the header, giving these elements (JSON in the vectors' shape).
    Elements(&'static str),
    /// We reject the header with this kind.
    Error(ForwardedErrorKind),
}

/// A parse case on which one of our decisions overrides the vector's expectation.
struct Deviation {
    id: &'static str,
    why: &'static str,
    ours: Ours,
}

const DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "frederick888-multi",
        why: "inside quotes only `\\\"` is an escape: the RFC 2253 `\\,` in the Subject is kept \
              verbatim (as alecholmes and Istio expect for the same header); Frederick888 drops \
              the backslash",
        ours: Ours::Elements(
            r#"[{"by": [], "hash": "hash",
                 "cert": "-----BEGIN%20CERTIFICATE-----%0cert%0A-----END%20CERTIFICATE-----%0A",
                 "chain": null, "subject": "CN=hello,OU=hello,O=Acme\\, Inc.", "uri": [""],
                 "dns": ["hello.west.example.com", "hello.east.example.com"]},
                {"by": ["spiffe://mesh.example.com/ns/hellons/sa/hellosa"], "hash": "again",
                 "cert": null, "chain": null, "subject": "",
                 "uri": ["spiffe://mesh.example.com/ns/otherns/sa/othersa"], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "frederick888-empty-subject",
        why: "`Subject=\"\"` is kept as an empty subject, Some(\"\") (Envoy writes the key even \
              for an empty subject; the Istio and alecholmes vectors expect \"\"); Frederick888's \
              element list maps it to None",
        ours: Ours::Elements(
            r#"[{"by": ["http://example.com"], "hash": null, "cert": null, "chain": null,
                 "subject": "", "uri": [], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "frederick888-ruby-unknown-key",
        why: "unknown keys are ignored",
        ours: Ours::Elements(
            r#"[{"by": ["http://example.com"], "hash": null, "cert": null, "chain": null,
                 "subject": null, "uri": [], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "alecholmes-err-unknown-key",
        why: "unknown keys are ignored",
        ours: Ours::Elements(
            r#"[{"by": [], "hash": null, "cert": null, "chain": null, "subject": null,
                 "uri": [], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "alecholmes-err-subject-not-dn",
        why: "Subject is opaque, not parsed as a distinguished name",
        ours: Ours::Elements(
            r#"[{"by": [], "hash": null, "cert": null, "chain": null, "subject": "random",
                 "uri": [], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "alecholmes-err-subject-bad-dn-attr",
        why: "Subject is opaque, not parsed as a distinguished name",
        ours: Ours::Elements(
            r#"[{"by": [], "hash": null, "cert": null, "chain": null, "subject": "random=hello",
                 "uri": [], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "xfccsharp-empty-elements",
        why: "an empty element is a syntax error (Envoy never writes one; the vector's note \
              recommends rejecting, as Frederick888 and alecholmes do)",
        ours: Ours::Error(ForwardedErrorKind::Syntax),
    },
    Deviation {
        id: "salesforce-legacy-san",
        why: "unknown keys are ignored: the legacy `SAN` key is not mapped to `URI`",
        ours: Ours::Elements(
            r#"[{"by": ["http://frontend.lyft.com"],
                 "hash": "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688",
                 "cert": null, "chain": null, "subject": null, "uri": [], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "salesforce-compound-legacy",
        why: "unknown keys are ignored: the legacy `SAN` key is not mapped to `URI`",
        ours: Ours::Elements(
            r#"[{"by": ["http://frontend.lyft.com"],
                 "hash": "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688",
                 "cert": null, "chain": null, "subject": null, "uri": [], "dns": []},
                {"by": ["http://backend.lyft.com"],
                 "hash": "9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e",
                 "cert": null, "chain": null, "subject": null, "uri": [], "dns": []}]"#,
        ),
    },
    Deviation {
        id: "salesforce-escaped-quote",
        why: "unknown keys are ignored: the legacy `SAN` key is not mapped to `URI`",
        ours: Ours::Elements(
            r#"[{"by": ["http://frontend.lyft.com"],
                 "hash": "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688",
                 "cert": null, "chain": null,
                 "subject": "/C=US/ST=CA/L=\"San Francisco\"/OU=Lyft/CN=Test Client",
                 "uri": [], "dns": []}]"#,
        ),
    },
];

/// The kind we report for each parse case the vectors expect to fail (and we do too).
const ERROR_KINDS: &[(&str, ForwardedErrorKind)] = &[
    ("frederick888-dup-hash", ForwardedErrorKind::DuplicateKey),
    ("frederick888-trailing", ForwardedErrorKind::Syntax),
    ("alecholmes-err-bare-key", ForwardedErrorKind::Syntax),
    ("alecholmes-err-key-no-eq", ForwardedErrorKind::Syntax),
    ("salesforce-mismatched-quotes", ForwardedErrorKind::Syntax),
    ("istio-junk", ForwardedErrorKind::Syntax),
];

fn vectors() -> Value {
    serde_json::from_str(XFCC_JSON).expect("tests/data/xfcc.json is JSON")
}

fn cases<'a>(vectors: &'a Value, section: &str) -> &'a [Value] {
    vectors[section]
        .as_array()
        .unwrap_or_else(|| panic!("section {section} is an array"))
}

/// Test-side percent-decoding of the vectors' raw `cert` / `chain` strings (our parser returns
/// them decoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII hex");
            out.push(u8::from_str_radix(hex, 16).expect("valid escape in the vectors"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// The vectors' element JSON with `cert` and `chain` percent-decoded.
fn normalise(elements: &Value) -> Value {
    let mut elements = elements.clone();
    for element in elements.as_array_mut().expect("elements is an array") {
        for key in ["cert", "chain"] {
            if let Some(raw) = element[key].as_str() {
                element[key] = Value::String(percent_decode(raw));
            }
        }
    }
    elements
}

/// Our elements in the vectors' JSON shape.
fn describe(elements: &[XfccElement]) -> Value {
    Value::Array(
        elements
            .iter()
            .map(|e| {
                json!({
                    "by": e.by(),
                    "hash": e.hash(),
                    "cert": e.cert_pem(),
                    "chain": e.chain_pem(),
                    "subject": e.subject(),
                    "uri": e.uri(),
                    "dns": e.dns(),
                })
            })
            .collect(),
    )
}

fn show(result: &Result<Vec<XfccElement>, mtls_core::forwarded::ForwardedError>) -> String {
    match result {
        Ok(elements) => describe(elements).to_string(),
        Err(err) => format!("error {:?}: {err}", err.kind()),
    }
}

#[test]
fn xfcc_parse_cases() {
    let vectors = vectors();
    let cases = cases(&vectors, "parse_cases");
    assert_eq!(cases.len(), EXPECTED_PARSE_CASES);
    let ids: Vec<&str> = cases
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    let mut mismatches = Vec::new();
    for id in DEVIATIONS
        .iter()
        .map(|d| d.id)
        .chain(ERROR_KINDS.iter().map(|e| e.0))
    {
        if !ids.contains(&id) {
            mismatches.push(format!("{id}: listed in the test but not in xfcc.json"));
        }
    }
    let (mut as_written, mut deviating) = (0, 0);
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let header = case["header"].as_str().expect("header");
        let result = parse_xfcc(header);
        let expect = case["expect"].as_str().expect("expect");
        let agrees = match (expect, &result) {
            ("ok", Ok(elements)) => describe(elements) == normalise(&case["elements"]),
            ("error", Err(_)) => true,
            ("ok" | "error", _) => false,
            _ => panic!("{id}: unknown expectation {expect:?}"),
        };
        if let Some(deviation) = DEVIATIONS.iter().find(|d| d.id == id) {
            deviating += 1;
            if agrees {
                mismatches.push(format!(
                    "{id}: listed in DEVIATIONS ({}) but now agrees with the vector; remove it",
                    deviation.why
                ));
                continue;
            }
            let ours_ok = match (&deviation.ours, &result) {
                (Ours::Elements(json), Ok(elements)) => {
                    let ours: Value = serde_json::from_str(json).expect("DEVIATIONS JSON");
                    describe(elements) == normalise(&ours)
                }
                (Ours::Error(kind), Err(err)) => err.kind() == *kind,
                _ => false,
            };
            if !ours_ok {
                mismatches.push(format!(
                    "{id}: DEVIATIONS says we {} ({}), but we give {}",
                    match &deviation.ours {
                        Ours::Elements(json) => format!("accept with {json}"),
                        Ours::Error(kind) => format!("reject with {kind:?}"),
                    },
                    deviation.why,
                    show(&result)
                ));
            }
            continue;
        }
        as_written += 1;
        if !agrees {
            mismatches.push(format!(
                "{id}: header {header:?}: expected {expect} {}, got {}",
                if expect == "ok" {
                    normalise(&case["elements"]).to_string()
                } else {
                    case["error"].to_string()
                },
                show(&result)
            ));
            continue;
        }
        if let Err(err) = &result {
            match ERROR_KINDS.iter().find(|(listed, _)| *listed == id) {
                Some((_, kind)) if err.kind() == *kind => {}
                Some((_, kind)) => mismatches.push(format!(
                    "{id}: expected kind {kind:?}, got {:?}: {err}",
                    err.kind()
                )),
                None => mismatches.push(format!(
                    "{id}: fails with {:?} ({err}); add it to ERROR_KINDS",
                    err.kind()
                )),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!((as_written, deviating), (19, DEVIATIONS.len()));
    assert_eq!(DEVIATIONS.len(), 10);
}

#[test]
fn every_header_envoy_generates_parses() {
    let vectors = vectors();
    let cases = cases(&vectors, "envoy_generation_cases");
    assert_eq!(cases.len(), EXPECTED_GENERATION_CASES);
    let mut parsed = 0;
    let mut mismatches = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let mut parse = |which: &str| -> Option<Vec<XfccElement>> {
            let header = case[which].as_str()?;
            parsed += 1;
            match parse_xfcc(header) {
                Ok(elements) => Some(elements),
                Err(err) => {
                    mismatches.push(format!("{id}: {which} {header:?}: {err}"));
                    None
                }
            }
        };
        let incoming = parse("incoming");
        let Some(outgoing) = parse("outgoing") else {
            continue;
        };
        let Some(adjacent) = outgoing.last() else {
            mismatches.push(format!("{id}: outgoing header has no element"));
            continue;
        };
        // APPEND_FORWARD keeps the incoming elements and adds the proxy's own one LAST.
        if case["forward_client_cert_details"] == "APPEND_FORWARD" {
            if let Some(incoming) = &incoming {
                if outgoing.len() != incoming.len() + 1 || outgoing[..incoming.len()] != **incoming
                {
                    mismatches.push(format!("{id}: outgoing is not incoming plus one element"));
                }
            }
        }
        // The element Envoy wrote from its mocked peer and local certificates.
        let peer = &case["peer"];
        if !peer.is_null() {
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .expect("array")
                    .iter()
                    .map(|s| s.as_str().expect("string").to_owned())
                    .collect()
            };
            let checks = [
                (adjacent.by() == strings(&case["local_uri_sans"]), "By"),
                (adjacent.hash() == peer["sha256"].as_str(), "Hash"),
                (adjacent.uri() == strings(&peer["uri_sans"]), "URI"),
                (adjacent.dns() == strings(&peer["dns_sans"]), "DNS"),
                (
                    adjacent.cert_pem().map(str::to_owned)
                        == peer["cert_urlenc"].as_str().map(percent_decode),
                    "Cert",
                ),
                (
                    adjacent.chain_pem().map(str::to_owned)
                        == peer["chain_urlenc"].as_str().map(percent_decode),
                    "Chain",
                ),
            ];
            for (ok, key) in checks {
                if !ok {
                    mismatches.push(format!(
                        "{id}: {key} of the last element differs: {adjacent:?}"
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(parsed, EXPECTED_GENERATED_HEADERS);
}

#[test]
fn envoy_writes_an_empty_uri_when_the_peer_has_no_uri_san() {
    let vectors = vectors();
    let case = cases(&vectors, "envoy_generation_cases")
        .iter()
        .find(|c| c["id"] == "envoy-gen-sanitize-set-peer-san-empty")
        .expect("case present");
    let elements = parse_xfcc(case["outgoing"].as_str().expect("outgoing")).unwrap();
    assert_eq!(elements.len(), 1);
    assert_eq!(elements[0].uri(), [""]);
    assert_eq!(
        elements[0].subject(),
        Some("/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=test.lyft.com")
    );
}

#[test]
fn envoy_placeholder_certificates_parse_but_do_not_decode() {
    // Envoy's tests mock `Cert` with text that is not PEM: the header parses, and `cert_der`
    // refuses to turn it into a certificate.
    let vectors = vectors();
    let case = cases(&vectors, "envoy_generation_cases")
        .iter()
        .find(|c| c["id"] == "envoy-gen-set-forward")
        .expect("case present");
    let elements = parse_xfcc(case["outgoing"].as_str().expect("outgoing")).unwrap();
    let element = &elements[0];
    assert_eq!(element.cert_pem(), Some("==abc\nde="));
    assert_eq!(
        element.cert_der().unwrap_err().kind(),
        ForwardedErrorKind::BadPem
    );
    assert_eq!(
        element.chain_der().unwrap_err().kind(),
        ForwardedErrorKind::BadPem
    );
}

#[test]
fn vector_file_sections_are_complete() {
    // The trusted-proxy cases test Istio's address matching, not a parser; counted so that the
    // file stays the unchanged copy.
    let vectors = vectors();
    assert_eq!(
        cases(&vectors, "trusted_proxy_cases").len(),
        EXPECTED_TRUSTED_PROXY_CASES
    );
    assert_eq!(vectors["sources"].as_object().map(|s| s.len()), Some(8));
}

// --- RFC 9440 Appendix A ---------------------------------------------------------------------

const CERT0: &[u8] = include_bytes!("data/rfc9440/cert0.der");
const CERT1: &[u8] = include_bytes!("data/rfc9440/cert1.der");
const CERT2: &[u8] = include_bytes!("data/rfc9440/cert2.der");

/// The value of `name` in a one-line header file (`Name: value\n`).
fn field_value<'a>(text: &'a str, name: &str) -> &'a str {
    text.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(": "))
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("`{name}: value` line"))
}

/// The folded value of `name` in `header_folded.txt`: the text after `Name: ` up to the next field,
/// with its line breaks.
fn folded_value(text: &str, name: &str) -> String {
    let prefix = format!("{name}: ");
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&prefix));
    let first = lines.next().expect("field present");
    let mut value = first[prefix.len()..].to_owned();
    for line in lines.take_while(|l| l.starts_with(' ')) {
        value.push('\n');
        value.push_str(line);
    }
    value
}

#[test]
fn rfc9440_client_cert_is_the_leaf() {
    let header = field_value(
        include_str!("data/rfc9440/client_cert_header.txt"),
        "Client-Cert",
    );
    assert_eq!(parse_client_cert(header).unwrap().as_ref(), CERT0);
}

#[test]
fn rfc9440_client_cert_chain_is_the_intermediate_and_the_root() {
    let header = field_value(
        include_str!("data/rfc9440/client_cert_chain_header.txt"),
        "Client-Cert-Chain",
    );
    let chain = parse_client_cert_chain(header).unwrap();
    let chain: Vec<&[u8]> = chain.iter().map(|c| c.as_ref()).collect();
    assert_eq!(chain, [CERT1, CERT2]);
}

#[test]
fn rfc9440_folded_headers_are_rejected() {
    let folded = include_str!("data/rfc9440/header_folded.txt");
    for (name, unfolded_file) in [
        (
            "Client-Cert",
            include_str!("data/rfc9440/client_cert_header.txt"),
        ),
        (
            "Client-Cert-Chain",
            include_str!("data/rfc9440/client_cert_chain_header.txt"),
        ),
    ] {
        let value = folded_value(folded, name);
        // The folded text is the same field with line breaks: removing them gives the unfolded file.
        assert_eq!(value.replace("\n ", ""), field_value(unfolded_file, name));
        for wire in [value.clone(), value.replace('\n', "\r\n")] {
            let err = if name == "Client-Cert" {
                parse_client_cert(&wire).unwrap_err()
            } else {
                parse_client_cert_chain(&wire).unwrap_err()
            };
            assert_eq!(err.kind(), ForwardedErrorKind::Syntax, "{name}");
            assert!(err.to_string().contains("obs-fold"), "{err}");
        }
    }
}
