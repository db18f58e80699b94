//! Attribute names and values: the constants every item and expression names, and the
//! helpers that write and read typed values.

use std::fmt::Display;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::PortError;
use crate::types::{PhoneNumber, UnixTime};

use super::Item;

// Attribute names of the items (see the key table in the module doc).
pub(super) const ACTION: &str = "action";
pub(super) const ACTOR: &str = "actor";
pub(super) const ALLOWED_COUNTRIES: &str = "allowed_countries";
pub(super) const APP_ID: &str = "app_id";
pub(super) const AT: &str = "at";
pub(super) const AVAILABLE: &str = "available";
pub(super) const BLOCKED_UNTIL: &str = "blocked_until";
pub(super) const CLAIMED_AT: &str = "claimed_at";
pub(super) const CREATED_AT: &str = "created_at";
pub(super) const DETAILS: &str = "details";
pub(super) const EMAIL: &str = "email";
pub(super) const EMAIL_VERIFIED: &str = "email_verified";
pub(super) const ENDS_AT: &str = "ends_at";
pub(super) const ENABLED: &str = "enabled";
pub(super) const ENFORCEMENT: &str = "enforcement";
pub(super) const ENROLLMENT_ID: &str = "enrollment_id";
pub(super) const EXPIRES_AT: &str = "expires_at";
pub(super) const ID: &str = "id";
pub(super) const INCLUDE_IN_SIGNUP: &str = "include_in_signup";
pub(super) const LABEL: &str = "label";
pub(super) const LAST_SENT_AT: &str = "last_sent_at";
pub(super) const NUMBER: &str = "number";
pub(super) const OUTCOME: &str = "outcome";
pub(super) const PASSWORD_HASH: &str = "password_hash";
pub(super) const PHONE_ID: &str = "phone_id";
pub(super) const PRIMARY: &str = "primary";
pub(super) const PURPOSE: &str = "purpose";
pub(super) const SENDS: &str = "sends";
pub(super) const STARTED_AT: &str = "started_at";
pub(super) const STEP: &str = "step";
pub(super) const UNTIL: &str = "until";
pub(super) const UPDATED_AT: &str = "updated_at";
pub(super) const UPDATED_BY: &str = "updated_by";
pub(super) const USED_AT: &str = "used_at";
pub(super) const USER_ID: &str = "user_id";
pub(super) const VERIFIED_AT: &str = "verified_at";
pub(super) const VERSION: &str = "version";
pub(super) const WINDOW_END: &str = "window_end";
pub(super) const WINDOW_START: &str = "window_start";

/// The random token of the last single-item write of an item that counts or guards single
/// use. A write's condition refuses an item that already carries its own token: if the SDK
/// retries a write whose answer was lost after it was applied, the retry is refused, and the
/// token says the write had been applied (see [`Written::Replayed`]).
pub(super) const WRITE_TOKEN: &str = "write_token";

/// A recovery code's attribute: the token of the use that spent it. A used code stays (until
/// the set is replaced or reset) so that a retried use can tell it was its own.
pub(super) const USED_BY: &str = "used_by";

/// A counter's attribute: the window (`w{start}`) or block (`b{until}`) whose first refusal
/// was answered, so that only one refusal per window or block says `first`.
pub(super) const REFUSED: &str = "refused";

/// The recovery set item's attribute.
pub(super) const GENERATION: &str = "generation";

/// The phone count item's attribute.
pub(super) const COUNT: &str = "count";

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn t(v: UnixTime) -> AttributeValue {
    n(v.0)
}

pub(super) fn malformed(what: &str, attr: &str) -> PortError {
    PortError::new(format!(
        "dynamodb: malformed {what} item: attribute `{attr}` missing or of the wrong type"
    ))
}

pub(super) fn get_s<'a>(item: &'a Item, what: &str, attr: &str) -> Result<&'a str, PortError> {
    item.get(attr)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| malformed(what, attr))
}

pub(super) fn opt_s(item: &Item, attr: &str) -> Option<String> {
    item.get(attr).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn get_n<T: FromStr>(item: &Item, what: &str, attr: &str) -> Result<T, PortError> {
    opt_n(item, what, attr)?.ok_or_else(|| malformed(what, attr))
}

pub(super) fn opt_n<T: FromStr>(
    item: &Item,
    what: &str,
    attr: &str,
) -> Result<Option<T>, PortError> {
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

pub(super) fn get_t(item: &Item, what: &str, attr: &str) -> Result<UnixTime, PortError> {
    get_n(item, what, attr).map(UnixTime)
}

pub(super) fn opt_t(item: &Item, what: &str, attr: &str) -> Result<Option<UnixTime>, PortError> {
    Ok(opt_n(item, what, attr)?.map(UnixTime))
}

pub(super) fn get_bool(item: &Item, what: &str, attr: &str) -> Result<bool, PortError> {
    item.get(attr)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .ok_or_else(|| malformed(what, attr))
}

pub(super) fn stored_number(item: &Item, what: &str, attr: &str) -> Result<PhoneNumber, PortError> {
    // The error never carries the number itself.
    PhoneNumber::from_stored(get_s(item, what, attr)?).map_err(|_| {
        PortError::new(format!(
            "dynamodb: {what} item holds an invalid phone number in `{attr}`"
        ))
    })
}

pub(super) fn parse_id<T, E>(
    item: &Item,
    what: &str,
    attr: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, PortError> {
    parse(get_s(item, what, attr)?).map_err(|_| malformed(what, attr))
}

/// A phone item's attribute: when the phone was added (its first verification), which places
/// it in the user's list; `verified_at` moves with each replace.
pub(super) const FIRST_VERIFIED_AT: &str = "first_verified_at";

pub(super) const CODE_ID: &str = "code_id";

pub(super) const CODE_HASH: &str = "code_hash";

pub(super) const CODE_NUMBER: &str = "code_number";

pub(super) const CODE_LABEL: &str = "code_label";

pub(super) const CODE_EXPIRES_AT: &str = "code_expires_at";

pub(super) const ATTEMPTS: &str = "attempts";

pub(super) const PENDING_ATTRS: [&str; 6] = [
    CODE_ID,
    CODE_HASH,
    CODE_NUMBER,
    CODE_LABEL,
    CODE_EXPIRES_AT,
    ATTEMPTS,
];

/// The phone an enrollment is about: the phone a replace changes, or the phone a sign-in
/// challenge texted. Named for the first use, kept for the stored items.
pub(super) const PURPOSE_PHONE_ID: &str = "replace_phone_id";

/// An authenticator-app session's attempts (it has no pending code, hence no `attempts`).
pub(super) const APP_ATTEMPTS: &str = "app_attempts";

/// The authenticator app's id: on an app session (the app it sets up or signs in with) and on
/// the phone count item (the app bound).
pub(super) const TOTP_ID: &str = "totp_id";

/// The app's sealed secret (never the secret): on an app setup and on the phone count item.
pub(super) const TOTP_SEALED: &str = "totp_sealed";

/// An app setup's `first` (begun without a step-up: completes only for a user with no factor).
pub(super) const TOTP_FIRST: &str = "totp_first";

/// The bound app's label, on the phone count item (an app setup keeps it in `code_label`).
pub(super) const TOTP_LABEL: &str = "totp_label";

pub(super) const TOTP_VERIFIED_AT: &str = "totp_verified_at";

pub(super) const TOTP_LAST_USED_AT: &str = "totp_last_used_at";

/// The bound app's attributes on the phone count item: removing them unbinds it.
pub(super) const TOTP_ATTRS: [&str; 5] = [
    TOTP_ID,
    TOTP_SEALED,
    TOTP_LABEL,
    TOTP_VERIFIED_AT,
    TOTP_LAST_USED_AT,
];

/// A used step item's step (RFC 6238's `T`).
pub(super) const TOTP_STEP: &str = "totp_step";

/// The policy's second factors: a list of `"sms"` / `"totp"` (absent: `["sms"]`).
pub(super) const FACTORS: &str = "factors";

pub(super) const DISPLAY_NAME: &str = "display_name";

pub(super) const WEBOTP_DOMAIN: &str = "webotp_domain";

/// The policy's grace period in days (absent on items written before it existed: 0).
pub(super) const GRACE_PERIOD_DAYS: &str = "grace_period_days";

pub(super) const LOCALE: &str = "locale";
