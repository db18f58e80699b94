//! `GET /v1/admin/applications/{app_id}/mfa-stats`: the adoption figures an admin decides a
//! rollout by (contract v2, "Rolling MFA out").

use serde::Serialize;

use crate::error::MfaError;
use crate::service::Service;
use crate::types::{AppId, UnixTime};

/// Users enrolled by factor: a user with a phone and an app counts in both.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ByFactor {
    pub sms: u64,
    pub totp: u64,
}

/// The figures as the admin API shows them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct MfaStats {
    pub users: u64,
    pub enrolled: u64,
    pub enrolled_by_factor: ByFactor,
    pub skips_last_7_days: u64,
    pub texts_last_24h: u64,
    /// The application's daily text budget (`MFA_TEXTS_PER_APP_PER_DAY`).
    pub texts_per_day_limit: u32,
    pub as_of: UnixTime,
}

/// The application's figures now. The counts are kept as the changes happen (never a scan);
/// `enrolled` can never exceed `users` in a settled table, but a user provisioned before
/// this release is not in `users`, so the figures are shown as they are.
pub async fn adoption(svc: &Service, app: &AppId) -> Result<MfaStats, MfaError> {
    let now = svc.clock.now();
    let a = svc.store.adoption(app, now).await?;
    Ok(MfaStats {
        users: a.users,
        enrolled: a.enrolled,
        enrolled_by_factor: ByFactor {
            sms: a.sms,
            totp: a.totp,
        },
        skips_last_7_days: a.skips_last_7_days,
        texts_last_24h: a.texts_last_24h,
        texts_per_day_limit: svc.limits.texts_per_app_per_day,
        as_of: now,
    })
}
