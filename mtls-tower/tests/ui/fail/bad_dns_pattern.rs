use mtls_tower::require_cert;

#[require_cert(san = "f*.example.com")]
async fn handler() {}

fn main() {
    let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
}
