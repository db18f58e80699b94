//! Fixed-window counter items.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use crate::error::PortError;
use crate::ports::{Counted, CounterStore, Window};
use crate::types::UnixTime;

use super::item::{
    BLOCKED_UNTIL, COUNT, REFUSED, WINDOW_END, WINDOW_START, WRITE_TOKEN, get_n, get_t, n, opt_t,
    s, t,
};
use super::keys::{PK, SK_COUNTER, TTL, counter_pk, key};
use super::request::{Expr, UpdateReq, Updated, Written, carries_token, write_token};
use super::{DynamoStore, Item};

/// How many times `counter_take` retries when concurrent requests keep moving the window.
pub(super) const COUNTER_RETRIES: usize = 8;

/// A fixed-window counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterState {
    pub window_start: UnixTime,
    /// `window_start` plus the window's length as it was when the window opened.
    pub window_end: UnixTime,
    pub count: u32,
    pub blocked_until: Option<UnixTime>,
}

/// A counter's item: expires (TTL) at the later of the window's end and the block's end.
pub fn counter_to_item(key_: &str, c: &CounterState) -> Item {
    let mut item = key(counter_pk(key_), SK_COUNTER);
    item.insert(WINDOW_START.into(), t(c.window_start));
    item.insert(WINDOW_END.into(), t(c.window_end));
    item.insert(COUNT.into(), n(c.count));
    let mut ttl = c.window_end;
    if let Some(until) = c.blocked_until {
        item.insert(BLOCKED_UNTIL.into(), t(until));
        ttl = ttl.max(until);
    }
    item.insert(TTL.into(), t(ttl));
    item
}

/// The counter a counter item holds.
pub fn counter_from_item(item: &Item) -> Result<CounterState, PortError> {
    const W: &str = "counter";
    Ok(CounterState {
        window_start: get_t(item, W, WINDOW_START)?,
        window_end: get_t(item, W, WINDOW_END)?,
        count: get_n(item, W, COUNT)?,
        blocked_until: opt_t(item, W, BLOCKED_UNTIL)?,
    })
}

#[async_trait]
impl CounterStore for DynamoStore {
    async fn counter_take(
        &self,
        key_: &str,
        window: Window,
        now: UnixTime,
    ) -> Result<Counted, PortError> {
        const OP: &str = "counter_take";
        let (limit, window_secs) = (window.limit, window.secs);
        for _ in 0..COUNTER_RETRIES {
            // Count one in the open window, unless it is full or the counter is blocked; a
            // counter that does not exist yet is created with its window open and one counted,
            // in the same single write (most counters are new: a fresh user, number or IP).
            let mut x = Expr::default();
            let count = x.name(COUNT);
            let blocked = x.name(BLOCKED_UNTIL);
            let now_v = x.value("now", t(now));
            let end_v = x.value("end", t(now.plus_secs(window_secs)));
            let update = format!(
                "SET {ws} = if_not_exists({ws}, {now_v}), {end} = if_not_exists({end}, {end_v}), {ttl} = if_not_exists({ttl}, {end_v}) ADD {count} {one}",
                ws = x.name(WINDOW_START),
                end = x.name(WINDOW_END),
                ttl = x.name(TTL),
                one = x.value("one", n(1)),
            );
            let condition = format!(
                "attribute_not_exists({pk}) OR ({end} > {now_v} AND {count} < {limit} AND (attribute_not_exists({blocked}) OR {blocked} <= {now_v}))",
                pk = x.name(PK),
                end = x.name(WINDOW_END),
                limit = x.value("limit", n(limit)),
            );
            let key_item = key(counter_pk(key_), SK_COUNTER);
            let old = match self
                .update_once(OP, key_item, &update, &condition, x, ReturnValue::AllNew)
                .await?
            {
                Written::Applied(new) => {
                    let c = counter_from_item(&new.unwrap_or_default())?;
                    return Ok(Counted::Taken {
                        count: c.count,
                        window_start: c.window_start,
                    });
                }
                // An earlier try of this call counted: the unit is ours, once.
                Written::Replayed(item) => {
                    let c = counter_from_item(&item)?;
                    return Ok(Counted::Taken {
                        count: c.count,
                        window_start: c.window_start,
                    });
                }
                Written::Refused(old) => old,
            };
            let old = old.map(|item| counter_from_item(&item)).transpose()?;
            let opened = match &old {
                None => {
                    self.counter_open_window(key_, None, limit, window_secs, now)
                        .await?
                }
                Some(c) => {
                    if let Some(until) = c.blocked_until.filter(|u| *u > now) {
                        let first = self.counter_refuse(key_, &block_marker(until)).await?;
                        return Ok(Counted::Limited { until, first });
                    }
                    if c.window_end <= now {
                        self.counter_open_window(key_, Some(c), limit, window_secs, now)
                            .await?
                    } else if c.count >= limit {
                        let first = self
                            .counter_refuse(key_, &window_marker(c.window_start))
                            .await?;
                        return Ok(Counted::Limited {
                            until: c.window_end,
                            first,
                        });
                    } else {
                        None // Changed since the update ran: try again.
                    }
                }
            };
            if let Some(counted) = opened {
                return Ok(counted);
            }
        }
        Err(PortError::new(
            "dynamodb counter_take: gave up after repeated concurrent changes",
        ))
    }

    async fn counter_give_back(&self, key_: &str, window_start: UnixTime) -> Result<(), PortError> {
        let mut x = Expr::default();
        let count = x.name(COUNT);
        let update = format!("SET {count} = {count} - {}", x.value("one", n(1)));
        let condition = format!(
            "{} = {} AND {count} > {}",
            x.name(WINDOW_START),
            x.value("ws", t(window_start)),
            x.value("zero", n(0)),
        );
        // Applied, replayed (an earlier try gave it back: not twice) or refused (another
        // window, or nothing to give back: a no-op, as in memory) all end here.
        self.update_once(
            "counter_give_back",
            key(counter_pk(key_), SK_COUNTER),
            &update,
            &condition,
            x,
            ReturnValue::None,
        )
        .await?;
        Ok(())
    }

    async fn counter_block(&self, key_: &str, until: UnixTime) -> Result<(), PortError> {
        // The item's TTL must outlive the block: raise it to `until` when the window ends
        // first, else leave it at the window's end. Only an existing counter is blocked.
        // Setting a block twice sets the same value: a retry is harmless.
        for raise_ttl in [true, false] {
            let mut x = Expr::default();
            let blocked = x.name(BLOCKED_UNTIL);
            let until_v = x.value("until", t(until));
            let mut condition = format!("attribute_exists({})", x.name(PK));
            let update = if raise_ttl {
                condition.push_str(&format!(" AND {} <= {until_v}", x.name(WINDOW_END)));
                format!("SET {blocked} = {until_v}, {} = {until_v}", x.name(TTL))
            } else {
                format!("SET {blocked} = {until_v}")
            };
            let request = UpdateReq::new(key(counter_pk(key_), SK_COUNTER), update, condition, x);
            match self.update("counter_block", request).await? {
                Updated::Applied(_) => return Ok(()),
                Updated::Refused(_) => continue,
            }
        }
        Ok(())
    }
}

/// The `refused` marker of a full window.
pub(super) fn window_marker(window_start: UnixTime) -> String {
    format!("w{}", window_start.0)
}

/// The `refused` marker of a block.
pub(super) fn block_marker(until: UnixTime) -> String {
    format!("b{}", until.0)
}

impl DynamoStore {
    /// Puts a fresh counter window opening at `now`, if the stored one is still `old`
    /// (or there is none) and is not blocked.
    pub(super) async fn counter_open_window(
        &self,
        key_: &str,
        old: Option<&CounterState>,
        limit: u32,
        window_secs: u64,
        now: UnixTime,
    ) -> Result<Option<Counted>, PortError> {
        let fresh = CounterState {
            window_start: now,
            window_end: now.plus_secs(window_secs),
            count: limit.min(1),
            blocked_until: None,
        };
        // The fresh item carries this call's token: a put retried after a lost answer finds
        // it and counts as applied, rather than opening (and counting in) the window twice.
        let token = write_token()?;
        let mut item = counter_to_item(key_, &fresh);
        item.insert(WRITE_TOKEN.into(), s(token.as_str()));
        if fresh.count == 0 {
            item.insert(REFUSED.into(), s(window_marker(fresh.window_start)));
        }
        let mut x = Expr::default();
        let condition = match old {
            None => format!("attribute_not_exists({})", x.name(PK)),
            Some(old) => format!(
                "{ws} = {old} AND (attribute_not_exists({bu}) OR {bu} <= {now})",
                ws = x.name(WINDOW_START),
                old = x.value("old", t(old.window_start)),
                bu = x.name(BLOCKED_UNTIL),
                now = x.value("now", t(now)),
            ),
        };
        if !self.put_if("counter_take", item, &condition, &x).await? {
            let replayed = self
                .get("counter_take", key(counter_pk(key_), SK_COUNTER))
                .await?
                .is_some_and(|item| carries_token(&item, WRITE_TOKEN, &token));
            if !replayed {
                return Ok(None);
            }
        }
        Ok(Some(if fresh.count == 0 {
            Counted::Limited {
                until: fresh.window_end,
                first: true,
            }
        } else {
            Counted::Taken {
                count: fresh.count,
                window_start: fresh.window_start,
            }
        }))
    }

    /// Records a refusal of the window or block `marker`: true for the first one only (one
    /// conditional write; a refusal after it fails the condition and writes nothing).
    pub(super) async fn counter_refuse(&self, key_: &str, marker: &str) -> Result<bool, PortError> {
        let mut x = Expr::default();
        let refused = x.name(REFUSED);
        let marker_v = x.value("marker", s(marker));
        let update = format!("SET {refused} = {marker_v}");
        let condition = format!(
            "attribute_exists({}) AND (attribute_not_exists({refused}) OR {refused} <> {marker_v})",
            x.name(PK)
        );
        Ok(
            match self
                .update_once(
                    "counter_take",
                    key(counter_pk(key_), SK_COUNTER),
                    &update,
                    &condition,
                    x,
                    ReturnValue::None,
                )
                .await?
            {
                Written::Applied(_) | Written::Replayed(_) => true,
                Written::Refused(_) => false,
            },
        )
    }
}
