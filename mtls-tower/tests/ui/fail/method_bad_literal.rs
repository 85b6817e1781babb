use mtls_tower::require_cert;
use tonic::{Request, Response, Status};

#[tonic::async_trait]
trait Greeter: Send + Sync + 'static {
    async fn say_hello(&self, request: Request<String>) -> Result<Response<String>, Status>;
}

struct MyGreeter;

#[tonic::async_trait]
impl Greeter for MyGreeter {
    #[require_cert(san = "*.*.internal")]
    async fn say_hello(&self, request: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

fn main() {}
