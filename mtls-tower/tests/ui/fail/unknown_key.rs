// The original fn is still emitted: `main` uses it without a second error.
use mtls_tower::require_cert;

#[require_cert(sna = "svc-a.internal")]
async fn handler() {}

fn main() {
    let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
}
