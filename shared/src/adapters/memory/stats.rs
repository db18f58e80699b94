//! The adoption figures in memory: moved under the same lock as the change they count.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use crate::error::PortError;
use crate::ports::stats::{
    SKIP_BUCKET_SECS, SKIP_BUCKETS, TEXT_BUCKET_SECS, TEXT_BUCKETS, bucket, in_window,
};
use crate::ports::{Adoption, FactorDelta, FactorsHeld, StatsStore};
use crate::types::{AppId, Owner, UnixTime};

use super::{MemoryStore, State, UserKey, user_key};

/// One application's figures.
#[derive(Debug, Default)]
pub(super) struct AppStats {
    users: u64,
    enrolled: u64,
    sms: u64,
    totp: u64,
    /// Skips per UTC day.
    skips: BTreeMap<i64, u64>,
    /// Texts per clock hour.
    texts: BTreeMap<i64, u64>,
}

fn moved(count: &mut u64, by: i64) {
    *count = count.saturating_add_signed(by);
}

impl State {
    /// Which factors the user holds now.
    pub(super) fn held(&self, key: &UserKey) -> FactorsHeld {
        FactorsHeld {
            phone: self.phones.get(key).is_some_and(|l| !l.is_empty()),
            app: self.apps.contains_key(key),
        }
    }

    fn app_stats(&mut self, app: &AppId) -> &mut AppStats {
        self.stats.entry(app.clone()).or_default()
    }

    /// Moves the factor counts from what the user held `before` to what they hold now.
    pub(super) fn factors_moved(&mut self, key: &UserKey, before: FactorsHeld) {
        let d = FactorDelta::between(before, self.held(key));
        if d.is_zero() {
            return;
        }
        let st = self.app_stats(&key.0);
        moved(&mut st.enrolled, d.enrolled);
        moved(&mut st.sms, d.sms);
        moved(&mut st.totp, d.totp);
    }

    pub(super) fn user_created(&mut self, app: &AppId) {
        self.app_stats(app).users += 1;
    }

    pub(super) fn skip_counted(&mut self, app: &AppId, now: UnixTime) {
        *self
            .app_stats(app)
            .skips
            .entry(bucket(now, SKIP_BUCKET_SECS))
            .or_default() += 1;
    }

    /// Drops the buckets no window reaches any more (DynamoDB's TTL on the bucket items).
    pub(super) fn sweep_stats(&mut self, now: UnixTime) {
        for st in self.stats.values_mut() {
            st.skips
                .retain(|b, _| *b > bucket(now, SKIP_BUCKET_SECS) - SKIP_BUCKETS);
            st.texts
                .retain(|b, _| *b > bucket(now, TEXT_BUCKET_SECS) - TEXT_BUCKETS);
        }
    }
}

/// The figures by application.
pub(super) type Stats = HashMap<AppId, AppStats>;

#[async_trait]
impl StatsStore for MemoryStore {
    async fn adoption(&self, app: &AppId, now: UnixTime) -> Result<Adoption, PortError> {
        let s = self.lock()?;
        let Some(st) = s.stats.get(app) else {
            return Ok(Adoption::default());
        };
        let sum = |buckets: &BTreeMap<i64, u64>, secs, count| {
            buckets
                .iter()
                .filter(|(b, _)| in_window(**b, now, secs, count))
                .map(|(_, n)| n)
                .sum()
        };
        Ok(Adoption {
            users: st.users,
            enrolled: st.enrolled,
            sms: st.sms,
            totp: st.totp,
            skips_last_7_days: sum(&st.skips, SKIP_BUCKET_SECS, SKIP_BUCKETS),
            texts_last_24h: sum(&st.texts, TEXT_BUCKET_SECS, TEXT_BUCKETS),
        })
    }

    async fn count_text(&self, owner: Owner<'_>, now: UnixTime) -> Result<(), PortError> {
        let mut s = self.lock()?;
        s.wrote(now);
        let key = user_key(owner);
        *s.app_stats(&key.0)
            .texts
            .entry(bucket(now, TEXT_BUCKET_SECS))
            .or_default() += 1;
        Ok(())
    }
}
