use mtls_tower::require_cert;

#[require_cert(email = "ops@")]
async fn handler() {}

fn main() {}
