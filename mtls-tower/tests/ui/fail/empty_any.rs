use mtls_tower::require_cert;

#[require_cert(any())]
async fn handler() {}

fn main() {}
