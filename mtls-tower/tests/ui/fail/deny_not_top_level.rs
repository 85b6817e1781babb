use mtls_tower::require_cert;

#[require_cert(any(cn = "a", deny = "not_found"))]
async fn handler() {}

fn main() {}
