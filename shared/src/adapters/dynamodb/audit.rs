//! Audit event items (under the application and under the user).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::PortError;
use crate::ports::{AuditEvent, AuditPage, AuditQuery, AuditStore};
use crate::types::{AppId, UserId};

use super::item::{
    ACTION, ACTOR, APP_ID, AT, DETAILS, ID, OUTCOME, USER_ID, get_s, get_t, parse_id, s, t,
};
use super::keys::{PK, SK, TTL, audit_pk, key, user_audit_pk};
use super::request::{Expr, Page, Query};
use super::transact::{Tx, cancelled_err, tx_put};
use super::{DynamoStore, Item};

/// An audit event's items: the application's, then (when the event names a user) the user's.
pub fn audit_to_items(e: &AuditEvent) -> Vec<Item> {
    let mut pks = vec![audit_pk(&e.app_id)];
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
        let limit = query.limit as usize;
        if limit == 0 {
            return Ok(AuditPage {
                events: Vec::new(),
                next_after: None,
            });
        }
        let pk = match query.user {
            Some(u) => user_audit_pk(query.app, u),
            None => audit_pk(query.app),
        };
        let mut x = Expr::default();
        let mut condition = format!("{} = {}", x.name(PK), x.value("pk", s(pk)));
        if let Some(after) = query.after {
            condition.push_str(&format!(
                " AND {} < {}",
                x.name(SK),
                x.value("after", s(after))
            ));
        }
        // Events past their retention are hidden even while TTL has not deleted them yet.
        let live = format!("{} > {}", x.name(TTL), x.value("now", t(query.now)));
        // One more than asked for: whether it exists says whether more follow.
        let wanted = limit.saturating_add(1);
        let left = |got: usize| i32::try_from(wanted - got).unwrap_or(i32::MAX);
        let query = Query::new(condition, x)
            .filter(live)
            .newest_first()
            .limit(left(0));
        let mut events = Vec::new();
        self.paginate("list_audit", &query, |page, _| {
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
