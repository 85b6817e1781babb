// An old key name still works, with a deprecation warning on the key (an error here, under
// `deny(deprecated)`, so that the test sees it).
#![deny(deprecated)]
use mtls_tower::require_cert;

#[require_cert(spiffe = "spiffe://prod.example/ns/billing/sa/api")]
async fn handler() {}

fn main() {
    let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
}
