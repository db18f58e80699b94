//! What the service keeps of a platform account: the profile, the skip, and the admin reset.

use async_trait::async_trait;

use super::phones::PhoneRecord;
use crate::error::PortError;
use crate::types::{AppId, Owner, UnixTime, UserId};

/// What the service keeps of a platform account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub app_id: AppId,
    pub user_id: UserId,
    pub email: String,
    pub email_verified: bool,
    /// An argon2 PHC string. Never logged: `Debug` leaves it out.
    pub password_hash: String,
    /// The language texts and emails speak to the user in (BCP 47; `None`: English).
    pub locale: Option<crate::messages::Locale>,
    pub updated_at: UnixTime,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("email_verified", &self.email_verified)
            .field("password_hash", &"<redacted>")
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// What the status route shows of a user, read together ([`UserStore::user_overview`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserOverview {
    pub user: Option<UserRecord>,
    /// The user's phones, in list order (as [`PhoneStore::list_phones`](super::PhoneStore::list_phones)).
    pub phones: Vec<PhoneRecord>,
    /// The user's authenticator app (as [`AuthenticatorStore::get_app`](super::AuthenticatorStore::get_app)).
    pub app: Option<super::AuthenticatorRecord>,
    /// The end of the user's skip as stored (as [`UserStore::get_skip`]).
    pub skip: Option<UnixTime>,
    /// How many unused recovery codes the user has (as
    /// [`RecoveryStore::count_recovery_codes`](super::RecoveryStore::count_recovery_codes)).
    pub recovery_codes_remaining: u32,
    /// The user's enrollment grace, once one has started (as [`UserStore::start_grace`]).
    pub grace: Option<Grace>,
}

/// A user's enrollment grace under `required` (contract v2): it starts the first time status
/// prompts them, and its end is fixed then. A later policy may shorten it (the flow takes the
/// earlier end), never lengthen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub started_at: UnixTime,
    pub ends_at: UnixTime,
}

/// The factors an admin reset removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetFactors {
    /// In list order.
    pub phones: Vec<PhoneRecord>,
    pub app: Option<super::AuthenticatorRecord>,
}

/// A user's profile and skip, and the admin reset of everything the user has.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - put_user replaces the record (another user's is not found);
/// - put_skip replaces the end;
/// - start_grace keeps the first grace;
/// - user_overview is what the single reads give (another user's items are not in it);
/// - reset_user removes everything and returns the phones;
/// - reset_user of a user with nothing is empty;
/// - reset_user removes the app too.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// - put_user replaces the record (another user's is not found).
    async fn get_user(&self, owner: Owner<'_>) -> Result<Option<UserRecord>, PortError>;
    /// The profile, phones, skip and unused recovery codes in one read (DynamoDB: one query
    /// of the user's partition; memory: one look under the lock): the same answer as
    /// `get_user`, `list_phones`, `get_skip` and `count_recovery_codes` would give.
    /// - user_overview is what the single reads give (another user's items are not in it).
    async fn user_overview(&self, owner: Owner<'_>) -> Result<UserOverview, PortError>;
    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError>;
    /// The end of the user's skip as stored (the caller compares it with now).
    /// - put_skip replaces the end.
    async fn get_skip(&self, owner: Owner<'_>) -> Result<Option<UnixTime>, PortError>;
    /// Stores the end of a skip taken at `now`, and counts the skip in the adoption figures
    /// (in the same write).
    /// - put_skip replaces the end.
    async fn put_skip(
        &self,
        owner: Owner<'_>,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), PortError>;
    /// Starts the user's grace with `grace` unless one has started already (one write that
    /// keeps the stored one: concurrent first prompts agree). Returns the grace in force. A
    /// reset leaves it: a user reset under `required` does not get a second grace.
    /// - start_grace keeps the first grace.
    async fn start_grace(&self, owner: Owner<'_>, grace: Grace) -> Result<Grace, PortError>;
    /// The admin reset (the adoption counts move in the same writes): removes every phone, number claim, authenticator app, enrollment and
    /// challenge (pending codes with them) and every recovery code of the user. Returns the
    /// factors removed.
    /// - reset_user removes everything and returns the phones (in list order; the profile
    ///   and other users stay; the user enrolls again as new);
    /// - reset_user of a user with nothing is empty;
    /// - reset_user removes the app too.
    async fn reset_user(&self, owner: Owner<'_>) -> Result<ResetFactors, PortError>;
}
