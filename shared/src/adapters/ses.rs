//! Email through Amazon SES v2 `SendEmail`: simple content with a text and an HTML body.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::adapters::aws::error_detail;
use crate::error::PortError;
use crate::ports::{Email, EmailSender};

/// Sends email from one verified SES identity.
#[derive(Clone, Debug)]
pub struct SesEmail {
    client: Client,
    from: String,
}

impl SesEmail {
    /// `from`: the sender address, an SES identity (`MFA_SENDER_EMAIL`).
    pub fn new(client: Client, from: impl Into<String>) -> SesEmail {
        SesEmail {
            client,
            from: from.into(),
        }
    }
}

fn utf8(data: &str) -> Result<Content, PortError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| PortError::new(format!("ses send_email: could not build the request: {e}")))
}

/// The SES message for `email`.
fn content(email: &Email) -> Result<EmailContent, PortError> {
    let message = Message::builder()
        .subject(utf8(&email.subject)?)
        .body(
            Body::builder()
                .text(utf8(&email.text)?)
                .html(utf8(&email.html)?)
                .build(),
        )
        .build();
    Ok(EmailContent::builder().simple(message).build())
}

#[async_trait]
impl EmailSender for SesEmail {
    async fn send_email(&self, email: &Email) -> Result<(), PortError> {
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(content(email)?)
            .send()
            .await
            .map_err(|e| PortError::new(format!("ses send_email: {}", error_detail(&e))))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_simple_utf8_content_with_both_bodies() {
        let email = Email {
            to: "a@example.com".into(),
            subject: "Sujet é".into(),
            text: "plain".into(),
            html: "<p>html</p>".into(),
        };
        let c = content(&email).unwrap();
        let simple = c.simple().unwrap();
        assert_eq!(simple.subject().unwrap().data(), "Sujet é");
        assert_eq!(simple.subject().unwrap().charset(), Some("UTF-8"));
        let body = simple.body().unwrap();
        assert_eq!(body.text().unwrap().data(), "plain");
        assert_eq!(body.html().unwrap().data(), "<p>html</p>");
        assert_eq!(body.html().unwrap().charset(), Some("UTF-8"));
    }
}
