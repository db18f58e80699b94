//! Wiring for the AWS backend: the [`Service`] over DynamoDB, SNS, SES v2 and Secrets
//! Manager, built once per cold start, and `bootstrap`, which creates the resources a fresh
//! account or emulator lacks.
//!
//! Endpoints come from the standard variables `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SNS`, `AWS_ENDPOINT_URL_SESV2` and
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, which each client built from the `SdkConfig` applies.
//! That is how the local server, the tests and the benchmark point the same code at an
//! emulator. A Lambda's configuration is read from its environment alone
//! ([`lambda_sdk_config`]); the local server uses `aws_config`'s full chain (profiles too).

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::operation::RequestId;
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

use crate::Service;
use crate::adapters::dynamodb::{DynamoStore, PK, SK, TTL};
use crate::adapters::jwks::{AssertionKeys, DynamoJwks, JwksItem};
use crate::adapters::secrets_manager::SecretsManagerSource;
#[cfg(feature = "ses")]
use crate::adapters::ses::SesEmail;
#[cfg(feature = "sns")]
use crate::adapters::sns::SnsSms;
use crate::config::{AwsNames, ConfigError, EnvSource, Limits, Settings};
use crate::crypto::{Keys, WeakKey};
use crate::error::PortError;
use crate::ports::{EmailSender, SecretSource, SmsSender, SystemClock};
use crate::signing::{KeyError, SigningKeys};

/// Why the service could not start (or the resources could not be made). Never holds a
/// secret value.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("could not read the secret {secret_id} from Secrets Manager: {detail}")]
    SecretUnreadable { secret_id: String, detail: String },
    #[error("the secret {secret_id} is not a usable key: {source}")]
    WeakKey {
        secret_id: String,
        #[source]
        source: WeakKey,
    },
    #[error("the secret {secret_id} does not hold usable signing keys: {source}")]
    SigningKeys {
        secret_id: String,
        #[source]
        source: KeyError,
    },
    #[error("bootstrap: could not {action}: {detail}")]
    Bootstrap { action: String, detail: String },
}

/// An SDK error as one compact line: its `Display` chain and the AWS request id.
///
/// Not `DisplayErrorContext`: that appends the `Debug` of the raw HTTP response, headers and
/// body included, which can hold item data and makes every log line kilobytes long.
pub(crate) fn error_detail<E>(e: &E) -> String
where
    E: std::error::Error + RequestId,
{
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // An operation error and the exception it wraps often print the same words.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    if let Some(id) = e.request_id() {
        out.push_str(" (request id ");
        out.push_str(id);
        out.push(')');
    }
    out
}

fn bootstrap_err(action: impl Into<String>, detail: impl std::fmt::Display) -> StartupError {
    StartupError::Bootstrap {
        action: action.into(),
        detail: detail.to_string(),
    }
}

/// The service from the process environment: `MFA_*` settings and limits, the table and
/// secret names, and the standard AWS configuration. Reads the secret once.
pub async fn service_from_env<S: SmsClient, E: EmailClient, A: Assertions>()
-> Result<Service, StartupError> {
    let env = EnvSource::process();
    let limits = env.limits()?;
    let settings = env.settings();
    let mut names = env.aws_names()?;
    if !A::SIGNS {
        // A function that only verifies never reads the signing secret, whatever its
        // environment says: it verifies with the published public keys.
        names.signing_secret_id = None;
    } else if names.signing_secret_id.is_none() {
        return Err(ConfigError::Missing("MFA_SIGNING_SECRET_ID").into());
    }
    let sdk = lambda_sdk_config()?;
    service_from_sdk_config::<S, E>(&sdk, names, limits, settings).await
}

/// The HTTP client of every SDK client here: HTTP/1.1 on rustls with ring (see
/// [`super::https`] for why not the SDK's default client).
pub fn https_client() -> aws_types::sdk_config::SharedHttpClient {
    super::https::client()
}

/// A Lambda function's AWS configuration, from its environment alone: the region and the
/// execution role's credentials are the variables Lambda sets (`AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), endpoints the standard
/// `AWS_ENDPOINT_URL*` variables, with the retries and timeouts of [`sdk_config`].
///
/// `aws_config::defaults(..).load()` would also link (and probe) profile files, SSO, web
/// identity through STS, ECS and IMDS credentials: ~0.4 MB of each binary that a Lambda
/// never uses.
pub fn lambda_sdk_config() -> Result<SdkConfig, StartupError> {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_types::sdk_config::SharedCredentialsProvider;
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .map_err(|_| StartupError::Config(crate::config::ConfigError::Missing("AWS_REGION")))?;
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_types::region::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .identity_cache(aws_config::identity::IdentityCache::lazy().build())
        .http_client(https_client())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .service_config(EnvEndpoints);
    builder.set_endpoint_url(std::env::var("AWS_ENDPOINT_URL").ok());
    Ok(builder.build())
}

/// Per-service settings from the environment only (`AWS_ENDPOINT_URL_DYNAMODB`, ...), as
/// `aws_config`'s loader would read them, without its profile files.
#[derive(Debug)]
struct EnvEndpoints;

impl aws_types::service_config::LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        std::env::var(key.env()).ok()
    }
}

/// [`service_from_env`] for a Lambda function's cold start. On failure it writes one log line
/// naming what failed (never a secret value) and exits: the init fails, Lambda reports it and
/// tries a fresh sandbox. There is no fallback: without its keys the service must not run.
pub async fn service_from_env_or_exit<S: SmsClient, E: EmailClient, A: Assertions>() -> Service {
    match service_from_env::<S, E, A>().await {
        Ok(service) => service,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed");
            std::process::exit(1);
        }
    }
}

/// How often one AWS call is tried (the first attempt included) before the request answers
/// `503 service_unavailable`.
pub const MAX_ATTEMPTS: u32 = 3;

/// The AWS configuration of the local server and the tests: `aws_config`'s full chain
/// (profiles too), our HTTP client, and the bounded retries and timeouts that the Lambdas'
/// [`lambda_sdk_config`] uses as well, sized for a person waiting on a verification screen.
///
/// Throttling (`ProvisionedThroughputExceededException`, `ThrottlingException`), 5xx answers,
/// timeouts and refused connections are retried up to [`MAX_ATTEMPTS`] times with exponential
/// backoff and full jitter from 50 ms (capped at 1 s), under the SDK's retry quota, which
/// stops retrying when most calls fail so that a struggling service is not hammered. A call
/// attempt gives up after 3 s and the whole operation after 6 s, well inside the functions'
/// 10 s timeout: the user gets a clear 503 with `Retry-After`, never an API Gateway 504.
pub async fn sdk_config(loader: aws_config::ConfigLoader) -> SdkConfig {
    loader
        .http_client(https_client())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(1))
}

fn timeout_config() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

/// The service over the AWS clients made from `sdk` (one of each, shared by every request).
/// Reads the code key's secret and, when `names.signing_secret_id` is set, the signing
/// keys' secret, once each.
pub async fn service_from_sdk_config<S: SmsClient, E: EmailClient>(
    sdk: &SdkConfig,
    names: AwsNames,
    limits: Limits,
    settings: Settings,
) -> Result<Service, StartupError> {
    // This read is also the warm-up of the TLS stack (the CA store is loaded and the first
    // handshake made here, in init), so no separate warm-up call is made.
    let secrets = SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(sdk));
    let secret = secrets.secret_string(&names.secret_id).await.map_err(|e| {
        StartupError::SecretUnreadable {
            secret_id: names.secret_id.clone(),
            detail: e.0,
        }
    })?;
    let keys = Keys::new(secret.into_bytes()).map_err(|source| StartupError::WeakKey {
        secret_id: names.secret_id.clone(),
        source,
    })?;
    let published: Arc<dyn JwksItem> = Arc::new(DynamoJwks::new(
        aws_sdk_dynamodb::Client::new(sdk),
        names.table_name.clone(),
    ));
    let signing = match &names.signing_secret_id {
        None => None,
        Some(id) => Some(read_and_publish_signing_keys(&secrets, id, published.as_ref()).await?),
    };
    let own = signing
        .as_ref()
        .map(SigningKeys::public_keys)
        .unwrap_or_default();
    Ok(Service {
        store: Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            names.table_name,
        )),
        sms: S::sms(sdk, &settings),
        email: E::email(sdk, &settings),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(crate::metrics::EmfStdout::new(
            settings.metrics_service.clone(),
        )),
        keys,
        signing,
        assertion_keys: Arc::new(AssertionKeys::new(own, Some(published))),
        limits,
        settings,
    })
}

/// Reads the signing secret (its value and version date) and publishes its public keys as
/// the table's JWKS item, unless a newer version is already published there (see
/// [`crate::adapters::jwks`]). A failure to publish (DynamoDB briefly unreachable) is logged
/// as an error and the function still starts: sandboxes of the same secret version published
/// the same item before, every cold start publishes again, and a verifier that does not find
/// a key refuses the proof (`403`), so the failure is never a way in. Failing the cold start
/// instead would turn a DynamoDB blip into API Gateway 5xx answers for sign-in as well.
async fn read_and_publish_signing_keys(
    secrets: &SecretsManagerSource,
    id: &str,
    published: &dyn JwksItem,
) -> Result<SigningKeys, StartupError> {
    let (secret, version_created) =
        secrets
            .secret_version(id)
            .await
            .map_err(|e| StartupError::SecretUnreadable {
                secret_id: id.to_owned(),
                detail: e.0,
            })?;
    let keys = SigningKeys::from_secret(&secret).map_err(|source| StartupError::SigningKeys {
        secret_id: id.to_owned(),
        source,
    })?;
    match published.publish(&keys.jwks(), version_created).await {
        Ok(true) => tracing::info!(secret_id = id, version_created, "JWKS published"),
        Ok(false) => tracing::info!(
            secret_id = id,
            version_created,
            "JWKS not published: this or a newer secret version already is"
        ),
        Err(e) => tracing::error!(secret_id = id, error = %e.0, "could not publish the JWKS"),
    }
    Ok(keys)
}

/// Whether a function signs assertions (`challenge`: it reads the signing secret and
/// publishes the public keys) or only verifies them ([`Verifies`]: never reads the secret).
pub trait Assertions {
    const SIGNS: bool;
}

/// Signs sign-in assertions: needs `MFA_SIGNING_SECRET_ID`.
pub struct Signs;

impl Assertions for Signs {
    const SIGNS: bool = true;
}

/// Only verifies step-up proofs, with the published public keys; holds no private key.
pub struct Verifies;

impl Assertions for Verifies {
    const SIGNS: bool = false;
}

/// Which client a function texts through: [`Sns`], or [`NoSms`] for a function none of
/// whose routes text. The choice is a type in the function's `main.rs`, so the SNS client is
/// not even referenced (hence not linked) where it is not used, whatever cargo's feature
/// unification enabled (`sam build --bin NAME` resolves features for the whole workspace).
pub trait SmsClient {
    fn sms(sdk: &SdkConfig, settings: &Settings) -> Arc<dyn SmsSender>;
}

/// Which client a function emails through: [`Ses`], or [`NoEmail`] (see [`SmsClient`]).
pub trait EmailClient {
    fn email(sdk: &SdkConfig, settings: &Settings) -> Arc<dyn EmailSender>;
}

/// Texts through SNS.
#[cfg(feature = "sns")]
pub struct Sns;

#[cfg(feature = "sns")]
impl SmsClient for Sns {
    fn sms(sdk: &SdkConfig, settings: &Settings) -> Arc<dyn SmsSender> {
        Arc::new(SnsSms::new(
            aws_sdk_sns::Client::new(sdk),
            settings.sms_sender_id.clone(),
        ))
    }
}

/// Emails through SES v2.
#[cfg(feature = "ses")]
pub struct Ses;

#[cfg(feature = "ses")]
impl EmailClient for Ses {
    fn email(sdk: &SdkConfig, settings: &Settings) -> Arc<dyn EmailSender> {
        Arc::new(SesEmail::new(
            aws_sdk_sesv2::Client::new(sdk),
            settings.sender_email.clone(),
        ))
    }
}

/// No SMS client: for a function whose routes never text (e.g. `enrollment-start`: status,
/// skip, start). A send here is a wiring bug: it fails loudly, like an SNS outage, rather
/// than pretending to have sent.
pub struct NoSms;

impl SmsClient for NoSms {
    fn sms(_: &SdkConfig, _: &Settings) -> Arc<dyn SmsSender> {
        Arc::new(NotLinked)
    }
}

/// No email client: for a function whose routes never email (see [`NoSms`]).
pub struct NoEmail;

impl EmailClient for NoEmail {
    fn email(_: &SdkConfig, _: &Settings) -> Arc<dyn EmailSender> {
        Arc::new(NotLinked)
    }
}

/// Every client this build of the crate has (its `sns` / `ses` features): the local server's
/// and the tests' choice.
#[cfg(feature = "sns")]
pub type LinkedSms = Sns;
#[cfg(not(feature = "sns"))]
pub type LinkedSms = NoSms;
#[cfg(feature = "ses")]
pub type LinkedEmail = Ses;
#[cfg(not(feature = "ses"))]
pub type LinkedEmail = NoEmail;

struct NotLinked;

#[async_trait::async_trait]
impl SmsSender for NotLinked {
    async fn send_sms(
        &self,
        _to: &crate::types::PhoneNumber,
        _body: &str,
    ) -> Result<(), PortError> {
        tracing::error!("this function was built without an SMS client (aws::NoSms)");
        Err(PortError::new("no SMS client in this function"))
    }
}

#[async_trait::async_trait]
impl EmailSender for NotLinked {
    async fn send_email(&self, _email: &crate::ports::Email) -> Result<(), PortError> {
        tracing::error!("this function was built without an email client (aws::NoEmail)");
        Err(PortError::new("no email client in this function"))
    }
}

/// How long `bootstrap` waits for a new table to become ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);

/// Creates what is missing: the table (on-demand, `pk`/`sk` strings, TTL on `ttl`), the
/// code key's secret (64 random bytes in hex), the signing secret when
/// `names.signing_secret_id` is set (32 random bytes in hex: the plain-string form of
/// [`SigningKeys::from_secret`], one key) and the SES identity of `sender_email`. Running it
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
    #[cfg(feature = "ses")]
    ensure_email_identity(&aws_sdk_sesv2::Client::new(sdk), sender_email).await?;
    #[cfg(not(feature = "ses"))]
    let _ = sender_email;
    Ok(())
}

async fn table_status(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<TableStatus>, StartupError> {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table().and_then(|t| t.table_status()).cloned()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DescribeTableError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(bootstrap_err(
            format!("describe table {table}"),
            error_detail(&e),
        )),
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
        match created {
            Ok(_) => tracing::info!(table, "table created"),
            // Someone else is creating it: wait for it below.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateTableError::ResourceInUseException(_))
                ) => {}
            Err(e) => {
                return Err(bootstrap_err(
                    format!("create table {table}"),
                    error_detail(&e),
                ));
            }
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
    match client.describe_secret().secret_id(secret_id).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DescribeSecretError::ResourceNotFoundException(_))
            ) => {}
        Err(e) => {
            return Err(bootstrap_err(
                format!("describe secret {secret_id}"),
                error_detail(&e),
            ));
        }
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
    match created {
        Ok(_) => {
            tracing::info!(secret_id, "secret created");
            Ok(())
        }
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateSecretError::ResourceExistsException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(bootstrap_err(
            format!("create secret {secret_id}"),
            error_detail(&e),
        )),
    }
}

#[cfg(feature = "ses")]
async fn ensure_email_identity(
    client: &aws_sdk_sesv2::Client,
    sender_email: &str,
) -> Result<(), StartupError> {
    match client
        .create_email_identity()
        .email_identity(sender_email)
        .send()
        .await
    {
        Ok(_) => {
            tracing::info!(
                sender_email,
                "SES email identity created (verify it before sending)"
            );
            Ok(())
        }
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateEmailIdentityError::AlreadyExistsException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(bootstrap_err(
            format!("create the SES identity {sender_email}"),
            error_detail(&e),
        )),
    }
}

/// Test support: an `SdkConfig` for the moto emulator named by `MFA_TEST_MOTO_URL`.
#[cfg(test)]
pub(crate) mod moto {
    use aws_config::{BehaviorVersion, Region, SdkConfig};

    pub async fn sdk_config(url: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(url)
            .region(Region::new("us-east-1"))
            .http_client(super::https_client())
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .load()
            .await
    }

    /// A fresh suffix so that runs against one emulator never share resources.
    pub fn unique(prefix: &str) -> String {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        format!("{prefix}-{}", hex::encode(b))
    }

    /// `GET {url}{path}` with std only (the crate has no HTTP client of its own).
    pub fn http_get(url: &str, path: &str) -> String {
        use std::io::{Read, Write};
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_errors_name_what_failed() {
        let e = StartupError::from(ConfigError::Missing("MFA_SECRET_ID"));
        assert_eq!(
            e.to_string(),
            "configuration: environment variable MFA_SECRET_ID is required but not set"
        );
        let e = StartupError::WeakKey {
            secret_id: "mfa/key".into(),
            source: WeakKey,
        };
        assert_eq!(
            e.to_string(),
            "the secret mfa/key is not a usable key: the code hashing key must be at least 32 bytes"
        );
        let secret = "short-secret-value";
        let e = StartupError::SigningKeys {
            secret_id: "mfa/signing".into(),
            source: SigningKeys::from_secret(secret).unwrap_err(),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("the secret mfa/signing does not hold usable signing keys: "),
            "{text}"
        );
        assert!(!text.contains(secret), "{text}");
    }
}

#[cfg(test)]
mod moto_tests {
    use super::*;
    use crate::ports::Email;
    use crate::signing::SigningKeys;
    use crate::types::PhoneNumber;

    #[tokio::test]
    #[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
    async fn bootstrap_is_idempotent_and_the_service_reaches_every_aws_port() {
        let url = std::env::var("MFA_TEST_MOTO_URL").unwrap();
        let sdk = moto::sdk_config(&url).await;
        let names = AwsNames {
            table_name: moto::unique("mfa-table"),
            secret_id: moto::unique("mfa-secret"),
            signing_secret_id: Some(moto::unique("mfa-signing")),
        };
        let sender = format!("{}@example.com", moto::unique("sender"));

        // A missing secret is named, not guessed at.
        let err = service_from_sdk_config::<LinkedSms, LinkedEmail>(
            &sdk,
            names.clone(),
            Limits::default(),
            Settings::default(),
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(err, StartupError::SecretUnreadable { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&names.secret_id) && text.contains("ResourceNotFoundException"),
            "{text}"
        );
        assert!(
            !text.contains("SdkBody") && text.len() < 400,
            "compact, no raw response: {text}"
        );

        bootstrap(&sdk, &names, &sender).await.unwrap();
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        let signing_id = names.signing_secret_id.clone().unwrap();
        let signing_value = |sm: aws_sdk_secretsmanager::Client, id: String| async move {
            sm.get_secret_value()
                .secret_id(id)
                .send()
                .await
                .unwrap()
                .secret_string()
                .unwrap()
                .to_owned()
        };
        let signing_secret = signing_value(sm.clone(), signing_id.clone()).await;
        bootstrap(&sdk, &names, &sender).await.unwrap();
        assert_eq!(
            signing_value(sm.clone(), signing_id.clone()).await,
            signing_secret,
            "a second bootstrap keeps the signing secret"
        );
        assert_eq!(signing_secret.len(), 64);
        assert!(signing_secret.bytes().all(|b| b.is_ascii_hexdigit()));

        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = ddb
            .describe_table()
            .table_name(&names.table_name)
            .send()
            .await
            .unwrap();
        let table = table.table().unwrap();
        assert_eq!(table.table_status(), Some(&TableStatus::Active));
        let keys: Vec<_> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().clone()))
            .collect();
        assert_eq!(keys, vec![(PK, KeyType::Hash), (SK, KeyType::Range)]);
        let ttl = ddb
            .describe_time_to_live()
            .table_name(&names.table_name)
            .send()
            .await
            .unwrap();
        assert_eq!(
            ttl.time_to_live_description()
                .and_then(|d| d.attribute_name()),
            Some(TTL)
        );

        let secret = aws_sdk_secretsmanager::Client::new(&sdk)
            .get_secret_value()
            .secret_id(&names.secret_id)
            .send()
            .await
            .unwrap();
        let value = secret.secret_string().unwrap();
        assert_eq!(value.len(), 128);
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));

        let settings = Settings {
            sender_email: sender.clone(),
            sms_sender_id: Some("MFA".into()),
            ..Settings::default()
        };
        let svc = service_from_sdk_config::<LinkedSms, LinkedEmail>(
            &sdk,
            names.clone(),
            Limits::default(),
            settings.clone(),
        )
        .await
        .unwrap();
        let signing = svc.signing.as_ref().expect("the signing keys were read");
        let jwks = signing.jwks();
        let listed = jwks["keys"].as_array().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["alg"], "EdDSA");
        assert_eq!(
            signing.jwks(),
            SigningKeys::from_secret(&signing_secret).unwrap().jwks(),
            "the keys are the secret's"
        );
        assert!(signing.sign(&serde_json::json!({ "sub": "u" })).is_some());

        // Without a signing secret id, no signing keys (and nothing else is read).
        let unsigned = AwsNames {
            signing_secret_id: None,
            ..names.clone()
        };
        let svc_unsigned = service_from_sdk_config::<LinkedSms, LinkedEmail>(
            &sdk,
            unsigned,
            Limits::default(),
            settings.clone(),
        )
        .await
        .unwrap();
        assert!(svc_unsigned.signing.is_none());

        // A missing or unusable signing secret is named, never shown.
        let missing = AwsNames {
            signing_secret_id: Some(moto::unique("mfa-signing-missing")),
            ..names.clone()
        };
        let err = service_from_sdk_config::<LinkedSms, LinkedEmail>(
            &sdk,
            missing.clone(),
            Limits::default(),
            settings.clone(),
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&err, StartupError::SecretUnreadable { secret_id, .. } if Some(secret_id) == missing.signing_secret_id.as_ref()),
            "{err}"
        );
        let weak_id = moto::unique("mfa-signing-weak");
        sm.create_secret()
            .name(&weak_id)
            .secret_string("too-short-value")
            .send()
            .await
            .unwrap();
        let weak = AwsNames {
            signing_secret_id: Some(weak_id.clone()),
            ..names.clone()
        };
        let err = service_from_sdk_config::<LinkedSms, LinkedEmail>(
            &sdk,
            weak,
            Limits::default(),
            settings.clone(),
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(err, StartupError::SigningKeys { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&weak_id), "{text}");
        assert!(!text.contains("too-short-value"), "{text}");
        assert!(
            svc.store
                .get_policy(&crate::types::AppId::parse("nobody").unwrap())
                .await
                .unwrap()
                .is_none()
        );

        let marker = moto::unique("marker");
        let to = PhoneNumber::parse("+14155550123").unwrap();
        svc.sms
            .send_sms(&to, &format!("Your code is 123456 {marker}"))
            .await
            .unwrap();
        let email = Email {
            to: "user@example.com".into(),
            subject: format!("Subject {marker}"),
            text: "text body".into(),
            html: "<p>html body</p>".into(),
        };
        svc.email.send_email(&email).await.unwrap();

        let data: serde_json::Value =
            serde_json::from_str(&moto::http_get(&url, "/moto-api/data.json")).unwrap();
        let sms = data["sns"]["SMS"].to_string();
        assert!(
            sms.contains(&marker) && sms.contains("+14155550123"),
            "{sms}"
        );
        let messages = data["ses"]["Message"].to_string();
        assert!(messages.contains(&marker), "{messages}");
    }
}
