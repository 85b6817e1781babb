// The old key names `spiffe` and `oid` still compile and mean `spiffe_id` and `extension`.
#![allow(deprecated)]
use mtls_tower::require_cert;

#[require_cert(spiffe = "spiffe://prod.example/ns/billing/sa/api")]
async fn by_old_spiffe_key() {}

#[require_cert(oid = "1.3.6.1.4.1.99999.1")]
async fn by_old_oid_key() {}

fn main() {
    let _ = axum::Router::<()>::new()
        .route("/a", axum::routing::get(by_old_spiffe_key))
        .route("/b", axum::routing::get(by_old_oid_key));
}
