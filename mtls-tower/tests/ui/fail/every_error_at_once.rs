// Three mistakes in one attribute, at two levels: all three are reported in one compile, so the
// author does not fix them one build at a time.
use mtls_tower::require_cert;

#[require_cert(spiffe_path = "/ns/billing", san = "f*.example.com", any(cn = "", ou = "ops"))]
async fn handler() {}

fn main() {
    let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
}
