//! The audit log: who did what to whose MFA, and how it ended. Entries never hold a full
//! number, a code or a password: numbers appear masked, people by id.
//!
//! Recording is best effort: the change it describes has already happened, so a failed write
//! is logged (with the action) and never turns a success into an error.

use serde::Serialize;
use serde_json::Value;

use crate::error::MfaError;
use crate::ports::{AuditEvent, AuditPage, AuditQuery};
use crate::service::Service;
use crate::types::{AppId, UnixTime, UserId};

use super::Caller;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Blocked,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Blocked => "blocked",
        }
    }
}

/// What an audited event records. [`Action::as_str`] is what the store keeps and the admin
/// API answers (`"action"`): those strings never change. Each action ends one way, so the
/// action also gives the event's [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    EnrollmentCompleted,
    PhoneAdded,
    PhoneReplaced,
    PhonePrimaryChanged,
    PhoneRemoved,
    AppAdded,
    AppReplaced,
    AppRemoved,
    CodeLocked,
    PasswordLockout,
    RateLimitBlocked,
    ChallengeVerified,
    RecoveryCodesCreated,
    RecoveryCodeUsed,
    PolicyUpdated,
    AvailabilityChanged,
    MfaReset,
    NotificationFailed,
    GraceStarted,
}

impl Action {
    /// Every action, for checks.
    pub const ALL: [Action; 19] = [
        Action::EnrollmentCompleted,
        Action::PhoneAdded,
        Action::PhoneReplaced,
        Action::PhonePrimaryChanged,
        Action::PhoneRemoved,
        Action::AppAdded,
        Action::AppReplaced,
        Action::AppRemoved,
        Action::CodeLocked,
        Action::PasswordLockout,
        Action::RateLimitBlocked,
        Action::ChallengeVerified,
        Action::RecoveryCodesCreated,
        Action::RecoveryCodeUsed,
        Action::PolicyUpdated,
        Action::AvailabilityChanged,
        Action::MfaReset,
        Action::NotificationFailed,
        Action::GraceStarted,
    ];

    /// The action as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::EnrollmentCompleted => "enrollment.completed",
            Action::PhoneAdded => "phone.added",
            Action::PhoneReplaced => "phone.replaced",
            Action::PhonePrimaryChanged => "phone.primary_changed",
            Action::PhoneRemoved => "phone.removed",
            Action::AppAdded => "totp.added",
            Action::AppReplaced => "totp.replaced",
            Action::AppRemoved => "totp.removed",
            Action::CodeLocked => "code.locked",
            Action::PasswordLockout => "password.lockout",
            Action::RateLimitBlocked => "rate_limit.blocked",
            Action::ChallengeVerified => "challenge.verified",
            Action::RecoveryCodesCreated => "recovery_codes.created",
            Action::RecoveryCodeUsed => "recovery_code.used",
            Action::PolicyUpdated => "policy.updated",
            Action::AvailabilityChanged => "availability.changed",
            Action::MfaReset => "mfa.reset",
            Action::NotificationFailed => "notification.failed",
            Action::GraceStarted => "grace.started",
        }
    }

    /// How events of this action end.
    pub fn outcome(self) -> Outcome {
        match self {
            Action::CodeLocked | Action::PasswordLockout | Action::RateLimitBlocked => {
                Outcome::Blocked
            }
            Action::NotificationFailed => Outcome::Failed,
            _ => Outcome::Ok,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An id that sorts by time: the event's second, then the wall clock's nanoseconds (so that
/// events within one second keep their order), then randomness against collisions.
fn event_id(at: UnixTime) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let salt = getrandom::u32().unwrap_or(0);
    format!("{:012}-{nanos:020}-{salt:08x}", at.0.max(0))
}

/// An end user's action on their own MFA: they are both the actor and the user it is about.
pub async fn user(svc: &Service, c: &Caller, action: Action, details: Value) {
    record(svc, &c.app, c.user.as_str(), Some(&c.user), action, details).await;
}

/// Like [`user`], for an event that happens once per user and `at` however many requests
/// report it (concurrent requests that each saw it happen): its id is made from the action,
/// the user and `at` instead of the wall clock and randomness, and the store keeps one event
/// per id. Within its second it sorts by that id, not by when it was written.
pub async fn user_once(svc: &Service, c: &Caller, action: Action, at: UnixTime, details: Value) {
    let id = once_id(action, &c.app, &c.user, at);
    let user = Some(&c.user);
    append(svc, &c.app, c.user.as_str(), user, action, details, at, id).await;
}

/// The id of [`user_once`]'s event: `at`'s second, then 12 bytes of SHA-256 over the action,
/// the application and the user, in [`event_id`]'s shape.
fn once_id(action: Action, app: &AppId, user: &UserId, at: UnixTime) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(action.as_str())
        .chain_update([0])
        .chain_update(app.as_str())
        .chain_update([0])
        .chain_update(user.as_str())
        .finalize();
    let mut high = [0u8; 8];
    high.copy_from_slice(&digest[..8]);
    let mut low = [0u8; 4];
    low.copy_from_slice(&digest[8..12]);
    format!(
        "{:012}-{:020}-{:08x}",
        at.0.max(0),
        u64::from_be_bytes(high),
        u32::from_be_bytes(low)
    )
}

/// What the service itself did about `user` (the actor is `"system"`).
pub async fn system(svc: &Service, app: &AppId, user: &UserId, action: Action, details: Value) {
    record(svc, app, "system", Some(user), action, details).await;
}

/// Appends one event by `actor` about one user or (`None`) the whole application: what an
/// admin (or operator) did, `actor` their IAM ARN; [`user`] and [`system`] append through it.
/// `details` is serialised here and nowhere else.
pub async fn record(
    svc: &Service,
    app: &AppId,
    actor: &str,
    user: Option<&UserId>,
    action: Action,
    details: Value,
) {
    let at = svc.clock.now();
    append(svc, app, actor, user, action, details, at, event_id(at)).await;
}

#[allow(clippy::too_many_arguments)]
async fn append(
    svc: &Service,
    app: &AppId,
    actor: &str,
    user: Option<&UserId>,
    action: Action,
    details: Value,
    at: UnixTime,
    id: String,
) {
    let event = AuditEvent {
        app_id: app.clone(),
        id,
        at,
        actor: actor.to_owned(),
        action: action.as_str().to_owned(),
        user_id: user.cloned(),
        outcome: action.outcome().as_str().to_owned(),
        details: details.to_string(),
        expires_at: at.plus_secs(svc.limits.audit_retention_days.saturating_mul(86_400)),
    };
    if let Err(e) = svc.store.append_audit(&event).await {
        tracing::error!(app_id = %app, %action, error = %e.0, "could not write the audit log");
    }
}

/// One event as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventView {
    pub at: UnixTime,
    pub actor: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub outcome: String,
    pub details: Value,
}

/// `GET .../audit-events`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    pub next_cursor: Option<String>,
}

/// The largest page.
pub const MAX_PAGE: u32 = 100;

/// The cursor is the last event's id, hex-encoded so that clients treat it as opaque.
fn encode_cursor(id: &str) -> String {
    hex::encode(id)
}

fn decode_cursor(cursor: &str) -> Result<String, MfaError> {
    let bad = || MfaError::InvalidRequest("`cursor` is not one this service gave out.".into());
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    let id = String::from_utf8(bytes).map_err(|_| bad())?;
    let shape_ok =
        id.len() == 12 + 1 + 20 + 1 + 8 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if shape_ok { Ok(id) } else { Err(bad()) }
}

/// Events newest first, optionally of one user, `limit` at a time.
pub async fn list(
    svc: &Service,
    app: &AppId,
    user: Option<&UserId>,
    limit: u32,
    cursor: Option<&str>,
) -> Result<EventsPage, MfaError> {
    let after = cursor.map(decode_cursor).transpose()?;
    let AuditPage { events, next_after } = svc
        .store
        .list_audit(&AuditQuery {
            app,
            user,
            limit: limit.clamp(1, MAX_PAGE),
            after: after.as_deref(),
            now: svc.clock.now(),
        })
        .await?;
    Ok(EventsPage {
        events: events
            .into_iter()
            .map(|e| EventView {
                at: e.at,
                actor: e.actor,
                action: e.action,
                user_id: e.user_id,
                outcome: e.outcome,
                details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
            })
            .collect(),
        next_cursor: next_after.as_deref().map(encode_cursor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let id = event_id(UnixTime(1_800_000_000));
        assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        for bad in ["", "zz", &hex::encode("x"), &hex::encode("000000000001-x")] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    /// The strings are stored and answered by the admin API: they never change.
    #[test]
    fn actions_keep_their_stored_names_and_outcomes() {
        let names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "enrollment.completed",
                "phone.added",
                "phone.replaced",
                "phone.primary_changed",
                "phone.removed",
                "totp.added",
                "totp.replaced",
                "totp.removed",
                "code.locked",
                "password.lockout",
                "rate_limit.blocked",
                "challenge.verified",
                "recovery_codes.created",
                "recovery_code.used",
                "policy.updated",
                "availability.changed",
                "mfa.reset",
                "notification.failed",
                "grace.started",
            ]
        );
        let blocked: Vec<_> = Action::ALL
            .iter()
            .filter(|a| a.outcome() == Outcome::Blocked)
            .map(|a| a.as_str())
            .collect();
        assert_eq!(
            blocked,
            ["code.locked", "password.lockout", "rate_limit.blocked"]
        );
        assert_eq!(Action::NotificationFailed.outcome(), Outcome::Failed);
        assert_eq!(
            serde_json::json!({ "about": Action::MfaReset }).to_string(),
            r#"{"about":"mfa.reset"}"#
        );
    }

    #[test]
    fn once_ids_are_one_per_action_user_and_second() {
        let app = AppId::parse("acme").unwrap();
        let ada = UserId::parse("ada").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let at = UnixTime(1_800_000_000);
        let id = once_id(Action::GraceStarted, &app, &ada, at);
        assert_eq!(id, once_id(Action::GraceStarted, &app, &ada, at));
        assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        assert_ne!(id, once_id(Action::GraceStarted, &app, &bob, at));
        assert_ne!(id, once_id(Action::MfaReset, &app, &ada, at));
        assert!(id < once_id(Action::GraceStarted, &app, &ada, UnixTime(at.0 + 1)));
        assert!(event_id(UnixTime(at.0 - 1)) < id);
    }

    #[test]
    fn ids_sort_by_time() {
        let a = event_id(UnixTime(999));
        let b = event_id(UnixTime(1000));
        let c = event_id(UnixTime(1000));
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
