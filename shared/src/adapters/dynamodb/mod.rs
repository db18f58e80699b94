//! The DynamoDB [`Store`](crate::ports::Store): one table, string keys `pk` and `sk`, and a numeric `ttl` (epoch
//! seconds) on every item that expires.
//!
//! | item | `pk` | `sk` | `ttl` | attributes that guard retries and races |
//! |---|---|---|---|---|
//! | policy | `APP#{app}` | `POLICY` | none | `version` |
//! | user | `USER#{app}#{user}` | `PROFILE` | none | |
//! | skip | `USER#{app}#{user}` | `SKIP` | the skip's end | |
//! | enrollment grace | `USER#{app}#{user}` | `GRACE` | none | `started_at`, `ends_at` set only if absent |
//! | phone | `USER#{app}#{user}` | `PHONE#{phone_id}` | none | `number`, `primary` |
//! | number claim | `USER#{app}#{user}` | `NUMBER#{number_tag}` | none | |
//! | phone count and authenticator app | `USER#{app}#{user}` | `PHONES` | none | `count`, `totp_id` |
//! | enrollment or sign-in challenge | `USER#{app}#{user}` | `ENROLLMENT#{id}` | `expires_at` | `write_token` |
//! | used authenticator-app step | `USER#{app}#{user}` | `TOTP_STEP#{step}` | until the step can no longer be accepted | |
//! | recovery code | `USER#{app}#{user}` | `RECOVERY#{keyed hash}` | none | `used_by`, `used_at` once used |
//! | recovery set | `USER#{app}#{user}` | `RECOVERY_SET` | none | `generation` |
//! | counter | `COUNTER#{key}` | `COUNTER` | window end or block end, the later | `write_token`, `refused` |
//! | audit event | `AUDIT#{app}#{shard}`, shard 0–63 by a hash of the id | `{event id}` | `expires_at` | |
//! | audit event, by user | `AUDIT#{app}#USER#{user}` | `{event id}` | `expires_at` | |
//! | adoption totals | `STATS#{app}#{shard}` | `TOTAL` | none | moved only inside the transaction of the change they count |
//! | skips of a day, texts of an hour | `STATS#{app}#{shard}` | `SKIPS#{day}`, `TEXTS#{hour}` | a day after no window reaches them | |
//!
//! Attributes that make retried writes harmless: a counter, an enrollment or challenge carries
//! `write_token` (the random token of its last counting or completing write, which a retried
//! write recognises as its own) and a counter `refused` (the window or block whose first
//! refusal was answered); a used recovery code carries `used_by` (the token of the use) and
//! `used_at` until its set is replaced or reset, and only codes without `used_by` count.
//!
//! The phone count item (`count`) moves with every phone added or removed, in the same
//! transaction: conditions on it make "at most N phones", "the first phone is primary" and
//! removals hold under concurrent changes. The same item holds the user's authenticator app
//! (at most one): `totp_id`, `totp_sealed` (the secret sealed, never in clear), `totp_label`,
//! `totp_verified_at`, `totp_last_used_at`. So every "which factors does the user have" guard
//! is one condition on one item: a first setup and an enroll complete only with no `count`
//! (or 0) and no `totp_id`; the last phone's removal pins `totp_id` present or absent as the
//! flow saw it; an app's removal pins `totp_id` and the count; a recovery set needs `count >
//! 0 OR attribute_exists(totp_id)`; and the reset deletes the item at the count and app it
//! read. No `count` (an item holding only an app) counts as 0. An app session is an
//! enrollment item with purpose `totp` (a setup: `totp_id`, `totp_sealed`, its label in
//! `code_label`, `totp_first`) or `totp_challenge` (a sign-in: `totp_id`), counting
//! `app_attempts`; its completion is one transaction of the session (complete, with its
//! `write_token`), a used step item put only where none is (its failure: the step was used)
//! and the update of the app on the phone count item (bound or replaced by a setup, its
//! `totp_last_used_at` moved by a sign-in only while `totp_id` is the app signed in with). A phone item's `first_verified_at` (set when it is
//! added, left by a replace) places it in the user's list. Ids never hold `#`, so the key prefixes never
//! collide. An audit event is written twice (one transaction): under the application, in the
//! shard partition of its id ([`AUDIT_SHARDS`] of them, so that one big tenant's events do
//! not meet in one partition: see `audit.rs`), and, when it names a user, under that user; a
//! user's listing is one query and the application's one query per shard merged, both newest
//! first (event ids sort by time). The former unsharded `AUDIT#{app}` is no longer read: no
//! deployment older than the shards exists. A sign-in challenge is an enrollment item with purpose
//! `challenge` (and the phone in `replace_phone_id`, as for a replace); its completion is a
//! transaction with a ConditionCheck that the phone still carries the number the code went to.
//! Creating one ends (deletes) the user's oldest open ones beyond [`MAX_LIVE_ENROLLMENTS`](crate::ports::MAX_LIVE_ENROLLMENTS) and
//! sweeps a few expired ones, in the same transaction (a finished one stays until it expires). A recovery code is one
//! item whose sort key holds its keyed hash, so that using it is one conditional update
//! (marked `used_by`, never deleted until its set goes); the recovery set item's `generation`
//! moves with every replacement and with the removal of the last factor (the last phone with
//! no app, or the app with no phone), and the reset deletes it only at the generation it
//! read, so a set made concurrently with either never survives it; a replacement also checks
//! that the user has a factor (a phone count above 0 or an app). Make-primary and removals
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

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

mod audit;
mod authenticators;
mod counters;
pub mod footprint;
mod item;
mod keys;
mod phones;
mod policy;
mod recovery;
mod request;
mod sessions;
mod stats;
mod transact;
mod users;

pub use audit::{AUDIT_SHARDS, audit_shard_of, audit_shard_pk};
pub use keys::{PK, SK, TTL, user_audit_pk};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

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

#[cfg(test)]
mod moto_tests;
#[cfg(test)]
mod tests;
