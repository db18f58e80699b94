//! A store that fails the operations it is told to, in front of a real one: how the tests show
//! that a DynamoDB failure at any step leaves nothing half-written and the flow retryable.
//! Nothing in a deployment uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::PortError;
use crate::ports::{
    AuditEvent, AuditPage, AuditStore, Completion, Counted, CounterStore, Enrollment, NewSend,
    PhoneChange, PhoneRecord, PhoneStore, PolicyStore, RecoveryStore, Removal, SessionStore, Store,
    UserRecord, UserStore,
};
use crate::types::ids::{CodeId, SessionId};
use crate::types::{AppId, PhoneId, Policy, UnixTime, UserId};

/// Which calls fail: an operation by its [`Store`] method name, optionally only for counter keys
/// with a prefix (`"codefail#"`), for the next `times` calls (`None`: until healed).
#[derive(Debug, Clone)]
struct Fault {
    key_prefix: Option<String>,
    times: Option<u32>,
}

/// A [`Store`] over `inner` that fails chosen operations like a throttled DynamoDB would.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<HashMap<&'static str, Fault>>,
    failed: Mutex<HashMap<&'static str, u32>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::default(),
            failed: Mutex::default(),
        }
    }

    /// Fails every call of `op` until [`FaultyStore::heal`].
    pub fn fail(&self, op: &'static str) {
        self.set(op, None, None);
    }

    /// Fails the next `times` calls of `op`.
    pub fn fail_times(&self, op: &'static str, times: u32) {
        self.set(op, None, Some(times));
    }

    /// Fails every call of the counter operation `op` on a key starting with `prefix`.
    pub fn fail_counter(&self, op: &'static str, prefix: &str) {
        self.set(op, Some(prefix.to_owned()), None);
    }

    /// Lets every operation through again.
    pub fn heal(&self) {
        if let Ok(mut f) = self.faults.lock() {
            f.clear();
        }
    }

    /// How many calls of `op` were failed so far.
    pub fn failures(&self, op: &str) -> u32 {
        self.failed
            .lock()
            .ok()
            .and_then(|f| f.get(op).copied())
            .unwrap_or(0)
    }

    fn set(&self, op: &'static str, key_prefix: Option<String>, times: Option<u32>) {
        if let Ok(mut f) = self.faults.lock() {
            f.insert(op, Fault { key_prefix, times });
        }
    }

    /// `Err` when this call of `op` (on counter `key`) is to fail.
    fn check(&self, op: &'static str, key: Option<&str>) -> Result<(), PortError> {
        let Ok(mut faults) = self.faults.lock() else {
            return Ok(());
        };
        let Some(fault) = faults.get_mut(op) else {
            return Ok(());
        };
        if let (Some(prefix), Some(key)) = (&fault.key_prefix, key)
            && !key.starts_with(prefix.as_str())
        {
            return Ok(());
        }
        match &mut fault.times {
            Some(0) => return Ok(()),
            Some(n) => *n -= 1,
            None => {}
        }
        if let Ok(mut failed) = self.failed.lock() {
            *failed.entry(op).or_default() += 1;
        }
        Err(PortError::new(format!(
            "dynamodb {op}: ProvisionedThroughputExceededException (injected)"
        )))
    }
}

#[async_trait]
impl PolicyStore for FaultyStore {
    async fn get_policy(&self, app: &AppId) -> Result<Option<Policy>, PortError> {
        self.check("get_policy", None)?;
        self.inner.get_policy(app).await
    }

    async fn put_policy(&self, policy: &Policy, expected_version: u64) -> Result<bool, PortError> {
        self.check("put_policy", None)?;
        self.inner.put_policy(policy, expected_version).await
    }
}

#[async_trait]
impl UserStore for FaultyStore {
    async fn get_user(&self, app: &AppId, user: &UserId) -> Result<Option<UserRecord>, PortError> {
        self.check("get_user", None)?;
        self.inner.get_user(app, user).await
    }

    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError> {
        self.check("put_user", None)?;
        self.inner.put_user(user).await
    }

    async fn get_skip(&self, app: &AppId, user: &UserId) -> Result<Option<UnixTime>, PortError> {
        self.check("get_skip", None)?;
        self.inner.get_skip(app, user).await
    }

    async fn put_skip(&self, app: &AppId, user: &UserId, until: UnixTime) -> Result<(), PortError> {
        self.check("put_skip", None)?;
        self.inner.put_skip(app, user, until).await
    }

    async fn reset_user(&self, app: &AppId, user: &UserId) -> Result<Vec<PhoneRecord>, PortError> {
        self.check("reset_user", None)?;
        self.inner.reset_user(app, user).await
    }
}

#[async_trait]
impl SessionStore for FaultyStore {
    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError> {
        self.check("create_enrollment", None)?;
        self.inner.create_enrollment(enrollment).await
    }

    async fn get_enrollment(
        &self,
        app: &AppId,
        user: &UserId,
        id: &SessionId,
    ) -> Result<Option<Enrollment>, PortError> {
        self.check("get_enrollment", None)?;
        self.inner.get_enrollment(app, user, id).await
    }

    async fn begin_send(
        &self,
        enrollment: &Enrollment,
        send: &NewSend,
    ) -> Result<Option<Enrollment>, PortError> {
        self.check("begin_send", None)?;
        self.inner.begin_send(enrollment, send).await
    }

    async fn undo_send(&self, previous: &Enrollment, failed: &CodeId) -> Result<(), PortError> {
        self.check("undo_send", None)?;
        self.inner.undo_send(previous, failed).await
    }

    async fn take_code_attempt(
        &self,
        enrollment: &Enrollment,
        code_id: &CodeId,
        max: u32,
        now: UnixTime,
    ) -> Result<Option<u32>, PortError> {
        self.check("take_code_attempt", None)?;
        self.inner
            .take_code_attempt(enrollment, code_id, max, now)
            .await
    }

    async fn complete_enrollment(
        &self,
        enrollment: &Enrollment,
        code_id: &CodeId,
        change: &PhoneChange,
        now: UnixTime,
    ) -> Result<Completion, PortError> {
        self.check("complete_enrollment", None)?;
        self.inner
            .complete_enrollment(enrollment, code_id, change, now)
            .await
    }
}

#[async_trait]
impl PhoneStore for FaultyStore {
    async fn list_phones(&self, app: &AppId, user: &UserId) -> Result<Vec<PhoneRecord>, PortError> {
        self.check("list_phones", None)?;
        self.inner.list_phones(app, user).await
    }

    async fn set_phone_label(
        &self,
        app: &AppId,
        user: &UserId,
        phone_id: &PhoneId,
        label: Option<String>,
    ) -> Result<Option<PhoneRecord>, PortError> {
        self.check("set_phone_label", None)?;
        self.inner.set_phone_label(app, user, phone_id, label).await
    }

    async fn set_primary(
        &self,
        app: &AppId,
        user: &UserId,
        phone_id: &PhoneId,
        seen: &[PhoneRecord],
    ) -> Result<bool, PortError> {
        self.check("set_primary", None)?;
        self.inner.set_primary(app, user, phone_id, seen).await
    }

    async fn remove_phone(
        &self,
        app: &AppId,
        user: &UserId,
        removal: &Removal,
    ) -> Result<bool, PortError> {
        self.check("remove_phone", None)?;
        self.inner.remove_phone(app, user, removal).await
    }
}

#[async_trait]
impl RecoveryStore for FaultyStore {
    async fn replace_recovery_codes(
        &self,
        app: &AppId,
        user: &UserId,
        hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, PortError> {
        self.check("replace_recovery_codes", None)?;
        self.inner
            .replace_recovery_codes(app, user, hashes, now)
            .await
    }

    async fn consume_recovery_code(
        &self,
        app: &AppId,
        user: &UserId,
        hash: &str,
    ) -> Result<bool, PortError> {
        self.check("consume_recovery_code", None)?;
        self.inner.consume_recovery_code(app, user, hash).await
    }

    async fn count_recovery_codes(&self, app: &AppId, user: &UserId) -> Result<u32, PortError> {
        self.check("count_recovery_codes", None)?;
        self.inner.count_recovery_codes(app, user).await
    }
}

#[async_trait]
impl AuditStore for FaultyStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), PortError> {
        self.check("append_audit", None)?;
        self.inner.append_audit(event).await
    }

    async fn list_audit(
        &self,
        app: &AppId,
        user: Option<&UserId>,
        limit: u32,
        after: Option<&str>,
        now: UnixTime,
    ) -> Result<AuditPage, PortError> {
        self.check("list_audit", None)?;
        self.inner.list_audit(app, user, limit, after, now).await
    }
}

#[async_trait]
impl CounterStore for FaultyStore {
    async fn counter_take(
        &self,
        key: &str,
        limit: u32,
        window_secs: u64,
        now: UnixTime,
    ) -> Result<Counted, PortError> {
        self.check("counter_take", Some(key))?;
        self.inner.counter_take(key, limit, window_secs, now).await
    }

    async fn counter_give_back(&self, key: &str, window_start: UnixTime) -> Result<(), PortError> {
        self.check("counter_give_back", Some(key))?;
        self.inner.counter_give_back(key, window_start).await
    }

    async fn counter_block(&self, key: &str, until: UnixTime) -> Result<(), PortError> {
        self.check("counter_block", Some(key))?;
        self.inner.counter_block(key, until).await
    }
}
