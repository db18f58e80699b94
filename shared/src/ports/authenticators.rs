//! A user's authenticator app (at most one): its sealed secret, the steps it has used, and
//! the writes that bind, use and remove it.

use async_trait::async_trait;

use super::sessions::Enrollment;
use crate::error::PortError;
use crate::totp::Sealed;
use crate::types::{AuthenticatorId, Owner, UnixTime};

/// A verified authenticator app: a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorRecord {
    pub authenticator_id: AuthenticatorId,
    /// The secret, sealed for this application, user and authenticator id; never in clear.
    pub sealed: Sealed,
    pub label: Option<String>,
    pub verified_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

/// A right code of an authenticator-app session (a setup or a sign-in), to commit.
#[derive(Debug, Clone, Copy)]
pub struct AppCodeUse<'a> {
    /// The session as the flow read it (of kind `AppSetup` or `AppSignIn`).
    pub session: &'a Enrollment,
    /// The step whose code it was (RFC 6238's `T`): used at most once per user.
    pub step: i64,
    /// Until when the step's use must be remembered (the step's end plus the accepted skew).
    pub step_remembered_until: UnixTime,
    pub now: UnixTime,
    /// For a sign-in whose secret was sealed under an old key: the secret sealed again under
    /// the current one, stored in the same write (a key rotation completes as apps are used).
    pub reseal: Option<&'a Sealed>,
    /// For a setup that is not `first`: the factors the flow read just before, which the
    /// write requires unchanged (whether it adds an app or replaces one is counted in it).
    pub seen: Option<&'a AppSetupSeen>,
}

/// What a setup's completion saw of the user's factors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSetupSeen {
    pub phones: u32,
    /// The app bound, if any (the one the setup replaces).
    pub app: Option<crate::types::AuthenticatorId>,
}

/// What committing an app code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCompletion {
    /// The session is complete, the step used, and the app bound (a setup; a previous app
    /// replaced) or its `last_used_at` moved (a sign-in).
    Done,
    /// The session was no longer open (completed by a concurrent request, or expired).
    SessionGone,
    /// This user already used that step (a replayed code, even from another flow).
    StepUsed,
    /// The user's factors changed meanwhile: a first setup met a phone or an app bound
    /// meanwhile, or a sign-in's app was removed or replaced.
    FactorsChanged,
}

/// Authenticator apps.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - an app setup reads back as created, and takes attempts up to max;
/// - complete_app binds the app (and replaces a previous one);
/// - complete_app is single use (also when two complete at once);
/// - a step is used once per user (across setups and sign-ins);
/// - a first setup completes only while the user has no factor;
/// - an app sign-in completes only while its app is bound (and moves last_used_at);
/// - remove_app releases the app, and the last factor takes the recovery codes;
/// - remove_app refuses when the factors changed;
/// - a phone removal counts the app (the last phone is not the last factor).
#[async_trait]
pub trait AuthenticatorStore: Send + Sync {
    /// The user's authenticator app, if one is bound.
    async fn get_app(&self, owner: Owner<'_>) -> Result<Option<AuthenticatorRecord>, PortError>;
    /// Takes one attempt against an app session if it is live, at the code step and has fewer
    /// than `max` attempts. Returns the attempts taken so far, or `None`.
    /// - an app setup reads back as created, and takes attempts up to max.
    async fn take_app_attempt(
        &self,
        session: &Enrollment,
        max: u32,
        now: UnixTime,
    ) -> Result<Option<u32>, PortError>;
    /// Atomically: completes the session (if still open at `now`), marks `step` used for the
    /// user (refused if it already is), and binds the setup's app (replacing a previous one;
    /// for a `first` setup only while the user has no phone and no app) or, for a sign-in,
    /// moves the app's `last_used_at` (only while that app is still bound). Anything but
    /// `Done` writes nothing.
    /// - complete_app binds the app (and replaces a previous one);
    /// - complete_app is single use (also when two complete at once);
    /// - a step is used once per user (across setups and sign-ins);
    /// - a first setup completes only while the user has no factor;
    /// - an app sign-in completes only while its app is bound (and moves last_used_at).
    async fn complete_app(&self, code: AppCodeUse<'_>) -> Result<AppCompletion, PortError>;
    /// Removes the user's app `id`, atomically, if it is still bound and the user still has
    /// `phones_seen` phones; with no phone (the last factor), the recovery codes go in the same
    /// write. False when the factors changed meanwhile.
    /// - remove_app releases the app, and the last factor takes the recovery codes;
    /// - remove_app refuses when the factors changed.
    async fn remove_app(
        &self,
        owner: Owner<'_>,
        id: &AuthenticatorId,
        phones_seen: u32,
    ) -> Result<bool, PortError>;
}
