//! What a function links: its SMS and email clients ([`Sns`] or [`NoSms`], [`Ses`] or
//! [`NoEmail`]) and whether it signs assertions ([`Signs`]) or only verifies them
//! ([`Verifies`]), each chosen as a type in the function's `main.rs`.

use std::sync::Arc;

use aws_config::SdkConfig;

#[cfg(feature = "ses")]
use crate::adapters::ses::SesEmail;
#[cfg(feature = "sns")]
use crate::adapters::sns::SnsSms;
use crate::config::Settings;
use crate::error::PortError;
use crate::ports::{EmailSender, SmsSender};

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
