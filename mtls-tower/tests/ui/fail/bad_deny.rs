use mtls_tower::require_cert;

#[require_cert(cn = "a", deny = "teapot")]
async fn handler() {}

fn main() {}
