//! Secret values from AWS Secrets Manager (`GetSecretValue`, the `SecretString`).

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use crate::adapters::aws::error_detail;
use crate::error::PortError;
use crate::ports::SecretSource;

/// Reads secrets by name or ARN. Errors name the secret, never its value.
#[derive(Clone, Debug)]
pub struct SecretsManagerSource {
    client: Client,
}

impl SecretsManagerSource {
    pub fn new(client: Client) -> SecretsManagerSource {
        SecretsManagerSource { client }
    }
}

impl SecretsManagerSource {
    /// The secret's current value and when that version was created (ms since the epoch;
    /// 0 when the service does not say). The creation time orders versions: it is what the
    /// published JWKS is conditioned on (see [`crate::adapters::jwks`]).
    pub async fn secret_version(&self, id: &str) -> Result<(String, i64), PortError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| {
                PortError::new(format!(
                    "secretsmanager get_secret_value {id}: {}",
                    error_detail(&e)
                ))
            })?;
        let created = out.created_date().map_or(0, |d| {
            d.secs()
                .saturating_mul(1000)
                .saturating_add(i64::from(d.subsec_nanos() / 1_000_000))
        });
        let value = out.secret_string.ok_or_else(|| {
            PortError::new(format!(
                "secretsmanager get_secret_value {id}: the secret has no SecretString"
            ))
        })?;
        Ok((value, created))
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn secret_string(&self, id: &str) -> Result<String, PortError> {
        self.secret_version(id).await.map(|(value, _)| value)
    }
}
