//! What second factors a user has bound: their phones and their authenticator app. The
//! step-up rule, Start, Skip, the last-factor rule and status all ask this one question.

use crate::error::MfaError;
use crate::ports::{AuthenticatorRecord, PhoneRecord};
use crate::service::Service;

use super::Caller;

/// The caller's verified factors, as read now.
#[derive(Debug, Clone)]
pub struct Factors {
    /// In the store's order (see [`crate::ports::display_order`]).
    pub phones: Vec<PhoneRecord>,
    pub app: Option<AuthenticatorRecord>,
}

impl Factors {
    /// Reads both at once.
    pub async fn of(svc: &Service, c: &Caller) -> Result<Factors, MfaError> {
        let phones = async { Ok::<_, MfaError>(svc.store.list_phones(c.owner()).await?) };
        let app = async { Ok::<_, MfaError>(svc.store.get_app(c.owner()).await?) };
        let (phones, app) = tokio::try_join!(phones, app)?;
        Ok(Factors { phones, app })
    }

    /// At least one factor: the user is enrolled (and changes need a step-up proof).
    pub fn any(&self) -> bool {
        !self.phones.is_empty() || self.app.is_some()
    }

    /// How many factors there are, the app counting as one.
    pub fn count(&self) -> usize {
        self.phones.len() + usize::from(self.app.is_some())
    }
}
