//! Console SMS and email for the local server: each message is printed and kept in an outbox
//! that `GET /_local/outbox` shows. Printing the code is the point here: this is a developer's
//! stand-in for a phone, never used by a deployed function.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

use crate::error::PortError;
use crate::ports::{Clock, Email, EmailSender, SmsSender};
use crate::types::{PhoneNumber, UnixTime};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutboxSms {
    pub to: String,
    pub body: String,
    pub sent_at: UnixTime,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutboxEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The HTML alternative: kept for tests, not in `GET /_local/outbox` (the contract's shape).
    #[serde(skip)]
    pub html: String,
    pub sent_at: UnixTime,
}

/// Everything "sent" so far.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Outbox {
    pub sms: Vec<OutboxSms>,
    pub email: Vec<OutboxEmail>,
}

/// Prints and keeps messages; clones share one outbox.
#[derive(Clone)]
pub struct ConsoleOutbox {
    outbox: Arc<Mutex<Outbox>>,
    clock: Arc<dyn Clock>,
    /// Tests switch texts or emails off to see how the flows survive a provider outage.
    sms_failing: Arc<std::sync::atomic::AtomicBool>,
    /// Tests make texts answer as a throttled SNS does (the account's SMS rate quota).
    sms_throttled: Arc<std::sync::atomic::AtomicBool>,
    email_failing: Arc<std::sync::atomic::AtomicBool>,
}

impl ConsoleOutbox {
    pub fn new(clock: Arc<dyn Clock>) -> ConsoleOutbox {
        ConsoleOutbox {
            outbox: Arc::default(),
            clock,
            sms_failing: Arc::default(),
            sms_throttled: Arc::default(),
            email_failing: Arc::default(),
        }
    }

    pub fn snapshot(&self) -> Outbox {
        self.outbox.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Makes every text fail (true) or work again (false).
    pub fn set_sms_failing(&self, failing: bool) {
        self.sms_failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every text fail as a throttled SNS publish does (true), or work again (false).
    pub fn set_sms_throttled(&self, throttled: bool) {
        self.sms_throttled
            .store(throttled, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every email fail (true) or work again (false).
    pub fn set_email_failing(&self, failing: bool) {
        self.email_failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self, what: &str) -> Result<(), PortError> {
        let flag = if what == "sms" {
            &self.sms_failing
        } else {
            &self.email_failing
        };
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Err(PortError::new(format!("console {what} switched off")))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SmsSender for ConsoleOutbox {
    async fn send_sms(&self, to: &PhoneNumber, body: &str) -> Result<(), PortError> {
        self.check("sms")?;
        if self.sms_throttled.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::throttled("console sms throttled"));
        }
        // The console is the developer's phone: the code is shown, the number masked.
        println!("[sms to {}] {body}", to.masked());
        let mut o = self
            .outbox
            .lock()
            .map_err(|_| PortError::new("outbox lock poisoned"))?;
        o.sms.push(OutboxSms {
            to: to.e164().to_owned(),
            body: body.to_owned(),
            sent_at: self.clock.now(),
        });
        Ok(())
    }
}

#[async_trait]
impl EmailSender for ConsoleOutbox {
    async fn send_email(&self, email: &Email) -> Result<(), PortError> {
        self.check("email")?;
        println!("[email to {}] {}\n{}", email.to, email.subject, email.text);
        let mut o = self
            .outbox
            .lock()
            .map_err(|_| PortError::new("outbox lock poisoned"))?;
        o.email.push(OutboxEmail {
            to: email.to.clone(),
            subject: email.subject.clone(),
            text: email.text.clone(),
            html: email.html.clone(),
            sent_at: self.clock.now(),
        });
        Ok(())
    }
}
