//! The `phone-edits` Lambda — user API: phones in settings (list, add, replace, relabel, remove).
//! Only wiring: configuration from the environment, AWS clients and the secret once per cold
//! start, then the Lambda runtime's loop over the shared handler.
//!
//! `aws::Verifies`: this function checks step-up proofs (`MFA-Assertion`) with the public keys
//! the `challenge` function publishes in the table; it never reads the signing secret (its
//! role may not either), so it holds no key that could mint an assertion.

use std::sync::Arc;

use mfa_shared::adapters::aws;
use mfa_shared::http::{functions, run_lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    mfa_shared::logging::init_lambda();
    let service = aws::service_from_env_or_exit::<aws::Sns, aws::Ses, aws::Verifies>().await;
    run_lambda::<functions::PhoneEdits>(Arc::new(service)).await
}
