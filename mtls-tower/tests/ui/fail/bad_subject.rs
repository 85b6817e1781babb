use mtls_tower::require_cert;

#[require_cert(subject = "Locality=Paris")]
async fn handler() {}

fn main() {}
