use mtls_tower::require_cert;

#[require_cert(san = "a.internal", san = "b.internal")]
async fn handler() {}

fn main() {}
