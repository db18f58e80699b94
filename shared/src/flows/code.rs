//! The code lifecycle that enrollments and sign-in challenges share: load the session, text a
//! code (budgets, the store's guarded write, SNS, the undo), resend it, check a guess, and say
//! why the store refused. What differs (what a session is for, what a right code commits) lives
//! in [`super::enrollment`] and [`super::challenge`].
//!
//! Every guard is checked twice: first against a fresh read, to give the precise error, then
//! again inside the store's conditional write, so that concurrent requests cannot slip past.
//! When the write refuses, the session is read again and the same checks say why.

use serde::Serialize;
use serde_json::json;

use crate::error::{MfaError, PortError};
use crate::metrics::{Metric, Reason};
use crate::ports::{Enrollment, NewSend, PendingCode, SessionKind, Step};
use crate::service::Service;
use crate::types::ids::{CodeId, SessionId};
use crate::types::{Code, PhoneNumber, UnixTime};

use super::Caller;
use super::audit::{self, Action};
use super::guards::{self, TextBudget};

/// The purpose a code is hashed under: a challenge's code never verifies an enrollment, nor
/// the reverse, even if the digits match. The strings are bound into stored hashes.
fn hash_purpose(kind: &SessionKind) -> &'static str {
    match kind {
        SessionKind::SignIn(_) | SessionKind::AppSignIn(_) => "challenge",
        SessionKind::Enroll
        | SessionKind::Add
        | SessionKind::Replace(_)
        | SessionKind::AppSetup(_) => "enroll",
    }
}

/// Who a session's texts go to: a sign-in challenge texts one of the caller's own verified
/// phones (`challenge::start` picks it from their phones), an enrollment a number not yet
/// proven.
pub(crate) fn recipient(kind: &SessionKind) -> guards::Recipient {
    match kind {
        SessionKind::SignIn(_) | SessionKind::AppSignIn(_) => guards::Recipient::OwnVerifiedPhone,
        SessionKind::Enroll
        | SessionKind::Add
        | SessionKind::Replace(_)
        | SessionKind::AppSetup(_) => guards::Recipient::Unproven,
    }
}

/// "Not found" in the words of the id's routes.
fn not_found(id: &SessionId) -> MfaError {
    if id.is_sign_in() {
        MfaError::ChallengeNotFound
    } else {
        MfaError::EnrollmentNotFound
    }
}

/// Loads the caller's live session `id`. Each kind's routes see only their own kind: missing,
/// expired, another user's and a session of the other kind all look the same.
pub(crate) async fn load(
    svc: &Service,
    c: &Caller,
    id: &SessionId,
) -> Result<Enrollment, MfaError> {
    match svc.store.get_enrollment(c.owner(), id).await? {
        Some(e) if e.is_live(svc.clock.now()) && e.kind.is_sign_in() == id.is_sign_in() => Ok(e),
        _ => Err(not_found(id)),
    }
}

/// A phone as an answer shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MaskedPhone {
    pub masked: String,
}

/// `202` of a resend (an enrollment's or a challenge's).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Resent {
    pub code_expires_at: UnixTime,
    pub resend_available_at: UnixTime,
    pub attempts_remaining: u32,
}

/// A text that went out (or may have).
pub(crate) struct Sent {
    pub number: PhoneNumber,
    pub expires_at: UnixTime,
    pub resend_available_at: UnixTime,
}

/// A text to send for a session.
pub(crate) struct Text {
    pub number: PhoneNumber,
    /// Kept with the code, for the phone the completion adds.
    pub label: Option<String>,
    /// The pending code this one must replace (a resend, or a first text corrected at once).
    pub replaces: Option<CodeId>,
    /// Whether the session's resend cooldown applies.
    pub cooldown: bool,
}

/// Checks whether a new text may be sent now, given the session as read: its send limit, and
/// (with `cooldown`) the cooldown since its last text.
pub(crate) fn check_can_send(
    svc: &Service,
    e: &Enrollment,
    cooldown: bool,
    now: UnixTime,
) -> Result<(), MfaError> {
    if e.sends >= svc.limits.max_sends_per_enrollment {
        svc.count(&e.app_id, Metric::RateLimited(Reason::SendsPerEnrollment));
        return Err(MfaError::SendLimitReached {
            retry_after: now.secs_until(e.expires_at),
        });
    }
    if cooldown && let Some(last) = e.last_sent_at {
        let ready = last.plus_secs(svc.limits.resend_cooldown_secs);
        if now < ready {
            svc.count(&e.app_id, Metric::RateLimited(Reason::ResendCooldown));
            return Err(MfaError::ResendTooSoon {
                retry_after: now.secs_until(ready),
            });
        }
    }
    Ok(())
}

/// Takes the text budgets, records the new code, texts it; undoes all of it if SNS fails.
pub(crate) async fn send(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    text: Text,
) -> Result<Sent, MfaError> {
    let budget = guards::take_text_budget(svc, c, &text.number, recipient(&e.kind)).await?;
    send_with_budget(svc, c, e, text, budget).await
}

/// [`send`] with the text budget already taken (a challenge takes it before its item is
/// created): records the new code and texts it. A text SNS refused (a known failure) undoes
/// the send and gives the budget back (`502 sms_send_failed`; throttled: `503
/// service_unavailable` with `Retry-After`). A text whose outcome is unknown
/// (the request went out and its answer was lost: it may have been delivered) counts as sent:
/// the code stays pending, the units stay taken and the answer is `202`, so that a retrying
/// client meets the cooldown and the send limits instead of a fresh, free text.
pub(crate) async fn send_with_budget(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    text: Text,
    budget: TextBudget,
) -> Result<Sent, MfaError> {
    if e.kind.is_app() {
        // An authenticator app's session is answered by the app: nothing is ever texted for
        // it (the routes refuse before this; the store would not know the difference).
        budget.give_back(svc).await;
        return Err(MfaError::Internal);
    }
    let now = svc.clock.now();
    let prepared = (|| -> Result<(Code, PendingCode), MfaError> {
        let code = Code::generate()?;
        let code_id = CodeId::generate()?;
        let code_hash = svc.keys.code_hash(hash_purpose(&e.kind), &code_id, &code);
        Ok((
            code,
            PendingCode {
                code_id,
                code_hash,
                number: text.number.clone(),
                label: text.label,
                expires_at: now.plus_secs(svc.limits.code_ttl_secs),
                attempts: 0,
            },
        ))
    })();
    let (code, pending) = budget.give_back_on_err(svc, prepared).await?;
    let send = NewSend {
        code: pending.clone(),
        now,
        max_sends: svc.limits.max_sends_per_enrollment,
        last_sent_at_most: text.cooldown.then(|| {
            UnixTime(now.0 - i64::try_from(svc.limits.resend_cooldown_secs).unwrap_or(i64::MAX))
        }),
        replaces: text.replaces,
    };
    // The application's name and WebOTP domain, and the user's language, as they are now.
    let speaker = super::voice::for_text(svc, c.owner()).await;
    let speaker = budget.give_back_on_err(svc, speaker).await?;
    let begun = svc.store.begin_send(e, &send).await.map_err(MfaError::from);
    let Some(previous) = budget.give_back_on_err(svc, begun).await? else {
        budget.give_back(svc).await;
        return Err(explain_refused_send(svc, c, &e.id, text.cooldown).await);
    };
    let number = text.number;
    let body = speaker.code_text(&code, svc.limits.code_ttl_secs);
    match svc.sms.send_sms(&number, &body).await {
        Err(err) if err.is_outcome_unknown() => {
            tracing::warn!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, phone = %number, error = %err.0, "SMS send outcome unknown: counted as sent");
            svc.count(&c.app, Metric::SmsSendError);
        }
        Err(err) => return Err(undo_failed_send(svc, c, &previous, &pending, budget, &err).await),
        Ok(()) => {}
    }
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, phone = %number, "code sent");
    svc.count(&c.app, Metric::TextSent);
    // The adoption figures' text count. The text is out: a failure here must not fail the
    // answer (a retrying client would get a second text), so it is logged and the figure is
    // one short.
    if let Err(err) = svc.store.count_text(c.owner(), now).await {
        tracing::error!(app_id = %c.app, user_id = %c.user, error = %err.0, "could not count a text in the adoption figures");
    }
    Ok(Sent {
        number,
        expires_at: pending.expires_at,
        resend_available_at: now.plus_secs(svc.limits.resend_cooldown_secs),
    })
}

/// Seconds a client is told to wait after SNS throttled its text (`Retry-After`). SNS's SMS
/// rate quota is a per-second rate (20 texts/s by default) and the SDK has already retried the
/// publish with backoff (up to 1 s) before this answer: a throttle that outlasted that is
/// an account-wide burst, which usually clears within a second or two. 2 s lets it clear
/// without having a person wait long, and a client that retries at once would only meet the
/// same quota.
pub const SMS_THROTTLED_RETRY_AFTER_SECS: u64 = 2;

/// A text SNS certainly did not send (refused, or throttled): the send is undone (the earlier
/// code, if any, is pending again) and every budget unit given back. A refusal answers
/// `502 sms_send_failed` and counts `SmsSendErrors`; a throttled publish answers
/// `503 service_unavailable` with `Retry-After` and counts `SmsThrottled`: the number was
/// fine, the account's SMS rate quota was not.
async fn undo_failed_send(
    svc: &Service,
    c: &Caller,
    previous: &Enrollment,
    failed: &PendingCode,
    budget: TextBudget,
    err: &PortError,
) -> MfaError {
    let answer = if err.is_throttled() {
        tracing::warn!(app_id = %c.app, user_id = %c.user, enrollment_id = %previous.id, phone = %failed.number, error = %err.0, "SMS send throttled");
        svc.count(&c.app, Metric::SmsThrottled);
        MfaError::ServiceUnavailable {
            retry_after: SMS_THROTTLED_RETRY_AFTER_SECS,
        }
    } else {
        tracing::error!(app_id = %c.app, user_id = %c.user, enrollment_id = %previous.id, phone = %failed.number, error = %err.0, "SMS send failed");
        svc.count(&c.app, Metric::SmsSendError);
        MfaError::SmsSendFailed
    };
    if let Err(undo) = svc.store.undo_send(previous, &failed.code_id).await {
        tracing::error!(enrollment_id = %previous.id, error = %undo.0, "could not undo a failed send");
    }
    budget.give_back(svc).await;
    answer
}

/// Why the store refused a send that the first read allowed: read again and check again.
async fn explain_refused_send(
    svc: &Service,
    c: &Caller,
    id: &SessionId,
    cooldown: bool,
) -> MfaError {
    let e = match load(svc, c, id).await {
        Ok(e) => e,
        Err(err) => return err,
    };
    if e.step == Step::Complete {
        return MfaError::WrongStep {
            current: Step::Complete.as_str(),
        };
    }
    match check_can_send(svc, &e, cooldown, svc.clock.now()) {
        Err(err) => err,
        Ok(()) => MfaError::Conflict,
    }
}

/// The pending code a resend would replace, if the session may text again now (the cooldown
/// applies: a resend goes to the same number).
pub(crate) fn resendable(svc: &Service, e: &Enrollment) -> Result<PendingCode, MfaError> {
    let Some(pending) = e.pending.clone().filter(|_| e.step == Step::Code) else {
        return Err(MfaError::WrongStep {
            current: e.step.as_str(),
        });
    };
    check_can_send(svc, e, true, svc.clock.now())?;
    Ok(pending)
}

/// Texts a new code in place of `pending` (from [`resendable`]), to the same number.
pub(crate) async fn resend(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    pending: PendingCode,
) -> Result<Resent, MfaError> {
    let text = Text {
        number: pending.number,
        label: pending.label,
        replaces: Some(pending.code_id),
        cooldown: true,
    };
    let sent = send(svc, c, e, text).await?;
    Ok(Resent {
        code_expires_at: sent.expires_at,
        resend_available_at: sent.resend_available_at,
        attempts_remaining: svc.limits.code_max_attempts,
    })
}

/// Why the pending code cannot take a guess now, from the session as read.
fn check_code_open(svc: &Service, e: &Enrollment, now: UnixTime) -> Result<PendingCode, MfaError> {
    let Some(p) = e.pending.clone().filter(|_| e.step == Step::Code) else {
        return Err(MfaError::WrongStep {
            current: e.step.as_str(),
        });
    };
    if now >= p.expires_at {
        return Err(MfaError::CodeExpired);
    }
    if p.attempts >= svc.limits.code_max_attempts {
        return Err(burned(svc, e, now));
    }
    Ok(p)
}

/// `429 too_many_attempts` for a burned code: retry once a resend is possible.
fn burned(svc: &Service, e: &Enrollment, now: UnixTime) -> MfaError {
    let ready = e
        .last_sent_at
        .unwrap_or(now)
        .plus_secs(svc.limits.resend_cooldown_secs);
    MfaError::TooManyAttempts {
        retry_after: now.secs_until(ready),
    }
}

/// Takes an attempt (on the code, and on the user's hourly failure budget, which enrollments
/// and challenges share) before the guess is compared, in constant time, so that no burst of
/// concurrent guesses can compare more than the limit allows; a right guess gives the user's
/// unit back. Returns the pending code when the guess is right; the caller completes it.
pub(crate) async fn check_guess(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    guess: Code,
) -> Result<(PendingCode, UnixTime), MfaError> {
    let now = svc.clock.now();
    let pending = check_code_open(svc, e, now)?;

    let user_unit = guards::take_code_failure(svc, c).await?;
    let taken = match svc
        .store
        .take_code_attempt(
            e.code_use(&pending.code_id, now),
            svc.limits.code_max_attempts,
        )
        .await
    {
        Ok(Some(n)) => n,
        Ok(None) => {
            user_unit.give_back(svc).await;
            return Err(explain_refused_attempt(svc, c, &e.id).await);
        }
        Err(err) => {
            user_unit.give_back(svc).await;
            return Err(err.into());
        }
    };

    if !svc.keys.code_matches(
        hash_purpose(&e.kind),
        &pending.code_id,
        &guess,
        &pending.code_hash,
    ) {
        tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, attempts = taken, "wrong code");
        svc.count(&c.app, Metric::VerificationFailed);
        let max = svc.limits.code_max_attempts;
        return Err(if taken >= max {
            svc.count(&c.app, Metric::Lockout);
            audit::user(svc, c, Action::CodeLocked, json!({ "id": e.id })).await;
            burned(svc, e, now)
        } else {
            MfaError::InvalidCode {
                attempts_remaining: max - taken,
            }
        });
    }
    user_unit.give_back(svc).await;
    svc.count(&c.app, Metric::VerificationOk);
    Ok((pending, now))
}

/// Why the store refused an attempt or a completion that the first read allowed (the code
/// was used, replaced or expired meanwhile): read again and check again.
pub(crate) async fn explain_refused_attempt(svc: &Service, c: &Caller, id: &SessionId) -> MfaError {
    match load(svc, c, id).await {
        Ok(e) => check_code_open(svc, &e, svc.clock.now())
            .err()
            .unwrap_or(MfaError::Conflict),
        Err(err) => err,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Limits, Settings};
    use crate::ports::FixedClock;
    use crate::types::ids::ChallengeId;
    use crate::types::{AppId, EnrollmentId, PhoneId, UserId};

    /// A session of one kind stored under an id of the other (no flow makes one) is "not
    /// found" on both kinds' routes: the kind, not only the key, keeps them apart.
    #[tokio::test]
    async fn a_session_loads_only_under_an_id_of_its_kind() {
        let clock = Arc::new(FixedClock::at(1_800_000_000));
        let (svc, _) = Service::in_memory(Limits::default(), Settings::default(), clock).unwrap();
        let c = Caller {
            app: AppId::parse("acme").unwrap(),
            user: UserId::parse("ada").unwrap(),
            source_ip: "198.51.100.7".into(),
        };
        let phone = PhoneId::generate().unwrap();
        let now = svc.clock.now();
        let begin = |kind| Enrollment::begin(&c.app, &c.user, kind, now, 600).unwrap();
        let sign_in = begin(SessionKind::SignIn(phone.clone()));
        let add = begin(SessionKind::Add);
        assert!(sign_in.id.is_sign_in() && !add.id.is_sign_in());
        for e in [&sign_in, &add] {
            svc.store.create_enrollment(e).await.unwrap();
            assert_eq!(load(&svc, &c, &e.id).await.unwrap(), *e);
        }
        let enrollment_id = SessionId::from(EnrollmentId::generate().unwrap());
        let challenge_id = SessionId::from(ChallengeId::generate().unwrap());
        let forged = [
            (enrollment_id, SessionKind::SignIn(phone)),
            (challenge_id, SessionKind::Add),
        ];
        for (id, kind) in forged {
            let e = Enrollment {
                id: id.clone(),
                ..begin(kind)
            };
            svc.store.create_enrollment(&e).await.unwrap();
            assert_eq!(load(&svc, &c, &id).await.unwrap_err(), not_found(&id));
        }
    }

    #[test]
    fn sign_in_codes_hash_apart_from_enrollment_codes() {
        let phone = PhoneId::generate().unwrap();
        assert_eq!(
            hash_purpose(&SessionKind::SignIn(phone.clone())),
            "challenge"
        );
        for kind in [
            SessionKind::Enroll,
            SessionKind::Add,
            SessionKind::Replace(phone),
        ] {
            assert_eq!(hash_purpose(&kind), "enroll");
        }
    }
}
