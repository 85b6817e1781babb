use mtls_tower::require_cert;

#[require_cert(eku = "clientAuthentication")]
async fn handler() {}

fn main() {}
