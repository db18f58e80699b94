//! Requests: expressions, the update builder, the paginator, the one conflict-retry helper,
//! the write-token guarded update, and the single-item reads and writes.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Select,
};

use crate::adapters::aws::error_detail;
use crate::error::PortError;

use super::item::{WRITE_TOKEN, s};
use super::keys::{PK, SK};
use super::{DynamoStore, Item};

/// How many more times a write is sent when it met another transaction: a single-item write
/// answered `TransactionConflictException` (which the SDK does not retry), or a transaction
/// cancelled by conflicts alone. Nothing was written either way, so sending again is safe.
pub(super) const CONFLICT_RETRIES: u32 = 6;

/// Queries fanned out over shards (the audit log's, the adoption counts') run at most this many
/// at once: each call then waits only for the few before it, so that an emulator serving one
/// request at a time stays under the SDK's call timeout (a settings test once met 503 with all
/// 64 at once on a loaded moto), while DynamoDB answers 64 small queries 8 at a time in a few
/// tens of milliseconds.
pub(super) const SHARD_QUERIES_AT_ONCE: usize = 8;

/// Names and values of one expression. Every attribute is named through `#name`, which
/// sidesteps DynamoDB's reserved words (`ttl`, `count`, `primary`, ...).
#[derive(Default, Clone)]
pub(super) struct Expr {
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    pub(super) fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    pub(super) fn value(&mut self, label: &str, v: AttributeValue) -> String {
        let placeholder = format!(":{label}");
        self.values.insert(placeholder.clone(), v);
        placeholder
    }

    /// DynamoDB refuses empty maps, so an unused one is left out.
    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(super) fn values(&self) -> Option<Item> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

pub(super) fn sdk_err<E>(op: &str, e: &SdkError<E, HttpResponse>) -> PortError
where
    E: std::error::Error + 'static,
{
    PortError::new(format!("dynamodb {op}: {}", error_detail(e)))
}

/// The item of a conditional check failure of an UpdateItem, when DynamoDB returned it.
pub(super) fn update_ccf(e: &SdkError<UpdateItemError, HttpResponse>) -> Option<Option<Item>> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(ccf)) => Some(ccf.item().cloned()),
        _ => None,
    }
}

pub(super) fn put_ccf(e: &SdkError<PutItemError, HttpResponse>) -> bool {
    matches!(
        e.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

pub(super) fn build_err(op: &str, e: impl Display) -> PortError {
    PortError::new(format!("dynamodb {op}: could not build the request: {e}"))
}

/// Whether a single-item write met an item inside another transaction.
pub(super) fn is_conflict<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("TransactionConflictException")
}

/// Jittered exponential backoff before conflict retry `attempt` (1, 2, ...): 10-20 ms, then
/// doubling, capped at 320-640 ms.
pub(super) fn conflict_backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.saturating_sub(1).min(5);
    let mut b = [0u8; 8];
    // Without randomness the backoff is merely not jittered.
    let _ = getrandom::fill(&mut b);
    let jitter = u64::from_le_bytes(b) % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// The one conflict retry of the store: sends again (with [`conflict_backoff`]), at most
/// [`CONFLICT_RETRIES`] more times, while `conflicted` says the answer met another
/// transaction (nothing was written then, so sending again is safe).
pub(super) async fn retry_while_conflicted<T, F, Fut>(
    mut send: F,
    conflicted: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut attempt = 0;
    loop {
        let answer = send().await;
        if attempt < CONFLICT_RETRIES && conflicted(&answer) {
            attempt += 1;
            tokio::time::sleep(conflict_backoff(attempt)).await;
            continue;
        }
        return answer;
    }
}

/// Sends a single-item request again while it answers `TransactionConflictException`.
pub(super) async fn retry_conflicts<T, E, F, Fut>(send: F) -> Result<T, SdkError<E, HttpResponse>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata,
{
    retry_while_conflicted(send, |answer| matches!(answer, Err(e) if is_conflict(e))).await
}

/// A fresh random write token (128 bits, hex).
pub(super) fn write_token() -> Result<String, PortError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| PortError::new(format!("dynamodb: no randomness for a write token: {e}")))?;
    Ok(hex::encode(b))
}

pub(super) fn carries_token(item: &Item, attr: &str, token: &str) -> bool {
    item.get(attr)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(token)
}

/// What a single-item write guarded by a write token came to.
pub(super) enum Written {
    /// Applied by this call: the attributes asked for.
    Applied(Option<Item>),
    /// Refused by its condition, but the item carries this call's token: an earlier try of
    /// this same call (a retry by the SDK after a lost answer) was applied. The item now.
    Replayed(Item),
    /// Refused by its condition: the item as it is (`None`: there is none).
    Refused(Option<Item>),
}

/// The condition that the item exists and its `attr` is still `value` (as `:{label}`).
pub(super) fn exists_with(x: &mut Expr, attr: &str, label: &str, value: AttributeValue) -> String {
    format!(
        "attribute_exists({}) AND {} = {}",
        x.name(PK),
        x.name(attr),
        x.value(label, value)
    )
}

/// One conditional UpdateItem, built here and sent by [`DynamoStore::update`].
pub(super) struct UpdateReq {
    key: Item,
    update: String,
    condition: String,
    x: Expr,
    returns: ReturnValue,
    old_on_failure: bool,
}

impl UpdateReq {
    /// Applies `update` to the item at `key` if `condition` holds (names and values in `x`);
    /// returns nothing unless [`UpdateReq::returning`] says otherwise.
    pub(super) fn new(key: Item, update: String, condition: String, x: Expr) -> UpdateReq {
        UpdateReq {
            key,
            update,
            condition,
            x,
            returns: ReturnValue::None,
            old_on_failure: false,
        }
    }

    pub(super) fn returning(mut self, returns: ReturnValue) -> UpdateReq {
        self.returns = returns;
        self
    }

    /// A failed condition returns the item as it was (where the endpoint supports it).
    pub(super) fn old_on_failure(mut self) -> UpdateReq {
        self.old_on_failure = true;
        self
    }
}

/// What an update came to.
pub(super) enum Updated {
    /// Applied: the attributes asked for with [`UpdateReq::returning`].
    Applied(Option<Item>),
    /// The condition failed: the item as it was, when asked for and returned.
    Refused(Option<Item>),
}

/// One Query, read page by page by [`DynamoStore::paginate`].
pub(super) struct Query {
    key_condition: String,
    filter: Option<String>,
    x: Expr,
    newest_first: bool,
    count_only: bool,
    limit: Option<i32>,
}

impl Query {
    /// The items of partition `pk`, only those whose sort key begins with `prefix` if given.
    pub(super) fn partition(pk: String, prefix: Option<&str>) -> Query {
        let mut x = Expr::default();
        let mut key_condition = format!("{} = {}", x.name(PK), x.value("pk", s(pk)));
        if let Some(prefix) = prefix {
            key_condition.push_str(&format!(
                " AND begins_with({}, {})",
                x.name(SK),
                x.value("prefix", s(prefix))
            ));
        }
        Query::new(key_condition, x)
    }

    /// A query under `key_condition`, with the names and values of `x`.
    pub(super) fn new(key_condition: String, x: Expr) -> Query {
        Query {
            key_condition,
            filter: None,
            x,
            newest_first: false,
            count_only: false,
            limit: None,
        }
    }

    /// Only items for which `filter` holds (its names and values are added with
    /// [`Query::expr`] before the filter is built).
    pub(super) fn filter(mut self, filter: String) -> Query {
        self.filter = Some(filter);
        self
    }

    /// The query's expression, to name the attributes of a filter.
    pub(super) fn expr(&mut self) -> &mut Expr {
        &mut self.x
    }

    pub(super) fn newest_first(mut self) -> Query {
        self.newest_first = true;
        self
    }

    /// Counts the items instead of returning them.
    pub(super) fn count_only(mut self) -> Query {
        self.count_only = true;
        self
    }

    /// At most `limit` items evaluated on the first page.
    pub(super) fn limit(mut self, limit: i32) -> Query {
        self.limit = Some(limit);
        self
    }
}

/// What [`DynamoStore::paginate`] does after a page.
pub(super) enum Page {
    /// Reads the next page, if any (with this limit, `None`: no limit).
    Next(Option<i32>),
    /// Stops.
    Done,
}

impl DynamoStore {
    /// Sends one conditional update (sent again when it met another transaction): the only
    /// UpdateItem of the store.
    pub(super) async fn update(&self, op: &str, u: UpdateReq) -> Result<Updated, PortError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(u.key))
            .update_expression(u.update)
            .condition_expression(u.condition)
            .set_expression_attribute_names(u.x.names())
            .set_expression_attribute_values(u.x.values())
            .return_values(u.returns);
        if u.old_on_failure {
            request = request.return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            );
        }
        match retry_conflicts(|| request.clone().send()).await {
            Ok(out) => Ok(Updated::Applied(out.attributes)),
            Err(e) => match update_ccf(&e) {
                Some(returned) => Ok(Updated::Refused(returned)),
                None => Err(sdk_err(op, &e)),
            },
        }
    }

    /// Updates one item if `condition` holds, stamping it with a fresh write token (see
    /// [`WRITE_TOKEN`]): a retry of this call that finds its own token answers
    /// [`Written::Replayed`] instead of applying twice or reporting a refusal. `update`
    /// starts with `SET` or another clause; the token is set in front.
    pub(super) async fn update_once(
        &self,
        op: &str,
        key_: Item,
        update: &str,
        condition: &str,
        mut x: Expr,
        returns: ReturnValue,
    ) -> Result<Written, PortError> {
        let token = write_token()?;
        let wt = x.name(WRITE_TOKEN);
        let tok = x.value("wtok", s(token.as_str()));
        let update = match update.strip_prefix("SET ") {
            Some(rest) => format!("SET {wt} = {tok}, {rest}"),
            None => format!("SET {wt} = {tok} {update}"),
        };
        let condition = format!("({condition}) AND (attribute_not_exists({wt}) OR {wt} <> {tok})");
        let request = UpdateReq::new(key_.clone(), update, condition, x)
            .returning(returns)
            .old_on_failure();
        match self.update(op, request).await? {
            Updated::Applied(attributes) => Ok(Written::Applied(attributes)),
            Updated::Refused(returned) => {
                // No item came back: there is none, or this endpoint does not return it.
                let item = match returned {
                    Some(item) => Some(item),
                    None => self.get(op, key_).await?,
                };
                Ok(match item {
                    Some(item) if carries_token(&item, WRITE_TOKEN, &token) => {
                        Written::Replayed(item)
                    }
                    other => Written::Refused(other),
                })
            }
        }
    }

    /// Runs `q`, following `LastEvaluatedKey` page after page: the only Query loop of the
    /// store. `page` gets each page's items and count and says whether to read on.
    pub(super) async fn paginate<F>(
        &self,
        op: &str,
        q: &Query,
        mut page: F,
    ) -> Result<(), PortError>
    where
        F: FnMut(Vec<Item>, i32) -> Result<Page, PortError>,
    {
        let mut start: Option<Item> = None;
        let mut limit = q.limit;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&q.key_condition)
                .set_filter_expression(q.filter.clone())
                .set_expression_attribute_names(q.x.names())
                .set_expression_attribute_values(q.x.values())
                .scan_index_forward(!q.newest_first)
                .set_select(q.count_only.then_some(Select::Count))
                .set_limit(limit)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err(op, &e))?;
            let next = page(out.items.unwrap_or_default(), out.count)?;
            match (next, out.last_evaluated_key) {
                (Page::Done, _) => return Ok(()),
                (Page::Next(next_limit), Some(k)) if !k.is_empty() => {
                    start = Some(k);
                    limit = next_limit;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Every item of partition `pk` (all pages), in sort key order.
    pub(super) async fn query_partition(
        &self,
        op: &str,
        pk: String,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        self.paginate(op, &Query::partition(pk, None), |page, _| {
            items.extend(page);
            Ok(Page::Next(None))
        })
        .await?;
        Ok(items)
    }

    /// Updates one item if `condition` holds: its new attributes, or `None` when it did not.
    pub(super) async fn update_if(
        &self,
        op: &str,
        key_: Item,
        update: &str,
        condition: &str,
        x: &Expr,
    ) -> Result<Option<Item>, PortError> {
        let request = UpdateReq::new(key_, update.to_owned(), condition.to_owned(), x.clone())
            .returning(ReturnValue::AllNew);
        Ok(match self.update(op, request).await? {
            Updated::Applied(attributes) => Some(attributes.unwrap_or_default()),
            Updated::Refused(_) => None,
        })
    }

    pub(super) async fn get(&self, op: &str, key: Item) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err(op, &e))?;
        Ok(out.item)
    }

    pub(super) async fn put(&self, op: &str, item: Item) -> Result<(), PortError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        retry_conflicts(|| request.clone().send())
            .await
            .map_err(|e| sdk_err(op, &e))?;
        Ok(())
    }

    /// Puts `item` if `condition` holds. `Ok(false)` when it did not.
    pub(super) async fn put_if(
        &self,
        op: &str,
        item: Item,
        condition: &str,
        x: &Expr,
    ) -> Result<bool, PortError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values());
        match retry_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(true),
            Err(e) if put_ccf(&e) => Ok(false),
            Err(e) => Err(sdk_err(op, &e)),
        }
    }
}
