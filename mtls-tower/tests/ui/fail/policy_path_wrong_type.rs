use mtls_tower::require_cert;

fn not_a_policy() -> u32 {
    5
}

#[require_cert(policy = not_a_policy)]
async fn handler() {}

fn main() {}
