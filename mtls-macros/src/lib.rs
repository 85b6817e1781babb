//! `#[require_cert(..)]`: per-route client-certificate policies for axum handlers and tonic service
//! methods, checked at compile time.
//!
//! This is the procedural-macro half of [mtls-tower](https://docs.rs/mtls-tower). Do not depend
//! on it directly: use the attribute as `mtls_tower::require_cert` (mtls-tower's feature
//! `macros`, on by default). The code it generates calls into mtls-tower, at exactly the same
//! version, and the example on mtls-tower's `require_cert` page is compiled and run as a test
//! there. The full syntax is on [`require_cert`] below, shown on both pages.
//!
//! Every policy literal is parsed at compile time by mtls-core, the parser the runtime uses, so
//! a literal that compiles is one the runtime accepts, and a mistake is a compile error pointing
//! at the literal.

mod attr;
mod expand;

use proc_macro::TokenStream;

// The docs.rs link below is deliberate: rustdoc does not resolve intra-doc links from a
// proc-macro crate into its dependencies, even when this page is inlined into mtls-tower.
/// The reference of `#[require_cert(..)]`: it requires a verified client certificate that
/// satisfies a policy before an axum handler or a tonic service method runs.
///
/// # Syntax
/// - `key = "value"`: one rule. The keys are mtls-core's, listed with what each matches in
///   [`mtls_core::policy`][key-table]: `san`, `uri`, `uri_prefix`, `spiffe_id`, `trust_domain`,
///   `spiffe_path_prefix`, `ip`, `email`, `cn`, `o`, `ou`, `subject`, `issuer`, `issuer_cn`,
///   `eku`, `extension`, `cert_policy`, `fingerprint`, `serial` (the same names as the `Policy`
///   constructors and configuration-file keys; the old `spiffe` and `oid` still work, with a
///   deprecation warning);
/// - `key = ["a", "b"]`: any of the values;
/// - `any(..)`, `all(..)`, `not(..)`: combinators (items inside `not` are ANDed first);
/// - top-level items are ANDed; `#[require_cert]` alone admits any verified certificate;
/// - `policy = path::to::f`: a `fn() -> Policy` or `fn() -> Result<Policy, E>` from your code,
///   ANDed with the rest. It runs once; `mtls_tower::serve` runs every such function before it
///   accepts and refuses to start when one fails (`mtls_tower::check_policies` does the same for
///   other servers); a handler whose policy cannot be built answers 500, never panics;
/// - `deny = "not_found"`: answer every rejection (a denial, no certificate) with axum's own 404
///   for a missing route; `shadow`: log, do not enforce.
///
/// Every literal is checked at compile time by the parser the runtime uses; a mistake is a
/// compile error pointing at the literal. Unknown and duplicate keys, and empty `any()` / `all()`
/// / `not()` / lists, are errors too; an unknown key names the one it most likely meant
/// (`spiffe_path` gets "did you mean `spiffe_path_prefix`?"). Every mistake of an attribute is
/// reported in the same compile.
///
/// # What it generates
/// One extractor parameter is put first in the signature; the rest of the function (parameters,
/// return type, generics, attributes, docs, visibility) is emitted unchanged. The extractor reads
/// the request's `ClientCert`, the one the server put there from the TLS handshake, and answers
/// 401 without one (or with one past its validity) and 403 when the policy denies (404 for both
/// with `deny = "not_found"`), with the same bodies, rejection extension and log event as
/// `RequireClientCertLayer`. The policy is built once, on first use. A route's attribute adds to
/// any router-wide layer and cannot weaken it. Place it above `#[debug_handler]`.
///
/// The extractor comes first, so the decision is made on the request head: a body extractor
/// (`Bytes`, `Json`, ...) after it never runs for a rejected caller, and nothing of the body is
/// read. `deny = "not_found"` hides the methods the handler serves; a method the route does
/// not serve never reaches the handler and gets axum's 405. To hide a route for every method,
/// wrap its `MethodRouter` in `RequireClientCertLayer::deny_as_not_found` and `route_service`
/// (see that method's docs).
///
/// # On tonic service methods
/// A method taking `&self` is guarded as a tonic service method: `async fn m(&self, request:
/// tonic::Request<T>) -> Result<tonic::Response<U>, tonic::Status>` (`T` a `tonic::Streaming<..>`
/// and `U` a stream for the streaming shapes), inside a
/// `#[tonic::async_trait]` impl (as tonic-build generates the traits) or as a plain `async fn`.
/// Same keys, same compile-time checks; the check runs first in the body and returns
/// `Err(Status::unauthenticated(..))` without a certificate, `Err(Status::permission_denied(..))`
/// on a denial. The attribute also registers the method's policy (at link time, under
/// `<Impl as Trait>::method`), so that `mtls_tower::grpc::guard_methods` around the generated
/// server decides it on the request head, before tonic decodes the message; `policy =
/// Self::..` is therefore an error there (name the type instead). `deny = "not_found"` is a
/// compile error on methods: a method cannot pass for a missing one (the layer's
/// `deny_as_not_found` can). Needs mtls-tower's `tonic` feature; without it the compile error
/// says so. See `mtls_tower::grpc`.
///
/// [key-table]: https://github.com/mtls-rs/mtls/blob/main/mtls-core/src/policy/mod.rs
#[proc_macro_attribute]
pub fn require_cert(args: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    let func = match syn::parse::<syn::ItemFn>(item) {
        Ok(f) => f,
        Err(_) => {
            let e = attr::err(
                first_token_span(&original),
                "applies to an axum handler (`async fn`) or a tonic service method",
            );
            return expand::error_with_original(&e, &original).into();
        }
    };
    let args = match syn::parse::<attr::Args>(args) {
        Ok(a) => a,
        Err(e) => return expand::error_with_original(&e, &original).into(),
    };
    match expand::expand(&args, func) {
        Ok(tokens) => tokens.into(),
        Err(e) => expand::error_with_original(&e, &original).into(),
    }
}

fn first_token_span(tokens: &proc_macro2::TokenStream) -> proc_macro2::Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span())
}
