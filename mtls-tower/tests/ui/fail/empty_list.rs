use mtls_tower::require_cert;

#[require_cert(san = [])]
async fn handler() {}

fn main() {}
