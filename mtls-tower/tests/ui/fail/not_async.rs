use mtls_tower::require_cert;

#[require_cert(cn = "a")]
fn handler() {}

fn main() {}
