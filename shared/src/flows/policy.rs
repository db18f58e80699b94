//! Admin and operator changes to an application's MFA policy.

use serde_json::json;

use super::audit::{self, Action};
use crate::error::MfaError;
use crate::service::Service;
use crate::types::{AppId, CountryCode, Enforcement, Policy};

/// Why a `grace_period_days` is refused (the admin API's message names the field).
pub const GRACE_DAYS_RULE: &str =
    "`grace_period_days` must be a whole number of days from 0 to 90.";

/// A concurrent writer without `If-Match` is retried this many times before giving up.
const WRITE_TRIES: usize = 5;

/// The policy a user's request runs under: as this instance read or saved it in the last few
/// seconds ([`crate::policy_cache`]), else read now (and kept).
pub async fn get(svc: &Service, app: &AppId) -> Result<Policy, MfaError> {
    let now = svc.clock.now();
    if let Some(p) = svc.policy_cache.get(app, now) {
        return Ok(p);
    }
    let p = get_fresh(svc, app).await?;
    svc.policy_cache.put(&p, now);
    Ok(p)
}

/// The stored policy, or the defaults for an application never configured: read now (the
/// admin API shows what is saved, never a cached copy).
pub async fn get_fresh(svc: &Service, app: &AppId) -> Result<Policy, MfaError> {
    Ok(svc
        .store
        .get_policy(app)
        .await?
        .unwrap_or_else(|| Policy::default_for(app.clone())))
}

/// An admin's change (`PUT .../mfa-policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    pub enabled: bool,
    pub include_in_signup: bool,
    pub enforcement: Enforcement,
    /// `None`: leave the list as it is; `Some(None)`: every country; `Some(Some(list))`.
    pub allowed_countries: Option<Option<Vec<CountryCode>>>,
    /// `None`: leave the factors as they are; otherwise a non-empty list in
    /// [`Factor::ALL`](crate::types::Factor::ALL)'s order, without repeats.
    pub factors: Option<Vec<crate::types::Factor>>,
    /// `None`: leave it; `Some(None)`: back to the default (the application id).
    pub display_name: Option<Option<crate::types::DisplayName>>,
    /// `None`: leave it; `Some(None)`: no WebOTP line.
    pub webotp_domain: Option<Option<crate::types::WebOtpDomain>>,
    /// `None`: leave it; otherwise 0 to [`Policy::MAX_GRACE_PERIOD_DAYS`].
    pub grace_period_days: Option<u16>,
}

/// Applies an admin's change. `if_match` makes it conditional on the version the admin saw.
pub async fn update(
    svc: &Service,
    app: &AppId,
    change: PolicyChange,
    if_match: Option<u64>,
    actor: &str,
) -> Result<Policy, MfaError> {
    if change
        .grace_period_days
        .is_some_and(|d| d > Policy::MAX_GRACE_PERIOD_DAYS)
    {
        return Err(MfaError::InvalidRequest(GRACE_DAYS_RULE.into()));
    }
    if change.include_in_signup && !change.enabled {
        return Err(MfaError::InvalidRequest(
            "`include_in_signup` can only be true when `enabled` is true.".into(),
        ));
    }
    for _ in 0..WRITE_TRIES {
        let current = get_fresh(svc, app).await?;
        if !current.available {
            return Err(MfaError::MfaNotAvailable);
        }
        if let Some(seen) = if_match
            && seen != current.version
        {
            return Err(MfaError::VersionConflict {
                current: current.version,
            });
        }
        let next = Policy {
            enabled: change.enabled,
            include_in_signup: change.include_in_signup,
            enforcement: change.enforcement,
            allowed_countries: change
                .allowed_countries
                .clone()
                .unwrap_or_else(|| current.allowed_countries.clone()),
            factors: change
                .factors
                .clone()
                .unwrap_or_else(|| current.factors.clone()),
            display_name: change
                .display_name
                .clone()
                .unwrap_or_else(|| current.display_name.clone()),
            webotp_domain: change
                .webotp_domain
                .clone()
                .unwrap_or_else(|| current.webotp_domain.clone()),
            grace_period_days: change
                .grace_period_days
                .unwrap_or(current.grace_period_days),
            version: current.version + 1,
            updated_at: Some(svc.clock.now()),
            updated_by: Some(actor.to_owned()),
            ..current.clone()
        };
        if svc.store.put_policy(&next, current.version).await? {
            // This instance's next request runs under it at once; others within the TTL.
            svc.policy_cache.put(&next, svc.clock.now());
            tracing::info!(app_id = %app, version = next.version, "policy updated");
            let mut details =
                json!({ "old": settings_json(&current), "new": settings_json(&next) });
            // Said apart as well, so that an auditor finds every change of the grace period.
            if current.grace_period_days != next.grace_period_days {
                details["grace_period_days"] =
                    json!({ "from": current.grace_period_days, "to": next.grace_period_days });
            }
            audit::record(svc, app, actor, None, Action::PolicyUpdated, details).await;
            return Ok(next);
        }
        if if_match.is_some() {
            let now = get_fresh(svc, app).await?;
            return Err(MfaError::VersionConflict {
                current: now.version,
            });
        }
    }
    Err(MfaError::ServiceUnavailable { retry_after: 1 })
}

/// The operator's switch (`PUT .../mfa-availability`). Withdrawing availability also turns
/// the admin's `enabled` and `include_in_signup` off, so that the policy an admin sees is the
/// one in force; making it available again leaves MFA off until the admin enables it.
pub async fn set_availability(
    svc: &Service,
    app: &AppId,
    available: bool,
    actor: &str,
) -> Result<Policy, MfaError> {
    for _ in 0..WRITE_TRIES {
        let current = get_fresh(svc, app).await?;
        let mut next = current.clone();
        next.available = available;
        if !available {
            next.enabled = false;
            next.include_in_signup = false;
        }
        next.version = current.version + 1;
        next.updated_at = Some(svc.clock.now());
        next.updated_by = Some(actor.to_owned());
        if svc.store.put_policy(&next, current.version).await? {
            svc.policy_cache.put(&next, svc.clock.now());
            tracing::info!(app_id = %app, available, version = next.version, "availability changed");
            let details = json!({ "old": settings_json(&current), "new": settings_json(&next) });
            audit::record(svc, app, actor, None, Action::AvailabilityChanged, details).await;
            return Ok(next);
        }
    }
    Err(MfaError::ServiceUnavailable { retry_after: 1 })
}

/// The settings of a policy (a JSON object): the audit log's old and new values, and all the
/// admin API shows but the policy's app and who changed it when.
pub fn settings_json(p: &Policy) -> serde_json::Value {
    json!({
        "available": p.available,
        "enabled": p.enabled,
        "include_in_signup": p.include_in_signup,
        "enforcement": p.enforcement,
        "allowed_countries": p.allowed_countries.as_ref().map(|l| l.iter().map(CountryCode::as_str).collect::<Vec<_>>()),
        "factors": p.factors,
        "display_name": p.name(),
        "webotp_domain": p.webotp_domain,
        "grace_period_days": p.grace_period_days,
        "version": p.version,
    })
}
