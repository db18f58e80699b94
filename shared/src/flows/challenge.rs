//! The second factor at sign-in: a code texted to an enrolled phone, exchanged for a signed
//! assertion the platform's login verifies with the JWKS. A challenge is a code session of kind
//! [`SessionKind::SignIn`]; its code lifecycle is [`super::code`]'s. What is its own: the phone
//! it texts must stay the user's, with that number, and its texts keep the user's challenge
//! cooldown ([`super::cooldown`]).

use serde::Serialize;
use serde_json::json;

use crate::error::MfaError;
use crate::ports::{Completion, Enrollment, PhoneChange, PhoneRecord, SessionKind};
use crate::service::Service;
use crate::signing::ASSERTION_TTL_SECS;
use crate::types::ids::{ChallengeId, SessionId};
use crate::types::{Code, Factor, PhoneId, PhoneNumber, UnixTime};

use super::Caller;
use super::audit::{self, Action};
use super::code::{self, MaskedPhone, Resent, Text};
use super::cooldown::ChallengeCooldown;
use super::factors::Factors;
use super::totp::AppChallenge;

/// `202` of a started challenge.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChallengeSent {
    pub challenge_id: ChallengeId,
    pub factor: Factor,
    pub phone: MaskedPhone,
    pub code_expires_at: UnixTime,
    pub resend_available_at: UnixTime,
    pub attempts_remaining: u32,
}

/// A started challenge: a text went out (`202`), or an app's code is awaited (`201`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Sms(ChallengeSent),
    App(AppChallenge),
}

/// `POST /v1/mfa/challenges`: by text to the primary phone (or `phone_id`), or by the
/// authenticator app (`factor: totp`). Without `factor`, a user with a phone gets a text (as
/// before apps existed) and a user with only an app gets the app. A factor the user has bound
/// works whatever the policy says now (it is for new enrollments and challenges of factors
/// not bound); one they have not bound is `403 factor_not_allowed` when the policy does not
/// allow it, else `409 not_enrolled`.
pub async fn begin(
    svc: &Service,
    c: &Caller,
    phone_id: Option<PhoneId>,
    factor: Option<Factor>,
) -> Result<Started, MfaError> {
    let Factors { phones, app } = Factors::of(svc, c).await?;
    let factor = match (factor, &phone_id) {
        (Some(Factor::Totp), Some(_)) => {
            return Err(MfaError::InvalidRequest(
                "`phone_id` goes with the text message factor only.".into(),
            ));
        }
        (Some(f), _) => f,
        (None, Some(_)) => Factor::Sms,
        (None, None) if phones.is_empty() && app.is_some() => Factor::Totp,
        (None, None) => Factor::Sms,
    };
    let bound = match factor {
        Factor::Sms => !phones.is_empty(),
        Factor::Totp => app.is_some(),
    };
    if !bound {
        let policy = super::policy::get(svc, &c.app).await?;
        if policy.in_force() && !policy.allows(factor) {
            return Err(MfaError::FactorNotAllowed {
                factor: super::enrollment::factor_name(factor),
            });
        }
        return Err(MfaError::NotEnrolled);
    }
    match (factor, app) {
        (Factor::Totp, Some(app)) => Ok(Started::App(
            super::totp::start_sign_in(svc, c, &app).await?,
        )),
        _ => Ok(Started::Sms(start_sms(svc, c, phones, phone_id).await?)),
    }
}

/// [`begin`] by text: to the primary phone, or to `phone_id`.
pub async fn start(
    svc: &Service,
    c: &Caller,
    phone_id: Option<PhoneId>,
) -> Result<ChallengeSent, MfaError> {
    match begin(svc, c, phone_id, Some(Factor::Sms)).await? {
        Started::Sms(sent) => Ok(sent),
        Started::App(_) => Err(MfaError::Internal),
    }
}

/// A text challenge to the primary phone, or to `phone_id`.
async fn start_sms(
    svc: &Service,
    c: &Caller,
    mut phones: Vec<PhoneRecord>,
    phone_id: Option<PhoneId>,
) -> Result<ChallengeSent, MfaError> {
    if phones.is_empty() {
        return Err(MfaError::NotEnrolled);
    }
    crate::ports::display_order(&mut phones);
    let phone = match &phone_id {
        Some(id) => phones
            .iter()
            .find(|p| &p.phone_id == id)
            .ok_or(MfaError::PhoneNotFound)?,
        // The primary, or else the oldest.
        None => phones.first().ok_or(MfaError::NotEnrolled)?,
    };
    // The user's challenge texts are a cooldown apart (see `cooldown`): a fresh challenge does
    // not restart the clock. Then the text budget (a refused challenge leaves no item behind:
    // contract v2, "refusals that cost nothing"), the challenge item, the text.
    let cooldown = ChallengeCooldown::take(svc, c).await?;
    let text = async {
        let now = svc.clock.now();
        let kind = SessionKind::SignIn(phone.phone_id.clone());
        let budget =
            super::guards::take_text_budget(svc, c, &phone.number, code::recipient(&kind)).await?;
        let created = async {
            let e = Enrollment::begin(&c.app, &c.user, kind, now, svc.limits.enrollment_ttl_secs)?;
            let id = e.id.as_challenge().cloned().ok_or(MfaError::Internal)?;
            svc.store.create_enrollment(&e).await?;
            Ok::<_, MfaError>((id, e))
        }
        .await;
        let (id, e) = budget.give_back_on_err(svc, created).await?;
        let text = Text {
            number: phone.number.clone(),
            label: None,
            replaces: None,
            cooldown: false,
        };
        let sent = code::send_with_budget(svc, c, &e, text, budget).await?;
        Ok((id, sent))
    };
    let (id, sent) = cooldown.around(svc, text).await?;
    Ok(ChallengeSent {
        challenge_id: id,
        factor: Factor::Sms,
        phone: MaskedPhone {
            masked: sent.number.masked(),
        },
        code_expires_at: sent.expires_at,
        resend_available_at: sent.resend_available_at,
        attempts_remaining: svc.limits.code_max_attempts,
    })
}

/// Loads the caller's text challenge; missing, expired, other users' and enrollments all look
/// the same (an app challenge has nothing to resend). Returns it with the phone it texts.
async fn load(
    svc: &Service,
    c: &Caller,
    id: &ChallengeId,
) -> Result<(Enrollment, PhoneId), MfaError> {
    let e = code::load(svc, c, &SessionId::SignIn(id.clone())).await?;
    match &e.kind {
        SessionKind::SignIn(phone_id) => {
            let phone_id = phone_id.clone();
            Ok((e, phone_id))
        }
        SessionKind::AppSignIn(_) => Err(MfaError::NoResend),
        _ => Err(MfaError::ChallengeNotFound),
    }
}

/// A challenge's code proves the phone only while it is still the user's, with that number: a
/// removed or replaced number (a lost or swapped SIM) signs no one in, and is texted no more
/// (which is what exempts these texts from the per-number budget).
async fn check_phone_kept(
    svc: &Service,
    c: &Caller,
    phone_id: &PhoneId,
    number: &PhoneNumber,
) -> Result<(), MfaError> {
    let phones = svc.store.list_phones(c.owner()).await?;
    if phones
        .iter()
        .any(|p| &p.phone_id == phone_id && &p.number == number)
    {
        Ok(())
    } else {
        Err(MfaError::ChallengeNotFound)
    }
}

/// `POST /v1/mfa/challenges/{id}/resend`. Sign-in challenges answer to enrollment, not to the
/// policy (as when they start); the resend also keeps the user's challenge texts a cooldown
/// apart (a resend of another live challenge is no way around it).
pub async fn resend(svc: &Service, c: &Caller, id: &ChallengeId) -> Result<Resent, MfaError> {
    let (e, phone_id) = load(svc, c, id).await?;
    let pending = code::resendable(svc, &e)?;
    check_phone_kept(svc, c, &phone_id, &pending.number).await?;
    let cooldown = ChallengeCooldown::take(svc, c).await?;
    cooldown
        .around(svc, code::resend(svc, c, &e, pending))
        .await
}

/// A signed assertion and when it expires.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Assertion {
    pub assertion: String,
    pub expires_at: UnixTime,
}

/// Signs `{iss, sub, app_id, amr, iat, exp, jti}` for the caller.
pub(crate) fn assert(svc: &Service, c: &Caller, amr: &str) -> Result<Assertion, MfaError> {
    let keys = svc.signing.as_ref().ok_or_else(|| {
        tracing::error!("no assertion signing key is configured (MFA_SIGNING_SECRET_ID)");
        MfaError::Internal
    })?;
    let iat = svc.clock.now();
    let exp = iat.plus_secs(ASSERTION_TTL_SECS);
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti)?;
    let claims = json!({
        "iss": svc.settings.issuer,
        "sub": c.user,
        "app_id": c.app,
        "amr": [amr],
        "iat": iat.0,
        "exp": exp.0,
        "jti": hex::encode(jti),
    });
    let assertion = keys.sign(&claims).ok_or(MfaError::Internal)?;
    Ok(Assertion {
        assertion,
        expires_at: exp,
    })
}

/// `POST /v1/mfa/challenges/{id}/code`: a right code, once, gives an assertion (`amr: ["sms"]`
/// for a text, `["otp"]` for an app: see [`super::totp::verify_sign_in`]).
pub async fn verify(
    svc: &Service,
    c: &Caller,
    id: &ChallengeId,
    guess: Code,
) -> Result<Assertion, MfaError> {
    let e = code::load(svc, c, &SessionId::SignIn(id.clone())).await?;
    let phone_id = match &e.kind {
        SessionKind::SignIn(phone_id) => phone_id.clone(),
        SessionKind::AppSignIn(app) => {
            let app = app.clone();
            return super::totp::verify_sign_in(svc, c, &e, id, &app, guess).await;
        }
        _ => return Err(MfaError::ChallengeNotFound),
    };
    let (pending, now) = code::check_guess(svc, c, &e, guess).await?;
    check_phone_kept(svc, c, &phone_id, &pending.number).await?;
    // The store checks it again in the completing write: a removal or replace that lands
    // between the read above and the write gives no assertion either.
    let change = PhoneChange::Challenge {
        phone_id: phone_id.clone(),
        number: pending.number.clone(),
    };
    match svc
        .store
        .complete_enrollment(e.code_use(&pending.code_id, now), &change)
        .await?
    {
        Completion::Done => {}
        Completion::PhonesChanged | Completion::NumberTaken => {
            return Err(MfaError::ChallengeNotFound);
        }
        Completion::CodeGone => return Err(code::explain_refused_attempt(svc, c, &e.id).await),
    }
    let assertion = assert(svc, c, "sms")?;
    tracing::info!(app_id = %c.app, user_id = %c.user, challenge_id = %id, "second factor verified");
    audit::user(
        svc,
        c,
        Action::ChallengeVerified,
        json!({ "challenge_id": id, "phone_id": phone_id, "masked": pending.number.masked(), "amr": "sms" }),
    )
    .await;
    Ok(assertion)
}
