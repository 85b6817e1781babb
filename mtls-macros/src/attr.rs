//! Parsing and validating the arguments of `#[require_cert(..)]`.
//!
//! Every literal goes through `mtls_core::Policy::rule`, the parser the runtime uses, so a literal
//! that compiles is one the runtime accepts; errors carry the span of the offending token.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, parenthesized, Ident, LitStr, Path, Token};

// The keys that name a leaf rule: mtls-core's, the one source of truth.
use mtls_core::policy::KEYS as RULE_KEYS;

const COMBINATORS: &[&str] = &["any", "all", "not"];
const SETTINGS: &[&str] = &["policy", "deny", "shadow"];

fn allowed_keys() -> String {
    let mut all: Vec<&str> = RULE_KEYS.to_vec();
    all.extend(COMBINATORS);
    all.extend(SETTINGS);
    all.join(", ")
}

/// A policy expression, validated.
pub(crate) enum Expr {
    /// `key = "value"`: one rule (already checked with `Policy::rule`).
    Rule { key: String, value: LitStr },
    /// `key = ["a", "b"]`, `any(..)`.
    Any(Vec<Expr>),
    /// `all(..)`, and the top level.
    All(Vec<Expr>),
    /// `not(..)` (several items inside are ANDed first).
    Not(Box<Expr>),
    /// `policy = path::to::fn`, a `fn() -> Policy`.
    Path(Path),
}

/// What to answer on a denial.
#[derive(Clone, Copy)]
pub(crate) enum Deny {
    Forbidden,
    /// With the span of the `"not_found"` literal, for errors about it.
    NotFound(proc_macro2::Span),
}

/// The parsed attribute.
pub(crate) struct Args {
    /// `None` for a bare `#[require_cert]`: any verified certificate.
    pub(crate) policy: Option<Expr>,
    pub(crate) deny: Deny,
    pub(crate) shadow: bool,
}

/// One parsed item, before the level's rules (duplicates, settings only at top level) apply.
enum Item {
    Rule { key: Ident, values: Vec<LitStr> },
    Group { key: Ident, items: Vec<Item> },
    Policy { key: Ident, path: Path },
    Deny { key: Ident, value: LitStr },
    Shadow { key: Ident },
}

impl Item {
    fn key(&self) -> &Ident {
        match self {
            Item::Rule { key, .. }
            | Item::Group { key, .. }
            | Item::Policy { key, .. }
            | Item::Deny { key, .. }
            | Item::Shadow { key } => key,
        }
    }
}

/// Every error of the attribute names it, so that it reads well among other compile errors.
pub(crate) fn err(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, format!("#[require_cert]: {msg}"))
}

impl Parse for Item {
    fn parse(input: ParseStream<'_>) -> syn::Result<Item> {
        let key: Ident = input.call(syn::ext::IdentExt::parse_any).map_err(|e| {
            err(
                e.span(),
                format!(
                    "expected a key such as `san = \"...\"`; allowed: {}",
                    allowed_keys()
                ),
            )
        })?;
        let name = key.to_string();
        if COMBINATORS.contains(&name.as_str()) {
            if !input.peek(syn::token::Paren) {
                return Err(err(
                    key.span(),
                    format!("`{name}` takes a list in parentheses: `{name}(san = \"a\", ...)`"),
                ));
            }
            let content;
            let parens = parenthesized!(content in input);
            let items = Punctuated::<Item, Token![,]>::parse_terminated(&content)?;
            if items.is_empty() {
                return Err(err(
                    parens.span.join(),
                    format!("`{name}()` is empty; it needs at least one rule (an empty {name} is never what was meant)"),
                ));
            }
            return Ok(Item::Group {
                key,
                items: items.into_iter().collect(),
            });
        }
        if name == "shadow" {
            if input.peek(Token![=]) {
                return Err(err(
                    input.span(),
                    "`shadow` is a flag and takes no value: write `shadow`",
                ));
            }
            return Ok(Item::Shadow { key });
        }
        if !RULE_KEYS.contains(&name.as_str()) && !SETTINGS.contains(&name.as_str()) {
            return Err(err(
                key.span(),
                format!("unknown key `{name}`; allowed: {}", allowed_keys()),
            ));
        }
        input
            .parse::<Token![=]>()
            .map_err(|e| err(e.span(), format!("expected `=` after `{name}`")))?;
        match name.as_str() {
            "policy" => {
                let path: Path = input.parse().map_err(|e| {
                    err(e.span(), "`policy` takes the path of a `fn() -> Policy`, such as `policy = crate::policies::admin`")
                })?;
                Ok(Item::Policy { key, path })
            }
            "deny" => {
                let value: LitStr = input.parse().map_err(|e| {
                    err(
                        e.span(),
                        "`deny` takes \"forbidden\" (403, the default) or \"not_found\" (404)",
                    )
                })?;
                Ok(Item::Deny { key, value })
            }
            _ => {
                let values = if input.peek(syn::token::Bracket) {
                    let content;
                    let brackets = bracketed!(content in input);
                    let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)
                        .map_err(|e| {
                            err(
                                e.span(),
                                format!(
                                    "`{name}` takes string literals: `{name} = [\"a\", \"b\"]`"
                                ),
                            )
                        })?;
                    if list.is_empty() {
                        return Err(err(
                            brackets.span.join(),
                            format!("`{name} = []` is empty; give at least one value"),
                        ));
                    }
                    list.into_iter().collect()
                } else {
                    let lit: LitStr = input.parse().map_err(|e| {
                        err(e.span(), format!("`{name}` takes a string literal (or a list of them): `{name} = \"...\"`"))
                    })?;
                    vec![lit]
                };
                Ok(Item::Rule { key, values })
            }
        }
    }
}

/// Turns the items of one level into expressions: checks duplicates, settings, and every literal.
fn lower(items: Vec<Item>, top: bool, args: &mut Args) -> syn::Result<Vec<Expr>> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for item in items {
        let name = item.key().to_string();
        // A repeated key at one level is almost always a mistake (`san = "a", san = "b"` reads as
        // "either" to some and "both" to others): make the author say which.
        if seen.contains(&name) && !COMBINATORS.contains(&name.as_str()) {
            let advice = match name.as_str() {
                "policy" => "`policy` is given twice; combine the functions in code into one \
                             `fn() -> Policy`"
                    .to_string(),
                "deny" | "shadow" => format!("`{name}` is given twice"),
                _ => format!(
                    "duplicate key `{name}`; for any of several values write `{name} = [\"a\", \"b\"]`, for all of them use `all(..)`"
                ),
            };
            return Err(err(item.key().span(), advice));
        }
        seen.push(name.clone());
        match item {
            Item::Rule { key, values } => {
                let mut rules = Vec::new();
                for value in values {
                    if let Err(e) = mtls_core::Policy::rule(&name, &value.value()) {
                        return Err(err(value.span(), e));
                    }
                    rules.push(Expr::Rule {
                        key: key.to_string(),
                        value,
                    });
                }
                out.push(if rules.len() == 1 {
                    rules.remove(0)
                } else {
                    Expr::Any(rules)
                });
            }
            Item::Group { key, items } => {
                let inner = lower(items, false, args)?;
                out.push(match key.to_string().as_str() {
                    "any" => Expr::Any(inner),
                    "all" => Expr::All(inner),
                    _ => Expr::Not(Box::new(Expr::All(inner))),
                });
            }
            Item::Policy { key, path } => {
                if !top {
                    return Err(err(
                        key.span(),
                        "`policy = ..` is allowed at the top level only; combine it there",
                    ));
                }
                out.push(Expr::Path(path));
            }
            Item::Deny { key, value } => {
                if !top {
                    return Err(err(
                        key.span(),
                        "`deny = ..` is allowed at the top level only",
                    ));
                }
                args.deny = match value.value().as_str() {
                    "forbidden" => Deny::Forbidden,
                    "not_found" => Deny::NotFound(value.span()),
                    other => {
                        return Err(err(
                            value.span(),
                            format!("unknown deny mode {other:?}; use \"forbidden\" (403, the default) or \"not_found\" (404)"),
                        ))
                    }
                };
            }
            Item::Shadow { key } => {
                if !top {
                    return Err(err(key.span(), "`shadow` is allowed at the top level only"));
                }
                args.shadow = true;
            }
        }
    }
    Ok(out)
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Args> {
        let items = Punctuated::<Item, Token![,]>::parse_terminated(input)?;
        let mut args = Args {
            policy: None,
            deny: Deny::Forbidden,
            shadow: false,
        };
        let exprs = lower(items.into_iter().collect(), true, &mut args)?;
        args.policy = match exprs.len() {
            0 => None,
            1 => exprs.into_iter().next(),
            _ => Some(Expr::All(exprs)),
        };
        Ok(args)
    }
}
