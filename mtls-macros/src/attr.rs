//! Parsing and validating the arguments of `#[require_cert(..)]`.
//!
//! Every literal goes through `mtls_core::Policy::rule`, the parser the runtime uses, so a literal
//! that compiles is one the runtime accepts; errors carry the span of the offending token.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, parenthesized, Ident, LitStr, Path, Token};

// The keys that name a leaf rule and the combinators: mtls-core's, the one source of truth for
// the attribute and configuration files alike.
use mtls_core::policy::{canonical_key, suggest_key, COMBINATORS, KEYS as RULE_KEYS};

/// The attribute's own keys, beside the policy keys.
const SETTINGS: &[&str] = &["policy", "deny", "shadow"];

fn allowed_keys() -> String {
    let mut all: Vec<&str> = RULE_KEYS.to_vec();
    all.extend(COMBINATORS);
    all.extend(SETTINGS);
    all.join(", ")
}

/// A policy expression, validated.
pub(crate) enum Expr {
    /// `key = "value"`: one rule (already checked with `Policy::rule`), under its current key
    /// name; `deprecated` holds the old name as written, when one was used.
    Rule {
        key: String,
        value: LitStr,
        deprecated: Option<Ident>,
    },
    /// `key = ["a", "b"]`, `any(..)`.
    Any(Vec<Expr>),
    /// `all(..)`, and the top level.
    All(Vec<Expr>),
    /// `not(..)` (several items inside are ANDed first).
    Not(Box<Expr>),
    /// `policy = path::to::fn`, a `fn() -> Policy` or `fn() -> Result<Policy, E>`.
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
    Rule {
        key: Ident,
        values: Vec<LitStr>,
    },
    Group {
        key: Ident,
        items: Vec<Item>,
    },
    Policy {
        key: Ident,
        path: Path,
    },
    Deny {
        key: Ident,
        value: LitStr,
    },
    Shadow {
        key: Ident,
    },
    /// A key that is not known; its value was skipped so that the items after it are still
    /// checked and every error is reported at once.
    Unknown {
        key: Ident,
    },
}

impl Item {
    fn key(&self) -> &Ident {
        match self {
            Item::Rule { key, .. }
            | Item::Group { key, .. }
            | Item::Policy { key, .. }
            | Item::Deny { key, .. }
            | Item::Shadow { key }
            | Item::Unknown { key } => key,
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
        if canonical_key(&name).is_none() && !SETTINGS.contains(&name.as_str()) {
            skip_value(input);
            return Ok(Item::Unknown { key });
        }
        input
            .parse::<Token![=]>()
            .map_err(|e| err(e.span(), format!("expected `=` after `{name}`")))?;
        match name.as_str() {
            "policy" => {
                let path: Path = input.parse().map_err(|e| {
                    err(e.span(), "`policy` takes the path of a `fn() -> Policy` (or `fn() -> Result<Policy, E>`), such as `policy = crate::policies::admin`")
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

/// Skips an unknown key's value (`= "..."`, `= [..]`, `(..)`, or anything else up to the next
/// comma of this level), so that parsing goes on to the next item.
fn skip_value(input: ParseStream<'_>) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let proc_macro2::TokenTree::Punct(p) = &tt {
                if p.as_char() == ',' {
                    break;
                }
            }
            rest = next;
        }
        Ok(((), rest))
    });
}

/// The error for an unknown key, with the key it most likely meant.
fn unknown_key(key: &Ident) -> syn::Error {
    let name = key.to_string();
    let hint = suggest_key(&name, SETTINGS)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    err(
        key.span(),
        format!("unknown key `{name}`{hint}; allowed: {}", allowed_keys()),
    )
}

/// The errors of one attribute, collected so that they are all reported in one compile.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// An error of the attribute at `span` (see [`err`]).
    fn add(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(err(span, msg));
    }
}

/// Turns the items of one level into expressions: checks duplicates, settings, and every literal.
/// Every error is collected, so that the author sees them all in one compile.
fn lower(items: Vec<Item>, top: bool, args: &mut Args) -> syn::Result<Vec<Expr>> {
    let mut errors = Errors::default();
    let out = lower_level(items, top, args, &mut errors);
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn lower_level(items: Vec<Item>, top: bool, args: &mut Args, errors: &mut Errors) -> Vec<Expr> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for item in items {
        if let Item::Unknown { key } = &item {
            errors.push(unknown_key(key));
            continue;
        }
        // A deprecated alias counts as its new name, for duplicates too.
        let written = item.key().to_string();
        let name = canonical_key(&written).map_or(written, str::to_owned);
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
            errors.add(item.key().span(), advice);
            continue;
        }
        seen.push(name.clone());
        match item {
            Item::Rule { key, values } => {
                let deprecated = (key != name.as_str()).then(|| key.clone());
                let mut rules = Vec::new();
                for value in values {
                    if let Err(e) = mtls_core::Policy::rule(&name, &value.value()) {
                        errors.add(value.span(), e);
                        continue;
                    }
                    rules.push(Expr::Rule {
                        key: name.clone(),
                        value,
                        deprecated: deprecated.clone(),
                    });
                }
                match rules.len() {
                    0 => {}
                    1 => out.push(rules.remove(0)),
                    _ => out.push(Expr::Any(rules)),
                }
            }
            Item::Group { key, items } => {
                let inner = lower_level(items, false, args, errors);
                if inner.is_empty() {
                    // Every item inside had an error, already collected.
                    continue;
                }
                out.push(match key.to_string().as_str() {
                    "any" => Expr::Any(inner),
                    "all" => Expr::All(inner),
                    _ => Expr::Not(Box::new(Expr::All(inner))),
                });
            }
            Item::Policy { key, path } => {
                if !top {
                    errors.add(
                        key.span(),
                        "`policy = ..` is allowed at the top level only; combine it there",
                    );
                    continue;
                }
                out.push(Expr::Path(path));
            }
            Item::Deny { key, value } => {
                if !top {
                    errors.add(key.span(), "`deny = ..` is allowed at the top level only");
                    continue;
                }
                args.deny = match value.value().as_str() {
                    "forbidden" => Deny::Forbidden,
                    "not_found" => Deny::NotFound(value.span()),
                    other => {
                        errors.add(
                            value.span(),
                            format!("unknown deny mode {other:?}; use \"forbidden\" (403, the default) or \"not_found\" (404)"),
                        );
                        continue;
                    }
                };
            }
            Item::Shadow { key } => {
                if !top {
                    errors.add(key.span(), "`shadow` is allowed at the top level only");
                    continue;
                }
                args.shadow = true;
            }
            Item::Unknown { .. } => {}
        }
    }
    out
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
