//! Authenticator apps (contract v2): set one up (the secret shown once, its first code proves
//! it was scanned), remove it, and sign in with it.
//!
//! - A setup is a code session of kind [`SessionKind::AppSetup`], completed through the
//!   enrollment code route; a sign-in is one of kind [`SessionKind::AppSignIn`], completed
//!   through the challenge code route. Neither texts anything, so neither has a resend.
//! - A guess takes an attempt on the session and a unit of the user's hourly failure budget
//!   (shared with texted codes and recovery codes) *before* it is compared, as texted codes do.
//! - A right code commits in one store write that also marks its RFC 6238 step used for the
//!   user: a replayed code (the same step, in any flow) fails like a wrong one.
//! - The secret is sealed ([`crate::totp::SealingKeys`]) for this application, user and
//!   authenticator id before it is stored, and never appears in a log line, an audit event,
//!   an email or any answer but the setup's first.

use serde::Serialize;
use serde_json::json;

use crate::error::MfaError;
use crate::messages;
use crate::metrics::Metric;
use crate::ports::{
    AppCodeUse, AppCompletion, AppSetup, AppSetupSeen, AuthenticatorRecord, Enrollment,
    SessionKind, Step,
};
use crate::service::Service;
use crate::totp::{self, SealingKeys, TotpSecret};
use crate::types::ids::{ChallengeId, SessionId};
use crate::types::{AuthenticatorId, Code, EnrollmentId, Factor, UnixTime};

use super::audit::{self, Action};
use super::challenge::{self, Assertion};
use super::enrollment::{self, check_password, clean_label, notify_user};
use super::factors::Factors;
use super::guards::{self, Taken};
use super::status::AppView;
use super::{Caller, policy};

/// `201` of `POST /v1/mfa/totp`: the secret, shown this once.
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct SetupStarted {
    pub enrollment_id: EnrollmentId,
    pub purpose: &'static str,
    pub secret: String,
    pub otpauth_uri: String,
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for SetupStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupStarted")
            .field("enrollment_id", &self.enrollment_id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `200` of a setup's right code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppCompleted {
    pub step: &'static str,
    pub factor: Factor,
    pub totp: AppView,
    /// `"sent"` or `"failed"`: a failed email never undoes the setup.
    pub confirmation_email: &'static str,
}

/// `201` of `POST /v1/mfa/challenges {"factor": "totp"}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppChallenge {
    pub challenge_id: ChallengeId,
    pub factor: Factor,
    pub attempts_remaining: u32,
    pub expires_at: UnixTime,
}

/// The sealing keys, which only the functions that handle apps are given.
fn keys(svc: &Service) -> Result<&SealingKeys, MfaError> {
    svc.app_keys.as_deref().ok_or_else(|| {
        tracing::error!("no authenticator app sealing key is configured (MFA_TOTP_SECRET_ID)");
        MfaError::Internal
    })
}

/// Opens a stored secret; a failure (a key no longer configured, or a value not sealed for
/// this item) is logged with the key id only, and answered `503`: the user can do nothing
/// about it, an operator can.
fn open(
    svc: &Service,
    c: &Caller,
    sealed: &totp::Sealed,
    id: &AuthenticatorId,
) -> Result<TotpSecret, MfaError> {
    keys(svc)?.open(sealed, &c.app, &c.user, id).map_err(|e| {
        tracing::error!(app_id = %c.app, user_id = %c.user, authenticator_id = %id, kid = sealed.kid().unwrap_or("?"), error = %e, "authenticator app secret did not open");
        MfaError::ServiceUnavailable { retry_after: 1 }
    })
}

/// `POST /v1/mfa/totp`: a new secret, sealed into a setup session. A user with no factor yet
/// may bind an app as their first (as Start binds a first phone); a user with one passed the
/// step-up in the handler, and the app replaces their previous one when its code is verified.
pub async fn begin(
    svc: &Service,
    c: &Caller,
    password: String,
    label: Option<String>,
) -> Result<SetupStarted, MfaError> {
    let label = clean_label(label)?;
    let (policy, user) = enrollment::may_enroll(svc, c, password, Factor::Totp).await?;
    let keys = keys(svc)?;
    let first = !Factors::of(svc, c).await?.any();
    let authenticator = AuthenticatorId::generate()?;
    let secret = TotpSecret::generate()?;
    let sealed = keys
        .seal(&secret, &c.app, &c.user, &authenticator)
        .map_err(|e| {
            tracing::error!(error = %e, "could not seal an authenticator app secret");
            MfaError::Internal
        })?;
    let kind = SessionKind::AppSetup(AppSetup {
        authenticator,
        sealed,
        label,
        first,
    });
    let e = enrollment::create(svc, c, kind).await?;
    let id = e.id.as_enrollment().cloned().ok_or(MfaError::Internal)?;
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %id, first, "authenticator app setup started");
    Ok(SetupStarted {
        enrollment_id: id,
        purpose: "totp",
        secret: secret.base32(),
        // The issuer apps show beside the code: the application's display name.
        otpauth_uri: secret.otpauth_uri(policy.name(), &user.email),
        expires_at: e.expires_at,
    })
}

/// Until when a use of `step` must be remembered: while a code of it can still be accepted
/// (the step's end plus the skew), and a little longer for clocks that differ.
fn remembered_until(step: i64) -> UnixTime {
    UnixTime((step + 1 + totp::SKEW_STEPS) * totp::PERIOD_SECS + totp::PERIOD_SECS)
}

/// Why an app session cannot take a guess now, from the session as read.
fn check_open(svc: &Service, e: &Enrollment) -> Result<(), MfaError> {
    if e.step != Step::Code {
        return Err(MfaError::WrongStep {
            current: e.step.as_str(),
        });
    }
    if e.app_attempts >= svc.limits.code_max_attempts {
        return Err(used_up());
    }
    Ok(())
}

/// `429 too_many_attempts` for an app session whose attempts are spent: nothing is ever
/// resent, so the user may start a new setup or challenge at once (`Retry-After` is at least 1
/// second, as every 429 of the contract).
fn used_up() -> MfaError {
    MfaError::TooManyAttempts { retry_after: 1 }
}

/// Why the store refused an attempt or a completion the first read allowed: read again.
async fn explain_refused(svc: &Service, c: &Caller, id: &SessionId) -> MfaError {
    match super::code::load(svc, c, id).await {
        Ok(e) => check_open(svc, &e).err().unwrap_or(MfaError::Conflict),
        Err(err) => err,
    }
}

/// A wrong (or replayed) code, the `taken`-th attempt: `400 invalid_code`, or the lockout.
async fn wrong(svc: &Service, c: &Caller, e: &Enrollment, taken: u32) -> MfaError {
    tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, attempts = taken, "wrong authenticator app code");
    svc.count(&c.app, Metric::VerificationFailed);
    let max = svc.limits.code_max_attempts;
    if taken >= max {
        svc.count(&c.app, Metric::Lockout);
        audit::user(svc, c, Action::CodeLocked, json!({ "id": e.id })).await;
        used_up()
    } else {
        MfaError::InvalidCode {
            attempts_remaining: max - taken,
        }
    }
}

/// A guess that matched a step, with what committing it needs.
struct Matched {
    step: i64,
    now: UnixTime,
    taken: u32,
    /// The user's failure unit, given back only once the code is committed (a replay keeps it).
    unit: Taken,
}

/// Takes an attempt (on the session and on the user's hourly budget) before comparing `guess`
/// with the codes of the steps around now, in constant time.
async fn check_guess(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    secret: &TotpSecret,
    guess: &Code,
) -> Result<Matched, MfaError> {
    let now = svc.clock.now();
    check_open(svc, e)?;
    let unit = guards::take_code_failure(svc, c).await?;
    let taken = match svc
        .store
        .take_app_attempt(e, svc.limits.code_max_attempts, now)
        .await
    {
        Ok(Some(n)) => n,
        Ok(None) => {
            unit.give_back(svc).await;
            return Err(explain_refused(svc, c, &e.id).await);
        }
        Err(err) => {
            unit.give_back(svc).await;
            return Err(err.into());
        }
    };
    match secret.matching_step(guess, now) {
        Some(step) => Ok(Matched {
            step,
            now,
            taken,
            unit,
        }),
        None => Err(wrong(svc, c, e, taken).await),
    }
}

/// Commits a matched code; `Ok(())` when done (the user's unit given back).
async fn commit(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    m: Matched,
    reseal: Option<&totp::Sealed>,
    seen: Option<&AppSetupSeen>,
    factors_changed: MfaError,
) -> Result<(), MfaError> {
    let done = svc
        .store
        .complete_app(AppCodeUse {
            session: e,
            step: m.step,
            step_remembered_until: remembered_until(m.step),
            now: m.now,
            reseal,
            seen,
        })
        .await?;
    match done {
        AppCompletion::Done => {
            m.unit.give_back(svc).await;
            svc.count(&c.app, Metric::VerificationOk);
            Ok(())
        }
        AppCompletion::StepUsed => {
            tracing::info!(app_id = %c.app, user_id = %c.user, enrollment_id = %e.id, "authenticator app code replayed");
            Err(wrong(svc, c, e, m.taken).await)
        }
        AppCompletion::SessionGone => Err(explain_refused(svc, c, &e.id).await),
        AppCompletion::FactorsChanged => Err(factors_changed),
    }
}

/// The setup's code, from `POST /v1/mfa/enrollments/{id}/code`: binds the app (replacing the
/// user's previous one), then audits and emails.
pub(crate) async fn complete_setup(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    setup: &AppSetup,
    guess: Code,
) -> Result<AppCompleted, MfaError> {
    let secret = open(svc, c, &setup.sealed, &setup.authenticator)?;
    let before = Factors::of(svc, c).await?;
    let m = check_guess(svc, c, e, &secret, &guess).await?;
    let now = m.now;
    // A first setup meeting a factor bound meanwhile: the user is enrolled already. Any other
    // setup binds only over the factors just read (whether it adds or replaces an app is
    // counted in the same write); a change in between answers 409 conflict, and the code may
    // be sent again.
    let seen = AppSetupSeen {
        phones: u32::try_from(before.phones.len()).unwrap_or(u32::MAX),
        app: before.app.as_ref().map(|a| a.authenticator_id.clone()),
    };
    let changed = if setup.first {
        MfaError::AlreadyEnrolled
    } else {
        MfaError::Conflict
    };
    commit(svc, c, e, m, None, Some(&seen), changed).await?;

    let replaced = before.app.is_some();
    let first = !before.any();
    tracing::info!(app_id = %c.app, user_id = %c.user, authenticator_id = %setup.authenticator, replaced, "authenticator app verified");
    let action = if replaced {
        Action::AppReplaced
    } else {
        Action::AppAdded
    };
    let details = json!({
        "authenticator_id": setup.authenticator,
        "label": setup.label,
        "first_factor": first,
        "replaced": before.app.as_ref().map(|a| &a.authenticator_id),
    });
    audit::user(svc, c, action, details).await;
    let label = setup.label.clone();
    let confirmation_email = notify_user(svc, &c.app, &c.user, action, |voice, to| {
        messages::app_added_email(voice, to, label.as_deref(), first, replaced, now)
    })
    .await;
    Ok(AppCompleted {
        step: Step::Complete.as_str(),
        factor: Factor::Totp,
        totp: AppView {
            label: setup.label.clone(),
            verified_at: now,
            last_used_at: None,
        },
        confirmation_email,
    })
}

/// `DELETE /v1/mfa/totp`. The last factor (no phone left) cannot go while the policy is
/// `required`; otherwise removing it un-enrolls the user and takes the recovery codes along.
pub async fn remove(svc: &Service, c: &Caller, password: String) -> Result<(), MfaError> {
    check_password(svc, c, password).await?;
    let Factors { phones, app } = Factors::of(svc, c).await?;
    let app = app.ok_or(MfaError::TotpNotFound)?;
    let policy = policy::get(svc, &c.app).await?;
    let last = phones.is_empty();
    if last && policy.in_force() && policy.enforcement.is_required() {
        return Err(MfaError::LastFactorRequired);
    }
    let phones_seen = u32::try_from(phones.len()).unwrap_or(u32::MAX);
    // The store checks the app and the phone count as seen here: a concurrent phone removal
    // or a new app makes this fail rather than leave the user with no factor but codes.
    if !svc
        .store
        .remove_app(c.owner(), &app.authenticator_id, phones_seen)
        .await?
    {
        return Err(MfaError::Conflict);
    }
    tracing::info!(app_id = %c.app, user_id = %c.user, authenticator_id = %app.authenticator_id, unenrolled = last, "authenticator app removed");
    let details = json!({
        "authenticator_id": app.authenticator_id,
        "label": app.label,
        "unenrolled": last,
    });
    audit::user(svc, c, Action::AppRemoved, details).await;
    let now = svc.clock.now();
    notify_user(svc, &c.app, &c.user, Action::AppRemoved, |voice, to| {
        messages::app_removed_email(voice, to, app.label.as_deref(), last, now)
    })
    .await;
    Ok(())
}

/// `POST /v1/mfa/challenges {"factor": "totp"}` for a user with `app`: a session waiting for
/// the app's code; nothing is sent.
pub(crate) async fn start_sign_in(
    svc: &Service,
    c: &Caller,
    app: &AuthenticatorRecord,
) -> Result<AppChallenge, MfaError> {
    let now = svc.clock.now();
    let kind = SessionKind::AppSignIn(app.authenticator_id.clone());
    let e = Enrollment::begin(&c.app, &c.user, kind, now, svc.limits.code_ttl_secs)?;
    let id = e.id.as_challenge().cloned().ok_or(MfaError::Internal)?;
    svc.store.create_enrollment(&e).await?;
    tracing::info!(app_id = %c.app, user_id = %c.user, challenge_id = %id, "authenticator app challenge started");
    Ok(AppChallenge {
        challenge_id: id,
        factor: Factor::Totp,
        attempts_remaining: svc.limits.code_max_attempts,
        expires_at: e.expires_at,
    })
}

/// `POST /v1/mfa/challenges/{id}/code` of an app challenge: a right code of the app still
/// bound (the one the challenge was started for), once, gives an assertion `amr: ["otp"]`.
/// A secret sealed under a previous key is sealed again under the current one in the same
/// write, so that a key rotation completes as apps are used.
pub(crate) async fn verify_sign_in(
    svc: &Service,
    c: &Caller,
    e: &Enrollment,
    id: &ChallengeId,
    authenticator: &AuthenticatorId,
    guess: Code,
) -> Result<Assertion, MfaError> {
    let app = svc
        .store
        .get_app(c.owner())
        .await?
        .filter(|a| &a.authenticator_id == authenticator)
        .ok_or(MfaError::ChallengeNotFound)?;
    let secret = open(svc, c, &app.sealed, authenticator)?;
    let keys = keys(svc)?;
    let reseal = if app.sealed.kid() == Some(keys.current_kid()) {
        None
    } else {
        keys.seal(&secret, &c.app, &c.user, authenticator).ok()
    };
    let m = check_guess(svc, c, e, &secret, &guess).await?;
    // Sign the assertion before the code is spent, so a signing failure leaves it usable.
    let assertion = challenge::assert(svc, c, "otp")?;
    commit(
        svc,
        c,
        e,
        m,
        reseal.as_ref(),
        None,
        MfaError::ChallengeNotFound,
    )
    .await?;
    tracing::info!(app_id = %c.app, user_id = %c.user, challenge_id = %id, "second factor verified");
    audit::user(
        svc,
        c,
        Action::ChallengeVerified,
        json!({ "challenge_id": id, "authenticator_id": authenticator, "amr": "otp" }),
    )
    .await;
    Ok(assertion)
}
