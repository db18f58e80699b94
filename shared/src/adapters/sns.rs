//! Texts through Amazon SNS: a direct `Publish` to an E.164 number, marked transactional.

use async_trait::async_trait;
use aws_sdk_sns::Client;
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
            PortError::new(format!("sns publish to {}: {detail}", to.masked()))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
