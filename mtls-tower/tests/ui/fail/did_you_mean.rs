// Another tool's name for a key gets the key it most likely meant.
use mtls_tower::require_cert;

#[require_cert(common_name = "alice")]
async fn handler() {}

fn main() {
    let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
}
