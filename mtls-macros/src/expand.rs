//! Code generation for `#[require_cert(..)]`.
//!
//! The function is re-emitted token for token, with one extractor parameter put first:
//! `__mtls_guard_N: ::mtls_tower::__private::CertGuard<Marker>`. The marker is a unit struct
//! emitted beside the function whose `GuardPolicy` impl builds the policy once (a `static`
//! `OnceLock`), from the same literals that were validated here at compile time.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat};

use crate::attr::{err, Args, Deny, Expr};

/// Generated parameters are named `__mtls_guard_N`; stacked attributes count up.
const GUARD_PREFIX: &str = "__mtls_guard_";

pub(crate) fn expand(args: &Args, func: ItemFn) -> syn::Result<TokenStream> {
    if let Some(FnArg::Receiver(_)) = func.sig.inputs.first() {
        return expand_grpc_method(args, func);
    }
    expand_handler(args, func)
}

/// The body of a guard's `config` function: the configuration built once, on first use (or by
/// `check_policies`), in a `static` of its own, then shared.
fn cached_config(args: &Args) -> TokenStream {
    let config = config_args(args);
    quote! {{
        static CONFIG: ::std::sync::OnceLock<::mtls_tower::__private::GuardResult> =
            ::std::sync::OnceLock::new();
        ::mtls_tower::__private::guard_config(&CONFIG, || {
            ::core::result::Result::Ok(::mtls_tower::__private::GuardConfig::new(#config))
        })
    }}
}

/// The policy, not-found and shadow arguments of `GuardConfig::new`.
fn config_args(args: &Args) -> TokenStream {
    let policy = match &args.policy {
        None => quote!(::core::option::Option::None),
        Some(expr) => {
            let e = policy_expr(expr);
            quote!(::core::option::Option::Some(#e))
        }
    };
    let not_found = matches!(args.deny, Deny::NotFound(_));
    let shadow = args.shadow;
    quote!(#policy, #not_found, #shadow)
}

/// An axum handler: a free `async fn`, guarded by a leading extractor.
fn expand_handler(args: &Args, mut func: ItemFn) -> syn::Result<TokenStream> {
    check_handler_shape(&func)?;

    let n = func
        .sig
        .inputs
        .iter()
        .filter(|arg| match arg {
            FnArg::Typed(t) => {
                matches!(&*t.pat, Pat::Ident(p) if p.ident.to_string().starts_with(GUARD_PREFIX))
            }
            FnArg::Receiver(_) => false,
        })
        .count();
    let guard = format_ident!("{GUARD_PREFIX}{n}");
    let marker = format_ident!("__MtlsRequireCert_{}_{n}", func.sig.ident);
    let vis = &func.vis;
    let fn_name = func.sig.ident.to_string();

    let cached = cached_config(args);

    let span = func.sig.ident.span();
    let param: FnArg = syn::parse_quote_spanned! {span=>
        #guard: ::mtls_tower::__private::CertGuard<#marker>
    };
    func.sig.inputs.insert(0, param);

    Ok(quote_spanned! {span=>
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #marker;

        impl ::mtls_tower::__private::GuardPolicy for #marker {
            const NAME: &'static str = ::core::concat!(::core::module_path!(), "::", #fn_name);

            fn config() -> ::mtls_tower::__private::GuardLookup #cached
        }

        ::mtls_tower::__register_handler_guard!(#marker);

        #func
    })
}

/// Axum handlers are free `async fn`s (methods take the gRPC path).
fn check_handler_shape(func: &ItemFn) -> syn::Result<()> {
    if func.sig.asyncness.is_none() {
        return Err(err(
            func.sig.fn_token.span(),
            "an axum handler must be an `async fn`; make this function async",
        ));
    }
    Ok(())
}

/// A tonic service method: `async fn m(&self, request: Request<T>) -> Result<Response<U>, Status>`,
/// or the same after `#[async_trait]` rewrote it (a plain `fn` returning
/// `Pin<Box<dyn Future<Output = Result<Response<U>, Status>> + Send + '_>>`; the impl's attribute
/// runs first). The check is put first in the body: it reads the request's `ClientCert` and
/// returns `Err(Status)` (UNAUTHENTICATED / PERMISSION_DENIED) before the body runs.
fn expand_grpc_method(args: &Args, mut func: ItemFn) -> syn::Result<TokenStream> {
    if let Deny::NotFound(span) = args.deny {
        // Over HTTP a 404 hides a route. A tonic method cannot hide itself: tonic's generated code
        // checks the encoding and decodes the message before the method runs, so its errors
        // (and a missing certificate's UNAUTHENTICATED) tell a prober that the method exists.
        return Err(err(
            span,
            "`deny = \"not_found\"` does not work on a tonic method: tonic decodes the request \
             before the method runs, so a caller can tell that the method exists; put \
             `RequireClientCertLayer::new(..).grpc().deny_as_not_found()` in front of the `Routes` instead",
        ));
    }
    let fn_name = func.sig.ident.to_string();
    let request_arg = func.sig.inputs.iter_mut().nth(1);
    let Some(FnArg::Typed(request_arg)) = request_arg else {
        return Err(err(
            func.sig.inputs.span(),
            "a method taking `self` is guarded as a tonic service method and needs a request \
             parameter: `async fn m(&self, request: tonic::Request<T>) -> Result<tonic::Response<U>, tonic::Status>`",
        ));
    };
    if func.sig.asyncness.is_none() && !returns_pin(&func.sig.output) {
        return Err(err(
            func.sig.fn_token.span(),
            "a tonic service method must be an `async fn` (or sit inside a `#[tonic::async_trait]` impl)",
        ));
    }
    // The check needs a name for the request: keep the user's, or bind a pattern (such as `_`)
    // to one and destructure it first thing in the body.
    let mut rebind = None;
    let request = match &*request_arg.pat {
        Pat::Ident(p) => p.ident.clone(),
        pat => {
            let name = format_ident!("__mtls_request");
            rebind = Some(quote!(let #pat = #name;));
            *request_arg.pat = syn::parse_quote!(#name);
            name
        }
    };
    let cached = cached_config(args);
    // A request of the wrong type is reported on the parameter's type.
    let request_span = request_arg.ty.span();
    let span = func.sig.ident.span();
    if let Some(path) = self_path(args.policy.as_ref()) {
        return Err(err(
            path.span(),
            "`policy = Self::..` does not work on a tonic method: the policy is also registered \
             outside the method (for `mtls_tower::grpc::guard_methods`), where `Self` is unknown; \
             use a free function or a path through the type's name",
        ));
    }
    let check_call = quote_spanned! {request_span=>
        ::mtls_tower::__private::grpc::check(
            __mtls_config(),
            &#request,
            ::core::concat!(::core::module_path!(), "::", #fn_name),
        )
    };
    // In its own block, so that stacked attributes' items do not collide. The policy is also
    // registered, under this method's own path (`<Impl as Trait>::method::..`, the `type_name`
    // of a function nested here), for `guard_methods` to decide before tonic decodes.
    let check = quote_spanned! {span=>
        {
            fn __mtls_config() -> ::mtls_tower::__private::GuardLookup #cached
            fn __mtls_method() -> &'static str {
                ::core::any::type_name_of_val(&__mtls_method)
            }
            ::mtls_tower::__register_grpc_guard!(__mtls_method, __mtls_config);
            #check_call
        }
    };
    let deny = if func.sig.asyncness.is_some() {
        quote_spanned!(span=> ::core::result::Result::Err(::core::convert::Into::into(__mtls_status)))
    } else {
        quote_spanned!(span=> ::mtls_tower::__private::grpc::deny(__mtls_status))
    };
    let stmts = &func.block.stmts;
    let block: syn::Block = syn::parse_quote_spanned! {span=>
        {
            if let ::core::result::Result::Err(__mtls_status) = #check {
                return #deny;
            }
            #rebind
            #(#stmts)*
        }
    };
    *func.block = block;
    Ok(quote!(#func))
}

/// The first `policy = Self::..` path in the attribute, if any.
fn self_path(expr: Option<&Expr>) -> Option<&syn::Path> {
    match expr? {
        Expr::Path(path) => path
            .segments
            .first()
            .is_some_and(|s| s.ident == "Self")
            .then_some(path),
        Expr::Any(items) | Expr::All(items) => items.iter().find_map(|e| self_path(Some(e))),
        Expr::Not(inner) => self_path(Some(inner)),
        Expr::Rule { .. } => None,
    }
}

/// Whether the return type is a `Pin<..>`: the boxed future `#[async_trait]` leaves in place of
/// `async fn`.
fn returns_pin(output: &syn::ReturnType) -> bool {
    match output {
        syn::ReturnType::Type(_, ty) => match &**ty {
            syn::Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Pin"),
            _ => false,
        },
        syn::ReturnType::Default => false,
    }
}

fn policy_expr(expr: &Expr) -> TokenStream {
    let list = |items: &[Expr]| {
        let items = items.iter().map(policy_expr);
        quote!(::std::vec![#(#items),*])
    };
    match expr {
        Expr::Rule {
            key,
            value,
            deprecated: None,
        } => {
            quote_spanned!(value.span()=> ::mtls_tower::__private::rule(#key, #value))
        }
        Expr::Rule {
            key,
            value,
            deprecated: Some(old),
        } => {
            // A deprecated key works, and says so: a use of a `#[deprecated]` item, spanned on
            // the key as written, makes rustc print a warning there (proc macros have no warning
            // API on stable).
            let note = format!("#[require_cert]: the key `{old}` is now `{key}`");
            let marker = format_ident!("{}", old.to_string().to_uppercase(), span = old.span());
            let rule = quote_spanned!(value.span()=> ::mtls_tower::__private::rule(#key, #value));
            quote! {{
                #[deprecated(note = #note)]
                #[allow(dead_code)]
                const #marker: () = ();
                let () = #marker;
                #rule
            }}
        }
        Expr::Any(items) => {
            let l = list(items);
            quote!(::mtls_tower::__private::any(#l))
        }
        Expr::All(items) => {
            let l = list(items);
            quote!(::mtls_tower::__private::all(#l))
        }
        Expr::Not(inner) => {
            let i = policy_expr(inner);
            quote!(::mtls_tower::__private::not(#i))
        }
        Expr::Path(path) => {
            // A type error here (not a `fn() -> Policy` or `Result`) lands on the user's path; a
            // policy that fails to build is an `Err` of the guard (`?`), reported at startup.
            quote_spanned!(path.span()=> ::mtls_tower::__private::from_fn(#path)?)
        }
    }
}

/// The original function, unchanged, after a `compile_error!`: one mistake, one error.
pub(crate) fn error_with_original(error: &syn::Error, original: &TokenStream) -> TokenStream {
    let compile_error = error.to_compile_error();
    quote! {
        #compile_error
        #original
    }
}
