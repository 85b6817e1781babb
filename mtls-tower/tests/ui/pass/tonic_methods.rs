//! `#[require_cert]` on tonic service methods: inside `#[tonic::async_trait]` impls (the shape
//! tonic-build generates) and on plain `async fn` methods.

use mtls_tower::{require_cert, Policy};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
trait Greeter: Send + Sync + 'static {
    async fn say_hello(&self, request: Request<String>) -> Result<Response<String>, Status>;
    async fn ignored(&self, request: Request<String>) -> Result<Response<()>, Status>;
    async fn stacked(&self, request: Request<Vec<u8>>) -> Result<Response<u32>, Status>;
    async fn keys(&self, request: Request<()>) -> Result<Response<()>, Status>;
    async fn mutable(&self, request: Request<String>) -> Result<Response<String>, Status>;
    async fn client_stream(
        &self,
        request: Request<tonic::Streaming<u8>>,
    ) -> Result<Response<u8>, Status>;
    type ServerStreamStream: Send + 'static;
    async fn server_stream(
        &self,
        request: Request<u8>,
    ) -> Result<Response<Self::ServerStreamStream>, Status>;
}

fn billing() -> Policy {
    Policy::trust_domain("billing.example").unwrap()
}

struct MyGreeter {
    greeting: String,
}

#[tonic::async_trait]
impl Greeter for MyGreeter {
    /// Docs and other attributes stay.
    #[require_cert(san = "client.internal")]
    #[allow(clippy::needless_return)]
    async fn say_hello(&self, request: Request<String>) -> Result<Response<String>, Status> {
        let cert = mtls_tower::grpc::client_cert(&request)?;
        Ok(Response::new(format!("{} {} ({})", self.greeting, request.get_ref(), cert.subject())))
    }

    #[require_cert(deny = "forbidden", uri_prefix = "spiffe://example.org/")]
    async fn ignored(&self, _: Request<String>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    #[require_cert(trust_domain = "example.org")]
    #[require_cert(any(spiffe_id = "spiffe://example.org/a", spiffe_path_prefix = "/ns/b"))]
    async fn stacked(&self, _request: Request<Vec<u8>>) -> Result<Response<u32>, Status> {
        Ok(Response::new(1))
    }

    #[require_cert(shadow, policy = billing, not(ou = "contractors"), eku = "clientAuth")]
    async fn keys(&self, request: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    #[require_cert]
    async fn mutable(&self, mut request: Request<String>) -> Result<Response<String>, Status> {
        request.get_mut().push('!');
        Ok(Response::new(request.into_inner()))
    }

    #[require_cert(ou = "streamers")]
    async fn client_stream(
        &self,
        _request: Request<tonic::Streaming<u8>>,
    ) -> Result<Response<u8>, Status> {
        Ok(Response::new(0))
    }

    type ServerStreamStream = std::vec::IntoIter<u8>;

    #[require_cert(ou = "streamers")]
    async fn server_stream(
        &self,
        request: Request<u8>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        Ok(Response::new(vec![request.into_inner()].into_iter()))
    }
}

/// Without `#[async_trait]`: an inherent `async fn` method.
impl MyGreeter {
    #[require_cert(cn = "admin")]
    pub async fn admin(&self, request: Request<u8>) -> Result<Response<u8>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    #[require_cert(cn = "admin")]
    pub async fn unnamed(&self, _: Request<u8>) -> Result<Response<u8>, Status> {
        Ok(Response::new(0))
    }
}

fn main() {
    let greeter = MyGreeter { greeting: "hello".into() };
    // The futures are only built here; behaviour is tested in tests/grpc_methods.rs.
    drop(greeter.say_hello(Request::new("x".into())));
    drop(greeter.admin(Request::new(1)));
}
