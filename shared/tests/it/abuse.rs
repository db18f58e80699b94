//! Budgets a stranger cannot spend, texts whose outcome is unknown, and notifications that
//! fail before the email (issue 13), over the in-memory store with a fixed clock; and the
//! application's daily text budget spread over counters (issue 19), on memory and moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::kit::{self, NUMBER, T0, World, ada, limits_with, set_policy, unique, world};
use async_trait::async_trait;
use mfa_shared::MfaError;
use mfa_shared::adapters::console::ConsoleOutbox;
use mfa_shared::config::Limits;
use mfa_shared::error::PortError;
use mfa_shared::flows::{Caller, audit, challenge, enrollment, policy};
use mfa_shared::metrics::{Metric, Reason};
use mfa_shared::ports::{SmsSender, Store};
use mfa_shared::types::{AppId, Enforcement, PhoneNumber};

/// A user of another application (tenant) with MFA enabled.
async fn other_tenant_user(w: &World, id: &str) -> Caller {
    let app = AppId::parse("globex").unwrap();
    policy::set_availability(&w.svc, &app, true, "operator")
        .await
        .unwrap();
    set_policy(&w.svc, &app, true, true, Enforcement::Optional).await;
    w.provision(&app, id, "203.0.113.9", true).await
}

#[tokio::test]
async fn strangers_submitting_the_victims_number_never_block_the_victims_sign_in() {
    let w = world(Limits::default()).await;
    let victim = w.user("victim").await;
    w.enroll(&victim, NUMBER, None).await;
    w.advance(3601);

    // Five other accounts, two of them in another tenant, submit the victim's number.
    let mut strangers = Vec::new();
    for i in 0..3 {
        strangers.push(w.user_at(&format!("mallory{i}"), "192.0.2.10").await);
    }
    for i in 0..2 {
        strangers.push(other_tenant_user(&w, &format!("trudy{i}")).await);
    }
    for s in &strangers {
        let id = w.start(s).await;
        w.phone(s, &id, NUMBER).await.unwrap();
    }
    // The number's hourly budget is spent: a sixth stranger is refused.
    let sixth = w.user_at("mallory9", "192.0.2.11").await;
    let id = w.start(&sixth).await;
    let refused = w.phone(&sixth, &id, NUMBER).await.unwrap_err();
    assert!(
        matches!(refused, MfaError::RateLimited { limit, .. } if limit.contains("phone number")),
        "{refused:?}"
    );
    let texts = w.texts();

    // The victim's sign-in text still goes out, and so does its resend.
    let sent = challenge::start(&w.svc, &victim, None).await.unwrap();
    assert_eq!(w.texts(), texts + 1);
    assert_eq!(w.outbox.snapshot().sms.last().unwrap().to, NUMBER);
    w.advance(31);
    challenge::resend(&w.svc, &victim, &sent.challenge_id)
        .await
        .unwrap();
    assert_eq!(w.texts(), texts + 2);
    // The victim's own budgets still count the challenge texts.
    assert_eq!(
        w.metrics.total(Metric::RateLimited(Reason::TextsPerNumber)),
        1
    );
}

#[tokio::test]
async fn a_challenge_over_the_users_budget_is_refused_before_anything_is_sent() {
    let (w, c) = ada(limits_with(|l| l.texts_per_user_per_day = 2)).await;
    w.enroll(&c, NUMBER, None).await; // one text of the user's two
    challenge::start(&w.svc, &c, None).await.unwrap();
    w.advance(31);
    let err = challenge::start(&w.svc, &c, None).await.unwrap_err();
    assert!(matches!(err, MfaError::RateLimited { .. }), "{err:?}");
    assert_eq!(w.texts(), 2);
}

/// SNS as it behaves when the answer to a `Publish` is lost: the text was delivered (it is in
/// the outbox), but the call reports an unknown outcome.
struct AnswerLost(ConsoleOutbox);

#[async_trait]
impl SmsSender for AnswerLost {
    async fn send_sms(&self, to: &PhoneNumber, body: &str) -> Result<(), PortError> {
        self.0.send_sms(to, body).await?;
        Err(PortError::outcome_unknown(
            "timed out after the request was sent",
        ))
    }
}

#[tokio::test]
async fn a_text_whose_outcome_is_unknown_counts_as_sent() {
    let limits = Limits {
        texts_per_user_per_day: 2,
        ..Limits::default()
    };
    let mut w = world(limits).await;
    w.svc.sms = Arc::new(AnswerLost(w.outbox.clone()));
    let c = w.user("ada").await;
    let id = w.start(&c).await;
    // Answered as sent: the code stays pending and is the one that arrived.
    let sent = w.phone(&c, &id, NUMBER).await.unwrap();
    assert_eq!(sent.step, "code");
    // The send counted: an immediate resend waits for the cooldown...
    let err = enrollment::resend(&w.svc, &c, &id).await.unwrap_err();
    assert!(matches!(err, MfaError::ResendTooSoon { .. }), "{err:?}");
    // ...and the user's budget kept its unit (2 a day: one more, then none).
    w.advance(31);
    enrollment::resend(&w.svc, &c, &id).await.unwrap();
    w.advance(31);
    let err = enrollment::resend(&w.svc, &c, &id).await.unwrap_err();
    assert!(matches!(err, MfaError::RateLimited { .. }), "{err:?}");
    assert_eq!(w.metrics.total(Metric::SmsSendError), 2);
    // The last code delivered completes the enrollment.
    w.verify(&c, &id, &w.last_code()).await.unwrap();
    assert!(w.enrolled(&c).await);
}

#[tokio::test]
async fn a_text_sns_refused_is_undone_and_costs_nothing() {
    let (w, c) = ada(limits_with(|l| l.texts_per_user_per_day = 1)).await;
    let id = w.start(&c).await;
    w.outbox.set_sms_failing(true);
    for _ in 0..3 {
        let err = w.phone(&c, &id, NUMBER).await.unwrap_err();
        assert_eq!(err, MfaError::SmsSendFailed);
    }
    w.outbox.set_sms_failing(false);
    // The one text of the day is still there, and no cooldown holds it back.
    w.phone(&c, &id, NUMBER).await.unwrap();
}

#[tokio::test]
async fn a_failed_user_read_while_notifying_is_audited_and_counted() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.at_code(&c).await;
    // Verifying a code reads the user only to email them.
    w.store.fail("get_user");
    let done = w.verify(&c, &id, &w.last_code()).await.unwrap();
    w.store.heal();
    assert_eq!(done.confirmation_email, "failed");
    assert!(w.enrolled(&c).await, "the change stands");
    assert_eq!(w.metrics.total(Metric::EmailSendError), 1);
    let events = audit::list(&w.svc, &w.app, Some(&c.user), 10, None)
        .await
        .unwrap()
        .events;
    let failed = events
        .iter()
        .find(|e| e.action == "notification.failed")
        .expect("audited");
    let details: serde_json::Value = serde_json::from_value(failed.details.clone()).unwrap();
    assert_eq!(details["about"], "enrollment.completed");
}

#[tokio::test]
async fn alternating_numbers_does_not_sidestep_the_enrollment_cooldown() {
    let (w, c) = ada(Limits::default()).await;
    let id = w.start(&c).await;
    w.phone(&c, &id, "+14155550124").await.unwrap();
    // The first text corrected at once (a typo fixed)...
    w.phone(&c, &id, NUMBER).await.unwrap();
    // ...but not again: back to the first number, or on to a third, waits the cooldown.
    for number in ["+14155550124", "+14155550125", NUMBER] {
        let err = w.phone(&c, &id, number).await.unwrap_err();
        assert!(
            matches!(err, MfaError::ResendTooSoon { retry_after: 30 }),
            "{number}: {err:?}"
        );
    }
    assert_eq!(w.texts(), 2);
    w.advance(30);
    w.phone(&c, &id, "+14155550124").await.unwrap();
    assert_eq!(w.texts(), 3);
}

#[tokio::test]
async fn fresh_challenges_do_not_sidestep_the_resend_cooldown() {
    let (w, c) = ada(Limits::default()).await;
    w.enroll(&c, NUMBER, None).await;
    let first = challenge::start(&w.svc, &c, None).await.unwrap();
    w.advance(10);
    let err = challenge::start(&w.svc, &c, None).await.unwrap_err();
    assert_eq!(err, MfaError::ResendTooSoon { retry_after: 20 });
    w.advance(20);
    let second = challenge::start(&w.svc, &c, None).await.unwrap();
    // Resending the first (its own cooldown long over) is held to the user's last text too.
    w.advance(5);
    let err = challenge::resend(&w.svc, &c, &first.challenge_id)
        .await
        .unwrap_err();
    assert_eq!(err, MfaError::ResendTooSoon { retry_after: 25 });
    assert_eq!(w.texts(), 3);
    w.advance(25);
    challenge::resend(&w.svc, &c, &second.challenge_id)
        .await
        .unwrap();
    assert_eq!(w.texts(), 4);
    // A challenge whose text SNS refused costs no cooldown: the retry goes at once.
    w.advance(30);
    w.outbox.set_sms_failing(true);
    let err = challenge::start(&w.svc, &c, None).await.unwrap_err();
    assert_eq!(err, MfaError::SmsSendFailed);
    w.outbox.set_sms_failing(false);
    challenge::start(&w.svc, &c, None).await.unwrap();
    assert_eq!(
        w.metrics.total(Metric::RateLimited(Reason::ResendCooldown)),
        2
    );
}

#[tokio::test]
async fn a_challenge_is_not_resent_to_a_number_that_is_no_longer_the_users() {
    let (w, c) = ada(Limits::default()).await;
    w.enroll(&c, NUMBER, None).await;
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    // The number is replaced meanwhile (through settings, its new code verified).
    w.replace_first_phone(&c, "+14155550177").await;
    w.advance(31);
    let texts = w.texts();
    let err = challenge::resend(&w.svc, &c, &sent.challenge_id)
        .await
        .unwrap_err();
    assert_eq!(err, MfaError::ChallengeNotFound);
    assert_eq!(w.texts(), texts, "nothing sent to the old number");
}

/// Someone holding only the password begins an add while the owner has no factor (no proof is
/// needed then), the owner enrolls, and the add is completed afterwards: it must not bind the
/// stranger's phone beside the owner's, since a proof would now be required.
#[tokio::test]
async fn an_add_begun_before_the_owner_enrolled_cannot_complete_after() {
    let (w, c) = ada(Limits::default()).await;
    let begun = w.add_phone(&c, "+14155550188").await;
    assert_eq!(begun.purpose, Some("add"), "the answer still says add");
    let strangers_code = w.last_code();
    w.advance(31);
    w.enroll(&c, NUMBER, None).await;

    let id = begun.enrollment_id.unwrap();
    let late = w.verify(&c, &id, &strangers_code).await;
    assert_eq!(late.unwrap_err(), MfaError::AlreadyEnrolled);
    let phones = w.svc.store.list_phones(c.owner()).await.unwrap();
    assert_eq!(phones.len(), 1, "only the owner's phone: {phones:?}");
    assert_eq!(phones[0].number.e164(), NUMBER);
}

/// With no factor yet, an add from settings binds the first phone, as Start would.
#[tokio::test]
async fn an_add_with_no_factor_yet_enrolls_the_first_phone() {
    let (w, c) = ada(Limits::default()).await;
    let begun = w.add_phone(&c, NUMBER).await;
    let done = w
        .verify(&c, &begun.enrollment_id.unwrap(), &w.last_code())
        .await
        .unwrap();
    assert!(done.phone.primary);
    assert!(w.enrolled(&c).await);
}

// ---------------------------------------------------------------------------------------------
// The application's daily text budget, spread over counters (issue 19).

kit::on_both!(
    "mfa-app-budget",
    the_application_budget_holds_exactly_under_concurrent_sends,
    a_text_that_failed_gives_one_unit_back_to_the_application_budget,
    every_unit_of_a_small_or_uneven_application_budget_is_reachable,
);

const APP_BUDGET: &str = "texts per application per day";

/// A fresh application on `store` whose budget is `per_day` texts a day (every other limit
/// the default).
async fn budget_world(store: Arc<dyn Store>, per_day: u32) -> World {
    let limits = limits_with(|l| l.texts_per_app_per_day = per_day);
    let w = kit::deployment(store, limits, T0, &unique("app")).await;
    set_policy(&w.svc, &w.app, true, true, Enforcement::Optional).await;
    w
}

/// User `i` at the code step's door: an enrollment started, from an IP and for a number of
/// their own, so that only the application's budget is shared.
async fn newcomer(w: &World, i: usize) -> (Caller, mfa_shared::types::EnrollmentId, String) {
    let ip = format!("198.51.{}.{}", 100 + i / 200, 1 + i % 200);
    let c = w.user_at(&format!("user-{i}"), &ip).await;
    let id = w.start(&c).await;
    (c, id, format!("+1415555{:04}", 2000 + i))
}

fn is_app_refusal(r: &Result<enrollment::CodeSent, MfaError>) -> bool {
    matches!(r, Err(MfaError::RateLimited { limit, .. }) if *limit == APP_BUDGET)
}

async fn the_application_budget_holds_exactly_under_concurrent_sends(store: Arc<dyn Store>) {
    const LIMIT: u32 = 7;
    const SENDS: usize = 20;
    let w = Arc::new(budget_world(store, LIMIT).await);
    let mut ready = Vec::new();
    for i in 0..SENDS {
        ready.push(newcomer(&w, i).await);
    }
    let tasks: Vec<_> = ready
        .into_iter()
        .map(|(c, id, number)| {
            let w = w.clone();
            tokio::spawn(async move { w.phone(&c, &id, &number).await })
        })
        .collect();
    let (mut sent, mut refused) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        if r.is_ok() {
            sent += 1;
        } else {
            assert!(is_app_refusal(&r), "{r:?}");
            // Every counter's window opened at this (fixed) second: a day until any unit.
            assert!(
                matches!(
                    r,
                    Err(MfaError::RateLimited {
                        retry_after: 86_400,
                        ..
                    })
                ),
                "{r:?}"
            );
            refused += 1;
        }
    }
    assert_eq!((sent, refused), (LIMIT as usize, SENDS - LIMIT as usize));
    assert_eq!(w.texts(), LIMIT as usize);
    // Every refusal counted; audited at least once, at most once per counter window.
    assert_eq!(
        w.metrics.total(Metric::RateLimited(Reason::TextsPerApp)),
        refused
    );
    let log = audit::list(&w.svc, &w.app, None, 100, None).await.unwrap();
    let blocked = log
        .events
        .iter()
        .filter(|e| e.action == "rate_limit.blocked")
        .count();
    assert!((1..=LIMIT as usize).contains(&blocked), "{blocked} audited");
}

async fn a_text_that_failed_gives_one_unit_back_to_the_application_budget(store: Arc<dyn Store>) {
    const LIMIT: usize = 7;
    let w = budget_world(store, LIMIT as u32).await;
    for i in 0..LIMIT - 1 {
        let (c, id, number) = newcomer(&w, i).await;
        w.phone(&c, &id, &number).await.unwrap();
    }
    // The last unit is taken by a text SNS refuses, and given back.
    let (c, id, number) = newcomer(&w, LIMIT - 1).await;
    w.outbox.set_sms_failing(true);
    let failed = w.phone(&c, &id, &number).await;
    w.outbox.set_sms_failing(false);
    assert!(failed.is_err() && !is_app_refusal(&failed), "{failed:?}");
    assert_eq!(w.texts(), LIMIT - 1);
    // Exactly one unit came back: that text goes out now, and the next one is refused.
    w.phone(&c, &id, &number).await.unwrap();
    assert_eq!(w.texts(), LIMIT);
    let (c, id, number) = newcomer(&w, LIMIT).await;
    let over = w.phone(&c, &id, &number).await;
    assert!(is_app_refusal(&over), "{over:?}");
    assert_eq!(w.texts(), LIMIT);
}

async fn every_unit_of_a_small_or_uneven_application_budget_is_reachable(store: Arc<dyn Store>) {
    // 3: fewer units than counters (three counters of one); 40: counters of 2 and of 1. Each
    // unit is found wherever the walk starts, and the one after the last is refused.
    for limit in [3, 40] {
        let w = budget_world(store.clone(), limit).await;
        for i in 0..limit as usize {
            let (c, id, number) = newcomer(&w, i).await;
            let r = w.phone(&c, &id, &number).await;
            assert!(r.is_ok(), "text {} of {limit}: {r:?}", i + 1);
        }
        let (c, id, number) = newcomer(&w, limit as usize).await;
        let over = w.phone(&c, &id, &number).await;
        assert!(is_app_refusal(&over), "{over:?}");
        assert_eq!(w.texts(), limit as usize);
    }
}
