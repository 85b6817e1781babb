//! `#[require_cert]` on tonic service methods, called directly with a `ClientCert` in the
//! request's extensions (as `mtls_tower::serve` puts it there). The same methods over real TLS
//! with a tonic client are tested in `tests/tests/grpc.rs`.

use mtls_core::testing::TestCa;
use mtls_tower::{require_cert, ClientCert, ClientIdentity};
use tonic::{Code, Request, Response, Status};

#[tonic::async_trait]
trait Greeter: Send + Sync + 'static {
    async fn say_hello(&self, request: Request<String>) -> Result<Response<String>, Status>;
    async fn stacked(&self, request: Request<String>) -> Result<Response<String>, Status>;
    async fn shadowed(&self, request: Request<String>) -> Result<Response<String>, Status>;
    async fn wildcard(&self, request: Request<String>) -> Result<Response<String>, Status>;
}

struct MyGreeter;

#[tonic::async_trait]
impl Greeter for MyGreeter {
    #[require_cert(san = "*.billing.internal")]
    async fn say_hello(&self, request: Request<String>) -> Result<Response<String>, Status> {
        let cert = mtls_tower::grpc::client_cert(&request)?;
        let name = cert.dns_names()[0].clone();
        Ok(Response::new(format!(
            "hello {} from {name}",
            request.into_inner()
        )))
    }

    #[require_cert(san = "*.billing.internal")]
    #[require_cert(not(ou = "contractors"))]
    async fn stacked(&self, _request: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new("stacked".into()))
    }

    #[require_cert(shadow, san = "*.billing.internal")]
    async fn shadowed(&self, _request: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new("shadowed".into()))
    }

    #[require_cert(san = "*.billing.internal")]
    async fn wildcard(&self, _: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new("wildcard".into()))
    }
}

/// Without `#[async_trait]`.
impl MyGreeter {
    #[require_cert(cn = "admin")]
    async fn admin(&self, request: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    /// A `_` request pattern: the macro binds it to a name of its own to check it.
    #[require_cert(cn = "admin")]
    async fn admin_unnamed(&self, _: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new("unnamed".into()))
    }
}

fn ca() -> TestCa {
    TestCa::new("gRPC methods CA")
}

fn request(identity: Option<ClientIdentity>) -> Request<String> {
    let mut request = Request::new("bob".to_string());
    if let Some(identity) = identity {
        request
            .extensions_mut()
            .insert(ClientCert::for_tests(identity));
    }
    request
}

fn billing() -> Option<ClientIdentity> {
    Some(ca().leaf().dns("api.billing.internal").build().identity())
}

fn web() -> Option<ClientIdentity> {
    Some(ca().leaf().dns("www.web.internal").build().identity())
}

#[tokio::test]
async fn allowed_certificate_runs_the_method() {
    let res = MyGreeter.say_hello(request(billing())).await.unwrap();
    assert_eq!(res.into_inner(), "hello bob from api.billing.internal");
}

#[tokio::test]
async fn denied_certificate_gets_permission_denied_with_a_fixed_message() {
    let status = MyGreeter.say_hello(request(web())).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "permission denied");
}

#[tokio::test]
async fn missing_certificate_gets_unauthenticated() {
    let status = MyGreeter.say_hello(request(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn stacked_attributes_must_all_allow() {
    assert!(MyGreeter.stacked(request(billing())).await.is_ok());
    let contractor = ca()
        .leaf()
        .dns("api.billing.internal")
        .org_unit("contractors")
        .build()
        .identity();
    let status = MyGreeter
        .stacked(request(Some(contractor)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        MyGreeter.stacked(request(web())).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn shadow_mode_runs_the_method_even_when_denied() {
    assert!(MyGreeter.shadowed(request(web())).await.is_ok());
    assert!(MyGreeter.shadowed(request(None)).await.is_ok());
}

#[tokio::test]
async fn wildcard_request_pattern_is_still_checked() {
    assert_eq!(
        MyGreeter.wildcard(request(web())).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(MyGreeter.wildcard(request(billing())).await.is_ok());
}

#[tokio::test]
async fn plain_async_method_is_checked_too() {
    let admin = ca().leaf().common_name("admin").build().identity();
    assert!(MyGreeter.admin(request(Some(admin))).await.is_ok());
    assert_eq!(
        MyGreeter
            .admin(request(billing()))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        MyGreeter.admin(request(None)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn plain_async_method_with_a_wildcard_request_pattern_is_checked() {
    let admin = ca().leaf().common_name("admin").build().identity();
    assert!(MyGreeter.admin_unnamed(request(Some(admin))).await.is_ok());
    let status = MyGreeter
        .admin_unnamed(request(billing()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = MyGreeter.admin_unnamed(request(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
