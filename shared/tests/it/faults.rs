//! Faults and abuse over the in-memory store: a store that fails (as a throttled DynamoDB
//! does) at each step of a flow leaves nothing half-written and the flow retryable; a throttled
//! failure counter never lets a guess through; the per-application text budget trips as a
//! circuit breaker; a missing user costs an argon2 run; counts reach the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use mfa_shared::MfaError;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, audit, challenge, enrollment, recovery};
use mfa_shared::metrics::{Metric, Reason};
use mfa_shared::types::{EnrollmentId, PhoneId, UserId};

use crate::kit::{NUMBER, PASSWORD, ada, limits_with, world};

fn unavailable(e: &MfaError) -> bool {
    matches!(e, MfaError::ServiceUnavailable { retry_after } if *retry_after >= 1)
}

#[tokio::test]
async fn a_store_failure_when_recording_a_send_sends_nothing_and_counts_nothing() {
    let (w, c) = ada(limits_with(|l| l.texts_per_user_per_day = 1)).await;
    let id = w.start(&c).await;
    w.store.fail("begin_send");
    for _ in 0..3 {
        assert!(unavailable(&w.phone(&c, &id, NUMBER).await.unwrap_err()));
    }
    assert_eq!(w.texts(), 0, "nothing may be sent without its record");
    w.store.heal();
    // The one-text daily budget was given back each time, and the enrollment is untouched.
    let sent = w.phone(&c, &id, NUMBER).await.unwrap();
    assert_eq!(sent.attempts_remaining, 5);
    assert!(w.verify(&c, &id, &w.last_code()).await.is_ok());
}

#[tokio::test]
async fn a_throttled_budget_counter_sends_nothing_and_leaves_the_others_untouched() {
    let (w, c) = ada(limits_with(|l| l.texts_per_user_per_day = 1)).await;
    let id = w.start(&c).await;
    // The user's unit is taken first, then the number's fails: the user's must come back.
    w.store.fail_counter("counter_take", "txt-num#");
    assert!(unavailable(&w.phone(&c, &id, NUMBER).await.unwrap_err()));
    assert_eq!(w.texts(), 0);
    w.store.heal();
    assert!(w.phone(&c, &id, NUMBER).await.is_ok());
}

#[tokio::test]
async fn a_throttled_failure_counter_never_lets_a_guess_through() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    let right = w.last_code();
    w.store.fail_counter("counter_take", "codefail#");
    // Not even the right code: the guess is never compared without its unit.
    for code in [right.clone(), w.wrong_code()] {
        assert!(unavailable(&w.verify(&c, &id, &code).await.unwrap_err()));
    }
    assert!(!w.enrolled(&c).await);
    w.store.heal();
    // Nothing was counted: all five attempts remain, and the right code still works.
    let wrong = w.wrong_code();
    assert_eq!(
        w.verify(&c, &id, &wrong).await.unwrap_err(),
        MfaError::InvalidCode {
            attempts_remaining: 4
        }
    );
    assert!(w.verify(&c, &id, &right).await.is_ok());
    assert!(w.enrolled(&c).await);
}

#[tokio::test]
async fn a_throttled_attempt_write_compares_nothing_and_gives_the_user_unit_back() {
    let (w, c) = ada(limits_with(|l| l.code_failures_per_user_per_hour = 2)).await;
    let id = w.at_code(&c).await;
    let right = w.last_code();
    w.store.fail("take_code_attempt");
    for _ in 0..5 {
        assert!(unavailable(&w.verify(&c, &id, &right).await.unwrap_err()));
    }
    w.store.heal();
    // Five failed writes took none of the user's two hourly failures.
    let wrong = w.wrong_code();
    assert_eq!(
        w.verify(&c, &id, &wrong).await.unwrap_err(),
        MfaError::InvalidCode {
            attempts_remaining: 4
        }
    );
    assert!(w.verify(&c, &id, &right).await.is_ok());
}

#[tokio::test]
async fn a_failed_completion_leaves_the_code_usable() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    let right = w.last_code();
    w.store.fail_times("complete_enrollment", 1);
    assert!(unavailable(&w.verify(&c, &id, &right).await.unwrap_err()));
    assert!(!w.enrolled(&c).await);
    let done = w.verify(&c, &id, &right).await.unwrap();
    assert_eq!(done.step, "complete");
    assert!(w.enrolled(&c).await);
    // Single use still holds after the retry.
    assert!(matches!(
        w.verify(&c, &id, &right).await.unwrap_err(),
        MfaError::WrongStep { .. }
    ));
}

#[tokio::test]
async fn a_failed_lockout_write_still_refuses_the_password() {
    let (w, c) = ada(limits_with(|l| l.password_max_attempts = 2)).await;
    assert!(matches!(
        enrollment::start(&w.svc, &c, "nope".into()).await,
        Err(MfaError::InvalidPassword { .. })
    ));
    w.store.fail("counter_block");
    // The lock cannot be written: the request fails, and the counter is still at its limit.
    assert!(unavailable(
        &enrollment::start(&w.svc, &c, "nope".into())
            .await
            .unwrap_err()
    ));
    w.store.heal();
    assert!(matches!(
        enrollment::start(&w.svc, &c, PASSWORD.into()).await,
        Err(MfaError::TooManyAttempts { .. })
    ));
}

#[tokio::test]
async fn a_give_back_that_fails_only_over_counts() {
    let (w, c) = ada(limits_with(|l| l.password_max_attempts = 2)).await;
    w.store.fail("counter_give_back");
    // A right password whose unit cannot be given back still succeeds...
    w.start(&c).await;
    assert!(w.store.failures("counter_give_back") >= 1);
    w.store.heal();
    // ...and it stays counted (fail safe): one wrong password now reaches the limit of two.
    assert!(matches!(
        enrollment::start(&w.svc, &c, "nope".into()).await,
        Err(MfaError::TooManyAttempts { .. })
    ));
}

#[tokio::test]
async fn a_failed_read_answers_503_with_a_retry_delay_and_changes_nothing() {
    let (w, c) = ada(Limits::default()).await;
    w.store.fail("get_user");
    let err = enrollment::start(&w.svc, &c, PASSWORD.into())
        .await
        .unwrap_err();
    assert!(unavailable(&err));
    assert_eq!(err.status(), 503);
    w.store.heal();
    // The password attempt taken before the read was given back: all five remain.
    assert_eq!(
        enrollment::start(&w.svc, &c, "nope".into())
            .await
            .unwrap_err(),
        MfaError::InvalidPassword {
            attempts_remaining: 4
        }
    );
}

#[tokio::test]
async fn the_application_text_budget_is_a_circuit_breaker_across_users_numbers_and_ips() {
    let w = world(limits_with(|l| l.texts_per_app_per_day = 3)).await;
    for i in 0..3 {
        let c = w
            .user_at(&format!("u{i}"), &format!("198.51.100.{i}"))
            .await;
        let id = w.start(&c).await;
        w.phone(&c, &id, &format!("+1415555010{i}")).await.unwrap();
    }
    let c = w.user_at("u9", "203.0.113.9").await;
    let id = w.start(&c).await;
    let err = w.phone(&c, &id, "+14155550109").await.unwrap_err();
    assert_eq!(
        err,
        MfaError::RateLimited {
            retry_after: 86_400,
            limit: "texts per application per day"
        }
    );
    assert_eq!(err.status(), 429);
    assert_eq!(w.texts(), 3);
    // The refusal and its reason are in the audit log, and counted for the alarms.
    let page = audit::list(&w.svc, &w.app, Some(&c.user), 10, None)
        .await
        .unwrap();
    let blocked = page
        .events
        .iter()
        .find(|e| e.action == "rate_limit.blocked")
        .expect("an audit event for the block");
    assert_eq!(
        blocked.details["limit"], "texts per application per day",
        "{blocked:?}"
    );
    assert_eq!(w.metrics.total(Metric::RateLimited(Reason::TextsPerApp)), 1);
    // The next day the breaker closes again.
    w.advance(86_400);
    let id = w.start(&c).await;
    assert!(w.phone(&c, &id, "+14155550109").await.is_ok());
}

#[tokio::test]
async fn a_missing_user_runs_argon2_and_answers_like_a_wrong_password() {
    let w = world(Limits::default()).await;
    let real = w.user("ada").await;
    let ghost = Caller {
        app: w.app.clone(),
        user: UserId::parse("ghost").unwrap(),
        source_ip: "198.51.100.7".into(),
    };
    let a = enrollment::start(&w.svc, &ghost, PASSWORD.into())
        .await
        .unwrap_err();
    assert_eq!(
        w.metrics.total(Metric::PasswordChecked),
        1,
        "argon2 ran on the dummy hash"
    );
    let b = enrollment::start(&w.svc, &real, "nope".into())
        .await
        .unwrap_err();
    assert_eq!(w.metrics.total(Metric::PasswordChecked), 2);
    assert_eq!(a, b);
    assert_eq!(a.to_string(), b.to_string());
}

#[tokio::test]
async fn texts_and_verifications_are_counted_and_sms_failures_too() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.start(&c).await;
    w.outbox.set_sms_failing(true);
    assert_eq!(
        w.phone(&c, &id, NUMBER).await.unwrap_err(),
        MfaError::SmsSendFailed
    );
    w.outbox.set_sms_failing(false);
    w.phone(&c, &id, NUMBER).await.unwrap();
    let wrong = w.wrong_code();
    w.verify(&c, &id, &wrong).await.unwrap_err();
    w.outbox.set_email_failing(true);
    let done = w.verify(&c, &id, &w.last_code()).await.unwrap();
    assert_eq!(done.confirmation_email, "failed");
    let m = &w.metrics;
    assert_eq!(m.total(Metric::SmsSendError), 1);
    assert_eq!(m.total(Metric::TextSent), 1);
    assert_eq!(m.total(Metric::VerificationFailed), 1);
    assert_eq!(m.total(Metric::VerificationOk), 1);
    assert_eq!(m.total(Metric::EmailSendError), 1);
    // The email failure is on record, and the enrollment stands.
    let page = audit::list(&w.svc, &w.app, Some(&c.user), 20, None)
        .await
        .unwrap();
    assert!(
        page.events
            .iter()
            .any(|e| e.action == "notification.failed")
    );
    assert!(w.enrolled(&c).await);
}

#[tokio::test]
async fn the_wrong_recovery_code_that_uses_up_the_hour_answers_429() {
    let (w, c) = ada(limits_with(|l| l.code_failures_per_user_per_hour = 2)).await;
    let id = w.at_code(&c).await;
    w.verify(&c, &id, &w.last_code()).await.unwrap();
    recovery::create(&w.svc, &c, PASSWORD.into()).await.unwrap();
    assert_eq!(
        recovery::redeem(&w.svc, &c, "AAAAA-AAAAA")
            .await
            .unwrap_err(),
        MfaError::InvalidCode {
            attempts_remaining: 1
        }
    );
    let err = recovery::redeem(&w.svc, &c, "AAAAA-AAAAA")
        .await
        .unwrap_err();
    assert_eq!(err, MfaError::TooManyAttempts { retry_after: 3600 });
    assert_eq!(w.metrics.total(Metric::Lockout), 1);
}

#[test]
fn ids_are_128_random_bits_that_never_repeat_or_follow_a_pattern() {
    let ids: Vec<String> = (0..2000)
        .map(|_| EnrollmentId::generate().unwrap().as_str()[4..].to_owned())
        .chain((0..2000).map(|_| PhoneId::generate().unwrap().as_str()[3..].to_owned()))
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    // Every hex position takes every value: no fixed, counting or time-derived part.
    for pos in 0..32 {
        let seen: HashSet<u8> = ids.iter().map(|id| id.as_bytes()[pos]).collect();
        assert_eq!(seen.len(), 16, "position {pos} is not uniformly random");
    }
    // Consecutive ids share no prefix beyond chance (a counter or a clock would).
    let shared = ids
        .windows(2)
        .filter(|p| p[0].as_bytes()[..4] == p[1].as_bytes()[..4])
        .count();
    assert!(shared < 5, "{shared} consecutive ids share a 16-bit prefix");
}

/// SNS throttling (the account's SMS rate quota, after the SDK's retries): `503` with
/// `Retry-After`, not `502 sms_send_failed`, since the number was fine.
fn throttled(e: &MfaError) -> bool {
    *e == MfaError::ServiceUnavailable {
        retry_after: mfa_shared::flows::code::SMS_THROTTLED_RETRY_AFTER_SECS,
    }
}

#[tokio::test]
async fn a_throttled_text_answers_503_gives_every_budget_back_and_counts_sms_throttled() {
    // Every text budget at two: the first text and one more, then each refuses.
    let (w, c) = ada(limits_with(|l| {
        l.texts_per_user_per_day = 2;
        l.texts_per_number_per_hour = 2;
        l.texts_per_ip_per_hour = 2;
        l.max_sends_per_enrollment = 2;
    }))
    .await;
    let id = w.at_code(&c).await;
    w.advance(30);
    w.outbox.set_sms_throttled(true);
    for _ in 0..3 {
        let err = enrollment::resend(&w.svc, &c, &id).await.unwrap_err();
        assert!(throttled(&err), "{err:?}");
        assert_eq!(err.status(), 503);
        assert_eq!(err.retry_after(), Some(2));
        // And on the phone step, the same number again (a corrected number).
        let err = w.phone(&c, &id, NUMBER).await.unwrap_err();
        assert!(throttled(&err), "{err:?}");
    }
    w.outbox.set_sms_throttled(false);
    assert_eq!(w.texts(), 1);
    let m = &w.metrics;
    assert_eq!(m.total(Metric::SmsThrottled), 6);
    assert_eq!(
        m.total(Metric::SmsSendError),
        0,
        "a throttle is not a send error"
    );
    assert_eq!(m.total(Metric::TextSent), 1);
    // Six throttled texts cost nothing: the second text of every budget goes right away (no
    // cooldown was restarted), and its code completes the enrollment.
    let resent = enrollment::resend(&w.svc, &c, &id).await.unwrap();
    assert_eq!(resent.attempts_remaining, 5);
    assert_eq!(w.texts(), 2);
    assert!(w.verify(&c, &id, &w.last_code()).await.is_ok());
    assert!(w.enrolled(&c).await);
    // The counts hold exactly the two texts sent and none of the throttled: a third is refused.
    w.advance(30);
    let err = challenge::start(&w.svc, &c, None).await.unwrap_err();
    assert!(matches!(err, MfaError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn a_throttled_resend_leaves_the_earlier_code_pending_and_the_enrollment_usable() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    let earlier = w.last_code();
    w.advance(30);
    w.outbox.set_sms_throttled(true);
    let err = enrollment::resend(&w.svc, &c, &id).await.unwrap_err();
    assert!(throttled(&err), "{err:?}");
    w.outbox.set_sms_throttled(false);
    // The send was undone: the earlier code is the pending one again, and completes.
    let done = w.verify(&c, &id, &earlier).await.unwrap();
    assert_eq!(done.confirmation_email, "sent");
    assert!(w.enrolled(&c).await);
}

#[tokio::test]
async fn a_throttled_challenge_text_answers_503_and_the_retry_goes_at_once() {
    let (w, c) = ada(limits_with(|l| l.texts_per_user_per_day = 2)).await;
    w.enroll(&c, NUMBER, None).await;
    w.advance(30);
    w.outbox.set_sms_throttled(true);
    let err = challenge::start(&w.svc, &c, None).await.unwrap_err();
    assert!(throttled(&err), "{err:?}");
    w.outbox.set_sms_throttled(false);
    // No cooldown, no unit spent: the second text of the day goes now and signs in.
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    w.sign_in(&c, &sent.challenge_id, w.code()).await.unwrap();
    assert_eq!(w.metrics.total(Metric::SmsThrottled), 1);
    assert_eq!(w.metrics.total(Metric::SmsSendError), 0);
}
