use mtls_tower::require_cert;

#[require_cert(spiffe_id = "spiffe://Prod.Example/ns/a")]
async fn handler() {}

fn main() {}
