use mtls_tower::require_cert;

#[require_cert(san = 5)]
async fn handler() {}

fn main() {}
