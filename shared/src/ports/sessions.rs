//! Code sessions (enrollments and sign-in challenges): a pending code and its guards.

use async_trait::async_trait;

use super::phones::PhoneRecord;
use crate::error::PortError;
use crate::totp::Sealed;
use crate::types::ids::{ChallengeId, CodeId, SessionId};
use crate::types::{
    AppId, AuthenticatorId, EnrollmentId, Owner, PhoneId, PhoneNumber, UnixTime, UserId,
};

/// An authenticator app being set up: its secret (sealed for this user and authenticator id)
/// waits here until the app's first code proves it was scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSetup {
    pub authenticator: AuthenticatorId,
    pub sealed: Sealed,
    pub label: Option<String>,
    /// Begun without a step-up proof, because the user had no factor: it may then only bind a
    /// *first* factor, so the store completes it only while the user still has no phone and no
    /// app (someone holding only the password cannot begin it before the owner enrolls and
    /// complete it after).
    pub first: bool,
}

/// What a code session is for: three kinds of phone enrollment, an authenticator app's setup,
/// and the sign-in challenge by text or by app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    /// The first phone (the Start → password → phone → code screens).
    Enroll,
    /// Another phone, from settings.
    Add,
    /// A new number for an existing phone, from settings.
    Replace(PhoneId),
    /// A sign-in challenge: a code to this phone proves the second factor. Its code is hashed
    /// under another purpose, so enrollment codes and challenge codes never stand for each other.
    SignIn(PhoneId),
    /// An authenticator app's setup (an enrollment id; completed by the app's code, never
    /// texted). It is created at the code step, with no pending code: its attempts are
    /// [`Enrollment::app_attempts`].
    AppSetup(AppSetup),
    /// A sign-in challenge answered with the code of this authenticator app (no text).
    AppSignIn(AuthenticatorId),
}

impl SessionKind {
    /// A sign-in challenge (keyed by a [`ChallengeId`]), not an enrollment.
    pub fn is_sign_in(&self) -> bool {
        matches!(self, SessionKind::SignIn(_) | SessionKind::AppSignIn(_))
    }

    /// Answered by an authenticator app's code (no text, no pending code).
    pub fn is_app(&self) -> bool {
        matches!(self, SessionKind::AppSetup(_) | SessionKind::AppSignIn(_))
    }
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

/// A code session in progress (or just completed): an enrollment, or a sign-in challenge
/// (its kind `SignIn`, its id a [`SessionId::SignIn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: SessionId,
    pub app_id: AppId,
    pub user_id: UserId,
    pub kind: SessionKind,
    pub step: Step,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Texts sent for this enrollment (first send, re-submitted numbers, resends).
    pub sends: u32,
    pub last_sent_at: Option<UnixTime>,
    pub pending: Option<PendingCode>,
    /// Attempts taken against an authenticator-app session (which has no pending code); 0 for
    /// the others.
    pub app_attempts: u32,
}

impl Enrollment {
    /// A new session live for `ttl_secs`, with a fresh random id of its kind (a challenge id for
    /// a sign-in, an enrollment id otherwise): at the phone step, or for an authenticator app
    /// at the code step (nothing is texted).
    pub fn begin(
        app: &AppId,
        user: &UserId,
        kind: SessionKind,
        now: UnixTime,
        ttl_secs: u64,
    ) -> Result<Enrollment, getrandom::Error> {
        let id = if kind.is_sign_in() {
            SessionId::SignIn(ChallengeId::generate()?)
        } else {
            SessionId::Enrollment(EnrollmentId::generate()?)
        };
        Ok(Enrollment {
            id,
            app_id: app.clone(),
            user_id: user.clone(),
            step: if kind.is_app() {
                Step::Code
            } else {
                Step::Phone
            },
            kind,
            created_at: now,
            expires_at: now.plus_secs(ttl_secs),
            sends: 0,
            last_sent_at: None,
            pending: None,
            app_attempts: 0,
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

    /// The user (of the application) the session is for.
    pub fn owner(&self) -> Owner<'_> {
        Owner {
            app: &self.app_id,
            user: &self.user_id,
        }
    }

    /// A use of this session's pending code `code_id` at `now`.
    pub fn code_use<'a>(&'a self, code_id: &'a CodeId, now: UnixTime) -> CodeUse<'a> {
        CodeUse {
            enrollment: self,
            code_id,
            now,
        }
    }
}

/// A use of a session's pending code at `now`: an attempt against it, or the completion it
/// proves. Either holds only while `code_id` is still the pending code of `enrollment` and both
/// are unexpired at `now`.
#[derive(Debug, Clone, Copy)]
pub struct CodeUse<'a> {
    pub enrollment: &'a Enrollment,
    pub code_id: &'a CodeId,
    pub now: UnixTime,
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
    /// and "the first phone is primary" hold under concurrent adds. A first phone
    /// (`seen_count` 0) also holds only while the user's app is still as `app_seen` says
    /// (whether it enrolls the user is counted in the same write).
    Add {
        phone: PhoneRecord,
        number_tag: String,
        seen_count: u32,
        app_seen: bool,
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

impl PhoneChange {
    /// The tag of the number this change claims for the user (an added phone's, a replace's
    /// new number's); a challenge claims none.
    pub fn claimed_tag(&self) -> Option<&str> {
        match self {
            PhoneChange::Add { number_tag, .. } => Some(number_tag),
            PhoneChange::Replace { new_number_tag, .. } => Some(new_number_tag),
            PhoneChange::Challenge { .. } => None,
        }
    }
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

/// At most this many live (unexpired, unfinished) enrollments and sign-in challenges per
/// user: creating another ends the oldest, so a user's partition cannot be flooded.
pub const MAX_LIVE_ENROLLMENTS: usize = 3;

/// Enrollments and challenges: each guarded write is one conditional operation.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - an enrollment reads back as created, for its user only;
/// - an enrollment id taken is an error (the stored one is untouched);
/// - create_enrollment keeps at most 3 open (the oldest is ended; other users' stay);
/// - finished and expired enrollments do not count toward the 3;
/// - a finished enrollment stays complete until it expires;
/// - begin_send counts the send and returns the enrollment as it was;
/// - begin_send refuses past max sends;
/// - begin_send refuses inside the cooldown (and sends at its end);
/// - begin_send refuses a replaced code;
/// - begin_send refuses an expired, complete or missing enrollment (and creates none);
/// - undo_send restores the previous code (or the enrollment as created);
/// - undo_send does nothing once the failed code is not pending;
/// - take_code_attempt counts up to max;
/// - a burned code takes no attempt;
/// - take_code_attempt refuses a replaced code;
/// - take_code_attempt refuses an expired code (or an expired enrollment);
/// - complete_enrollment adds the phone;
/// - complete_enrollment is single use (also when two complete at once);
/// - complete_enrollment refuses a replaced or expired code (`CodeGone`);
/// - a number claimed by the user is refused (`NumberTaken`);
/// - number claims are per user;
/// - phones changed meanwhile refuse an add (`PhonesChanged`);
/// - an enroll never adds to a user with a phone (or an app);
/// - a replace moves the number and its claims (label, primary and place stay);
/// - a replace of a number changed meanwhile is refused (or of a removed phone);
/// - a replace to a number the user has is number taken;
/// - a challenge completes only while its phone keeps the number;
/// - a gone code comes before a taken number before changed phones (when several hold).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new enrollment or challenge. At most [`MAX_LIVE_ENROLLMENTS`] stay live per
    /// user (as of `enrollment.created_at`): the oldest live ones are ended in the same write.
    /// - an enrollment reads back as created, for its user only;
    /// - an enrollment id taken is an error (the stored one is untouched);
    /// - create_enrollment keeps at most 3 open (the oldest is ended; other users' stay);
    /// - finished and expired enrollments do not count toward the 3;
    /// - a finished enrollment stays complete until it expires.
    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError>;
    /// - an enrollment reads back as created, for its user only (and under its own id only:
    ///   the same random part under the other kind's prefix finds nothing).
    async fn get_enrollment(
        &self,
        owner: Owner<'_>,
        id: &SessionId,
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
    /// Takes one attempt against the pending code `code.code_id`, if it is still pending,
    /// unexpired and has fewer than `max` attempts. Returns the attempts taken so far, or `None`.
    /// - take_code_attempt counts up to max;
    /// - a burned code takes no attempt;
    /// - take_code_attempt refuses a replaced code;
    /// - take_code_attempt refuses an expired code (or an expired enrollment).
    async fn take_code_attempt(
        &self,
        code: CodeUse<'_>,
        max: u32,
    ) -> Result<Option<u32>, PortError>;
    /// Atomically: marks the enrollment complete (if `code.code_id` is still its pending code and
    /// both are unexpired) and commits `change` with its number claims. Anything but `Done`
    /// writes nothing (the code stays pending).
    /// - complete_enrollment adds the phone;
    /// - complete_enrollment is single use (also when two complete at once);
    /// - complete_enrollment refuses a replaced or expired code (`CodeGone`);
    /// - a number claimed by the user is refused (`NumberTaken`);
    /// - number claims are per user;
    /// - phones changed meanwhile refuse an add (`PhonesChanged`);
    /// - an enroll never adds to a user with a phone (or an app);
    /// - a replace moves the number and its claims (label, primary and place stay);
    /// - a replace of a number changed meanwhile is refused (or of a removed phone);
    /// - a replace to a number the user has is number taken;
    /// - a challenge completes only while its phone keeps the number;
    /// - a gone code comes before a taken number before changed phones (when several hold).
    async fn complete_enrollment(
        &self,
        code: CodeUse<'_>,
        change: &PhoneChange,
    ) -> Result<Completion, PortError>;
}
