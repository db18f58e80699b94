//! An in-process [`Store`]: the local server's default and the domain tests' store. Each
//! operation runs under one lock, which gives it the same all-or-nothing meaning as the
//! DynamoDB adapter's conditional writes and transactions.
//!
//! What DynamoDB's TTL deletes, this store sweeps: every [`SWEEP_EVERY`] writes that carry a
//! time, expired enrollments and challenges, counters, skips, audit events and remembered
//! authenticator-app steps are dropped under the lock, so that a long-running `mfa-local`
//! stays bounded.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::PortError;
use crate::ports::{
    AuditEvent, AuditPage, AuditQuery, AuditStore, AuthenticatorRecord, Completion, Counted,
    CounterStore, Enrollment, Grace, MAX_LIVE_ENROLLMENTS, NewSend, PhoneChange, PhoneRecord,
    PhoneStore, PolicyStore, RecoveryStore, Removal, SessionStore, Step, UserOverview, UserRecord,
    UserStore, Window,
};
use crate::types::ids::{CodeId, SessionId};
use crate::types::{AppId, Owner, PhoneId, Policy, UnixTime, UserId};

mod authenticators;
mod phones;
mod sessions;
mod stats;

type UserKey = (AppId, UserId);

/// The key of the owner's records in the maps.
fn user_key(o: Owner<'_>) -> UserKey {
    (o.app.clone(), o.user.clone())
}

/// Writes between two sweeps of expired items.
pub const SWEEP_EVERY: u64 = 128;

#[derive(Debug, Clone)]
struct Counter {
    window_start: UnixTime,
    window_secs: u64,
    count: u32,
    blocked_until: Option<UnixTime>,
    /// The window or block whose first refusal was already answered (`first: true`).
    refused: Option<Refusal>,
}

impl Counter {
    fn fresh(now: UnixTime, window_secs: u64) -> Counter {
        Counter {
            window_start: now,
            window_secs,
            count: 0,
            blocked_until: None,
            refused: None,
        }
    }

    /// When nothing of this counter matters any more (DynamoDB's TTL on the item).
    fn expires_at(&self) -> UnixTime {
        let end = self.window_start.plus_secs(self.window_secs);
        self.blocked_until.map_or(end, |b| b.max(end))
    }

    /// A refusal: `first` exactly once per window or block.
    fn refuse(&mut self, refusal: Refusal, until: UnixTime) -> Counted {
        let first = self.refused != Some(refusal);
        self.refused = Some(refusal);
        Counted::Limited { until, first }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Window(UnixTime),
    Block(UnixTime),
}

#[derive(Default)]
struct State {
    policies: HashMap<AppId, Policy>,
    users: HashMap<UserKey, UserRecord>,
    skips: HashMap<UserKey, UnixTime>,
    phones: HashMap<UserKey, Vec<PhoneRecord>>,
    /// Number claims: tag → the phone holding that number.
    number_tags: HashMap<UserKey, HashMap<String, PhoneId>>,
    /// Audit events by application and id (the id is the event's key, as DynamoDB's sort
    /// key: appending it again replaces it).
    audit: HashMap<(AppId, String), AuditEvent>,
    recovery: HashMap<UserKey, Vec<String>>,
    enrollments: HashMap<(AppId, UserId, SessionId), Enrollment>,
    /// Each user's authenticator app (at most one).
    apps: HashMap<UserKey, AuthenticatorRecord>,
    /// The authenticator-app steps each user has used: step → until when it is remembered.
    steps_used: HashMap<UserKey, HashMap<i64, UnixTime>>,
    counters: HashMap<String, Counter>,
    /// Each user's enrollment grace, once started (never swept: it outlives its end).
    graces: HashMap<UserKey, Grace>,
    /// The adoption figures by application.
    stats: stats::Stats,
    /// Writes since the last sweep.
    writes: u64,
}

impl State {
    /// Counts a write at `now`; every [`SWEEP_EVERY`] writes, drops what has expired.
    fn wrote(&mut self, now: UnixTime) {
        self.writes += 1;
        if self.writes >= SWEEP_EVERY {
            self.writes = 0;
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: UnixTime) {
        self.enrollments.retain(|_, e| e.is_live(now));
        self.counters.retain(|_, c| c.expires_at() > now);
        self.skips.retain(|_, until| *until > now);
        self.audit.retain(|_, e| e.expires_at > now);
        for steps in self.steps_used.values_mut() {
            steps.retain(|_, until| *until > now);
        }
        self.steps_used.retain(|_, steps| !steps.is_empty());
        self.sweep_stats(now);
    }

    /// Whether the user has a factor: a phone or an authenticator app.
    fn has_factor(&self, key: &UserKey) -> bool {
        self.phones.get(key).is_some_and(|list| !list.is_empty()) || self.apps.contains_key(key)
    }

    fn item_count(&self) -> usize {
        self.policies.len()
            + self.users.len()
            + self.skips.len()
            + self.phones.values().map(Vec::len).sum::<usize>()
            + self.number_tags.values().map(HashMap::len).sum::<usize>()
            + self.audit.len()
            + self.recovery.values().map(Vec::len).sum::<usize>()
            + self.enrollments.len()
            + self.apps.len()
            + self.steps_used.values().map(HashMap::len).sum::<usize>()
            + self.counters.len()
            + self.graces.len()
    }
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// How many records the store holds (phones, claims, codes, counters, events, ...): what
    /// the sweep keeps bounded.
    pub fn item_count(&self) -> usize {
        self.state.lock().map_or(0, |s| s.item_count())
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, PortError> {
        self.state
            .lock()
            .map_err(|_| PortError::new("memory store lock poisoned"))
    }
}

fn ekey(e: &Enrollment) -> (AppId, UserId, SessionId) {
    (e.app_id.clone(), e.user_id.clone(), e.id.clone())
}

/// Whether `list` holds exactly the phones of `seen`, each with the primary flag seen.
fn primaries_as_seen(list: &[PhoneRecord], seen: &[PhoneRecord]) -> bool {
    let flags = |phones: &[PhoneRecord]| {
        let mut v: Vec<(PhoneId, bool)> = phones
            .iter()
            .map(|p| (p.phone_id.clone(), p.primary))
            .collect();
        v.sort();
        v
    };
    flags(list) == flags(seen)
}

#[async_trait]
impl PolicyStore for MemoryStore {
    async fn get_policy(&self, app: &AppId) -> Result<Option<Policy>, PortError> {
        Ok(self.lock()?.policies.get(app).cloned())
    }

    async fn put_policy(&self, policy: &Policy, expected_version: u64) -> Result<bool, PortError> {
        let mut s = self.lock()?;
        let current = s.policies.get(&policy.app_id).map_or(0, |p| p.version);
        if current != expected_version {
            return Ok(false);
        }
        s.policies.insert(policy.app_id.clone(), policy.clone());
        Ok(true)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn get_user(&self, owner: Owner<'_>) -> Result<Option<UserRecord>, PortError> {
        Ok(self.lock()?.users.get(&user_key(owner)).cloned())
    }

    async fn user_overview(&self, owner: Owner<'_>) -> Result<UserOverview, PortError> {
        let s = self.lock()?;
        let key = user_key(owner);
        let codes = s.recovery.get(&key).map_or(0, Vec::len);
        Ok(UserOverview {
            user: s.users.get(&key).cloned(),
            phones: s.phones.get(&key).cloned().unwrap_or_default(),
            app: s.apps.get(&key).cloned(),
            skip: s.skips.get(&key).copied(),
            recovery_codes_remaining: u32::try_from(codes).unwrap_or(u32::MAX),
            grace: s.graces.get(&key).copied(),
        })
    }

    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError> {
        let mut s = self.lock()?;
        let created = s
            .users
            .insert((user.app_id.clone(), user.user_id.clone()), user.clone())
            .is_none();
        if created {
            s.user_created(&user.app_id);
        }
        Ok(())
    }

    async fn get_skip(&self, owner: Owner<'_>) -> Result<Option<UnixTime>, PortError> {
        Ok(self.lock()?.skips.get(&user_key(owner)).copied())
    }

    async fn put_skip(
        &self,
        owner: Owner<'_>,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), PortError> {
        let mut s = self.lock()?;
        s.wrote(now);
        s.skips.insert(user_key(owner), until);
        s.skip_counted(owner.app, now);
        Ok(())
    }

    async fn start_grace(&self, owner: Owner<'_>, grace: Grace) -> Result<Grace, PortError> {
        Ok(*self.lock()?.graces.entry(user_key(owner)).or_insert(grace))
    }

    async fn reset_user(&self, owner: Owner<'_>) -> Result<crate::ports::ResetFactors, PortError> {
        let mut s = self.lock()?;
        let key = user_key(owner);
        let before = s.held(&key);
        let removed = s.phones.remove(&key).unwrap_or_default();
        s.number_tags.remove(&key);
        s.recovery.remove(&key);
        // The used steps stay until they expire: a code replayed after the reset still fails.
        let app = s.apps.remove(&key);
        s.enrollments
            .retain(|(a, u, _), _| !(a == owner.app && u == owner.user));
        s.factors_moved(&key, before);
        Ok(crate::ports::ResetFactors {
            phones: removed,
            app,
        })
    }
}

#[async_trait]
impl RecoveryStore for MemoryStore {
    async fn replace_recovery_codes(
        &self,
        owner: Owner<'_>,
        hashes: &[String],
        _now: UnixTime,
    ) -> Result<bool, PortError> {
        let mut s = self.lock()?;
        let key = user_key(owner);
        if !s.has_factor(&key) {
            return Ok(false);
        }
        // A hash given twice is one code (as one DynamoDB item per hash is).
        let mut set: Vec<String> = Vec::with_capacity(hashes.len());
        for h in hashes {
            if !set.contains(h) {
                set.push(h.clone());
            }
        }
        s.recovery.insert(key, set);
        Ok(true)
    }

    async fn consume_recovery_code(&self, owner: Owner<'_>, hash: &str) -> Result<bool, PortError> {
        let mut s = self.lock()?;
        let Some(codes) = s.recovery.get_mut(&user_key(owner)) else {
            return Ok(false);
        };
        let before = codes.len();
        codes.retain(|h| h != hash);
        Ok(codes.len() < before)
    }

    async fn count_recovery_codes(&self, owner: Owner<'_>) -> Result<u32, PortError> {
        let n = self
            .lock()?
            .recovery
            .get(&user_key(owner))
            .map_or(0, Vec::len);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), PortError> {
        let mut s = self.lock()?;
        s.wrote(event.at);
        s.audit
            .insert((event.app_id.clone(), event.id.clone()), event.clone());
        Ok(())
    }

    async fn list_audit(&self, query: &AuditQuery<'_>) -> Result<AuditPage, PortError> {
        let s = self.lock()?;
        let q = query;
        let mut events: Vec<&AuditEvent> = s
            .audit
            .values()
            .filter(|e| &e.app_id == q.app && e.expires_at > q.now)
            .filter(|e| q.user.is_none_or(|u| e.user_id.as_ref() == Some(u)))
            .filter(|e| q.after.is_none_or(|a| e.id.as_str() < a))
            .collect();
        events.sort_by(|a, b| b.id.cmp(&a.id));
        let limit = q.limit;
        let more = events.len() > limit as usize;
        let events: Vec<AuditEvent> = events.into_iter().take(limit as usize).cloned().collect();
        let next_after = if more {
            events.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(AuditPage { events, next_after })
    }
}

#[async_trait]
impl CounterStore for MemoryStore {
    async fn counter_take(
        &self,
        key: &str,
        window: Window,
        now: UnixTime,
    ) -> Result<Counted, PortError> {
        let (limit, window_secs) = (window.limit, window.secs);
        let mut s = self.lock()?;
        s.wrote(now);
        let c = s
            .counters
            .entry(key.to_owned())
            .or_insert_with(|| Counter::fresh(now, window_secs));
        if let Some(until) = c.blocked_until.filter(|u| *u > now) {
            return Ok(c.refuse(Refusal::Block(until), until));
        }
        if c.window_start.plus_secs(c.window_secs) <= now {
            *c = Counter::fresh(now, window_secs);
        }
        if c.count >= limit {
            let until = c.window_start.plus_secs(c.window_secs);
            return Ok(c.refuse(Refusal::Window(c.window_start), until));
        }
        c.count += 1;
        Ok(Counted::Taken {
            count: c.count,
            window_start: c.window_start,
        })
    }

    async fn counter_give_back(&self, key: &str, window_start: UnixTime) -> Result<(), PortError> {
        let mut s = self.lock()?;
        if let Some(c) = s.counters.get_mut(key)
            && c.window_start == window_start
            && c.count > 0
        {
            c.count -= 1;
        }
        Ok(())
    }

    async fn counter_block(&self, key: &str, until: UnixTime) -> Result<(), PortError> {
        let mut s = self.lock()?;
        if let Some(c) = s.counters.get_mut(key) {
            c.blocked_until = Some(until);
        }
        Ok(())
    }
}
