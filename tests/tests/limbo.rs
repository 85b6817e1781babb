//! x509-limbo's client-relevant cases against what `MtlsConfig` builds: the CLIENT-kind cases
//! through a real handshake, every case through [`MtlsConfig::client_cert_verifier`] at the
//! case's validation time. Where we decide differently from limbo's expectation, the case is in
//! [`DECISIONS`] with the reason; every other case must come out as limbo says.
//!
//! The data is `tests/data/limbo/limbo_client.json` (see the README beside it for its source).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use mtls_tests::{Pki, Server};
use mtls_tower::ClientCert;
use mtls_tower::MtlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Deserialize)]
struct Limbo {
    testcases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    validation_kind: String,
    expected_result: String,
    trusted_certs: Vec<String>,
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    peer_certificate_key: Option<String>,
    crls: Vec<String>,
    validation_time: Option<String>,
    max_chain_depth: Option<u32>,
    #[serde(default)]
    extended_key_usage: Vec<String>,
    #[serde(default)]
    expected_peer_names: Vec<PeerName>,
}

#[derive(Deserialize)]
struct PeerName {
    kind: String,
    value: String,
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/limbo/limbo_client.json");
    let limbo: Limbo = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        limbo.testcases.len(),
        95,
        "the file holds 95 client-relevant cases"
    );
    limbo.testcases
}

fn cert(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn crl(pem: &str) -> CertificateRevocationListDer<'static> {
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]+00:00` as seconds since the epoch. `UnixTime` holds whole
/// seconds, so a fraction is dropped: `notbefore-fractional` (valid from 00:00:01, checked at
/// 00:00:00.999) is checked at 00:00:00, and is refused as limbo says.
fn validation_time(text: &str) -> UnixTime {
    let text = text.strip_suffix("+00:00").expect("limbo times are UTC");
    let (date, time) = text.split_once('T').unwrap();
    let mut d = date.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let time = time.split('.').next().unwrap();
    let mut t = time.split(':').map(|p| p.parse::<i64>().unwrap());
    let (h, min, s) = (t.next().unwrap(), t.next().unwrap(), t.next().unwrap());
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + s;
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).unwrap()))
}

/// The configuration a user would write for this case: our server certificate, the case's
/// trusted certificates as the client CAs, its CRLs, and every default left strict.
fn config(pki: &Pki, case: &Case) -> Result<MtlsConfig, String> {
    let mut builder = pki
        .config()
        .client_ca_certs(case.trusted_certs.iter().map(|p| cert(p)).collect());
    if !case.crls.is_empty() {
        builder = builder.crls(case.crls.iter().map(|p| crl(p)).collect());
    }
    builder.build().map_err(|e| format!("config: {e}"))
}

/// What our verifier says about the case's chain at its validation time: `"accept"`, or the
/// rustls error.
fn verify(pki: &Pki, case: &Case) -> String {
    let config = match config(pki, case) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let verifier = config.client_cert_verifier().unwrap();
    let now = case
        .validation_time
        .as_deref()
        .map_or_else(UnixTime::now, validation_time);
    let leaf = cert(&case.peer_certificate);
    let intermediates: Vec<_> = case
        .untrusted_intermediates
        .iter()
        .map(|p| cert(p))
        .collect();
    match verifier.verify_client_cert(&leaf, &intermediates, now) {
        Ok(_) => "accept".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// Our refusal of a leaf that does not list the clientAuth EKU (limbo's SERVER-kind cases are
/// mostly serverAuth-only leaves). For those, [`engine`] checks the chain logic instead.
const NOT_A_CLIENT_CERTIFICATE: &str = "InvalidCertificate(InvalidPurpose";

/// Our outcome where it differs from limbo's `expected_result` other than by
/// [`NOT_A_CLIENT_CERTIFICATE`], and why. The outcome is `"accept"`, `"refuse"` or the start of
/// the rustls error's `Debug` text.
const DECISIONS: &[(&str, &str, &str)] = &[
    (
        "rfc5280::eku::ee-wrong-eku",
        "accept",
        "the leaf lists clientAuth only: wrong for limbo's server validation, right for ours",
    ),
    (
        "rfc5280::eku::ee-without-eku",
        "InvalidCertificate(InvalidPurpose)",
        "a leaf without an EKU extension never said it may authenticate clients; RFC 5280 \
         reads it as any purpose, `allow_missing_client_auth_eku` is the named opt-in",
    ),
    (
        "rfc5280::ca-as-leaf",
        "InvalidCertificate(Other(OtherError(CaUsedAsEndEntity",
        "webpki refuses a CA certificate as the leaf, and so do we: a client holding a CA key \
         is a misissuance, not an identity",
    ),
    (
        "pathlen::validation-ignores-pathlen-in-leaf",
        "InvalidCertificate(Other(OtherError(CaUsedAsEndEntity",
        "the leaf is a CA certificate: refused as in rfc5280::ca-as-leaf",
    ),
    (
        "rfc5280::nc::nc-permits-email-exact",
        "InvalidCertificate(Other(OtherError(NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-domain",
        "InvalidCertificate(Other(OtherError(NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-asterisk-exact-match",
        "InvalidCertificate(Other(OtherError(NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-double-asterisk",
        "InvalidCertificate(Other(OtherError(NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-mid-asterisk",
        "InvalidCertificate(Other(OtherError(NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
];

const EMAIL_CONSTRAINTS: &str = "webpki does not implement rfc822Name name constraints and \
    fails closed: under a CA constrained to email subtrees, a leaf with an email SAN is refused \
    even where the constraint permits it";

fn decisions() -> BTreeMap<&'static str, (&'static str, &'static str)> {
    DECISIONS
        .iter()
        .map(|&(id, out, why)| (id, (out, why)))
        .collect()
}

/// Whether the case's leaf lists the clientAuth EKU, or has no EKU extension at all (which
/// our verifier also refuses, but which [`DECISIONS`] covers by name). `None` when our parser
/// refuses the leaf (limbo's malformed-SAN cases): then the verifier must refuse it too.
fn lists_client_auth(case: &Case) -> Option<bool> {
    let leaf = mtls_core::ClientIdentity::from_der(&cert(&case.peer_certificate)).ok()?;
    Some(
        leaf.extended_key_usage().is_none()
            || leaf.has_extended_key_usage(&mtls_core::Oid::CLIENT_AUTH),
    )
}

fn expected(case: &Case) -> &str {
    match case.expected_result.as_str() {
        "SUCCESS" => "accept",
        _ => "refuse",
    }
}

fn agrees(outcome: &str, wanted: &str) -> bool {
    match wanted {
        "accept" => outcome == "accept",
        "refuse" => outcome != "accept",
        specific => outcome.starts_with(specific),
    }
}

#[test]
fn every_case_through_the_verifier_comes_out_as_limbo_says_or_as_decided() {
    let pki = Pki::new();
    let decisions = decisions();
    let mut wrong = Vec::new();
    for case in cases() {
        let outcome = verify(&pki, &case);
        let wanted = match decisions.get(case.id.as_str()) {
            Some(d) => d.0,
            None => match lists_client_auth(&case) {
                Some(true) => expected(&case),
                // Where limbo admits the chain, the EKU must be why we refuse. Where it
                // refuses, the leaf's own validity is checked before its EKU and may refuse
                // first.
                Some(false) if expected(&case) == "accept" => NOT_A_CLIENT_CERTIFICATE,
                Some(false) => "refuse",
                None => "refuse",
            },
        };
        if !agrees(&outcome, wanted) {
            wrong.push(format!(
                "{} (limbo {}, depth {:?}): wanted {wanted}, got {outcome}",
                case.id, case.expected_result, case.max_chain_depth
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_decision_names_a_case_that_exists_and_says_why() {
    let ids: Vec<String> = cases().into_iter().map(|c| c.id).collect();
    for (id, outcome, why) in DECISIONS {
        assert!(ids.iter().any(|i| i == id), "no case {id}");
        assert!(
            !outcome.is_empty() && why.len() > 20,
            "{id}: say what and why"
        );
    }
}

/// What webpki, the engine inside our verifier, says about the case's chain with the case's own
/// usage (serverAuth unless the case says clientAuth) and the revocation rules `MtlsConfig`
/// uses by default: every certificate of the chain checked, unknown status and expired CRLs
/// refused. Our verifier refuses a serverAuth-only leaf before looking at its chain (webpki
/// checks a certificate's EKU before it looks for its issuer), so this is where limbo's
/// chain logic (path length, name constraints, validity, CRLs) is checked for those leaves.
fn engine(case: &Case) -> String {
    let trusted: Vec<_> = case.trusted_certs.iter().map(|p| cert(p)).collect();
    let anchors: Vec<_> = match trusted
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(e) => return format!("anchor: {e:?}"),
    };
    let crls: Vec<webpki::CertRevocationList<'static>> = match case
        .crls
        .iter()
        .map(|p| webpki::OwnedCertRevocationList::from_der(crl(p).as_ref()).map(Into::into))
        .collect::<Result<_, _>>()
    {
        Ok(c) => c,
        Err(e) => return format!("crl: {e:?}"),
    };
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
        .ok()
        .map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                .build()
        });
    let leaf = cert(&case.peer_certificate);
    let leaf = match webpki::EndEntityCert::try_from(&leaf) {
        Ok(l) => l,
        Err(e) => return format!("leaf: {e:?}"),
    };
    let intermediates: Vec<_> = case
        .untrusted_intermediates
        .iter()
        .map(|p| cert(p))
        .collect();
    let usage = if case.extended_key_usage.iter().any(|u| u == "clientAuth") {
        webpki::KeyUsage::client_auth()
    } else {
        webpki::KeyUsage::server_auth()
    };
    let now = case
        .validation_time
        .as_deref()
        .map_or_else(UnixTime::now, validation_time);
    let algs = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    match leaf.verify_for_usage(algs, &anchors, &intermediates, now, usage, revocation, None) {
        Ok(_) => "accept".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// webpki's outcome where it differs from limbo's `expected_result` (as [`DECISIONS`]). We
/// inherit each through our verifier; the reason says why it is harmless for admission, or
/// where it is not.
const ENGINE_DECISIONS: &[(&str, &str, &str)] = &[
    // Refusals limbo would not make: they fail closed.
    (
        "rfc5280::ca-as-leaf",
        "CaUsedAsEndEntity",
        "as in DECISIONS",
    ),
    (
        "pathlen::validation-ignores-pathlen-in-leaf",
        "CaUsedAsEndEntity",
        "as in DECISIONS",
    ),
    (
        "rfc5280::nc::nc-permits-email-exact",
        "NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-domain",
        "NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-asterisk-exact-match",
        "NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-double-asterisk",
        "NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::nc-permits-email-literal-mid-asterisk",
        "NameConstraintViolation",
        EMAIL_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::permitted-dn-match",
        "NameConstraintViolation",
        "webpki does not implement directoryName name constraints and fails closed",
    ),
    (
        "pathlen::self-issued-certs-pathlen",
        "InvalidSignatureForPublicKey",
        SELF_ISSUED,
    ),
    (
        "rfc5280::nc::permitted-self-issued",
        "InvalidSignatureForPublicKey",
        SELF_ISSUED,
    ),
    // Acceptances limbo would refuse.
    ("crl::crlnumber-missing", "accept", CRL_PEDANTRY),
    ("crl::crlnumber-critical", "accept", CRL_PEDANTRY),
    ("crl::issuer-missing-crlsign", "accept", CRL_PEDANTRY),
    (
        "pathlen::max-chain-depth-0-exhausted",
        "accept",
        CHAIN_DEPTH,
    ),
    (
        "pathlen::max-chain-depth-1-exhausted",
        "accept",
        CHAIN_DEPTH,
    ),
    (
        "rfc5280::nc::permitted-dns-match-noncritical",
        "accept",
        "the constraint is enforced although not marked critical: the leaf's name is inside it",
    ),
    (
        "rfc5280::nc::invalid-dnsname-leading-period",
        "accept",
        "webpki reads a DNS constraint `.example.com` as the subtree below example.com and \
         enforces it; the leaf is inside it",
    ),
    (
        "rfc5280::nc::not-allowed-in-ee-noncritical",
        "accept",
        LEAF_CONSTRAINTS,
    ),
    (
        "rfc5280::nc::not-allowed-in-ee-critical",
        "accept",
        LEAF_CONSTRAINTS,
    ),
    (
        "rfc5280::validity::expired-root",
        "accept",
        "webpki does not check a trust anchor's validity period (RFC 5280 leaves it to the \
         relying party; Go refuses). Not harmless, so our verifier does: a chain is verified \
         against the client CAs valid at the handshake only, and a connection ends when the \
         earliest of them expires (tests in server/verifier.rs and tests/expiry.rs; the leaf \
         here is serverAuth-only, so the verifier run cannot show it)",
    ),
    (
        "webpki::eku::ee-anyeku",
        "accept",
        "webpki's server-auth run accepts anyExtendedKeyUsage; our verifier refuses it, as \
         the clientAuth EKU must be listed by name",
    ),
    ("webpki::eku::ee-critical-eku", "accept", CABF_PEDANTRY),
    (
        "webpki::eku::ee-without-eku",
        "accept",
        "RFC 5280 reads no EKU as any purpose; our verifier refuses it by default \
         (see rfc5280::eku::ee-without-eku in DECISIONS)",
    ),
    ("webpki::eku::root-has-eku", "accept", CABF_PEDANTRY),
    (
        "webpki::nc::intermediate-permitted-excluded-subtrees-both-null",
        "accept",
        CABF_PEDANTRY,
    ),
    (
        "webpki::nc::intermediate-permitted-excluded-subtrees-both-empty-sequences",
        "accept",
        CABF_PEDANTRY,
    ),
];

const SELF_ISSUED: &str = "webpki does not build paths through self-issued intermediates (a \
    CA's key rollover certificate) and fails closed";
const CRL_PEDANTRY: &str = "a CRL signed by the issuing CA but malformed by RFC 5280 (no or a \
    critical CRLNumber, an issuer key usage without cRLSign) is still used: a CRL can only take \
    access away, so honouring it never admits anyone";
const CHAIN_DEPTH: &str = "limbo's case sets a maximum chain depth, an option neither \
    `MtlsConfig` nor rustls has; webpki's own limits on path building still apply";
const LEAF_CONSTRAINTS: &str = "name constraints in a leaf constrain nothing below it; webpki \
    ignores them rather than refusing the leaf";
const CABF_PEDANTRY: &str = "a CA/Browser Forum encoding rule for public web PKI, not a rule \
    of RFC 5280; the chain is otherwise sound";

#[test]
fn every_case_through_the_engine_comes_out_as_limbo_says_or_as_decided() {
    let decisions: BTreeMap<_, _> = ENGINE_DECISIONS
        .iter()
        .map(|&(id, out, why)| (id, (out, why)))
        .collect();
    let mut wrong = Vec::new();
    for case in cases() {
        let outcome = engine(&case);
        let wanted = decisions
            .get(case.id.as_str())
            .map_or(expected(&case), |d| d.0);
        if !agrees(&outcome, wanted) {
            wrong.push(format!(
                "{} (limbo {}, depth {:?}): wanted {wanted}, got {outcome}",
                case.id, case.expected_result, case.max_chain_depth
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A client presenting the case's leaf and intermediates with the leaf's key.
fn client(pki: &Pki, case: &Case) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.cert_der().clone()).unwrap();
    let mut chain = vec![cert(&case.peer_certificate)];
    chain.extend(case.untrusted_intermediates.iter().map(|p| cert(p)));
    let key = PrivateKeyDer::from_pem_slice(
        case.peer_certificate_key
            .as_deref()
            .expect("CLIENT cases carry the leaf's key")
            .as_bytes(),
    )
    .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// `GET /` over a handshake presenting the case's chain: the response body (the identity's
/// email names), or the error the client saw.
async fn handshake(pki: &Pki, case: &Case) -> Result<String, String> {
    let app = Router::new().route(
        "/",
        get(|cert: ClientCert| async move { cert.emails().join(",") }),
    );
    let server = Server::start(config(pki, case)?, app).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let connector = tokio_rustls::TlsConnector::from(client(pki, case));
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    tls.write_all(request).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // TLS 1.3: a refused certificate shows as an alert at the first read.
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    Ok(response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn every_client_case_through_a_handshake_comes_out_as_limbo_says() {
    let pki = Pki::new();
    let decisions = decisions();
    let mut wrong = Vec::new();
    let mut run = 0;
    for case in cases().iter().filter(|c| c.validation_kind == "CLIENT") {
        run += 1;
        assert!(
            case.validation_time.is_none(),
            "a handshake runs at the real time"
        );
        let outcome = handshake(&pki, case).await;
        let wanted = match decisions
            .get(case.id.as_str())
            .map_or(expected(case), |d| d.0)
        {
            "accept" => "accept",
            // The client sees only the alert, not which check refused.
            _ => "refuse",
        };
        let ok = match (&outcome, wanted) {
            (Ok(emails), "accept") => {
                // Admitted: the identity must carry the names limbo expects the peer to have.
                let emails: Vec<&str> = emails.split(',').collect();
                case.expected_peer_names
                    .iter()
                    .filter(|n| n.kind == "RFC822")
                    .all(|n| emails.contains(&n.value.as_str()))
            }
            (Err(_), "refuse") => true,
            _ => false,
        };
        if !ok {
            wrong.push(format!("{}: wanted {wanted}, got {outcome:?}", case.id));
        }
    }
    assert_eq!(run, 10, "the file holds 10 CLIENT cases");
    assert!(
        wrong.is_empty(),
        "{} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_leaf_without_eku_is_admitted_only_with_the_named_opt_in() {
    let pki = Pki::new();
    let case = cases()
        .into_iter()
        .find(|c| c.id == "rfc5280::eku::ee-without-eku")
        .unwrap();
    let strict = verify(&pki, &case);
    assert!(
        strict.starts_with("InvalidCertificate(InvalidPurpose)"),
        "{strict}"
    );
    let loose = pki
        .config()
        .client_ca_certs(case.trusted_certs.iter().map(|p| cert(p)).collect())
        .allow_missing_client_auth_eku()
        .build()
        .unwrap()
        .client_cert_verifier()
        .unwrap();
    let leaf = cert(&case.peer_certificate);
    assert!(loose
        .verify_client_cert(&leaf, &[], UnixTime::now())
        .is_ok());
}
