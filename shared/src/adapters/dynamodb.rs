//! The DynamoDB [`Store`]: one table, string keys `pk` and `sk`, and a numeric `ttl` (epoch
//! seconds) on every item that expires.
//!
//! | item | `pk` | `sk` | `ttl` |
//! |---|---|---|---|
//! | policy | `APP#{app}` | `POLICY` | none |
//! | user | `USER#{app}#{user}` | `PROFILE` | none |
//! | skip | `USER#{app}#{user}` | `SKIP` | the skip's end |
//! | phone | `USER#{app}#{user}` | `PHONE#{phone_id}` | none |
//! | number claim | `USER#{app}#{user}` | `NUMBER#{number_tag}` | none |
//! | enrollment | `USER#{app}#{user}` | `ENROLLMENT#{id}` | `expires_at` |
//! | counter | `COUNTER#{key}` | `COUNTER` | window end or block end, the later |
//!
//! Every read is strongly consistent. Every guard (single use, attempts, sends, counters,
//! the policy version) is a condition expression of the write itself, never a read followed
//! by a write. TTL deletion is lazy, so expiry is still checked in the conditions (and by the
//! flows for what they read). No code is stored in clear: an enrollment keeps `code_hash`.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};

use crate::adapters::aws::error_detail;
use crate::error::PortError;
use crate::ports::{
    Completion, Counted, Enrollment, NewSend, PendingCode, PhoneRecord, Purpose, Step, Store,
    UserRecord,
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

const SK_POLICY: &str = "POLICY";
const SK_PROFILE: &str = "PROFILE";
const SK_SKIP: &str = "SKIP";
const SK_COUNTER: &str = "COUNTER";
const PHONE_PREFIX: &str = "PHONE#";

fn phone_sk(id: &PhoneId) -> String {
    format!("{PHONE_PREFIX}{id}")
}

fn number_sk(tag: &str) -> String {
    format!("NUMBER#{tag}")
}

fn enrollment_sk(id: &EnrollmentId) -> String {
    format!("ENROLLMENT#{id}")
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
    item
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

/// An enrollment's item: expires (TTL) with the enrollment.
pub fn enrollment_to_item(e: &Enrollment) -> Item {
    let mut item = key(user_pk(&e.app_id, &e.user_id), enrollment_sk(&e.id));
    item.insert("enrollment_id".into(), s(e.id.as_str()));
    item.insert("app_id".into(), s(e.app_id.as_str()));
    item.insert("user_id".into(), s(e.user_id.as_str()));
    let purpose = match &e.purpose {
        Purpose::Enroll => "enroll",
        Purpose::Add => "add",
        Purpose::Replace(phone) => {
            item.insert("replace_phone_id".into(), s(phone.as_str()));
            "replace"
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
        "replace" => Purpose::Replace(parse_id(item, W, "replace_phone_id", PhoneId::parse)?),
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
        id: parse_id(item, W, "enrollment_id", EnrollmentId::parse)?,
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

impl DynamoStore {
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
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
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
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .send()
            .await;
        match result {
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
        if !self
            .put_if(
                "counter_take",
                counter_to_item(key_, &fresh),
                &condition,
                &x,
            )
            .await?
        {
            return Ok(None);
        }
        Ok(Some(if fresh.count == 0 {
            Counted::Limited {
                until: fresh.window_end,
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
impl Store for DynamoStore {
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
                phones.push(phone_from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // The sort key orders by random id; show phones in the order they were verified,
        // as the in-memory store does.
        phones.sort_by(|a, b| {
            (a.verified_at, a.phone_id.as_str()).cmp(&(b.verified_at, b.phone_id.as_str()))
        });
        Ok(phones)
    }

    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError> {
        let mut x = Expr::default();
        let condition = format!("attribute_not_exists({})", x.name(PK));
        if self
            .put_if(
                "create_enrollment",
                enrollment_to_item(enrollment),
                &condition,
                &x,
            )
            .await?
        {
            Ok(())
        } else {
            Err(PortError::new(
                "dynamodb create_enrollment: enrollment id collision",
            ))
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

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(enrollment_key(enrollment)))
            .update_expression(update)
            .condition_expression(conditions.join(" AND "))
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes {
                Some(old) => Ok(Some(enrollment_from_item(&old)?)),
                None => Err(PortError::new(
                    "dynamodb begin_send: no previous item returned",
                )),
            },
            Err(e) if update_ccf(&e).is_some() => Ok(None),
            Err(e) => Err(sdk_err("begin_send", &e)),
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(enrollment_key(enrollment)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let new = out.attributes.unwrap_or_default();
                Ok(Some(get_n(&new, "enrollment", ATTEMPTS)?))
            }
            Err(e) if update_ccf(&e).is_some() => Ok(None),
            Err(e) => Err(sdk_err("take_code_attempt", &e)),
        }
    }

    async fn complete_enrollment(
        &self,
        enrollment: &Enrollment,
        code_id: &CodeId,
        phone: &PhoneRecord,
        number_tag: &str,
        now: UnixTime,
    ) -> Result<Completion, PortError> {
        const OP: &str = "complete_enrollment";
        let (app, user) = (&enrollment.app_id, &enrollment.user_id);

        let mut x = Expr::default();
        let step = x.name("step");
        let now_v = x.value("now", t(now));
        let removed: Vec<String> = PENDING_ATTRS.iter().map(|a| x.name(a)).collect();
        let update = format!(
            "SET {step} = {} REMOVE {}",
            x.value("complete", s(Step::Complete.as_str())),
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
        let complete = Update::builder()
            .table_name(&self.table)
            .set_key(Some(enrollment_key(enrollment)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .build()
            .map_err(|e| build_err(OP, e))?;

        let mut absent = Expr::default();
        let absent_condition = format!("attribute_not_exists({})", absent.name(PK));
        let put_new = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(&absent_condition)
                .set_expression_attribute_names(absent.names())
                .build()
                .map_err(|e| build_err(OP, e))
        };
        let phone_put = put_new(phone_to_item(app, user, phone))?;
        let claim_put = put_new(number_claim_item(
            app,
            user,
            number_tag,
            &phone.phone_id,
            now,
        ))?;

        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(complete).build())
            .transact_items(TransactWriteItem::builder().put(phone_put).build())
            .transact_items(TransactWriteItem::builder().put(claim_put).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Completion::Done),
            Err(e) => e,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(tce)) =
            err.as_service_error()
        else {
            return Err(sdk_err(OP, &err));
        };
        let failed = |i: usize| {
            tce.cancellation_reasons().get(i).and_then(|r| r.code())
                == Some("ConditionalCheckFailed")
        };
        // The enrollment's condition comes first, as in the in-memory store: a code that is no
        // longer pending says nothing about the number.
        if failed(0) {
            Ok(Completion::CodeGone)
        } else if failed(2) {
            Ok(Completion::NumberTaken)
        } else if failed(1) {
            Err(PortError::new(
                "dynamodb complete_enrollment: phone id collision",
            ))
        } else {
            Err(sdk_err(OP, &err))
        }
    }

    async fn counter_take(
        &self,
        key_: &str,
        limit: u32,
        window_secs: u64,
        now: UnixTime,
    ) -> Result<Counted, PortError> {
        const OP: &str = "counter_take";
        for _ in 0..COUNTER_RETRIES {
            // Count one in the open window, unless it is full or the counter is blocked.
            let mut x = Expr::default();
            let count = x.name("count");
            let blocked = x.name("blocked_until");
            let now_v = x.value("now", t(now));
            let update = format!("ADD {count} {}", x.value("one", n(1)));
            let condition = format!(
                "attribute_exists({pk}) AND {end} > {now_v} AND {count} < {limit} AND (attribute_not_exists({blocked}) OR {blocked} <= {now_v})",
                pk = x.name(PK),
                end = x.name("window_end"),
                limit = x.value("limit", n(limit)),
            );
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(counter_pk(key_), SK_COUNTER)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let old = match result {
                Ok(out) => {
                    let c = counter_from_item(&out.attributes.unwrap_or_default())?;
                    return Ok(Counted::Taken {
                        count: c.count,
                        window_start: c.window_start,
                    });
                }
                Err(e) => match update_ccf(&e) {
                    Some(Some(item)) => Some(item),
                    // No item came back: there is none, or this endpoint does not return it.
                    Some(None) => self.get(OP, key(counter_pk(key_), SK_COUNTER)).await?,
                    None => return Err(sdk_err(OP, &e)),
                },
            };
            let old = old.map(|item| counter_from_item(&item)).transpose()?;
            let opened = match &old {
                None => {
                    self.counter_open_window(key_, None, limit, window_secs, now)
                        .await?
                }
                Some(c) => {
                    if let Some(until) = c.blocked_until.filter(|u| *u > now) {
                        return Ok(Counted::Limited { until });
                    }
                    if c.window_end <= now {
                        self.counter_open_window(key_, Some(c), limit, window_secs, now)
                            .await?
                    } else if c.count >= limit {
                        return Ok(Counted::Limited {
                            until: c.window_end,
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(counter_pk(key_), SK_COUNTER)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(x.names())
            .set_expression_attribute_values(x.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another window (or nothing to give back): a no-op, as in memory.
            Err(e) if update_ccf(&e).is_some() => Ok(()),
            Err(e) => Err(sdk_err("counter_give_back", &e)),
        }
    }

    async fn counter_block(&self, key_: &str, until: UnixTime) -> Result<(), PortError> {
        // The item's TTL must outlive the block: raise it to `until` when the window ends
        // first, else leave it at the window's end. Only an existing counter is blocked.
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
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(counter_pk(key_), SK_COUNTER)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(x.names())
                .set_expression_attribute_values(x.values())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if update_ccf(&e).is_some() => continue,
                Err(e) => return Err(sdk_err("counter_block", &e)),
            }
        }
        Ok(())
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
        item.insert("number".into(), s("+1800555012"));
        let err = phone_from_item(&item).unwrap_err();
        assert!(!err.0.contains("800555012"), "{}", err.0);
        let mut e = enrollment_to_item(&enrollment(false));
        e.insert("sends".into(), s("many"));
        assert!(enrollment_from_item(&e).unwrap_err().0.contains("`sends`"));
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
            db.complete_enrollment(&e1, &c1.code_id, &ph, "tag-1", c1.expires_at)
                .await
                .unwrap(),
            Completion::CodeGone,
            "expired"
        );
        assert_eq!(
            db.complete_enrollment(&e1, &c2.code_id, &ph, "tag-1", NOW)
                .await
                .unwrap(),
            Completion::CodeGone,
            "other code"
        );
        assert_eq!(
            db.complete_enrollment(&e1, &c1.code_id, &ph, "tag-1", NOW)
                .await
                .unwrap(),
            Completion::Done
        );
        assert_eq!(
            db.complete_enrollment(&e1, &c1.code_id, &phone("+14155550123"), "tag-1", NOW)
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
        let again = new_enrollment(&app, &user);
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
            db.complete_enrollment(&again_code, &c5.code_id, &ph2, "tag-1", NOW)
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
            db.complete_enrollment(&again_code, &c5.code_id, &ph2, "tag-2", NOW)
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
        }
        assert_eq!(
            db.counter_take(&key, 3, 100, NOW.plus_secs(10))
                .await
                .unwrap(),
            Counted::Limited {
                until: NOW.plus_secs(100)
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
            Counted::Limited { until }
        );
        assert_eq!(
            db.counter_take(&key, 3, 100, next.plus_secs(500))
                .await
                .unwrap(),
            Counted::Limited { until }
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
                until: until.plus_secs(10)
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
                Counted::Limited { until } => assert_eq!(until, NOW.plus_secs(3600)),
            }
        }
        counts.sort_unstable();
        assert_eq!(counts, vec![1, 2, 3, 4]);
    }

    fn key_item(k: &str) -> Item {
        key(counter_pk(k), SK_COUNTER)
    }
}
