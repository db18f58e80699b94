//! Enrollment: Start (password) → phone → code → complete, plus resend. The code itself (its
//! texts, guesses and refusals) is [`super::code`]'s, shared with the sign-in challenge; this
//! module holds what an enrollment adds: the password, the number's checks, and the phone
//! change a right code commits.

use serde::Serialize;
use serde_json::json;

use crate::crypto::verify_password;
use crate::error::MfaError;
use crate::messages;
use crate::metrics::Metric;
use crate::ports::{
    Completion, Enrollment, PendingCode, PhoneChange, PhoneRecord, SessionKind, Step,
};
use crate::service::Service;
use crate::types::ids::{CodeId, SessionId};
use crate::types::{
    AppId, Code, EnrollmentId, Factor, Owner, PhoneId, PhoneNumber, Policy, UnixTime, UserId,
};

use super::audit::{self, Action};
use super::code::{self, Sent, Text};
pub use super::code::{MaskedPhone, Resent};
use super::factors::Factors;
use super::guards;
use super::status::PhoneView;
use super::{Caller, policy};

/// `201` of Start.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Started {
    pub enrollment_id: EnrollmentId,
    pub step: &'static str,
    pub expires_at: UnixTime,
}

/// `POST /v1/mfa/enrollments`: the user re-enters their password to begin.
pub async fn start(svc: &Service, c: &Caller, password: String) -> Result<Started, MfaError> {
    may_enroll(svc, c, password, Factor::Sms).await?;
    // A user with any factor (a phone or an app) adds phones from settings, with a step-up.
    if Factors::of(svc, c).await?.any() {
        return Err(MfaError::AlreadyEnrolled);
    }
    let e = create(svc, c, SessionKind::Enroll).await?;
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, "enrollment started");
    Ok(Started {
        enrollment_id: e.id.as_enrollment().cloned().ok_or(MfaError::Internal)?,
        step: Step::Phone.as_str(),
        expires_at: e.expires_at,
    })
}

/// What every enrollment (a first phone, another, a new number, an authenticator app) asks
/// first: MFA in force, the factor allowed by the policy, the password right, the email
/// verified. Returns the policy (for the number's checks) and the user.
pub(crate) async fn may_enroll(
    svc: &Service,
    c: &Caller,
    password: String,
    factor: Factor,
) -> Result<(Policy, crate::ports::UserRecord), MfaError> {
    let policy = policy::get(svc, &c.app).await?;
    if !policy.in_force() {
        return Err(MfaError::MfaDisabled);
    }
    if !policy.allows(factor) {
        return Err(MfaError::FactorNotAllowed {
            factor: factor_name(factor),
        });
    }
    let user = check_password(svc, c, password).await?;
    if !user.email_verified {
        return Err(MfaError::EmailNotVerified);
    }
    Ok((policy, user))
}

/// A factor as error messages name it.
pub(crate) fn factor_name(factor: Factor) -> &'static str {
    match factor {
        Factor::Sms => "text messages",
        Factor::Totp => "authenticator apps",
    }
}

/// Stores a new enrollment of `kind`, at the phone step.
pub(crate) async fn create(
    svc: &Service,
    c: &Caller,
    kind: SessionKind,
) -> Result<Enrollment, MfaError> {
    let now = svc.clock.now();
    let e = Enrollment::begin(&c.app, &c.user, kind, now, svc.limits.enrollment_ttl_secs)?;
    svc.store.create_enrollment(&e).await?;
    Ok(e)
}

/// The policy's allowed countries: a number from elsewhere is refused before any text.
pub(crate) fn check_region(policy: &Policy, number: &PhoneNumber) -> Result<(), MfaError> {
    if policy.allows_region(number.region()) {
        return Ok(());
    }
    Err(MfaError::CountryNotAllowed {
        country: number
            .region()
            .map_or_else(|| "that region".to_owned(), |r| r.as_str().to_owned()),
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
    let user = match svc.store.get_user(c.owner()).await {
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

impl CodeSent {
    /// The answer to a text that went out: the session is at the code step.
    pub(crate) fn new(svc: &Service, sent: &Sent) -> CodeSent {
        CodeSent {
            enrollment_id: None,
            purpose: None,
            step: Step::Code.as_str(),
            phone: MaskedPhone {
                masked: sent.number.masked(),
            },
            code_expires_at: sent.expires_at,
            resend_available_at: sent.resend_available_at,
            attempts_remaining: svc.limits.code_max_attempts,
        }
    }
}

/// Loads the caller's enrollment; missing, expired, other users' and sign-in challenges all
/// look the same.
async fn load(svc: &Service, c: &Caller, id: &EnrollmentId) -> Result<Enrollment, MfaError> {
    code::load(svc, c, &SessionId::Enrollment(id.clone())).await
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
    if e.kind.is_app() {
        // An authenticator app's setup has no phone: only its code completes it.
        return Err(MfaError::WrongStep {
            current: e.step.as_str(),
        });
    }
    if e.step == Step::Complete {
        return Err(MfaError::WrongStep {
            current: Step::Complete.as_str(),
        });
    }
    check_region(&policy, &number)?;
    let phones = svc.store.list_phones(c.owner()).await?;
    if phones.iter().any(|p| p.number == number) {
        return Err(MfaError::PhoneAlreadyEnrolled);
    }
    let now = svc.clock.now();
    let correction = immediate_correction(&e, &number);
    code::check_can_send(svc, &e, correction.is_none(), now)?;
    let text = Text {
        number,
        label,
        cooldown: correction.is_none(),
        replaces: correction,
    };
    let sent = code::send(svc, c, &e, text).await?;
    Ok(CodeSent::new(svc, &sent))
}

/// `POST /v1/mfa/enrollments/{id}/resend`: a new code replaces the pending one, on the same
/// number.
pub async fn resend(svc: &Service, c: &Caller, id: &EnrollmentId) -> Result<Resent, MfaError> {
    let e = load(svc, c, id).await?;
    if e.kind.is_app() {
        return Err(MfaError::NoResend);
    }
    let pending = code::resendable(svc, &e)?;
    if !policy::get(svc, &c.app).await?.in_force() {
        return Err(MfaError::MfaDisabled);
    }
    code::resend(svc, c, &e, pending).await
}

/// What a right enrollment code completed: a phone, or an authenticator app.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Verified {
    Phone(Completed),
    App(super::totp::AppCompleted),
}

/// [`verify_code`] of a phone's enrollment (an app setup's id answers `409 wrong_step`, before
/// any attempt is taken): what the phone flows and their tests call.
pub async fn verify(
    svc: &Service,
    c: &Caller,
    id: &EnrollmentId,
    guess: Code,
) -> Result<Completed, MfaError> {
    let e = load(svc, c, id).await?;
    if e.kind.is_app() {
        return Err(MfaError::WrongStep {
            current: e.step.as_str(),
        });
    }
    let (pending, now) = code::check_guess(svc, c, &e, guess).await?;
    complete(svc, c, &e, pending, now).await
}

/// `200` of a verified code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Completed {
    pub step: &'static str,
    pub phone: PhoneView,
    /// `"sent"` or `"failed"`: a failed email never undoes the enrollment.
    pub confirmation_email: &'static str,
}

/// `POST /v1/mfa/enrollments/{id}/code`. An attempt is taken (on the code, and on the user's
/// hourly failure budget) before the guess is compared, so no burst of concurrent guesses can
/// compare more than the limit allows; a right guess gives the user's unit back. An app
/// setup's code is checked by [`super::totp::complete_setup`].
pub async fn verify_code(
    svc: &Service,
    c: &Caller,
    id: &EnrollmentId,
    guess: Code,
) -> Result<Verified, MfaError> {
    let e = load(svc, c, id).await?;
    if let SessionKind::AppSetup(setup) = &e.kind {
        return Ok(Verified::App(
            super::totp::complete_setup(svc, c, &e, setup, guess).await?,
        ));
    }
    let (pending, now) = code::check_guess(svc, c, &e, guess).await?;
    Ok(Verified::Phone(complete(svc, c, &e, pending, now).await?))
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
    let Factors { phones, app } = Factors::of(svc, c).await?;
    let new_tag = svc.keys.number_tag(&pending.number);
    let (change, phone, replaced) = match &e.kind {
        SessionKind::Enroll | SessionKind::Add => {
            // A second Start begun before the first completed must not add a phone as if it
            // were the first, nor beside an app bound meanwhile (the store checks both too).
            if e.kind == SessionKind::Enroll && (!phones.is_empty() || app.is_some()) {
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
                app_seen: app.is_some(),
            };
            (change, phone, None)
        }
        // Sign-ins complete through `flows::challenge`, app setups through `flows::totp`;
        // `load` never hands a sign-in to this path and `verify` sends app setups there.
        SessionKind::SignIn(_) | SessionKind::AppSignIn(_) | SessionKind::AppSetup(_) => {
            return Err(MfaError::Internal);
        }
        SessionKind::Replace(phone_id) => {
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
        .complete_enrollment(e.code_use(&pending.code_id, now), &change)
        .await?
    {
        Completion::Done => {}
        Completion::NumberTaken => return Err(MfaError::PhoneAlreadyEnrolled),
        Completion::PhonesChanged if e.kind == SessionKind::Enroll => {
            return Err(MfaError::AlreadyEnrolled);
        }
        Completion::PhonesChanged => return Err(MfaError::Conflict),
        Completion::CodeGone => return Err(code::explain_refused_attempt(svc, c, &e.id).await),
    }
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, phone = %phone.number, "phone verified");

    let (action, details) = match (&e.kind, &replaced) {
        (SessionKind::Replace(_), Some(old)) => (
            Action::PhoneReplaced,
            json!({ "phone_id": phone.phone_id, "old_masked": old.masked(), "new_masked": phone.number.masked() }),
        ),
        (SessionKind::Add, _) => (
            Action::PhoneAdded,
            json!({ "phone_id": phone.phone_id, "masked": phone.number.masked() }),
        ),
        _ => (
            Action::EnrollmentCompleted,
            json!({ "phone_id": phone.phone_id, "masked": phone.number.masked() }),
        ),
    };
    audit::user(svc, c, action, details).await;

    let confirmation_email = notify_user(svc, &c.app, &c.user, action, |voice, to| {
        match (&e.kind, &replaced) {
            (SessionKind::Replace(_), Some(old)) => {
                messages::phone_replaced_email(voice, to, old, &phone.number, now)
            }
            (SessionKind::Add, _) => messages::phone_added_email(voice, to, &phone.number, now),
            _ => messages::enrolled_email(voice, to, &phone.number, now),
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
    make: impl FnOnce(&messages::Voice, &str) -> crate::ports::Email,
) -> &'static str {
    let record = match svc.store.get_user(Owner { app, user }).await {
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
    let policy = super::voice::policy_for_email(svc, app).await;
    let speaker = super::voice::Speaker::new(&policy, Some(&record));
    let email = make(&speaker.voice(), &record.email);
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
