//! Texts through Amazon SNS: a direct `Publish` to an E.164 number, marked transactional.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::adapters::aws::error_detail;
use crate::error::PortError;
use crate::ports::SmsSender;
use crate::types::PhoneNumber;

/// Sends texts with SNS `Publish`.
#[derive(Clone, Debug)]
pub struct SnsSms {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSms {
    /// `sender_id`: an alphanumeric sender id, for the countries that allow one.
    pub fn new(client: Client, sender_id: Option<String>) -> SnsSms {
        SnsSms { client, sender_id }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::new(format!("sns publish: could not build the request: {e}")))
}

/// Keeps the number and the message (which holds the code) out of an error text.
fn redact(detail: String, to: &PhoneNumber, body: &str) -> String {
    let mut out = detail;
    if !body.is_empty() {
        out = out.replace(body, "<message>");
    }
    let e164 = to.e164();
    out.replace(e164, &to.masked())
        .replace(e164.trim_start_matches('+'), &to.masked())
}

#[async_trait]
impl SmsSender for SnsSms {
    async fn send_sms(&self, to: &PhoneNumber, body: &str) -> Result<(), PortError> {
        let mut request = self
            .client
            .publish()
            .phone_number(to.e164())
            .message(body)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional")?);
        if let Some(id) = &self.sender_id {
            request = request.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(id)?);
        }
        request.send().await.map_err(|e| {
            let detail = redact(error_detail(&e), to, body);
            let message = format!("sns publish to {}: {detail}", to.masked());
            if outcome_unknown(&e) {
                PortError::outcome_unknown(message)
            } else if throttled(&e) {
                PortError::throttled(message)
            } else {
                PortError::new(message)
            }
        })?;
        Ok(())
    }
}

/// Whether an SNS error code says the account's request rate was exceeded: the codes SNS and
/// the SDK's retry classifier use for throttling. `PublishError` has no variant for them (they
/// arrive as `Unhandled` with this code); its `KmsThrottlingException` (`KMSThrottling`) is
/// KMS throttling SNS for an encrypted topic, which a text to a number never meets, and is not
/// the SMS rate quota.
fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling" | "ThrottlingException" | "ThrottledException"
    )
}

/// Whether SNS refused the publish for the account's rate (after the SDK's retries).
fn throttled<R>(e: &SdkError<PublishError, R>) -> bool {
    e.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(is_throttling_code)
}

/// Whether SNS may have accepted the text although the call failed: the request was sent and
/// its answer was lost. That is a timeout (the attempt or operation timeout, which start after
/// the connection was made: the connect timeout is a dispatch failure), an answer that could
/// not be read, or the connection breaking while the request was on it (the SDK's HTTP client
/// reports that with a hyper error in its source chain; a refused or timed-out connect is an I/O or timeout error of
/// its own, and SNS's own refusals are service errors: those are known failures).
fn outcome_unknown<E, R>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> =
                d.as_connector_error().and_then(std::error::Error::source);
            while let Some(s) = source {
                if s.downcast_ref::<hyper::Error>().is_some() {
                    return true;
                }
                source = s.source();
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_request_that_went_out_has_an_unknown_outcome() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        type E = SdkError<std::io::Error, ()>;
        assert!(outcome_unknown(&E::timeout_error("attempt timeout")));
        assert!(outcome_unknown(&E::response_error("truncated body", ())));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!outcome_unknown(&E::dispatch_failure(ConnectorError::io(
            refused.into()
        ))));
        assert!(!outcome_unknown(&E::dispatch_failure(
            ConnectorError::timeout("connect timeout".into())
        )));
        let throttled = std::io::Error::other("Throttling");
        assert!(!outcome_unknown(&E::service_error(throttled, ())));
    }

    /// SNS's throttling answers are told apart from its refusals by their error code, read from
    /// the query protocol's XML as the SDK parses it.
    #[test]
    fn throttling_codes_are_throttled_and_other_refusals_are_not() {
        for code in ["Throttling", "ThrottlingException", "ThrottledException"] {
            assert!(is_throttling_code(code), "{code}");
        }
        for code in [
            "KMSThrottling",
            "KMSThrottlingException",
            "InvalidParameter",
            "InvalidParameterValue",
            "AuthorizationError",
            "InternalError",
            "throttling",
            "",
        ] {
            assert!(!is_throttling_code(code), "{code}");
        }
    }

    /// The whole mapping, on SDK errors built as the SDK builds them from an answer.
    #[test]
    fn a_throttled_publish_is_a_throttled_port_error() {
        use aws_smithy_types::error::ErrorMetadata;
        let service_error = |code: &str| {
            let meta = ErrorMetadata::builder()
                .code(code)
                .message("Rate exceeded")
                .build();
            SdkError::<PublishError, ()>::service_error(PublishError::generic(meta), ())
        };
        assert!(throttled(&service_error("Throttling")));
        assert!(throttled(&service_error("ThrottledException")));
        assert!(!throttled(&service_error("InvalidParameter")));
        let kms = SdkError::<PublishError, ()>::service_error(
            PublishError::KmsThrottlingException(
                aws_sdk_sns::types::error::KmsThrottlingException::builder()
                    .message("KMS is throttled")
                    .build(),
            ),
            (),
        );
        assert!(!throttled(&kms));
    }

    #[test]
    fn errors_never_carry_the_number_or_the_message() {
        let to = PhoneNumber::parse("+14155550123").unwrap();
        let body = "Your code is 123456";
        let detail =
            "InvalidParameter: +14155550123 / 14155550123 rejected: Your code is 123456".to_owned();
        let out = redact(detail, &to, body);
        assert!(!out.contains("4155550123"), "{out}");
        assert!(!out.contains("123456"), "{out}");
        assert!(out.contains("+1••••••0123"), "{out}");
    }
}
