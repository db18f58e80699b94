//! Enrollment: Start (password) → phone → code → complete, plus resend.
//!
//! Every guard is checked twice: first against a fresh read, to give the precise error, then
//! again inside the store's conditional write, so that concurrent requests cannot slip past.
//! When the write refuses, the enrollment is read again and the same checks say why.

use serde::Serialize;
use serde_json::json;

use crate::crypto::verify_password;
use crate::error::MfaError;
use crate::metrics::{Metric, Reason};
use crate::ports::{
    Completion, Enrollment, NewSend, PendingCode, PhoneChange, PhoneRecord, Purpose, Step,
};
use crate::service::Service;
use crate::types::ids::CodeId;
use crate::types::{AppId, Code, EnrollmentId, PhoneId, PhoneNumber, UnixTime, UserId};

use super::audit::{self, Action};
use super::guards::{self, TextBudget};
use super::status::PhoneView;
use super::{Caller, notify, policy};

/// The purpose a code is hashed under: a challenge's code never verifies an enrollment, nor
/// the reverse, even if the digits match.
pub(crate) fn code_purpose(p: &Purpose) -> &'static str {
    match p {
        Purpose::Challenge(_) => "challenge",
        Purpose::Enroll | Purpose::Add | Purpose::Replace(_) => "enroll",
    }
}

/// `201` of Start.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Started {
    pub enrollment_id: EnrollmentId,
    pub step: &'static str,
    pub expires_at: UnixTime,
}

/// `POST /v1/mfa/enrollments`: the user re-enters their password to begin.
pub async fn start(svc: &Service, c: &Caller, password: String) -> Result<Started, MfaError> {
    let policy = policy::get(svc, &c.app).await?;
    if !policy.in_force() {
        return Err(MfaError::MfaDisabled);
    }
    let user = check_password(svc, c, password).await?;
    if !user.email_verified {
        return Err(MfaError::EmailNotVerified);
    }
    if !svc.store.list_phones(&c.app, &c.user).await?.is_empty() {
        return Err(MfaError::AlreadyEnrolled);
    }
    let now = svc.clock.now();
    let enrollment = Enrollment::begin(
        &c.app,
        &c.user,
        Purpose::Enroll,
        now,
        svc.limits.enrollment_ttl_secs,
    )?;
    svc.store.create_enrollment(&enrollment).await?;
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %enrollment.id, "enrollment started");
    Ok(Started {
        enrollment_id: enrollment.id,
        step: Step::Phone.as_str(),
        expires_at: enrollment.expires_at,
    })
}

/// Checks the password under the lockout: a missing user and a wrong password answer alike,
/// and both cost one argon2 run.
pub async fn check_password(
    svc: &Service,
    c: &Caller,
    password: String,
) -> Result<crate::ports::UserRecord, MfaError> {
    let taken = guards::take_password_attempt(svc, c).await?;
    let user = match svc.store.get_user(&c.app, &c.user).await {
        Ok(u) => u,
        Err(e) => {
            taken.give_back(svc).await;
            return Err(e.into());
        }
    };
    let check = verify_password(user.as_ref().map(|u| u.password_hash.clone()), password).await;
    if check.hashed {
        svc.count(&c.app, Metric::PasswordChecked);
    }
    guards::settle_password_attempt(svc, c, taken, check.matches).await?;
    user.ok_or(MfaError::Internal)
}

/// The phone step's answer (also the resend's, less `step` and `phone`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CodeSent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment_id: Option<EnrollmentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<&'static str>,
    pub step: &'static str,
    pub phone: MaskedPhone,
    pub code_expires_at: UnixTime,
    pub resend_available_at: UnixTime,
    pub attempts_remaining: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MaskedPhone {
    pub masked: String,
}

/// Loads the caller's enrollment; missing, expired and other users' all look the same.
async fn load(svc: &Service, c: &Caller, id: &EnrollmentId) -> Result<Enrollment, MfaError> {
    load_kind(svc, c, id, false).await
}

/// Loads an enrollment (`challenge` false) or a sign-in challenge (true). Each kind's routes
/// see only their own kind: anything else is "not found", like another user's.
pub(crate) async fn load_kind(
    svc: &Service,
    c: &Caller,
    id: &EnrollmentId,
    challenge: bool,
) -> Result<Enrollment, MfaError> {
    match svc.store.get_enrollment(&c.app, &c.user, id).await? {
        Some(e)
            if e.is_live(svc.clock.now())
                && matches!(e.purpose, Purpose::Challenge(_)) == challenge =>
        {
            Ok(e)
        }
        _ if challenge => Err(MfaError::ChallengeNotFound),
        _ => Err(MfaError::EnrollmentNotFound),
    }
}

/// A label as the user typed it: trimmed, at most 64 characters, no control characters.
pub fn clean_label(label: Option<String>) -> Result<Option<String>, MfaError> {
    let Some(l) = label else { return Ok(None) };
    let l = l.trim();
    if l.is_empty() {
        return Ok(None);
    }
    if l.chars().count() > 64 || l.chars().any(char::is_control) {
        return Err(MfaError::InvalidRequest(
            "`label` must be at most 64 characters, without control characters.".into(),
        ));
    }
    Ok(Some(l.to_owned()))
}

/// The resend cooldown within an enrollment (issue 13: it must not be sidestepped by
/// alternating numbers). Every text of an enrollment waits the cooldown since its last text,
/// whatever the number, with one exception: the *first* text may be corrected at once, once
/// (a typo fixed right after submitting, as the contract allows). So A → B is immediate, but
/// A → B → A (or any further text) waits, and alternating numbers gains nothing over resending.
/// Returns the code the correction replaces (the store refuses it unless that code is still
/// pending, so two concurrent corrections cannot both skip the cooldown), or `None` when the
/// cooldown applies.
fn immediate_correction(e: &Enrollment, number: &PhoneNumber) -> Option<CodeId> {
    let pending = e.pending.as_ref()?;
    (e.sends == 1 && pending.number != *number).then(|| pending.code_id.clone())
}

/// Checks whether a new text may be sent now, given the enrollment as read.
fn check_can_send(
    svc: &Service,
    e: &Enrollment,
    same_number: bool,
    now: UnixTime,
) -> Result<(), MfaError> {
    if e.sends >= svc.limits.max_sends_per_enrollment {
        svc.count(&e.app_id, Metric::RateLimited(Reason::SendsPerEnrollment));
        return Err(MfaError::SendLimitReached {
            retry_after: now.secs_until(e.expires_at),
        });
    }
    if same_number && let Some(last) = e.last_sent_at {
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

/// `POST /v1/mfa/enrollments/{id}/phone`: texts a code to the number (again, to fix a typo).
pub async fn submit_phone(
    svc: &Service,
    c: &Caller,
    id: &EnrollmentId,
    number: PhoneNumber,
    label: Option<String>,
) -> Result<CodeSent, MfaError> {
    let label = clean_label(label)?;
    let e = load(svc, c, id).await?;
    let policy = policy::get(svc, &c.app).await?;
    if !policy.in_force() {
        return Err(MfaError::MfaDisabled);
    }
    if e.step == Step::Complete {
        return Err(MfaError::WrongStep {
            current: Step::Complete.as_str(),
        });
    }
    if !policy.allows_region(number.region()) {
        return Err(MfaError::CountryNotAllowed {
            country: number
                .region()
                .map_or_else(|| "that region".to_owned(), |r| r.as_str().to_owned()),
        });
    }
    let phones = svc.store.list_phones(&c.app, &c.user).await?;
    if phones.iter().any(|p| p.number == number) {
        return Err(MfaError::PhoneAlreadyEnrolled);
    }
    let now = svc.clock.now();
    let correction = immediate_correction(&e, &number);
    check_can_send(svc, &e, correction.is_none(), now)?;
    let sent = send_code(
        svc,
        c,
        &e,
        number,
        label,
        correction.clone(),
        correction.is_none(),
    )
    .await?;
    Ok(CodeSent {
        enrollment_id: None,
        purpose: None,
        step: Step::Code.as_str(),
        phone: MaskedPhone {
            masked: sent.number.masked(),
        },
        code_expires_at: sent.expires_at,
        resend_available_at: sent.resend_available_at,
        attempts_remaining: svc.limits.code_max_attempts,
    })
}

/// `POST /v1/mfa/enrollments/{id}/resend`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Resent {
    pub code_expires_at: UnixTime,
    pub resend_available_at: UnixTime,
    pub attempts_remaining: u32,
}

/// A new code replaces the pending one, on the same number.
pub async fn resend(svc: &Service, c: &Caller, id: &EnrollmentId) -> Result<Resent, MfaError> {
    let e = load(svc, c, id).await?;
    resend_loaded(svc, c, e).await
}

/// A new code for a loaded enrollment or challenge, on the same number.
pub(crate) async fn resend_loaded(
    svc: &Service,
    c: &Caller,
    e: Enrollment,
) -> Result<Resent, MfaError> {
    let Some(pending) = e.pending.clone().filter(|_| e.step == Step::Code) else {
        return Err(MfaError::WrongStep {
            current: e.step.as_str(),
        });
    };
    let now = svc.clock.now();
    check_can_send(svc, &e, true, now)?;
    // Sign-in challenges answer to enrollment, not to the policy (as when they start).
    if !matches!(e.purpose, Purpose::Challenge(_)) && !policy::get(svc, &c.app).await?.in_force() {
        return Err(MfaError::MfaDisabled);
    }
    // A challenge texts only a number that is still one of the user's verified phones: that
    // is what exempts it from the per-number budget (and a removed or replaced number no longer
    // signs anyone in).
    if let Purpose::Challenge(phone_id) = &e.purpose {
        let phones = svc.store.list_phones(&c.app, &c.user).await?;
        if !phones
            .iter()
            .any(|p| &p.phone_id == phone_id && p.number == pending.number)
        {
            return Err(MfaError::ChallengeNotFound);
        }
    }
    let send = send_code(
        svc,
        c,
        &e,
        pending.number,
        pending.label,
        Some(pending.code_id),
        true,
    );
    // A challenge's resend also keeps the user's challenge texts a cooldown apart (a resend of
    // another live challenge is no way around it).
    let sent = if matches!(e.purpose, Purpose::Challenge(_)) {
        let cooldown = super::cooldown::ChallengeCooldown::take(svc, c).await?;
        cooldown.around(svc, send).await?
    } else {
        send.await?
    };
    Ok(Resent {
        code_expires_at: sent.expires_at,
        resend_available_at: sent.resend_available_at,
        attempts_remaining: svc.limits.code_max_attempts,
    })
}

pub(crate) struct Sent {
    pub number: PhoneNumber,
    pub expires_at: UnixTime,
    pub resend_available_at: UnixTime,
}

/// Who a text of `purpose` goes to: a sign-in challenge texts one of the caller's own verified
/// phones (`challenge::start` picks it from their phones), everything else a number not yet
/// proven.
pub(crate) fn recipient(purpose: &Purpose) -> guards::Recipient {
    match purpose {
        Purpose::Challenge(_) => guards::Recipient::OwnVerifiedPhone,
        Purpose::Enroll | Purpose::Add | Purpose::Replace(_) => guards::Recipient::Unproven,
    }
}

/// Takes the text budgets, records the new code, texts it; undoes all of it if SNS fails.
pub(crate) async fn send_code(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    number: PhoneNumber,
    label: Option<String>,
    replaces: Option<CodeId>,
    cooldown: bool,
) -> Result<Sent, MfaError> {
    let budget = guards::take_text_budget(svc, c, &number, recipient(&e.purpose)).await?;
    send_code_with_budget(svc, c, e, number, label, replaces, cooldown, budget).await
}

/// [`send_code`] with the text budget already taken (a challenge takes it before its item
/// is created): records the new code and texts it. A text SNS refused (a known failure) undoes
/// the send and gives the budget back (`502 sms_send_failed`). A text whose outcome is unknown
/// (the request went out and its answer was lost: it may have been delivered) counts as sent:
/// the code stays pending, the units stay taken and the answer is `202`, so that a retrying
/// client meets the cooldown and the send limits instead of a fresh, free text.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_code_with_budget(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    number: PhoneNumber,
    label: Option<String>,
    replaces: Option<CodeId>,
    cooldown: bool,
    budget: TextBudget,
) -> Result<Sent, MfaError> {
    let now = svc.clock.now();
    let prepared = (|| -> Result<(Code, PendingCode), MfaError> {
        let code = Code::generate()?;
        let code_id = CodeId::generate()?;
        let code_hash = svc
            .keys
            .code_hash(code_purpose(&e.purpose), &code_id, &code);
        Ok((
            code,
            PendingCode {
                code_id,
                code_hash,
                number: number.clone(),
                label,
                expires_at: now.plus_secs(svc.limits.code_ttl_secs),
                attempts: 0,
            },
        ))
    })();
    let (code, pending) = match prepared {
        Ok(p) => p,
        Err(err) => {
            budget.give_back(svc).await;
            return Err(err);
        }
    };
    let send = NewSend {
        code: pending.clone(),
        now,
        max_sends: svc.limits.max_sends_per_enrollment,
        last_sent_at_most: cooldown.then(|| {
            UnixTime(now.0 - i64::try_from(svc.limits.resend_cooldown_secs).unwrap_or(i64::MAX))
        }),
        replaces,
    };
    let previous = match svc.store.begin_send(e, &send).await {
        Ok(Some(prev)) => prev,
        Ok(None) => {
            budget.give_back(svc).await;
            return Err(explain_refused_send(
                svc,
                c,
                &e.id,
                matches!(e.purpose, Purpose::Challenge(_)),
                cooldown,
            )
            .await);
        }
        Err(err) => {
            budget.give_back(svc).await;
            return Err(err.into());
        }
    };
    let body = notify::code_text(&svc.settings.app_name, &code, svc.limits.code_ttl_secs);
    match svc.sms.send_sms(&number, &body).await {
        Err(err) if err.is_outcome_unknown() => {
            tracing::warn!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, phone = %number, error = %err.0, "SMS send outcome unknown: counted as sent");
            svc.count(&c.app, Metric::SmsSendError);
        }
        Err(err) => {
            return Err(
                undo_failed_send(svc, c, e, &number, &previous, &pending, budget, &err).await,
            );
        }
        Ok(()) => {}
    }
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, phone = %number, "code sent");
    svc.count(&c.app, Metric::TextSent);
    Ok(Sent {
        number,
        expires_at: pending.expires_at,
        resend_available_at: now.plus_secs(svc.limits.resend_cooldown_secs),
    })
}

/// A text SNS certainly did not send: the send is undone (the earlier code, if any, is
/// pending again) and every budget unit given back.
#[allow(clippy::too_many_arguments)]
async fn undo_failed_send(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    number: &PhoneNumber,
    previous: &Enrollment,
    pending: &PendingCode,
    budget: TextBudget,
    err: &crate::error::PortError,
) -> MfaError {
    tracing::error!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, phone = %number, error = %err.0, "SMS send failed");
    svc.count(&c.app, Metric::SmsSendError);
    if let Err(undo) = svc.store.undo_send(previous, &pending.code_id).await {
        tracing::error!(enrollment_id = %e.id, error = %undo.0, "could not undo a failed send");
    }
    budget.give_back(svc).await;
    MfaError::SmsSendFailed
}

/// Why the store refused a send that the first read allowed: read again and check again.
async fn explain_refused_send(
    svc: &Service,
    c: &Caller,
    id: &EnrollmentId,
    challenge: bool,
    cooldown: bool,
) -> MfaError {
    let e = match load_kind(svc, c, id, challenge).await {
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

/// `200` of a verified code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Completed {
    pub step: &'static str,
    pub phone: PhoneView,
    /// `"sent"` or `"failed"`: a failed email never undoes the enrollment.
    pub confirmation_email: &'static str,
}

/// Why the pending code cannot take a guess now, from the enrollment as read.
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

/// `POST /v1/mfa/enrollments/{id}/code`. An attempt is taken (on the code, and on the user's
/// hourly failure budget) before the guess is compared, so no burst of concurrent guesses can
/// compare more than the limit allows; a right guess gives the user's unit back.
pub async fn verify(
    svc: &Service,
    c: &Caller,
    id: &EnrollmentId,
    guess: Code,
) -> Result<Completed, MfaError> {
    let e = load(svc, c, id).await?;
    let (pending, now) = check_guess(svc, c, &e, guess).await?;
    complete(svc, c, &e, pending, now).await
}

/// Takes an attempt (on the code and on the user's hourly failure budget, which enrollments
/// and challenges share), then compares the guess in constant time. Returns the pending code
/// when the guess is right; the caller completes it.
pub(crate) async fn check_guess(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    guess: Code,
) -> Result<(PendingCode, UnixTime), MfaError> {
    let now = svc.clock.now();
    let pending = check_code_open(svc, e, now)?;
    let challenge = matches!(e.purpose, Purpose::Challenge(_));

    let user_unit = guards::take_code_failure(svc, c).await?;
    let taken = match svc
        .store
        .take_code_attempt(e, &pending.code_id, svc.limits.code_max_attempts, now)
        .await
    {
        Ok(Some(n)) => n,
        Ok(None) => {
            user_unit.give_back(svc).await;
            return Err(explain_refused_attempt(svc, c, &e.id, challenge).await);
        }
        Err(err) => {
            user_unit.give_back(svc).await;
            return Err(err.into());
        }
    };

    if !svc.keys.code_matches(
        code_purpose(&e.purpose),
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

pub(crate) async fn explain_refused_attempt(
    svc: &Service,
    c: &Caller,
    id: &EnrollmentId,
    challenge: bool,
) -> MfaError {
    match load_kind(svc, c, id, challenge).await {
        Ok(e) => check_code_open(svc, &e, svc.clock.now())
            .err()
            .unwrap_or(MfaError::Conflict),
        Err(err) => err,
    }
}

/// Commits the verified phone (new, or a new number for an existing one) with the
/// enrollment's completion in one transaction, then notifies the user and audits.
async fn complete(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    pending: PendingCode,
    now: UnixTime,
) -> Result<Completed, MfaError> {
    let phones = svc.store.list_phones(&c.app, &c.user).await?;
    let new_tag = svc.keys.number_tag(&pending.number);
    let (change, phone, replaced) = match &e.purpose {
        Purpose::Enroll | Purpose::Add => {
            // A second Start begun before the first completed must not add a phone as if it
            // were the first (the store checks the count too).
            if e.purpose == Purpose::Enroll && !phones.is_empty() {
                return Err(MfaError::AlreadyEnrolled);
            }
            if phones.len() >= svc.limits.max_phones_per_user as usize {
                return Err(MfaError::TooManyPhones {
                    max: svc.limits.max_phones_per_user,
                });
            }
            let phone = PhoneRecord {
                phone_id: PhoneId::generate()?,
                number: pending.number.clone(),
                label: pending.label.clone(),
                primary: phones.is_empty(),
                verified_at: now,
            };
            let change = PhoneChange::Add {
                phone: phone.clone(),
                number_tag: new_tag,
                seen_count: u32::try_from(phones.len()).unwrap_or(u32::MAX),
            };
            (change, phone, None)
        }
        // Challenges complete through `flows::challenge`; `load` never hands one to this path.
        Purpose::Challenge(_) => return Err(MfaError::Internal),
        Purpose::Replace(phone_id) => {
            let old = phones
                .iter()
                .find(|p| &p.phone_id == phone_id)
                .ok_or(MfaError::PhoneNotFound)?;
            let change = PhoneChange::Replace {
                phone_id: phone_id.clone(),
                old_number: old.number.clone(),
                old_number_tag: svc.keys.number_tag(&old.number),
                new_number: pending.number.clone(),
                new_number_tag: new_tag,
            };
            let phone = PhoneRecord {
                number: pending.number.clone(),
                verified_at: now,
                ..old.clone()
            };
            (change, phone, Some(old.number.clone()))
        }
    };
    match svc
        .store
        .complete_enrollment(e, &pending.code_id, &change, now)
        .await?
    {
        Completion::Done => {}
        Completion::NumberTaken => return Err(MfaError::PhoneAlreadyEnrolled),
        Completion::PhonesChanged if e.purpose == Purpose::Enroll => {
            return Err(MfaError::AlreadyEnrolled);
        }
        Completion::PhonesChanged => return Err(MfaError::Conflict),
        Completion::CodeGone => return Err(explain_refused_attempt(svc, c, &e.id, false).await),
    }
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, phone = %phone.number, "phone verified");

    let (action, details) = match (&e.purpose, &replaced) {
        (Purpose::Replace(_), Some(old)) => (
            Action::PhoneReplaced,
            json!({ "phone_id": phone.phone_id, "old_masked": old.masked(), "new_masked": phone.number.masked() }),
        ),
        (Purpose::Add, _) => (
            Action::PhoneAdded,
            json!({ "phone_id": phone.phone_id, "masked": phone.number.masked() }),
        ),
        _ => (
            Action::EnrollmentCompleted,
            json!({ "phone_id": phone.phone_id, "masked": phone.number.masked() }),
        ),
    };
    audit::user(svc, c, action, details).await;

    let confirmation_email = notify_user(svc, &c.app, &c.user, action, |name, to| {
        match (&e.purpose, &replaced) {
            (Purpose::Replace(_), Some(old)) => {
                notify::phone_replaced_email(name, to, old, &phone.number, now)
            }
            (Purpose::Add, _) => notify::phone_added_email(name, to, &phone.number, now),
            _ => notify::enrolled_email(name, to, &phone.number, now),
        }
    })
    .await;
    Ok(Completed {
        step: Step::Complete.as_str(),
        phone: PhoneView::from(&phone),
        confirmation_email,
    })
}

/// Emails `user` of `app` about `about`; a failure is logged and audited, never undoes the
/// change. Returns `"sent"` or `"failed"`. It takes the user, not a [`Caller`]: an admin's
/// reset notifies a user who is not the one calling.
pub(crate) async fn notify_user(
    svc: &Service,
    app: &AppId,
    user: &UserId,
    about: Action,
    make: impl FnOnce(&str, &str) -> crate::ports::Email,
) -> &'static str {
    let record = match svc.store.get_user(app, user).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            tracing::error!(app_id = %app, user_id = %user, action = %about, "no user record to notify");
            return notification_failed(svc, app, user, about, "user_missing").await;
        }
        Err(err) => {
            tracing::error!(app_id = %app, user_id = %user, action = %about, error = %err.0, "could not read the user to notify");
            return notification_failed(svc, app, user, about, "user_unreadable").await;
        }
    };
    let email = make(&svc.settings.app_name, &record.email);
    match svc.email.send_email(&email).await {
        Ok(()) => "sent",
        Err(err) => {
            tracing::error!(app_id = %app, user_id = %user, action = %about, error = %err.0, "notification email failed");
            notification_failed(svc, app, user, about, "send_failed").await
        }
    }
}

/// A notification that did not go out, whatever the step that failed (reading the user or
/// sending): counted in `EmailSendErrors` and audited as `notification.failed`, so that an
/// operator sees every change the user was not told about.
async fn notification_failed(
    svc: &Service,
    app: &AppId,
    user: &UserId,
    about: Action,
    reason: &str,
) -> &'static str {
    svc.count(app, Metric::EmailSendError);
    audit::system(
        svc,
        app,
        user,
        Action::NotificationFailed,
        json!({ "about": about, "reason": reason }),
    )
    .await;
    "failed"
}
