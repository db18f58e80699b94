//! A [`Store`] that records what DynamoDB would be asked for each operation (the partitions,
//! read and write units of [`Footprint`]) while the in-memory store answers: the capacity
//! simulation's store (`bench/capacity.sh`). Recording can be paused (a scenario's set-up is
//! not its load).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::adapters::dynamodb::footprint::{Access, Footprint};
use crate::error::PortError;
use crate::ports::{
    Adoption, AppCodeUse, AppCompletion, AuditEvent, AuditPage, AuditQuery, AuditStore,
    AuthenticatorRecord, AuthenticatorStore, CodeUse, Completion, Counted, CounterStore,
    Enrollment, Grace, NewSend, PhoneChange, PhoneRecord, PhoneStore, PolicyStore, RecoveryStore,
    Removal, ResetFactors, SessionKind, SessionStore, StatsStore, Store, UserOverview, UserRecord,
    UserStore, Window,
};
use crate::types::ids::{CodeId, SessionId};
use crate::types::{AppId, AuthenticatorId, Owner, PhoneId, Policy, UnixTime};

/// What one partition was asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub requests: u64,
    pub read_units: f64,
    pub write_units: f64,
}

/// The recording store.
pub struct RecordingStore {
    inner: Arc<dyn Store>,
    on: AtomicBool,
    by_partition: Mutex<HashMap<String, Load>>,
    log: Mutex<Option<Vec<Access>>>,
}

impl RecordingStore {
    /// Records over `inner`, from the start.
    pub fn new(inner: Arc<dyn Store>) -> RecordingStore {
        RecordingStore {
            inner,
            on: AtomicBool::new(true),
            by_partition: Mutex::default(),
            log: Mutex::new(None),
        }
    }

    /// Keeps every access in order too (the drift test compares them with the adapter's).
    pub fn keeping_log(self) -> RecordingStore {
        if let Ok(mut log) = self.log.lock() {
            *log = Some(Vec::new());
        }
        self
    }

    /// Pauses (`false`) or resumes recording.
    pub fn record(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    /// The load by partition key so far.
    pub fn loads(&self) -> HashMap<String, Load> {
        self.by_partition
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Every access so far, in order (with [`RecordingStore::keeping_log`]).
    pub fn log(&self) -> Vec<Access> {
        self.log
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default()
    }

    fn add(&self, f: Footprint) {
        if !self.on.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut m) = self.by_partition.lock() {
            for a in &f.0 {
                let load = m.entry(a.pk.clone()).or_default();
                load.requests += 1;
                load.read_units += a.read_units;
                load.write_units += a.write_units;
            }
        }
        if let Ok(mut log) = self.log.lock()
            && let Some(log) = log.as_mut()
        {
            log.extend(f.0);
        }
    }
}

#[async_trait]
impl PolicyStore for RecordingStore {
    async fn get_policy(&self, app: &AppId) -> Result<Option<Policy>, PortError> {
        self.add(Footprint::get_policy(app));
        self.inner.get_policy(app).await
    }

    async fn put_policy(&self, policy: &Policy, expected_version: u64) -> Result<bool, PortError> {
        self.add(Footprint::put_policy(&policy.app_id));
        self.inner.put_policy(policy, expected_version).await
    }
}

#[async_trait]
impl UserStore for RecordingStore {
    async fn get_user(&self, owner: Owner<'_>) -> Result<Option<UserRecord>, PortError> {
        self.add(Footprint::get_user_item(owner));
        self.inner.get_user(owner).await
    }

    async fn user_overview(&self, owner: Owner<'_>) -> Result<UserOverview, PortError> {
        self.add(Footprint::query_user(owner));
        self.inner.user_overview(owner).await
    }

    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError> {
        self.add(Footprint::put_user(Owner::new(&user.app_id, &user.user_id)));
        self.inner.put_user(user).await
    }

    async fn get_skip(&self, owner: Owner<'_>) -> Result<Option<UnixTime>, PortError> {
        self.add(Footprint::get_user_item(owner));
        self.inner.get_skip(owner).await
    }

    async fn put_skip(
        &self,
        owner: Owner<'_>,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), PortError> {
        self.add(Footprint::put_skip(owner));
        self.inner.put_skip(owner, now, until).await
    }

    async fn start_grace(&self, owner: Owner<'_>, grace: Grace) -> Result<Grace, PortError> {
        self.add(Footprint::update_user_item(owner));
        self.inner.start_grace(owner, grace).await
    }

    async fn reset_user(&self, owner: Owner<'_>) -> Result<ResetFactors, PortError> {
        let codes = self.inner.count_recovery_codes(owner).await? as usize;
        let removed = self.inner.reset_user(owner).await?;
        self.add(Footprint::reset_user(
            owner,
            removed.phones.len(),
            removed.app.is_some(),
            0,
            codes,
        ));
        Ok(removed)
    }
}

#[async_trait]
impl SessionStore for RecordingStore {
    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError> {
        self.add(Footprint::create_enrollment(enrollment, 0));
        self.inner.create_enrollment(enrollment).await
    }

    async fn get_enrollment(
        &self,
        owner: Owner<'_>,
        id: &SessionId,
    ) -> Result<Option<Enrollment>, PortError> {
        self.add(Footprint::get_user_item(owner));
        self.inner.get_enrollment(owner, id).await
    }

    async fn begin_send(
        &self,
        enrollment: &Enrollment,
        send: &NewSend,
    ) -> Result<Option<Enrollment>, PortError> {
        self.add(Footprint::update_user_item(enrollment.owner()));
        self.inner.begin_send(enrollment, send).await
    }

    async fn undo_send(&self, previous: &Enrollment, failed: &CodeId) -> Result<(), PortError> {
        self.add(Footprint::put_user_item(previous.owner()));
        self.inner.undo_send(previous, failed).await
    }

    async fn take_code_attempt(
        &self,
        code: CodeUse<'_>,
        max: u32,
    ) -> Result<Option<u32>, PortError> {
        self.add(Footprint::update_user_item(code.enrollment.owner()));
        self.inner.take_code_attempt(code, max).await
    }

    async fn complete_enrollment(
        &self,
        code: CodeUse<'_>,
        change: &PhoneChange,
    ) -> Result<Completion, PortError> {
        self.add(Footprint::complete_enrollment(code.enrollment, change));
        self.inner.complete_enrollment(code, change).await
    }
}

#[async_trait]
impl PhoneStore for RecordingStore {
    async fn list_phones(&self, owner: Owner<'_>) -> Result<Vec<PhoneRecord>, PortError> {
        self.add(Footprint::query_user(owner));
        self.inner.list_phones(owner).await
    }

    async fn set_phone_label(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        label: Option<String>,
    ) -> Result<Option<PhoneRecord>, PortError> {
        self.add(Footprint::update_user_item(owner));
        self.inner.set_phone_label(owner, phone_id, label).await
    }

    async fn set_primary(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        seen: &[PhoneRecord],
    ) -> Result<bool, PortError> {
        self.add(Footprint::set_primary(owner, seen.len()));
        self.inner.set_primary(owner, phone_id, seen).await
    }

    async fn remove_phone(&self, owner: Owner<'_>, removal: &Removal) -> Result<bool, PortError> {
        let codes = if removal.is_last() {
            self.inner.count_recovery_codes(owner).await? as usize
        } else {
            0
        };
        self.add(Footprint::remove_phone(owner, removal, codes));
        self.inner.remove_phone(owner, removal).await
    }
}

#[async_trait]
impl AuthenticatorStore for RecordingStore {
    async fn get_app(&self, owner: Owner<'_>) -> Result<Option<AuthenticatorRecord>, PortError> {
        self.add(Footprint::get_user_item(owner));
        self.inner.get_app(owner).await
    }

    async fn take_app_attempt(
        &self,
        session: &Enrollment,
        max: u32,
        now: UnixTime,
    ) -> Result<Option<u32>, PortError> {
        self.add(Footprint::update_user_item(session.owner()));
        self.inner.take_app_attempt(session, max, now).await
    }

    async fn complete_app(&self, code: AppCodeUse<'_>) -> Result<AppCompletion, PortError> {
        let counted = match &code.session.kind {
            SessionKind::AppSetup(setup) => setup.first || code.seen.is_some(),
            _ => false,
        };
        self.add(Footprint::complete_app(code.session, counted));
        self.inner.complete_app(code).await
    }

    async fn remove_app(
        &self,
        owner: Owner<'_>,
        id: &AuthenticatorId,
        phones_seen: u32,
    ) -> Result<bool, PortError> {
        let codes = if phones_seen == 0 {
            self.inner.count_recovery_codes(owner).await? as usize
        } else {
            0
        };
        self.add(Footprint::remove_app(owner, phones_seen, codes));
        self.inner.remove_app(owner, id, phones_seen).await
    }
}

#[async_trait]
impl RecoveryStore for RecordingStore {
    async fn replace_recovery_codes(
        &self,
        owner: Owner<'_>,
        hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, PortError> {
        let old = self.inner.count_recovery_codes(owner).await? as usize;
        self.add(Footprint::replace_recovery_codes(owner, old, hashes.len()));
        self.inner.replace_recovery_codes(owner, hashes, now).await
    }

    async fn consume_recovery_code(&self, owner: Owner<'_>, hash: &str) -> Result<bool, PortError> {
        self.add(Footprint::update_user_item(owner));
        self.inner.consume_recovery_code(owner, hash).await
    }

    async fn count_recovery_codes(&self, owner: Owner<'_>) -> Result<u32, PortError> {
        self.add(Footprint::query_user(owner));
        self.inner.count_recovery_codes(owner).await
    }
}

#[async_trait]
impl AuditStore for RecordingStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), PortError> {
        self.add(Footprint::append_audit(event));
        self.inner.append_audit(event).await
    }

    async fn list_audit(&self, query: &AuditQuery<'_>) -> Result<AuditPage, PortError> {
        self.add(Footprint::list_audit(query.app, query.user));
        self.inner.list_audit(query).await
    }
}

#[async_trait]
impl CounterStore for RecordingStore {
    async fn counter_take(
        &self,
        key: &str,
        window: Window,
        now: UnixTime,
    ) -> Result<Counted, PortError> {
        self.add(Footprint::counter(key));
        self.inner.counter_take(key, window, now).await
    }

    async fn counter_give_back(&self, key: &str, window_start: UnixTime) -> Result<(), PortError> {
        self.add(Footprint::counter(key));
        self.inner.counter_give_back(key, window_start).await
    }

    async fn counter_block(&self, key: &str, until: UnixTime) -> Result<(), PortError> {
        self.add(Footprint::counter(key));
        self.inner.counter_block(key, until).await
    }
}

#[async_trait]
impl StatsStore for RecordingStore {
    async fn adoption(&self, app: &AppId, now: UnixTime) -> Result<Adoption, PortError> {
        self.add(Footprint::adoption(app));
        self.inner.adoption(app, now).await
    }

    async fn count_text(&self, owner: Owner<'_>, now: UnixTime) -> Result<(), PortError> {
        self.add(Footprint::count_text(owner));
        self.inner.count_text(owner, now).await
    }
}
