//! The admin reset: every phone and the authenticator app of a user removed, pending codes
//! void, the user told.

use serde_json::json;

use crate::error::MfaError;
use crate::messages;
use crate::service::Service;
use crate::types::{AppId, Owner, UserId};

use super::audit::{self, Action};
use super::enrollment::notify_user;

/// `DELETE /v1/admin/applications/{app}/users/{user}/mfa`, by `actor`. Idempotent: a user with
/// nothing to reset is answered the same, and still audited.
pub async fn reset(svc: &Service, app: &AppId, user: &UserId, actor: &str) -> Result<(), MfaError> {
    let removed = svc.store.reset_user(Owner { app, user }).await?;
    tracing::info!(app_id = %app, user_id = %user, phones = removed.phones.len(), app_removed = removed.app.is_some(), "MFA reset by an admin");
    let now = svc.clock.now();
    let numbers: Vec<_> = removed.phones.iter().map(|p| p.number.clone()).collect();
    let app_removed = removed.app.is_some();
    let notification = notify_user(svc, app, user, Action::MfaReset, |voice, to| {
        messages::reset_email(voice, to, &numbers, app_removed, now)
    })
    .await;
    let details = json!({
        "phones_removed": removed.phones.iter().map(|p| p.number.masked()).collect::<Vec<_>>(),
        "app_removed": removed.app.is_some(),
        "notification": notification,
    });
    audit::record(svc, app, actor, Some(user), Action::MfaReset, details).await;
    Ok(())
}
