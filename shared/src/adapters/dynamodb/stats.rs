//! The adoption figures: sharded counter items, moved inside the writes they count.
//!
//! An application's figures live in [`STATS_SHARDS`] partitions `STATS#{app}#{shard}`; a
//! user's changes always land in the shard of their id ([`shard_of`]), and a read sums them
//! all (one query per shard, at once). Each partition holds a `TOTAL` item (`users`,
//! `enrolled`, `sms`, `totp`), a `SKIPS#{day}` item per UTC day and a `TEXTS#{hour}` item per
//! clock hour (`count`, and a `ttl` once no window reaches them).
//!
//! Why 32 shards: one item takes at most 1,000 write units a second, and a transactional
//! write of a small item costs 2, so one `TOTAL` item tops out near 500 counted changes a
//! second; and two transactions that meet on an item cancel one of them (retried with
//! backoff), so the writes per item must stay well apart. 32 items carry about 16,000 changes
//! a second in total, and at a 10-million-user rollout's peak (about 300 enrollments, skips
//! and provisionings a second, see the README's "Adoption figures") about 9 a second each,
//! while a read stays 32 small queries. The count may only grow: reads sum every shard
//! there has ever been.

use aws_sdk_dynamodb::types::TransactWriteItem;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::PortError;
use crate::ports::stats::{
    SKIP_BUCKET_SECS, SKIP_BUCKETS, TEXT_BUCKET_SECS, TEXT_BUCKETS, bucket, in_window,
};
use crate::ports::{Adoption, FactorDelta, StatsStore};
use crate::types::{AppId, Owner, UnixTime, UserId};

use super::item::{COUNT, get_s, n, opt_n, t};
use super::keys::{SK, TTL, fnv1a, key};
use super::request::{Expr, SHARD_QUERIES_AT_ONCE, sdk_err};
use super::transact::tx_update_if;
use super::{DynamoStore, Item};

/// How many partitions an application's figures are spread over (see the module doc).
pub const STATS_SHARDS: u32 = 32;

const USERS: &str = "users";
const ENROLLED: &str = "enrolled";
const SMS: &str = "sms";
const TOTP: &str = "totp";

const SK_TOTAL: &str = "TOTAL";
const SKIPS_PREFIX: &str = "SKIPS#";
const TEXTS_PREFIX: &str = "TEXTS#";

/// The shard a user's changes are counted in: FNV-1a of the id (stable across releases, so
/// that a user's counts stay in one shard; any shard would sum the same).
pub fn shard_of(user: &UserId) -> u32 {
    fnv1a(user.as_str()) % STATS_SHARDS
}

pub(super) fn stats_pk(app: &AppId, shard: u32) -> String {
    format!("STATS#{app}#{shard}")
}

/// The `ADD` of `adds` (attribute, amount) to one stats item, with a `ttl` when given.
fn tx_add(
    op: &str,
    table: &str,
    item_key: Item,
    adds: &[(&str, i64)],
    ttl: Option<UnixTime>,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let adds: Vec<String> = adds
        .iter()
        .map(|(attr, by)| format!("{} {}", x.name(attr), x.value(attr, n(*by))))
        .collect();
    let mut update = format!("ADD {}", adds.join(", "));
    if let Some(ttl) = ttl {
        update = format!("SET {} = {} {update}", x.name(TTL), x.value("ttl", t(ttl)));
    }
    tx_update_if(op, table, item_key, &update, None, &x)
}

/// The move of a user's factor counts, for the transaction that changes the factors (`None`
/// when nothing moves).
pub(super) fn tx_factors(
    op: &str,
    table: &str,
    owner: Owner<'_>,
    delta: FactorDelta,
) -> Result<Option<TransactWriteItem>, PortError> {
    if delta.is_zero() {
        return Ok(None);
    }
    let adds: Vec<(&str, i64)> = [
        (ENROLLED, delta.enrolled),
        (SMS, delta.sms),
        (TOTP, delta.totp),
    ]
    .into_iter()
    .filter(|(_, by)| *by != 0)
    .collect();
    let item_key = key(stats_pk(owner.app, shard_of(owner.user)), SK_TOTAL);
    tx_add(op, table, item_key, &adds, None).map(Some)
}

/// One user more, for the transaction that creates the user.
pub(super) fn tx_user_created(
    op: &str,
    table: &str,
    owner: Owner<'_>,
) -> Result<TransactWriteItem, PortError> {
    let item_key = key(stats_pk(owner.app, shard_of(owner.user)), SK_TOTAL);
    tx_add(op, table, item_key, &[(USERS, 1)], None)
}

/// The end of the window that counts bucket `b` last, plus a day: the bucket item's TTL.
fn bucket_ttl(b: i64, secs: i64, count: i64) -> UnixTime {
    UnixTime((b + count) * secs + SKIP_BUCKET_SECS)
}

/// One skip more in today's bucket, for the transaction that stores the skip.
pub(super) fn tx_skip(
    op: &str,
    table: &str,
    owner: Owner<'_>,
    now: UnixTime,
) -> Result<TransactWriteItem, PortError> {
    let day = bucket(now, SKIP_BUCKET_SECS);
    let item_key = key(
        stats_pk(owner.app, shard_of(owner.user)),
        format!("{SKIPS_PREFIX}{day}"),
    );
    let ttl = bucket_ttl(day, SKIP_BUCKET_SECS, SKIP_BUCKETS);
    tx_add(op, table, item_key, &[(COUNT, 1)], Some(ttl))
}

/// What one shard's items add to the figures as of `now`.
fn add_shard(sum: &mut Adoption, items: &[Item], now: UnixTime) -> Result<(), PortError> {
    const W: &str = "stats";
    let num = |item: &Item, attr: &str| -> Result<u64, PortError> {
        // A count moved below zero by a bug elsewhere must not wrap: read it as signed.
        Ok(u64::try_from(opt_n::<i64>(item, W, attr)?.unwrap_or(0)).unwrap_or(0))
    };
    for item in items {
        let sk = get_s(item, W, SK)?;
        let in_bucket = |prefix: &str, secs: i64, count: i64| {
            sk.strip_prefix(prefix)
                .and_then(|b| b.parse::<i64>().ok())
                .is_some_and(|b| in_window(b, now, secs, count))
        };
        if sk == SK_TOTAL {
            sum.users += num(item, USERS)?;
            sum.enrolled += num(item, ENROLLED)?;
            sum.sms += num(item, SMS)?;
            sum.totp += num(item, TOTP)?;
        } else if in_bucket(SKIPS_PREFIX, SKIP_BUCKET_SECS, SKIP_BUCKETS) {
            sum.skips_last_7_days += num(item, COUNT)?;
        } else if in_bucket(TEXTS_PREFIX, TEXT_BUCKET_SECS, TEXT_BUCKETS) {
            sum.texts_last_24h += num(item, COUNT)?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl StatsStore for DynamoStore {
    async fn adoption(&self, app: &AppId, now: UnixTime) -> Result<Adoption, PortError> {
        const OP: &str = "adoption";
        let mut shards = JoinSet::new();
        let permits = Arc::new(Semaphore::new(SHARD_QUERIES_AT_ONCE));
        for shard in 0..STATS_SHARDS {
            let (store, pk, permits) = (self.clone(), stats_pk(app, shard), permits.clone());
            shards.spawn(async move {
                let _turn = permits.acquire_owned().await;
                store.query_partition(OP, pk).await
            });
        }
        let mut sum = Adoption::default();
        while let Some(joined) = shards.join_next().await {
            let items = joined.map_err(|e| PortError::new(format!("dynamodb {OP}: {e}")))??;
            add_shard(&mut sum, &items, now)?;
        }
        Ok(sum)
    }

    async fn count_text(&self, owner: Owner<'_>, now: UnixTime) -> Result<(), PortError> {
        const OP: &str = "count_text";
        let hour = bucket(now, TEXT_BUCKET_SECS);
        let mut x = Expr::default();
        let update = format!(
            "SET {} = {} ADD {} {}",
            x.name(TTL),
            x.value("ttl", t(bucket_ttl(hour, TEXT_BUCKET_SECS, TEXT_BUCKETS))),
            x.name(COUNT),
            x.value("one", n(1)),
        );
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                stats_pk(owner.app, shard_of(owner.user)),
                format!("{TEXTS_PREFIX}{hour}"),
            )))
            .update_expression(update)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .send()
            .await
            .map_err(|e| sdk_err(OP, &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_spread_over_every_shard() {
        let mut seen = vec![0u32; STATS_SHARDS as usize];
        for i in 0..3_200 {
            let user = UserId::parse(&format!("user-{i}")).unwrap();
            seen[shard_of(&user) as usize] += 1;
        }
        // Every shard takes a share near 100 (no shard is hot, none is unused).
        assert!(seen.iter().all(|n| (50..=150).contains(n)), "{seen:?}");
    }

    #[test]
    fn a_user_always_lands_in_the_same_shard() {
        let user = UserId::parse("alice").unwrap();
        assert_eq!(shard_of(&user), shard_of(&user.clone()));
        assert!(shard_of(&user) < STATS_SHARDS);
    }
}
