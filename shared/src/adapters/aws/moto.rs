//! Test support: an `SdkConfig` for the moto emulator named by `MFA_TEST_MOTO_URL`.

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

/// A fresh table (bootstrapped, with its secret) on the moto server of `MFA_TEST_MOTO_URL`:
/// the configuration and the table's name.
pub async fn fresh_table(prefix: &str) -> (SdkConfig, String) {
    let url = std::env::var("MFA_TEST_MOTO_URL").unwrap();
    let sdk = sdk_config(&url).await;
    let names = crate::config::AwsNames {
        table_name: unique(prefix),
        secret_id: unique(&format!("{prefix}-secret")),
        signing_secret_id: None,
        totp_secret_id: None,
    };
    super::bootstrap(&sdk, &names, "store-test@example.com")
        .await
        .unwrap();
    (sdk, names.table_name)
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
