//! The DynamoDB [`Store`]: one table, string keys `pk` and `sk`, and a numeric `ttl` (epoch
//! seconds) on every item that expires.
//!
//! | item | `pk` | `sk` | `ttl` | attributes that guard retries and races |
//! |---|---|---|---|---|
//! | policy | `APP#{app}` | `POLICY` | none | `version` |
//! | user | `USER#{app}#{user}` | `PROFILE` | none | |
//! | skip | `USER#{app}#{user}` | `SKIP` | the skip's end | |
//! | phone | `USER#{app}#{user}` | `PHONE#{phone_id}` | none | `number`, `primary` |
//! | number claim | `USER#{app}#{user}` | `NUMBER#{number_tag}` | none | |
//! | phone count | `USER#{app}#{user}` | `PHONES` | none | `count` |
//! | enrollment or sign-in challenge | `USER#{app}#{user}` | `ENROLLMENT#{id}` | `expires_at` | `write_token` |
//! | recovery code | `USER#{app}#{user}` | `RECOVERY#{keyed hash}` | none | `used_by`, `used_at` once used |
//! | recovery set | `USER#{app}#{user}` | `RECOVERY_SET` | none | `generation` |
//! | counter | `COUNTER#{key}` | `COUNTER` | window end or block end, the later | `write_token`, `refused` |
//! | audit event | `AUDIT#{app}` | `{event id}` | `expires_at` | |
//! | audit event, by user | `AUDIT#{app}#USER#{user}` | `{event id}` | `expires_at` | |
//!
//! Attributes that make retried writes harmless: a counter, an enrollment or challenge carries
//! `write_token` (the random token of its last counting or completing write, which a retried
//! write recognises as its own) and a counter `refused` (the window or block whose first
//! refusal was answered); a used recovery code carries `used_by` (the token of the use) and
//! `used_at` until its set is replaced or reset, and only codes without `used_by` count.
//!
//! The phone count item (`count`) moves with every phone added or removed, in the same
//! transaction: conditions on it make "at most N phones", "the first phone is primary" and
//! removals hold under concurrent changes. A phone item's `first_verified_at` (set when it is
//! added, left by a replace) places it in the user's list. Ids never hold `#`, so the key prefixes never
//! collide. An audit event is written twice (one transaction): under the application and,
//! when it names a user, under that user, so that both listings are one query, newest first
//! (event ids sort by time). A sign-in challenge is an enrollment item with purpose
//! `challenge` (and the phone in `replace_phone_id`, as for a replace); its completion is a
//! transaction with a ConditionCheck that the phone still carries the number the code went to.
//! Creating one ends (deletes) the user's oldest open ones beyond [`MAX_LIVE_ENROLLMENTS`] and
//! sweeps a few expired ones, in the same transaction (a finished one stays until it expires). A recovery code is one
//! item whose sort key holds its keyed hash, so that using it is one conditional update
//! (marked `used_by`, never deleted until its set goes); the recovery set item's `generation`
//! moves with every replacement and with the removal of the last phone, and the reset deletes
//! it only at the generation it read, so a set made concurrently with either never survives
//! it; a replacement also checks that the phone count is above 0. Make-primary and removals
//! condition on every phone's `primary` flag as the flow saw it (and the count), so that a
//! user with phones always has exactly one primary.
//!
//! Every write that met another transaction is sent again with backoff: a single-item write
//! answered `TransactionConflictException` (which the SDK does not retry), or a transaction
//! cancelled by conflicts alone. A transaction retried by the SDK after a lost answer is
//! applied once by DynamoDB (the SDK fills `ClientRequestToken`); a single-item write that
//! counts or guards single use carries a fresh `write_token` and refuses an item carrying it
//! already, so that its retry answers from the item instead of counting twice.
//!
//! Every read is strongly consistent. Every guard (single use, attempts, sends, counters,
//! the policy version, the phone count) is a condition expression of the write itself, never
//! a read followed by a write. TTL deletion is lazy, so expiry is still checked in the conditions (and by the
//! flows for what they read). No code is stored in clear: an enrollment keeps `code_hash`.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    Select, TransactWriteItem, Update,
};

use crate::adapters::aws::error_detail;
use crate::error::PortError;
use crate::ports::{
    AuditEvent, AuditPage, AuditStore, Clock, Completion, Counted, CounterStore, Enrollment,
    MAX_LIVE_ENROLLMENTS, NewSend, PendingCode, PhoneChange, PhoneRecord, PhoneStore, PolicyStore,
    Purpose, RecoveryStore, Removal, SessionStore, Step, UserRecord, UserStore,
};
use crate::types::ids::CodeId;
use crate::types::{
    AppId, CountryCode, Enforcement, EnrollmentId, PhoneId, PhoneNumber, Policy, UnixTime, UserId,
};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The partition key attribute.
pub const PK: &str = "pk";
/// The sort key attribute.
pub const SK: &str = "sk";
/// The TTL attribute (epoch seconds), enabled on the table by `bootstrap`.
pub const TTL: &str = "ttl";

/// How many times `counter_take` retries when concurrent requests keep moving the window.
const COUNTER_RETRIES: usize = 8;

/// How many times `reset_user` and `replace_recovery_codes` start over when concurrent
/// changes keep cancelling them.
const RESET_RETRIES: usize = 8;

/// The most items one TransactWriteItems may hold.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// How many more times a write is sent when it met another transaction: a single-item write
/// answered `TransactionConflictException` (which the SDK does not retry), or a transaction
/// cancelled by conflicts alone. Nothing was written either way, so sending again is safe.
const CONFLICT_RETRIES: u32 = 6;

/// At most this many expired enrollment items are deleted by one
/// `create_enrollment` (TTL deletes the rest, lazily), so that a user's partition stays small.
const CLOSED_ENROLLMENTS_SWEPT: usize = 10;

/// The random token of the last single-item write of an item that counts or guards single
/// use. A write's condition refuses an item that already carries its own token: if the SDK
/// retries a write whose answer was lost after it was applied, the retry is refused, and the
/// token says the write had been applied (see [`Written::Replayed`]).
const WRITE_TOKEN: &str = "write_token";
/// A recovery code's attribute: the token of the use that spent it. A used code stays (until
/// the set is replaced or reset) so that a retried use can tell it was its own.
const USED_BY: &str = "used_by";
/// A counter's attribute: the window (`w{start}`) or block (`b{until}`) whose first refusal
/// was answered, so that only one refusal per window or block says `first`.
const REFUSED: &str = "refused";

/// The store over one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys.

fn app_pk(app: &AppId) -> String {
    format!("APP#{app}")
}

fn user_pk(app: &AppId, user: &UserId) -> String {
    format!("USER#{app}#{user}")
}

fn counter_pk(key: &str) -> String {
    format!("COUNTER#{key}")
}

fn audit_pk(app: &AppId) -> String {
    format!("AUDIT#{app}")
}

fn user_audit_pk(app: &AppId, user: &UserId) -> String {
    format!("AUDIT#{app}#USER#{user}")
}

const SK_POLICY: &str = "POLICY";
const SK_PROFILE: &str = "PROFILE";
const SK_SKIP: &str = "SKIP";
const SK_COUNTER: &str = "COUNTER";
const SK_PHONES: &str = "PHONES";
const PHONE_PREFIX: &str = "PHONE#";
const NUMBER_PREFIX: &str = "NUMBER#";
const ENROLLMENT_PREFIX: &str = "ENROLLMENT#";
const RECOVERY_PREFIX: &str = "RECOVERY#";
/// The recovery set item: its `generation` moves with every replacement, so that two
/// concurrent replacements never leave the union of their sets. Not under `RECOVERY#`.
const SK_RECOVERY_SET: &str = "RECOVERY_SET";
/// The recovery set item's attribute.
const GENERATION: &str = "generation";
/// The phone count item's attribute.
const COUNT: &str = "count";

fn phone_sk(id: &PhoneId) -> String {
    format!("{PHONE_PREFIX}{id}")
}

fn number_sk(tag: &str) -> String {
    format!("{NUMBER_PREFIX}{tag}")
}

fn enrollment_sk(id: &EnrollmentId) -> String {
    format!("{ENROLLMENT_PREFIX}{id}")
}

fn recovery_sk(hash: &str) -> String {
    format!("{RECOVERY_PREFIX}{hash}")
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

// ---------------------------------------------------------------------------------------------
// Attribute values.

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn t(v: UnixTime) -> AttributeValue {
    n(v.0)
}

fn malformed(what: &str, attr: &str) -> PortError {
    PortError::new(format!(
        "dynamodb: malformed {what} item: attribute `{attr}` missing or of the wrong type"
    ))
}

fn get_s<'a>(item: &'a Item, what: &str, attr: &str) -> Result<&'a str, PortError> {
    item.get(attr)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| malformed(what, attr))
}

fn opt_s(item: &Item, attr: &str) -> Option<String> {
    item.get(attr).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n<T: FromStr>(item: &Item, what: &str, attr: &str) -> Result<T, PortError> {
    opt_n(item, what, attr)?.ok_or_else(|| malformed(what, attr))
}

fn opt_n<T: FromStr>(item: &Item, what: &str, attr: &str) -> Result<Option<T>, PortError> {
    match item.get(attr) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(v) => v
            .as_n()
            .ok()
            .and_then(|x| x.parse().ok())
            .map(Some)
            .ok_or_else(|| malformed(what, attr)),
    }
}

fn get_t(item: &Item, what: &str, attr: &str) -> Result<UnixTime, PortError> {
    get_n(item, what, attr).map(UnixTime)
}

fn opt_t(item: &Item, what: &str, attr: &str) -> Result<Option<UnixTime>, PortError> {
    Ok(opt_n(item, what, attr)?.map(UnixTime))
}

fn get_bool(item: &Item, what: &str, attr: &str) -> Result<bool, PortError> {
    item.get(attr)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .ok_or_else(|| malformed(what, attr))
}

fn stored_number(item: &Item, what: &str, attr: &str) -> Result<PhoneNumber, PortError> {
    // The error never carries the number itself.
    PhoneNumber::from_stored(get_s(item, what, attr)?).map_err(|_| {
        PortError::new(format!(
            "dynamodb: {what} item holds an invalid phone number in `{attr}`"
        ))
    })
}

fn parse_id<T, E>(
    item: &Item,
    what: &str,
    attr: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, PortError> {
    parse(get_s(item, what, attr)?).map_err(|_| malformed(what, attr))
}

// ---------------------------------------------------------------------------------------------
// Records <-> items. Pure functions, unit tested below.

/// The policy item.
pub fn policy_to_item(p: &Policy) -> Item {
    let mut item = key(app_pk(&p.app_id), SK_POLICY);
    item.insert("app_id".into(), s(p.app_id.as_str()));
    item.insert("available".into(), AttributeValue::Bool(p.available));
    item.insert("enabled".into(), AttributeValue::Bool(p.enabled));
    item.insert(
        "include_in_signup".into(),
        AttributeValue::Bool(p.include_in_signup),
    );
    item.insert("enforcement".into(), s(p.enforcement.as_str()));
    if let Some(list) = &p.allowed_countries {
        // A list (not a string set) so that an empty allow-list survives the round trip.
        item.insert(
            "allowed_countries".into(),
            AttributeValue::L(list.iter().map(|c| s(c.as_str())).collect()),
        );
    }
    item.insert("version".into(), n(p.version));
    if let Some(at) = p.updated_at {
        item.insert("updated_at".into(), t(at));
    }
    if let Some(by) = &p.updated_by {
        item.insert("updated_by".into(), s(by.as_str()));
    }
    item
}

/// The policy a policy item holds.
pub fn policy_from_item(item: &Item) -> Result<Policy, PortError> {
    const W: &str = "policy";
    let allowed_countries = match item.get("allowed_countries") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::L(list)) => Some(
            list.iter()
                .map(|v| v.as_s().ok().and_then(|c| CountryCode::parse(c)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed(W, "allowed_countries"))?,
        ),
        Some(_) => return Err(malformed(W, "allowed_countries")),
    };
    Ok(Policy {
        app_id: parse_id(item, W, "app_id", AppId::parse)?,
        available: get_bool(item, W, "available")?,
        enabled: get_bool(item, W, "enabled")?,
        include_in_signup: get_bool(item, W, "include_in_signup")?,
        enforcement: Enforcement::parse(get_s(item, W, "enforcement")?)
            .ok_or_else(|| malformed(W, "enforcement"))?,
        allowed_countries,
        version: get_n(item, W, "version")?,
        updated_at: opt_t(item, W, "updated_at")?,
        updated_by: opt_s(item, "updated_by"),
    })
}

/// The user's profile item.
pub fn user_to_item(u: &UserRecord) -> Item {
    let mut item = key(user_pk(&u.app_id, &u.user_id), SK_PROFILE);
    item.insert("app_id".into(), s(u.app_id.as_str()));
    item.insert("user_id".into(), s(u.user_id.as_str()));
    item.insert("email".into(), s(u.email.as_str()));
    item.insert(
        "email_verified".into(),
        AttributeValue::Bool(u.email_verified),
    );
    item.insert("password_hash".into(), s(u.password_hash.as_str()));
    item.insert("updated_at".into(), t(u.updated_at));
    item
}

/// The user a profile item holds.
pub fn user_from_item(item: &Item) -> Result<UserRecord, PortError> {
    const W: &str = "user";
    Ok(UserRecord {
        app_id: parse_id(item, W, "app_id", AppId::parse)?,
        user_id: parse_id(item, W, "user_id", UserId::parse)?,
        email: get_s(item, W, "email")?.to_owned(),
        email_verified: get_bool(item, W, "email_verified")?,
        password_hash: get_s(item, W, "password_hash")?.to_owned(),
        updated_at: get_t(item, W, "updated_at")?,
    })
}

/// The skip item: expires (TTL) when the skip ends.
pub fn skip_to_item(app: &AppId, user: &UserId, until: UnixTime) -> Item {
    let mut item = key(user_pk(app, user), SK_SKIP);
    item.insert("until".into(), t(until));
    item.insert(TTL.into(), t(until));
    item
}

/// A verified phone's item. The number is kept in E.164: it is needed to text later.
pub fn phone_to_item(app: &AppId, user: &UserId, p: &PhoneRecord) -> Item {
    let mut item = key(user_pk(app, user), phone_sk(&p.phone_id));
    item.insert("phone_id".into(), s(p.phone_id.as_str()));
    item.insert("number".into(), s(p.number.e164()));
    if let Some(label) = &p.label {
        item.insert("label".into(), s(label.as_str()));
    }
    item.insert("primary".into(), AttributeValue::Bool(p.primary));
    item.insert("verified_at".into(), t(p.verified_at));
    // Its place in the list: set once, when the phone is added; a replace leaves it.
    item.insert(FIRST_VERIFIED_AT.into(), t(p.verified_at));
    item
}

/// A phone item's attribute: when the phone was added (its first verification), which places
/// it in the user's list; `verified_at` moves with each replace.
const FIRST_VERIFIED_AT: &str = "first_verified_at";

/// A phone and its place in the user's list: its first verification (an item written before
/// that attribute existed falls back to `verified_at`).
fn placed_phone(item: &Item) -> Result<(UnixTime, PhoneRecord), PortError> {
    let phone = phone_from_item(item)?;
    let first = opt_t(item, "phone", FIRST_VERIFIED_AT)?.unwrap_or(phone.verified_at);
    Ok((first, phone))
}

/// Phones in their list order: first verified first (the in-memory store's order of adds), a
/// replaced phone where it was; the id breaks ties.
fn in_list_order(mut placed: Vec<(UnixTime, PhoneRecord)>) -> Vec<PhoneRecord> {
    placed.sort_by(|(a, pa), (b, pb)| (a, pa.phone_id.as_str()).cmp(&(b, pb.phone_id.as_str())));
    placed.into_iter().map(|(_, p)| p).collect()
}

/// The phone a phone item holds.
pub fn phone_from_item(item: &Item) -> Result<PhoneRecord, PortError> {
    const W: &str = "phone";
    Ok(PhoneRecord {
        phone_id: parse_id(item, W, "phone_id", PhoneId::parse)?,
        number: stored_number(item, W, "number")?,
        label: opt_s(item, "label"),
        primary: get_bool(item, W, "primary")?,
        verified_at: get_t(item, W, "verified_at")?,
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
    item.insert("phone_id".into(), s(phone.as_str()));
    item.insert("claimed_at".into(), t(at));
    item
}

// The pending code's attributes, flat on the enrollment item so that conditions can name them.
const CODE_ID: &str = "code_id";
const CODE_HASH: &str = "code_hash";
const CODE_NUMBER: &str = "code_number";
const CODE_LABEL: &str = "code_label";
const CODE_EXPIRES_AT: &str = "code_expires_at";
const ATTEMPTS: &str = "attempts";
const PENDING_ATTRS: [&str; 6] = [
    CODE_ID,
    CODE_HASH,
    CODE_NUMBER,
    CODE_LABEL,
    CODE_EXPIRES_AT,
    ATTEMPTS,
];

/// The phone an enrollment is about: the phone a replace changes, or the phone a sign-in
/// challenge texted. Named for the first use, kept for the stored items.
const PURPOSE_PHONE_ID: &str = "replace_phone_id";

/// An enrollment's item (or a sign-in challenge's: purpose `challenge`): expires (TTL) with
/// the enrollment.
pub fn enrollment_to_item(e: &Enrollment) -> Item {
    let mut item = key(user_pk(&e.app_id, &e.user_id), enrollment_sk(&e.id));
    item.insert("enrollment_id".into(), s(e.id.as_str()));
    item.insert("app_id".into(), s(e.app_id.as_str()));
    item.insert("user_id".into(), s(e.user_id.as_str()));
    let purpose = match &e.purpose {
        Purpose::Enroll => "enroll",
        Purpose::Add => "add",
        Purpose::Replace(phone) => {
            item.insert(PURPOSE_PHONE_ID.into(), s(phone.as_str()));
            "replace"
        }
        Purpose::Challenge(phone) => {
            item.insert(PURPOSE_PHONE_ID.into(), s(phone.as_str()));
            "challenge"
        }
    };
    item.insert("purpose".into(), s(purpose));
    item.insert("step".into(), s(e.step.as_str()));
    item.insert("created_at".into(), t(e.created_at));
    item.insert("expires_at".into(), t(e.expires_at));
    item.insert(TTL.into(), t(e.expires_at));
    item.insert("sends".into(), n(e.sends));
    if let Some(at) = e.last_sent_at {
        item.insert("last_sent_at".into(), t(at));
    }
    if let Some(p) = &e.pending {
        item.insert(CODE_ID.into(), s(p.code_id.as_str()));
        item.insert(CODE_HASH.into(), s(p.code_hash.as_str()));
        item.insert(CODE_NUMBER.into(), s(p.number.e164()));
        if let Some(label) = &p.label {
            item.insert(CODE_LABEL.into(), s(label.as_str()));
        }
        item.insert(CODE_EXPIRES_AT.into(), t(p.expires_at));
        item.insert(ATTEMPTS.into(), n(p.attempts));
    }
    item
}

/// The enrollment an enrollment item holds.
pub fn enrollment_from_item(item: &Item) -> Result<Enrollment, PortError> {
    const W: &str = "enrollment";
    let purpose = match get_s(item, W, "purpose")? {
        "enroll" => Purpose::Enroll,
        "add" => Purpose::Add,
        "replace" => Purpose::Replace(parse_id(item, W, PURPOSE_PHONE_ID, PhoneId::parse)?),
        "challenge" => Purpose::Challenge(parse_id(item, W, PURPOSE_PHONE_ID, PhoneId::parse)?),
        _ => return Err(malformed(W, "purpose")),
    };
    let pending = if item.contains_key(CODE_ID) {
        Some(PendingCode {
            code_id: parse_id(item, W, CODE_ID, CodeId::parse)?,
            code_hash: get_s(item, W, CODE_HASH)?.to_owned(),
            number: stored_number(item, W, CODE_NUMBER)?,
            label: opt_s(item, CODE_LABEL),
            expires_at: get_t(item, W, CODE_EXPIRES_AT)?,
            attempts: get_n(item, W, ATTEMPTS)?,
        })
    } else {
        None
    };
    Ok(Enrollment {
        id: parse_id(item, W, "enrollment_id", EnrollmentId::parse_stored)?,
        app_id: parse_id(item, W, "app_id", AppId::parse)?,
        user_id: parse_id(item, W, "user_id", UserId::parse)?,
        purpose,
        step: Step::parse(get_s(item, W, "step")?).ok_or_else(|| malformed(W, "step"))?,
        created_at: get_t(item, W, "created_at")?,
        expires_at: get_t(item, W, "expires_at")?,
        sends: get_n(item, W, "sends")?,
        last_sent_at: opt_t(item, W, "last_sent_at")?,
        pending,
    })
}

/// An audit event's items: the application's, then (when the event names a user) the user's.
pub fn audit_to_items(e: &AuditEvent) -> Vec<Item> {
    let mut pks = vec![audit_pk(&e.app_id)];
    if let Some(user) = &e.user_id {
        pks.push(user_audit_pk(&e.app_id, user));
    }
    pks.into_iter()
        .map(|pk| {
            let mut item = key(pk, e.id.as_str());
            item.insert("app_id".into(), s(e.app_id.as_str()));
            item.insert("id".into(), s(e.id.as_str()));
            item.insert("at".into(), t(e.at));
            item.insert("actor".into(), s(e.actor.as_str()));
            item.insert("action".into(), s(e.action.as_str()));
            if let Some(user) = &e.user_id {
                item.insert("user_id".into(), s(user.as_str()));
            }
            item.insert("outcome".into(), s(e.outcome.as_str()));
            item.insert("details".into(), s(e.details.as_str()));
            item.insert(TTL.into(), t(e.expires_at));
            item
        })
        .collect()
}

/// The event an audit item holds.
pub fn audit_from_item(item: &Item) -> Result<AuditEvent, PortError> {
    const W: &str = "audit";
    let user_id = match item.get("user_id") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(_) => Some(parse_id(item, W, "user_id", UserId::parse)?),
    };
    Ok(AuditEvent {
        app_id: parse_id(item, W, "app_id", AppId::parse)?,
        id: get_s(item, W, "id")?.to_owned(),
        at: get_t(item, W, "at")?,
        actor: get_s(item, W, "actor")?.to_owned(),
        action: get_s(item, W, "action")?.to_owned(),
        user_id,
        outcome: get_s(item, W, "outcome")?.to_owned(),
        details: get_s(item, W, "details")?.to_owned(),
        expires_at: get_t(item, W, TTL)?,
    })
}

/// A recovery code's item: its keyed hash is the sort key (no other copy, never the code).
/// No TTL: a code lasts until it is used, replaced or reset.
pub fn recovery_code_item(app: &AppId, user: &UserId, hash: &str, at: UnixTime) -> Item {
    let mut item = key(user_pk(app, user), recovery_sk(hash));
    item.insert("created_at".into(), t(at));
    item
}

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
    item.insert("window_start".into(), t(c.window_start));
    item.insert("window_end".into(), t(c.window_end));
    item.insert("count".into(), n(c.count));
    let mut ttl = c.window_end;
    if let Some(until) = c.blocked_until {
        item.insert("blocked_until".into(), t(until));
        ttl = ttl.max(until);
    }
    item.insert(TTL.into(), t(ttl));
    item
}

/// The counter a counter item holds.
pub fn counter_from_item(item: &Item) -> Result<CounterState, PortError> {
    const W: &str = "counter";
    Ok(CounterState {
        window_start: get_t(item, W, "window_start")?,
        window_end: get_t(item, W, "window_end")?,
        count: get_n(item, W, "count")?,
        blocked_until: opt_t(item, W, "blocked_until")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Expressions and errors.

/// Names and values of one expression. Every attribute is named through `#name`, which
/// sidesteps DynamoDB's reserved words (`ttl`, `count`, `primary`, ...).
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    fn value(&mut self, label: &str, v: AttributeValue) -> String {
        let placeholder = format!(":{label}");
        self.values.insert(placeholder.clone(), v);
        placeholder
    }

    /// DynamoDB refuses empty maps, so an unused one is left out.
    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<Item> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn sdk_err<E>(op: &str, e: &SdkError<E, HttpResponse>) -> PortError
where
    E: std::error::Error + 'static,
{
    PortError::new(format!("dynamodb {op}: {}", error_detail(e)))
}

/// The item of a conditional check failure of an UpdateItem, when DynamoDB returned it.
fn update_ccf(e: &SdkError<UpdateItemError, HttpResponse>) -> Option<Option<Item>> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(ccf)) => Some(ccf.item().cloned()),
        _ => None,
    }
}

fn put_ccf(e: &SdkError<PutItemError, HttpResponse>) -> bool {
    matches!(
        e.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

fn build_err(op: &str, e: impl Display) -> PortError {
    PortError::new(format!("dynamodb {op}: could not build the request: {e}"))
}

/// What a TransactWriteItems answered.
enum Tx {
    Done,
    /// Cancelled: each item's cancellation reason code, `None` for those that passed.
    Cancelled(Vec<Option<String>>),
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";
const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// Whether item `i` of a cancelled transaction failed its condition.
fn condition_failed(codes: &[Option<String>], i: usize) -> bool {
    codes.get(i).and_then(Option::as_deref) == Some(CONDITION_FAILED)
}

/// Whether a transaction was cancelled only because the items were not as the caller saw
/// them (a condition failed, or another transaction was changing them).
fn lost_race(codes: &[Option<String>]) -> bool {
    let mut reasons = codes.iter().flatten().peekable();
    reasons.peek().is_some() && reasons.all(|c| c == CONDITION_FAILED || c == TRANSACTION_CONFLICT)
}

fn cancelled_err(op: &str, codes: &[Option<String>]) -> PortError {
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
fn only_conflicts(codes: &[Option<String>]) -> bool {
    let mut reasons = codes.iter().flatten().peekable();
    reasons.peek().is_some() && reasons.all(|c| c == TRANSACTION_CONFLICT)
}

/// Whether a single-item write met an item inside another transaction.
fn is_conflict<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("TransactionConflictException")
}

/// Jittered exponential backoff before conflict retry `attempt` (1, 2, ...): 10-20 ms, then
/// doubling, capped at 320-640 ms.
fn conflict_backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.saturating_sub(1).min(5);
    let mut b = [0u8; 8];
    // Without randomness the backoff is merely not jittered.
    let _ = getrandom::fill(&mut b);
    let jitter = u64::from_le_bytes(b) % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// Sends a request again (with backoff) while it answers `TransactionConflictException`.
async fn retry_conflicts<T, E, F, Fut>(mut send: F) -> Result<T, SdkError<E, HttpResponse>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata,
{
    let mut attempt = 0;
    loop {
        match send().await {
            Err(e) if attempt < CONFLICT_RETRIES && is_conflict(&e) => {
                attempt += 1;
                tokio::time::sleep(conflict_backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// A fresh random write token (128 bits, hex).
fn write_token() -> Result<String, PortError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| PortError::new(format!("dynamodb: no randomness for a write token: {e}")))?;
    Ok(hex::encode(b))
}

fn carries_token(item: &Item, attr: &str, token: &str) -> bool {
    item.get(attr)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(token)
}

/// What a single-item write guarded by a write token came to.
enum Written {
    /// Applied by this call: the attributes asked for.
    Applied(Option<Item>),
    /// Refused by its condition, but the item carries this call's token: an earlier try of
    /// this same call (a retry by the SDK after a lost answer) was applied. The item now.
    Replayed(Item),
    /// Refused by its condition: the item as it is (`None`: there is none).
    Refused(Option<Item>),
}

/// One ConditionCheck of a transaction.
fn tx_check(
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
fn tx_put(
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
fn tx_update(
    op: &str,
    table: &str,
    key_: Item,
    update: &str,
    condition: &str,
    x: &Expr,
) -> Result<TransactWriteItem, PortError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key_))
        .update_expression(update)
        .condition_expression(condition)
        .set_expression_attribute_names(x.names())
        .set_expression_attribute_values(x.values())
        .build()
        .map_err(|e| build_err(op, e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// One Delete of a transaction (deleting a missing item is no error).
fn tx_delete(
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

/// The phone count update of an add (`delta` 1) or a removal (`delta` -1), if the user still
/// has `seen` phones. A user who never had a phone has no count item; one whose phones were
/// all removed has a count of 0: both count as 0.
fn tx_count(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    seen: u32,
    delta: i64,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let count = x.name(COUNT);
    let update = format!("ADD {count} {}", x.value("delta", n(delta)));
    let seen_v = x.value("seen", n(seen));
    let condition = if seen == 0 {
        format!("attribute_not_exists({}) OR {count} = {seen_v}", x.name(PK))
    } else {
        format!("{count} = {seen_v}")
    };
    tx_update(
        op,
        table,
        key(user_pk(app, user), SK_PHONES),
        &update,
        &condition,
        &x,
    )
}

/// Sets a phone's primary flag to `to`, if it exists and its flag is still `seen`.
fn primary_update(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    phone: &PhoneId,
    seen: bool,
    to: bool,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let primary = x.name("primary");
    let update = format!(
        "SET {primary} = {}",
        x.value("to", AttributeValue::Bool(to))
    );
    let condition = format!(
        "attribute_exists({}) AND {primary} = {}",
        x.name(PK),
        x.value("seen", AttributeValue::Bool(seen))
    );
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
fn primary_check(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    phone: &PhoneId,
    seen: bool,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let condition = format!(
        "attribute_exists({}) AND {} = {}",
        x.name(PK),
        x.name("primary"),
        x.value("seen", AttributeValue::Bool(seen))
    );
    tx_check(
        op,
        table,
        key(user_pk(app, user), phone_sk(phone)),
        &condition,
        &x,
    )
}

/// Checks that the user still has `seen` phones (no count item counts as 0).
fn count_check(
    op: &str,
    table: &str,
    app: &AppId,
    user: &UserId,
    seen: usize,
) -> Result<TransactWriteItem, PortError> {
    let mut x = Expr::default();
    let count = x.name(COUNT);
    let seen_v = x.value("seen", n(seen));
    let condition = if seen == 0 {
        format!("attribute_not_exists({count}) OR {count} = {seen_v}")
    } else {
        format!("{count} = {seen_v}")
    };
    tx_check(
        op,
        table,
        key(user_pk(app, user), SK_PHONES),
        &condition,
        &x,
    )
}

/// Moves the recovery set item to the generation after `seen` (none: the item did not
/// exist), if it is still at `seen`: two writers of the set never both succeed.
fn next_generation(
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
            x.name("updated_at"),
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
    /// Runs one transaction. A cancellation is an answer (with its reasons), not an error;
    /// one cancelled by conflicts alone is sent again (with backoff) a few times first. The
    /// SDK gives every call a `ClientRequestToken`, which DynamoDB uses to apply a
    /// transaction retried after a lost answer only once.
    async fn transact(&self, op: &str, items: Vec<TransactWriteItem>) -> Result<Tx, PortError> {
        let mut attempt = 0;
        loop {
            let result = retry_conflicts(|| {
                self.client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .send()
            })
            .await;
            let codes: Vec<Option<String>> = match result {
                Ok(_) => return Ok(Tx::Done),
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tce)) => tce
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                        .collect(),
                    _ => return Err(sdk_err(op, &e)),
                },
            };
            if attempt < CONFLICT_RETRIES && only_conflicts(&codes) {
                attempt += 1;
                tokio::time::sleep(conflict_backoff(attempt)).await;
                continue;
            }
            return Ok(Tx::Cancelled(codes));
        }
    }

    /// Updates one item if `condition` holds, stamping it with a fresh write token (see
    /// [`WRITE_TOKEN`]): a retry of this call that finds its own token answers
    /// [`Written::Replayed`] instead of applying twice or reporting a refusal. `update`
    /// starts with `SET` or another clause; the token is set in front.
    async fn update_once(
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
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_.clone()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .return_values(returns)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match retry_conflicts(|| request.clone().send()).await {
            Ok(out) => Ok(Written::Applied(out.attributes)),
            Err(e) => match update_ccf(&e) {
                Some(returned) => {
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
                None => Err(sdk_err(op, &e)),
            },
        }
    }

    /// Every item of partition `pk` (all pages), in sort key order.
    async fn query_partition(&self, op: &str, pk: String) -> Result<Vec<Item>, PortError> {
        let mut x = Expr::default();
        let condition = format!("{} = {}", x.name(PK), x.value("pk", s(pk)));
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err(op, &e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Updates one item if `condition` holds: its new attributes, or `None` when it did not.
    async fn update_if(
        &self,
        op: &str,
        key_: Item,
        update: &str,
        condition: &str,
        x: &Expr,
    ) -> Result<Option<Item>, PortError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .return_values(ReturnValue::AllNew);
        match retry_conflicts(|| request.clone().send()).await {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if update_ccf(&e).is_some() => Ok(None),
            Err(e) => Err(sdk_err(op, &e)),
        }
    }

    async fn get(&self, op: &str, key: Item) -> Result<Option<Item>, PortError> {
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

    async fn put(&self, op: &str, item: Item) -> Result<(), PortError> {
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
    async fn put_if(
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

    /// Puts a fresh counter window opening at `now`, if the stored one is still `old`
    /// (or there is none) and is not blocked.
    async fn counter_open_window(
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
                ws = x.name("window_start"),
                old = x.value("old", t(old.window_start)),
                bu = x.name("blocked_until"),
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
}

fn enrollment_key(e: &Enrollment) -> Item {
    key(user_pk(&e.app_id, &e.user_id), enrollment_sk(&e.id))
}

#[async_trait]
impl PolicyStore for DynamoStore {
    async fn get_policy(&self, app: &AppId) -> Result<Option<Policy>, PortError> {
        self.get("get_policy", key(app_pk(app), SK_POLICY))
            .await?
            .map(|item| policy_from_item(&item))
            .transpose()
    }

    async fn put_policy(&self, policy: &Policy, expected_version: u64) -> Result<bool, PortError> {
        let mut x = Expr::default();
        let version = x.name("version");
        let expected = x.value("expected", n(expected_version));
        let condition = if expected_version == 0 {
            format!(
                "attribute_not_exists({}) OR {version} = {expected}",
                x.name(PK)
            )
        } else {
            format!("{version} = {expected}")
        };
        self.put_if("put_policy", policy_to_item(policy), &condition, &x)
            .await
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn get_user(&self, app: &AppId, user: &UserId) -> Result<Option<UserRecord>, PortError> {
        self.get("get_user", key(user_pk(app, user), SK_PROFILE))
            .await?
            .map(|item| user_from_item(&item))
            .transpose()
    }

    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError> {
        self.put("put_user", user_to_item(user)).await
    }

    async fn get_skip(&self, app: &AppId, user: &UserId) -> Result<Option<UnixTime>, PortError> {
        match self
            .get("get_skip", key(user_pk(app, user), SK_SKIP))
            .await?
        {
            Some(item) => Ok(Some(get_t(&item, "skip", "until")?)),
            None => Ok(None),
        }
    }

    async fn put_skip(&self, app: &AppId, user: &UserId, until: UnixTime) -> Result<(), PortError> {
        self.put("put_skip", skip_to_item(app, user, until)).await
    }

    async fn reset_user(&self, app: &AppId, user: &UserId) -> Result<Vec<PhoneRecord>, PortError> {
        const OP: &str = "reset_user";
        let table = self.table.as_str();
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
            let mut phone_items = Vec::new();
            let mut other_items = Vec::new();
            let mut set_seen = None;
            for item in self.query_partition(OP, user_pk(app, user)).await? {
                let sk = get_s(&item, "user partition", SK)?.to_owned();
                if sk == SK_PHONES {
                    let mut x = Expr::default();
                    let condition = match opt_n::<u32>(&item, "phone count", COUNT)? {
                        Some(c) => format!("{} = {}", x.name(COUNT), x.value("seen", n(c))),
                        None => format!("attribute_not_exists({})", x.name(COUNT)),
                    };
                    count_item = Some((
                        tx_delete(OP, table, key(user_pk(app, user), sk), Some(&condition), &x)?,
                        None,
                    ));
                } else if sk.starts_with(PHONE_PREFIX) {
                    let (place, phone) = placed_phone(&item)?;
                    let mut x = Expr::default();
                    let condition = format!(
                        "{} = {}",
                        x.name("number"),
                        x.value("number", s(phone.number.e164()))
                    );
                    phone_items.push((
                        tx_delete(OP, table, key(user_pk(app, user), sk), Some(&condition), &x)?,
                        Some((place, phone)),
                    ));
                } else if sk == SK_RECOVERY_SET {
                    set_seen = Some(opt_n::<u64>(&item, "recovery set", GENERATION)?);
                } else if sk.starts_with(NUMBER_PREFIX)
                    || sk.starts_with(ENROLLMENT_PREFIX)
                    || sk.starts_with(RECOVERY_PREFIX)
                {
                    other_items.push((
                        tx_delete(
                            OP,
                            table,
                            key(user_pk(app, user), sk),
                            None,
                            &Expr::default(),
                        )?,
                        None,
                    ));
                }
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
                    key(user_pk(app, user), SK_RECOVERY_SET),
                    Some(&set_condition),
                    &x,
                )?,
                None,
            );
            // One transaction in any real case (at most 5 phones and their claims, 3 live
            // enrollments or challenges and a few finished ones, ten recovery codes); more
            // items go in chunks, the count, the set and the phones first.
            let ops: Vec<(TransactWriteItem, Option<(UnixTime, PhoneRecord)>)> = count_item
                .into_iter()
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
                return Ok(in_list_order(removed));
            }
        }
        Err(PortError::new(
            "dynamodb reset_user: gave up after repeated concurrent changes",
        ))
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError> {
        const OP: &str = "create_enrollment";
        let table = self.table.as_str();
        let pk = user_pk(&enrollment.app_id, &enrollment.user_id);
        let now = enrollment.created_at;
        // The user's enrollments and challenges as they are: the oldest open ones beyond
        // MAX_LIVE_ENROLLMENTS - 1 are ended (deleted) in the same transaction as the put, and
        // a few expired ones are swept with them. Two creates racing may each
        // keep what the other ends; the next create ends the excess again.
        let mut x = Expr::default();
        let condition = format!(
            "{} = {} AND begins_with({}, {})",
            x.name(PK),
            x.value("pk", s(pk.as_str())),
            x.name(SK),
            x.value("prefix", s(ENROLLMENT_PREFIX)),
        );
        let mut open = Vec::new();
        let mut closed = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err(OP, &e))?;
            for item in out.items() {
                // Read from the raw attributes, not the whole record: an item this version
                // cannot parse (a purpose added later) is left alone, never swept.
                const W: &str = "enrollment";
                let sk = get_s(item, W, SK)?.to_owned();
                let (Ok(created_at), Ok(expires_at), Ok(step)) = (
                    get_t(item, W, "created_at"),
                    get_t(item, W, "expires_at"),
                    get_s(item, W, "step"),
                ) else {
                    continue;
                };
                // A finished one stays until it expires: a late retry of it answers that it is
                // complete, not that it is gone (as the in-memory store does).
                if now >= expires_at {
                    closed.push(sk);
                } else if step != Step::Complete.as_str() {
                    open.push((created_at, sk));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        open.sort();
        let excess = (open.len() + 1).saturating_sub(MAX_LIVE_ENROLLMENTS);
        let ended = open.into_iter().take(excess).map(|(_, sk)| sk);
        let swept = closed.into_iter().take(CLOSED_ENROLLMENTS_SWEPT);
        let mut absent = Expr::default();
        let absent_condition = format!("attribute_not_exists({})", absent.name(PK));
        let mut items = vec![tx_put(
            OP,
            table,
            enrollment_to_item(enrollment),
            Some(&absent_condition),
            &absent,
        )?];
        for sk in ended.chain(swept).take(MAX_TRANSACTION_ITEMS - 1) {
            items.push(tx_delete(
                OP,
                table,
                key(pk.clone(), sk),
                None,
                &Expr::default(),
            )?);
        }
        match self.transact(OP, items).await? {
            Tx::Done => Ok(()),
            Tx::Cancelled(codes) if condition_failed(&codes, 0) => Err(PortError::new(
                "dynamodb create_enrollment: enrollment id collision",
            )),
            // An ended one changed meanwhile (a conflict that outlasted the retries): the
            // new one is not stored; the caller may try again.
            Tx::Cancelled(codes) => Err(cancelled_err(OP, &codes)),
        }
    }

    async fn get_enrollment(
        &self,
        app: &AppId,
        user: &UserId,
        id: &EnrollmentId,
    ) -> Result<Option<Enrollment>, PortError> {
        self.get("get_enrollment", key(user_pk(app, user), enrollment_sk(id)))
            .await?
            .map(|item| enrollment_from_item(&item))
            .transpose()
    }

    async fn begin_send(
        &self,
        enrollment: &Enrollment,
        send: &NewSend,
    ) -> Result<Option<Enrollment>, PortError> {
        let code = &send.code;
        let mut x = Expr::default();
        let pk = x.name(PK);
        let step = x.name("step");
        let sends = x.name("sends");
        let expires_at = x.name("expires_at");
        let last_sent_at = x.name("last_sent_at");
        let code_id = x.name(CODE_ID);
        let now = x.value("now", t(send.now));

        let mut set = vec![
            format!("{step} = {}", x.value("code_step", s(Step::Code.as_str()))),
            format!("{sends} = {sends} + {}", x.value("one", n(1))),
            format!("{last_sent_at} = {now}"),
            format!("{code_id} = {}", x.value("cid", s(code.code_id.as_str()))),
            format!(
                "{} = {}",
                x.name(CODE_HASH),
                x.value("hash", s(code.code_hash.as_str()))
            ),
            format!(
                "{} = {}",
                x.name(CODE_NUMBER),
                x.value("number", s(code.number.e164()))
            ),
            format!(
                "{} = {}",
                x.name(CODE_EXPIRES_AT),
                x.value("cexp", t(code.expires_at))
            ),
            format!(
                "{} = {}",
                x.name(ATTEMPTS),
                x.value("attempts", n(code.attempts))
            ),
        ];
        let label = x.name(CODE_LABEL);
        let update = match &code.label {
            Some(l) => {
                set.push(format!("{label} = {}", x.value("label", s(l.as_str()))));
                format!("SET {}", set.join(", "))
            }
            None => format!("SET {} REMOVE {label}", set.join(", ")),
        };

        let mut conditions = vec![
            format!("attribute_exists({pk})"),
            format!("{expires_at} > {now}"),
            format!(
                "{step} IN ({}, {})",
                x.value("phone_step", s(Step::Phone.as_str())),
                x.value("code_step", s(Step::Code.as_str()))
            ),
            format!("{sends} < {}", x.value("max_sends", n(send.max_sends))),
        ];
        if let Some(limit) = send.last_sent_at_most {
            conditions.push(format!(
                "(attribute_not_exists({last_sent_at}) OR {last_sent_at} <= {})",
                x.value("last_limit", t(limit))
            ));
        }
        if let Some(replaces) = &send.replaces {
            conditions.push(format!(
                "{code_id} = {}",
                x.value("replaces", s(replaces.as_str()))
            ));
        }

        match self
            .update_once(
                "begin_send",
                enrollment_key(enrollment),
                &update,
                &conditions.join(" AND "),
                x,
                ReturnValue::AllOld,
            )
            .await?
        {
            Written::Applied(Some(old)) => Ok(Some(enrollment_from_item(&old)?)),
            Written::Applied(None) => Err(PortError::new(
                "dynamodb begin_send: no previous item returned",
            )),
            // An earlier try of this call was applied (its answer lost): the send is counted
            // once. The item before it is gone; the enrollment as the caller read it stands in
            // for it (what an undo would put back).
            Written::Replayed(_) => Ok(Some(enrollment.clone())),
            Written::Refused(_) => Ok(None),
        }
    }

    async fn undo_send(&self, previous: &Enrollment, failed: &CodeId) -> Result<(), PortError> {
        let mut x = Expr::default();
        let condition = format!(
            "{} = {}",
            x.name(CODE_ID),
            x.value("failed", s(failed.as_str()))
        );
        // A refused condition means a newer send or a completion came first: leave it be.
        self.put_if("undo_send", enrollment_to_item(previous), &condition, &x)
            .await?;
        Ok(())
    }

    async fn take_code_attempt(
        &self,
        enrollment: &Enrollment,
        code_id: &CodeId,
        max: u32,
        now: UnixTime,
    ) -> Result<Option<u32>, PortError> {
        let mut x = Expr::default();
        let attempts = x.name(ATTEMPTS);
        let now = x.value("now", t(now));
        let update = format!("SET {attempts} = {attempts} + {}", x.value("one", n(1)));
        let condition = format!(
            "{step} = {code_step} AND {cid} = {cid_v} AND {attempts} < {max} AND {cexp} > {now} AND {exp} > {now}",
            step = x.name("step"),
            code_step = x.value("code_step", s(Step::Code.as_str())),
            cid = x.name(CODE_ID),
            cid_v = x.value("cid", s(code_id.as_str())),
            max = x.value("max", n(max)),
            cexp = x.name(CODE_EXPIRES_AT),
            exp = x.name("expires_at"),
        );
        match self
            .update_once(
                "take_code_attempt",
                enrollment_key(enrollment),
                &update,
                &condition,
                x,
                ReturnValue::AllNew,
            )
            .await?
        {
            // Replayed: an earlier try took this attempt (its answer lost); not twice.
            Written::Applied(Some(item)) | Written::Replayed(item) => {
                Ok(Some(get_n(&item, "enrollment", ATTEMPTS)?))
            }
            Written::Applied(None) => Err(PortError::new(
                "dynamodb take_code_attempt: no item returned",
            )),
            Written::Refused(_) => Ok(None),
        }
    }

    async fn complete_enrollment(
        &self,
        enrollment: &Enrollment,
        code_id: &CodeId,
        change: &PhoneChange,
        now: UnixTime,
    ) -> Result<Completion, PortError> {
        const OP: &str = "complete_enrollment";
        let (app, user) = (&enrollment.app_id, &enrollment.user_id);
        let table = self.table.as_str();

        // (0) The enrollment: complete, if the code is still pending and both are unexpired.
        // It carries this call's token: if the transaction's answer is lost and its retry
        // finds the code gone, the token says the completion was ours (DynamoDB's
        // ClientRequestToken covers a retry within 10 minutes too; emulators may not).
        let token = write_token()?;
        let mut x = Expr::default();
        let step = x.name("step");
        let now_v = x.value("now", t(now));
        let removed: Vec<String> = PENDING_ATTRS.iter().map(|a| x.name(a)).collect();
        let update = format!(
            "SET {step} = {}, {} = {} REMOVE {}",
            x.value("complete", s(Step::Complete.as_str())),
            x.name(WRITE_TOKEN),
            x.value("wtok", s(token.as_str())),
            removed.join(", ")
        );
        let condition = format!(
            "{step} = {code_step} AND {cid} = {cid_v} AND {cexp} > {now_v} AND {exp} > {now_v}",
            code_step = x.value("code_step", s(Step::Code.as_str())),
            cid = x.name(CODE_ID),
            cid_v = x.value("cid", s(code_id.as_str())),
            cexp = x.name(CODE_EXPIRES_AT),
            exp = x.name("expires_at"),
        );
        let complete = tx_update(
            OP,
            table,
            enrollment_key(enrollment),
            &update,
            &condition,
            &x,
        )?;

        let mut absent = Expr::default();
        let absent_condition = format!("attribute_not_exists({})", absent.name(PK));
        let mut items = vec![complete];
        // Which item's failed condition means what; checked in this order (the in-memory
        // store's): a code no longer pending says nothing about the phones.
        let (number_item, phones_item, collision_item);
        match change {
            PhoneChange::Add {
                phone,
                number_tag,
                seen_count,
            } => {
                // (1) the phone, (2) its number's claim, (3) the count, still as seen.
                items.push(tx_put(
                    OP,
                    table,
                    phone_to_item(app, user, phone),
                    Some(&absent_condition),
                    &absent,
                )?);
                items.push(tx_put(
                    OP,
                    table,
                    number_claim_item(app, user, number_tag, &phone.phone_id, now),
                    Some(&absent_condition),
                    &absent,
                )?);
                // The first phone's enrollment adds only to a user with none (a second Start
                // begun before the first completed must not add a phone as the first).
                let seen = if enrollment.purpose == Purpose::Enroll {
                    0
                } else {
                    *seen_count
                };
                items.push(tx_count(OP, table, app, user, seen, 1)?);
                (collision_item, number_item, phones_item) = (Some(1), 2, 3);
            }
            PhoneChange::Replace {
                phone_id,
                old_number,
                old_number_tag,
                new_number,
                new_number_tag,
            } => {
                // (1) the phone, if it still has the old number: the new number, verified now
                // (label, primary and its place in the list stay).
                let mut px = Expr::default();
                let number = px.name("number");
                let update = format!(
                    "SET {number} = {}, {} = {}",
                    px.value("new", s(new_number.e164())),
                    px.name("verified_at"),
                    px.value("now", t(now)),
                );
                let condition = format!(
                    "attribute_exists({}) AND {number} = {}",
                    px.name(PK),
                    px.value("old", s(old_number.e164())),
                );
                items.push(tx_update(
                    OP,
                    table,
                    key(user_pk(app, user), phone_sk(phone_id)),
                    &update,
                    &condition,
                    &px,
                )?);
                // (2) the old number's claim goes (unless it is the new one too: then the new
                // claim's condition fails, as the in-memory store answers NumberTaken),
                // (3) the new number's claim comes.
                if old_number_tag != new_number_tag {
                    items.push(tx_delete(
                        OP,
                        table,
                        key(user_pk(app, user), number_sk(old_number_tag)),
                        None,
                        &Expr::default(),
                    )?);
                }
                number_item = items.len();
                items.push(tx_put(
                    OP,
                    table,
                    number_claim_item(app, user, new_number_tag, phone_id, now),
                    Some(&absent_condition),
                    &absent,
                )?);
                (collision_item, phones_item) = (None, 1);
            }
            PhoneChange::Challenge { phone_id, number } => {
                // (1) The phone the code was texted to must still exist with that number: a
                // removal or replace that commits first makes this completion fail.
                let mut px = Expr::default();
                let condition = format!(
                    "attribute_exists({}) AND {} = {}",
                    px.name(PK),
                    px.name("number"),
                    px.value("number", s(number.e164())),
                );
                items.push(tx_check(
                    OP,
                    table,
                    key(user_pk(app, user), phone_sk(phone_id)),
                    &condition,
                    &px,
                )?);
                (collision_item, number_item, phones_item) = (None, usize::MAX, 1);
            }
        }

        let codes = match self.transact(OP, items).await? {
            Tx::Done => return Ok(Completion::Done),
            Tx::Cancelled(codes) => codes,
        };
        if condition_failed(&codes, 0) {
            let ours = self
                .get(OP, enrollment_key(enrollment))
                .await?
                .is_some_and(|item| carries_token(&item, WRITE_TOKEN, &token));
            Ok(if ours {
                Completion::Done
            } else {
                Completion::CodeGone
            })
        } else if condition_failed(&codes, number_item) {
            Ok(Completion::NumberTaken)
        } else if condition_failed(&codes, phones_item) {
            Ok(Completion::PhonesChanged)
        } else if collision_item.is_some_and(|i| condition_failed(&codes, i)) {
            Err(PortError::new(
                "dynamodb complete_enrollment: phone id collision",
            ))
        } else if lost_race(&codes) {
            // Only conflicts with concurrent transactions on these items: nothing was written,
            // and the code stays pending.
            Ok(Completion::PhonesChanged)
        } else {
            Err(cancelled_err(OP, &codes))
        }
    }
}

#[async_trait]
impl PhoneStore for DynamoStore {
    async fn list_phones(&self, app: &AppId, user: &UserId) -> Result<Vec<PhoneRecord>, PortError> {
        let mut x = Expr::default();
        let condition = format!(
            "{} = {} AND begins_with({}, {})",
            x.name(PK),
            x.value("pk", s(user_pk(app, user))),
            x.name(SK),
            x.value("prefix", s(PHONE_PREFIX)),
        );
        let mut phones = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("list_phones", &e))?;
            for item in out.items() {
                phones.push(placed_phone(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // The sort key orders by random id: list them in the order they were first verified.
        Ok(in_list_order(phones))
    }

    async fn set_phone_label(
        &self,
        app: &AppId,
        user: &UserId,
        phone_id: &PhoneId,
        label: Option<String>,
    ) -> Result<Option<PhoneRecord>, PortError> {
        let mut x = Expr::default();
        let label_n = x.name("label");
        let update = match label {
            Some(l) => format!("SET {label_n} = {}", x.value("label", s(l))),
            None => format!("REMOVE {label_n}"),
        };
        let condition = format!("attribute_exists({})", x.name(PK));
        self.update_if(
            "set_phone_label",
            key(user_pk(app, user), phone_sk(phone_id)),
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
        app: &AppId,
        user: &UserId,
        phone_id: &PhoneId,
        seen: &[PhoneRecord],
    ) -> Result<bool, PortError> {
        const OP: &str = "set_primary";
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

    async fn remove_phone(
        &self,
        app: &AppId,
        user: &UserId,
        removal: &Removal,
    ) -> Result<bool, PortError> {
        const OP: &str = "remove_phone";
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
        for attempt in 0..RESET_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            let mut x = Expr::default();
            // The phone must still carry the number the flow saw (a replace that completed in
            // between would otherwise leave its new number claimed by no phone) and its primary
            // flag (a make-primary in between would otherwise leave two primaries or none).
            let exists = format!(
                "attribute_exists({}) AND {} = {} AND {} = {}",
                x.name(PK),
                x.name("number"),
                x.value("number", s(removal.phone.number.e164())),
                x.name("primary"),
                x.value("primary", AttributeValue::Bool(seen_removed)),
            );
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
                )?,
            ];
            for other in removal.seen.iter().filter(|p| &p.phone_id != removed) {
                items.push(if Some(&other.phone_id) == promote {
                    primary_update(OP, table, app, user, &other.phone_id, false, true)?
                } else {
                    primary_check(OP, table, app, user, &other.phone_id, other.primary)?
                });
            }
            // The last phone takes the recovery codes with it: every code item goes, and the
            // set item moves on from the generation read, so that a set made concurrently
            // either is deleted here or makes this removal read again and delete it.
            let set_item = if removal.is_last() {
                let mut generation: Option<u64> = None;
                for item in self.query_partition(OP, pk.clone()).await? {
                    let sk = get_s(&item, "user partition", SK)?;
                    if sk == SK_RECOVERY_SET {
                        generation = opt_n(&item, "recovery set", GENERATION)?;
                    } else if sk.starts_with(RECOVERY_PREFIX) {
                        items.push(tx_delete(
                            OP,
                            table,
                            key(pk.clone(), sk),
                            None,
                            &Expr::default(),
                        )?);
                    }
                }
                let set_index = items.len();
                items.push(next_generation(OP, table, &pk, generation, None)?);
                Some(set_index)
            } else {
                None
            };
            if items.len() > MAX_TRANSACTION_ITEMS {
                return Err(PortError::new(format!(
                    "dynamodb {OP}: {} items do not fit one transaction",
                    items.len()
                )));
            }
            match self.transact(OP, items).await? {
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
                Tx::Cancelled(codes) => return Err(cancelled_err(OP, &codes)),
            }
        }
        Err(PortError::new(
            "dynamodb remove_phone: gave up after repeated concurrent changes",
        ))
    }
}

#[async_trait]
impl RecoveryStore for DynamoStore {
    async fn replace_recovery_codes(
        &self,
        app: &AppId,
        user: &UserId,
        hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, PortError> {
        const OP: &str = "replace_recovery_codes";
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
            // (1) The user still has a phone: a set made after the last one went is not kept.
            let mut cx = Expr::default();
            let has_phones = format!("{} > {}", cx.name(COUNT), cx.value("zero", n(0)));
            let mut items = vec![
                next_generation(OP, table, &pk, generation, Some(now))?,
                tx_check(OP, table, key(pk.clone(), SK_PHONES), &has_phones, &cx)?,
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

    async fn consume_recovery_code(
        &self,
        app: &AppId,
        user: &UserId,
        hash: &str,
    ) -> Result<bool, PortError> {
        // One conditional update: of concurrent uses of one code, exactly one finds it unused.
        // The code is marked with this call's token rather than deleted, so that a retry of
        // this very call (after a lost answer) still finds it its own and answers true.
        let token = write_token()?;
        let mut x = Expr::default();
        let used_by = x.name(USED_BY);
        let tok = x.value("tok", s(token.as_str()));
        let update = format!(
            "SET {used_by} = {tok}, {} = {}",
            x.name("used_at"),
            x.value("now", t(crate::ports::SystemClock.now()))
        );
        let condition = format!(
            "attribute_exists({}) AND (attribute_not_exists({used_by}) OR {used_by} = {tok})",
            x.name(PK)
        );
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(app, user), recovery_sk(hash))))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values());
        match retry_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(true),
            Err(e) if update_ccf(&e).is_some() => Ok(false),
            Err(e) => Err(sdk_err("consume_recovery_code", &e)),
        }
    }

    async fn count_recovery_codes(&self, app: &AppId, user: &UserId) -> Result<u32, PortError> {
        let mut x = Expr::default();
        let condition = format!(
            "{} = {} AND begins_with({}, {})",
            x.name(PK),
            x.value("pk", s(user_pk(app, user))),
            x.name(SK),
            x.value("prefix", s(RECOVERY_PREFIX)),
        );
        // A used code stays (marked) until its set goes: only unused ones count.
        let unused = format!("attribute_not_exists({})", x.name(USED_BY));
        let mut total: u32 = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values())
                .filter_expression(&unused)
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("count_recovery_codes", &e))?;
            total = total.saturating_add(u32::try_from(out.count).unwrap_or(0));
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }
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

    async fn list_audit(
        &self,
        app: &AppId,
        user: Option<&UserId>,
        limit: u32,
        after: Option<&str>,
        now: UnixTime,
    ) -> Result<AuditPage, PortError> {
        let limit = limit as usize;
        if limit == 0 {
            return Ok(AuditPage {
                events: Vec::new(),
                next_after: None,
            });
        }
        let pk = match user {
            Some(u) => user_audit_pk(app, u),
            None => audit_pk(app),
        };
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
        // One more than asked for: whether it exists says whether more follow.
        let wanted = limit.saturating_add(1);
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        while events.len() < wanted {
            let page = i32::try_from(wanted - events.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values())
                .filter_expression(&live)
                .scan_index_forward(false)
                .limit(page)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("list_audit", &e))?;
            for item in out.items() {
                events.push(audit_from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
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

#[async_trait]
impl CounterStore for DynamoStore {
    async fn counter_take(
        &self,
        key_: &str,
        limit: u32,
        window_secs: u64,
        now: UnixTime,
    ) -> Result<Counted, PortError> {
        const OP: &str = "counter_take";
        for _ in 0..COUNTER_RETRIES {
            // Count one in the open window, unless it is full or the counter is blocked; a
            // counter that does not exist yet is created with its window open and one counted,
            // in the same single write (most counters are new: a fresh user, number or IP).
            let mut x = Expr::default();
            let count = x.name("count");
            let blocked = x.name("blocked_until");
            let now_v = x.value("now", t(now));
            let end_v = x.value("end", t(now.plus_secs(window_secs)));
            let update = format!(
                "SET {ws} = if_not_exists({ws}, {now_v}), {end} = if_not_exists({end}, {end_v}), {ttl} = if_not_exists({ttl}, {end_v}) ADD {count} {one}",
                ws = x.name("window_start"),
                end = x.name("window_end"),
                ttl = x.name(TTL),
                one = x.value("one", n(1)),
            );
            let condition = format!(
                "attribute_not_exists({pk}) OR ({end} > {now_v} AND {count} < {limit} AND (attribute_not_exists({blocked}) OR {blocked} <= {now_v}))",
                pk = x.name(PK),
                end = x.name("window_end"),
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
        let count = x.name("count");
        let update = format!("SET {count} = {count} - {}", x.value("one", n(1)));
        let condition = format!(
            "{} = {} AND {count} > {}",
            x.name("window_start"),
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
            let blocked = x.name("blocked_until");
            let until_v = x.value("until", t(until));
            let mut condition = format!("attribute_exists({})", x.name(PK));
            let update = if raise_ttl {
                condition.push_str(&format!(" AND {} <= {until_v}", x.name("window_end")));
                format!("SET {blocked} = {until_v}, {} = {until_v}", x.name(TTL))
            } else {
                format!("SET {blocked} = {until_v}")
            };
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(counter_pk(key_), SK_COUNTER)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values());
            match retry_conflicts(|| request.clone().send()).await {
                Ok(_) => return Ok(()),
                Err(e) if update_ccf(&e).is_some() => continue,
                Err(e) => return Err(sdk_err("counter_block", &e)),
            }
        }
        Ok(())
    }
}

/// The `refused` marker of a full window.
fn window_marker(window_start: UnixTime) -> String {
    format!("w{}", window_start.0)
}

/// The `refused` marker of a block.
fn block_marker(until: UnixTime) -> String {
    format!("b{}", until.0)
}

impl DynamoStore {
    /// Records a refusal of the window or block `marker`: true for the first one only (one
    /// conditional write; a refusal after it fails the condition and writes nothing).
    async fn counter_refuse(&self, key_: &str, marker: &str) -> Result<bool, PortError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppId {
        AppId::parse("app-1").unwrap()
    }

    fn user() -> UserId {
        UserId::parse("auth0|u1").unwrap()
    }

    fn number() -> PhoneNumber {
        PhoneNumber::parse("+14155550123").unwrap()
    }

    fn enrollment(pending: bool) -> Enrollment {
        Enrollment {
            id: EnrollmentId::generate().unwrap(),
            app_id: app(),
            user_id: user(),
            purpose: Purpose::Enroll,
            step: if pending { Step::Code } else { Step::Phone },
            created_at: UnixTime(1_000),
            expires_at: UnixTime(2_800),
            sends: u32::from(pending),
            last_sent_at: pending.then_some(UnixTime(1_010)),
            pending: pending.then(|| PendingCode {
                code_id: CodeId::generate().unwrap(),
                code_hash: "ab".repeat(32),
                number: number(),
                label: Some("work".into()),
                expires_at: UnixTime(1_610),
                attempts: 2,
            }),
        }
    }

    fn str_of<'a>(item: &'a Item, attr: &str) -> &'a str {
        item[attr].as_s().unwrap()
    }

    #[test]
    fn policy_round_trips_with_and_without_optional_fields() {
        let mut p = Policy::default_for(app());
        assert_eq!(policy_from_item(&policy_to_item(&p)).unwrap(), p);
        p.available = true;
        p.enabled = true;
        p.enforcement = Enforcement::Required;
        p.allowed_countries = Some(vec![
            CountryCode::parse("US").unwrap(),
            CountryCode::parse("GB").unwrap(),
        ]);
        p.version = 7;
        p.updated_at = Some(UnixTime(1_795_000_000));
        p.updated_by = Some("arn:aws:iam::123456789012:user/admin".into());
        let item = policy_to_item(&p);
        assert_eq!(str_of(&item, PK), "APP#app-1");
        assert_eq!(str_of(&item, SK), "POLICY");
        assert!(!item.contains_key(TTL));
        assert_eq!(policy_from_item(&item).unwrap(), p);
        // An empty allow-list is not the same as none.
        p.allowed_countries = Some(vec![]);
        assert_eq!(policy_from_item(&policy_to_item(&p)).unwrap(), p);
    }

    #[test]
    fn user_round_trips() {
        let u = UserRecord {
            app_id: app(),
            user_id: user(),
            email: "a@example.com".into(),
            email_verified: true,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            updated_at: UnixTime(5),
        };
        let item = user_to_item(&u);
        assert_eq!(str_of(&item, PK), "USER#app-1#auth0|u1");
        assert_eq!(str_of(&item, SK), "PROFILE");
        assert_eq!(user_from_item(&item).unwrap(), u);
    }

    #[test]
    fn skip_expires_with_its_end() {
        let item = skip_to_item(&app(), &user(), UnixTime(99));
        assert_eq!(str_of(&item, SK), "SKIP");
        assert_eq!(item[TTL], n(99));
        assert_eq!(get_t(&item, "skip", "until").unwrap(), UnixTime(99));
    }

    #[test]
    fn phone_round_trips_and_keeps_e164() {
        let p = PhoneRecord {
            phone_id: PhoneId::generate().unwrap(),
            number: number(),
            label: None,
            primary: true,
            verified_at: UnixTime(42),
        };
        let item = phone_to_item(&app(), &user(), &p);
        assert_eq!(str_of(&item, SK), format!("PHONE#{}", p.phone_id));
        assert_eq!(str_of(&item, "number"), "+14155550123");
        assert!(!item.contains_key(TTL));
        assert_eq!(phone_from_item(&item).unwrap(), p);
    }

    #[test]
    fn number_claim_holds_the_tag_not_the_number() {
        let item = number_claim_item(
            &app(),
            &user(),
            "0123abcd",
            &PhoneId::generate().unwrap(),
            UnixTime(1),
        );
        assert_eq!(str_of(&item, SK), "NUMBER#0123abcd");
        assert!(
            item.values()
                .all(|v| v.as_s().map_or(true, |s| !s.contains("4155550123")))
        );
    }

    #[test]
    fn enrollment_round_trips_with_and_without_a_pending_code() {
        for pending in [false, true] {
            let e = enrollment(pending);
            let item = enrollment_to_item(&e);
            assert_eq!(str_of(&item, PK), "USER#app-1#auth0|u1");
            assert_eq!(str_of(&item, SK), format!("ENROLLMENT#{}", e.id));
            assert_eq!(item[TTL], n(2_800));
            assert_eq!(item.contains_key(CODE_HASH), pending);
            assert_eq!(enrollment_from_item(&item).unwrap(), e);
        }
        let mut e = enrollment(false);
        e.purpose = Purpose::Replace(PhoneId::generate().unwrap());
        e.step = Step::Complete;
        assert_eq!(enrollment_from_item(&enrollment_to_item(&e)).unwrap(), e);
    }

    #[test]
    fn purposes_map_to_stable_names_and_the_phone_attribute() {
        let phone = PhoneId::generate().unwrap();
        for (purpose, name, phone_attr) in [
            (Purpose::Enroll, "enroll", false),
            (Purpose::Add, "add", false),
            (Purpose::Replace(phone.clone()), "replace", true),
            (Purpose::Challenge(phone.clone()), "challenge", true),
        ] {
            for pending in [false, true] {
                let e = Enrollment {
                    purpose: purpose.clone(),
                    ..enrollment(pending)
                };
                let item = enrollment_to_item(&e);
                assert_eq!(str_of(&item, "purpose"), name);
                assert_eq!(str_of(&item, SK), format!("ENROLLMENT#{}", e.id));
                assert_eq!(item.contains_key("replace_phone_id"), phone_attr);
                if phone_attr {
                    assert_eq!(str_of(&item, "replace_phone_id"), phone.as_str());
                }
                assert_eq!(enrollment_from_item(&item).unwrap(), e);
            }
        }
        // A challenge or a replace without its phone, or an unknown purpose, is malformed.
        let mut item = enrollment_to_item(&Enrollment {
            purpose: Purpose::Challenge(phone),
            ..enrollment(true)
        });
        item.remove("replace_phone_id");
        let err = enrollment_from_item(&item).unwrap_err();
        assert!(err.0.contains("`replace_phone_id`"), "{}", err.0);
        item.insert("purpose".into(), s("recover"));
        let err = enrollment_from_item(&item).unwrap_err();
        assert!(err.0.contains("`purpose`"), "{}", err.0);
    }

    #[test]
    fn recovery_code_item_is_keyed_by_its_hash() {
        let hash = "0f".repeat(32);
        let item = recovery_code_item(&app(), &user(), &hash, UnixTime(7));
        assert_eq!(str_of(&item, PK), "USER#app-1#auth0|u1");
        assert_eq!(str_of(&item, SK), format!("RECOVERY#{hash}"));
        assert_eq!(item["created_at"], n(7));
        assert!(!item.contains_key(TTL));
        assert_eq!(item.len(), 3);
        // The set item sorts outside the codes' prefix, so counting codes never counts it.
        assert!(!SK_RECOVERY_SET.starts_with(RECOVERY_PREFIX));
    }

    #[test]
    fn enrollment_item_never_holds_the_code() {
        let e = enrollment(true);
        let item = enrollment_to_item(&e);
        let hash = &e.pending.as_ref().unwrap().code_hash;
        assert_eq!(str_of(&item, CODE_HASH), hash);
        assert!(!item.contains_key("code"));
    }

    #[test]
    fn counter_ttl_is_the_later_of_window_and_block() {
        let mut c = CounterState {
            window_start: UnixTime(100),
            window_end: UnixTime(200),
            count: 3,
            blocked_until: None,
        };
        let item = counter_to_item("pw#a#u", &c);
        assert_eq!(str_of(&item, PK), "COUNTER#pw#a#u");
        assert_eq!(str_of(&item, SK), "COUNTER");
        assert_eq!(item[TTL], n(200));
        assert_eq!(counter_from_item(&item).unwrap(), c);
        c.blocked_until = Some(UnixTime(900));
        let item = counter_to_item("k", &c);
        assert_eq!(item[TTL], n(900));
        assert_eq!(counter_from_item(&item).unwrap(), c);
    }

    #[test]
    fn malformed_items_name_the_attribute_not_the_value() {
        let mut item = phone_to_item(
            &app(),
            &user(),
            &PhoneRecord {
                phone_id: PhoneId::generate().unwrap(),
                number: number(),
                label: None,
                primary: false,
                verified_at: UnixTime(1),
            },
        );
        item.remove("primary");
        let err = phone_from_item(&item).unwrap_err();
        assert!(err.0.contains("`primary`"), "{}", err.0);
        item.insert("primary".into(), AttributeValue::Bool(true));
        item.insert("number".into(), s("+1-800-555-012"));
        let err = phone_from_item(&item).unwrap_err();
        assert!(!err.0.contains("800555012"), "{}", err.0);
        let mut e = enrollment_to_item(&enrollment(false));
        e.insert("sends".into(), s("many"));
        assert!(enrollment_from_item(&e).unwrap_err().0.contains("`sends`"));
    }

    fn event(id: &str, user: Option<UserId>) -> AuditEvent {
        AuditEvent {
            app_id: app(),
            id: id.into(),
            at: UnixTime(1_800_000_000),
            actor: "arn:aws:iam::123456789012:user/admin".into(),
            action: "user.reset".into(),
            user_id: user,
            outcome: "ok".into(),
            details: r#"{"phones":2}"#.into(),
            expires_at: UnixTime(1_807_776_000),
        }
    }

    #[test]
    fn audit_event_is_written_under_the_app_and_its_user() {
        let e = event("001800000000-x", Some(user()));
        let items = audit_to_items(&e);
        assert_eq!(items.len(), 2);
        assert_eq!(str_of(&items[0], PK), "AUDIT#app-1");
        assert_eq!(str_of(&items[1], PK), "AUDIT#app-1#USER#auth0|u1");
        for item in &items {
            assert_eq!(str_of(item, SK), "001800000000-x");
            assert_eq!(item[TTL], n(1_807_776_000));
            assert_eq!(str_of(item, "details"), r#"{"phones":2}"#);
            assert_eq!(audit_from_item(item).unwrap(), e);
        }
        let e = event("001800000000-y", None);
        let items = audit_to_items(&e);
        assert_eq!(items.len(), 1);
        assert_eq!(str_of(&items[0], PK), "AUDIT#app-1");
        assert!(!items[0].contains_key("user_id"));
        assert_eq!(audit_from_item(&items[0]).unwrap(), e);
        let mut bad = items[0].clone();
        bad.remove("actor");
        assert!(audit_from_item(&bad).unwrap_err().0.contains("`actor`"));
    }

    #[test]
    fn cancellations_name_their_cause() {
        let codes = |c: &[&str]| -> Vec<Option<String>> {
            c.iter()
                .map(|c| (*c != "None").then(|| (*c).to_owned()))
                .collect()
        };
        let c = codes(&["None", "ConditionalCheckFailed", "TransactionConflict"]);
        assert!(condition_failed(&c, 1));
        assert!(!condition_failed(&c, 0));
        assert!(!condition_failed(&c, 7));
        assert!(lost_race(&c));
        assert!(!lost_race(&codes(&["None", "None"])));
        assert!(!lost_race(&codes(&[
            "ValidationError",
            "ConditionalCheckFailed"
        ])));
        let err = cancelled_err("op", &codes(&["None", "ThrottlingError"]));
        assert_eq!(
            err.0,
            "dynamodb op: transaction cancelled: [None, ThrottlingError]"
        );
    }

    #[test]
    fn expressions_name_every_attribute() {
        let mut x = Expr::default();
        assert_eq!(x.name("ttl"), "#ttl");
        assert_eq!(x.value("now", n(1)), ":now");
        assert_eq!(x.names().unwrap()["#ttl"], "ttl");
        assert!(Expr::default().names().is_none());
        assert!(Expr::default().values().is_none());
    }
}

#[cfg(test)]
mod moto_tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::aws::{bootstrap, moto};
    use crate::config::AwsNames;

    async fn store() -> DynamoStore {
        let url = std::env::var("MFA_TEST_MOTO_URL").unwrap();
        let sdk = moto::sdk_config(&url).await;
        let names = AwsNames {
            table_name: moto::unique("mfa-store"),
            secret_id: moto::unique("mfa-store-secret"),
            signing_secret_id: None,
        };
        bootstrap(&sdk, &names, "store-test@example.com")
            .await
            .unwrap();
        DynamoStore::new(Client::new(&sdk), names.table_name)
    }

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn pending(number: &str, expires_at: UnixTime) -> PendingCode {
        PendingCode {
            code_id: CodeId::generate().unwrap(),
            code_hash: "cd".repeat(32),
            number: PhoneNumber::parse(number).unwrap(),
            label: Some("mine".into()),
            expires_at,
            attempts: 0,
        }
    }

    fn new_enrollment(app: &AppId, user: &UserId) -> Enrollment {
        Enrollment {
            id: EnrollmentId::generate().unwrap(),
            app_id: app.clone(),
            user_id: user.clone(),
            purpose: Purpose::Enroll,
            step: Step::Phone,
            created_at: NOW,
            expires_at: NOW.plus_secs(1800),
            sends: 0,
            last_sent_at: None,
            pending: None,
        }
    }

    fn send(code: &PendingCode, now: UnixTime) -> NewSend {
        NewSend {
            code: code.clone(),
            now,
            max_sends: 3,
            last_sent_at_most: None,
            replaces: None,
        }
    }

    fn phone(number: &str) -> PhoneRecord {
        PhoneRecord {
            phone_id: PhoneId::generate().unwrap(),
            number: PhoneNumber::parse(number).unwrap(),
            label: None,
            primary: true,
            verified_at: NOW,
        }
    }

    fn add(phone: &PhoneRecord, tag: &str, seen_count: u32) -> PhoneChange {
        PhoneChange::Add {
            phone: phone.clone(),
            number_tag: tag.into(),
            seen_count,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
    async fn every_store_method_against_moto() {
        let db = Arc::new(store().await);
        let missing = DynamoStore::new(db.client.clone(), "no-such-table");
        let err = missing
            .get_policy(&AppId::parse("a").unwrap())
            .await
            .unwrap_err()
            .0;
        assert!(
            err.starts_with("dynamodb get_policy: ") && err.contains("ResourceNotFoundException"),
            "{err}"
        );
        assert!(!err.contains("SdkBody"), "{err}");
        let app = AppId::parse("app-moto").unwrap();
        let user = UserId::parse("user-1").unwrap();
        let other = UserId::parse("user-2").unwrap();

        // Policy: optimistic versions.
        assert_eq!(db.get_policy(&app).await.unwrap(), None);
        let mut p = Policy::default_for(app.clone());
        p.available = true;
        p.version = 1;
        p.allowed_countries = Some(vec![CountryCode::parse("US").unwrap()]);
        assert!(db.put_policy(&p, 0).await.unwrap());
        assert!(
            !db.put_policy(&p, 0).await.unwrap(),
            "a second first write must lose"
        );
        p.enabled = true;
        p.version = 2;
        assert!(!db.put_policy(&p, 5).await.unwrap());
        assert!(db.put_policy(&p, 1).await.unwrap());
        assert!(!db.put_policy(&p, 1).await.unwrap());
        assert_eq!(db.get_policy(&app).await.unwrap(), Some(p));

        // Users and skips.
        let u = UserRecord {
            app_id: app.clone(),
            user_id: user.clone(),
            email: "u@example.com".into(),
            email_verified: true,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            updated_at: NOW,
        };
        assert_eq!(db.get_user(&app, &user).await.unwrap(), None);
        db.put_user(&u).await.unwrap();
        assert_eq!(db.get_user(&app, &user).await.unwrap(), Some(u));
        assert_eq!(db.get_skip(&app, &user).await.unwrap(), None);
        db.put_skip(&app, &user, NOW.plus_secs(60)).await.unwrap();
        assert_eq!(
            db.get_skip(&app, &user).await.unwrap(),
            Some(NOW.plus_secs(60))
        );

        // Enrollments: created once, found only under their user.
        let e = new_enrollment(&app, &user);
        db.create_enrollment(&e).await.unwrap();
        assert!(db.create_enrollment(&e).await.is_err());
        assert_eq!(
            db.get_enrollment(&app, &user, &e.id).await.unwrap(),
            Some(e.clone())
        );
        assert_eq!(db.get_enrollment(&app, &other, &e.id).await.unwrap(), None);

        // begin_send and its guards.
        let c1 = pending("+14155550123", NOW.plus_secs(600));
        let prev = db.begin_send(&e, &send(&c1, NOW)).await.unwrap();
        assert_eq!(prev, Some(e.clone()));
        let e1 = db
            .get_enrollment(&app, &user, &e.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (e1.step, e1.sends, e1.last_sent_at),
            (Step::Code, 1, Some(NOW))
        );
        assert_eq!(e1.pending, Some(c1.clone()));

        let c2 = pending("+14155550124", NOW.plus_secs(630));
        let later = NOW.plus_secs(30);
        let cooldown = NewSend {
            last_sent_at_most: Some(UnixTime(NOW.0 - 1)),
            ..send(&c2, later)
        };
        assert_eq!(
            db.begin_send(&e, &cooldown).await.unwrap(),
            None,
            "cooldown"
        );
        let wrong = NewSend {
            replaces: Some(c2.code_id.clone()),
            ..send(&c2, later)
        };
        assert_eq!(
            db.begin_send(&e, &wrong).await.unwrap(),
            None,
            "replaces another code"
        );
        let expired = send(&c2, e.expires_at);
        assert_eq!(
            db.begin_send(&e, &expired).await.unwrap(),
            None,
            "expired enrollment"
        );
        let resend = NewSend {
            replaces: Some(c1.code_id.clone()),
            last_sent_at_most: Some(NOW),
            ..send(&c2, later)
        };
        assert_eq!(db.begin_send(&e, &resend).await.unwrap(), Some(e1.clone()));
        let mut c2_nolabel = pending("+14155550124", NOW.plus_secs(640));
        c2_nolabel.label = None;
        db.begin_send(&e, &send(&c2_nolabel, later))
            .await
            .unwrap()
            .unwrap();
        let e3 = db
            .get_enrollment(&app, &user, &e.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (e3.sends, e3.pending.clone()),
            (3, Some(c2_nolabel.clone()))
        );
        let c4 = pending("+14155550125", NOW.plus_secs(700));
        assert_eq!(
            db.begin_send(&e, &send(&c4, later)).await.unwrap(),
            None,
            "send limit"
        );

        // undo_send restores the previous state only while the failed code is pending.
        let e2 = db
            .get_enrollment(&app, &user, &e.id)
            .await
            .unwrap()
            .unwrap();
        db.undo_send(&e1, &c1.code_id).await.unwrap();
        assert_eq!(
            db.get_enrollment(&app, &user, &e.id).await.unwrap(),
            Some(e2),
            "not the pending code"
        );
        db.undo_send(&e1, &c2_nolabel.code_id).await.unwrap();
        assert_eq!(
            db.get_enrollment(&app, &user, &e.id).await.unwrap(),
            Some(e1.clone())
        );

        // Attempts: concurrent takes never exceed max.
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (db, e1, cid) = (db.clone(), e1.clone(), c1.code_id.clone());
            tasks.push(tokio::spawn(async move {
                db.take_code_attempt(&e1, &cid, 5, NOW).await.unwrap()
            }));
        }
        let mut taken: Vec<u32> = Vec::new();
        for task in tasks {
            taken.extend(task.await.unwrap());
        }
        taken.sort_unstable();
        assert_eq!(taken, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            db.take_code_attempt(&e1, &c1.code_id, 6, NOW)
                .await
                .unwrap(),
            Some(6)
        );
        assert_eq!(
            db.take_code_attempt(&e1, &c2.code_id, 9, NOW)
                .await
                .unwrap(),
            None,
            "other code"
        );
        assert_eq!(
            db.take_code_attempt(&e1, &c1.code_id, 9, c1.expires_at)
                .await
                .unwrap(),
            None,
            "code expired"
        );

        // Completion: once, then the code is gone.
        let ph = phone("+14155550123");
        assert_eq!(
            db.complete_enrollment(&e1, &c1.code_id, &add(&ph, "tag-1", 0), c1.expires_at)
                .await
                .unwrap(),
            Completion::CodeGone,
            "expired"
        );
        assert_eq!(
            db.complete_enrollment(&e1, &c2.code_id, &add(&ph, "tag-1", 0), NOW)
                .await
                .unwrap(),
            Completion::CodeGone,
            "other code"
        );
        assert_eq!(
            db.complete_enrollment(&e1, &c1.code_id, &add(&ph, "tag-1", 0), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        assert_eq!(
            db.complete_enrollment(
                &e1,
                &c1.code_id,
                &add(&phone("+14155550123"), "tag-1", 0),
                NOW
            )
            .await
            .unwrap(),
            Completion::CodeGone
        );
        let done = db
            .get_enrollment(&app, &user, &e.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((done.step, done.pending), (Step::Complete, None));
        assert_eq!(
            db.take_code_attempt(&e1, &c1.code_id, 9, NOW)
                .await
                .unwrap(),
            None,
            "completed"
        );
        assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph.clone()]);
        assert_eq!(db.list_phones(&app, &other).await.unwrap(), vec![]);

        // The same number again for this user: NumberTaken, and nothing changes.
        let again = Enrollment {
            purpose: Purpose::Add,
            ..new_enrollment(&app, &user)
        };
        db.create_enrollment(&again).await.unwrap();
        let c5 = pending("+14155550123", NOW.plus_secs(600));
        db.begin_send(&again, &send(&c5, NOW))
            .await
            .unwrap()
            .unwrap();
        let again_code = db
            .get_enrollment(&app, &user, &again.id)
            .await
            .unwrap()
            .unwrap();
        let ph2 = PhoneRecord {
            primary: false,
            verified_at: NOW.plus_secs(1),
            ..phone("+14155550123")
        };
        assert_eq!(
            db.complete_enrollment(&again_code, &c5.code_id, &add(&ph2, "tag-1", 1), NOW)
                .await
                .unwrap(),
            Completion::NumberTaken
        );
        assert_eq!(
            db.get_enrollment(&app, &user, &again.id).await.unwrap(),
            Some(again_code.clone())
        );
        assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph.clone()]);
        // Another number completes, and phones list in verification order.
        assert_eq!(
            db.complete_enrollment(&again_code, &c5.code_id, &add(&ph2, "tag-2", 1), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph, ph2]);

        // Counters: limit, give back, window reset.
        let key = moto::unique("txt-user#app#u");
        for i in 1..=3 {
            assert_eq!(
                db.counter_take(&key, 3, 100, NOW).await.unwrap(),
                Counted::Taken {
                    count: i,
                    window_start: NOW
                }
            );
            // The first take creates the counter in the same write, window and TTL included.
            let item = db.get("test", key_item(&key)).await.unwrap().unwrap();
            assert_eq!(
                counter_from_item(&item).unwrap(),
                CounterState {
                    window_start: NOW,
                    window_end: NOW.plus_secs(100),
                    count: i,
                    blocked_until: None,
                }
            );
            assert_eq!(item[TTL].as_n().unwrap(), &NOW.plus_secs(100).0.to_string());
        }
        assert_eq!(
            db.counter_take(&key, 3, 100, NOW.plus_secs(10))
                .await
                .unwrap(),
            Counted::Limited {
                until: NOW.plus_secs(100),
                first: true,
            }
        );
        // The next refusal of the same window is not the first.
        assert_eq!(
            db.counter_take(&key, 3, 100, NOW.plus_secs(11))
                .await
                .unwrap(),
            Counted::Limited {
                until: NOW.plus_secs(100),
                first: false,
            }
        );
        db.counter_give_back(&key, NOW).await.unwrap();
        db.counter_give_back(&key, UnixTime(1)).await.unwrap(); // another window: no-op
        assert_eq!(
            db.counter_take(&key, 3, 100, NOW.plus_secs(20))
                .await
                .unwrap(),
            Counted::Taken {
                count: 3,
                window_start: NOW
            }
        );
        let next = NOW.plus_secs(100);
        assert_eq!(
            db.counter_take(&key, 3, 100, next).await.unwrap(),
            Counted::Taken {
                count: 1,
                window_start: next
            }
        );
        db.counter_give_back(&key, NOW).await.unwrap(); // the old window: no-op
        assert_eq!(
            db.counter_take(&key, 3, 100, next).await.unwrap(),
            Counted::Taken {
                count: 2,
                window_start: next
            }
        );
        db.counter_give_back(&key, next).await.unwrap();
        db.counter_give_back(&key, next).await.unwrap();
        db.counter_give_back(&key, next).await.unwrap(); // never below zero
        assert_eq!(
            db.counter_take(&key, 3, 100, next).await.unwrap(),
            Counted::Taken {
                count: 1,
                window_start: next
            }
        );

        // Blocks outlast the window; a block on a missing counter does nothing.
        let until = next.plus_secs(900);
        db.counter_block(&key, until).await.unwrap();
        assert_eq!(
            db.counter_take(&key, 3, 100, next.plus_secs(1))
                .await
                .unwrap(),
            Counted::Limited { until, first: true }
        );
        assert_eq!(
            db.counter_take(&key, 3, 100, next.plus_secs(500))
                .await
                .unwrap(),
            Counted::Limited {
                until,
                first: false
            }
        );
        let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
        assert_eq!(raw[TTL], t(until));
        assert_eq!(
            db.counter_take(&key, 3, 100, until).await.unwrap(),
            Counted::Taken {
                count: 1,
                window_start: until
            }
        );
        let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
        assert_eq!(
            (raw[TTL].clone(), raw.contains_key("blocked_until")),
            (t(until.plus_secs(100)), false)
        );
        // A short block inside a long window keeps the window's TTL.
        db.counter_block(&key, until.plus_secs(10)).await.unwrap();
        let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
        assert_eq!(raw[TTL], t(until.plus_secs(100)));
        assert_eq!(
            db.counter_take(&key, 3, 100, until.plus_secs(5))
                .await
                .unwrap(),
            Counted::Limited {
                until: until.plus_secs(10),
                first: true,
            }
        );
        assert_eq!(
            db.counter_take(&key, 3, 100, until.plus_secs(10))
                .await
                .unwrap(),
            Counted::Taken {
                count: 2,
                window_start: until
            }
        );
        let fresh = moto::unique("pw#app#u");
        db.counter_block(&fresh, until).await.unwrap();
        assert_eq!(db.get("test", key_item(&fresh)).await.unwrap(), None);
        assert_eq!(
            db.counter_take(&fresh, 3, 100, NOW).await.unwrap(),
            Counted::Taken {
                count: 1,
                window_start: NOW
            }
        );

        // Concurrent takes on a fresh counter never exceed the limit.
        let key = moto::unique("txt-ip#1.2.3.4");
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (db, key) = (db.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                db.counter_take(&key, 4, 3600, NOW).await.unwrap()
            }));
        }
        let mut counts = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Counted::Taken {
                    count,
                    window_start,
                } => {
                    assert_eq!(window_start, NOW);
                    counts.push(count);
                }
                Counted::Limited { until, .. } => assert_eq!(until, NOW.plus_secs(3600)),
            }
        }
        counts.sort_unstable();
        assert_eq!(counts, vec![1, 2, 3, 4]);
    }

    fn challenge_change(p: &PhoneRecord) -> PhoneChange {
        PhoneChange::Challenge {
            phone_id: p.phone_id.clone(),
            number: p.number.clone(),
        }
    }

    fn key_item(k: &str) -> Item {
        key(counter_pk(k), SK_COUNTER)
    }

    /// An enrollment of `purpose` at the code step for `number`: the enrollment as the flow
    /// holds it, and its pending code.
    async fn at_code(
        db: &DynamoStore,
        app: &AppId,
        user: &UserId,
        purpose: Purpose,
        number: &str,
    ) -> (Enrollment, CodeId) {
        let e = Enrollment {
            purpose,
            ..new_enrollment(app, user)
        };
        db.create_enrollment(&e).await.unwrap();
        let code = pending(number, NOW.plus_secs(600));
        db.begin_send(&e, &send(&code, NOW)).await.unwrap().unwrap();
        let e = db.get_enrollment(app, user, &e.id).await.unwrap().unwrap();
        (e, code.code_id)
    }

    fn sks(items: &[Item]) -> Vec<String> {
        let mut sks: Vec<String> = items
            .iter()
            .map(|i| i[SK].as_s().unwrap().clone())
            .collect();
        sks.sort();
        sks
    }

    fn hashes(tag: &str, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| hex::encode(format!("{tag}-{i:04}")))
            .collect()
    }

    async fn recovery_sks(db: &DynamoStore, app: &AppId, user: &UserId) -> Vec<String> {
        sks(&db.query_partition("t", user_pk(app, user)).await.unwrap())
            .into_iter()
            .filter(|sk| sk.starts_with(RECOVERY_PREFIX))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
    async fn challenges_and_recovery_codes_against_moto() {
        let db = Arc::new(store().await);
        let app = AppId::parse("app-recovery").unwrap();
        let user = UserId::parse("user-1").unwrap();
        let other = UserId::parse("user-2").unwrap();

        // A sign-in challenge round trips with its purpose and phone.
        let ph = phone("+14155550101");
        let (ea, ca) = at_code(&db, &app, &user, Purpose::Enroll, "+14155550101").await;
        assert_eq!(
            db.complete_enrollment(&ea, &ca, &add(&ph, "tag-a", 0), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        let challenge = Purpose::Challenge(ph.phone_id.clone());
        let (ec, cc) = at_code(&db, &app, &user, challenge.clone(), "+14155550101").await;
        assert_eq!(ec.purpose, challenge);
        assert_eq!(ec.step, Step::Code);
        let raw = db
            .get("t", key(user_pk(&app, &user), enrollment_sk(&ec.id)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(raw["purpose"], s("challenge"));
        assert_eq!(raw["replace_phone_id"], s(ph.phone_id.as_str()));
        assert_eq!(db.get_enrollment(&app, &other, &ec.id).await.unwrap(), None);

        // Completing it changes nothing but the challenge: once, then CodeGone.
        let other_code = CodeId::generate().unwrap();
        let expiry = ec.pending.as_ref().unwrap().expires_at;
        for (code, at, why) in [(&other_code, NOW, "other code"), (&cc, expiry, "expired")] {
            assert_eq!(
                db.complete_enrollment(&ec, code, &challenge_change(&ph), at)
                    .await
                    .unwrap(),
                Completion::CodeGone,
                "{why}"
            );
        }
        assert_eq!(
            db.get_enrollment(&app, &user, &ec.id).await.unwrap(),
            Some(ec.clone())
        );
        assert_eq!(
            db.complete_enrollment(&ec, &cc, &challenge_change(&ph), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        assert_eq!(
            db.complete_enrollment(&ec, &cc, &challenge_change(&ph), NOW)
                .await
                .unwrap(),
            Completion::CodeGone
        );
        let done = db
            .get_enrollment(&app, &user, &ec.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (done.purpose, done.step, done.pending),
            (challenge.clone(), Step::Complete, None)
        );
        assert_eq!(
            db.take_code_attempt(&ec, &cc, 9, NOW).await.unwrap(),
            None,
            "completed"
        );
        assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph.clone()]);

        // Concurrent completions of one challenge: exactly one is Done.
        let (ec2, cc2) = at_code(&db, &app, &user, challenge.clone(), "+14155550101").await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (db, e, c, ph) = (db.clone(), ec2.clone(), cc2.clone(), ph.clone());
            tasks.push(tokio::spawn(async move {
                db.complete_enrollment(&e, &c, &challenge_change(&ph), NOW)
                    .await
                    .unwrap()
            }));
        }
        let mut done = 0;
        for task in tasks {
            match task.await.unwrap() {
                Completion::Done => done += 1,
                other => assert_eq!(other, Completion::CodeGone),
            }
        }
        assert_eq!(done, 1);

        // Recovery codes: none, then a set of ten, each usable once.
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
        let first = hashes("first", 10);
        db.replace_recovery_codes(&app, &user, &first, NOW)
            .await
            .unwrap();
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 10);
        assert_eq!(db.count_recovery_codes(&app, &other).await.unwrap(), 0);
        let mut expected: Vec<String> = first.iter().map(|h| recovery_sk(h)).collect();
        expected.sort();
        assert_eq!(recovery_sks(&db, &app, &user).await, expected);
        let item = db
            .get("t", key(user_pk(&app, &user), recovery_sk(&first[0])))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item["created_at"], t(NOW));
        assert!(!item.contains_key(TTL));
        assert!(
            db.consume_recovery_code(&app, &user, &first[0])
                .await
                .unwrap()
        );
        assert!(
            !db.consume_recovery_code(&app, &user, &first[0])
                .await
                .unwrap(),
            "used"
        );
        assert!(
            !db.consume_recovery_code(&app, &other, &first[1])
                .await
                .unwrap(),
            "another user's"
        );
        assert!(
            !db.consume_recovery_code(&app, &user, &"ee".repeat(32))
                .await
                .unwrap(),
            "unknown"
        );
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 9);

        // Concurrent uses of one code: exactly one succeeds.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (db, app, user, h) = (db.clone(), app.clone(), user.clone(), first[1].clone());
            tasks.push(tokio::spawn(async move {
                db.consume_recovery_code(&app, &user, &h).await.unwrap()
            }));
        }
        let mut used = 0;
        for task in tasks {
            used += u32::from(task.await.unwrap());
        }
        assert_eq!(used, 1);
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 8);

        // A new set replaces the old one: old codes no longer work. A hash in both sets (never
        // in practice) stays one code; a hash given twice is one code.
        let mut second = hashes("second", 9);
        second.push(first[5].clone());
        let mut given = second.clone();
        given.push(second[0].clone());
        db.replace_recovery_codes(&app, &user, &given, NOW.plus_secs(1))
            .await
            .unwrap();
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 10);
        for h in first.iter().filter(|h| **h != first[5]) {
            assert!(!db.consume_recovery_code(&app, &user, h).await.unwrap());
        }
        let set = db
            .get("t", key(user_pk(&app, &user), SK_RECOVERY_SET))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(set[GENERATION], n(2));
        assert!(
            db.consume_recovery_code(&app, &user, &first[5])
                .await
                .unwrap()
        );
        assert!(
            db.consume_recovery_code(&app, &user, &second[0])
                .await
                .unwrap()
        );
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 8);

        // Concurrent replacements: one whole set wins, never a mix.
        let sets: Vec<Vec<String>> = (0..4).map(|i| hashes(&format!("race{i}"), 10)).collect();
        let mut tasks = Vec::new();
        for set in sets.clone() {
            let (db, app, user) = (db.clone(), app.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                db.replace_recovery_codes(&app, &user, &set, NOW).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stored = recovery_sks(&db, &app, &user).await;
        assert!(
            sets.iter().any(|set| {
                let mut want: Vec<String> = set.iter().map(|h| recovery_sk(h)).collect();
                want.sort();
                want == stored
            }),
            "{stored:?}"
        );

        // A set too big for one transaction (the non-atomic fallback), then a normal one.
        db.replace_recovery_codes(&app, &user, &hashes("big", 150), NOW)
            .await
            .unwrap();
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 150);
        let last = hashes("last", 10);
        db.replace_recovery_codes(&app, &user, &last, NOW)
            .await
            .unwrap();
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 10);
        db.replace_recovery_codes(&app, &user, &[], NOW)
            .await
            .unwrap();
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
        db.replace_recovery_codes(&app, &user, &last, NOW)
            .await
            .unwrap();
        // A user without a phone keeps no set.
        assert!(
            !db.replace_recovery_codes(&app, &other, &first, NOW)
                .await
                .unwrap()
        );

        // Reset removes the codes (and the set item) with the phones and challenges.
        assert_eq!(db.reset_user(&app, &user).await.unwrap(), vec![ph]);
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
        assert!(
            !db.consume_recovery_code(&app, &user, &last[0])
                .await
                .unwrap()
        );
        assert_eq!(
            db.query_partition("t", user_pk(&app, &user)).await.unwrap(),
            vec![]
        );
        assert_eq!(db.count_recovery_codes(&app, &other).await.unwrap(), 0);
        // After a reset the user has no phone: a set is not kept.
        assert!(
            !db.replace_recovery_codes(&app, &user, &last, NOW)
                .await
                .unwrap()
        );
        assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
    async fn phones_reset_and_audit_against_moto() {
        let db = store().await;
        let app = AppId::parse("app-phones").unwrap();
        let user = UserId::parse("user-1").unwrap();
        let pk = user_pk(&app, &user);
        let raw = |sk: String| key(pk.clone(), sk);
        let number = |s: &str| PhoneNumber::parse(s).unwrap();
        let t2 = NOW.plus_secs(2);

        // The first phone, at count 0.
        let a = phone("+14155550101");
        let (ea, ca) = at_code(&db, &app, &user, Purpose::Enroll, "+14155550101").await;
        assert_eq!(
            db.complete_enrollment(&ea, &ca, &add(&a, "tag-a", 0), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
        assert_eq!(count[COUNT], n(1));
        let claim = db.get("t", raw(number_sk("tag-a"))).await.unwrap().unwrap();
        assert_eq!(claim["phone_id"], s(a.phone_id.as_str()));

        // Two adds that both saw one phone: the second finds the phones changed and its code
        // stays pending.
        let b = PhoneRecord {
            primary: false,
            label: Some("work".into()),
            verified_at: NOW.plus_secs(1),
            ..phone("+14155550102")
        };
        let c = PhoneRecord {
            primary: false,
            verified_at: t2,
            ..phone("+14155550103")
        };
        let (eb, cb) = at_code(&db, &app, &user, Purpose::Add, "+14155550102").await;
        let (ec, cc) = at_code(&db, &app, &user, Purpose::Add, "+14155550103").await;
        assert_eq!(
            db.complete_enrollment(&eb, &cb, &add(&b, "tag-b", 1), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        assert_eq!(
            db.complete_enrollment(&ec, &cc, &add(&c, "tag-c", 1), NOW)
                .await
                .unwrap(),
            Completion::PhonesChanged
        );
        assert_eq!(
            db.get_enrollment(&app, &user, &ec.id).await.unwrap(),
            Some(ec.clone())
        );
        assert_eq!(
            db.get("t", raw(number_sk("tag-c"))).await.unwrap(),
            None,
            "no claim left behind"
        );
        // A number the user has: NumberTaken before PhonesChanged; CodeGone before both.
        assert_eq!(
            db.complete_enrollment(&ec, &cc, &add(&c, "tag-a", 1), NOW)
                .await
                .unwrap(),
            Completion::NumberTaken
        );
        assert_eq!(
            db.complete_enrollment(&eb, &cb, &add(&c, "tag-a", 1), NOW)
                .await
                .unwrap(),
            Completion::CodeGone
        );
        assert_eq!(
            db.complete_enrollment(&ec, &cc, &add(&c, "tag-c", 2), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        assert_eq!(
            db.list_phones(&app, &user).await.unwrap(),
            vec![a.clone(), b.clone(), c.clone()]
        );

        // Replace, make-before-break: B keeps its number until the code is verified.
        let (er, cr) = at_code(
            &db,
            &app,
            &user,
            Purpose::Replace(b.phone_id.clone()),
            "+14155550104",
        )
        .await;
        assert_eq!(db.list_phones(&app, &user).await.unwrap()[1], b);
        let replace = |old: &str, old_tag: &str, new_tag: &str| PhoneChange::Replace {
            phone_id: b.phone_id.clone(),
            old_number: number(old),
            old_number_tag: old_tag.into(),
            new_number: number("+14155550104"),
            new_number_tag: new_tag.into(),
        };
        let t3 = NOW.plus_secs(3);
        assert_eq!(
            db.complete_enrollment(&er, &cr, &replace("+14155550109", "tag-b", "tag-d"), t3)
                .await
                .unwrap(),
            Completion::PhonesChanged,
            "stale old number"
        );
        assert_eq!(
            db.complete_enrollment(&er, &cr, &replace("+14155550102", "tag-b", "tag-c"), t3)
                .await
                .unwrap(),
            Completion::NumberTaken,
            "a number the user has"
        );
        assert_eq!(
            db.complete_enrollment(&er, &cr, &replace("+14155550102", "tag-b", "tag-b"), t3)
                .await
                .unwrap(),
            Completion::NumberTaken,
            "the same number"
        );
        let wrong_phone = PhoneChange::Replace {
            phone_id: PhoneId::generate().unwrap(),
            old_number: number("+14155550102"),
            old_number_tag: "tag-b".into(),
            new_number: number("+14155550104"),
            new_number_tag: "tag-d".into(),
        };
        assert_eq!(
            db.complete_enrollment(&er, &cr, &wrong_phone, t3)
                .await
                .unwrap(),
            Completion::PhonesChanged,
            "no such phone"
        );
        assert_eq!(db.list_phones(&app, &user).await.unwrap()[1], b);
        assert!(
            db.get("t", raw(number_sk("tag-b")))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            db.get_enrollment(&app, &user, &er.id).await.unwrap(),
            Some(er.clone())
        );
        assert_eq!(
            db.complete_enrollment(&er, &cr, &replace("+14155550102", "tag-b", "tag-d"), t3)
                .await
                .unwrap(),
            Completion::Done
        );
        let b = PhoneRecord {
            number: number("+14155550104"),
            verified_at: t3,
            ..b
        };
        let phones = db.list_phones(&app, &user).await.unwrap();
        assert_eq!(
            phones,
            vec![a.clone(), b.clone(), c.clone()],
            "b keeps its place"
        );
        assert_eq!(db.get("t", raw(number_sk("tag-b"))).await.unwrap(), None);
        let claim = db.get("t", raw(number_sk("tag-d"))).await.unwrap().unwrap();
        assert_eq!(claim["phone_id"], s(b.phone_id.as_str()));
        let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
        assert_eq!(count[COUNT], n(3), "a replace keeps the count");

        // The old number can be added again.
        let old_b = PhoneRecord {
            primary: false,
            verified_at: NOW.plus_secs(4),
            ..phone("+14155550102")
        };
        let (eo, co) = at_code(&db, &app, &user, Purpose::Add, "+14155550102").await;
        assert_eq!(
            db.complete_enrollment(&eo, &co, &add(&old_b, "tag-b", 3), NOW)
                .await
                .unwrap(),
            Completion::Done
        );

        // Labels.
        let labelled = db
            .set_phone_label(&app, &user, &c.phone_id, Some("desk".into()))
            .await
            .unwrap();
        let c = PhoneRecord {
            label: Some("desk".into()),
            ..c
        };
        assert_eq!(labelled, Some(c.clone()));
        let b_cleared = db
            .set_phone_label(&app, &user, &b.phone_id, None)
            .await
            .unwrap();
        let b = PhoneRecord { label: None, ..b };
        assert_eq!(b_cleared, Some(b.clone()));
        let ghost = PhoneId::generate().unwrap();
        assert_eq!(
            db.set_phone_label(&app, &user, &ghost, Some("x".into()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            db.set_phone_label(&app, &user, &ghost, None).await.unwrap(),
            None
        );
        assert_eq!(db.get("t", raw(phone_sk(&ghost))).await.unwrap(), None);
        assert_eq!(
            db.list_phones(&app, &user).await.unwrap(),
            vec![a.clone(), b.clone(), c.clone(), old_b.clone()]
        );

        // Primary.
        let primaries = |phones: Vec<PhoneRecord>| -> Vec<PhoneId> {
            phones
                .into_iter()
                .filter(|p| p.primary)
                .map(|p| p.phone_id)
                .collect()
        };
        let seen = db.list_phones(&app, &user).await.unwrap();
        assert!(
            db.set_primary(&app, &user, &b.phone_id, &seen)
                .await
                .unwrap()
        );
        assert_eq!(
            primaries(db.list_phones(&app, &user).await.unwrap()),
            vec![b.phone_id.clone()]
        );
        let a = PhoneRecord {
            primary: false,
            ..a
        };
        assert!(
            !db.set_primary(&app, &user, &c.phone_id, &seen)
                .await
                .unwrap(),
            "A is no longer primary"
        );
        let seen = db.list_phones(&app, &user).await.unwrap();
        assert!(
            !db.set_primary(&app, &user, &ghost, &seen).await.unwrap(),
            "no such phone"
        );
        assert!(
            !db.set_primary(&app, &user, &c.phone_id, &seen[..3])
                .await
                .unwrap(),
            "a phone missing from the view"
        );
        assert!(
            db.set_primary(&app, &user, &b.phone_id, &seen)
                .await
                .unwrap()
        );
        assert_eq!(db.get("t", raw(phone_sk(&ghost))).await.unwrap(), None);
        assert_eq!(
            primaries(db.list_phones(&app, &user).await.unwrap()),
            vec![b.phone_id.clone()]
        );

        // Removal: the primary B goes, C is promoted; a stale count or a gone phone refuses.
        let removal =
            |p: &PhoneRecord, tag: &str, seen: &[PhoneRecord], promote: Option<&PhoneRecord>| {
                Removal {
                    phone: p.clone(),
                    number_tag: tag.into(),
                    seen: seen.to_vec(),
                    promote: promote.map(|p| p.phone_id.clone()),
                }
            };
        let b = PhoneRecord { primary: true, ..b };
        let view = db.list_phones(&app, &user).await.unwrap();
        assert_eq!(view.len(), 4);
        assert!(
            !db.remove_phone(&app, &user, &removal(&b, "tag-d", &view[..3], Some(&c)))
                .await
                .unwrap(),
            "stale count"
        );
        assert!(
            !db.remove_phone(
                &app,
                &user,
                &removal(
                    &b,
                    "tag-d",
                    &view,
                    Some(&PhoneRecord {
                        phone_id: ghost.clone(),
                        ..c.clone()
                    })
                )
            )
            .await
            .unwrap(),
            "no phone to promote"
        );
        assert_eq!(db.list_phones(&app, &user).await.unwrap().len(), 4);
        assert!(
            db.get("t", raw(number_sk("tag-d")))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            db.remove_phone(&app, &user, &removal(&b, "tag-d", &view, Some(&c)))
                .await
                .unwrap()
        );
        let c = PhoneRecord { primary: true, ..c };
        assert_eq!(
            db.list_phones(&app, &user).await.unwrap(),
            vec![a.clone(), c.clone(), old_b.clone()]
        );
        assert_eq!(db.get("t", raw(number_sk("tag-d"))).await.unwrap(), None);
        assert!(
            !db.remove_phone(&app, &user, &removal(&b, "tag-d", &view, None))
                .await
                .unwrap(),
            "already removed"
        );
        assert!(
            db.remove_phone(
                &app,
                &user,
                &removal(
                    &old_b,
                    "tag-b",
                    &db.list_phones(&app, &user).await.unwrap(),
                    None
                )
            )
            .await
            .unwrap()
        );
        let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
        assert_eq!(count[COUNT], n(2));

        // Reset: phones, claims, the count and enrollments go; the profile and skip stay.
        db.put_user(&UserRecord {
            app_id: app.clone(),
            user_id: user.clone(),
            email: "u@example.com".into(),
            email_verified: true,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            updated_at: NOW,
        })
        .await
        .unwrap();
        db.put_skip(&app, &user, NOW.plus_secs(60)).await.unwrap();
        let (ep, cp) = at_code(&db, &app, &user, Purpose::Add, "+14155550105").await;
        let other = UserId::parse("user-2").unwrap();
        let d = phone("+14155550101");
        let (ed, cd) = at_code(&db, &app, &other, Purpose::Enroll, "+14155550101").await;
        assert_eq!(
            db.complete_enrollment(&ed, &cd, &add(&d, "tag-a", 0), NOW)
                .await
                .unwrap(),
            Completion::Done,
            "claims are per user"
        );
        assert_eq!(
            db.reset_user(&app, &user).await.unwrap(),
            vec![a.clone(), c.clone()]
        );
        assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![]);
        assert_eq!(db.get_enrollment(&app, &user, &ep.id).await.unwrap(), None);
        assert_eq!(
            sks(&db.query_partition("t", pk.clone()).await.unwrap()),
            vec![SK_PROFILE.to_owned(), SK_SKIP.to_owned()]
        );
        assert_eq!(
            db.complete_enrollment(&ep, &cp, &add(&phone("+14155550105"), "tag-e", 2), NOW)
                .await
                .unwrap(),
            Completion::CodeGone
        );
        assert_eq!(db.list_phones(&app, &other).await.unwrap(), vec![d.clone()]);
        assert_eq!(db.reset_user(&app, &user).await.unwrap(), vec![]);
        // Enrolling again starts from no phones, with the old numbers free.
        let (ea2, ca2) = at_code(&db, &app, &user, Purpose::Enroll, "+14155550101").await;
        assert_eq!(
            db.complete_enrollment(&ea2, &ca2, &add(&a, "tag-a", 0), NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        // Removing every phone leaves a count of 0, which an add at 0 accepts.
        assert!(
            db.remove_phone(
                &app,
                &user,
                &removal(&a, "tag-a", std::slice::from_ref(&a), None)
            )
            .await
            .unwrap()
        );
        let (ea3, ca3) = at_code(&db, &app, &user, Purpose::Add, "+14155550101").await;
        assert_eq!(
            db.complete_enrollment(&ea3, &ca3, &add(&a, "tag-a", 1), NOW)
                .await
                .unwrap(),
            Completion::PhonesChanged
        );
        assert_eq!(
            db.complete_enrollment(&ea3, &ca3, &add(&a, "tag-a", 0), NOW)
                .await
                .unwrap(),
            Completion::Done
        );

        // Audit: newest first, per user, in pages.
        let other_app = AppId::parse("app-other").unwrap();
        let ev = |i: u32, app: &AppId, user: Option<&UserId>| AuditEvent {
            app_id: app.clone(),
            id: format!("{:012}-{i:04}", NOW.0),
            at: NOW,
            actor: "arn:aws:iam::123456789012:user/admin".into(),
            action: format!("action.{i}"),
            user_id: user.cloned(),
            outcome: "ok".into(),
            details: format!(r#"{{"n":{i}}}"#),
            expires_at: NOW.plus_secs(86_400),
        };
        let events: Vec<AuditEvent> = (1..=7)
            .map(|i| ev(i, &app, [Some(&user), Some(&other), None][i as usize % 3]))
            .collect();
        // Appended out of order: the listing sorts by id.
        for i in [3, 0, 6, 1, 5, 2, 4] {
            db.append_audit(&events[i]).await.unwrap();
        }
        db.append_audit(&ev(9, &other_app, Some(&user)))
            .await
            .unwrap();
        let newest: Vec<AuditEvent> = events.iter().rev().cloned().collect();
        let page = db.list_audit(&app, None, 50, None, NOW).await.unwrap();
        assert_eq!(page.events, newest);
        assert_eq!(page.next_after, None);
        let page = db.list_audit(&app, None, 7, None, NOW).await.unwrap();
        assert_eq!((page.events.len(), page.next_after), (7, None));
        let mine: Vec<AuditEvent> = newest
            .iter()
            .filter(|e| e.user_id.as_ref() == Some(&user))
            .cloned()
            .collect();
        assert_eq!(mine.len(), 2);
        let page = db
            .list_audit(&app, Some(&user), 50, None, NOW)
            .await
            .unwrap();
        assert_eq!((page.events, page.next_after), (mine, None));
        let page = db
            .list_audit(&app, Some(&other), 2, None, NOW)
            .await
            .unwrap();
        assert_eq!(page.events, vec![events[6].clone(), events[3].clone()]);
        assert_eq!(page.next_after, Some(events[3].id.clone()));
        let page = db
            .list_audit(&app, Some(&other), 2, page.next_after.as_deref(), NOW)
            .await
            .unwrap();
        assert_eq!(
            (page.events, page.next_after),
            (vec![events[0].clone()], None)
        );
        // Pages of 3 across all 7.
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = db
                .list_audit(&app, None, 3, after.as_deref(), NOW)
                .await
                .unwrap();
            pages += 1;
            assert!(page.events.len() <= 3);
            if let Some(next) = &page.next_after {
                assert_eq!(Some(next), page.events.last().map(|e| &e.id));
            }
            seen.extend(page.events);
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!((seen, pages), (newest.clone(), 3));
        let page = db.list_audit(&app, None, 0, None, NOW).await.unwrap();
        assert_eq!((page.events, page.next_after), (vec![], None));
        let page = db
            .list_audit(&app, None, 10, Some(&events[0].id), NOW)
            .await
            .unwrap();
        assert_eq!((page.events, page.next_after), (vec![], None));
        let page = db
            .list_audit(&other_app, None, 10, None, NOW)
            .await
            .unwrap();
        assert_eq!(page.events, vec![ev(9, &other_app, Some(&user))]);
        let item = db
            .get("t", key(user_audit_pk(&app, &user), events[2].id.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item[TTL], t(NOW.plus_secs(86_400)));
        // Past their retention, events are hidden before TTL deletes them.
        let late = NOW.plus_secs(86_400);
        let page = db.list_audit(&app, None, 50, None, late).await.unwrap();
        assert_eq!((page.events, page.next_after), (vec![], None));
        let page = db
            .list_audit(&app, Some(&user), 50, None, late)
            .await
            .unwrap();
        assert_eq!(page.events, vec![]);
    }
}
