// Every rule key, combinators, lists, `policy = path`, `shadow`, stacked attributes, and the bare
// attribute.
use axum::routing::get;
use axum::Router;
use mtls_tower::{require_cert, Policy};

fn admins() -> Policy {
    Policy::ou("admins").unwrap()
}

#[require_cert(
    any(
        san = ["a.internal", "*.b.internal"],
        uri = "https://svc.example/x",
        uri_prefix = "https://svc.example/",
        spiffe_id = "spiffe://td.example/w",
        all(trust_domain = "td.example", spiffe_path_prefix = "/ns/a"),
        ip = "10.0.0.0/8",
        email = "@example.com",
        cn = "x",
        o = "Example",
        ou = "eng",
        subject = "L=Paris",
        issuer = "CN=Issuing CA,O=Example",
        issuer_cn = "Issuing CA",
        eku = "clientAuth",
        extension = "1.3.6.1.4.1.99999.1=0500",
        cert_policy = "2.23.140.1.2.1",
        fingerprint = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        serial = "0a:ff",
    ),
    not(cn = "mallory"),
    policy = admins,
    shadow,
)]
async fn everything() -> &'static str {
    "ok"
}

#[require_cert]
#[require_cert(eku = "1.3.6.1.5.5.7.3.2")]
async fn stacked() -> &'static str {
    "ok"
}

fn main() {
    let _app: Router = Router::new().route("/", get(everything)).route("/s", get(stacked));
}
