//! The `challenge` Lambda — user API: the second factor at sign-in, recovery codes, and the JWKS.
//! Only wiring: configuration from the environment, AWS clients and the secrets once per cold
//! start, then `lambda_http::run` over the shared handler.

use std::sync::Arc;

use mfa_shared::adapters::aws;
use mfa_shared::http::{functions, lambda_handler};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    mfa_shared::logging::init_lambda();
    let service = aws::service_from_env_or_exit::<aws::Sns, aws::Ses>().await;
    lambda_http::run(lambda_handler::<functions::Challenge>(Arc::new(service))).await
}
