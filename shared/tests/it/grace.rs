//! The enrollment grace under `required` (contract v2, "Rolling MFA out"; `flows/grace.rs`):
//! when it starts (the first status that would prompt under `required` with a grace period),
//! when it ends (to the second), what status and Skip say before, during and after it, how
//! policy changes bend it (shortened, never lengthened), and that concurrent first statuses
//! start one grace and record one `grace.started`. Each case runs on the in-memory store and
//! (when `MFA_TEST_MOTO_URL` names a moto server; `#[ignore]`d otherwise) on DynamoDB, with a
//! fixed clock.

use std::sync::Arc;

use mfa_shared::MfaError;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, admin, audit, policy, status};
use mfa_shared::ports::{Grace, Store};
use mfa_shared::types::{Enforcement, UnixTime};
use serde_json::{Value, json};

use crate::kit::{self, T0, World, unique};

use Enforcement::{Optional, Required};

kit::on_both!(
    "mfa-grace",
    the_grace_starts_at_the_first_prompt_and_ends_on_its_second,
    skip_during_the_grace_ends_with_it_and_is_refused_after,
    a_first_request_that_is_a_skip_starts_the_grace,
    a_policy_change_shortens_a_grace_but_never_lengthens_it,
    a_user_prompted_under_zero_days_gets_a_grace_when_days_are_set,
    concurrent_first_statuses_start_one_grace,
    an_admin_reset_keeps_the_grace,
    a_status_that_does_not_prompt_starts_nothing,
    a_failed_grace_write_answers_503_and_a_later_prompt_starts_it,
);

const DAY: i64 = 86_400;
const SKIP: i64 = 7 * DAY;

/// A fresh application on `store` at [`T0`], MFA enabled in sign-up with `enforcement` and a
/// grace period of `days`.
async fn world(store: Arc<dyn Store>, enforcement: Enforcement, days: u16) -> World {
    let w = kit::deployment(store, Limits::default(), T0, &unique("app")).await;
    set(&w, enforcement, days).await;
    w
}

/// The admin saves the policy: enabled, in sign-up, `enforcement`, `days`.
async fn set(w: &World, enforcement: Enforcement, days: u16) {
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: true,
        enforcement,
        allowed_countries: None,
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: Some(days),
    };
    policy::update(&w.svc, &w.app, change, None, "admin")
        .await
        .unwrap();
}

fn at(t: i64) -> UnixTime {
    UnixTime(t)
}

/// What status says of the grace: `(prompt, can_skip, enroll_by)`.
async fn seen(w: &World, c: &Caller) -> (&'static str, bool, Option<UnixTime>) {
    let s = status::status(&w.svc, c).await.unwrap();
    (s.prompt, s.can_skip, s.enroll_by)
}

/// The grace the store holds for `c`.
async fn stored(w: &World, c: &Caller) -> Option<Grace> {
    w.svc.store.user_overview(c.owner()).await.unwrap().grace
}

/// The details of `c`'s `grace.started` events, newest first.
async fn started_events(w: &World, c: &Caller) -> Vec<Value> {
    let page = audit::list(&w.svc, &w.app, Some(&c.user), 100, None)
        .await
        .unwrap();
    assert_eq!(page.next_cursor, None);
    page.events
        .into_iter()
        .filter(|e| e.action == "grace.started")
        .inspect(|e| {
            assert_eq!(
                (e.actor.as_str(), e.outcome.as_str()),
                (c.user.as_str(), "ok")
            )
        })
        .map(|e| e.details)
        .collect()
}

/// Moves the clock to `t`.
fn to(w: &World, t: i64) {
    let now = w.svc.clock.now().0;
    assert!(t >= now, "the clock only moves forward");
    w.advance(t - now);
}

async fn the_grace_starts_at_the_first_prompt_and_ends_on_its_second(store: Arc<dyn Store>) {
    let w = world(store, Required, 14).await;
    let c = w.user("ada").await;
    // Provisioning starts nothing: the first status that prompts does.
    to(&w, T0 + 100);
    assert_eq!(stored(&w, &c).await, None);
    let end = T0 + 100 + 14 * DAY;
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    assert_eq!(
        stored(&w, &c).await,
        Some(Grace {
            started_at: at(T0 + 100),
            ends_at: at(end)
        })
    );
    // Later statuses read it, they do not move it.
    to(&w, end - 1);
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    // It ends on its second: no Skip, and the prompt without it.
    to(&w, end);
    assert_eq!(seen(&w, &c).await, ("enroll", false, None));
    to(&w, end + 30 * DAY);
    assert_eq!(seen(&w, &c).await, ("enroll", false, None));
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!(serde_json::to_value(&s).unwrap()["enroll_by"], Value::Null);
    assert_eq!(
        started_events(&w, &c).await,
        [json!({"enroll_by": at(end), "grace_period_days": 14})]
    );
}

async fn skip_during_the_grace_ends_with_it_and_is_refused_after(store: Arc<dyn Store>) {
    let w = world(store, Required, 10).await;
    let c = w.user("ada").await;
    let end = T0 + 10 * DAY;
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    // A whole skip fits in the grace.
    assert_eq!(status::skip(&w.svc, &c).await.unwrap(), at(T0 + SKIP));
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!(
        (s.prompt, s.can_skip, s.skipped_until, s.enroll_by),
        ("none", true, Some(at(T0 + SKIP)), Some(at(end)))
    );
    // The next one is cut at the grace's end.
    to(&w, T0 + SKIP);
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    assert_eq!(status::skip(&w.svc, &c).await.unwrap(), at(end));
    to(&w, end - 1);
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!((s.prompt, s.skipped_until), ("none", Some(at(end))));
    // After the grace: refused, and the prompt is back.
    to(&w, end);
    assert_eq!(
        status::skip(&w.svc, &c).await.unwrap_err(),
        MfaError::EnrollmentRequired
    );
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!(
        (s.prompt, s.can_skip, s.skipped_until, s.enroll_by),
        ("enroll", false, None, None)
    );
    // A skip that outlives a grace cut short holds no longer than the grace: shown, not in
    // force.
    let bob = w.user("bob").await;
    assert_eq!(seen(&w, &bob).await.2, Some(at(end + 10 * DAY)));
    assert_eq!(status::skip(&w.svc, &bob).await.unwrap(), at(end + SKIP));
    set(&w, Required, 2).await;
    to(&w, end + 2 * DAY);
    let s = status::status(&w.svc, &bob).await.unwrap();
    assert_eq!(
        (s.prompt, s.can_skip, s.skipped_until, s.enroll_by),
        ("enroll", false, Some(at(end + SKIP)), None)
    );
    assert_eq!(
        status::skip(&w.svc, &bob).await.unwrap_err(),
        MfaError::EnrollmentRequired
    );
}

async fn a_first_request_that_is_a_skip_starts_the_grace(store: Arc<dyn Store>) {
    let w = world(store, Required, 3).await;
    let c = w.user("ada").await;
    let end = T0 + 3 * DAY;
    assert_eq!(status::skip(&w.svc, &c).await.unwrap(), at(end));
    assert_eq!(
        stored(&w, &c).await,
        Some(Grace {
            started_at: at(T0),
            ends_at: at(end)
        })
    );
    assert_eq!(seen(&w, &c).await, ("none", true, Some(at(end))));
    assert_eq!(started_events(&w, &c).await.len(), 1);
    // An unverified email is not prompted, so its skip starts nothing and is refused.
    let eve = w.provision(&w.app, "eve", "198.51.100.7", false).await;
    assert_eq!(
        status::skip(&w.svc, &eve).await.unwrap_err(),
        MfaError::EnrollmentRequired
    );
    assert_eq!(stored(&w, &eve).await, None);
}

async fn a_policy_change_shortens_a_grace_but_never_lengthens_it(store: Arc<dyn Store>) {
    let w = world(store, Required, 14).await;
    let c = w.user("ada").await;
    let end = T0 + 14 * DAY;
    assert_eq!(seen(&w, &c).await.2, Some(at(end)));
    // Lengthening does not extend it.
    to(&w, T0 + DAY);
    set(&w, Required, 90).await;
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    // Shortening shortens it, counted from its start.
    set(&w, Required, 7).await;
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(T0 + 7 * DAY))));
    // Lengthened again: back up to its first end, never past it.
    set(&w, Required, 30).await;
    assert_eq!(seen(&w, &c).await.2, Some(at(end)));
    // 0 ends it at once.
    set(&w, Required, 0).await;
    assert_eq!(seen(&w, &c).await, ("enroll", false, None));
    assert_eq!(
        status::skip(&w.svc, &c).await.unwrap_err(),
        MfaError::EnrollmentRequired
    );
    // Optional and back to required: the same start, not a new grace.
    set(&w, Optional, 14).await;
    to(&w, T0 + 2 * DAY);
    assert_eq!(seen(&w, &c).await, ("enroll", true, None));
    set(&w, Required, 14).await;
    to(&w, T0 + 3 * DAY);
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    to(&w, end);
    assert_eq!(seen(&w, &c).await, ("enroll", false, None));
    assert_eq!(
        stored(&w, &c).await,
        Some(Grace {
            started_at: at(T0),
            ends_at: at(end)
        })
    );
    assert_eq!(started_events(&w, &c).await.len(), 1);
}

async fn a_user_prompted_under_zero_days_gets_a_grace_when_days_are_set(store: Arc<dyn Store>) {
    let w = world(store, Required, 0).await;
    let c = w.user("ada").await;
    assert_eq!(seen(&w, &c).await, ("enroll", false, None));
    assert_eq!(stored(&w, &c).await, None);
    assert_eq!(started_events(&w, &c).await, Vec::<Value>::new());
    to(&w, T0 + DAY);
    set(&w, Required, 5).await;
    to(&w, T0 + DAY + 60);
    let end = T0 + DAY + 60 + 5 * DAY;
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    assert_eq!(
        started_events(&w, &c).await,
        [json!({"enroll_by": at(end), "grace_period_days": 5})]
    );
}

async fn concurrent_first_statuses_start_one_grace(store: Arc<dyn Store>) {
    let w = world(store, Required, 14).await;
    for (name, moves) in [("ada", false), ("bob", true)] {
        let c = w.user(name).await;
        let mut tasks = Vec::new();
        for i in 0..8 {
            // Bob's statuses straddle a second: the first four have read the clock (they run
            // to their first store call) before it moves, so two graces are offered.
            if moves && i == 4 {
                tokio::task::yield_now().await;
                w.advance(1);
            }
            let (svc, c) = (w.svc.clone(), c.clone());
            tasks.push(tokio::spawn(async move {
                status::status(&svc, &c).await.unwrap().enroll_by
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let kept = stored(&w, &c).await.expect("a grace");
        assert!(
            answers.iter().all(|e| *e == Some(kept.ends_at)),
            "{name}: {answers:?} against {kept:?}"
        );
        assert_eq!(
            started_events(&w, &c).await,
            [json!({"enroll_by": kept.ends_at, "grace_period_days": 14})],
            "{name}"
        );
    }
}

async fn an_admin_reset_keeps_the_grace(store: Arc<dyn Store>) {
    let w = world(store, Required, 14).await;
    let c = w.user("ada").await;
    let end = T0 + 14 * DAY;
    assert_eq!(seen(&w, &c).await.2, Some(at(end)));
    w.enroll(&c, "+14155550101", None).await;
    // Enrolled: no grace to show.
    let s = status::status(&w.svc, &c).await.unwrap();
    assert_eq!(
        (s.enrolled, s.prompt, s.can_skip, s.enroll_by),
        (true, "none", false, None)
    );
    to(&w, T0 + 2 * DAY);
    admin::reset(&w.svc, &w.app, &c.user, "arn:aws:iam::1:user/admin")
        .await
        .unwrap();
    // The same grace as before the reset, not a second one.
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    to(&w, end);
    admin::reset(&w.svc, &w.app, &c.user, "arn:aws:iam::1:user/admin")
        .await
        .unwrap();
    assert_eq!(seen(&w, &c).await, ("enroll", false, None));
    assert_eq!(started_events(&w, &c).await.len(), 1);
}

async fn a_status_that_does_not_prompt_starts_nothing(store: Arc<dyn Store>) {
    let w = world(store, Required, 14).await;
    // An unverified email.
    let eve = w.provision(&w.app, "eve", "198.51.100.7", false).await;
    assert_eq!(seen(&w, &eve).await, ("none", false, None));
    // An enrolled user (enrolled under optional, then required).
    let ada = w.user("ada").await;
    set(&w, Optional, 14).await;
    // Optional prompts, but not under required.
    assert_eq!(seen(&w, &ada).await, ("enroll", true, None));
    w.enroll(&ada, "+14155550101", None).await;
    set(&w, Required, 14).await;
    assert_eq!(seen(&w, &ada).await, ("none", false, None));
    // Required outside sign-up: no prompt, no grace.
    let bob = w.user("bob").await;
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: false,
        enforcement: Required,
        allowed_countries: None,
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    policy::update(&w.svc, &w.app, change, None, "admin")
        .await
        .unwrap();
    assert_eq!(seen(&w, &bob).await, ("none", false, None));
    for c in [&eve, &ada, &bob] {
        assert_eq!(stored(&w, c).await, None, "{}", c.user.as_str());
        assert_eq!(started_events(&w, c).await, Vec::<Value>::new());
    }
    // The same users once status prompts them: eve's email verified, bob in sign-up.
    w.provision(&w.app, "eve", "198.51.100.7", true).await;
    set(&w, Required, 14).await;
    for c in [&eve, &bob] {
        assert_eq!(seen(&w, c).await, ("enroll", true, Some(at(T0 + 14 * DAY))));
    }
    assert_eq!(stored(&w, &ada).await, None);
}

async fn a_failed_grace_write_answers_503_and_a_later_prompt_starts_it(store: Arc<dyn Store>) {
    let w = world(store, Required, 14).await;
    let c = w.user("ada").await;
    w.store.fail("start_grace");
    let err = status::status(&w.svc, &c).await.unwrap_err();
    assert_eq!(err.status(), 503, "{err:?}");
    let err = status::skip(&w.svc, &c).await.unwrap_err();
    assert_eq!(err.status(), 503, "{err:?}");
    w.store.heal();
    assert_eq!(stored(&w, &c).await, None);
    assert_eq!(w.svc.store.get_skip(c.owner()).await.unwrap(), None);
    assert_eq!(started_events(&w, &c).await, Vec::<Value>::new());
    // Nothing was started, so the next prompt starts the grace, from then.
    to(&w, T0 + 60);
    let end = T0 + 60 + 14 * DAY;
    assert_eq!(seen(&w, &c).await, ("enroll", true, Some(at(end))));
    assert_eq!(started_events(&w, &c).await.len(), 1);
}
