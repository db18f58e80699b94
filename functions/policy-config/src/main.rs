//! The `policy-config` Lambda — admin API: policy, availability, user provisioning, admin reset, audit log.
//! Only wiring: configuration from the environment, AWS clients and the secret once per cold
//! start, then `lambda_http::run` over the shared handler.

use std::sync::Arc;

use mfa_shared::adapters::aws;
use mfa_shared::http::{functions, lambda_handler};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    mfa_shared::logging::init_lambda();
    let service = aws::service_from_env_or_exit::<aws::NoSms, aws::Ses>().await;
    lambda_http::run(lambda_handler::<functions::PolicyConfig>(Arc::new(service))).await
}
