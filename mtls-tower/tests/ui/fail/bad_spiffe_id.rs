use mtls_tower::require_cert;

#[require_cert(spiffe = "spiffe://Prod.Example/ns/a")]
async fn handler() {}

fn main() {}
