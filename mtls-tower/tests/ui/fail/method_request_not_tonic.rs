use mtls_tower::require_cert;

struct Service;

impl Service {
    #[require_cert(cn = "a")]
    async fn handler(&self, id: u32) -> Result<tonic::Response<u32>, tonic::Status> {
        Ok(tonic::Response::new(id))
    }
}

fn main() {}
