use mtls_tower::require_cert;

#[require_cert(oid = "1.2.03")]
async fn handler() {}

fn main() {}
