use mtls_tower::require_cert;

#[require_cert(cn = "a", shadow, shadow)]
async fn handler() {}

fn main() {}
