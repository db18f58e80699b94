//! Adoption figures (contract v2, "Rolling MFA out"): kept as the changes happen, never by
//! scanning.
//!
//! The factor counts move inside the very write that changes a user's factors (a DynamoDB
//! transaction conditioned on the factors the flow saw, a change under the lock in memory), so
//! they are exact once the changes have settled. Skips and texts are counted in buckets (a UTC
//! day, a clock hour) summed on read.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::{AppId, Owner, UnixTime};

/// A skip bucket: one UTC day.
pub const SKIP_BUCKET_SECS: i64 = 86_400;
/// `skips_last_7_days` sums today's bucket and the 6 before it.
pub const SKIP_BUCKETS: i64 = 7;
/// A text bucket: one clock hour (UTC).
pub const TEXT_BUCKET_SECS: i64 = 3_600;
/// `texts_last_24h` sums this hour's bucket and the 23 before it.
pub const TEXT_BUCKETS: i64 = 24;

/// The bucket `now` falls in, for buckets of `secs`.
pub fn bucket(now: UnixTime, secs: i64) -> i64 {
    now.0.div_euclid(secs)
}

/// Whether bucket `b` is one of the `count` buckets that end with the one `now` is in.
pub fn in_window(b: i64, now: UnixTime, secs: i64, count: i64) -> bool {
    let current = bucket(now, secs);
    b <= current && b > current - count
}

/// An application's adoption figures, as `GET .../mfa-stats` shows them (the limit and the
/// time are the flow's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Users provisioned (`PUT .../users/{user_id}` that created a user).
    pub users: u64,
    /// Users with at least one factor.
    pub enrolled: u64,
    /// Users with at least one verified phone.
    pub sms: u64,
    /// Users with an authenticator app.
    pub totp: u64,
    /// Skips (`POST /v1/mfa/skip` answered 200) in today's UTC day and the 6 before.
    pub skips_last_7_days: u64,
    /// Texts handed to SNS (sent, or outcome unknown) in this clock hour and the 23 before.
    pub texts_last_24h: u64,
}

/// Which factors a user has: what the factor counts are moved by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactorsHeld {
    pub phone: bool,
    pub app: bool,
}

impl FactorsHeld {
    pub fn any(self) -> bool {
        self.phone || self.app
    }
}

/// How one change of a user's factors moves the counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactorDelta {
    pub enrolled: i64,
    pub sms: i64,
    pub totp: i64,
}

impl FactorDelta {
    /// From what the user held before the change to what they hold after it.
    pub fn between(before: FactorsHeld, after: FactorsHeld) -> FactorDelta {
        let step = |b: bool, a: bool| i64::from(a) - i64::from(b);
        FactorDelta {
            enrolled: step(before.any(), after.any()),
            sms: step(before.phone, after.phone),
            totp: step(before.app, after.app),
        }
    }

    pub fn is_zero(self) -> bool {
        self == FactorDelta::default()
    }
}

/// The adoption figures' store. The other writes count themselves: `put_user` (a user
/// created), every write that binds or removes a factor, `reset_user`, and `put_skip`.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - adoption counts users created, not replaced;
/// - adoption follows factors through add, remove and reset;
/// - adoption counts skips and texts in their windows;
/// - adoption is another application's own.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// The figures as of `now` (DynamoDB: the shards summed; eventually consistent reads).
    /// - adoption is another application's own.
    async fn adoption(&self, app: &AppId, now: UnixTime) -> Result<Adoption, PortError>;
    /// Counts one text handed to SNS at `now`.
    /// - adoption counts skips and texts in their windows.
    async fn count_text(&self, owner: Owner<'_>, now: UnixTime) -> Result<(), PortError>;
}
