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

use crate::attr::{Args, Deny, Expr};

/// Generated parameters are named `__mtls_guard_N`; stacked attributes count up.
const GUARD_PREFIX: &str = "__mtls_guard_";

pub(crate) fn expand(args: &Args, mut func: ItemFn) -> syn::Result<TokenStream> {
    check_shape(&func)?;

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

    let policy = match &args.policy {
        None => quote!(::core::option::Option::None),
        Some(expr) => {
            let e = policy_expr(expr);
            quote!(::core::option::Option::Some(#e))
        }
    };
    let not_found = args.deny == Deny::NotFound;
    let shadow = args.shadow;

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
            fn config() -> &'static ::mtls_tower::__private::GuardConfig {
                static CONFIG: ::std::sync::OnceLock<::mtls_tower::__private::GuardConfig> =
                    ::std::sync::OnceLock::new();
                CONFIG.get_or_init(|| {
                    ::mtls_tower::__private::GuardConfig::new(#policy, #not_found, #shadow)
                })
            }
        }

        #func
    })
}

/// The attribute guards axum handlers: free `async fn`s. Methods (`self`) are refused with a
/// message rather than producing a guard that could not be an extractor.
fn check_shape(func: &ItemFn) -> syn::Result<()> {
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            "#[require_cert] applies to `async fn` handlers; make this function async",
        ));
    }
    if let Some(FnArg::Receiver(r)) = func.sig.inputs.first() {
        return Err(syn::Error::new(
            r.span(),
            "#[require_cert] applies to free handler functions, not methods taking `self`",
        ));
    }
    Ok(())
}

fn policy_expr(expr: &Expr) -> TokenStream {
    let list = |items: &[Expr]| {
        let items = items.iter().map(policy_expr);
        quote!(::std::vec![#(#items),*])
    };
    match expr {
        Expr::Rule { key, value } => {
            quote_spanned!(value.span()=> ::mtls_tower::__private::rule(#key, #value))
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
            // A type error here ("expected fn() -> Policy") lands on the user's path.
            quote_spanned!(path.span()=> ::mtls_tower::__private::from_fn(#path))
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
