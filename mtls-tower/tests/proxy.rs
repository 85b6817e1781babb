//! `TrustedProxyLayer`: forwarded client-certificate headers are believed from a trusted proxy only,
//! and stripped from everyone else. One behaviour per test, driven with `oneshot`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, HeaderName, Request, StatusCode};
use http_body_util::BodyExt;
use mtls_core::{ClientIdentity, IpNetwork};
use mtls_tower::testing::{
    base64_der_header, base64_encode, client_cert_chain_header, client_cert_header,
    nginx_escaped_cert_header, xfcc_header, TestCert, TestPki,
};
use mtls_tower::{
    CertSource, ClientCert, ForwardedFormat, PeerAddr, Policy, ProxyHeaderError,
    RequireClientCertLayer, TrustedProxyLayer,
};
use tower::ServiceExt;

const PROXY_ID: &str = "spiffe://prod.example/ns/edge/sa/proxy";

struct Fixture {
    pki: TestPki,
    proxy: ClientIdentity,
    alice: TestCert,
    mallory: ClientIdentity,
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let pki = TestPki::new();
        Fixture {
            proxy: pki.ca.leaf().spiffe(PROXY_ID).build().identity(),
            alice: pki
                .intermediate
                .leaf()
                .common_name("alice")
                .dns("alice.internal")
                .build(),
            mallory: pki.ca.leaf().common_name("mallory").build().identity(),
            pki,
        }
    })
}

/// Echoes who the handler thinks is calling, where that came from, and which forwarded headers
/// it can still see.
async fn whoami(cert: Option<ClientCert>, headers: HeaderMap) -> String {
    let who = match &cert {
        Some(c) => format!("{} via {:?}", c.subject(), c.source()),
        None => "nobody".to_owned(),
    };
    let leaked: Vec<&str> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|k| k.contains("cert"))
        .collect();
    format!("{who}; leaked headers: {leaked:?}")
}

fn app(layer: TrustedProxyLayer) -> Router {
    Router::new()
        .route("/", get(whoami))
        .route(
            "/protected",
            get(|| async { "secret" }).route_layer(RequireClientCertLayer::any_verified()),
        )
        .layer(layer)
}

fn by_identity(format: ForwardedFormat) -> TrustedProxyLayer {
    TrustedProxyLayer::by_identity(Policy::spiffe_id(PROXY_ID).unwrap(), format)
}

fn request(
    path: &str,
    peer: Option<&ClientIdentity>,
    addr: &str,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut b = Request::get(path).extension(PeerAddr(addr.parse::<SocketAddr>().unwrap()));
    if let Some(id) = peer {
        b = b.extension(ClientCert::from_handshake(Arc::new(id.clone())));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

/// A request on the proxy's own connection (its certificate from the handshake, from 10.0.0.2).
fn from_proxy(f: &Fixture, headers: &[(&str, &str)]) -> Request<Body> {
    request("/", Some(&f.proxy), "10.0.0.2:1", headers)
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, String, Option<ProxyHeaderError>) {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let err = res.extensions().get::<ProxyHeaderError>().cloned();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, body, err)
}

#[tokio::test]
async fn spoofed_header_from_an_untrusted_peer_is_stripped_and_ignored() {
    let f = fx();
    let header = client_cert_header(&f.alice);
    let req = request(
        "/",
        Some(&f.mallory),
        "10.0.0.9:4000",
        &[("client-cert", &header), ("x-ssl-client-cert", "x")],
    );
    let (status, body, _) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "CN=mallory via TlsHandshake; leaked headers: []");
}

#[tokio::test]
async fn underscore_and_other_conventions_are_stripped_too() {
    let f = fx();
    let names = [
        "x-forwarded-client-cert",
        "x_forwarded_client_cert",
        "client_cert",
        "client-cert-chain",
        "x_ssl_client_cert",
        "x-client-cert",
        "x_client_cert",
        "ssl_client_cert",
    ];
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (*n, "spoof")).collect();
    let req = request("/", Some(&f.mallory), "10.0.0.9:4000", &headers);
    let (_, body, _) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert!(body.ends_with("leaked headers: []"), "{body}");
}

/// Echoes every request header name the handler can see, sorted.
async fn header_names(headers: HeaderMap) -> String {
    let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    names.join(",")
}

/// Forwarded-identity headers as real proxies name them (their docs and common configs), in
/// their own letter case and with `_`: none may reach a handler from a peer that is not trusted.
const WELL_KNOWN_IDENTITY_HEADERS: &[&str] = &[
    // Envoy, Istio
    "X-Forwarded-Client-Cert",
    // RFC 9440
    "Client-Cert",
    "Client-Cert-Chain",
    // nginx, HAProxy, F5 conventions
    "X-SSL-Client-Cert",
    "X-SSL-Client-Verify",
    "X-SSL-Client-S-DN",
    "X-SSL-Client-I-DN",
    "X-SSL-Client-Cert-Chain",
    "X-SSL-Client-Serial",
    "X-SSL-Client-Fingerprint",
    "X-SSL-Cert",
    "X-Client-DN",
    "X-Client-S-DN",
    "X-Client-I-DN",
    "X-Client-Verify",
    "X-Client-Verified",
    "X-Client-Cert",
    "X-Client-Certificate",
    "X-Client-Subject",
    "X-Client-Subject-DN",
    "X-Client-Issuer-DN",
    // Apache mod_ssl variables passed on as headers
    "SSL_CLIENT_CERT",
    "SSL_CLIENT_S_DN",
    "SSL_CLIENT_VERIFY",
    "ssl-client-verify",
    "ssl_client_s_dn",
    // Traefik
    "X-Forwarded-Tls-Client-Cert",
    "X-Forwarded-Tls-Client-Cert-Info",
    // AWS Application Load Balancer
    "X-Amzn-Mtls-Clientcert",
    "X-Amzn-Mtls-Clientcert-Leaf",
    "X-Amzn-Mtls-Clientcert-Subject",
    "X-Amzn-Mtls-Clientcert-Issuer",
    "X-Amzn-Mtls-Clientcert-Serial-Number",
    "X-Amzn-Mtls-Clientcert-Validity",
    // Google Cloud load balancers (mTLS custom headers as documented)
    "X-Client-Cert-Present",
    "X-Client-Cert-Chain-Verified",
    "X-Client-Cert-Spiffe",
    "X-Client-Cert-Hash",
    // IIS ARR, Azure App Service
    "X-ARR-ClientCert",
    // Cloudflare
    "Cf-Client-Cert-Der-Base64",
    "Cf-Client-Cert-Sha256",
    "Cf-Cert-Verified",
    "Cf-Cert-Subject-Dn",
    // Linkerd
    "l5d-client-id",
    // Traefik 1.x
    "X-Forwarded-Ssl-Client-Cert",
    "X-Forwarded-Ssl-Client-Cert-Infos",
    // single fields of common configs
    "X-Client-Serial",
    "X-Client-Fingerprint",
    "X-Client-SAN",
    "X-Client-CN",
];

#[tokio::test]
async fn every_well_known_identity_header_from_an_untrusted_peer_is_stripped() {
    let f = fx();
    let app = Router::new()
        .route("/", get(header_names))
        .layer(by_identity(ForwardedFormat::Rfc9440));
    let mut headers: Vec<(String, &str)> = WELL_KNOWN_IDENTITY_HEADERS
        .iter()
        .map(|n| ((*n).to_owned(), "spoof"))
        .collect();
    // Each also with every `-` spelled `_`.
    headers.extend(
        WELL_KNOWN_IDENTITY_HEADERS
            .iter()
            .map(|n| (n.replace('-', "_"), "spoof")),
    );
    headers.push(("x-request-id".to_owned(), "kept"));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let req = request("/", Some(&f.mallory), "10.0.0.9:4000", &headers);
    let (status, body, _) = send(app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "x-request-id");
}

#[tokio::test]
async fn a_trusted_proxys_other_identity_headers_do_not_reach_the_handler() {
    let f = fx();
    let app = Router::new()
        .route("/", get(header_names))
        .layer(by_identity(ForwardedFormat::Rfc9440));
    let leaf = client_cert_header(&f.alice);
    let req = from_proxy(
        f,
        &[
            ("client-cert", &leaf),
            ("x-ssl-client-verify", "SUCCESS"),
            ("x-amzn-mtls-clientcert-subject", "CN=admin"),
            ("x-request-id", "kept"),
        ],
    );
    let (status, body, _) = send(app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "x-request-id");
}

#[tokio::test]
async fn a_name_added_with_also_strip_is_stripped_in_both_spellings() {
    let f = fx();
    let layer = by_identity(ForwardedFormat::Rfc9440)
        .also_strip(HeaderName::from_static("x-caller-dn"))
        // Given with `_`, it strips the `-` spelling too.
        .also_strip(HeaderName::from_static("x_caller_role"));
    let app = Router::new().route("/", get(header_names)).layer(layer);
    let req = request(
        "/",
        Some(&f.mallory),
        "10.0.0.9:4000",
        &[
            ("x_caller_dn", "CN=admin"),
            ("x-caller-role", "admin"),
            ("x-caller-id", "kept"),
        ],
    );
    let (_, body, _) = send(app, req).await;
    assert_eq!(body, "x-caller-id");
}

#[test]
fn strips_answers_for_the_built_in_names_the_configured_header_and_added_names() {
    let layer = TrustedProxyLayer::by_identity(
        Policy::spiffe_id(PROXY_ID).unwrap(),
        ForwardedFormat::NginxEscapedCert(HeaderName::from_static("x-edge-cert")),
    )
    .also_strip(HeaderName::from_static("x-caller-dn"));
    for name in [
        "x-forwarded-tls-client-cert-info",
        "x-edge-cert",
        "x_edge_cert",
        "x-caller-dn",
    ] {
        assert!(layer.strips(&HeaderName::from_static(name)), "{name}");
    }
    for name in ["x-edge-certs", "x-caller-id", "accept"] {
        assert!(!layer.strips(&HeaderName::from_static(name)), "{name}");
    }
}

#[tokio::test]
async fn rfc9440_header_from_a_proxy_trusted_by_identity_is_used() {
    let f = fx();
    let leaf = client_cert_header(&f.alice);
    let chain = client_cert_chain_header(&f.alice);
    let req = request(
        "/",
        Some(&f.proxy),
        "10.0.0.2:4000",
        &[("client-cert", &leaf), ("client-cert-chain", &chain)],
    );
    let (status, body, _) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "CN=alice via TrustedProxy { header: \"client-cert\" }; leaked headers: []"
    );
}

#[tokio::test]
async fn header_from_a_proxy_trusted_by_address_is_used() {
    let f = fx();
    let layer = TrustedProxyLayer::by_peer_address(
        [IpNetwork::parse("10.1.0.0/16").unwrap()],
        ForwardedFormat::Xfcc,
    );
    let xfcc = xfcc_header(&f.alice);
    let req = request(
        "/",
        None,
        "10.1.2.3:4000",
        &[("x-forwarded-client-cert", &xfcc)],
    );
    let (status, body, _) = send(app(layer), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("CN=alice via TrustedProxy"), "{body}");
}

#[tokio::test]
async fn a_proxy_trusted_by_address_connecting_from_elsewhere_is_not_trusted() {
    let f = fx();
    let layer = TrustedProxyLayer::by_peer_address(
        [IpNetwork::parse("10.1.0.0/16").unwrap()],
        ForwardedFormat::Xfcc,
    );
    let xfcc = xfcc_header(&f.alice);
    let req = request(
        "/",
        None,
        "10.2.0.1:4000",
        &[("x-forwarded-client-cert", &xfcc)],
    );
    let (status, body, _) = send(app(layer), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "nobody; leaked headers: []");
}

#[tokio::test]
async fn an_ipv4_proxy_seen_through_a_dual_stack_listener_is_trusted_by_its_ipv4_network() {
    let f = fx();
    let layer = TrustedProxyLayer::by_peer_address(
        [IpNetwork::parse("10.1.0.0/16").unwrap()],
        ForwardedFormat::Xfcc,
    );
    let xfcc = xfcc_header(&f.alice);
    // A listener on `[::]` sees an IPv4 peer as its IPv4-mapped IPv6 address.
    let req = request(
        "/",
        None,
        "[::ffff:10.1.2.3]:4000",
        &[("x-forwarded-client-cert", &xfcc)],
    );
    let (status, body, _) = send(app(layer), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("CN=alice via TrustedProxy"), "{body}");
}

#[tokio::test]
async fn a_mapped_address_outside_the_network_is_not_trusted() {
    let f = fx();
    let layer = TrustedProxyLayer::by_peer_address(
        [IpNetwork::parse("10.1.0.0/16").unwrap()],
        ForwardedFormat::Xfcc,
    );
    let xfcc = xfcc_header(&f.alice);
    let req = request(
        "/",
        None,
        "[::ffff:10.2.0.1]:4000",
        &[("x-forwarded-client-cert", &xfcc)],
    );
    let (_, body, _) = send(app(layer), req).await;
    assert_eq!(body, "nobody; leaked headers: []");
}

#[tokio::test]
async fn a_network_written_in_the_mapped_form_still_matches_the_mapped_peer() {
    let f = fx();
    let layer = TrustedProxyLayer::by_peer_address(
        [IpNetwork::parse("::ffff:10.1.0.0/112").unwrap()],
        ForwardedFormat::Xfcc,
    );
    let xfcc = xfcc_header(&f.alice);
    let req = request(
        "/",
        None,
        "[::ffff:10.1.2.3]:4000",
        &[("x-forwarded-client-cert", &xfcc)],
    );
    let (_, body, _) = send(app(layer), req).await;
    assert!(body.starts_with("CN=alice via TrustedProxy"), "{body}");
}

#[tokio::test]
async fn a_request_without_peer_address_is_never_trusted_by_address() {
    let f = fx();
    let layer = TrustedProxyLayer::by_peer_address(
        [IpNetwork::parse("0.0.0.0/0").unwrap()],
        ForwardedFormat::Xfcc,
    );
    let xfcc = xfcc_header(&f.alice);
    let req = Request::get("/")
        .header("x-forwarded-client-cert", xfcc)
        .body(Body::empty())
        .unwrap();
    let (_, body, _) = send(app(layer), req).await;
    assert_eq!(body, "nobody; leaked headers: []");
}

#[tokio::test]
async fn only_a_handshake_certificate_can_vouch_for_the_proxy() {
    let f = fx();
    let header = client_cert_header(&f.alice);
    let forwarded_proxy = ClientCert::from_trusted_proxy(
        Arc::new(f.proxy.clone()),
        HeaderName::from_static("client-cert"),
    );
    let req = Request::get("/")
        .extension(forwarded_proxy)
        .header("client-cert", header)
        .body(Body::empty())
        .unwrap();
    let (_, body, _) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert!(!body.contains("alice"), "{body}");
}

#[tokio::test]
async fn trusted_proxy_without_header_means_no_certificate() {
    let f = fx();
    let (status, _, _) = send(
        app(by_identity(ForwardedFormat::Rfc9440)),
        request("/protected", Some(&f.proxy), "10.0.0.2:1", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body, _) = send(
        app(by_identity(ForwardedFormat::Rfc9440)),
        from_proxy(f, &[]),
    )
    .await;
    assert_eq!(body, "nobody; leaked headers: []");
}

#[tokio::test]
async fn proxy_identity_without_header_when_configured() {
    let f = fx();
    let layer = by_identity(ForwardedFormat::Rfc9440).allow_proxy_identity_without_header();
    let (status, _, _) = send(
        app(layer),
        request("/protected", Some(&f.proxy), "10.0.0.2:1", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_empty_header_never_lends_the_proxys_identity_to_its_client() {
    // nginx, Caddy and HAProxy send an empty value for a client without a certificate; an XFCC
    // header without elements says the same. With allow_proxy_identity_without_header, such a
    // client must still have no certificate, never the proxy's.
    let f = fx();
    for (format, header) in [
        (
            ForwardedFormat::NginxEscapedCert(HeaderName::from_static("x-ssl-client-cert")),
            "x-ssl-client-cert",
        ),
        (
            ForwardedFormat::Base64Der(HeaderName::from_static("x-client-cert")),
            "x-client-cert",
        ),
        (ForwardedFormat::Xfcc, "x-forwarded-client-cert"),
    ] {
        let layer = by_identity(format).allow_proxy_identity_without_header();
        let (status, _, _) = send(
            app(layer),
            request("/protected", Some(&f.proxy), "10.0.0.2:1", &[(header, "")]),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}");
    }
}

#[tokio::test]
async fn malformed_header_from_a_trusted_proxy_is_400() {
    let f = fx();
    let req = from_proxy(f, &[("client-cert", ":not base64!:")]);
    let (status, body, err) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "bad request\n")
    );
    assert!(
        matches!(err, Some(ProxyHeaderError::Malformed { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_header_from_a_trusted_proxy_is_400() {
    let f = fx();
    let huge = format!(":{}:", "A".repeat(mtls_core::forwarded::MAX_HEADER_LEN + 4));
    let req = from_proxy(f, &[("client-cert", &huge)]);
    let (status, _, _) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn repeated_client_cert_header_is_400() {
    let f = fx();
    let h = client_cert_header(&f.alice);
    let req = from_proxy(f, &[("client-cert", &h), ("client-cert", &h)]);
    let (status, _, err) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        matches!(err, Some(ProxyHeaderError::Repeated { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn xfcc_hash_mismatch_is_400() {
    let f = fx();
    // Flip the first hex digit of the Hash: it no longer matches the Cert.
    let xfcc = {
        let good = xfcc_header(&f.alice);
        let i = good.find("Hash=").unwrap() + 5;
        let mut b = good.into_bytes();
        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let req = from_proxy(f, &[("x-forwarded-client-cert", &xfcc)]);
    let (status, _, err) = send(app(by_identity(ForwardedFormat::Xfcc)), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err:?}");
}

#[tokio::test]
async fn multi_hop_xfcc_uses_only_the_last_element() {
    let f = fx();
    let bob = f.pki.ca.leaf().common_name("bob").build();
    // An earlier hop claimed bob; the adjacent proxy says alice.
    let xfcc = format!("{},{}", xfcc_header(&bob), xfcc_header(&f.alice));
    let req = from_proxy(f, &[("x-forwarded-client-cert", &xfcc)]);
    let (_, body, _) = send(app(by_identity(ForwardedFormat::Xfcc)), req).await;
    assert!(body.starts_with("CN=alice"), "{body}");
    // Two header lines are one list: the last line's last element counts.
    let req = from_proxy(
        f,
        &[
            ("x-forwarded-client-cert", &xfcc_header(&f.alice)),
            ("x-forwarded-client-cert", &xfcc_header(&bob)),
        ],
    );
    let (_, body, _) = send(app(by_identity(ForwardedFormat::Xfcc)), req).await;
    assert!(body.starts_with("CN=bob"), "{body}");
}

#[tokio::test]
async fn xfcc_element_without_cert_is_400() {
    let f = fx();
    let req = from_proxy(
        f,
        &[(
            "x-forwarded-client-cert",
            "By=spiffe://x/y;URI=spiffe://a/b",
        )],
    );
    let (status, _, err) = send(app(by_identity(ForwardedFormat::Xfcc)), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err, Some(ProxyHeaderError::NoCertInXfcc));
}

#[tokio::test]
async fn nginx_escaped_cert_is_used_and_empty_means_no_certificate() {
    let f = fx();
    let format = ForwardedFormat::NginxEscapedCert(HeaderName::from_static("x-ssl-client-cert"));
    let header = nginx_escaped_cert_header(&f.alice);
    let req = from_proxy(f, &[("x-ssl-client-cert", &header)]);
    let (_, body, _) = send(app(by_identity(format.clone())), req).await;
    assert!(body.starts_with("CN=alice via TrustedProxy"), "{body}");
    let req = request(
        "/protected",
        Some(&f.proxy),
        "10.0.0.2:1",
        &[("x-ssl-client-cert", "")],
    );
    assert_eq!(
        send(app(by_identity(format)), req).await.0,
        StatusCode::UNAUTHORIZED
    );
}

fn base64_der(name: &'static str) -> TrustedProxyLayer {
    by_identity(ForwardedFormat::Base64Der(HeaderName::from_static(name)))
}

#[tokio::test]
async fn base64_der_leaf_from_a_trusted_proxy_is_used() {
    // Caddy and HAProxy: the leaf alone.
    let f = fx();
    let leaf = base64_encode(f.alice.der());
    let req = from_proxy(f, &[("x-client-cert", &leaf)]);
    let (status, body, _) = send(app(base64_der("x-client-cert")), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "CN=alice via TrustedProxy { header: \"x-client-cert\" }; leaked headers: []"
    );
}

#[tokio::test]
async fn base64_der_chain_from_a_trusted_proxy_gives_the_leaf_with_its_chain() {
    // Traefik: the leaf, then its chain.
    let f = fx();
    let header = base64_der_header(&f.alice);
    assert!(header.contains(','), "alice's chain has an intermediate");
    let app = Router::new()
        .route(
            "/",
            get(|cert: ClientCert| async move {
                format!("{} chain {}", cert.subject(), cert.identity().chain().len())
            }),
        )
        .layer(base64_der("x-forwarded-tls-client-cert"));
    let req = from_proxy(f, &[("x-forwarded-tls-client-cert", &header)]);
    let (status, body, _) = send(app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "CN=alice chain 2");
}

#[tokio::test]
async fn base64_der_empty_from_a_trusted_proxy_means_no_certificate() {
    let f = fx();
    let (status, _, _) = send(
        app(base64_der("x-client-cert")),
        request(
            "/protected",
            Some(&f.proxy),
            "10.0.0.2:1",
            &[("x-client-cert", "")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn base64_der_in_another_format_from_a_trusted_proxy_is_400() {
    let f = fx();
    let rfc9440 = client_cert_header(&f.alice);
    let req = from_proxy(f, &[("x-client-cert", &rfc9440)]);
    let (status, _, err) = send(app(base64_der("x-client-cert")), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err = err.unwrap();
    assert!(
        matches!(&err, ProxyHeaderError::Malformed { header, .. } if header == "x-client-cert"),
        "{err:?}"
    );
    assert!(err.to_string().contains("RFC 9440"), "{err}");
}

#[tokio::test]
async fn base64_der_header_from_an_untrusted_peer_is_stripped_and_ignored() {
    let f = fx();
    let leaf = base64_encode(f.alice.der());
    let req = request(
        "/",
        Some(&f.mallory),
        "10.0.0.9:4000",
        &[("x-client-cert", &leaf), ("x_client_cert", &leaf)],
    );
    let (_, body, _) = send(app(base64_der("x-client-cert")), req).await;
    assert_eq!(body, "CN=mallory via TlsHandshake; leaked headers: []");
}

#[tokio::test]
async fn reverification_refuses_a_forwarded_certificate_from_another_ca() {
    let f = fx();
    let layer = by_identity(ForwardedFormat::Rfc9440)
        .reverify_with(vec![f.pki.ca.cert_der().clone()])
        .unwrap();
    let rogue = f.pki.rogue_ca.leaf().common_name("alice").build();
    let req = from_proxy(f, &[("client-cert", &client_cert_header(&rogue))]);
    let (status, _, err) = send(app(layer.clone()), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        matches!(err, Some(ProxyHeaderError::Reverify(_))),
        "{err:?}"
    );
    // A genuine one (with its intermediate in Client-Cert-Chain) passes.
    let req = from_proxy(
        f,
        &[
            ("client-cert", &client_cert_header(&f.alice)),
            ("client-cert-chain", &client_cert_chain_header(&f.alice)),
        ],
    );
    let (status, body, _) = send(app(layer), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn source_names_the_header() {
    let f = fx();
    let c = ClientCert::from_trusted_proxy(
        Arc::new(f.proxy.clone()),
        HeaderName::from_static("client-cert"),
    );
    assert!(matches!(c.source(), CertSource::TrustedProxy { header } if header == "client-cert"));
}

#[tokio::test]
async fn an_expired_forwarded_leaf_is_401_and_never_the_callers_identity() {
    // The proxy verified it once, perhaps long ago (a pooled upstream connection): the layer
    // checks the forwarded leaf's dates itself.
    let f = fx();
    let expired = f.pki.ca.leaf().common_name("alice").expired().build();
    let header = client_cert_header(&expired);
    let layer = || by_identity(ForwardedFormat::Rfc9440);
    let (status, _, _) = send(
        app(layer()),
        request(
            "/protected",
            Some(&f.proxy),
            "10.0.0.2:1",
            &[("client-cert", &header)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body, _) = send(app(layer()), from_proxy(f, &[("client-cert", &header)])).await;
    assert!(body.starts_with("nobody"), "{body}");
    // The same leaf, current: served.
    let current = client_cert_header(&f.alice);
    let (status, _, _) = send(
        app(layer()),
        request(
            "/protected",
            Some(&f.proxy),
            "10.0.0.2:1",
            &[("client-cert", &current)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_proxy_whose_own_certificate_expired_is_not_trusted() {
    let f = fx();
    let expired_proxy = f
        .pki
        .ca
        .leaf()
        .spiffe(PROXY_ID)
        .expired()
        .build()
        .identity();
    let header = client_cert_header(&f.alice);
    let req = request(
        "/",
        Some(&expired_proxy),
        "10.0.0.2:1",
        &[("client-cert", &header)],
    );
    let (_, body, _) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert_eq!(body, "nobody; leaked headers: []");
}

/// `f.alice`'s XFCC value with a `Chain` of `chain_pem` added.
fn xfcc_with_chain(f: &Fixture, chain_pem: &str) -> String {
    format!(
        "{};Chain=\"{}\"",
        xfcc_header(&f.alice),
        mtls_core::testing::url_encode(chain_pem)
    )
}

#[tokio::test]
async fn an_xfcc_chain_that_does_not_start_with_its_cert_is_400() {
    let f = fx();
    let bob = f.pki.intermediate.leaf().common_name("bob").build();
    // Cert says alice, Chain says bob: neither may become the caller.
    let xfcc = xfcc_with_chain(f, &bob.chain_pem());
    let req = from_proxy(f, &[("x-forwarded-client-cert", &xfcc)]);
    let (status, body, err) = send(app(by_identity(ForwardedFormat::Xfcc)), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(err, Some(ProxyHeaderError::ChainMismatch));
}

#[tokio::test]
async fn an_xfcc_chain_that_starts_with_its_cert_gives_the_cert_with_its_chain() {
    let f = fx();
    let xfcc = xfcc_with_chain(f, &f.alice.chain_pem());
    let req = from_proxy(f, &[("x-forwarded-client-cert", &xfcc)]);
    let (status, body, _) = send(app(by_identity(ForwardedFormat::Xfcc)), req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("CN=alice"), "{body}");
}

#[tokio::test]
async fn a_forwarded_header_with_bytes_that_are_not_visible_ascii_is_400() {
    let f = fx();
    for (format, name) in [
        (ForwardedFormat::Xfcc, "x-forwarded-client-cert"),
        (ForwardedFormat::Rfc9440, "client-cert"),
    ] {
        let mut req = from_proxy(f, &[]);
        req.headers_mut().insert(
            HeaderName::from_static(name),
            http::HeaderValue::from_bytes(b"Cert=\xff").unwrap(),
        );
        let (status, _, err) = send(app(by_identity(format)), req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(
            err,
            Some(ProxyHeaderError::NotText {
                header: HeaderName::from_static(name)
            }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_forwarded_value_that_is_der_but_not_a_certificate_is_400() {
    let f = fx();
    // An empty DER SEQUENCE: a well-formed byte sequence, no certificate.
    let req = from_proxy(f, &[("client-cert", ":MAA=:")]);
    let (status, _, err) = send(app(by_identity(ForwardedFormat::Rfc9440)), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        matches!(err, Some(ProxyHeaderError::Identity(_))),
        "{err:?}"
    );
}
