use mtls_tower::require_cert;

#[require_cert(cn = "")]
async fn handler() {}

fn main() {}
