//! [`guard_methods`]: the `#[require_cert]` policies of a tonic service's methods, decided on the
//! request head, before tonic decodes anything.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::server::NamedService;
use tower_service::Service;

use super::GrpcRejection;
use crate::__private::grpc::{MethodGuard, PreChecked};
use crate::__private::GuardConfig;
use crate::cert::ClientCert;
use crate::layer::ResponseFuture;

/// Wraps a tonic-generated server (`GreeterServer::new(svc)`) so that the `#[require_cert]`
/// policies on its methods are decided on the request head, before tonic reads or decodes the
/// message. A rejected caller (denied, or without a certificate on a `client_auth_optional()`
/// server) then costs the server its headers only, whatever it sends.
///
/// ```
/// # #[cfg(any())] {
/// let routes = tonic::service::Routes::new(mtls_tower::grpc::guard_methods(GreeterServer::new(MyGreeter)));
/// mtls_tower::serve(listener, routes).await?;
/// # }
/// ```
///
/// How: each `#[require_cert]` on a method of `impl Greeter for MyGreeter` registers its policy
/// at link time, named `<MyGreeter as Greeter>::say_hello`; this wrapper, given
/// `GreeterServer<MyGreeter>`, takes the policies of `MyGreeter`'s `Greeter` methods and matches
/// each to its route (`/greeter.Greeter/SayHello`: the method's Rust name is the route's in snake
/// case). The answer to a rejection is the one the method would have returned
/// (`UNAUTHENTICATED`, `PERMISSION_DENIED`).
///
/// The method's own check still runs after this one (a second look, not a second decision).
/// What the wrapper cannot match, it leaves to that check, so nothing is ever less checked:
/// a server wrapped in something else first (tonic's `InterceptedService`: wrap the inner server
/// instead), an `impl<T> Greeter for MyGreeter<T>` (generic impls have no single name), or a
/// method whose Rust name is not its route's in snake case (tonic-build's manual builder allows
/// that). [`GuardMethods::guarded_methods`] says what was matched; a method called without a
/// check in front logs one warning (target `mtls_tower::grpc`).
pub fn guard_methods<S: NamedService>(inner: S) -> GuardMethods<S> {
    let guards = registered(std::any::type_name::<S>());
    if guards.is_empty() {
        tracing::debug!(
            target: "mtls_tower::grpc",
            service = S::NAME,
            "guard_methods: no #[require_cert] method policies for this server"
        );
    }
    GuardMethods {
        inner,
        guards: guards.into(),
    }
}

/// The service made by [`guard_methods`]; a tonic `NamedService` like the server it wraps.
#[derive(Clone)]
pub struct GuardMethods<S> {
    inner: S,
    /// Each guarded method's name (lower case, no underscores) and one of its policies.
    guards: Arc<[(Box<str>, &'static GuardConfig)]>,
}

impl<S> std::fmt::Debug for GuardMethods<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardMethods")
            .field("guards", &self.guards.len())
            .finish_non_exhaustive()
    }
}

impl<S> GuardMethods<S> {
    /// The methods whose policies are decided here, as written in Rust (`say_hello`) but lower
    /// case and without underscores; once per stacked `#[require_cert]`.
    pub fn guarded_methods(&self) -> impl Iterator<Item = &str> {
        self.guards.iter().map(|(name, _)| &**name)
    }

    /// The wrapped server.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: NamedService> NamedService for GuardMethods<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, ResBody> Service<Request<B>> for GuardMethods<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + NamedService,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .filter(|(service, _)| *service == S::NAME)
            .map(|(_, method)| method);
        let mut judged = false;
        if let Some(method) = method {
            let cert = req.extensions().get::<ClientCert>();
            for (name, config) in self.guards.iter() {
                if !same_method(method, name) {
                    continue;
                }
                judged = true;
                let enforcement = config.enforcement();
                if enforcement.is_shadow() {
                    // Report-only: the method's own check logs it, once.
                    continue;
                }
                if let Some(rejection) = enforcement.judge(cert, "grpc", req.uri().path()) {
                    // What the method would have returned: tonic answers an `Err(status)` from
                    // a method with `status.into_http()` (tests/tests/grpc.rs compares them).
                    let mut response = GrpcRejection::status(&rejection).into_http();
                    response.extensions_mut().insert(rejection);
                    return ResponseFuture::rejected(response);
                }
            }
        }
        if judged {
            req.extensions_mut().insert(PreChecked);
        }
        ResponseFuture::future(self.inner.call(req))
    }
}

/// The registered policies of `server_type`'s methods (`path::FooServer<path::Impl>`).
fn registered(server_type: &str) -> Vec<(Box<str>, &'static GuardConfig)> {
    let Some(prefix) = impl_prefix(server_type) else {
        return Vec::new();
    };
    inventory::iter::<MethodGuard>
        .into_iter()
        .filter_map(|guard| {
            let rest = guard.name().strip_prefix(&prefix)?;
            let (method, _) = rest.split_once("::")?;
            Some((normalized(method).into(), guard.config()))
        })
        .collect()
}

/// `path::to::FooServer<path::Impl>` gives `<path::Impl as path::to::Foo>::`: the start of the
/// names the methods of `impl Foo for Impl` register under (tonic-build names the server after
/// the trait, in the trait's module).
fn impl_prefix(server_type: &str) -> Option<String> {
    let (server, rest) = server_type.split_once('<')?;
    let implementor = rest.strip_suffix('>')?;
    let trait_path = server.strip_suffix("Server")?;
    if trait_path.is_empty() || trait_path.ends_with(':') {
        return None;
    }
    Some(format!("<{implementor} as {trait_path}>::"))
}

fn normalized(method: &str) -> String {
    method
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether the route's method (`SayHello`) is the registered one (`sayhello`), without
/// allocating: case and underscores aside, snake case is the route name.
fn same_method(route: &str, registered: &str) -> bool {
    route
        .bytes()
        .filter(|b| *b != b'_')
        .map(|b| b.to_ascii_lowercase())
        .eq(registered.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_names_the_impl_and_the_trait() {
        assert_eq!(
            impl_prefix("app::pb::greeter_server::GreeterServer<app::MyGreeter>").as_deref(),
            Some("<app::MyGreeter as app::pb::greeter_server::Greeter>::")
        );
        assert_eq!(
            impl_prefix("a::GreeterServer<a::Wrap<b::X>>").as_deref(),
            Some("<a::Wrap<b::X> as a::Greeter>::")
        );
    }

    #[test]
    fn types_that_are_not_a_generated_server_give_no_prefix() {
        assert_eq!(impl_prefix("a::Routes"), None);
        assert_eq!(impl_prefix("a::Intercepted<a::GreeterServer<X>>"), None);
        assert_eq!(impl_prefix("a::Server<X>"), None);
    }

    #[test]
    fn route_names_match_their_snake_case_method() {
        assert!(same_method("SayHello", &normalized("say_hello")));
        assert!(same_method("GetHTTPStatus", &normalized("get_http_status")));
        assert!(same_method("Get2FA", &normalized("get2_fa")));
        assert!(!same_method("SayHellox", &normalized("say_hello")));
        assert!(!same_method("Say", &normalized("say_hello")));
    }
}
