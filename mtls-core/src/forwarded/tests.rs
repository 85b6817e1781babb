use super::*;
use ForwardedErrorKind as K;

/// RFC 9440 Appendix A's client certificate (expired 2021-01-23; only decoded here).
const LEAF: &[u8] = include_bytes!("../../tests/data/rfc9440/cert0.der");
const LEAF_SHA256: &str = "bfaf1f7e070f9fa8dd62905f158da73f84a1136624fbafcc9393c8f7287a69eb";
/// RFC 9440 Appendix A's intermediate CA certificate.
const INTERMEDIATE: &[u8] = include_bytes!("../../tests/data/rfc9440/cert1.der");

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

// --- plain base64 DER (Caddy, HAProxy, Traefik) ----------------------------------------

#[test]
fn base64_der_decodes_a_leaf() {
    let chain = parse_base64_der(&b64(LEAF)).unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].as_ref(), LEAF);
}

#[test]
fn base64_der_decodes_a_leaf_then_its_chain_in_order() {
    // Traefik's `X-Forwarded-Tls-Client-Cert`: the client's certificates joined by `,`.
    let header = format!("{},{}", b64(LEAF), b64(INTERMEDIATE));
    let chain = parse_base64_der(&header).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].as_ref(), LEAF);
    assert_eq!(chain[1].as_ref(), INTERMEDIATE);
}

#[test]
fn base64_der_allows_spaces_around_the_value_and_after_a_comma() {
    let header = format!(" \t{}, \t{} ", b64(LEAF), b64(INTERMEDIATE));
    assert_eq!(parse_base64_der(&header).unwrap().len(), 2);
}

#[test]
fn base64_der_refuses_spaces_before_a_comma_or_inside_a_certificate() {
    let before = format!("{} ,{}", b64(LEAF), b64(INTERMEDIATE));
    assert_eq!(parse_base64_der(&before).unwrap_err().kind(), K::BadBase64);
    let body = b64(LEAF);
    let inside = format!("{} {}", &body[..8], &body[8..]);
    assert_eq!(parse_base64_der(&inside).unwrap_err().kind(), K::BadBase64);
}

#[test]
fn base64_der_empty_means_no_certificate() {
    let err = parse_base64_der("").unwrap_err();
    assert_eq!(err.kind(), K::Empty);
    assert_eq!(
        err.to_string(),
        "invalid base64 DER client certificate header: the value is empty: Caddy and HAProxy \
         send that when the client presented no certificate"
    );
    assert_eq!(parse_base64_der(" \t").unwrap_err().kind(), K::Empty);
}

#[test]
fn base64_der_refuses_an_empty_member_and_names_it() {
    for (header, number) in [
        (format!("{},", b64(LEAF)), 2),
        (format!(",{}", b64(LEAF)), 1),
        (format!("{},,{}", b64(LEAF), b64(LEAF)), 2),
    ] {
        let err = parse_base64_der(&header).unwrap_err();
        assert_eq!(err.kind(), K::Syntax, "{header}");
        assert!(
            err.to_string()
                .ends_with(&format!("certificate {number} is empty")),
            "{err}"
        );
    }
}

#[test]
fn base64_der_is_strict_base64() {
    let body = b64(LEAF);
    // Two bytes: one `=` of padding, which is required.
    assert_eq!(parse_base64_der("MAA").unwrap_err().kind(), K::BadBase64);
    assert_eq!(parse_base64_der("MAA=").unwrap()[0].as_ref(), [0x30, 0x00]);
    // Non-zero unused bits before the padding.
    assert_eq!(parse_base64_der("MAB=").unwrap_err().kind(), K::BadBase64);
    let url_safe = body.replace('+', "-").replace('/', "_");
    assert_ne!(url_safe, body, "the vector must have a + or a /");
    assert_eq!(
        parse_base64_der(&url_safe).unwrap_err().kind(),
        K::BadBase64
    );
}

#[test]
fn base64_der_names_the_certificate_whose_base64_or_der_is_bad() {
    let not_der = b64(&[0x31, 0x00]);
    let err = parse_base64_der(&format!("{},{not_der}", b64(LEAF))).unwrap_err();
    assert_eq!(err.kind(), K::NotDer);
    assert!(
        err.to_string().starts_with(
            "invalid base64 DER client certificate header: certificate 2: starts with byte 0x31"
        ),
        "{err}"
    );
    let err = parse_base64_der("MAA=,MA!=").unwrap_err();
    assert_eq!(err.kind(), K::BadBase64);
    assert!(err.to_string().contains("certificate 2: "), "{err}");
}

#[test]
fn base64_der_says_which_other_format_a_value_is_in() {
    for (header, format) in [
        (format!(":{}:", b64(LEAF)), "an RFC 9440 byte sequence"),
        (pem(LEAF).replace('\n', ""), "PEM"),
        (url_encode(&pem(LEAF)), "URL-encoded PEM"),
        (
            b64(LEAF).replace('+', "%2B").replace('/', "%2F"),
            "URL-encoded text",
        ),
    ] {
        let err = parse_base64_der(&header).unwrap_err();
        assert_eq!(err.kind(), K::Syntax, "{header}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("the value looks like {format}")),
            "{msg}"
        );
    }
}

#[test]
fn base64_der_refuses_controls_and_oversized_input() {
    assert_eq!(parse_base64_der("MAA=\n").unwrap_err().kind(), K::Syntax);
    let long = "A".repeat(MAX_HEADER_LEN + 1);
    assert_eq!(parse_base64_der(&long).unwrap_err().kind(), K::TooLong);
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

// --- codec error messages: each names exactly what is wrong --------------------------------

#[test]
fn a_bad_percent_escape_is_quoted_as_the_three_bytes_it_spans() {
    let err = percent_decode_utf8("ab%Zxyz").unwrap_err();
    assert!(err.message.contains("at byte 2"), "{}", err.message);
    assert!(err.message.contains(r#""%Zx""#), "{}", err.message);
    // When the third byte is inside a character, the quote runs to the end of that character.
    let err = percent_decode_utf8("ab%Zé!").unwrap_err();
    assert!(err.message.contains(r#""%Zé""#), "{}", err.message);
}

#[test]
fn a_pem_line_with_a_character_outside_base64_names_the_line_and_the_byte() {
    let body = b64(LEAF);
    let (head, tail) = body.split_at(64);
    let text = format!(
        "{BEGIN_CERTIFICATE}\n{head}\n{}!{}\n{END_CERTIFICATE}\n",
        &tail[..3],
        &tail[3..]
    );
    let err = pem_certificates(&text).unwrap_err();
    assert_eq!(err.kind, K::BadBase64);
    assert!(
        err.message
            .contains("line 3: byte 3 is not in the base64 alphabet"),
        "{}",
        err.message
    );
}

#[test]
fn pem_errors_name_the_line_and_tell_another_label_from_stray_text() {
    let err = pem_certificates("hello\n").unwrap_err();
    assert!(
        err.message
            .contains("line 1: text outside a CERTIFICATE block"),
        "{}",
        err.message
    );
    let err = pem_certificates("\n-----BEGIN PRIVATE KEY-----\n").unwrap_err();
    assert!(
        err.message.contains("line 2: ")
            && err
                .message
                .contains("is not a `-----BEGIN CERTIFICATE-----` line"),
        "{}",
        err.message
    );
}

#[test]
fn der_refuses_the_indefinite_and_over_long_length_forms() {
    // 0x80 is the indefinite form, never DER, even when 128 bytes do follow.
    let mut indefinite = vec![0x30, 0x80];
    indefinite.extend([0; 128]);
    let err = check_der(&indefinite).unwrap_err();
    assert!(
        err.message
            .contains("unsupported SEQUENCE length form 0x80"),
        "{}",
        err.message
    );
    let err = check_der(&[0x30, 0x85, 1, 0, 0, 0, 0]).unwrap_err();
    assert!(
        err.message
            .contains("unsupported SEQUENCE length form 0x85"),
        "{}",
        err.message
    );
}
