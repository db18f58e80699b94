//! Phones in settings, security notifications, the admin reset and the audit log, over the
//! in-memory store with a fixed clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mfa_shared::MfaError;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, admin, audit, enrollment, phones, policy, status};
use mfa_shared::types::{AppId, Enforcement, EnrollmentId, PhoneId, PhoneNumber, UserId};
use serde_json::Value;

use crate::kit::{self, PASSWORD, T0};

const FIRST: &str = "+14155550101";

/// The kit's world, with application `acme`'s policy saved by `admin@acme`.
struct World(kit::World);

impl std::ops::Deref for World {
    type Target = kit::World;

    fn deref(&self) -> &kit::World {
        &self.0
    }
}

async fn world() -> World {
    world_with(Limits::default()).await
}

async fn world_with(limits: Limits) -> World {
    let store = Arc::new(MemoryStore::new());
    let w = World(kit::deployment(store, limits, T0, "acme").await);
    w.enforce(Enforcement::Optional).await;
    w
}

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

impl World {
    async fn enforce(&self, enforcement: Enforcement) {
        let change = policy::PolicyChange {
            enabled: true,
            include_in_signup: true,
            enforcement,
            allowed_countries: None,
            factors: None,
            display_name: None,
            webotp_domain: None,
            grace_period_days: None,
        };
        policy::update(&self.svc, &self.app, change, None, "admin@acme")
            .await
            .unwrap();
    }

    /// A user enrolled with `FIRST`.
    async fn enrolled(&self, id: &str) -> Caller {
        let c = self.user(id).await;
        self.enroll(&c, FIRST, Some("Mobile")).await;
        c
    }

    async fn verify(
        &self,
        c: &Caller,
        e: &EnrollmentId,
    ) -> Result<enrollment::Completed, MfaError> {
        enrollment::verify(&self.svc, c, e, self.code()).await
    }

    async fn add(&self, c: &Caller, number: &str) -> Result<enrollment::Completed, MfaError> {
        self.clock.advance(31);
        let sent = phones::add(&self.svc, c, PASSWORD.into(), n(number), None).await?;
        self.verify(c, sent.enrollment_id.as_ref().unwrap()).await
    }

    async fn phones(&self, c: &Caller) -> Vec<(String, String, bool, Option<String>)> {
        phones::list(&self.svc, c)
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.phone_id.to_string(), p.masked, p.primary, p.label))
            .collect()
    }

    fn emails(&self) -> Vec<(String, String)> {
        kit::sent(&self.outbox).1
    }

    async fn audit(&self, user: Option<&UserId>) -> Vec<(String, String, Value)> {
        audit::list(&self.svc, &self.app, user, 100, None)
            .await
            .unwrap()
            .events
            .into_iter()
            .map(|e| (e.action, e.actor, e.details))
            .collect()
    }
}

#[tokio::test]
async fn adding_a_phone_takes_a_code_to_the_new_number() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    w.clock.advance(31);
    let sent = phones::add(
        &w.svc,
        &c,
        PASSWORD.into(),
        n("+14155550102"),
        Some("Work".into()),
    )
    .await
    .unwrap();
    assert_eq!((sent.purpose, sent.step), (Some("add"), "code"));
    assert_eq!(w.outbox.snapshot().sms.last().unwrap().to, "+14155550102");
    assert_eq!(w.phones(&c).await.len(), 1, "not in force before its code");
    let done = w
        .verify(&c, sent.enrollment_id.as_ref().unwrap())
        .await
        .unwrap();
    assert!(!done.phone.primary);
    let list = w.phones(&c).await;
    assert_eq!(list.len(), 2);
    assert!(list[0].2 && !list[1].2, "exactly one primary, listed first");
    let (subject, text) = w.emails().pop().unwrap();
    assert!(
        subject.contains("added")
            && text.contains("+1••••••0102")
            && text.contains("If this was not you")
    );
}

#[tokio::test]
async fn a_wrong_password_adds_nothing() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    let texts = w.outbox.snapshot().sms.len();
    let err = phones::add(&w.svc, &c, "nope".into(), n("+14155550102"), None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MfaError::InvalidPassword {
            attempts_remaining: 4
        }
    );
    assert_eq!(w.outbox.snapshot().sms.len(), texts);
}

#[tokio::test]
async fn at_most_five_phones_and_no_number_twice() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    for i in 2..=5 {
        w.add(&c, &format!("+1415555010{i}")).await.unwrap();
    }
    assert_eq!(w.phones(&c).await.len(), 5);
    assert_eq!(
        w.add(&c, "+14155550109").await.unwrap_err(),
        MfaError::TooManyPhones { max: 5 }
    );
    let w = world().await;
    let c = w.enrolled("bob").await;
    assert_eq!(
        w.add(&c, "+1 415 555 0101").await.unwrap_err(),
        MfaError::PhoneAlreadyEnrolled
    );
}

#[tokio::test]
async fn replacing_a_number_is_make_before_break() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    let id = PhoneId::parse(&w.phones(&c).await[0].0).unwrap();
    w.clock.advance(31);
    let sent = phones::replace(&w.svc, &c, &id, PASSWORD.into(), n("+14155550177"))
        .await
        .unwrap();
    assert_eq!(sent.purpose, Some("replace"));
    // Until verified, the old number is still the factor.
    assert_eq!(w.phones(&c).await[0].1, "+1••••••0101");
    w.verify(&c, sent.enrollment_id.as_ref().unwrap())
        .await
        .unwrap();
    let list = w.phones(&c).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0],
        (
            id.to_string(),
            "+1••••••0177".to_string(),
            true,
            Some("Mobile".to_string())
        )
    );
    let (subject, text) = w.emails().pop().unwrap();
    assert!(
        subject.contains("changed")
            && text.contains("+1••••••0101")
            && text.contains("+1••••••0177")
    );
    // The old number is free again; the new one is taken.
    assert_eq!(
        w.add(&c, "+14155550177").await.unwrap_err(),
        MfaError::PhoneAlreadyEnrolled
    );
    assert!(w.add(&c, FIRST).await.is_ok());
}

/// The list is primary first, then in the order first verified: a replaced number keeps its
/// phone's place (it does not move to the end for its newer verification), and when the
/// primary goes, the oldest remaining phone by that place becomes primary.
#[tokio::test]
async fn a_replaced_phone_keeps_its_place_in_the_list_and_as_the_oldest() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    w.add(&c, "+14155550102").await.unwrap();
    w.add(&c, "+14155550103").await.unwrap();
    let ids = |list: Vec<(String, String, bool, Option<String>)>| {
        list.into_iter().map(|p| p.0).collect::<Vec<_>>()
    };
    let before = ids(w.phones(&c).await);
    let second = PhoneId::parse(&before[1]).unwrap();
    w.clock.advance(31);
    let sent = phones::replace(&w.svc, &c, &second, PASSWORD.into(), n("+14155550177"))
        .await
        .unwrap();
    w.verify(&c, sent.enrollment_id.as_ref().unwrap())
        .await
        .unwrap();
    let list = w.phones(&c).await;
    assert_eq!(list[1].1, "+1••••••0177");
    assert_eq!(ids(list), before, "the replaced phone keeps its place");

    // The primary goes: the replaced phone, verified last but placed first, takes over.
    let primary = PhoneId::parse(&before[0]).unwrap();
    phones::remove(&w.svc, &c, &primary, PASSWORD.into())
        .await
        .unwrap();
    let list = w.phones(&c).await;
    assert_eq!(ids(list.clone()), before[1..].to_vec());
    assert!(
        list[0].2 && !list[1].2,
        "the oldest remaining phone is primary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replaces_of_one_phone_at_once_leave_one_consistent_phone() {
    let w = Arc::new(world().await);
    let c = w.enrolled("ada").await;
    let id = PhoneId::parse(&w.phones(&c).await[0].0).unwrap();
    let mut pending = Vec::new();
    for number in ["+14155550171", "+14155550172"] {
        w.clock.advance(31);
        let sent = phones::replace(&w.svc, &c, &id, PASSWORD.into(), n(number))
            .await
            .unwrap();
        pending.push((sent.enrollment_id.unwrap(), w.code()));
    }
    let tasks: Vec<_> = pending
        .into_iter()
        .map(|(e, code)| {
            let (w, c) = (w.clone(), c.clone());
            tokio::spawn(async move { enrollment::verify(&w.svc, &c, &e, code).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e, MfaError::Conflict),
        }
    }
    // Both racing on the old number: one wins, the other is refused. One after the other:
    // both apply in turn. Either way, one phone with one of the numbers, and claims to match.
    assert!(ok >= 1);
    let list = w.phones(&c).await;
    assert_eq!(list.len(), 1);
    let (winner, loser) = if list[0].1 == "+1••••••0171" {
        ("+14155550171", "+14155550172")
    } else {
        assert_eq!(list[0].1, "+1••••••0172");
        ("+14155550172", "+14155550171")
    };
    assert_eq!(
        w.add(&c, winner).await.unwrap_err(),
        MfaError::PhoneAlreadyEnrolled
    );
    assert!(w.add(&c, loser).await.is_ok());
    assert!(w.add(&c, FIRST).await.is_ok());
}

#[tokio::test]
async fn relabel_and_make_primary_keep_exactly_one_primary() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    w.add(&c, "+14155550102").await.unwrap();
    let second = PhoneId::parse(&w.phones(&c).await[1].0).unwrap();
    let v = phones::update(&w.svc, &c, &second, Some(Some("  Desk  ".into())), true)
        .await
        .unwrap();
    assert_eq!((v.primary, v.label.as_deref()), (true, Some("Desk")));
    let list = w.phones(&c).await;
    assert_eq!(list.iter().filter(|p| p.2).count(), 1);
    assert_eq!(list[0].0, second.to_string());
    let v = phones::update(&w.svc, &c, &second, Some(None), false)
        .await
        .unwrap();
    assert_eq!(v.label, None);
    assert!(
        w.audit(Some(&c.user))
            .await
            .iter()
            .any(|(a, _, _)| a == "phone.primary_changed")
    );
}

#[tokio::test]
async fn removing_phones() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    w.add(&c, "+14155550102").await.unwrap();
    let primary = PhoneId::parse(&w.phones(&c).await[0].0).unwrap();
    assert!(matches!(
        phones::remove(&w.svc, &c, &primary, "nope".into())
            .await
            .unwrap_err(),
        MfaError::InvalidPassword { .. }
    ));
    phones::remove(&w.svc, &c, &primary, PASSWORD.into())
        .await
        .unwrap();
    let list = w.phones(&c).await;
    assert_eq!(list.len(), 1);
    assert!(list[0].2, "the other phone became primary");
    assert!(w.emails().pop().unwrap().0.contains("removed"));

    let last = PhoneId::parse(&list[0].0).unwrap();
    w.enforce(Enforcement::Required).await;
    assert_eq!(
        phones::remove(&w.svc, &c, &last, PASSWORD.into())
            .await
            .unwrap_err(),
        MfaError::LastPhoneRequired
    );
    w.enforce(Enforcement::Optional).await;
    phones::remove(&w.svc, &c, &last, PASSWORD.into())
        .await
        .unwrap();
    let s = status::status(&w.svc, &c).await.unwrap();
    assert!(
        !s.enrolled && s.phones.is_empty(),
        "removing the last phone un-enrolls"
    );
    assert!(w.emails().pop().unwrap().1.contains("now off"));
}

#[tokio::test]
async fn other_users_phones_are_not_found() {
    let w = world().await;
    let ada = w.enrolled("ada").await;
    let bob = w.enrolled("bob").await;
    let adas = PhoneId::parse(&w.phones(&ada).await[0].0).unwrap();
    assert_eq!(
        phones::update(&w.svc, &bob, &adas, Some(None), false)
            .await
            .unwrap_err(),
        MfaError::PhoneNotFound
    );
    assert_eq!(
        phones::remove(&w.svc, &bob, &adas, PASSWORD.into())
            .await
            .unwrap_err(),
        MfaError::PhoneNotFound
    );
    w.clock.advance(31);
    assert_eq!(
        phones::replace(&w.svc, &bob, &adas, PASSWORD.into(), n("+14155550150"))
            .await
            .unwrap_err(),
        MfaError::PhoneNotFound
    );
    let other_app = Caller {
        app: AppId::parse("other").unwrap(),
        ..ada.clone()
    };
    assert!(phones::list(&w.svc, &other_app).await.unwrap().is_empty());
    assert_eq!(w.phones(&ada).await.len(), 1);
}

#[tokio::test]
async fn a_failed_notification_never_undoes_the_change_and_is_audited() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    w.outbox.set_email_failing(true);
    let done = w.add(&c, "+14155550102").await.unwrap();
    assert_eq!(done.confirmation_email, "failed");
    assert_eq!(w.phones(&c).await.len(), 2);
    let events = w.audit(Some(&c.user)).await;
    assert_eq!(events[0].0, "notification.failed");
    assert_eq!(events[0].2["about"], "phone.added");
}

#[tokio::test]
async fn the_admin_reset_removes_everything_and_tells_the_user() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    w.add(&c, "+14155550102").await.unwrap();
    w.clock.advance(31);
    let pending = phones::add(&w.svc, &c, PASSWORD.into(), n("+14155550103"), None)
        .await
        .unwrap();
    let code = w.code();
    admin::reset(&w.svc, &w.app, &c.user, "arn:aws:iam::1:user/grace")
        .await
        .unwrap();
    assert!(!status::status(&w.svc, &c).await.unwrap().enrolled);
    let voided =
        enrollment::verify(&w.svc, &c, pending.enrollment_id.as_ref().unwrap(), code).await;
    assert_eq!(
        voided.unwrap_err(),
        MfaError::EnrollmentNotFound,
        "pending codes are void"
    );
    let (subject, text) = w.emails().pop().unwrap();
    assert!(
        subject.contains("reset") && text.contains("+1••••••0101") && text.contains("+1••••••0102")
    );
    let events = w.audit(Some(&c.user)).await;
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("mfa.reset", "arn:aws:iam::1:user/grace")
    );
}

#[tokio::test]
async fn the_audit_log_records_every_event_newest_first_without_numbers() {
    let w = world().await;
    let c = w.enrolled("ada").await;
    w.add(&c, "+14155550102").await.unwrap();
    for _ in 0..5 {
        let _ = enrollment::start(&w.svc, &c, "nope".into()).await;
    }
    let all = w.audit(None).await;
    let actions: Vec<&str> = all.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "password.lockout",
            "phone.added",
            "enrollment.completed",
            "policy.updated",
            "availability.changed"
        ]
    );
    let policy_change = &all[3].2;
    assert_eq!(
        (
            policy_change["old"]["enabled"].clone(),
            policy_change["new"]["enabled"].clone()
        ),
        (Value::Bool(false), Value::Bool(true))
    );
    assert_eq!(all[3].1, "admin@acme");
    let text = format!("{all:?}");
    assert!(
        !text.contains("4155550101") && !text.contains("4155550102"),
        "{text}"
    );

    // Filtered to a user, paginated with an opaque cursor.
    let bob = w.enrolled("bob").await;
    let page = audit::list(&w.svc, &w.app, Some(&c.user), 2, None)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
    let cursor = page.next_cursor.clone().unwrap();
    let rest = audit::list(&w.svc, &w.app, Some(&c.user), 2, Some(&cursor))
        .await
        .unwrap();
    assert_eq!(rest.events.len(), 1);
    assert!(rest.next_cursor.is_none());
    assert_eq!(rest.events[0].action, "enrollment.completed");
    assert!(
        page.events
            .iter()
            .chain(&rest.events)
            .all(|e| e.user_id.as_ref() == Some(&c.user))
    );
    assert!(
        audit::list(&w.svc, &w.app, Some(&bob.user), 10, None)
            .await
            .unwrap()
            .events
            .len()
            == 1
    );
    assert!(matches!(
        audit::list(&w.svc, &w.app, None, 10, Some("zz")).await,
        Err(MfaError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn rate_limit_blocks_name_their_limit_in_the_audit_log() {
    let w = world_with(Limits {
        texts_per_user_per_day: 1,
        ..Limits::default()
    })
    .await;
    let c = w.enrolled("ada").await;
    let err = w.add(&c, "+14155550102").await.unwrap_err();
    assert!(matches!(err, MfaError::RateLimited { .. }));
    let events = w.audit(Some(&c.user)).await;
    assert_eq!(events[0].0, "rate_limit.blocked");
    assert_eq!(events[0].2["limit"], "texts per user per day");
}
