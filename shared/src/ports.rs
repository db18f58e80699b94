//! The small traits the flows run over, and the records they exchange.
//!
//! Every write that guards single use or a counter is one conditional operation of the store
//! (a DynamoDB condition expression, a compare under a lock in memory): the flows never read a
//! value, decide, and then write it back unconditionally.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::ids::CodeId;
use crate::types::{AppId, EnrollmentId, PhoneId, PhoneNumber, Policy, UnixTime, UserId};

/// What the service keeps of a platform account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub app_id: AppId,
    pub user_id: UserId,
    pub email: String,
    pub email_verified: bool,
    /// An argon2 PHC string. Never logged: `Debug` leaves it out.
    pub password_hash: String,
    pub updated_at: UnixTime,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("email_verified", &self.email_verified)
            .field("password_hash", &"<redacted>")
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// A verified phone: a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRecord {
    pub phone_id: PhoneId,
    pub number: PhoneNumber,
    pub label: Option<String>,
    pub primary: bool,
    pub verified_at: UnixTime,
}

/// Why an enrollment was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// The first phone (the Start → password → phone → code screens).
    Enroll,
    /// Another phone, from settings.
    Add,
    /// A new number for an existing phone, from settings.
    Replace(PhoneId),
    /// A sign-in challenge: a code to this phone proves the second factor. Its code is hashed
    /// under another purpose, so enrollment codes and challenge codes never stand for each other.
    Challenge(PhoneId),
}

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Phone,
    Code,
    Complete,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Phone => "phone",
            Step::Code => "code",
            Step::Complete => "complete",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        match s {
            "phone" => Some(Step::Phone),
            "code" => Some(Step::Code),
            "complete" => Some(Step::Complete),
            _ => None,
        }
    }
}

/// The code most recently texted for an enrollment. Only its keyed hash is kept, and `Debug`
/// leaves even that out.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingCode {
    pub code_id: CodeId,
    /// Hex HMAC-SHA256 of the code under the secret key, bound to `code_id`.
    pub code_hash: String,
    pub number: PhoneNumber,
    pub label: Option<String>,
    pub expires_at: UnixTime,
    /// Attempts taken against this code (each taken before its guess is compared).
    pub attempts: u32,
}

impl std::fmt::Debug for PendingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCode")
            .field("code_id", &self.code_id)
            .field("code_hash", &"<redacted>")
            .field("number", &self.number)
            .field("expires_at", &self.expires_at)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// An enrollment in progress (or just completed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: EnrollmentId,
    pub app_id: AppId,
    pub user_id: UserId,
    pub purpose: Purpose,
    pub step: Step,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Texts sent for this enrollment (first send, re-submitted numbers, resends).
    pub sends: u32,
    pub last_sent_at: Option<UnixTime>,
    pub pending: Option<PendingCode>,
}

impl Enrollment {
    /// A new enrollment at the phone step, with a fresh random id, live for `ttl_secs`.
    pub fn begin(
        app: &AppId,
        user: &UserId,
        purpose: Purpose,
        now: UnixTime,
        ttl_secs: u64,
    ) -> Result<Enrollment, getrandom::Error> {
        Ok(Enrollment {
            id: EnrollmentId::generate()?,
            app_id: app.clone(),
            user_id: user.clone(),
            purpose,
            step: Step::Phone,
            created_at: now,
            expires_at: now.plus_secs(ttl_secs),
            sends: 0,
            last_sent_at: None,
            pending: None,
        })
    }

    /// Expired enrollments are gone even if the table's TTL sweep has not removed them yet.
    pub fn is_live(&self, now: UnixTime) -> bool {
        now < self.expires_at
    }

    /// Live and not finished: what [`MAX_LIVE_ENROLLMENTS`] counts.
    pub fn is_open(&self, now: UnixTime) -> bool {
        self.is_live(now) && self.step != Step::Complete
    }
}

/// A text to send, with the guards that the store checks in the same write.
#[derive(Debug, Clone)]
pub struct NewSend {
    pub code: PendingCode,
    pub now: UnixTime,
    pub max_sends: u32,
    /// Refuse unless the last send was at or before this time (the resend cooldown).
    pub last_sent_at_most: Option<UnixTime>,
    /// Refuse unless this is still the pending code (a resend replaces one particular code).
    pub replaces: Option<CodeId>,
}

/// The phone change an enrollment commits when its code is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneChange {
    /// A new phone (the first, or another from settings). `seen_count` is how many phones the
    /// user had when the flow checked: the write fails if that changed meanwhile, so the limit
    /// and "the first phone is primary" hold under concurrent adds.
    Add {
        phone: PhoneRecord,
        number_tag: String,
        seen_count: u32,
    },
    /// A new number for an existing phone (make-before-break: the old number stayed in force
    /// until now). The write fails unless the phone still has `old_number`.
    Replace {
        phone_id: PhoneId,
        old_number: PhoneNumber,
        old_number_tag: String,
        new_number: PhoneNumber,
        new_number_tag: String,
    },
    /// A sign-in challenge: nothing changes but the completion, which holds only while the
    /// phone the code was texted to still exists and still carries `number` (a removed or
    /// replaced number proves nothing).
    Challenge {
        phone_id: PhoneId,
        number: PhoneNumber,
    },
}

/// What a completion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The enrollment is complete and the phone change stored.
    Done,
    /// The code was no longer pending (used by a concurrent request, replaced, or expired).
    CodeGone,
    /// The user already has this number.
    NumberTaken,
    /// The user's phones changed meanwhile (another add, replace or removal won the race).
    PhonesChanged,
}

/// A phone removal, with what the flow saw when it checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub phone: PhoneRecord,
    pub number_tag: String,
    /// Every phone the user had when checked (the removed one included), with its primary
    /// flag: the removal fails if the count or any primary flag changed meanwhile, so that a
    /// concurrent make-primary can never leave two primaries or none.
    pub seen: Vec<PhoneRecord>,
    /// The phone that becomes primary when the primary one goes (seen as not primary).
    pub promote: Option<PhoneId>,
}

impl Removal {
    /// Whether this removes the user's last phone (which also drops their recovery codes).
    pub fn is_last(&self) -> bool {
        self.seen.len() <= 1
    }
}

/// At most this many live (unexpired, unfinished) enrollments and sign-in challenges per
/// user: creating another ends the oldest, so a user's partition cannot be flooded.
pub const MAX_LIVE_ENROLLMENTS: usize = 3;

/// One entry of the audit log. Never holds a full number, a code or a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub app_id: AppId,
    /// Sorts events: the time, then a tie-breaker (see [`crate::flows::audit`]).
    pub id: String,
    pub at: UnixTime,
    /// The user id, or the admin's or operator's identity.
    pub actor: String,
    pub action: String,
    pub user_id: Option<UserId>,
    /// `ok`, `failed`, `blocked`.
    pub outcome: String,
    /// A JSON object, as text.
    pub details: String,
    /// When the table may forget it (TTL).
    pub expires_at: UnixTime,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The `id` of the last event returned, when more may follow.
    pub next_after: Option<String>,
}

/// What a counter answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// One unit taken; `window_start` identifies the window for a later release.
    Taken { count: u32, window_start: UnixTime },
    /// The limit is reached (or the counter is blocked) until `until`. `first` is true for
    /// exactly one refusal per window (or per block): the first after the limit was reached,
    /// recorded on the counter in the same conditional write, so that the caller audits a
    /// block once and only counts the refusals after it.
    Limited { until: UnixTime, first: bool },
}

/// The service's table, in domain terms.
///
/// Each method's guarantees are listed one a line, in the words of the case of
/// `shared/tests/store_contract.rs` that checks it on every store (in memory, and DynamoDB on
/// moto and on dynoxide). Times are the caller's `now`; what has expired is refused even
/// while DynamoDB's TTL has not deleted it.
#[async_trait]
pub trait Store: Send + Sync {
    /// The application's policy as last written.
    /// - policy never configured is none.
    async fn get_policy(&self, app: &AppId) -> Result<Option<Policy>, PortError>;
    /// Writes `policy` only if the stored version is still `expected_version` (0: none).
    /// Returns false when someone else wrote first.
    /// - a second first write of a policy loses;
    /// - put_policy with a stale version is refused (the stored policy stays).
    async fn put_policy(&self, policy: &Policy, expected_version: u64) -> Result<bool, PortError>;

    /// - put_user replaces the record (another user's is not found).
    async fn get_user(&self, app: &AppId, user: &UserId) -> Result<Option<UserRecord>, PortError>;
    /// - put_user replaces the record.
    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError>;
    /// The end of the user's skip as stored (the caller compares it with now).
    /// - put_skip replaces the end.
    async fn get_skip(&self, app: &AppId, user: &UserId) -> Result<Option<UnixTime>, PortError>;
    /// - put_skip replaces the end.
    async fn put_skip(&self, app: &AppId, user: &UserId, until: UnixTime) -> Result<(), PortError>;
    /// The user's phones.
    /// - phones are listed in the order first verified (the `verified_at` they were added
    ///   with; phones added in the same second come in an unspecified order);
    /// - a replaced phone keeps its place in the list.
    async fn list_phones(&self, app: &AppId, user: &UserId) -> Result<Vec<PhoneRecord>, PortError>;

    /// Stores a new enrollment or challenge. At most [`MAX_LIVE_ENROLLMENTS`] stay live per
    /// user (as of `enrollment.created_at`): the oldest live ones are ended in the same write.
    /// - an enrollment reads back as created, for its user only;
    /// - an enrollment id taken is an error (the stored one is untouched);
    /// - create_enrollment keeps at most 3 open (the oldest is ended; other users' stay);
    /// - finished and expired enrollments do not count toward the 3;
    /// - a finished enrollment stays complete until it expires.
    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError>;
    /// - an enrollment reads back as created, for its user only.
    async fn get_enrollment(
        &self,
        app: &AppId,
        user: &UserId,
        id: &EnrollmentId,
    ) -> Result<Option<Enrollment>, PortError>;
    /// Records a new pending code and counts the send, if and only if the enrollment is live,
    /// at `phone` or `code`, under its send limit and past `send.last_sent_at_most` and (for a
    /// resend) still holds `send.replaces`. Returns the enrollment as it was, or `None` when a
    /// guard refused (the caller re-reads to say why).
    /// - begin_send counts the send and returns the enrollment as it was;
    /// - begin_send refuses past max sends;
    /// - begin_send refuses inside the cooldown (and sends at its end);
    /// - begin_send refuses a replaced code;
    /// - begin_send refuses an expired, complete or missing enrollment (and creates none).
    async fn begin_send(
        &self,
        enrollment: &Enrollment,
        send: &NewSend,
    ) -> Result<Option<Enrollment>, PortError>;
    /// Puts `previous` back, if `failed` is still the pending code: a text that could not be
    /// sent leaves the enrollment, its send count and its earlier code as they were.
    /// - undo_send restores the previous code (or the enrollment as created);
    /// - undo_send does nothing once the failed code is not pending (a newer send, a
    ///   completion).
    async fn undo_send(&self, previous: &Enrollment, failed: &CodeId) -> Result<(), PortError>;
    /// Takes one attempt against the pending code `code_id`, if it is still pending, unexpired
    /// and has fewer than `max` attempts. Returns the attempts taken so far, or `None`.
    /// - take_code_attempt counts up to max;
    /// - a burned code takes no attempt;
    /// - take_code_attempt refuses a replaced code;
    /// - take_code_attempt refuses an expired code (or an expired enrollment).
    async fn take_code_attempt(
        &self,
        enrollment: &Enrollment,
        code_id: &CodeId,
        max: u32,
        now: UnixTime,
    ) -> Result<Option<u32>, PortError>;
    /// Atomically: marks the enrollment complete (if `code_id` is still its pending code and
    /// both are unexpired) and commits `change` with its number claims. Anything but `Done`
    /// writes nothing (the code stays pending).
    /// - complete_enrollment adds the phone;
    /// - complete_enrollment is single use (also when two complete at once);
    /// - complete_enrollment refuses a replaced or expired code (`CodeGone`);
    /// - a number claimed by the user is refused (`NumberTaken`);
    /// - number claims are per user;
    /// - phones changed meanwhile refuse an add (`PhonesChanged`);
    /// - an enroll never adds to a user with a phone;
    /// - a replace moves the number and its claims (label, primary and place stay);
    /// - a replace of a number changed meanwhile is refused (or of a removed phone);
    /// - a replace to a number the user has is number taken;
    /// - a challenge completes only while its phone keeps the number;
    /// - a gone code comes before a taken number before changed phones (when several hold).
    async fn complete_enrollment(
        &self,
        enrollment: &Enrollment,
        code_id: &CodeId,
        change: &PhoneChange,
        now: UnixTime,
    ) -> Result<Completion, PortError>;

    /// Sets or clears a phone's label. `None` when the user has no such phone.
    /// - set_phone_label sets and clears (an unknown phone is `None`, and nothing is created).
    async fn set_phone_label(
        &self,
        app: &AppId,
        user: &UserId,
        phone_id: &PhoneId,
        label: Option<String>,
    ) -> Result<Option<PhoneRecord>, PortError>;
    /// Makes `phone_id` the only primary phone, atomically, if the user's phones are still
    /// `seen` (the same count, each with the primary flag seen). False when they changed.
    /// - set_primary leaves exactly one primary (also from none, or of the primary itself);
    /// - set_primary refuses when the phones changed (a flag, the count, an unknown phone).
    async fn set_primary(
        &self,
        app: &AppId,
        user: &UserId,
        phone_id: &PhoneId,
        seen: &[PhoneRecord],
    ) -> Result<bool, PortError>;
    /// Removes a phone and its number claim (and promotes another to primary), atomically;
    /// the last phone takes the user's recovery codes with it in the same write. False when
    /// the user's phones changed since the flow looked.
    /// - remove_phone releases the number and promotes;
    /// - remove_phone refuses when the phones changed (a flag, the number, the count);
    /// - remove_phone promotes only another phone not primary;
    /// - remove_phone of the last phone drops recovery codes (for good).
    async fn remove_phone(
        &self,
        app: &AppId,
        user: &UserId,
        removal: &Removal,
    ) -> Result<bool, PortError>;
    /// The admin reset: removes every phone, number claim, enrollment and challenge (pending
    /// codes with them) and every recovery code of the user. Returns the phones removed.
    /// - reset_user removes everything and returns the phones (in list order; the profile
    ///   and other users stay; the user enrolls again as new);
    /// - reset_user of a user with nothing is empty.
    async fn reset_user(&self, app: &AppId, user: &UserId) -> Result<Vec<PhoneRecord>, PortError>;

    /// Replaces the user's recovery codes (keyed hashes) with `hashes`, atomically, if the
    /// user has a phone at the moment of the write. False (nothing written) when they have
    /// none: a set made while the last phone is removed never survives the removal.
    /// - replace_recovery_codes needs a phone;
    /// - replace_recovery_codes replaces the whole set (a kept hash is unused again);
    /// - a duplicated recovery hash is one code.
    async fn replace_recovery_codes(
        &self,
        app: &AppId,
        user: &UserId,
        hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, PortError>;
    /// Uses the recovery code with this hash: true exactly once per code, even under races,
    /// and still true when the store's own retry repeats a use whose answer was lost.
    /// - consume_recovery_code is true exactly once (never for an unknown or another user's).
    async fn consume_recovery_code(
        &self,
        app: &AppId,
        user: &UserId,
        hash: &str,
    ) -> Result<bool, PortError>;
    /// How many unused recovery codes the user has.
    /// - count_recovery_codes counts unused only.
    async fn count_recovery_codes(&self, app: &AppId, user: &UserId) -> Result<u32, PortError>;

    /// Appends an event to the application's audit log; its `id` is its key.
    /// - an event appended twice is one event.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), PortError>;
    /// Events newest first, optionally of one user, after the event `after` (a previous page's
    /// `next_after`). Events past their `expires_at` at `now` are left out, even while the
    /// table's TTL has not deleted them yet.
    /// - list_audit is newest first and pages (`next_after` only when more follow);
    /// - list_audit per user;
    /// - list_audit hides expired events;
    /// - list_audit is per application.
    async fn list_audit(
        &self,
        app: &AppId,
        user: Option<&UserId>,
        limit: u32,
        after: Option<&str>,
        now: UnixTime,
    ) -> Result<AuditPage, PortError>;

    /// Takes one unit from the fixed window counter `key` (the window opens at the first unit
    /// and lasts `window_secs`), unless `limit` units are taken or the counter is blocked.
    /// - counter_take refuses at the limit, first once (per window);
    /// - counter_take opens a new window after the old one (at its first unit).
    async fn counter_take(
        &self,
        key: &str,
        limit: u32,
        window_secs: u64,
        now: UnixTime,
    ) -> Result<Counted, PortError>;
    /// Gives one unit back to the window that opened at `window_start` (no-op for a newer one).
    /// - counter_give_back only to its window (never below zero, never creating a counter).
    async fn counter_give_back(&self, key: &str, window_start: UnixTime) -> Result<(), PortError>;
    /// Blocks the counter until `until` (the password lockout); a counter never taken is left
    /// alone.
    /// - counter_block refuses until its end, first once (per block).
    async fn counter_block(&self, key: &str, until: UnixTime) -> Result<(), PortError>;
}

/// Sends text messages.
#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send_sms(&self, to: &PhoneNumber, body: &str) -> Result<(), PortError>;
}

/// An email with a text and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Sends email.
#[async_trait]
pub trait EmailSender: Send + Sync {
    async fn send_email(&self, email: &Email) -> Result<(), PortError>;
}

/// Reads secret values (once per cold start; the service keeps what it read).
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret_string(&self, id: &str) -> Result<String, PortError>;
}

/// The time. Tests use a fixed clock they move by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixTime;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until moved.
#[derive(Debug, Default)]
pub struct FixedClock(std::sync::atomic::AtomicI64);

impl FixedClock {
    pub fn at(t: i64) -> FixedClock {
        FixedClock(std::sync::atomic::AtomicI64::new(t))
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}
