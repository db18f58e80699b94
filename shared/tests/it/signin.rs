//! The second factor at sign-in: challenges, assertions verified with the JWKS, recovery codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mfa_shared::MfaError;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, admin, challenge, enrollment, phones, policy, recovery, status};
use mfa_shared::types::ids::ChallengeId;
use mfa_shared::types::{Code, Enforcement, EnrollmentId, PhoneId};
use serde_json::Value;

use crate::kit::{self, PASSWORD, World, set_policy};

async fn world() -> (World, Caller) {
    // Assertions carry real times: the verifier checks `exp` against the wall clock.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let w = kit::deployment(store, Limits::default(), now, "acme").await;
    set_policy(&w.svc, &w.app, true, true, Enforcement::Optional).await;
    let c = w.user("ada").await;
    w.enroll(&c, "+14155550101", None).await;
    (w, c)
}

fn jwks(w: &World) -> Value {
    w.svc.signing.as_ref().unwrap().jwks()
}

/// What the platform's login does: find the key by `kid` in the JWKS, verify, check `exp`.
fn verify(jwks: &Value, token: &str) -> Result<Value, String> {
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or("unknown kid")?;
    let key =
        DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_challenge_code_gives_an_assertion_the_jwks_verifies() {
    let (w, c) = world().await;
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    assert_eq!(sent.phone.masked, "+1••••••0101");
    assert_eq!(w.outbox.snapshot().sms.last().unwrap().to, "+14155550101");
    let a = w.sign_in(&c, &sent.challenge_id, w.code()).await.unwrap();
    let claims = verify(&jwks(&w), &a.assertion).unwrap();
    assert_eq!(
        (claims["sub"].as_str(), claims["app_id"].as_str()),
        (Some("ada"), Some("acme"))
    );
    assert_eq!(claims["amr"], serde_json::json!(["sms"]));
    assert_eq!(claims["iss"], "mfa");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    assert_eq!(a.expires_at.0, claims["exp"].as_i64().unwrap());
}

#[tokio::test]
async fn a_challenge_code_is_single_use() {
    let (w, c) = world().await;
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    let code = w.code();
    w.sign_in(&c, &sent.challenge_id, code.clone())
        .await
        .unwrap();
    let replay = w.sign_in(&c, &sent.challenge_id, code).await.unwrap_err();
    assert_eq!(
        replay,
        MfaError::WrongStep {
            current: "complete"
        }
    );
}

#[tokio::test]
async fn enrollment_and_challenge_codes_never_stand_for_each_other() {
    let (w, c) = world().await;
    // A challenge's id on the enrollment routes, and the reverse, are simply not found.
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    let as_enrollment = EnrollmentId::parse(sent.challenge_id.as_str());
    assert!(
        as_enrollment.is_err(),
        "challenge ids do not parse as enrollment ids"
    );
    w.clock.advance(31);
    let add = w.add_phone(&c, "+14155550102").await;
    let enrollment_id = add.enrollment_id.unwrap();
    let as_challenge = ChallengeId::parse(enrollment_id.as_str());
    assert!(as_challenge.is_err());
    // Even with the ids forced (the same random part under the other prefix), each kind's
    // routes find only their own kind.
    let forged = ChallengeId::parse(&enrollment_id.as_str().replacen("enr_", "chl_", 1)).unwrap();
    let enrollment_code = w.code();
    assert_eq!(
        w.sign_in(&c, &forged, enrollment_code).await.unwrap_err(),
        MfaError::ChallengeNotFound
    );
    let forged =
        EnrollmentId::parse(&sent.challenge_id.as_str().replacen("chl_", "enr_", 1)).unwrap();
    assert_eq!(
        enrollment::verify(&w.svc, &c, &forged, w.code())
            .await
            .unwrap_err(),
        MfaError::EnrollmentNotFound
    );
}

#[tokio::test]
async fn challenges_follow_the_same_limits_and_share_the_failure_budget() {
    let (w, c) = world().await;
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    let right: u32 = w.outbox.snapshot().sms.last().unwrap().body[..6]
        .parse()
        .unwrap();
    let wrong = Code::parse(&format!("{:06}", (right + 1) % 1_000_000)).unwrap();
    for remaining in [4, 3, 2, 1] {
        assert_eq!(
            w.sign_in(&c, &sent.challenge_id, wrong.clone())
                .await
                .unwrap_err(),
            MfaError::InvalidCode {
                attempts_remaining: remaining
            }
        );
    }
    assert!(matches!(
        w.sign_in(&c, &sent.challenge_id, wrong).await.unwrap_err(),
        MfaError::TooManyAttempts { .. }
    ));
    assert!(matches!(
        challenge::resend(&w.svc, &c, &sent.challenge_id)
            .await
            .unwrap_err(),
        MfaError::ResendTooSoon { .. }
    ));
    w.clock.advance(30);
    challenge::resend(&w.svc, &c, &sent.challenge_id)
        .await
        .unwrap();
    assert!(w.sign_in(&c, &sent.challenge_id, w.code()).await.is_ok());
}

#[tokio::test]
async fn a_named_phone_gets_the_text_and_strangers_get_nothing() {
    let (w, c) = world().await;
    w.clock.advance(31);
    let add = w.add_phone(&c, "+14155550102").await;
    enrollment::verify(&w.svc, &c, add.enrollment_id.as_ref().unwrap(), w.code())
        .await
        .unwrap();
    let second = phones::list(&w.svc, &c).await.unwrap()[1].phone_id.clone();
    challenge::start(&w.svc, &c, Some(second)).await.unwrap();
    assert_eq!(w.outbox.snapshot().sms.last().unwrap().to, "+14155550102");
    let unknown = PhoneId::generate().unwrap();
    assert_eq!(
        challenge::start(&w.svc, &c, Some(unknown))
            .await
            .unwrap_err(),
        MfaError::PhoneNotFound
    );
    admin::reset(&w.svc, &c.app, &c.user, "admin")
        .await
        .unwrap();
    assert_eq!(
        challenge::start(&w.svc, &c, None).await.unwrap_err(),
        MfaError::NotEnrolled
    );
}

#[tokio::test]
async fn recovery_codes_work_once_each_and_a_new_set_replaces_the_old() {
    let (w, c) = world().await;
    let set = recovery::create(&w.svc, &c, PASSWORD.into()).await.unwrap();
    assert_eq!(set.codes.len(), 10);
    assert_eq!(
        status::status(&w.svc, &c)
            .await
            .unwrap()
            .recovery_codes_remaining,
        10
    );
    assert!(
        w.outbox
            .snapshot()
            .email
            .last()
            .unwrap()
            .subject
            .contains("recovery codes")
    );

    let used = recovery::redeem(&w.svc, &c, &set.codes[0].to_lowercase())
        .await
        .unwrap();
    assert_eq!(used.remaining, 9);
    let claims = verify(&jwks(&w), &used.assertion).unwrap();
    assert_eq!(claims["amr"], serde_json::json!(["recovery"]));
    assert!(
        w.outbox
            .snapshot()
            .email
            .last()
            .unwrap()
            .subject
            .contains("recovery code was used")
    );
    assert!(matches!(
        recovery::redeem(&w.svc, &c, &set.codes[0])
            .await
            .unwrap_err(),
        MfaError::InvalidCode { .. }
    ));

    let fresh = recovery::create(&w.svc, &c, PASSWORD.into()).await.unwrap();
    assert!(matches!(
        recovery::redeem(&w.svc, &c, &set.codes[1])
            .await
            .unwrap_err(),
        MfaError::InvalidCode { .. }
    ));
    assert_eq!(
        recovery::redeem(&w.svc, &c, &fresh.codes[1])
            .await
            .unwrap()
            .remaining,
        9
    );
    assert!(matches!(
        recovery::redeem(&w.svc, &c, "not a code")
            .await
            .unwrap_err(),
        MfaError::InvalidRequest(_)
    ));
    assert!(matches!(
        recovery::create(&w.svc, &c, "nope".into())
            .await
            .unwrap_err(),
        MfaError::InvalidPassword { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_recovery_code_used_twice_at_once_succeeds_once() {
    let (w, c) = world().await;
    let w = Arc::new(w);
    let set = recovery::create(&w.svc, &c, PASSWORD.into()).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (w, c, code) = (w.clone(), c.clone(), set.codes[3].clone());
            tokio::spawn(async move { recovery::redeem(&w.svc, &c, &code).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        status::status(&w.svc, &c)
            .await
            .unwrap()
            .recovery_codes_remaining,
        9
    );
}

#[tokio::test]
async fn recovery_codes_go_with_the_last_phone() {
    let (w, c) = world().await;
    let set = recovery::create(&w.svc, &c, PASSWORD.into()).await.unwrap();
    let only = phones::list(&w.svc, &c).await.unwrap()[0].phone_id.clone();
    phones::remove(&w.svc, &c, &only, PASSWORD.into())
        .await
        .unwrap();
    assert_eq!(
        status::status(&w.svc, &c)
            .await
            .unwrap()
            .recovery_codes_remaining,
        0
    );
    assert_eq!(
        recovery::redeem(&w.svc, &c, &set.codes[0])
            .await
            .unwrap_err(),
        MfaError::NotEnrolled
    );
}

#[tokio::test]
async fn a_code_to_a_number_no_longer_the_users_signs_no_one_in() {
    let (w, c) = world().await;
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    let code = w.code();
    // The user replaces that number (a swapped SIM) before the code is typed.
    w.clock.advance(31);
    w.replace_first_phone(&c, "+14155550199").await;
    assert_eq!(
        w.sign_in(&c, &sent.challenge_id, code).await.unwrap_err(),
        MfaError::ChallengeNotFound
    );
}

#[tokio::test]
async fn a_challenge_resend_does_not_depend_on_the_policy() {
    let (w, c) = world().await;
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    let change = policy::PolicyChange {
        enabled: false,
        include_in_signup: false,
        enforcement: Enforcement::Optional,
        allowed_countries: None,
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    policy::update(&w.svc, &c.app, change, None, "admin")
        .await
        .unwrap();
    w.clock.advance(30);
    challenge::resend(&w.svc, &c, &sent.challenge_id)
        .await
        .unwrap();
    assert!(w.sign_in(&c, &sent.challenge_id, w.code()).await.is_ok());
}
