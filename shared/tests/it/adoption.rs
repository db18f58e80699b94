//! The adoption figures through the flows (issue 18): each count moved by the flow that
//! changes it (provisioning, enrollment, an added phone or app, removals, the admin reset,
//! skips, texts), a refused or failed change moving nothing, and exact counts under
//! concurrent enrollments; on memory and on moto (whose table spreads the counts over
//! shards).

use std::sync::Arc;

use data_encoding::BASE32_NOPAD;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, admin, phones, stats, status, totp};
use mfa_shared::ports::Store;
use mfa_shared::totp::{TotpSecret, step_at};
use mfa_shared::types::Enforcement;

use crate::kit::{self, PASSWORD, World};

kit::on_both!(
    "mfa-adoption",
    each_figure_follows_the_flow_that_changes_it,
    refused_and_failed_changes_move_nothing,
    concurrent_enrollments_count_exactly,
);

async fn world(store: Arc<dyn Store>) -> World {
    kit::both_factors(store, Limits::default()).await
}

/// The figures as the admin sees them: (users, enrolled, sms, totp, skips, texts).
async fn figures(w: &World) -> (u64, u64, u64, u64, u64, u64) {
    let s = stats::adoption(&w.svc, &w.app).await.unwrap();
    assert_eq!(
        s.texts_per_day_limit,
        Limits::default().texts_per_app_per_day
    );
    assert_eq!(s.as_of, w.svc.clock.now());
    (
        s.users,
        s.enrolled,
        s.enrolled_by_factor.sms,
        s.enrolled_by_factor.totp,
        s.skips_last_7_days,
        s.texts_last_24h,
    )
}

/// Sets an authenticator app up for `c` (as the page does: begin, then the app's code).
async fn set_up_app(w: &World, c: &Caller) {
    let started = totp::begin(&w.svc, c, PASSWORD.into(), None).await.unwrap();
    let secret =
        TotpSecret::from_bytes(&BASE32_NOPAD.decode(started.secret.as_bytes()).unwrap()).unwrap();
    let code = secret.code_at_step(step_at(w.svc.clock.now()));
    mfa_shared::flows::enrollment::verify_code(&w.svc, c, &started.enrollment_id, code)
        .await
        .unwrap();
}

async fn add_phone(w: &World, c: &Caller, number: &str) {
    let sent = w.add_phone(c, number).await;
    let id = sent.enrollment_id.expect("an add texts a code");
    w.verify(c, &id, &w.last_code()).await.unwrap();
}

async fn each_figure_follows_the_flow_that_changes_it(store: Arc<dyn Store>) {
    let w = world(store).await;
    assert_eq!(figures(&w).await, (0, 0, 0, 0, 0, 0));
    let (ada, bob, cy) = (w.user("ada").await, w.user("bob").await, w.user("cy").await);
    // Provisioning the same user again replaces, and counts once.
    w.user("cy").await;
    assert_eq!(figures(&w).await, (3, 0, 0, 0, 0, 0));

    // Ada enrolls by text (one text), then adds a second phone (another text).
    w.enroll(&ada, "+14155550101", None).await;
    assert_eq!(figures(&w).await, (3, 1, 1, 0, 0, 1));
    add_phone(&w, &ada, "+14155550102").await;
    assert_eq!(figures(&w).await, (3, 1, 1, 0, 0, 2));

    // Bob's first factor is an app (no text), then he adds a phone.
    set_up_app(&w, &bob).await;
    assert_eq!(figures(&w).await, (3, 2, 1, 1, 0, 2));
    add_phone(&w, &bob, "+14155550103").await;
    assert_eq!(figures(&w).await, (3, 2, 2, 1, 0, 3));

    // Cy skips twice: two skips, nobody enrolled.
    status::skip(&w.svc, &cy).await.unwrap();
    w.advance(60);
    status::skip(&w.svc, &cy).await.unwrap();
    assert_eq!(figures(&w).await, (3, 2, 2, 1, 2, 3));

    // Ada removes one phone (still enrolled by text), then the last (optional: un-enrolled).
    let list = phones::list(&w.svc, &ada).await.unwrap();
    phones::remove(&w.svc, &ada, &list[1].phone_id, PASSWORD.into())
        .await
        .unwrap();
    assert_eq!(figures(&w).await, (3, 2, 2, 1, 2, 3));
    phones::remove(&w.svc, &ada, &list[0].phone_id, PASSWORD.into())
        .await
        .unwrap();
    assert_eq!(figures(&w).await, (3, 1, 1, 1, 2, 3));

    // The admin resets Bob: his phone and his app go.
    admin::reset(&w.svc, &w.app, &bob.user, "admin")
        .await
        .unwrap();
    assert_eq!(figures(&w).await, (3, 0, 0, 0, 2, 3));

    // The windows move on: texts leave after 24 hours, skips after 7 days.
    w.advance(24 * 3600);
    assert_eq!(figures(&w).await, (3, 0, 0, 0, 2, 0));
    w.advance(6 * 24 * 3600);
    assert_eq!(figures(&w).await, (3, 0, 0, 0, 0, 0));
}

async fn refused_and_failed_changes_move_nothing(store: Arc<dyn Store>) {
    let w = world(store).await;
    let (ada, bob) = (w.user("ada").await, w.user("bob").await);
    w.enroll(&ada, "+14155550101", None).await;
    let before = figures(&w).await;
    assert_eq!(before, (2, 1, 1, 0, 0, 1));

    // A text SNS refused is not counted (and the user may try again).
    let id = w.start(&bob).await;
    w.outbox.set_sms_failing(true);
    assert!(w.phone(&bob, &id, "+14155550102").await.is_err());
    w.outbox.set_sms_failing(false);
    assert_eq!(figures(&w).await, before);
    // A wrong code enrolls nobody.
    w.phone(&bob, &id, "+14155550102").await.unwrap();
    assert!(w.verify(&bob, &id, &w.wrong_code()).await.is_err());
    assert_eq!(figures(&w).await, (2, 1, 1, 0, 0, 2));
    // A skip refused (Ada is enrolled) counts nothing; so does a skip under required.
    assert!(status::skip(&w.svc, &ada).await.is_err());
    kit::set_policy(&w.svc, &w.app, true, true, Enforcement::Required).await;
    assert!(status::skip(&w.svc, &bob).await.is_err());
    // The last phone under required stays (409), and stays counted.
    let list = phones::list(&w.svc, &ada).await.unwrap();
    assert!(
        phones::remove(&w.svc, &ada, &list[0].phone_id, PASSWORD.into())
            .await
            .is_err()
    );
    assert_eq!(figures(&w).await, (2, 1, 1, 0, 0, 2));
    // A store failure during a completion leaves the figures as they were, and the retry
    // counts once.
    w.store.fail_times("complete_enrollment", 1);
    let code = w.last_code();
    assert!(w.verify(&bob, &id, &code).await.is_err());
    assert_eq!(figures(&w).await, (2, 1, 1, 0, 0, 2));
    w.verify(&bob, &id, &code).await.unwrap();
    assert_eq!(figures(&w).await, (2, 2, 2, 0, 0, 2));
}

/// Many users enroll at once, and each user's two tabs race to enroll them twice: the counts
/// are exactly the users enrolled (on moto, spread over the shards of the users' ids).
async fn concurrent_enrollments_count_exactly(store: Arc<dyn Store>) {
    const USERS: usize = 12;
    let w = Arc::new(world(store).await);
    let mut callers = Vec::new();
    for i in 0..USERS {
        callers.push(
            w.user_at(&format!("user-{i}"), &format!("198.51.100.{}", 10 + i))
                .await,
        );
    }
    // Two enrollments per user, each at the code step (each its own number).
    let mut pending = Vec::new();
    for (i, c) in callers.iter().enumerate() {
        for tab in 0..2 {
            let id = w.start(c).await;
            let number = format!("+1415555{:04}", 1000 + i * 2 + tab);
            w.phone(c, &id, &number).await.unwrap();
            pending.push((c.clone(), id, w.last_code()));
        }
    }
    let tasks: Vec<_> = pending
        .into_iter()
        .map(|(c, id, code)| {
            let w = w.clone();
            tokio::spawn(async move { w.verify(&c, &id, &code).await.is_ok() })
        })
        .collect();
    let mut completed = 0;
    for t in tasks {
        completed += usize::from(t.await.unwrap());
    }
    // Exactly one tab per user enrolled them (the other met an enrolled user).
    assert_eq!(completed, USERS);
    for c in &callers {
        assert_eq!(phones::list(&w.svc, c).await.unwrap().len(), 1);
    }
    let texts = (USERS * 2) as u64;
    let users = USERS as u64;
    assert_eq!(figures(&w).await, (users, users, users, 0, 0, texts));

    // Then they all remove their phone at once: nobody is left enrolled.
    let tasks: Vec<_> = callers
        .iter()
        .cloned()
        .map(|c| {
            let w = w.clone();
            tokio::spawn(async move {
                let list = phones::list(&w.svc, &c).await.unwrap();
                phones::remove(&w.svc, &c, &list[0].phone_id, PASSWORD.into())
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(figures(&w).await, (users, 0, 0, 0, 0, texts));
}
