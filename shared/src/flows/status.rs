//! What the frontend asks before showing (or not) the enrollment screens, and Skip.

use serde::Serialize;

use crate::error::MfaError;
use crate::ports::{AuthenticatorRecord, PhoneRecord, UserOverview};
use crate::service::Service;
use crate::types::{Enforcement, Factor, PhoneId, UnixTime};

use super::{Caller, grace, policy};

/// A phone as responses show it: masked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PhoneView {
    pub phone_id: PhoneId,
    pub masked: String,
    pub label: Option<String>,
    pub primary: bool,
    pub verified_at: UnixTime,
}

impl From<&PhoneRecord> for PhoneView {
    fn from(p: &PhoneRecord) -> Self {
        PhoneView {
            phone_id: p.phone_id.clone(),
            masked: p.number.masked(),
            label: p.label.clone(),
            primary: p.primary,
            verified_at: p.verified_at,
        }
    }
}

/// An authenticator app as responses show it: never its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppView {
    pub label: Option<String>,
    pub verified_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

impl From<&AuthenticatorRecord> for AppView {
    fn from(a: &AuthenticatorRecord) -> Self {
        AppView {
            label: a.label.clone(),
            verified_at: a.verified_at,
            last_used_at: a.last_used_at,
        }
    }
}

/// `GET /v1/mfa/status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    pub enabled: bool,
    pub enforcement: Enforcement,
    pub enrolled: bool,
    pub email_verified: bool,
    /// `"enroll"` or `"none"`.
    pub prompt: &'static str,
    pub can_skip: bool,
    pub skipped_until: Option<UnixTime>,
    /// Under `required`, the end of the user's grace while it runs (Skip works until then).
    pub enroll_by: Option<UnixTime>,
    pub phones: Vec<PhoneView>,
    /// The factors the policy allows for new enrollments and challenges.
    pub factors: Vec<Factor>,
    /// The user's authenticator app.
    pub totp: Option<AppView>,
    pub recovery_codes_remaining: u32,
}

/// The policy and the user's items (one read: DynamoDB queries the user's partition), at once:
/// the answer waits for the slower read, not for their sum.
async fn read(svc: &Service, c: &Caller) -> Result<(crate::types::Policy, UserOverview), MfaError> {
    let overview = async { Ok::<_, MfaError>(svc.store.user_overview(c.owner()).await?) };
    tokio::try_join!(policy::get(svc, &c.app), overview)
}

/// The user's status under the policy as it is at this very request.
pub async fn status(svc: &Service, c: &Caller) -> Result<Status, MfaError> {
    let now = svc.clock.now();
    let (policy, overview) = read(svc, c).await?;
    let user = grace::User::of(&overview);
    let grace::User {
        enrolled,
        email_verified,
        ..
    } = user;
    let UserOverview {
        mut phones,
        app,
        skip,
        recovery_codes_remaining,
        ..
    } = overview;
    crate::ports::display_order(&mut phones);
    let skipped_until = skip.filter(|t| *t > now);

    let enabled = policy.in_force();
    let standing = grace::standing(svc, c, &policy, user, now).await?;
    let prompt = enabled
        && policy.include_in_signup
        && !enrolled
        && email_verified
        && !standing.skip_in_force(skipped_until, now);
    Ok(Status {
        enabled,
        enforcement: policy.enforcement,
        enrolled,
        email_verified,
        prompt: if prompt { "enroll" } else { "none" },
        can_skip: enabled && !enrolled && standing.skip_allowed(),
        skipped_until,
        enroll_by: standing.enroll_by,
        phones: phones.iter().map(PhoneView::from).collect(),
        factors: policy.factors.clone(),
        totp: app.as_ref().map(AppView::from),
        recovery_codes_remaining,
    })
}

/// `POST /v1/mfa/skip`: postpones the prompt (7 days by default); under `required`, only
/// during the user's grace and never past its end.
pub async fn skip(svc: &Service, c: &Caller) -> Result<UnixTime, MfaError> {
    let (policy, overview) = read(svc, c).await?;
    if !policy.in_force() {
        return Err(MfaError::MfaDisabled);
    }
    let now = svc.clock.now();
    let user = grace::User::of(&overview);
    let standing = grace::standing(svc, c, &policy, user, now).await?;
    if !standing.skip_allowed() {
        return Err(MfaError::EnrollmentRequired);
    }
    if user.enrolled {
        return Err(MfaError::AlreadyEnrolled);
    }
    let until = standing.skip_end(now, svc.limits.skip_secs);
    svc.store.put_skip(c.owner(), now, until).await?;
    tracing::info!(app_id = %c.app, user_id = %c.user, "enrollment skipped");
    Ok(until)
}
