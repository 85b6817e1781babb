// `policy = path` takes a `fn() -> Result<Policy, E>` as well as a `fn() -> Policy`, on handlers
// and on tonic methods alike.
use mtls_tower::{require_cert, Policy, PolicyError};

fn admins() -> Result<Policy, PolicyError> {
    Policy::ou("admins")
}

fn ops() -> Result<Policy, String> {
    Policy::ou("ops").map_err(|e| e.to_string())
}

#[require_cert(policy = admins, cn = "alice")]
async fn handler() {}

#[require_cert(policy = ops)]
async fn other() {}

fn main() {
    let _ = axum::Router::<()>::new()
        .route("/", axum::routing::get(handler))
        .route("/ops", axum::routing::get(other));
    assert_eq!(mtls_tower::check_policies().unwrap(), 2);
}
