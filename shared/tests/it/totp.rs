//! Authenticator apps (contract v2): setup, sign-in, replay and the window of steps, the policy's
//! factors, make-before-break replacement, the last-factor rule, the failure budget shared with
//! texted codes, and the sealed secret. Each case runs on the in-memory store and (when
//! `MFA_TEST_MOTO_URL` names a moto server; `#[ignore]`d otherwise) on DynamoDB.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use data_encoding::BASE32_NOPAD;
use mfa_shared::MfaError;
use mfa_shared::config::Limits;
use mfa_shared::flows::{
    Caller, admin, audit, challenge, enrollment, phones, policy, recovery, status, totp,
};
use mfa_shared::ports::{AppCodeUse, AppCompletion, AppSetup, Enrollment, SessionKind, Store};
use mfa_shared::totp::{TotpSecret, step_at};
use mfa_shared::types::ids::ChallengeId;
use mfa_shared::types::{Code, Enforcement, EnrollmentId, Factor, UnixTime};
use serde_json::Value;

use crate::kit::{self, PASSWORD, T0, World, unique};

kit::on_both!(
    "mfa-totp",
    an_app_set_up_with_its_code_signs_in_with_amr_otp,
    each_step_is_accepted_once_and_only_one_step_either_side,
    the_policy_decides_new_apps_but_a_bound_app_keeps_signing_in,
    a_new_app_replaces_the_old_one_only_once_verified,
    the_last_factor_rule_counts_phones_and_the_app,
    a_sealed_secret_moved_to_another_user_does_not_open,
    an_app_setup_has_no_phone_step_and_nothing_to_resend,
    wrong_app_codes_share_the_users_failure_budget,
    a_first_app_setup_cannot_complete_beside_a_phone_bound_meanwhile,
    an_admin_reset_removes_the_app_and_says_so,
);

/// A fresh application on `store` allowing both factors, MFA enabled (`enforcement`).
async fn world_with(store: Arc<dyn Store>, enforcement: Enforcement) -> World {
    let w = kit::deployment(store, Limits::default(), T0, &unique("app")).await;
    set_policy(&w, enforcement, &[Factor::Sms, Factor::Totp]).await;
    w
}

async fn world(store: Arc<dyn Store>) -> World {
    world_with(store, Enforcement::Optional).await
}

async fn set_policy(w: &World, enforcement: Enforcement, factors: &[Factor]) {
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: true,
        enforcement,
        allowed_countries: None,
        factors: Some(factors.to_vec()),
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    policy::update(&w.svc, &w.app, change, None, "admin")
        .await
        .unwrap();
}

/// The secret a setup showed, as an app stores it.
fn secret_of(started: &totp::SetupStarted) -> TotpSecret {
    TotpSecret::from_bytes(&BASE32_NOPAD.decode(started.secret.as_bytes()).unwrap()).unwrap()
}

/// What the app shows `steps` steps from the world's now.
fn app_code(w: &World, secret: &TotpSecret, steps: i64) -> Code {
    secret.code_at_step(step_at(w.svc.clock.now()) + steps)
}

async fn begin(w: &World, c: &Caller, label: Option<&str>) -> totp::SetupStarted {
    totp::begin(&w.svc, c, PASSWORD.into(), label.map(str::to_owned))
        .await
        .unwrap()
}

async fn verify(
    w: &World,
    c: &Caller,
    id: &EnrollmentId,
    code: Code,
) -> Result<enrollment::Verified, MfaError> {
    enrollment::verify_code(&w.svc, c, id, code).await
}

/// Sets an app up for `c` with the current step's code; returns its secret.
async fn set_up(w: &World, c: &Caller) -> TotpSecret {
    let started = begin(w, c, Some("Phone app")).await;
    let secret = secret_of(&started);
    verify(w, c, &started.enrollment_id, app_code(w, &secret, 0))
        .await
        .unwrap();
    secret
}

async fn app_challenge(w: &World, c: &Caller) -> ChallengeId {
    match challenge::begin(&w.svc, c, None, Some(Factor::Totp))
        .await
        .unwrap()
    {
        challenge::Started::App(waiting) => {
            assert_eq!(waiting.factor, Factor::Totp);
            assert_eq!(waiting.attempts_remaining, 5);
            waiting.challenge_id
        }
        other => panic!("an app challenge sends no text: {other:?}"),
    }
}

/// The claims of an assertion (its signature is the signin suite's business).
fn claims(assertion: &str) -> Value {
    let payload = assertion.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn audited(w: &World, c: &Caller, action: &str) -> usize {
    let page = audit::list(&w.svc, &w.app, Some(&c.user), 100, None)
        .await
        .unwrap();
    page.events.iter().filter(|e| e.action == action).count()
}

async fn an_app_set_up_with_its_code_signs_in_with_amr_otp(store: Arc<dyn Store>) {
    let w = world(store).await;
    let c = w.user("ada").await;
    let started = begin(&w, &c, Some("Phone app")).await;
    assert_eq!(started.purpose, "totp");
    assert_eq!(started.secret.len(), 32, "20 bytes in base32, no padding");
    // The issuer is the application's name: its id until a display name is set.
    let issuer = w.app.as_str();
    assert_eq!(
        started.otpauth_uri,
        format!(
            "otpauth://totp/{issuer}:ada%40example.com?secret={}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
            started.secret
        )
    );
    assert!(!w.enrolled(&c).await, "not before the app's code");
    let secret = secret_of(&started);
    let done = verify(&w, &c, &started.enrollment_id, app_code(&w, &secret, 0))
        .await
        .unwrap();
    let enrollment::Verified::App(done) = done else {
        panic!("an app setup completes as an app: {done:?}");
    };
    assert_eq!(done.totp.label.as_deref(), Some("Phone app"));
    assert_eq!(done.confirmation_email, "sent");
    let s = status::status(&w.svc, &c).await.unwrap();
    assert!(s.enrolled && s.phones.is_empty());
    assert_eq!(s.factors, vec![Factor::Sms, Factor::Totp]);
    let app = s.totp.expect("status shows the app");
    assert_eq!((app.verified_at, app.last_used_at), (UnixTime(T0), None));
    let (texts, emails) = kit::sent(&w.outbox);
    assert!(texts.is_empty(), "nothing is texted for an app");
    assert!(emails[0].0.contains("Two-step verification is now on"));
    assert_eq!(audited(&w, &c, "totp.added").await, 1);

    // Sign-in, a step later: no text, an assertion of the app.
    w.advance(30);
    let id = app_challenge(&w, &c).await;
    let assertion = challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, 0))
        .await
        .unwrap();
    let claims = claims(&assertion.assertion);
    assert_eq!(claims["amr"], serde_json::json!(["otp"]));
    assert_eq!(claims["sub"], "ada");
    assert_eq!(kit::sent(&w.outbox).0.len(), 0);
    let app = status::status(&w.svc, &c).await.unwrap().totp.unwrap();
    assert_eq!(app.last_used_at, Some(UnixTime(T0 + 30)));
    // A user with only an app, asking without `factor`, gets the app.
    assert!(matches!(
        challenge::begin(&w.svc, &c, None, None).await.unwrap(),
        challenge::Started::App(_)
    ));
}

async fn each_step_is_accepted_once_and_only_one_step_either_side(store: Arc<dyn Store>) {
    let w = world(store).await;
    let c = w.user("ada").await;
    // Enrolled with the code of step S (now).
    let secret = set_up(&w, &c).await;

    // The code that enrolled cannot sign in: the same step, replayed in another flow.
    let id = app_challenge(&w, &c).await;
    assert_eq!(
        challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, 0))
            .await
            .unwrap_err(),
        MfaError::InvalidCode {
            attempts_remaining: 4
        }
    );
    // Two steps away either side: wrong.
    for steps in [-2, 2] {
        let code = app_code(&w, &secret, steps);
        let err = challenge::verify(&w.svc, &c, &id, code).await.unwrap_err();
        assert!(
            matches!(err, MfaError::InvalidCode { .. }),
            "{steps}: {err:?}"
        );
    }
    // The previous step's code is accepted (a slow typist), once.
    challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, -1))
        .await
        .unwrap();
    let id = app_challenge(&w, &c).await;
    let err = challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, -1))
        .await
        .unwrap_err();
    assert!(matches!(err, MfaError::InvalidCode { .. }), "{err:?}");
    // The next step's (a fast clock), once.
    challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, 1))
        .await
        .unwrap();
    let id = app_challenge(&w, &c).await;
    let err = challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, MfaError::InvalidCode { .. }), "{err:?}");
    // Time moves on: the next steps are fresh.
    w.advance(60);
    challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, 0))
        .await
        .unwrap();
}

async fn the_policy_decides_new_apps_but_a_bound_app_keeps_signing_in(store: Arc<dyn Store>) {
    let w = world(store).await;
    let (ada, bob) = (w.user("ada").await, w.user("bob").await);
    let secret = set_up(&w, &ada).await;
    set_policy(&w, Enforcement::Optional, &[Factor::Sms]).await;
    assert_eq!(
        status::status(&w.svc, &ada).await.unwrap().factors,
        vec![Factor::Sms]
    );
    // No new app …
    assert_eq!(
        totp::begin(&w.svc, &bob, PASSWORD.into(), None)
            .await
            .unwrap_err(),
        MfaError::FactorNotAllowed {
            factor: "authenticator apps"
        }
    );
    assert_eq!(
        challenge::begin(&w.svc, &bob, None, Some(Factor::Totp))
            .await
            .unwrap_err(),
        MfaError::FactorNotAllowed {
            factor: "authenticator apps"
        }
    );
    // … but the bound one still signs in.
    w.advance(30);
    let id = app_challenge(&w, &ada).await;
    challenge::verify(&w.svc, &ada, &id, app_code(&w, &secret, 0))
        .await
        .unwrap();
    // And a policy of apps only refuses new phones.
    set_policy(&w, Enforcement::Optional, &[Factor::Totp]).await;
    assert_eq!(
        enrollment::start(&w.svc, &bob, PASSWORD.into())
            .await
            .unwrap_err(),
        MfaError::FactorNotAllowed {
            factor: "text messages"
        }
    );
}

async fn a_new_app_replaces_the_old_one_only_once_verified(store: Arc<dyn Store>) {
    let w = world(store).await;
    let c = w.user("ada").await;
    let old = set_up(&w, &c).await;
    let started = begin(&w, &c, Some("New phone")).await;
    let new = secret_of(&started);
    // Until the new app's code is verified, the old app is the one in force.
    w.advance(30);
    let id = app_challenge(&w, &c).await;
    assert!(matches!(
        challenge::verify(&w.svc, &c, &id, app_code(&w, &new, 0))
            .await
            .unwrap_err(),
        MfaError::InvalidCode { .. }
    ));
    challenge::verify(&w.svc, &c, &id, app_code(&w, &old, 0))
        .await
        .unwrap();
    let wrong = Code::parse(&format!(
        "{:06}",
        (app_code(&w, &new, 1).expose().parse::<u32>().unwrap() + 1) % 1_000_000
    ))
    .unwrap();
    let _ = verify(&w, &c, &started.enrollment_id, wrong).await;
    assert_eq!(
        status::status(&w.svc, &c)
            .await
            .unwrap()
            .totp
            .unwrap()
            .label
            .as_deref(),
        Some("Phone app")
    );
    // Verified: the new app replaces the old one.
    w.advance(30);
    verify(&w, &c, &started.enrollment_id, app_code(&w, &new, 0))
        .await
        .unwrap();
    let app = status::status(&w.svc, &c).await.unwrap().totp.unwrap();
    assert_eq!(app.label.as_deref(), Some("New phone"));
    w.advance(30);
    let id = app_challenge(&w, &c).await;
    assert!(matches!(
        challenge::verify(&w.svc, &c, &id, app_code(&w, &old, 0))
            .await
            .unwrap_err(),
        MfaError::InvalidCode { .. }
    ));
    challenge::verify(&w.svc, &c, &id, app_code(&w, &new, 0))
        .await
        .unwrap();
    assert_eq!(audited(&w, &c, "totp.replaced").await, 1);
    let emails = kit::sent(&w.outbox).1;
    assert!(
        emails
            .iter()
            .any(|(subject, _)| subject.contains("was replaced"))
    );
}

async fn the_last_factor_rule_counts_phones_and_the_app(store: Arc<dyn Store>) {
    let w = world_with(store, Enforcement::Required).await;
    let c = w.user("ada").await;
    w.enroll(&c, "+14155550101", None).await;
    set_up(&w, &c).await;
    recovery::create(&w.svc, &c, PASSWORD.into()).await.unwrap();
    // The phone is not the last factor: it goes, and the recovery codes stay.
    let phone = phones::list(&w.svc, &c).await.unwrap()[0].phone_id.clone();
    phones::remove(&w.svc, &c, &phone, PASSWORD.into())
        .await
        .unwrap();
    let s = status::status(&w.svc, &c).await.unwrap();
    assert!(s.enrolled && s.phones.is_empty());
    assert_eq!(s.recovery_codes_remaining, 10);
    // The app now is, under `required`.
    assert_eq!(
        totp::remove(&w.svc, &c, PASSWORD.into()).await.unwrap_err(),
        MfaError::LastFactorRequired
    );
    // Under `optional` it goes, un-enrolling the user and taking the recovery codes.
    set_policy(&w, Enforcement::Optional, &[Factor::Sms, Factor::Totp]).await;
    totp::remove(&w.svc, &c, PASSWORD.into()).await.unwrap();
    let s = status::status(&w.svc, &c).await.unwrap();
    assert!(!s.enrolled && s.totp.is_none());
    assert_eq!(s.recovery_codes_remaining, 0);
    assert_eq!(
        totp::remove(&w.svc, &c, PASSWORD.into()).await.unwrap_err(),
        MfaError::TotpNotFound
    );
    assert_eq!(audited(&w, &c, "totp.removed").await, 1);
    let emails = kit::sent(&w.outbox).1;
    assert!(
        emails
            .last()
            .unwrap()
            .1
            .contains("two-step verification is now off")
    );
}

async fn a_sealed_secret_moved_to_another_user_does_not_open(store: Arc<dyn Store>) {
    let w = world(store).await;
    let (ada, bob) = (w.user("ada").await, w.user("bob").await);
    let secret = set_up(&w, &ada).await;
    let stolen = w.svc.store.get_app(ada.owner()).await.unwrap().unwrap();
    // Ada's sealed value, as it is stored, bound to Bob through the store (as someone with
    // write access to the table could copy it): a setup session for Bob carrying it.
    let now = w.svc.clock.now();
    let kind = SessionKind::AppSetup(AppSetup {
        authenticator: stolen.authenticator_id.clone(),
        sealed: stolen.sealed.clone(),
        label: None,
        first: true,
    });
    let e = Enrollment::begin(&bob.app, &bob.user, kind, now, 600).unwrap();
    w.svc.store.create_enrollment(&e).await.unwrap();
    let step = step_at(now) + 5;
    let done = w
        .svc
        .store
        .complete_app(AppCodeUse {
            session: &e,
            step,
            step_remembered_until: UnixTime((step + 3) * 30),
            now,
            reseal: None,
            seen: None,
        })
        .await
        .unwrap();
    assert_eq!(done, AppCompletion::Done);
    // Bob's item holds Ada's ciphertext, bound to Ada: it does not open for Bob, so Ada's
    // codes sign no one in as Bob (and nothing is compared).
    w.advance(30);
    let id = app_challenge(&w, &bob).await;
    assert_eq!(
        challenge::verify(&w.svc, &bob, &id, app_code(&w, &secret, 0))
            .await
            .unwrap_err(),
        MfaError::ServiceUnavailable { retry_after: 1 }
    );
    // Ada's own still works.
    let id = app_challenge(&w, &ada).await;
    challenge::verify(&w.svc, &ada, &id, app_code(&w, &secret, 0))
        .await
        .unwrap();
}

async fn an_app_setup_has_no_phone_step_and_nothing_to_resend(store: Arc<dyn Store>) {
    let w = world(store).await;
    let c = w.user("ada").await;
    let started = begin(&w, &c, None).await;
    let id = &started.enrollment_id;
    assert_eq!(
        w.phone(&c, id, kit::NUMBER).await.unwrap_err(),
        MfaError::WrongStep { current: "code" }
    );
    assert_eq!(
        enrollment::resend(&w.svc, &c, id).await.unwrap_err(),
        MfaError::NoResend
    );
    assert_eq!(
        enrollment::verify(&w.svc, &c, id, app_code(&w, &secret_of(&started), 0))
            .await
            .unwrap_err(),
        MfaError::WrongStep { current: "code" },
        "the phone-only entry point refuses an app setup before any attempt"
    );
    verify(&w, &c, id, app_code(&w, &secret_of(&started), 0))
        .await
        .unwrap();
    let challenge = app_challenge(&w, &c).await;
    assert_eq!(
        challenge::resend(&w.svc, &c, &challenge).await.unwrap_err(),
        MfaError::NoResend
    );
    assert_eq!(kit::sent(&w.outbox).0.len(), 0);
}

async fn wrong_app_codes_share_the_users_failure_budget(store: Arc<dyn Store>) {
    let mut w = world(store).await;
    w.svc.limits.code_failures_per_user_per_hour = 3;
    let c = w.user("ada").await;
    let secret = set_up(&w, &c).await;
    let wrong = |w: &World| {
        let right: u32 = app_code(w, &secret, 0).expose().parse().unwrap();
        // Not the code of any step in the window.
        (1..)
            .map(|d| Code::parse(&format!("{:06}", (right + d) % 1_000_000)).unwrap())
            .find(|code| secret.matching_step(code, w.svc.clock.now()).is_none())
            .unwrap()
    };
    // Two wrong app codes in one challenge, one in another: the budget of three is spent.
    let id = app_challenge(&w, &c).await;
    for _ in 0..2 {
        let err = challenge::verify(&w.svc, &c, &id, wrong(&w))
            .await
            .unwrap_err();
        assert!(matches!(err, MfaError::InvalidCode { .. }), "{err:?}");
    }
    let id = app_challenge(&w, &c).await;
    let err = challenge::verify(&w.svc, &c, &id, wrong(&w))
        .await
        .unwrap_err();
    assert!(matches!(err, MfaError::InvalidCode { .. }), "{err:?}");
    // Now even a text's code is refused before it is compared.
    let err = challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, MfaError::TooManyAttempts { .. }), "{err:?}");
    // Five wrong codes burn an app challenge: start a new one at once.
    w.svc.limits.code_failures_per_user_per_hour = 100;
    let id = app_challenge(&w, &c).await;
    for _ in 0..4 {
        challenge::verify(&w.svc, &c, &id, wrong(&w))
            .await
            .unwrap_err();
    }
    assert_eq!(
        challenge::verify(&w.svc, &c, &id, wrong(&w))
            .await
            .unwrap_err(),
        MfaError::TooManyAttempts { retry_after: 1 }
    );
    assert_eq!(
        challenge::verify(&w.svc, &c, &id, app_code(&w, &secret, 1))
            .await
            .unwrap_err(),
        MfaError::TooManyAttempts { retry_after: 1 },
        "a burned challenge takes no more guesses, right or wrong"
    );
    assert_eq!(audited(&w, &c, "code.locked").await, 1);
}

async fn a_first_app_setup_cannot_complete_beside_a_phone_bound_meanwhile(store: Arc<dyn Store>) {
    let w = world(store).await;
    let c = w.user("ada").await;
    // Begun with the password alone (no factor yet) …
    let started = begin(&w, &c, None).await;
    // … then the owner enrolls a phone: the app can no longer bind as a first factor.
    w.enroll(&c, "+14155550101", None).await;
    assert_eq!(
        verify(
            &w,
            &c,
            &started.enrollment_id,
            app_code(&w, &secret_of(&started), 0)
        )
        .await
        .unwrap_err(),
        MfaError::AlreadyEnrolled
    );
    assert!(status::status(&w.svc, &c).await.unwrap().totp.is_none());
}

async fn an_admin_reset_removes_the_app_and_says_so(store: Arc<dyn Store>) {
    let w = world(store).await;
    let c = w.user("ada").await;
    let secret = set_up(&w, &c).await;
    admin::reset(&w.svc, &w.app, &c.user, "admin@example.com")
        .await
        .unwrap();
    let s = status::status(&w.svc, &c).await.unwrap();
    assert!(!s.enrolled && s.totp.is_none());
    let email = kit::sent(&w.outbox).1.pop().unwrap();
    assert!(email.0.contains("was reset"), "{email:?}");
    assert!(
        email.1.contains("Authenticator app removed: yes"),
        "{email:?}"
    );
    // The app's codes sign no one in any more.
    w.advance(30);
    assert_eq!(
        challenge::begin(&w.svc, &c, None, Some(Factor::Totp))
            .await
            .unwrap_err(),
        MfaError::NotEnrolled
    );
    // And the user may set up a new one as their first factor.
    let started = begin(&w, &c, None).await;
    assert_ne!(secret_of(&started), secret);
    verify(
        &w,
        &c,
        &started.enrollment_id,
        app_code(&w, &secret_of(&started), 0),
    )
    .await
    .unwrap();
}
