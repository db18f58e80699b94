//! The DynamoDB emulators the store suites also run on (moto, dynoxide): `tests/run.sh` starts
//! them and names them in `MFA_TEST_MOTO_URL` and `MFA_TEST_DYNOXIDE_URL`. A test that needs one
//! is `#[ignore]`d for plain `cargo test`; run with a URL missing, it fails, never skips.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use mfa_shared::adapters::dynamodb::DynamoStore;
use mfa_shared::config::AwsNames;
use mfa_shared::ports::Store;

use super::unique;

/// The SDK configuration for the emulator whose URL is in the environment variable `var`.
pub async fn sdk(var: &str) -> SdkConfig {
    let url = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: start the emulator first (tests/lib/*.sh, as tests/run.sh does)")
    });
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .http_client(mfa_shared::adapters::aws::https_client())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

/// A fresh deployment's store on moto: a table and secret of their own (`prefix-…`), made by
/// the project's bootstrap, as `mfa-local --backend aws --bootstrap` makes them.
pub async fn moto(prefix: &str) -> Arc<dyn Store> {
    let sdk = sdk("MFA_TEST_MOTO_URL").await;
    let names = AwsNames {
        table_name: unique(prefix),
        secret_id: unique(&format!("{prefix}-secret")),
        signing_secret_id: None,
        totp_secret_id: None,
    };
    mfa_shared::adapters::aws::bootstrap(&sdk, &names, &format!("{prefix}@example.com"))
        .await
        .unwrap();
    Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        names.table_name,
    ))
}
