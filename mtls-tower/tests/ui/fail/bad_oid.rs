use mtls_tower::require_cert;

#[require_cert(extension = "1.2.03")]
async fn handler() {}

fn main() {}
