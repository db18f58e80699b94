//! Recovery code items and the recovery set.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;

use crate::error::PortError;
use crate::ports::{Clock, RecoveryStore};
use crate::types::{AppId, Owner, UnixTime, UserId};

use super::item::{
    COUNT, CREATED_AT, GENERATION, UPDATED_AT, USED_AT, USED_BY, get_s, n, opt_n, s, t,
};
use super::keys::{PK, RECOVERY_PREFIX, SK, SK_PHONES, SK_RECOVERY_SET, key, recovery_sk, user_pk};
use super::phones::app_is;
use super::request::{Expr, Page, Query, UpdateReq, Updated, write_token};
use super::transact::{
    MAX_TRANSACTION_ITEMS, Tx, cancelled_err, condition_failed, lost_race, tx_check, tx_delete,
    tx_put, tx_update,
};
use super::users::RESET_RETRIES;
use super::{DynamoStore, Item};

/// A recovery code's item: its keyed hash is the sort key (no other copy, never the code).
/// No TTL: a code lasts until it is used, replaced or reset.
pub fn recovery_code_item(app: &AppId, user: &UserId, hash: &str, at: UnixTime) -> Item {
    let mut item = key(user_pk(app, user), recovery_sk(hash));
    item.insert(CREATED_AT.into(), t(at));
    item
}

/// Moves the recovery set item to the generation after `seen` (none: the item did not
/// exist), if it is still at `seen`: two writers of the set never both succeed.
pub(super) fn next_generation(
    op: &str,
    table: &str,
    pk: &str,
    seen: Option<u64>,
    now: Option<UnixTime>,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let gen_n = x.name(GENERATION);
    let mut update = format!(
        "SET {gen_n} = {}",
        x.value("next", n(seen.unwrap_or(0) + 1))
    );
    if let Some(now) = now {
        update.push_str(&format!(
            ", {} = {}",
            x.name(UPDATED_AT),
            x.value("now", t(now))
        ));
    }
    let condition = match seen {
        Some(g) => format!("{gen_n} = {}", x.value("seen", n(g))),
        None => format!("attribute_not_exists({gen_n})"),
    };
    tx_update(
        op,
        table,
        key(pk.to_owned(), SK_RECOVERY_SET),
        &update,
        &condition,
        &x,
    )
}

impl DynamoStore {
    /// Commits the removal of one of the user's factors (`items`: a phone's or the app's
    /// transaction, its conditions pinning the factors as the flow saw them). When it is the
    /// `last` factor, the recovery codes go in the same transaction: every code item is
    /// deleted, and the set item moves on from the generation read, so that a set made
    /// concurrently either is deleted here or makes this removal read again and delete it.
    /// False when a condition of `items` failed (the factors changed meanwhile).
    pub(super) async fn remove_factor(
        &self,
        op: &str,
        pk: &str,
        last: bool,
        items: Vec<TransactWriteItem>,
    ) -> Result<bool, PortError> {
        let table = self.table.as_str();
        for attempt in 0..RESET_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            let mut items = items.clone();
            let set_item = if last {
                let mut generation: Option<u64> = None;
                for item in self.query_partition(op, pk.to_owned()).await? {
                    let sk = get_s(&item, "user partition", SK)?;
                    if sk == SK_RECOVERY_SET {
                        generation = opt_n(&item, "recovery set", GENERATION)?;
                    } else if sk.starts_with(RECOVERY_PREFIX) {
                        items.push(tx_delete(
                            op,
                            table,
                            key(pk.to_owned(), sk),
                            None,
                            &Expr::default(),
                        )?);
                    }
                }
                let set_index = items.len();
                items.push(next_generation(op, table, pk, generation, None)?);
                Some(set_index)
            } else {
                None
            };
            if items.len() > MAX_TRANSACTION_ITEMS {
                return Err(PortError::new(format!(
                    "dynamodb {op}: {} items do not fit one transaction",
                    items.len()
                )));
            }
            match self.transact(op, items).await? {
                Tx::Done => return Ok(true),
                // Only the recovery set moved (a set made meanwhile): read it again.
                Tx::Cancelled(codes)
                    if set_item.is_some_and(|i| {
                        condition_failed(&codes, i)
                            && codes.iter().enumerate().all(|(j, c)| j == i || c.is_none())
                    }) =>
                {
                    continue;
                }
                Tx::Cancelled(codes) if lost_race(&codes) => return Ok(false),
                Tx::Cancelled(codes) => return Err(cancelled_err(op, &codes)),
            }
        }
        Err(PortError::new(format!(
            "dynamodb {op}: gave up after repeated concurrent changes"
        )))
    }
}

#[async_trait]
impl RecoveryStore for DynamoStore {
    async fn replace_recovery_codes(
        &self,
        owner: Owner<'_>,
        hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, PortError> {
        const OP: &str = "replace_recovery_codes";
        let Owner { app, user } = owner;
        let table = self.table.as_str();
        let pk = user_pk(app, user);
        // One item per hash: a hash given twice is one code.
        let mut new: Vec<&str> = Vec::with_capacity(hashes.len());
        for h in hashes {
            if !new.contains(&h.as_str()) {
                new.push(h);
            }
        }
        for attempt in 0..RESET_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            // The set as it is now: its generation and its codes.
            let mut generation: Option<u64> = None;
            let mut old = Vec::new();
            for item in self.query_partition(OP, pk.clone()).await? {
                let sk = get_s(&item, "user partition", SK)?;
                if sk == SK_RECOVERY_SET {
                    generation = opt_n(&item, "recovery set", GENERATION)?;
                } else if let Some(hash) = sk.strip_prefix(RECOVERY_PREFIX) {
                    old.push(hash.to_owned());
                }
            }
            // (0) The set item moves to the next generation if it is still at the one read:
            // a concurrent replacement, reset or last-phone removal makes this one start over.
            // (1) The user still has a factor (a phone or an authenticator app, both on the
            // phone count item): a set made after the last one went is not kept.
            let mut cx = Expr::default();
            let has_factor = format!(
                "{} > {} OR {}",
                cx.name(COUNT),
                cx.value("zero", n(0)),
                app_is(&mut cx, true)
            );
            let mut items = vec![
                next_generation(OP, table, &pk, generation, Some(now))?,
                tx_check(OP, table, key(pk.clone(), SK_PHONES), &has_factor, &cx)?,
            ];
            // (1..) Old codes go (a code kept in the new set is put again instead: one
            // transaction may not touch an item twice), then the new ones come.
            for hash in old.iter().filter(|h| !new.contains(&h.as_str())) {
                items.push(tx_delete(
                    OP,
                    table,
                    key(pk.clone(), recovery_sk(hash)),
                    None,
                    &Expr::default(),
                )?);
            }
            for hash in &new {
                items.push(tx_put(
                    OP,
                    table,
                    recovery_code_item(app, user, hash, now),
                    None,
                    &Expr::default(),
                )?);
            }
            // One transaction whenever the old and new sets fit in 100 items (a set is 10
            // codes). Beyond that, a non-atomic fallback: the first chunk (the generation
            // guard, then deletions first) is the one that can lose a race; the rest follow
            // unconditionally, so a failure part way leaves some old codes deleted and the
            // new set incomplete (the caller sees the error and may replace again).
            let mut items = items.into_iter().peekable();
            let mut first = true;
            while items.peek().is_some() {
                let chunk: Vec<TransactWriteItem> =
                    items.by_ref().take(MAX_TRANSACTION_ITEMS).collect();
                match self.transact(OP, chunk).await? {
                    Tx::Done => first = false,
                    Tx::Cancelled(codes) if first && condition_failed(&codes, 1) => {
                        return Ok(false);
                    }
                    Tx::Cancelled(codes) if first && lost_race(&codes) => break,
                    Tx::Cancelled(codes) => return Err(cancelled_err(OP, &codes)),
                }
            }
            if !first {
                return Ok(true);
            }
        }
        Err(PortError::new(
            "dynamodb replace_recovery_codes: gave up after repeated concurrent changes",
        ))
    }

    async fn consume_recovery_code(&self, owner: Owner<'_>, hash: &str) -> Result<bool, PortError> {
        // One conditional update: of concurrent uses of one code, exactly one finds it unused.
        // The code is marked with this call's token rather than deleted, so that a retry of
        // this very call (after a lost answer) still finds it its own and answers true.
        let token = write_token()?;
        let mut x = Expr::default();
        let used_by = x.name(USED_BY);
        let tok = x.value("tok", s(token.as_str()));
        let update = format!(
            "SET {used_by} = {tok}, {} = {}",
            x.name(USED_AT),
            x.value("now", t(crate::ports::SystemClock.now()))
        );
        let condition = format!(
            "attribute_exists({}) AND (attribute_not_exists({used_by}) OR {used_by} = {tok})",
            x.name(PK)
        );
        let request = UpdateReq::new(
            key(user_pk(owner.app, owner.user), recovery_sk(hash)),
            update,
            condition,
            x,
        );
        Ok(matches!(
            self.update("consume_recovery_code", request).await?,
            Updated::Applied(_)
        ))
    }

    async fn count_recovery_codes(&self, owner: Owner<'_>) -> Result<u32, PortError> {
        let pk = user_pk(owner.app, owner.user);
        let mut query = Query::partition(pk, Some(RECOVERY_PREFIX)).count_only();
        // A used code stays (marked) until its set goes: only unused ones count.
        let unused = format!("attribute_not_exists({})", query.expr().name(USED_BY));
        let mut total: u32 = 0;
        self.paginate("count_recovery_codes", &query.filter(unused), |_, count| {
            total = total.saturating_add(u32::try_from(count).unwrap_or(0));
            Ok(Page::Next(None))
        })
        .await?;
        Ok(total)
    }
}
