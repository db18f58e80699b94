//! The user's profile and skip items, and the admin reset.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

use crate::error::PortError;
use crate::ports::{
    FactorDelta, FactorsHeld, Grace, PhoneRecord, UserOverview, UserRecord, UserStore,
};
use crate::types::{AppId, Owner, UnixTime, UserId};

use super::item::{
    APP_ID, COUNT, EMAIL, EMAIL_VERIFIED, ENDS_AT, GENERATION, LOCALE, NUMBER, PASSWORD_HASH,
    STARTED_AT, TOTP_ID, UNTIL, UPDATED_AT, USED_BY, USER_ID, get_bool, get_s, get_t, malformed, n,
    opt_n, opt_s, parse_id, s, t,
};
use super::keys::{
    ENROLLMENT_PREFIX, NUMBER_PREFIX, PHONE_PREFIX, PK, RECOVERY_PREFIX, SK, SK_GRACE, SK_PHONES,
    SK_PROFILE, SK_RECOVERY_SET, SK_SKIP, TTL, key, user_pk,
};
use super::phones::{app_from_item, app_is, in_list_order, placed_phone};
use super::request::{Expr, Page, Query, UpdateReq, Updated};
use super::stats::{tx_factors, tx_skip, tx_user_created};
use super::transact::{
    MAX_TRANSACTION_ITEMS, Tx, cancelled_err, condition_failed, lost_race, tx_delete, tx_put,
};
use super::{DynamoStore, Item};

/// How many times `reset_user` and `replace_recovery_codes` start over when concurrent
/// changes keep cancelling them.
pub(super) const RESET_RETRIES: usize = 8;

/// The user's profile item.
pub fn user_to_item(u: &UserRecord) -> Item {
    let mut item = key(user_pk(&u.app_id, &u.user_id), SK_PROFILE);
    item.insert(APP_ID.into(), s(u.app_id.as_str()));
    item.insert(USER_ID.into(), s(u.user_id.as_str()));
    item.insert(EMAIL.into(), s(u.email.as_str()));
    item.insert(
        EMAIL_VERIFIED.into(),
        AttributeValue::Bool(u.email_verified),
    );
    item.insert(PASSWORD_HASH.into(), s(u.password_hash.as_str()));
    if let Some(locale) = &u.locale {
        item.insert(LOCALE.into(), s(locale.as_str()));
    }
    item.insert(UPDATED_AT.into(), t(u.updated_at));
    item
}

/// The user a profile item holds.
pub fn user_from_item(item: &Item) -> Result<UserRecord, PortError> {
    const W: &str = "user";
    Ok(UserRecord {
        app_id: parse_id(item, W, APP_ID, AppId::parse)?,
        user_id: parse_id(item, W, USER_ID, UserId::parse)?,
        email: get_s(item, W, EMAIL)?.to_owned(),
        email_verified: get_bool(item, W, EMAIL_VERIFIED)?,
        password_hash: get_s(item, W, PASSWORD_HASH)?.to_owned(),
        locale: opt_s(item, LOCALE)
            .map(|l| crate::messages::Locale::parse(&l).map_err(|_| malformed(W, LOCALE)))
            .transpose()?,
        updated_at: get_t(item, W, UPDATED_AT)?,
    })
}

/// The skip item: expires (TTL) when the skip ends.
pub fn skip_to_item(app: &AppId, user: &UserId, until: UnixTime) -> Item {
    let mut item = key(user_pk(app, user), SK_SKIP);
    item.insert(UNTIL.into(), t(until));
    item.insert(TTL.into(), t(until));
    item
}

/// The grace a grace item holds.
fn grace_from_item(item: &Item) -> Result<Grace, PortError> {
    const W: &str = "grace";
    Ok(Grace {
        started_at: get_t(item, W, STARTED_AT)?,
        ends_at: get_t(item, W, ENDS_AT)?,
    })
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn get_user(&self, owner: Owner<'_>) -> Result<Option<UserRecord>, PortError> {
        self.get("get_user", key(user_pk(owner.app, owner.user), SK_PROFILE))
            .await?
            .map(|item| user_from_item(&item))
            .transpose()
    }

    /// One query of the user's partition (strongly consistent, all pages) for what four reads
    /// gave: the profile, the skip, the phones and the unused recovery codes. Enrollments,
    /// challenges and number claims come too, and are passed over here: DynamoDB refuses a
    /// filter expression on a key attribute (`sk`), as dynoxide does (moto does not).
    async fn user_overview(&self, owner: Owner<'_>) -> Result<UserOverview, PortError> {
        const OP: &str = "user_overview";
        let query = Query::partition(user_pk(owner.app, owner.user), None);
        let mut overview = UserOverview::default();
        let mut placed = Vec::new();
        let mut read = |item: &Item| -> Result<(), PortError> {
            let sk = get_s(item, "user partition", SK)?;
            if sk == SK_PROFILE {
                overview.user = Some(user_from_item(item)?);
            } else if sk == SK_SKIP {
                overview.skip = Some(get_t(item, "skip", UNTIL)?);
            } else if sk == SK_GRACE {
                overview.grace = Some(grace_from_item(item)?);
            } else if sk.starts_with(PHONE_PREFIX) {
                placed.push(placed_phone(item)?);
            } else if sk == SK_PHONES {
                overview.app = app_from_item(item)?;
            } else if sk.starts_with(RECOVERY_PREFIX) && !item.contains_key(USED_BY) {
                overview.recovery_codes_remaining =
                    overview.recovery_codes_remaining.saturating_add(1);
            }
            Ok(())
        };
        self.paginate(OP, &query, |page, _| {
            page.iter().try_for_each(&mut read)?;
            Ok(Page::Next(None))
        })
        .await?;
        overview.phones = in_list_order(placed);
        Ok(overview)
    }

    /// A new user is put with the count of users moved, in one transaction; an existing one
    /// is replaced alone (a retry after a lost answer finds the user and counts nothing).
    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError> {
        const OP: &str = "put_user";
        let table = self.table.as_str();
        let mut x = Expr::default();
        let absent = format!("attribute_not_exists({})", x.name(PK));
        let owner = Owner::new(&user.app_id, &user.user_id);
        let items = vec![
            tx_put(OP, table, user_to_item(user), Some(&absent), &x)?,
            tx_user_created(OP, table, owner)?,
        ];
        match self.transact(OP, items).await? {
            Tx::Done => Ok(()),
            Tx::Cancelled(codes) if condition_failed(&codes, 0) => {
                self.put(OP, user_to_item(user)).await
            }
            Tx::Cancelled(codes) => Err(cancelled_err(OP, &codes)),
        }
    }

    async fn get_skip(&self, owner: Owner<'_>) -> Result<Option<UnixTime>, PortError> {
        match self
            .get("get_skip", key(user_pk(owner.app, owner.user), SK_SKIP))
            .await?
        {
            Some(item) => Ok(Some(get_t(&item, "skip", UNTIL)?)),
            None => Ok(None),
        }
    }

    async fn put_skip(
        &self,
        owner: Owner<'_>,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), PortError> {
        const OP: &str = "put_skip";
        let table = self.table.as_str();
        let items = vec![
            tx_put(
                OP,
                table,
                skip_to_item(owner.app, owner.user, until),
                None,
                &Expr::default(),
            )?,
            tx_skip(OP, table, owner, now)?,
        ];
        match self.transact(OP, items).await? {
            Tx::Done => Ok(()),
            Tx::Cancelled(codes) => Err(cancelled_err(OP, &codes)),
        }
    }

    /// One update that sets the grace only where none is, and answers what is stored.
    async fn start_grace(&self, owner: Owner<'_>, grace: Grace) -> Result<Grace, PortError> {
        let mut x = Expr::default();
        let update = format!(
            "SET {started} = if_not_exists({started}, {s}), {ends} = if_not_exists({ends}, {e})",
            started = x.name(STARTED_AT),
            s = x.value("started", t(grace.started_at)),
            ends = x.name(ENDS_AT),
            e = x.value("ends", t(grace.ends_at)),
        );
        // Always true: the update decides with if_not_exists, and this keeps one builder.
        let condition = format!(
            "attribute_not_exists({pk}) OR attribute_exists({pk})",
            pk = x.name(PK)
        );
        let request = UpdateReq::new(
            key(user_pk(owner.app, owner.user), SK_GRACE),
            update,
            condition,
            x,
        )
        .returning(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        match self.update("start_grace", request).await? {
            Updated::Applied(Some(item)) => grace_from_item(&item),
            Updated::Applied(None) | Updated::Refused(_) => Err(PortError::new(
                "dynamodb start_grace: the grace was not returned",
            )),
        }
    }

    async fn reset_user(&self, owner: Owner<'_>) -> Result<crate::ports::ResetFactors, PortError> {
        const OP: &str = "reset_user";
        let table = self.table.as_str();
        let pk = user_pk(owner.app, owner.user);
        let mut removed = Vec::new();
        for attempt in 0..RESET_RETRIES {
            if attempt > 0 {
                // Let the concurrent change finish before reading again.
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            // Each delete is guarded by what was read: a phone by its number (a concurrent
            // replace moves its claims), the count by its value (a concurrent add or removal
            // moves it). A lost race starts over from a fresh read.
            let mut count_item = None;
            let mut app_seen = None;
            let mut held = FactorsHeld::default();
            let mut phone_items = Vec::new();
            let mut other_items = Vec::new();
            let mut set_seen = None;
            for item in self.query_partition(OP, pk.clone()).await? {
                let sk = get_s(&item, "user partition", SK)?.to_owned();
                if sk == SK_PHONES {
                    // The count item holds the app too: it goes with the count and the app
                    // as read (a concurrent bind, replace or removal makes this start over).
                    let mut x = Expr::default();
                    let count = match opt_n::<u32>(&item, "phone count", COUNT)? {
                        Some(c) => format!("{} = {}", x.name(COUNT), x.value("seen", n(c))),
                        None => format!("attribute_not_exists({})", x.name(COUNT)),
                    };
                    app_seen = app_from_item(&item)?;
                    held = FactorsHeld {
                        phone: opt_n::<u32>(&item, "phone count", COUNT)?.unwrap_or(0) > 0,
                        app: app_seen.is_some(),
                    };
                    let app = match &app_seen {
                        Some(a) => format!(
                            "{} = {}",
                            x.name(TOTP_ID),
                            x.value("app", s(a.authenticator_id.as_str()))
                        ),
                        None => app_is(&mut x, false),
                    };
                    let condition = format!("{count} AND {app}");
                    count_item = Some((
                        tx_delete(OP, table, key(pk.clone(), sk), Some(&condition), &x)?,
                        None,
                    ));
                } else if sk.starts_with(PHONE_PREFIX) {
                    let (place, phone) = placed_phone(&item)?;
                    let mut x = Expr::default();
                    let condition = format!(
                        "{} = {}",
                        x.name(NUMBER),
                        x.value("number", s(phone.number.e164()))
                    );
                    phone_items.push((
                        tx_delete(OP, table, key(pk.clone(), sk), Some(&condition), &x)?,
                        Some((place, phone)),
                    ));
                } else if sk == SK_RECOVERY_SET {
                    set_seen = Some(opt_n::<u64>(&item, "recovery set", GENERATION)?);
                } else if sk.starts_with(NUMBER_PREFIX)
                    || sk.starts_with(ENROLLMENT_PREFIX)
                    || sk.starts_with(RECOVERY_PREFIX)
                {
                    other_items.push((
                        tx_delete(OP, table, key(pk.clone(), sk), None, &Expr::default())?,
                        None,
                    ));
                }
            }
            // No count item read: none may appear meanwhile (a first phone or app bound
            // concurrently makes this reset read again).
            if count_item.is_none() {
                let mut x = Expr::default();
                let condition = format!("attribute_not_exists({})", x.name(PK));
                count_item = Some((
                    tx_delete(OP, table, key(pk.clone(), SK_PHONES), Some(&condition), &x)?,
                    None,
                ));
            }
            // The recovery set goes only at the generation read (or stays absent): a set made
            // after the read makes this reset read again, so that it never survives.
            let mut x = Expr::default();
            let set_condition = match set_seen {
                Some(Some(g)) => format!("{} = {}", x.name(GENERATION), x.value("seen", n(g))),
                Some(None) => format!("attribute_not_exists({})", x.name(GENERATION)),
                None => format!("attribute_not_exists({})", x.name(PK)),
            };
            let set_item = (
                tx_delete(
                    OP,
                    table,
                    key(pk.clone(), SK_RECOVERY_SET),
                    Some(&set_condition),
                    &x,
                )?,
                None,
            );
            // One transaction in any real case (at most 5 phones and their claims, 3 live
            // enrollments or challenges and a few finished ones, ten recovery codes); more
            // items go in chunks, the count, the set and the phones first.
            // The adoption counts move with the count item's delete (in its chunk).
            let stats_item = tx_factors(
                OP,
                table,
                owner,
                FactorDelta::between(held, FactorsHeld::default()),
            )?
            .map(|op| (op, None));
            let ops: Vec<(TransactWriteItem, Option<(UnixTime, PhoneRecord)>)> = count_item
                .into_iter()
                .chain(stats_item)
                .chain(std::iter::once(set_item))
                .chain(phone_items)
                .chain(other_items)
                .collect();
            let mut ops = ops.into_iter().peekable();
            let mut lost = false;
            while ops.peek().is_some() {
                let (chunk, phones): (Vec<_>, Vec<_>) =
                    ops.by_ref().take(MAX_TRANSACTION_ITEMS).unzip();
                match self.transact(OP, chunk).await? {
                    Tx::Done => removed.extend(phones.into_iter().flatten()),
                    Tx::Cancelled(codes) if lost_race(&codes) => {
                        lost = true;
                        break;
                    }
                    Tx::Cancelled(codes) => return Err(cancelled_err(OP, &codes)),
                }
            }
            if !lost {
                return Ok(crate::ports::ResetFactors {
                    phones: in_list_order(removed),
                    app: app_seen,
                });
            }
        }
        Err(PortError::new(
            "dynamodb reset_user: gave up after repeated concurrent changes",
        ))
    }
}
