use mtls_tower::require_cert;
use tonic::{Request, Response, Status};

struct Service;

impl Service {
    #[require_cert(cn = "a")]
    fn handler(&self, request: Request<u8>) -> Result<Response<u8>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

fn main() {}
