//! The flows over the in-memory store with a fixed clock: every limit of the contract at its
//! boundary, lockouts, single use under concurrency, and provider failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mfa_shared::MfaError;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, enrollment, policy, status};
use mfa_shared::types::{AppId, Enforcement, UserId};

use crate::kit::{NUMBER, PASSWORD, T0, ada, limits_with, set_policy, world};

#[tokio::test]
async fn the_whole_enrollment_path() {
    let (w, c) = ada(Limits::default()).await;
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!((s.prompt, s.can_skip, s.enrolled), ("enroll", true, false));

    let id = w.start(&c).await;
    let sent = w.phone(&c, &id, "+1 (415) 555-0123").await.unwrap();
    assert_eq!(sent.phone.masked, "+1••••••0123");
    assert_eq!(sent.attempts_remaining, 5);
    let text = &w.outbox.snapshot().sms[0];
    assert_eq!(text.to, NUMBER);

    let done = w.verify(&c, &id, &w.last_code()).await.unwrap();
    assert_eq!(done.confirmation_email, "sent");
    assert!(done.phone.primary);
    let email = &w.outbox.snapshot().email[0];
    assert_eq!(email.to, "ada@example.com");
    assert!(email.text.contains("+1••••••0123") && !email.text.contains("4155550123"));

    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!((s.prompt, s.enrolled, s.phones.len()), ("none", true, 1));
    assert_eq!(
        enrollment::start(&w.svc, &c, PASSWORD.into())
            .await
            .unwrap_err(),
        MfaError::AlreadyEnrolled
    );
}

#[tokio::test]
async fn a_code_is_single_use() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    let code = w.last_code();
    w.verify(&c, &id, &code).await.unwrap();
    assert_eq!(
        w.verify(&c, &id, &code).await.unwrap_err(),
        MfaError::WrongStep {
            current: "complete"
        }
    );
}

#[tokio::test]
async fn a_code_expires_at_exactly_its_lifetime() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    w.advance(600);
    assert_eq!(
        w.verify(&c, &id, &w.last_code()).await.unwrap_err(),
        MfaError::CodeExpired
    );

    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    w.advance(599);
    assert!(w.verify(&c, &id, &w.last_code()).await.is_ok());
}

#[tokio::test]
async fn an_enrollment_expires_after_its_lifetime() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.start(&c).await;
    w.advance(1799);
    w.phone(&c, &id, NUMBER).await.unwrap();
    w.advance(1);
    assert_eq!(
        w.verify(&c, &id, &w.last_code()).await.unwrap_err(),
        MfaError::EnrollmentNotFound
    );
}

#[tokio::test]
async fn the_fifth_wrong_code_burns_it_until_a_resend() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    let right = w.last_code();
    let wrong = w.wrong_code();
    for remaining in [4, 3, 2, 1] {
        assert_eq!(
            w.verify(&c, &id, &wrong).await.unwrap_err(),
            MfaError::InvalidCode {
                attempts_remaining: remaining
            }
        );
    }
    assert!(matches!(
        w.verify(&c, &id, &wrong).await.unwrap_err(),
        MfaError::TooManyAttempts { .. }
    ));
    // Burned: the right code fails too.
    assert!(matches!(
        w.verify(&c, &id, &right).await.unwrap_err(),
        MfaError::TooManyAttempts { .. }
    ));
    w.advance(30);
    let resent = enrollment::resend(&w.svc, &c, &id).await.unwrap();
    assert_eq!(resent.attempts_remaining, 5);
    assert_ne!(w.last_code(), right, "a fresh code");
    assert!(w.verify(&c, &id, &w.last_code()).await.is_ok());
}

#[tokio::test]
async fn a_resend_replaces_the_old_code() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    let old = w.last_code();
    w.advance(30);
    enrollment::resend(&w.svc, &c, &id).await.unwrap();
    let new = w.last_code();
    if old != new {
        assert!(matches!(
            w.verify(&c, &id, &old).await.unwrap_err(),
            MfaError::InvalidCode { .. }
        ));
    }
    assert!(w.verify(&c, &id, &new).await.is_ok());
}

#[tokio::test]
async fn resend_cooldown_holds_to_the_second() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    w.advance(29);
    assert_eq!(
        enrollment::resend(&w.svc, &c, &id).await.unwrap_err(),
        MfaError::ResendTooSoon { retry_after: 1 }
    );
    w.advance(1);
    assert!(enrollment::resend(&w.svc, &c, &id).await.is_ok());
    assert_eq!(w.texts(), 2);
}

#[tokio::test]
async fn texts_per_enrollment_are_capped() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    for _ in 0..4 {
        w.advance(30);
        enrollment::resend(&w.svc, &c, &id).await.unwrap();
    }
    w.advance(30);
    assert!(matches!(
        enrollment::resend(&w.svc, &c, &id).await.unwrap_err(),
        MfaError::SendLimitReached { .. }
    ));
    // A re-submitted number counts too.
    assert!(matches!(
        w.phone(&c, &id, "+14155550124").await.unwrap_err(),
        MfaError::SendLimitReached { .. }
    ));
    assert_eq!(w.texts(), 5);
}

#[tokio::test]
async fn fixing_a_typo_sends_to_the_new_number_and_voids_the_old_code() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.start(&c).await;
    w.phone(&c, &id, "+14155550124").await.unwrap();
    let typo_code = w.last_code();
    let sent = w.phone(&c, &id, NUMBER).await.unwrap();
    assert_eq!(sent.phone.masked, "+1••••••0123");
    assert_eq!(w.outbox.snapshot().sms[1].to, NUMBER);
    if typo_code != w.last_code() {
        assert!(matches!(
            w.verify(&c, &id, &typo_code).await.unwrap_err(),
            MfaError::InvalidCode { .. }
        ));
    }
    let done = w.verify(&c, &id, &w.last_code()).await.unwrap();
    assert_eq!(done.phone.masked, "+1••••••0123");
    // Sending the same number again at once is a resend, under its cooldown.
    let w2 = world(Limits::default()).await;
    let c2 = w2.user("bob").await;
    let id2 = w2.start(&c2).await;
    w2.phone(&c2, &id2, NUMBER).await.unwrap();
    assert!(matches!(
        w2.phone(&c2, &id2, NUMBER).await.unwrap_err(),
        MfaError::ResendTooSoon { .. }
    ));
}

#[tokio::test]
async fn the_fifth_wrong_password_locks_password_checks_for_fifteen_minutes() {
    let (w, c) = ada(Limits::default()).await;
    for remaining in [4, 3, 2, 1] {
        assert_eq!(
            enrollment::start(&w.svc, &c, "nope".into())
                .await
                .unwrap_err(),
            MfaError::InvalidPassword {
                attempts_remaining: remaining
            }
        );
    }
    assert_eq!(
        enrollment::start(&w.svc, &c, "nope".into())
            .await
            .unwrap_err(),
        MfaError::TooManyAttempts { retry_after: 900 }
    );
    w.advance(899);
    assert_eq!(
        enrollment::start(&w.svc, &c, PASSWORD.into())
            .await
            .unwrap_err(),
        MfaError::TooManyAttempts { retry_after: 1 },
        "the right password is locked out too"
    );
    w.advance(1);
    assert!(enrollment::start(&w.svc, &c, PASSWORD.into()).await.is_ok());
}

#[tokio::test]
async fn a_right_password_does_not_use_up_an_attempt() {
    let (w, c) = ada(Limits::default()).await;
    for _ in 0..6 {
        w.start(&c).await;
    }
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
async fn a_missing_user_answers_like_a_wrong_password() {
    let w = world(Limits::default()).await;
    let ghost = Caller {
        app: w.app.clone(),
        user: UserId::parse("ghost").unwrap(),
        source_ip: "198.51.100.7".into(),
    };
    let real = w.user("ada").await;
    let a = enrollment::start(&w.svc, &ghost, PASSWORD.into())
        .await
        .unwrap_err();
    let b = enrollment::start(&w.svc, &real, "nope".into())
        .await
        .unwrap_err();
    assert_eq!(a, b);
}

#[tokio::test]
async fn failed_codes_are_capped_per_user_per_hour_across_codes() {
    let (w, c) = ada(limits_with(|l| l.code_failures_per_user_per_hour = 3)).await;
    let id = w.at_code(&c).await;
    let wrong = w.wrong_code();
    for _ in 0..3 {
        assert!(matches!(
            w.verify(&c, &id, &wrong).await.unwrap_err(),
            MfaError::InvalidCode { .. }
        ));
    }
    // A resend gives a fresh code but not a fresh budget.
    w.advance(30);
    enrollment::resend(&w.svc, &c, &id).await.unwrap();
    let right = w.last_code();
    assert!(matches!(
        w.verify(&c, &id, &right).await.unwrap_err(),
        MfaError::TooManyAttempts { .. }
    ));
    w.advance(3600);
    let id = w.at_code(&c).await;
    assert!(w.verify(&c, &id, &w.last_code()).await.is_ok());
}

#[tokio::test]
async fn texts_per_user_per_day() {
    let (w, c) = ada(limits_with(|l| l.texts_per_user_per_day = 2)).await;
    let id = w.at_code(&c).await;
    w.advance(30);
    enrollment::resend(&w.svc, &c, &id).await.unwrap();
    let id2 = w.start(&c).await;
    let err = w.phone(&c, &id2, NUMBER).await.unwrap_err();
    assert_eq!(
        err,
        MfaError::RateLimited {
            retry_after: 86_400 - 30,
            limit: "texts per user per day"
        }
    );
    assert_eq!(w.texts(), 2);
    w.advance(86_400);
    let id3 = w.start(&c).await;
    assert!(w.phone(&c, &id3, NUMBER).await.is_ok());
}

#[tokio::test]
async fn texts_per_number_per_hour_across_users() {
    let w = world(limits_with(|l| l.texts_per_number_per_hour = 1)).await;
    let (a, b) = (
        w.user_at("ada", "198.51.100.1").await,
        w.user_at("bob", "198.51.100.2").await,
    );
    let ia = w.start(&a).await;
    let ib = w.start(&b).await;
    w.phone(&a, &ia, NUMBER).await.unwrap();
    assert!(matches!(
        w.phone(&b, &ib, NUMBER).await.unwrap_err(),
        MfaError::RateLimited {
            limit: "texts per phone number per hour",
            ..
        }
    ));
    assert!(w.phone(&b, &ib, "+14155550199").await.is_ok());
}

#[tokio::test]
async fn texts_per_ip_per_hour_across_users() {
    let w = world(limits_with(|l| l.texts_per_ip_per_hour = 1)).await;
    let (a, b) = (w.user("ada").await, w.user("bob").await);
    let ia = w.start(&a).await;
    let ib = w.start(&b).await;
    w.phone(&a, &ia, NUMBER).await.unwrap();
    assert!(matches!(
        w.phone(&b, &ib, "+14155550199").await.unwrap_err(),
        MfaError::RateLimited {
            limit: "texts per client IP per hour",
            ..
        }
    ));
    w.advance(3600);
    let ib = w.start(&b).await;
    assert!(w.phone(&b, &ib, "+14155550199").await.is_ok());
}

#[tokio::test]
async fn a_failed_text_counts_nothing_and_the_enrollment_stays_usable() {
    let (w, c) = ada(limits_with(|l| l.texts_per_user_per_day = 1)).await;
    let id = w.start(&c).await;
    w.outbox.set_sms_failing(true);
    for _ in 0..3 {
        assert_eq!(
            w.phone(&c, &id, NUMBER).await.unwrap_err(),
            MfaError::SmsSendFailed
        );
    }
    assert_eq!(w.texts(), 0);
    w.outbox.set_sms_failing(false);
    // Not counted against the one-text daily budget, nor against the enrollment's sends.
    let sent = w.phone(&c, &id, NUMBER).await.unwrap();
    assert_eq!(sent.attempts_remaining, 5);
    assert!(w.verify(&c, &id, &w.last_code()).await.is_ok());
}

#[tokio::test]
async fn a_failed_resend_keeps_the_earlier_code_working() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    let first = w.last_code();
    w.advance(30);
    w.outbox.set_sms_failing(true);
    assert_eq!(
        enrollment::resend(&w.svc, &c, &id).await.unwrap_err(),
        MfaError::SmsSendFailed
    );
    w.outbox.set_sms_failing(false);
    assert!(w.verify(&c, &id, &first).await.is_ok());
}

#[tokio::test]
async fn a_failed_confirmation_email_still_completes_enrollment() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    w.outbox.set_email_failing(true);
    let done = w.verify(&c, &id, &w.last_code()).await.unwrap();
    assert_eq!(done.confirmation_email, "failed");
    assert!(status::status(&w.svc, &c).await.unwrap().enrolled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_right_codes_give_exactly_one_success() {
    let w = Arc::new(world(Limits::default()).await);
    let c = w.user("ada").await;
    let id = w.at_code(&c).await;
    let code = w.last_code();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (w, c, id, code) = (w.clone(), c.clone(), id.clone(), code.clone());
            tokio::spawn(async move { w.verify(&c, &id, &code).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.status() == 409 || e.status() == 429, "{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(status::status(&w.svc, &c).await.unwrap().phones.len(), 1);
    assert_eq!(w.outbox.snapshot().email.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_codes_never_exceed_the_attempt_limit() {
    let w = Arc::new(world(Limits::default()).await);
    let c = w.user("ada").await;
    let id = w.at_code(&c).await;
    let wrong = w.wrong_code();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (w, c, id, wrong) = (w.clone(), c.clone(), id.clone(), wrong.clone());
            tokio::spawn(async move { w.verify(&c, &id, &wrong).await })
        })
        .collect();
    let mut invalid = 0;
    for t in tasks {
        match t.await.unwrap().unwrap_err() {
            MfaError::InvalidCode { .. } => invalid += 1,
            MfaError::TooManyAttempts { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    // Four answered "wrong, N left"; the fifth burned the code; fifteen were refused unread.
    assert_eq!(invalid, 4);
    let right = w.last_code();
    assert!(matches!(
        w.verify(&c, &id, &right).await.unwrap_err(),
        MfaError::TooManyAttempts { .. }
    ));
}

#[tokio::test]
async fn a_number_verified_elsewhere_first_cannot_be_verified_twice() {
    let (w, c) = ada(Limits::default()).await;
    let e1 = w.start(&c).await;
    let e2 = w.at_code(&c).await;
    let code2 = w.last_code();
    w.advance(30);
    w.phone(&c, &e1, NUMBER).await.unwrap();
    w.verify(&c, &e1, &w.last_code()).await.unwrap();
    // The second Start's enrollment no longer adds a first phone: the user is enrolled.
    assert_eq!(
        w.verify(&c, &e2, &code2).await.unwrap_err(),
        MfaError::AlreadyEnrolled
    );
    assert_eq!(status::status(&w.svc, &c).await.unwrap().phones.len(), 1);
}

#[tokio::test]
async fn other_users_enrollments_are_not_found() {
    let w = world(Limits::default()).await;
    let (a, b) = (w.user("ada").await, w.user("bob").await);
    let id = w.start(&a).await;
    assert_eq!(
        w.phone(&b, &id, NUMBER).await.unwrap_err(),
        MfaError::EnrollmentNotFound
    );
    let other_app = Caller {
        app: AppId::parse("other").unwrap(),
        ..a.clone()
    };
    assert_eq!(
        w.phone(&other_app, &id, NUMBER).await.unwrap_err(),
        MfaError::EnrollmentNotFound
    );
}

#[tokio::test]
async fn a_policy_change_holds_at_the_next_request() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.start(&c).await;
    set_policy(&w.svc, &w.app, false, false, Enforcement::Optional).await;
    assert_eq!(
        w.phone(&c, &id, NUMBER).await.unwrap_err(),
        MfaError::MfaDisabled
    );
    assert_eq!(status::status(&w.svc, &c).await.unwrap().prompt, "none");
    set_policy(&w.svc, &w.app, true, true, Enforcement::Required).await;
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!((s.prompt, s.can_skip), ("enroll", false));
    assert_eq!(
        status::skip(&w.svc, &c).await.unwrap_err(),
        MfaError::EnrollmentRequired
    );
}

#[tokio::test]
async fn skip_postpones_the_prompt_unless_required() {
    let (w, c) = ada(Limits::default()).await;
    let until = status::skip(&w.svc, &c).await.unwrap();
    assert_eq!(until.0, T0 + 7 * 24 * 3600);
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!((s.prompt, s.skipped_until), ("none", Some(until)));
    set_policy(&w.svc, &w.app, true, true, Enforcement::Required).await;
    assert_eq!(status::status(&w.svc, &c).await.unwrap().prompt, "enroll");
    set_policy(&w.svc, &w.app, true, true, Enforcement::Optional).await;
    w.advance(7 * 24 * 3600);
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!((s.prompt, s.skipped_until), ("enroll", None));
}

#[tokio::test]
async fn an_unverified_email_gets_no_prompt_and_cannot_start() {
    let w = world(Limits::default()).await;
    let c = w.provision(&w.app, "eve", "198.51.100.7", false).await;
    assert_eq!(status::status(&w.svc, &c).await.unwrap().prompt, "none");
    assert_eq!(
        enrollment::start(&w.svc, &c, PASSWORD.into())
            .await
            .unwrap_err(),
        MfaError::EmailNotVerified
    );
}

#[tokio::test]
async fn withdrawing_availability_turns_mfa_off() {
    let w = world(Limits::default()).await;
    let p = policy::set_availability(&w.svc, &w.app, false, "operator")
        .await
        .unwrap();
    assert!(!p.enabled && !p.include_in_signup && !p.available);
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: false,
        enforcement: Enforcement::Optional,
        allowed_countries: None,
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    assert_eq!(
        policy::update(&w.svc, &w.app, change, None, "admin")
            .await
            .unwrap_err(),
        MfaError::MfaNotAvailable
    );
}

#[tokio::test]
async fn if_match_protects_against_lost_updates() {
    let w = world(Limits::default()).await;
    let v = policy::get(&w.svc, &w.app).await.unwrap().version;
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: false,
        enforcement: Enforcement::Required,
        allowed_countries: None,
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    let p = policy::update(&w.svc, &w.app, change.clone(), Some(v), "admin")
        .await
        .unwrap();
    assert_eq!(p.version, v + 1);
    assert_eq!(
        policy::update(&w.svc, &w.app, change, Some(v), "admin")
            .await
            .unwrap_err(),
        MfaError::VersionConflict { current: v + 1 }
    );
}

#[tokio::test]
async fn allowed_countries_are_enforced() {
    let w = world(Limits::default()).await;
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: true,
        enforcement: Enforcement::Optional,
        allowed_countries: Some(Some(vec![
            mfa_shared::types::CountryCode::parse("GB").unwrap(),
        ])),
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    policy::update(&w.svc, &w.app, change, None, "admin")
        .await
        .unwrap();
    let c = w.user("ada").await;
    let id = w.start(&c).await;
    assert_eq!(
        w.phone(&c, &id, NUMBER).await.unwrap_err(),
        MfaError::CountryNotAllowed {
            country: "US".into()
        }
    );
    assert!(w.phone(&c, &id, "+447400123456").await.is_ok());
}
