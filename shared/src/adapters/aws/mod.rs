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
//!
//! - [`sdk_config`](self::sdk_config): the HTTP client, retries, timeouts and endpoints of every
//!   SDK client, for a Lambda ([`lambda_sdk_config`]) or the local server ([`sdk_config()`]);
//! - `service`: the [`Service`] over the clients, the secrets read once per cold start;
//! - `clients`: which SMS and email clients, and which assertion role, a function links;
//! - `bootstrap`: the table, secrets and SES identity a fresh account lacks.

use aws_sdk_dynamodb::operation::RequestId;

use crate::config::ConfigError;
use crate::crypto::WeakKey;
use crate::signing::KeyError;

mod bootstrap;
mod clients;
pub mod sdk_config;
mod service;

pub use bootstrap::{bootstrap, ensure_table};
#[cfg(feature = "ses")]
pub use clients::Ses;
#[cfg(feature = "sns")]
pub use clients::Sns;
pub use clients::{
    Assertions, EmailClient, LinkedEmail, LinkedSms, NoEmail, NoSms, Signs, SmsClient, Verifies,
};
pub use sdk_config::{MAX_ATTEMPTS, https_client, lambda_sdk_config, sdk_config};
pub use service::{service_from_env, service_from_env_or_exit, service_from_sdk_config};

#[cfg(test)]
pub(crate) mod moto;
#[cfg(test)]
mod moto_tests;

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
    #[error("the secret {secret_id} does not hold usable authenticator app keys: {source}")]
    AppKeys {
        secret_id: String,
        #[source]
        source: crate::totp::SealingKeyError,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKeys;

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
