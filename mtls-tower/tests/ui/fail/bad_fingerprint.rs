use mtls_tower::require_cert;

#[require_cert(fingerprint = "sha256:abcd")]
async fn handler() {}

fn main() {}
