//! Keys: partition and sort keys of every item (see the key table in the module doc).

use std::collections::HashMap;

use crate::types::ids::SessionId;
use crate::types::{AppId, PhoneId, UserId};

use super::Item;
use super::item::s;

/// The partition key attribute.
pub const PK: &str = "pk";

/// The sort key attribute.
pub const SK: &str = "sk";

/// The TTL attribute (epoch seconds), enabled on the table by `bootstrap`.
pub const TTL: &str = "ttl";

pub(super) fn app_pk(app: &AppId) -> String {
    format!("APP#{app}")
}

pub(super) fn user_pk(app: &AppId, user: &UserId) -> String {
    format!("USER#{app}#{user}")
}

pub(super) fn counter_pk(key: &str) -> String {
    format!("COUNTER#{key}")
}

/// The partition of one user's audit events (the application's are sharded: see
/// [`audit_shard_pk`](super::audit_shard_pk)).
pub fn user_audit_pk(app: &AppId, user: &UserId) -> String {
    format!("AUDIT#{app}#USER#{user}")
}

pub(super) const SK_POLICY: &str = "POLICY";

pub(super) const SK_PROFILE: &str = "PROFILE";

pub(super) const SK_SKIP: &str = "SKIP";

/// A user's enrollment grace (no TTL: it outlives its end, so that it never starts twice).
pub(super) const SK_GRACE: &str = "GRACE";

pub(super) const SK_COUNTER: &str = "COUNTER";

pub(super) const SK_PHONES: &str = "PHONES";

pub(super) const PHONE_PREFIX: &str = "PHONE#";

pub(super) const NUMBER_PREFIX: &str = "NUMBER#";

pub(super) const ENROLLMENT_PREFIX: &str = "ENROLLMENT#";

pub(super) const RECOVERY_PREFIX: &str = "RECOVERY#";

/// The recovery set item: its `generation` moves with every replacement, so that two
/// concurrent replacements never leave the union of their sets. Not under `RECOVERY#`.
pub(super) const SK_RECOVERY_SET: &str = "RECOVERY_SET";

/// A step an authenticator app's code was accepted at: used once per user.
pub(super) const TOTP_STEP_PREFIX: &str = "TOTP_STEP#";

pub(super) fn totp_step_sk(step: i64) -> String {
    format!("{TOTP_STEP_PREFIX}{step}")
}

pub(super) fn phone_sk(id: &PhoneId) -> String {
    format!("{PHONE_PREFIX}{id}")
}

pub(super) fn number_sk(tag: &str) -> String {
    format!("{NUMBER_PREFIX}{tag}")
}

/// A code session's key: an enrollment's or a sign-in challenge's, each under its own id.
pub(super) fn enrollment_sk(id: &SessionId) -> String {
    format!("{ENROLLMENT_PREFIX}{id}")
}

pub(super) fn recovery_sk(hash: &str) -> String {
    format!("{RECOVERY_PREFIX}{hash}")
}

/// FNV-1a (32-bit) of `s`: the stable hash that picks a shard (of the adoption counts, of the
/// audit log). Stable across releases and platforms, unlike `std`'s hasher.
pub(super) fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

pub(super) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}
