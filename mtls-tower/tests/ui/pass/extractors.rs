// State, path, query and a JSON body last; `impl IntoResponse` and `Result` returns.
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use mtls_tower::{require_cert, ClientCert};

#[derive(Clone)]
struct Db;

#[derive(serde::Deserialize)]
struct Order {
    _item: String,
}

#[derive(serde::Deserialize)]
struct Page {
    _n: u32,
}

#[require_cert(san = "svc-a.internal")]
async fn create_order(State(_db): State<Db>, Json(_order): Json<Order>) -> impl IntoResponse {
    "created"
}

#[require_cert(spiffe_id = "spiffe://prod.example/ns/billing/sa/api")]
async fn get_order(Path(id): Path<u32>, Query(_page): Query<Page>, cert: ClientCert) -> Result<String, String> {
    Ok(format!("{id} {}", cert.subject()))
}

fn main() {
    let _app: Router = Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .with_state(Db);
}
