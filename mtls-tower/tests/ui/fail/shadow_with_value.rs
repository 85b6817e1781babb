use mtls_tower::require_cert;

#[require_cert(cn = "a", shadow = true)]
async fn handler() {}

fn main() {}
