use mtls_tower::require_cert;

struct Service;

impl Service {
    #[require_cert(cn = "a")]
    async fn handler(&self) {}
}

fn main() {}
