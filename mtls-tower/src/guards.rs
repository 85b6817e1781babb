//! [`check_policies`]: every `#[require_cert]` policy of the program built and checked at
//! startup, so that a `policy = path` function that fails is found before the first request.
//!
//! ```
//! use mtls_tower::{require_cert, Policy};
//!
//! fn admins() -> Result<Policy, mtls_tower::PolicyError> {
//!     Policy::ou("admins")
//! }
//!
//! #[require_cert(policy = admins)]
//! async fn admin() -> &'static str {
//!     "hello admin"
//! }
//!
//! // `mtls_tower::serve` does this itself before it accepts; with `axum::serve`, call it first.
//! let checked = mtls_tower::check_policies().expect("every policy builds");
//! assert!(checked >= 1);
//! # let _ = axum::Router::<()>::new().route("/admin", axum::routing::get(admin));
//! ```

use std::fmt;

/// Builds the policy of every `#[require_cert]` in the program (axum handlers and tonic
/// methods, found at link time) and returns how many there are, or every one that cannot be
/// built: a `policy = path` function that returned an error or panicked. Literal rules are
/// checked at compile time already; this is for the policies written in code.
///
/// [`serve`](crate::serve) calls it before accepting and refuses to start when it fails. With
/// `axum::serve` (and [`MtlsMakeService`](crate::MtlsMakeService)) or tonic's own server, call it
/// yourself at startup. Without the check, such a handler answers 500 to every request (it
/// fails closed) and logs why.
///
/// The policies are built once and kept: the requests that follow use what was built here.
pub fn check_policies() -> Result<usize, PolicyCheckError> {
    let mut count = 0;
    let mut failures = Vec::new();
    for (name, config) in crate::__private::registered_guards() {
        count += 1;
        if let Err(error) = config {
            failures.push((name, error));
        }
    }
    if failures.is_empty() {
        Ok(count)
    } else {
        Err(PolicyCheckError { failures })
    }
}

/// The `#[require_cert]` policies that could not be built, from [`check_policies`].
#[derive(Debug, Clone)]
pub struct PolicyCheckError {
    failures: Vec<(&'static str, &'static str)>,
}

impl PolicyCheckError {
    /// Each failing guard: the handler or method it guards, and why its policy cannot be built.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.failures.iter().copied()
    }
}

impl fmt::Display for PolicyCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} #[require_cert] {} cannot be built:",
            self.failures.len(),
            if self.failures.len() == 1 {
                "policy"
            } else {
                "policies"
            }
        )?;
        for (name, error) in &self.failures {
            write!(f, " {name}: {error};")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyCheckError {}
