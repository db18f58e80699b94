//! Refusals that cost nothing and steps that hold, through the flows, on the in-memory store
//! and (when `MFA_TEST_MOTO_URL` names a moto server; `#[ignore]`d otherwise) on DynamoDB:
//! - 50 refused texts, or 50 code checks refused by the hourly budget, leave one
//!   `rate_limit.blocked` audit event each, not 50;
//! - a recovery code is not spent when the step after it (signing the assertion) fails;
//! - a sign-in code texted to a phone that was then removed gives no assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mfa_shared::MfaError;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, challenge, enrollment, recovery};
use mfa_shared::ports::{AuditQuery, Removal, Store};
use mfa_shared::types::{Code, Enforcement, PhoneNumber, UnixTime};

use crate::kit::{self, NUMBER, T0, World, set_policy, unique};

async fn moto() -> Arc<dyn Store> {
    kit::emulators::moto("mfa-refusals").await
}

/// A fresh application on `store`, MFA available and enabled (optional).
async fn world(store: Arc<dyn Store>, limits: Limits) -> World {
    let w = kit::deployment(store, limits, T0, &unique("app")).await;
    set_policy(&w.svc, &w.app, true, true, Enforcement::Optional).await;
    w
}

/// The user enrolled with `NUMBER`.
async fn enrolled(w: &World, id: &str) -> Caller {
    let c = w.user(id).await;
    w.enroll(&c, NUMBER, None).await;
    c
}

async fn audited(w: &World, c: &Caller, action: &str) -> usize {
    let page = w
        .svc
        .store
        .list_audit(&AuditQuery {
            app: &w.app,
            user: Some(&c.user),
            limit: 200,
            after: None,
            now: UnixTime(T0),
        })
        .await
        .unwrap();
    page.events.iter().filter(|e| e.action == action).count()
}

async fn fifty_refusals_leave_one_audit_event(store: Arc<dyn Store>) {
    let limits = Limits {
        texts_per_user_per_day: 1,
        ..Limits::default()
    };
    let w = world(store, limits).await;
    let c = w.user("ada").await;
    let e = w.at_code(&c).await;
    for i in 0..50 {
        // A different number each time: no cooldown, only the user's daily budget refuses.
        let number = PhoneNumber::parse(&format!("+1415555{:04}", 1000 + i)).unwrap();
        let err = enrollment::submit_phone(&w.svc, &c, &e, number, None)
            .await
            .unwrap_err();
        assert!(matches!(err, MfaError::RateLimited { .. }), "{err:?}");
    }
    assert_eq!(audited(&w, &c, "rate_limit.blocked").await, 1);
}

#[tokio::test]
async fn fifty_refused_texts_leave_one_audit_event_on_memory() {
    fifty_refusals_leave_one_audit_event(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn fifty_refused_texts_leave_one_audit_event_on_moto() {
    fifty_refusals_leave_one_audit_event(moto().await).await;
}

async fn a_recovery_code_survives_a_failed_signature(store: Arc<dyn Store>) {
    let mut w = world(store, Limits::default()).await;
    let c = enrolled(&w, "ada").await;
    let code = "7K3QD-M9XWP";
    let hash = w
        .svc
        .keys
        .recovery_hash(c.app.as_str(), c.user.as_str(), "7K3QDM9XWP");
    assert!(
        w.svc
            .store
            .replace_recovery_codes(c.owner(), &[hash], UnixTime(T0))
            .await
            .unwrap()
    );
    // The assertion cannot be signed: an error, and the code is still there.
    let keys = w.svc.signing.take();
    assert_eq!(
        recovery::redeem(&w.svc, &c, code).await.unwrap_err(),
        MfaError::Internal
    );
    assert_eq!(
        w.svc.store.count_recovery_codes(c.owner()).await.unwrap(),
        1
    );
    w.svc.signing = keys;
    let used = recovery::redeem(&w.svc, &c, code).await.unwrap();
    assert_eq!(used.remaining, 0);
    assert!(matches!(
        recovery::redeem(&w.svc, &c, code).await.unwrap_err(),
        MfaError::InvalidCode { .. }
    ));
}

#[tokio::test]
async fn a_recovery_code_survives_a_failed_signature_on_memory() {
    a_recovery_code_survives_a_failed_signature(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn a_recovery_code_survives_a_failed_signature_on_moto() {
    a_recovery_code_survives_a_failed_signature(moto().await).await;
}

async fn a_code_to_a_removed_phone_gives_no_assertion(store: Arc<dyn Store>) {
    let w = world(store, Limits::default()).await;
    let c = enrolled(&w, "ada").await;
    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
    let code = w.code();
    // The phone goes (as the removal flow writes it) between the text and the check.
    let phones = w.svc.store.list_phones(c.owner()).await.unwrap();
    let removal = Removal {
        app_seen: false,
        phone: phones[0].clone(),
        number_tag: w.svc.keys.number_tag(&phones[0].number),
        seen: phones.clone(),
        promote: None,
    };
    assert!(w.svc.store.remove_phone(c.owner(), &removal).await.unwrap());
    assert_eq!(
        w.sign_in(&c, &sent.challenge_id, code).await.unwrap_err(),
        MfaError::ChallengeNotFound
    );
}

#[tokio::test]
async fn a_code_to_a_removed_phone_gives_no_assertion_on_memory() {
    a_code_to_a_removed_phone_gives_no_assertion(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn a_code_to_a_removed_phone_gives_no_assertion_on_moto() {
    a_code_to_a_removed_phone_gives_no_assertion(moto().await).await;
}

async fn refused_code_checks_leave_one_audit_event(store: Arc<dyn Store>) {
    let limits = Limits {
        code_failures_per_user_per_hour: 1,
        ..Limits::default()
    };
    let w = world(store, limits).await;
    let c = w.user("ada").await;
    let e = w.at_code(&c).await;
    let right = w.code();
    let wrong = Code::parse(if right.expose() == "000000" {
        "111111"
    } else {
        "000000"
    })
    .unwrap();
    assert!(matches!(
        enrollment::verify(&w.svc, &c, &e, wrong.clone())
            .await
            .unwrap_err(),
        MfaError::InvalidCode { .. }
    ));
    // The hour's budget of failed codes is spent: 50 more are refused unread.
    for _ in 0..50 {
        assert!(matches!(
            enrollment::verify(&w.svc, &c, &e, wrong.clone())
                .await
                .unwrap_err(),
            MfaError::TooManyAttempts { .. }
        ));
    }
    assert_eq!(audited(&w, &c, "rate_limit.blocked").await, 1);
}

#[tokio::test]
async fn fifty_refused_code_checks_leave_one_audit_event_on_memory() {
    refused_code_checks_leave_one_audit_event(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn fifty_refused_code_checks_leave_one_audit_event_on_moto() {
    refused_code_checks_leave_one_audit_event(moto().await).await;
}
