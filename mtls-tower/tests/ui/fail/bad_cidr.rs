use mtls_tower::require_cert;

#[require_cert(ip = "10.0.0.1/8")]
async fn handler() {}

fn main() {}
