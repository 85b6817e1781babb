use mtls_tower::require_cert;

#[require_cert(san "a.internal")]
async fn handler() {}

fn main() {}
