//! The [`Service`] over the AWS clients, built once per cold start: the code key's secret and,
//! for a function that signs, the signing keys are read here (and their public half published).

use std::sync::Arc;

use aws_config::SdkConfig;

use super::StartupError;
use super::clients::{Assertions, EmailClient, SmsClient};
use super::sdk_config::lambda_sdk_config;
use crate::Service;
use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::jwks::{AssertionKeys, DynamoJwks, JwksItem};
use crate::adapters::secrets_manager::SecretsManagerSource;
use crate::config::{AwsNames, ConfigError, EnvSource, Limits, Settings};
use crate::crypto::Keys;
use crate::ports::{SecretSource, SystemClock};
use crate::signing::SigningKeys;

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

/// The service over the AWS clients made from `sdk` (one of each, shared by every request).
/// Reads the code key's secret and, when `names.signing_secret_id` or `names.totp_secret_id`
/// is set, the signing keys' and the authenticator app keys' secrets, once each.
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
    let app_keys =
        match &names.totp_secret_id {
            None => None,
            Some(id) => {
                let secret = secrets.secret_string(id).await.map_err(|e| {
                    StartupError::SecretUnreadable {
                        secret_id: id.clone(),
                        detail: e.0,
                    }
                })?;
                let keys = crate::totp::SealingKeys::from_secret(&secret).map_err(|source| {
                    StartupError::AppKeys {
                        secret_id: id.clone(),
                        source,
                    }
                })?;
                Some(Arc::new(keys))
            }
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
        app_keys,
        policy_cache: Arc::new(crate::policy_cache::PolicyCache::new(
            limits.policy_cache_secs,
        )),
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
