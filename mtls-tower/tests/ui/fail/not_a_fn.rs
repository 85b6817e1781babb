use mtls_tower::require_cert;

#[require_cert(cn = "a")]
struct Handler;

fn main() {}
