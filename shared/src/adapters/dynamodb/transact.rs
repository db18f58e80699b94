//! Transactions: the items of a TransactWriteItems, running one (with the conflict retry),
//! and reading its cancellation reasons.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update};

use crate::error::PortError;

use super::request::{Expr, build_err, retry_conflicts, retry_while_conflicted, sdk_err};
use super::{DynamoStore, Item};

/// The most items one TransactWriteItems may hold.
pub(super) const MAX_TRANSACTION_ITEMS: usize = 100;

/// What a TransactWriteItems answered.
pub(super) enum Tx {
    Done,
    /// Cancelled: each item's cancellation reason code, `None` for those that passed.
    Cancelled(Vec<Option<String>>),
}

pub(super) const CONDITION_FAILED: &str = "ConditionalCheckFailed";

pub(super) const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// Whether item `i` of a cancelled transaction failed its condition.
pub(super) fn condition_failed(codes: &[Option<String>], i: usize) -> bool {
    codes.get(i).and_then(Option::as_deref) == Some(CONDITION_FAILED)
}

/// Whether a transaction was cancelled only because the items were not as the caller saw
/// them (a condition failed, or another transaction was changing them).
pub(super) fn lost_race(codes: &[Option<String>]) -> bool {
    let mut reasons = codes.iter().flatten().peekable();
    reasons.peek().is_some() && reasons.all(|c| c == CONDITION_FAILED || c == TRANSACTION_CONFLICT)
}

pub(super) fn cancelled_err(op: &str, codes: &[Option<String>]) -> PortError {
    let codes: Vec<&str> = codes
        .iter()
        .map(|c| c.as_deref().unwrap_or("None"))
        .collect();
    PortError::new(format!(
        "dynamodb {op}: transaction cancelled: [{}]",
        codes.join(", ")
    ))
}

/// Whether a transaction was cancelled only by conflicts with other transactions (nothing
/// written, no condition failed): worth sending again.
pub(super) fn only_conflicts(codes: &[Option<String>]) -> bool {
    let mut reasons = codes.iter().flatten().peekable();
    reasons.peek().is_some() && reasons.all(|c| c == TRANSACTION_CONFLICT)
}

/// One ConditionCheck of a transaction.
pub(super) fn tx_check(
    op: &str,
    table: &str,
    key_: Item,
    condition: &str,
    x: &Expr,
) -> Result<TransactWriteItem, PortError> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key_))
        .condition_expression(condition)
        .set_expression_attribute_names(x.names())
        .set_expression_attribute_values(x.values())
        .build()
        .map_err(|e| build_err(op, e))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// One Put of a transaction, guarded by `condition` (with the names and values of `x`).
pub(super) fn tx_put(
    op: &str,
    table: &str,
    item: Item,
    condition: Option<&str>,
    x: &Expr,
) -> Result<TransactWriteItem, PortError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names(x.names())
        .set_expression_attribute_values(x.values())
        .build()
        .map_err(|e| build_err(op, e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// One Update of a transaction.
pub(super) fn tx_update(
    op: &str,
    table: &str,
    key_: Item,
    update: &str,
    condition: &str,
    x: &Expr,
) -> Result<TransactWriteItem, PortError> {
    tx_update_if(op, table, key_, update, Some(condition), x)
}

/// One Update of a transaction, guarded by `condition` if given.
pub(super) fn tx_update_if(
    op: &str,
    table: &str,
    key_: Item,
    update: &str,
    condition: Option<&str>,
    x: &Expr,
) -> Result<TransactWriteItem, PortError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key_))
        .update_expression(update)
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names(x.names())
        .set_expression_attribute_values(x.values())
        .build()
        .map_err(|e| build_err(op, e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// One Delete of a transaction (deleting a missing item is no error).
pub(super) fn tx_delete(
    op: &str,
    table: &str,
    key_: Item,
    condition: Option<&str>,
    x: &Expr,
) -> Result<TransactWriteItem, PortError> {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key_))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names(x.names())
        .set_expression_attribute_values(x.values())
        .build()
        .map_err(|e| build_err(op, e))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

impl DynamoStore {
    /// Runs one transaction. A cancellation is an answer (with its reasons), not an error;
    /// one cancelled by conflicts alone is sent again (with backoff) a few times first. The
    /// SDK gives every call a `ClientRequestToken`, which DynamoDB uses to apply a
    /// transaction retried after a lost answer only once.
    pub(super) async fn transact(
        &self,
        op: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Tx, PortError> {
        let send = || async {
            let result = retry_conflicts(|| {
                self.client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .send()
            })
            .await;
            match result {
                Ok(_) => Ok(Tx::Done),
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tce)) => {
                        Ok(Tx::Cancelled(
                            tce.cancellation_reasons()
                                .iter()
                                .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                                .collect(),
                        ))
                    }
                    _ => Err(sdk_err(op, &e)),
                },
            }
        };
        retry_while_conflicted(
            send,
            |answer| matches!(answer, Ok(Tx::Cancelled(codes)) if only_conflicts(codes)),
        )
        .await
    }
}
