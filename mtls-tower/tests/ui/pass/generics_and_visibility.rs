// Generics, `pub(crate)` and `pub` visibility, doc comments and other attributes are kept.
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use mtls_tower::require_cert;

mod handlers {
    use super::*;

    /// Reads the shared value.
    #[require_cert(trust_domain = "prod.example", not(ou = "contractors"))]
    #[allow(clippy::unused_async)]
    pub(crate) async fn generic<S: Clone + Send + Sync + std::fmt::Debug + 'static>(State(s): State<S>) -> String {
        format!("{s:?}")
    }

    /// Public handler.
    #[require_cert(cn = ["alice", "bob"], deny = "not_found")]
    pub async fn public() -> &'static str {
        "ok"
    }
}

fn main() {
    let _app: Router = Router::new()
        .route("/g", get(handlers::generic::<u32>))
        .route("/p", get(handlers::public))
        .with_state(5u32);
}
