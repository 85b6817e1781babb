use mtls_tower::{require_cert, Policy};
use tonic::{Request, Response, Status};

struct Service;

impl Service {
    fn policy() -> Policy {
        Policy::cn("a").unwrap()
    }

    #[require_cert(policy = Self::policy)]
    async fn call(&self, request: Request<u8>) -> Result<Response<u8>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

fn main() {}
