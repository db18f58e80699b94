//! The AWS configuration every SDK client is made from: the HTTP client, bounded retries and
//! timeouts, and the endpoints, for a Lambda from its environment alone or for the local
//! server and the tests from `aws_config`'s full chain.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_types::sdk_config::SharedHttpClient;

use super::StartupError;

/// The HTTP client of every SDK client here: the SDK's own (`aws-smithy-http-client`, hyper 1
/// with its connection pool) on rustls with ring, trusting the operating system's CA
/// certificates (`rustls-native-certs`: `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured, which
/// is how the benchmark trusts its throwaway CA). Not the SDK's default TLS provider, aws-lc:
/// 1.9 MB more of each function, and CPU-jitter entropy seeded on the first handshake (README
/// "Size and speed"). No proxy (`HTTPS_PROXY` is not read): a Lambda reaches AWS directly or
/// through VPC endpoints.
pub fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
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
    builder.set_endpoint_url(non_empty(std::env::var("AWS_ENDPOINT_URL").ok()));
    Ok(builder.build())
}

/// Per-service settings from the environment only, as `aws_config`'s loader reads them without
/// its profile files: the service's own variable first (`AWS_ENDPOINT_URL_DYNAMODB`,
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, ...), else the shared one (`AWS_ENDPOINT_URL`).
#[derive(Debug)]
struct EnvEndpoints;

impl aws_types::service_config::LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        env_setting(key.env(), key.service_id(), |name| std::env::var(name).ok())
    }
}

/// An endpoint variable's value, with an empty one taken as unset: `sam local` gives a
/// variable the template declares but `env.json` does not set (`AWS_ENDPOINT_URL`) the value
/// `""`, which is no endpoint.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// `{env}_{SERVICE ID}` (upper case, spaces as `_`) if `var` has it, else `env`.
fn env_setting(
    env: &str,
    service_id: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let service = service_id.to_uppercase().replace(' ', "_");
    let var = |name: &str| non_empty(var(name));
    var(&format!("{env}_{service}")).or_else(|| var(env))
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

#[cfg(test)]
mod tests {
    use super::env_setting;

    #[test]
    fn a_service_endpoint_variable_comes_before_the_shared_one() {
        let vars = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://shared".to_owned()),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER" => Some("http://secrets".to_owned()),
            _ => None,
        };
        let secrets = env_setting("AWS_ENDPOINT_URL", "Secrets Manager", vars);
        assert_eq!(secrets.as_deref(), Some("http://secrets"));
        let dynamodb = env_setting("AWS_ENDPOINT_URL", "DynamoDB", vars);
        assert_eq!(dynamodb.as_deref(), Some("http://shared"));
        assert_eq!(env_setting("AWS_ENDPOINT_URL", "SNS", |_| None), None);
    }

    #[test]
    fn an_empty_endpoint_variable_is_no_endpoint() {
        // `sam local` sets a declared variable that env.json leaves out to "".
        let vars = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some(String::new()),
            "AWS_ENDPOINT_URL_DYNAMODB" => Some(" ".to_owned()),
            "AWS_ENDPOINT_URL_SNS" => Some(String::new()),
            _ => None,
        };
        assert_eq!(env_setting("AWS_ENDPOINT_URL", "DynamoDB", vars), None);
        assert_eq!(env_setting("AWS_ENDPOINT_URL", "SNS", vars), None);
        let shared = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://shared".to_owned()),
            "AWS_ENDPOINT_URL_SNS" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            env_setting("AWS_ENDPOINT_URL", "SNS", shared).as_deref(),
            Some("http://shared")
        );
    }
}
