//! `bootstrap`: creates the table, the secrets and the SES identity a fresh account or
//! emulator lacks, and changes nothing when they exist.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretError;
#[cfg(feature = "ses")]
use aws_sdk_sesv2::operation::create_email_identity::CreateEmailIdentityError;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::RequestId;

use super::{StartupError, bootstrap_err, error_detail};
use crate::adapters::dynamodb::{PK, SK, TTL};
use crate::config::AwsNames;

/// How long `bootstrap` waits for a new table to become ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);

/// Creates what is missing: the table (on-demand, `pk`/`sk` strings, TTL on `ttl`), the
/// code key's secret (64 random bytes in hex), the signing secret when
/// `names.signing_secret_id` is set (32 random bytes in hex: the plain-string form of
/// [`SigningKeys::from_secret`], one key), the authenticator app sealing secret when
/// `names.totp_secret_id` is set (32 random bytes in hex, one key of
/// [`crate::totp::SealingKeys::from_secret`]) and the SES identity of `sender_email`. Running it
/// again changes nothing.
pub async fn bootstrap(
    sdk: &SdkConfig,
    names: &AwsNames,
    sender_email: &str,
) -> Result<(), StartupError> {
    ensure_table(&aws_sdk_dynamodb::Client::new(sdk), &names.table_name).await?;
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    ensure_secret(
        &secrets,
        &names.secret_id,
        "MFA service: the key that codes and phone numbers are hashed under",
        64,
    )
    .await?;
    if let Some(id) = &names.signing_secret_id {
        ensure_secret(
            &secrets,
            id,
            "MFA service: the key material that sign-in assertions are signed with",
            32,
        )
        .await?;
    }
    if let Some(id) = &names.totp_secret_id {
        ensure_secret(
            &secrets,
            id,
            "MFA service: the key material that authenticator app secrets are sealed under",
            32,
        )
        .await?;
    }
    #[cfg(feature = "ses")]
    ensure_email_identity(sdk, sender_email).await?;
    #[cfg(not(feature = "ses"))]
    let _ = sender_email;
    Ok(())
}

async fn table_status(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<TableStatus>, StartupError> {
    let described = unless(
        client.describe_table().table_name(table).send().await,
        DescribeTableError::is_resource_not_found_exception,
        || format!("describe table {table}"),
    )?;
    Ok(described.and_then(|out| out.table().and_then(|t| t.table_status()).cloned()))
}

/// A bootstrap call's outcome when one service error means "nothing to do" (`benign`, e.g.
/// "already exists"): `Some(output)`, `None` for that error, or any other error as a
/// [`StartupError::Bootstrap`] naming `action` and the SDK's compact detail.
fn unless<O, E, R>(
    result: Result<O, SdkError<E, R>>,
    benign: impl FnOnce(&E) -> bool,
    action: impl FnOnce() -> String,
) -> Result<Option<O>, StartupError>
where
    SdkError<E, R>: std::error::Error + RequestId,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().is_some_and(benign) => Ok(None),
        Err(e) => Err(bootstrap_err(action(), error_detail(&e))),
    }
}

/// Creates table `table` as deployed (on-demand, `pk`/`sk` strings, TTL on `ttl`) unless it
/// exists, and waits until it is active: `bootstrap`'s table step, also used on emulators
/// that offer DynamoDB alone.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StartupError> {
    if table_status(client, table).await?.is_none() {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| bootstrap_err("build the table definition", e))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| bootstrap_err("build the table definition", e))
        };
        let created = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .send()
            .await;
        // Someone else creating it (`ResourceInUse`) is waited for below.
        let in_use = CreateTableError::is_resource_in_use_exception;
        if unless(created, in_use, || format!("create table {table}"))?.is_some() {
            tracing::info!(table, "table created");
        }
    }

    let deadline = tokio::time::Instant::now() + TABLE_WAIT;
    loop {
        match table_status(client, table).await? {
            Some(TableStatus::Active) => break,
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(bootstrap_err(
                    format!("create table {table}"),
                    "it did not become ACTIVE in time",
                ));
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            bootstrap_err(
                format!("describe the TTL of table {table}"),
                error_detail(&e),
            )
        })?;
    let current = ttl.time_to_live_description();
    let status = current.and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return match current.and_then(|d| d.attribute_name()) {
            Some(TTL) | None => Ok(()),
            Some(other) => Err(bootstrap_err(
                format!("enable TTL on `{TTL}` for table {table}"),
                format!("TTL is already enabled on attribute `{other}`"),
            )),
        };
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(TTL)
        .enabled(true)
        .build()
        .map_err(|e| bootstrap_err("build the TTL specification", e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| bootstrap_err(format!("enable TTL on table {table}"), error_detail(&e)))?;
    tracing::info!(table, "TTL enabled");
    Ok(())
}

/// Creates secret `secret_id` holding `random_bytes` random bytes in hex, unless it exists.
async fn ensure_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    description: &str,
    random_bytes: usize,
) -> Result<(), StartupError> {
    let described = unless(
        client.describe_secret().secret_id(secret_id).send().await,
        DescribeSecretError::is_resource_not_found_exception,
        || format!("describe secret {secret_id}"),
    )?;
    if described.is_some() {
        return Ok(());
    }
    let mut key = vec![0u8; random_bytes];
    getrandom::fill(&mut key).map_err(|e| bootstrap_err("draw a random key", e))?;
    let created = client
        .create_secret()
        .name(secret_id)
        .description(description)
        .secret_string(hex::encode(&key))
        .send()
        .await;
    let exists = CreateSecretError::is_resource_exists_exception;
    if unless(created, exists, || format!("create secret {secret_id}"))?.is_some() {
        tracing::info!(secret_id, "secret created");
    }
    Ok(())
}

/// Creates the SES identity of `sender_email` unless it exists. An endpoint without SES v2 at
/// all (LocalStack's community edition) is warned about once and passed over: the server
/// still serves, and each confirmation email then fails as any SES failure does
/// (`"confirmation_email": "failed"`). Any other error (access denied, a bad address) fails the
/// bootstrap.
#[cfg(feature = "ses")]
async fn ensure_email_identity(sdk: &SdkConfig, sender_email: &str) -> Result<(), StartupError> {
    use aws_sdk_sesv2::error::ProvideErrorMetadata;
    let client = aws_sdk_sesv2::Client::new(sdk);
    let created = client
        .create_email_identity()
        .email_identity(sender_email)
        .send()
        .await;
    if let Err(e) = &created {
        let status = e.raw_response().map(|r| r.status().as_u16());
        if service_not_available(status, e.code(), e.message()) {
            let endpoint = sesv2_endpoint(sdk);
            tracing::warn!("SES v2 is not available at {endpoint}: emails will fail");
            return Ok(());
        }
    }
    let created = unless(
        created,
        CreateEmailIdentityError::is_already_exists_exception,
        || format!("create the SES identity {sender_email}"),
    )?;
    if created.is_some() {
        tracing::info!(
            sender_email,
            "SES email identity created (verify it before sending)"
        );
    }
    Ok(())
}

/// Where the SES v2 client sends its calls, as its configuration resolves it:
/// `AWS_ENDPOINT_URL_SESV2` (or the profile's), else the shared endpoint, else AWS's own.
#[cfg(feature = "ses")]
fn sesv2_endpoint(sdk: &SdkConfig) -> String {
    let key = aws_types::service_config::ServiceConfigKey::builder()
        .service_id("SESv2")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build();
    let own = key
        .ok()
        .and_then(|key| sdk.service_config().and_then(|c| c.load_config(key)));
    own.or_else(|| sdk.endpoint_url().map(str::to_owned))
        .unwrap_or_else(|| {
            let region = sdk.region().map_or("its region", |r| r.as_ref());
            format!("AWS's endpoint for {region}")
        })
}

/// Whether an error answer says the service is not there at all, rather than that this call
/// failed: HTTP 501 Not Implemented, or LocalStack's `InternalFailure` "The API for service
/// sesv2 is either not included in your current license plan or has not yet been emulated by
/// LocalStack." (which it sends with 501). Access denied, throttling, a plain 500 or a refused
/// connection are not: those are real failures.
#[cfg(any(feature = "ses", test))]
pub(crate) fn service_not_available(
    status: Option<u16>,
    code: Option<&str>,
    message: Option<&str>,
) -> bool {
    let message = message.unwrap_or_default();
    let not_emulated = message.contains("not included in your current license plan")
        || message.contains("has not yet been emulated");
    status == Some(501) || (code == Some("InternalFailure") && not_emulated)
}

#[cfg(test)]
mod tests {
    use super::service_not_available;

    const LOCALSTACK: &str = "The API for service sesv2 is either not included in your current \
        license plan or has not yet been emulated by LocalStack.";

    #[test]
    fn a_service_missing_from_the_emulator_is_not_available() {
        // What LocalStack 2026.3.0 (community) answers to CreateEmailIdentity.
        let localstack = (Some(501), Some("InternalFailure"), Some(LOCALSTACK));
        assert!(service_not_available(
            localstack.0,
            localstack.1,
            localstack.2
        ));
        // The same words behind another status, or a bare 501.
        assert!(service_not_available(
            Some(500),
            Some("InternalFailure"),
            Some(LOCALSTACK)
        ));
        assert!(service_not_available(Some(501), None, None));
    }

    #[test]
    fn real_failures_are_not_taken_for_a_missing_service() {
        let denied = "User is not authorized to perform: ses:CreateEmailIdentity";
        assert!(!service_not_available(
            Some(403),
            Some("AccessDeniedException"),
            Some(denied)
        ));
        assert!(!service_not_available(
            Some(500),
            Some("InternalFailure"),
            Some("We encountered an internal error. Please try again.")
        ));
        assert!(!service_not_available(
            Some(400),
            Some("BadRequestException"),
            Some("Invalid email address.")
        ));
        assert!(!service_not_available(
            Some(429),
            Some("TooManyRequestsException"),
            None
        ));
        // No answer at all (connection refused, timeout).
        assert!(!service_not_available(None, None, None));
    }
}
