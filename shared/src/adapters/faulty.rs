//! A store that fails the operations it is told to, in front of a real one: how the tests show
//! that a DynamoDB failure at any step leaves nothing half-written and the flow retryable.
//! Nothing in a deployment uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::PortError;
use crate::ports::{
    Adoption, AppCodeUse, AppCompletion, AuditEvent, AuditPage, AuditQuery, AuditStore,
    AuthenticatorRecord, AuthenticatorStore, CodeUse, Completion, Counted, CounterStore,
    Enrollment, Grace, NewSend, PhoneChange, PhoneRecord, PhoneStore, PolicyStore, RecoveryStore,
    Removal, ResetFactors, SessionStore, StatsStore, Store, UserOverview, UserRecord, UserStore,
    Window,
};
use crate::types::ids::{CodeId, SessionId};
use crate::types::{AppId, AuthenticatorId, Owner, PhoneId, Policy, UnixTime};

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

/// Implements each listed store trait on [`FaultyStore`] by forwarding every method to `inner`
/// after [`FaultyStore::check`] under the method's own name. A method with `[key]` after its
/// name is a counter operation: its `key` argument is what [`FaultyStore::fail_counter`]'s
/// prefix is matched against.
macro_rules! forward {
    ($($store:ident {
        $($op:ident $([$key:ident])? ($($arg:ident: $ty:ty),*) -> $ret:ty;)*
    })*) => {$(
        #[async_trait]
        impl $store for FaultyStore {
            $(async fn $op(&self, $($arg: $ty),*) -> Result<$ret, PortError> {
                self.check(stringify!($op), forward!(@key $($key)?))?;
                self.inner.$op($($arg),*).await
            })*
        }
    )*};
    (@key) => { None };
    (@key $key:ident) => { Some($key) };
}

forward! {
    PolicyStore {
        get_policy(app: &AppId) -> Option<Policy>;
        put_policy(policy: &Policy, expected_version: u64) -> bool;
    }
    UserStore {
        get_user(owner: Owner<'_>) -> Option<UserRecord>;
        user_overview(owner: Owner<'_>) -> UserOverview;
        put_user(user: &UserRecord) -> ();
        get_skip(owner: Owner<'_>) -> Option<UnixTime>;
        put_skip(owner: Owner<'_>, now: UnixTime, until: UnixTime) -> ();
        start_grace(owner: Owner<'_>, grace: Grace) -> Grace;
        reset_user(owner: Owner<'_>) -> ResetFactors;
    }
    SessionStore {
        create_enrollment(enrollment: &Enrollment) -> ();
        get_enrollment(owner: Owner<'_>, id: &SessionId) -> Option<Enrollment>;
        begin_send(enrollment: &Enrollment, send: &NewSend) -> Option<Enrollment>;
        undo_send(previous: &Enrollment, failed: &CodeId) -> ();
        take_code_attempt(code: CodeUse<'_>, max: u32) -> Option<u32>;
        complete_enrollment(code: CodeUse<'_>, change: &PhoneChange) -> Completion;
    }
    PhoneStore {
        list_phones(owner: Owner<'_>) -> Vec<PhoneRecord>;
        set_phone_label(owner: Owner<'_>, phone_id: &PhoneId, label: Option<String>)
            -> Option<PhoneRecord>;
        set_primary(owner: Owner<'_>, phone_id: &PhoneId, seen: &[PhoneRecord]) -> bool;
        remove_phone(owner: Owner<'_>, removal: &Removal) -> bool;
    }
    AuthenticatorStore {
        get_app(owner: Owner<'_>) -> Option<AuthenticatorRecord>;
        take_app_attempt(session: &Enrollment, max: u32, now: UnixTime) -> Option<u32>;
        complete_app(code: AppCodeUse<'_>) -> AppCompletion;
        remove_app(owner: Owner<'_>, id: &AuthenticatorId, phones_seen: u32) -> bool;
    }
    RecoveryStore {
        replace_recovery_codes(owner: Owner<'_>, hashes: &[String], now: UnixTime) -> bool;
        consume_recovery_code(owner: Owner<'_>, hash: &str) -> bool;
        count_recovery_codes(owner: Owner<'_>) -> u32;
    }
    AuditStore {
        append_audit(event: &AuditEvent) -> ();
        list_audit(query: &AuditQuery<'_>) -> AuditPage;
    }
    CounterStore {
        counter_take[key](key: &str, window: Window, now: UnixTime) -> Counted;
        counter_give_back[key](key: &str, window_start: UnixTime) -> ();
        counter_block[key](key: &str, until: UnixTime) -> ();
    }
    StatsStore {
        adoption(app: &AppId, now: UnixTime) -> Adoption;
        count_text(owner: Owner<'_>, now: UnixTime) -> ();
    }
}
