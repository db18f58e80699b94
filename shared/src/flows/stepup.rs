//! Step-up (contract v2): an enrolled user proves a second factor before changing factors.
//!
//! Adding, replacing or removing a phone, setting up or removing an authenticator app, and
//! making recovery codes need the header
//! `MFA-Assertion`: an assertion this service issued (SMS challenge `amr: ["sms"]`, recovery
//! code `["recovery"]`, authenticator app `["otp"]`) to the same `sub` and `app_id`, unexpired,
//! signed by a key this service publishes. The HTTP handlers call [`require`] before the flow
//! runs, so a request without a valid proof never reaches the password check (it is never a
//! password attempt). A user with no verified factor yet needs no proof: the first factor is
//! bound with the password alone, as Start does. An assertion may serve several changes within
//! its 5 minutes (the contract); it is not single-use here, since the platform's login is the
//! party that remembers `jti`.
//!
//! Verification: a compact JWS with `alg: EdDSA` and a `kid` naming a key this service
//! publishes (see [`crate::adapters::jwks`]: verifiers hold public keys only), checked with
//! `verify_strict`; then `iss`, `sub`, `app_id`, `exp` (and `iat` not in the future) and `amr`.
//! No secret is compared here (the ids are public and the signature check is ed25519-dalek's),
//! and the assertion itself is never logged: a refusal logs only its reason.

use serde_json::Value;

use crate::error::MfaError;
use crate::service::Service;
use crate::signing::parse_jws;

use super::Caller;

/// The request header that carries the proof.
pub const HEADER: &str = "mfa-assertion";

/// The `amr` values this service issues.
const ISSUED_AMR: [&str; 3] = ["sms", "recovery", "otp"];

/// Allowed clock difference for `iat` (between our own functions' clocks).
const IAT_SKEW_SECS: i64 = 60;

/// Whether the caller already has a verified factor (a phone or an authenticator app), and so
/// needs a proof for changes.
async fn has_factor(svc: &Service, c: &Caller) -> Result<bool, MfaError> {
    Ok(super::factors::Factors::of(svc, c).await?.any())
}

/// Checks the step-up proof for a change to `c`'s factors: `Ok` when the user has no factor
/// yet or `assertion` is valid for them; `403 step_up_required` otherwise (`503` if the
/// store or the published keys cannot be read). Never logs the assertion.
pub async fn require(svc: &Service, c: &Caller, assertion: Option<&str>) -> Result<(), MfaError> {
    if !has_factor(svc, c).await? {
        return Ok(());
    }
    let Some(token) = assertion.map(str::trim).filter(|t| !t.is_empty()) else {
        tracing::info!(app_id = %c.app, user_id = %c.user, "step-up proof missing");
        return Err(MfaError::StepUpRequired);
    };
    match verify(svc, c, token).await? {
        Ok(()) => Ok(()),
        Err(why) => {
            tracing::info!(app_id = %c.app, user_id = %c.user, reason = why, "step-up proof refused");
            Err(MfaError::StepUpRequired)
        }
    }
}

/// Verifies `token` for `c`: the inner `Err` names why it was refused (for the log line).
async fn verify(
    svc: &Service,
    c: &Caller,
    token: &str,
) -> Result<Result<(), &'static str>, MfaError> {
    let Some(jws) = parse_jws(token) else {
        return Ok(Err("malformed"));
    };
    let Some(key) = svc.assertion_keys.key(&jws.kid).await? else {
        return Ok(Err("unknown kid"));
    };
    if !jws.signed_by(&key) {
        return Ok(Err("bad signature"));
    }
    Ok(check_claims(svc, c, &jws.claims))
}

/// The claims of a correctly signed assertion: ours (`iss`), for this user of this
/// application, unexpired, and from a factor we issue.
fn check_claims(svc: &Service, c: &Caller, claims: &Value) -> Result<(), &'static str> {
    let now = svc.clock.now().0;
    if claims["iss"].as_str() != Some(svc.settings.issuer.as_str()) {
        return Err("issuer");
    }
    // Ids, not secrets: compared as they are (the signature already vouches for them).
    if claims["sub"].as_str() != Some(c.user.as_str())
        || claims["app_id"].as_str() != Some(c.app.as_str())
    {
        return Err("another user");
    }
    match claims["exp"].as_i64() {
        Some(exp) if now < exp => {}
        _ => return Err("expired"),
    }
    if claims["iat"]
        .as_i64()
        .is_some_and(|iat| iat > now + IAT_SKEW_SECS)
    {
        return Err("issued in the future");
    }
    let amr = claims["amr"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if amr.is_empty()
        || !amr
            .iter()
            .all(|m| m.as_str().is_some_and(|m| ISSUED_AMR.contains(&m)))
    {
        return Err("amr");
    }
    Ok(())
}
