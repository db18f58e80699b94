//! The `challenge` Lambda — user API: the second factor at sign-in, recovery codes, and the JWKS.
//! Only wiring: configuration from the environment, AWS clients and the secrets once per cold
//! start, then the Lambda runtime's loop over the shared handler.

use std::sync::Arc;

use mfa_shared::adapters::aws;
use mfa_shared::http::{functions, run_lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    mfa_shared::logging::init_lambda();
    let service = aws::service_from_env_or_exit::<aws::Sns, aws::Ses, aws::Signs>().await;
    run_lambda::<functions::Challenge>(Arc::new(service)).await
}
