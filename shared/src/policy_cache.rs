//! The policy as each warm instance keeps it for a few seconds (issue 19): every request of
//! every user reads its application's policy, so that a ten-million-user tenant's requests
//! would otherwise all read one DynamoDB item. The contract allows a few seconds
//! ("nothing caches the policy for longer than a few seconds"): `MFA_POLICY_CACHE_SECONDS`
//! (default 5, at most 10, 0 turns it off). A change saved through this instance replaces its
//! entry at once; other instances see it within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::types::{AppId, Policy, UnixTime};

/// At most this many applications are kept (a sandbox serving many tenants stays bounded:
/// past it, the cache starts over).
pub const MAX_ENTRIES: usize = 10_000;

/// Policies read recently, by application.
#[derive(Debug, Default)]
pub struct PolicyCache {
    ttl_secs: u64,
    entries: Mutex<HashMap<AppId, (Policy, UnixTime)>>,
}

impl PolicyCache {
    pub fn new(ttl_secs: u64) -> PolicyCache {
        PolicyCache {
            ttl_secs,
            entries: Mutex::default(),
        }
    }

    /// How long an entry is used.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// The policy read less than the TTL before `now`, if any.
    pub fn get(&self, app: &AppId, now: UnixTime) -> Option<Policy> {
        if self.ttl_secs == 0 {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (policy, read_at) = entries.get(app)?;
        // A clock that went back is treated as expired too.
        (*read_at <= now && now < read_at.plus_secs(self.ttl_secs)).then(|| policy.clone())
    }

    /// Keeps `policy` as read (or saved) at `now`.
    pub fn put(&self, policy: &Policy, now: UnixTime) {
        if self.ttl_secs == 0 {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&policy.app_id) {
                entries.clear();
            }
            entries.insert(policy.app_id.clone(), (policy.clone(), now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(app: &str, version: u64) -> Policy {
        Policy {
            version,
            ..Policy::default_for(AppId::parse(app).unwrap())
        }
    }

    #[test]
    fn an_entry_serves_for_the_ttl_and_a_save_replaces_it() {
        let cache = PolicyCache::new(5);
        let app = AppId::parse("acme").unwrap();
        assert_eq!(cache.get(&app, UnixTime(100)), None);
        cache.put(&policy("acme", 1), UnixTime(100));
        assert_eq!(cache.get(&app, UnixTime(104)).unwrap().version, 1);
        assert_eq!(cache.get(&app, UnixTime(105)), None, "the TTL ends it");
        cache.put(&policy("acme", 2), UnixTime(105));
        assert_eq!(cache.get(&app, UnixTime(106)).unwrap().version, 2);
        // A clock that went back does not extend an entry.
        assert_eq!(cache.get(&app, UnixTime(99)), None);
        // Another application's entry is its own.
        assert_eq!(
            cache.get(&AppId::parse("other").unwrap(), UnixTime(106)),
            None
        );
    }

    #[test]
    fn a_ttl_of_0_keeps_nothing() {
        let cache = PolicyCache::new(0);
        cache.put(&policy("acme", 1), UnixTime(100));
        assert_eq!(
            cache.get(&AppId::parse("acme").unwrap(), UnixTime(100)),
            None
        );
    }
}
