//! The audit log of each application.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::{AppId, UnixTime, UserId};

/// One entry of the audit log. Never holds a full number, a code or a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub app_id: AppId,
    /// Sorts events: the time, then a tie-breaker (see [`crate::flows::audit`]).
    pub id: String,
    pub at: UnixTime,
    /// The user id, or the admin's or operator's identity.
    pub actor: String,
    pub action: String,
    pub user_id: Option<UserId>,
    /// `ok`, `failed`, `blocked`.
    pub outcome: String,
    /// A JSON object, as text.
    pub details: String,
    /// When the table may forget it (TTL).
    pub expires_at: UnixTime,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The `id` of the last event returned, when more may follow.
    pub next_after: Option<String>,
}

/// Which events [`AuditStore::list_audit`] reads: of `app`, optionally of one `user`, at most
/// `limit`, those after the event `after` (a previous page's `next_after`), as of `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery<'a> {
    pub app: &'a AppId,
    pub user: Option<&'a UserId>,
    pub limit: u32,
    pub after: Option<&'a str>,
    pub now: UnixTime,
}

/// The audit log, newest first, per application.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - an event appended twice is one event;
/// - list_audit is newest first and pages (`next_after` only when more follow);
/// - list_audit per user;
/// - list_audit hides expired events;
/// - list_audit is per application.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event to the application's audit log; its `id` is its key.
    /// - an event appended twice is one event.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), PortError>;
    /// Events newest first, optionally of one user, after the event `after` (a previous page's
    /// `next_after`). Events past their `expires_at` at `now` are left out, even while the
    /// table's TTL has not deleted them yet.
    /// - list_audit is newest first and pages (`next_after` only when more follow);
    /// - list_audit per user;
    /// - list_audit hides expired events;
    /// - list_audit is per application.
    async fn list_audit(&self, query: &AuditQuery<'_>) -> Result<AuditPage, PortError>;
}
