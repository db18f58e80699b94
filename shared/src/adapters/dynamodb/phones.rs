//! Phone items, number claims and the phone count.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

use super::stats::tx_factors;
use crate::error::PortError;
use crate::ports::{AuthenticatorRecord, PhoneRecord, PhoneStore, Removal};
use crate::ports::{FactorDelta, FactorsHeld};
use crate::totp::Sealed;
use crate::types::{AppId, AuthenticatorId, Owner, PhoneId, UnixTime, UserId};

use super::item::{
    CLAIMED_AT, COUNT, FIRST_VERIFIED_AT, LABEL, NUMBER, PHONE_ID, PRIMARY, TOTP_ID, TOTP_LABEL,
    TOTP_LAST_USED_AT, TOTP_SEALED, TOTP_VERIFIED_AT, VERIFIED_AT, get_bool, get_s, get_t, n,
    opt_s, opt_t, parse_id, s, stored_number, t,
};
use super::keys::{PHONE_PREFIX, PK, SK_PHONES, key, number_sk, phone_sk, user_pk};
use super::request::{Expr, Page, Query, exists_with};
use super::transact::{Tx, cancelled_err, lost_race, tx_check, tx_delete, tx_update};
use super::{DynamoStore, Item};

/// A verified phone's item. The number is kept in E.164: it is needed to text later.
pub fn phone_to_item(app: &AppId, user: &UserId, p: &PhoneRecord) -> Item {
    let mut item = key(user_pk(app, user), phone_sk(&p.phone_id));
    item.insert(PHONE_ID.into(), s(p.phone_id.as_str()));
    item.insert(NUMBER.into(), s(p.number.e164()));
    if let Some(label) = &p.label {
        item.insert(LABEL.into(), s(label.as_str()));
    }
    item.insert(PRIMARY.into(), AttributeValue::Bool(p.primary));
    item.insert(VERIFIED_AT.into(), t(p.verified_at));
    // Its place in the list: set once, when the phone is added; a replace leaves it.
    item.insert(FIRST_VERIFIED_AT.into(), t(p.verified_at));
    item
}

/// A phone and its place in the user's list: its first verification (an item written before
/// that attribute existed falls back to `verified_at`).
pub(super) fn placed_phone(item: &Item) -> Result<(UnixTime, PhoneRecord), PortError> {
    let phone = phone_from_item(item)?;
    let first = opt_t(item, "phone", FIRST_VERIFIED_AT)?.unwrap_or(phone.verified_at);
    Ok((first, phone))
}

/// Phones in their list order: first verified first (the in-memory store's order of adds), a
/// replaced phone where it was; the id breaks ties.
pub(super) fn in_list_order(mut placed: Vec<(UnixTime, PhoneRecord)>) -> Vec<PhoneRecord> {
    placed.sort_by(|(a, pa), (b, pb)| (a, pa.phone_id.as_str()).cmp(&(b, pb.phone_id.as_str())));
    placed.into_iter().map(|(_, p)| p).collect()
}

/// The phone a phone item holds.
pub fn phone_from_item(item: &Item) -> Result<PhoneRecord, PortError> {
    const W: &str = "phone";
    Ok(PhoneRecord {
        phone_id: parse_id(item, W, PHONE_ID, PhoneId::parse)?,
        number: stored_number(item, W, NUMBER)?,
        label: opt_s(item, LABEL),
        primary: get_bool(item, W, PRIMARY)?,
        verified_at: get_t(item, W, VERIFIED_AT)?,
    })
}

/// The item that claims a number (by its keyed tag, never the number) for one user.
pub fn number_claim_item(
    app: &AppId,
    user: &UserId,
    tag: &str,
    phone: &PhoneId,
    at: UnixTime,
) -> Item {
    let mut item = key(user_pk(app, user), number_sk(tag));
    item.insert(PHONE_ID.into(), s(phone.as_str()));
    item.insert(CLAIMED_AT.into(), t(at));
    item
}

/// The phone count update of an add (`delta` 1) or a removal (`delta` -1), if the user still
/// has `seen` phones. A user who never had a phone has no count item (or one holding only an
/// authenticator app, without `count`); one whose phones were all removed has a count of 0: all
/// count as 0. With `app_seen`, the update also holds only while the user still has an app
/// (`Some(true)`) or still has none (`Some(false)`): the guards of "the first factor" and "the
/// last factor", on the one item that holds both.
pub(super) fn tx_count(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    seen: u32,
    delta: i64,
    app_seen: Option<bool>,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let update = format!("ADD {} {}", x.name(COUNT), x.value("delta", n(delta)));
    let mut condition = count_is(&mut x, seen);
    if let Some(has_app) = app_seen {
        condition = format!("({condition}) AND {}", app_is(&mut x, has_app));
    }
    tx_update(
        op,
        table,
        key(user_pk(app, user), SK_PHONES),
        &update,
        &condition,
        &x,
    )
}

/// The condition that the phone count item counts `seen` phones (no `count`, or no item,
/// counts as 0).
pub(super) fn count_is(x: &mut Expr, seen: u32) -> String {
    let count = x.name(COUNT);
    let seen_v = x.value("seen", n(seen));
    if seen == 0 {
        format!("attribute_not_exists({count}) OR {count} = {seen_v}")
    } else {
        format!("{count} = {seen_v}")
    }
}

/// The condition that the user has an authenticator app bound (`true`) or none (`false`).
pub(super) fn app_is(x: &mut Expr, bound: bool) -> String {
    let id = x.name(TOTP_ID);
    if bound {
        format!("attribute_exists({id})")
    } else {
        format!("attribute_not_exists({id})")
    }
}

/// The authenticator app the phone count item holds, if one is bound.
pub(super) fn app_from_item(item: &Item) -> Result<Option<AuthenticatorRecord>, PortError> {
    const W: &str = "phone count";
    if !item.contains_key(TOTP_ID) {
        return Ok(None);
    }
    Ok(Some(AuthenticatorRecord {
        authenticator_id: parse_id(item, W, TOTP_ID, AuthenticatorId::parse)?,
        sealed: Sealed::from_stored(get_s(item, W, TOTP_SEALED)?.to_owned()),
        label: opt_s(item, TOTP_LABEL),
        verified_at: get_t(item, W, TOTP_VERIFIED_AT)?,
        last_used_at: opt_t(item, W, TOTP_LAST_USED_AT)?,
    }))
}

/// Sets a phone's primary flag to `to`, if it exists and its flag is still `seen`.
pub(super) fn primary_update(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    phone: &PhoneId,
    seen: bool,
    to: bool,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let primary = x.name(PRIMARY);
    let update = format!(
        "SET {primary} = {}",
        x.value("to", AttributeValue::Bool(to))
    );
    let condition = exists_with(&mut x, PRIMARY, "seen", AttributeValue::Bool(seen));
    tx_update(
        op,
        table,
        key(user_pk(app, user), phone_sk(phone)),
        &update,
        &condition,
        &x,
    )
}

/// Checks that a phone exists with its primary flag still `seen`.
pub(super) fn primary_check(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    phone: &PhoneId,
    seen: bool,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let condition = exists_with(&mut x, PRIMARY, "seen", AttributeValue::Bool(seen));
    tx_check(
        op,
        table,
        key(user_pk(app, user), phone_sk(phone)),
        &condition,
        &x,
    )
}

/// Checks that the user still has `seen` phones (no count item counts as 0).
pub(super) fn count_check(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    seen: usize,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let condition = count_is(&mut x, u32::try_from(seen).unwrap_or(u32::MAX));
    tx_check(
        op,
        table,
        key(user_pk(app, user), SK_PHONES),
        &condition,
        &x,
    )
}

#[async_trait]
impl PhoneStore for DynamoStore {
    async fn list_phones(&self, owner: Owner<'_>) -> Result<Vec<PhoneRecord>, PortError> {
        let query = Query::partition(user_pk(owner.app, owner.user), Some(PHONE_PREFIX));
        let mut phones = Vec::new();
        self.paginate("list_phones", &query, |page, _| {
            for item in &page {
                phones.push(placed_phone(item)?);
            }
            Ok(Page::Next(None))
        })
        .await?;
        // The sort key orders by random id: list them in the order they were first verified.
        Ok(in_list_order(phones))
    }

    async fn set_phone_label(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        label: Option<String>,
    ) -> Result<Option<PhoneRecord>, PortError> {
        let mut x = Expr::default();
        let label_n = x.name(LABEL);
        let update = match label {
            Some(l) => format!("SET {label_n} = {}", x.value("label", s(l))),
            None => format!("REMOVE {label_n}"),
        };
        let condition = format!("attribute_exists({})", x.name(PK));
        self.update_if(
            "set_phone_label",
            key(user_pk(owner.app, owner.user), phone_sk(phone_id)),
            &update,
            &condition,
            &x,
        )
        .await?
        .map(|item| phone_from_item(&item))
        .transpose()
    }

    async fn set_primary(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        seen: &[PhoneRecord],
    ) -> Result<bool, PortError> {
        const OP: &str = "set_primary";
        let Owner { app, user } = owner;
        let table = self.table.as_str();
        let Some(target) = seen.iter().find(|p| &p.phone_id == phone_id) else {
            return Ok(false);
        };
        // One transaction over every phone as seen: the promoted one (still at its seen flag)
        // becomes primary, each phone seen primary stops being it, and each other phone must
        // still not be primary; the count item pins the set of phones. A removal, replace or
        // another make-primary committing first makes this one fail: never two primaries,
        // never none.
        let mut items = vec![primary_update(
            OP,
            table,
            app,
            user,
            phone_id,
            target.primary,
            true,
        )?];
        for other in seen.iter().filter(|p| &p.phone_id != phone_id) {
            items.push(if other.primary {
                primary_update(OP, table, app, user, &other.phone_id, true, false)?
            } else {
                primary_check(OP, table, app, user, &other.phone_id, false)?
            });
        }
        items.push(count_check(OP, table, app, user, seen.len())?);
        match self.transact(OP, items).await? {
            Tx::Done => Ok(true),
            Tx::Cancelled(codes) if lost_race(&codes) => Ok(false),
            Tx::Cancelled(codes) => Err(cancelled_err(OP, &codes)),
        }
    }

    async fn remove_phone(&self, owner: Owner<'_>, removal: &Removal) -> Result<bool, PortError> {
        const OP: &str = "remove_phone";
        let Owner { app, user } = owner;
        let table = self.table.as_str();
        let pk = user_pk(app, user);
        let removed = &removal.phone.phone_id;
        let seen_removed = removal
            .seen
            .iter()
            .find(|p| &p.phone_id == removed)
            .map_or(removal.phone.primary, |p| p.primary);
        let promote = removal.promote.as_ref().filter(|p| *p != removed);
        if promote.is_some_and(|id| !removal.seen.iter().any(|p| &p.phone_id == id))
            || (seen_removed && removal.promote.as_ref() == Some(removed))
        {
            // Promoting a phone the flow did not see, or the primary phone promoting itself
            // (which would leave none): not as seen.
            return Ok(false);
        }
        let mut x = Expr::default();
        // The phone must still carry the number the flow saw (a replace that completed in
        // between would otherwise leave its new number claimed by no phone) and its primary
        // flag (a make-primary in between would otherwise leave two primaries or none).
        let exists = format!(
            "attribute_exists({}) AND {} = {} AND {} = {}",
            x.name(PK),
            x.name(NUMBER),
            x.value("number", s(removal.phone.number.e164())),
            x.name(PRIMARY),
            x.value("primary", AttributeValue::Bool(seen_removed)),
        );
        // The last phone's removal also pins the app as seen: whether it removes the last
        // factor (and the recovery codes) is decided on the count item, which holds both.
        let app_seen = removal.is_last_phone().then_some(removal.app_seen);
        let mut items = vec![
            tx_delete(
                OP,
                table,
                key(pk.clone(), phone_sk(removed)),
                Some(&exists),
                &x,
            )?,
            tx_delete(
                OP,
                table,
                key(pk.clone(), number_sk(&removal.number_tag)),
                None,
                &Expr::default(),
            )?,
            tx_count(
                OP,
                table,
                app,
                user,
                u32::try_from(removal.seen.len()).unwrap_or(u32::MAX),
                -1,
                app_seen,
            )?,
        ];
        if removal.is_last_phone() {
            let app = removal.app_seen;
            let delta = FactorDelta::between(
                FactorsHeld { phone: true, app },
                FactorsHeld { phone: false, app },
            );
            items.extend(tx_factors(OP, table, owner, delta)?);
        }
        for other in removal.seen.iter().filter(|p| &p.phone_id != removed) {
            items.push(if Some(&other.phone_id) == promote {
                primary_update(OP, table, app, user, &other.phone_id, false, true)?
            } else {
                primary_check(OP, table, app, user, &other.phone_id, other.primary)?
            });
        }
        // The last factor takes the recovery codes with it.
        self.remove_factor(OP, &pk, removal.is_last(), items).await
    }
}
