//! [`guard_methods`]: the `#[require_cert]` policies of a tonic service's methods, decided on the
//! request head, before tonic decodes anything.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::server::NamedService;
use tower_service::Service;

use super::GrpcRejection;
use crate::__private::grpc::{unbuildable_status, MethodGuard, PreChecked};
use crate::__private::GuardLookup;
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
/// `GreeterServer<MyGreeter>`, takes the policies of `MyGreeter`'s `Greeter` methods and gives
/// each to one route: `say_hello` to `/greeter.Greeter/SayHello`, the upper camel case of the
/// Rust name, which tonic-build made by turning the proto name into snake case (a name that does
/// not come back the same way, such as `get_item_2`, is given no route). Routes are compared
/// exactly: `/greeter.Greeter/sayhello` is tonic's unknown method, as it would be without the
/// wrapper. The answer to a rejection is the one the method would have returned
/// (`UNAUTHENTICATED`, `PERMISSION_DENIED`).
///
/// The method's own check still runs after this one, so nothing is ever less checked than
/// without the wrapper; what the wrapper cannot match is decided by that check alone, after
/// tonic has decoded: a server wrapped in something else first (tonic's `InterceptedService`:
/// wrap the inner server instead), an `impl<T> Greeter for MyGreeter<T>` (generic impls have no
/// single name), a method whose name has no route as above, or one that tonic-build's manual
/// builder gave a route other than its name's (there, give methods the snake case of their
/// route: another method's route would get this one's policy too). The match relies on
/// `std::any::type_name`, whose text Rust does not promise to keep: if a toolchain changed it,
/// nothing would match, and the wrapper warns when it finds no policy for an impl that has some.
/// [`GuardMethods::guarded_methods`] says what was matched; a guarded method called without a
/// check in front logs one warning (target `mtls_tower::grpc`).
pub fn guard_methods<S: NamedService>(inner: S) -> GuardMethods<S> {
    let server_type = std::any::type_name::<S>();
    let guards = registered(server_type);
    if guards.is_empty() {
        tracing::debug!(
            target: "mtls_tower::grpc",
            service = S::NAME,
            "guard_methods: no #[require_cert] method policies for this server"
        );
        // Policies registered for this very implementor, none of them matched: the type names
        // no longer read as expected (another toolchain?), and the pre-check is off.
        let implementor = server_type
            .split_once('<')
            .and_then(|(_, rest)| rest.strip_suffix('>'));
        let trait_name = trait_path(server_type).and_then(|t| t.rsplit("::").next());
        if let (Some(implementor), Some(trait_name)) = (implementor, trait_name) {
            let registered_for = format!("<{implementor} as ");
            let of_trait = format!("{trait_name}>::");
            if inventory::iter::<MethodGuard>
                .into_iter()
                .any(|g| g.name().starts_with(&registered_for) && g.name().contains(&of_trait))
            {
                tracing::warn!(
                    target: "mtls_tower::grpc",
                    service = S::NAME,
                    server_type,
                    "guard_methods matched none of the #[require_cert] policies registered for this server's methods: they are checked only after tonic decodes the request"
                );
            }
        }
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
    /// Each guarded method's route (`SayHello`) and one of its policies.
    guards: Arc<[(Box<str>, GuardLookup)]>,
}

impl<S> std::fmt::Debug for GuardMethods<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardMethods")
            .field("guards", &self.guards.len())
            .finish_non_exhaustive()
    }
}

impl<S> GuardMethods<S> {
    /// The routes (`SayHello`) whose methods' policies are decided here; once per stacked
    /// `#[require_cert]`.
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
            for (route, config) in self.guards.iter() {
                if **route != *method {
                    continue;
                }
                judged = true;
                let config = match config {
                    Ok(config) => config,
                    Err(_) => {
                        // The policy cannot be built: fail closed. The method's own check logs
                        // why; the answer is what it would return.
                        let response = unbuildable_status().into_http();
                        return ResponseFuture::rejected(response);
                    }
                };
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
fn registered(server_type: &str) -> Vec<(Box<str>, GuardLookup)> {
    let Some(prefix) = impl_prefix(server_type) else {
        return Vec::new();
    };
    inventory::iter::<MethodGuard>
        .into_iter()
        .filter_map(|guard| {
            let rest = guard.name().strip_prefix(&prefix)?;
            let (method, _) = rest.split_once("::")?;
            Some((route_of(method)?.into(), guard.config()))
        })
        .collect()
}

/// `path::to::FooServer<path::Impl>` gives `<path::Impl as path::to::Foo>::`: the start of the
/// names the methods of `impl Foo for Impl` register under (tonic-build names the server after
/// the trait, in the trait's module).
fn impl_prefix(server_type: &str) -> Option<String> {
    let (_, rest) = server_type.split_once('<')?;
    let implementor = rest.strip_suffix('>')?;
    let trait_path = trait_path(server_type)?;
    Some(format!("<{implementor} as {trait_path}>::"))
}

/// `path::to::FooServer<..>` gives `path::to::Foo`.
fn trait_path(server_type: &str) -> Option<&str> {
    let (server, _) = server_type.split_once('<')?;
    let trait_path = server.strip_suffix("Server")?;
    (!trait_path.is_empty() && !trait_path.ends_with(':')).then_some(trait_path)
}

/// The route of the method tonic-build named `method`: its upper camel case, if that turns back
/// into `method` in snake case (so no two methods can claim one route).
fn route_of(method: &str) -> Option<String> {
    use heck::{ToSnakeCase, ToUpperCamelCase};
    let route = method.to_upper_camel_case();
    (route.to_snake_case() == method).then_some(route)
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
    fn a_method_gets_the_route_its_name_came_from() {
        assert_eq!(route_of("say_hello").as_deref(), Some("SayHello"));
        assert_eq!(
            route_of("get_http_status").as_deref(),
            Some("GetHttpStatus")
        );
        assert_eq!(route_of("set_greeting").as_deref(), Some("SetGreeting"));
    }

    #[test]
    fn names_that_do_not_come_back_get_no_route() {
        // `get_item_2` and `get_item2` would both claim `GetItem2`: only the second keeps it.
        assert_eq!(route_of("get_item2").as_deref(), Some("GetItem2"));
        assert_eq!(route_of("get_item_2"), None);
        assert_eq!(route_of("SayHello"), None);
    }
}
