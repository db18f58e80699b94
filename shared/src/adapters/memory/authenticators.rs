//! STUB (being written): the in-memory store's authenticator apps.

use async_trait::async_trait;

use crate::error::PortError;
use crate::ports::{
    AppCodeUse, AppCompletion, AuthenticatorRecord, AuthenticatorStore, Enrollment,
};
use crate::types::{AuthenticatorId, Owner, UnixTime};

#[async_trait]
impl AuthenticatorStore for super::MemoryStore {
    async fn get_app(&self, _owner: Owner<'_>) -> Result<Option<AuthenticatorRecord>, PortError> {
        Ok(None)
    }
    async fn take_app_attempt(
        &self,
        _session: &Enrollment,
        _max: u32,
        _now: UnixTime,
    ) -> Result<Option<u32>, PortError> {
        Err(PortError::new("not yet"))
    }
    async fn complete_app(&self, _code: AppCodeUse<'_>) -> Result<AppCompletion, PortError> {
        Err(PortError::new("not yet"))
    }
    async fn remove_app(
        &self,
        _owner: Owner<'_>,
        _id: &AuthenticatorId,
        _phones_seen: u32,
    ) -> Result<bool, PortError> {
        Err(PortError::new("not yet"))
    }
}
