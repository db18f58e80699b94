//! Audit event items: under the application (spread over [`AUDIT_SHARDS`] partitions) and
//! under the user.
//!
//! An event is written (one transaction) to the application's shard partition
//! `AUDIT#{app}#{shard}`, the shard of its id ([`audit_shard_of`]), and, when it names a user,
//! to the user's partition `AUDIT#{app}#USER#{user}` (not sharded: one user's events are few).
//! Ids never hold `#` and `USER` is not a number, so the two kinds never share a partition.
//!
//! Why 64 shards: at the design peak of one tenant (issue 19: 2,000 enrollments, 5,000 SMS
//! sign-ins and 5,000 app sign-ins a second) about 12,000 audited events a second reach the
//! application's log, each item written inside a transaction at 2 write units (the items are
//! well under 1 KB): about 24,000 write units a second, where one partition takes about
//! 1,000. That needs at least 24 partitions; 32 would run each at about 750 (75 % of the
//! limit, with no room for a flow that audits twice or a burst above the peak). 64 run each
//! at about 375 (under 40 %), about 190 events a second per shard, where the hash's unevenness
//! is a few percent. A page of the whole log then costs 64 queries (run at once), each
//! reading at most `limit + 1` live items: admins read the log seldom, so the reads are
//! the side to pay. The count may only grow (a smaller one would hide events).
//!
//! A listing of the whole log queries every shard for its newest `limit + 1` live events
//! older than the cursor and merges them newest first: the page's `limit + 1` newest are among
//! them, so paging stays exact (ids are unique and sort by time; the cursor is the last id
//! returned). Items under the former unsharded `AUDIT#{app}` are no longer listed: no
//! deployment older than the shards exists, so there are none.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::PortError;
use crate::ports::{AuditEvent, AuditPage, AuditQuery, AuditStore};
use crate::types::{AppId, UnixTime, UserId};

use super::item::{
    ACTION, ACTOR, APP_ID, AT, DETAILS, ID, OUTCOME, USER_ID, get_s, get_t, parse_id, s, t,
};
use super::keys::{PK, SK, TTL, fnv1a, key, user_audit_pk};
use super::request::{Expr, Page, Query, SHARD_QUERIES_AT_ONCE};
use super::transact::{Tx, cancelled_err, tx_put};
use super::{DynamoStore, Item};

/// How many partitions an application's audit log is spread over (see the module doc).
pub const AUDIT_SHARDS: u32 = 64;

/// The shard an event's application copy is written to: FNV-1a of its id, its high half
/// folded into the low so that every byte moves the shard. Stable across releases (an event
/// appended again, as a retry or by [`user_once`](crate::flows::audit::user_once), lands on
/// its first copy); the ids are time-ordered and end in randomness (or a digest), so events
/// spread evenly.
pub fn audit_shard_of(event_id: &str) -> u32 {
    let h = fnv1a(event_id);
    (h ^ (h >> 16)) % AUDIT_SHARDS
}

/// The partition of shard `shard` of the application's audit log: `AUDIT#{app}#{shard}`.
pub fn audit_shard_pk(app: &AppId, shard: u32) -> String {
    format!("AUDIT#{app}#{shard}")
}

/// An audit event's items: the application's, then (when the event names a user) the user's.
pub fn audit_to_items(e: &AuditEvent) -> Vec<Item> {
    let mut pks = vec![audit_shard_pk(&e.app_id, audit_shard_of(&e.id))];
    if let Some(user) = &e.user_id {
        pks.push(user_audit_pk(&e.app_id, user));
    }
    pks.into_iter()
        .map(|pk| {
            let mut item = key(pk, e.id.as_str());
            item.insert(APP_ID.into(), s(e.app_id.as_str()));
            item.insert(ID.into(), s(e.id.as_str()));
            item.insert(AT.into(), t(e.at));
            item.insert(ACTOR.into(), s(e.actor.as_str()));
            item.insert(ACTION.into(), s(e.action.as_str()));
            if let Some(user) = &e.user_id {
                item.insert(USER_ID.into(), s(user.as_str()));
            }
            item.insert(OUTCOME.into(), s(e.outcome.as_str()));
            item.insert(DETAILS.into(), s(e.details.as_str()));
            item.insert(TTL.into(), t(e.expires_at));
            item
        })
        .collect()
}

/// The event an audit item holds.
pub fn audit_from_item(item: &Item) -> Result<AuditEvent, PortError> {
    const W: &str = "audit";
    let user_id = match item.get(USER_ID) {
        None | Some(AttributeValue::Null(_)) => None,
        Some(_) => Some(parse_id(item, W, USER_ID, UserId::parse)?),
    };
    Ok(AuditEvent {
        app_id: parse_id(item, W, APP_ID, AppId::parse)?,
        id: get_s(item, W, ID)?.to_owned(),
        at: get_t(item, W, AT)?,
        actor: get_s(item, W, ACTOR)?.to_owned(),
        action: get_s(item, W, ACTION)?.to_owned(),
        user_id,
        outcome: get_s(item, W, OUTCOME)?.to_owned(),
        details: get_s(item, W, DETAILS)?.to_owned(),
        expires_at: get_t(item, W, TTL)?,
    })
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), PortError> {
        const OP: &str = "append_audit";
        let mut items = audit_to_items(event);
        if items.len() == 1 {
            return self.put(OP, items.remove(0)).await;
        }
        let items = items
            .into_iter()
            .map(|item| tx_put(OP, &self.table, item, None, &Expr::default()))
            .collect::<Result<Vec<_>, _>>()?;
        match self.transact(OP, items).await? {
            Tx::Done => Ok(()),
            Tx::Cancelled(codes) => Err(cancelled_err(OP, &codes)),
        }
    }

    async fn list_audit(&self, query: &AuditQuery<'_>) -> Result<AuditPage, PortError> {
        const OP: &str = "list_audit";
        let limit = query.limit as usize;
        if limit == 0 {
            return Ok(AuditPage {
                events: Vec::new(),
                next_after: None,
            });
        }
        // One more than asked for: whether it exists says whether more follow.
        let wanted = limit.saturating_add(1);
        let after = query.after.map(str::to_owned);
        let mut events = match query.user {
            Some(u) => {
                let pk = user_audit_pk(query.app, u);
                self.newest(OP, pk, after, query.now, wanted).await?
            }
            None => {
                // Every shard's newest `wanted`, at once; the page's are among them.
                let mut shards = JoinSet::new();
                let permits = Arc::new(Semaphore::new(SHARD_QUERIES_AT_ONCE));
                for shard in 0..AUDIT_SHARDS {
                    let (store, pk) = (self.clone(), audit_shard_pk(query.app, shard));
                    let (after, now, permits) = (after.clone(), query.now, permits.clone());
                    shards.spawn(async move {
                        let _turn = permits.acquire_owned().await;
                        store.newest(OP, pk, after, now, wanted).await
                    });
                }
                let mut events = Vec::new();
                while let Some(joined) = shards.join_next().await {
                    let shard =
                        joined.map_err(|e| PortError::new(format!("dynamodb {OP}: {e}")))?;
                    events.extend(shard?);
                }
                events.sort_unstable_by(|a, b| b.id.cmp(&a.id));
                events
            }
        };
        let more = events.len() > limit;
        events.truncate(limit);
        let next_after = if more {
            events.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(AuditPage { events, next_after })
    }
}

impl DynamoStore {
    /// The newest `wanted` live events (not expired at `now`) of partition `pk`, older than the
    /// event `after` if given, newest first (fewer when the partition has no more).
    async fn newest(
        &self,
        op: &str,
        pk: String,
        after: Option<String>,
        now: UnixTime,
        wanted: usize,
    ) -> Result<Vec<AuditEvent>, PortError> {
        let mut x = Expr::default();
        let mut condition = format!("{} = {}", x.name(PK), x.value("pk", s(pk)));
        if let Some(after) = after {
            condition.push_str(&format!(
                " AND {} < {}",
                x.name(SK),
                x.value("after", s(after))
            ));
        }
        // Events past their retention are hidden even while TTL has not deleted them yet.
        let live = format!("{} > {}", x.name(TTL), x.value("now", t(now)));
        let left = |got: usize| i32::try_from(wanted - got).unwrap_or(i32::MAX);
        let query = Query::new(condition, x)
            .filter(live)
            .newest_first()
            .limit(left(0));
        let mut events = Vec::new();
        self.paginate(op, &query, |page, _| {
            for item in &page {
                events.push(audit_from_item(item)?);
            }
            Ok(if events.len() < wanted {
                Page::Next(Some(left(events.len())))
            } else {
                Page::Done
            })
        })
        .await?;
        events.truncate(wanted);
        Ok(events)
    }
}
