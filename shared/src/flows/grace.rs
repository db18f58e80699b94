//! The enrollment grace under `required` (contract v2, "Rolling MFA out"): the one place that
//! decides when a user's grace starts, when it ends and whether it is running. Status and Skip
//! both ask [`standing`]; nothing else reads a grace.
//!
//! - A grace starts the first time status would prompt the user under `required` (the policy
//!   in force with `include_in_signup`, the user not enrolled, the email verified), if the
//!   policy's `grace_period_days` is above 0 then. It is stored once ([`start_grace`] keeps
//!   the first one, so concurrent first prompts agree) and never again: a grace that ended
//!   does not restart, an admin reset keeps it, and switching to `optional` and back keeps
//!   its start. With 0 days nothing is stored, so a later grace period still gives the users
//!   prompted meanwhile a grace, from their next prompt.
//! - Its end is the earlier of the end stored at its start and its start plus the policy's
//!   days now: a policy change can shorten a running grace (to nothing with 0), never
//!   lengthen it.
//!
//! [`start_grace`]: crate::ports::UserStore::start_grace

use serde_json::json;

use super::Caller;
use super::audit::{self, Action};
use crate::error::MfaError;
use crate::ports::Grace;
use crate::service::Service;
use crate::types::{Enforcement, Policy, UnixTime};

const DAY_SECS: u64 = 86_400;

/// What the grace question needs to know of the user, as read with the policy.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub enrolled: bool,
    pub email_verified: bool,
    /// The grace stored for the user, if one has started.
    pub grace: Option<Grace>,
}

impl User {
    /// The user as their overview shows them.
    pub fn of(o: &crate::ports::UserOverview) -> User {
        User {
            enrolled: !o.phones.is_empty() || o.app.is_some(),
            email_verified: o.user.as_ref().is_some_and(|u| u.email_verified),
            grace: o.grace,
        }
    }
}

/// Where a user stands under the policy at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The policy is `required`.
    pub required: bool,
    /// The end of the user's running grace (status's `enroll_by`); `None` when no grace runs.
    pub enroll_by: Option<UnixTime>,
}

impl Standing {
    /// Skip is open to a user who is not enrolled: always under `optional`, during the grace
    /// under `required`.
    pub fn skip_allowed(self) -> bool {
        !self.required || self.enroll_by.is_some()
    }

    /// Whether a skip stored until `skipped_until` holds at `now`: under `required` only
    /// while the grace runs.
    pub fn skip_in_force(self, skipped_until: Option<UnixTime>, now: UnixTime) -> bool {
        skipped_until.is_some_and(|t| t > now) && self.skip_allowed()
    }

    /// The end of a skip asked for at `now` for `secs`: never past the grace's end.
    pub fn skip_end(self, now: UnixTime, secs: u64) -> UnixTime {
        let until = now.plus_secs(secs);
        self.enroll_by.map_or(until, |end| until.min(end))
    }
}

/// Status would prompt the user under `required` (a skip aside): where a grace starts.
fn prompts_under_required(policy: &Policy, user: &User) -> bool {
    policy.in_force()
        && policy.include_in_signup
        && policy.enforcement == Enforcement::Required
        && !user.enrolled
        && user.email_verified
}

/// When `grace` ends under a policy of `days` days now: the earlier of its stored end and its
/// start plus `days`.
pub fn effective_end(grace: Grace, days: u16) -> UnixTime {
    grace
        .ends_at
        .min(grace.started_at.plus_secs(u64::from(days) * DAY_SECS))
}

/// The caller's standing at `now`, starting their grace first if this is the first prompt
/// under `required` with a grace period (and recording `grace.started` when this request
/// started it).
pub async fn standing(
    svc: &Service,
    c: &Caller,
    policy: &Policy,
    user: User,
    now: UnixTime,
) -> Result<Standing, MfaError> {
    let mut stored = user.grace;
    if stored.is_none() && policy.grace_period_days > 0 && prompts_under_required(policy, &user) {
        let days = policy.grace_period_days;
        let fresh = Grace {
            started_at: now,
            ends_at: now.plus_secs(u64::from(days) * DAY_SECS),
        };
        let kept = svc.store.start_grace(c.owner(), fresh).await?;
        if kept == fresh {
            tracing::info!(app_id = %c.app, user_id = %c.user, "enrollment grace started");
            // Concurrent first prompts in the same second pass the same grace and all find
            // it kept: the event's id comes from the grace and the user, so they record one.
            let details = json!({ "enroll_by": kept.ends_at, "grace_period_days": days });
            audit::user_once(svc, c, Action::GraceStarted, kept.started_at, details).await;
        }
        stored = Some(kept);
    }
    let required = policy.enforcement == Enforcement::Required;
    let enroll_by = stored
        .filter(|_| required && !user.enrolled)
        .map(|g| effective_end(g, policy.grace_period_days))
        .filter(|end| *end > now);
    Ok(Standing {
        required,
        enroll_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_change_shortens_a_grace_but_never_lengthens_it() {
        let g = Grace {
            started_at: UnixTime(1_000),
            ends_at: UnixTime(1_000 + 14 * 86_400),
        };
        assert_eq!(effective_end(g, 14), g.ends_at);
        assert_eq!(effective_end(g, 90), g.ends_at);
        assert_eq!(effective_end(g, 7), UnixTime(1_000 + 7 * 86_400));
        assert_eq!(effective_end(g, 0), UnixTime(1_000));
    }

    #[test]
    fn a_skip_never_outlasts_the_grace() {
        let s = Standing {
            required: true,
            enroll_by: Some(UnixTime(500)),
        };
        assert_eq!(s.skip_end(UnixTime(100), 1_000), UnixTime(500));
        assert_eq!(s.skip_end(UnixTime(100), 100), UnixTime(200));
        assert!(s.skip_in_force(Some(UnixTime(101)), UnixTime(100)));
        let over = Standing {
            required: true,
            enroll_by: None,
        };
        assert!(!over.skip_allowed());
        assert!(!over.skip_in_force(Some(UnixTime(101)), UnixTime(100)));
        let optional = Standing {
            required: false,
            enroll_by: None,
        };
        assert!(optional.skip_allowed());
        assert_eq!(optional.skip_end(UnixTime(100), 1_000), UnixTime(1_100));
    }
}
