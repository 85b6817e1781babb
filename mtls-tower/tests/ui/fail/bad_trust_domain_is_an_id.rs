use mtls_tower::require_cert;

#[require_cert(trust_domain = "spiffe://prod.example/ns/a")]
async fn handler() {}

fn main() {}
