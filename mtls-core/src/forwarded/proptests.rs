use super::tests::{b64, der_seq, url_encode};
use super::*;
use proptest::prelude::*;

/// Test-only XFCC serializer: Envoy's key order, keys in the given case, values quoted when
/// needed (or when `force_quotes`), `Cert` and `Chain` URL-encoded and always quoted.
fn serialize(elements: &[XfccElement], upper_keys: bool, force_quotes: bool) -> String {
    let quote = |v: &str| format!("\"{}\"", v.replace('"', "\\\""));
    let value = |v: &str| {
        let needs =
            v.contains([',', ';', '"']) || v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']);
        if needs || force_quotes {
            quote(v)
        } else {
            v.to_owned()
        }
    };
    let key = |k: &str| {
        if upper_keys {
            k.to_ascii_uppercase()
        } else {
            k.to_owned()
        }
    };
    elements
        .iter()
        .map(|e| {
            let mut pairs = Vec::new();
            pairs.extend(e.by.iter().map(|v| format!("{}={}", key("By"), value(v))));
            pairs.extend(
                e.hash
                    .iter()
                    .map(|v| format!("{}={}", key("Hash"), value(v))),
            );
            pairs.extend(
                e.subject
                    .iter()
                    .map(|v| format!("{}={}", key("Subject"), quote(v))),
            );
            pairs.extend(e.uri.iter().map(|v| format!("{}={}", key("URI"), value(v))));
            pairs.extend(
                e.cert
                    .iter()
                    .map(|v| format!("{}={}", key("Cert"), quote(&url_encode(v)))),
            );
            pairs.extend(
                e.chain
                    .iter()
                    .map(|v| format!("{}={}", key("Chain"), quote(&url_encode(v)))),
            );
            pairs.extend(e.dns.iter().map(|v| format!("{}={}", key("DNS"), value(v))));
            pairs.join(";")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Values that can be written in XFCC: any of these characters, with backslashes only before
/// a character other than `"` (in quotes, `\"` always means `"`).
fn value() -> impl Strategy<Value = String> {
    "([a-zA-Z0-9 :/.=,;\"_é€-]|\\\\[a-z,;=\\\\+]){0,12}"
}

fn element() -> impl Strategy<Value = XfccElement> {
    (
        prop::collection::vec(value(), 0..3),
        prop::option::of(value()),
        prop::option::of(any::<String>()),
        prop::option::of(any::<String>()),
        prop::option::of(value()),
        prop::collection::vec(value(), 0..3),
        prop::collection::vec(value(), 0..3),
    )
        .prop_map(|(by, hash, cert, chain, subject, uri, dns)| XfccElement {
            by,
            hash,
            cert,
            chain,
            subject,
            uri,
            dns,
        })
        .prop_filter("an element needs at least one pair", |e| {
            !(e.by.is_empty()
                && e.hash.is_none()
                && e.cert.is_none()
                && e.chain.is_none()
                && e.subject.is_none()
                && e.uri.is_empty()
                && e.dns.is_empty())
        })
}

/// Text made mostly of the characters the parsers care about.
fn tricky() -> impl Strategy<Value = String> {
    "([=;,\"\\\\%: \t\r\n()-]|By|Hash|Cert|Chain|Subject|URI|DNS|-----BEGIN CERTIFICATE-----|-----END CERTIFICATE-----|%0A|%2|MAA=|[a-zA-Z0-9+/]|é){0,40}"
}

fn exercise(input: &str) {
    if let Ok(elements) = parse_xfcc(input) {
        for e in &elements {
            let _ = e.cert_der();
            let _ = e.chain_der();
        }
    }
    let _ = parse_client_cert(input);
    let _ = parse_client_cert_chain(input);
    let _ = parse_nginx_escaped_cert(input);
    let _ = parse_base64_der(input);
    let _ = pem_certificates(input);
    let _ = base64_decode(input);
    let _ = percent_decode_utf8(input);
    if let Err(err) = parse_xfcc(input) {
        let _ = err.to_string();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn never_panics_on_arbitrary_strings(input in any::<String>()) {
        exercise(&input);
    }

    #[test]
    fn never_panics_on_tricky_strings(input in tricky()) {
        exercise(&input);
    }

    #[test]
    fn xfcc_round_trips(
        elements in prop::collection::vec(element(), 1..4),
        upper_keys in any::<bool>(),
        force_quotes in any::<bool>(),
    ) {
        let header = serialize(&elements, upper_keys, force_quotes);
        prop_assert_eq!(parse_xfcc(&header).unwrap(), elements, "{}", header);
    }

    #[test]
    fn base64_round_trips(data in prop::collection::vec(any::<u8>(), 0..100)) {
        prop_assert_eq!(base64_decode(&b64(&data)).unwrap(), data);
    }

    #[test]
    fn base64_rejects_non_zero_pad_bits(
        data in prop::collection::vec(any::<u8>(), 1..50),
        bit in 0_u8..4,
    ) {
        // A length that is not a multiple of 3, so that the encoding ends in padding.
        let len = data.len() - usize::from(data.len().is_multiple_of(3));
        let mut encoded = b64(&data[..len]).into_bytes();
        // The last data character before the padding carries 4 (one `=`: 2) unused bits.
        let pads = encoded.iter().filter(|&&c| c == b'=').count();
        let unused_bits = if pads == 2 { 4 } else { 2 };
        let at = encoded.len() - pads - 1;
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let value = ALPHABET.iter().position(|&c| c == encoded[at]).unwrap() | (1 << (bit % unused_bits));
        encoded[at] = ALPHABET[value];
        let encoded = String::from_utf8(encoded).unwrap();
        prop_assert_eq!(base64_decode(&encoded).unwrap_err().kind, ForwardedErrorKind::BadBase64);
    }

    #[test]
    fn percent_decoding_round_trips(text in any::<String>()) {
        prop_assert_eq!(percent_decode_utf8(&url_encode(&text)).unwrap(), text);
    }

    #[test]
    fn any_der_sequence_is_accepted(content in prop::collection::vec(any::<u8>(), 0..600)) {
        let der = der_seq(&content);
        let header = format!(":{}:", b64(&der));
        let parsed = parse_client_cert(&header).unwrap();
        prop_assert_eq!(parsed.as_ref(), der.as_slice());
    }

    #[test]
    fn base64_der_chains_round_trip(
        contents in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..4),
        separator in prop::sample::select(vec![",", ", ", ",\t"]),
    ) {
        let ders: Vec<Vec<u8>> = contents.iter().map(|c| der_seq(c)).collect();
        let header = ders.iter().map(|d| b64(d)).collect::<Vec<_>>().join(separator);
        let parsed = parse_base64_der(&header).unwrap();
        let parsed: Vec<&[u8]> = parsed.iter().map(AsRef::as_ref).collect();
        let expected: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(parsed, expected);
    }
}
