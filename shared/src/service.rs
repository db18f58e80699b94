//! The service: its ports, keys and settings, built once per cold start and shared by every
//! request of that sandbox.

use std::sync::Arc;

use crate::config::{Limits, Settings};
use crate::crypto::Keys;
use crate::ports::{Clock, EmailSender, SmsSender, Store};

/// Everything a flow needs. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct Service {
    pub store: Arc<dyn Store>,
    pub sms: Arc<dyn SmsSender>,
    pub email: Arc<dyn EmailSender>,
    pub clock: Arc<dyn Clock>,
    pub keys: Keys,
    pub limits: Limits,
    pub settings: Settings,
}
