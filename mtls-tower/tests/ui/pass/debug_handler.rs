// Works with axum's `#[debug_handler]` placed below it.
use axum::debug_handler;
use axum::routing::get;
use axum::Router;
use mtls_tower::{require_cert, ClientCert};

#[require_cert(san = "*.svc.internal")]
#[debug_handler]
async fn handler(cert: ClientCert) -> String {
    cert.subject().to_string()
}

fn main() {
    let _app: Router = Router::new().route("/", get(handler));
}
