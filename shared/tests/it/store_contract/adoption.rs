//! The adoption figures and the enrollment grace: the cases of `ports/stats.rs` and
//! `start_grace`, run on every store like the rest of the contract.

use mfa_shared::ports::{
    Adoption, AppCodeUse, AppCompletion, AppSetupSeen, Completion, Grace, PhoneChange, Removal,
    SessionKind, Store, UserRecord,
};
use mfa_shared::types::{AppId, Owner, UnixTime, UserId};

use super::{
    NOW, Ns, add, app, app_setup, at_code_for, bound, new_phone, ns, num, open_for, phones,
    removal, setup_kind, step, tag,
};

async fn figures(store: &dyn Store, app: &AppId, now: UnixTime) -> Adoption {
    store.adoption(app, now).await.unwrap()
}

/// The factor counts only (the bucketed figures are another case's).
async fn factor_counts(store: &dyn Store, ns: &Ns) -> (u64, u64, u64) {
    let a = figures(store, &ns.app, NOW).await;
    (a.enrolled, a.sms, a.totp)
}

fn user(app: &AppId, id: &UserId) -> UserRecord {
    UserRecord {
        app_id: app.clone(),
        user_id: id.clone(),
        email: "a@example.com".into(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        locale: None,
        updated_at: NOW,
    }
}

/// Completes a setup that is not a first one, over the factors `seen`.
async fn complete_seen(
    store: &dyn Store,
    e: &mfa_shared::ports::Enrollment,
    i: i64,
    seen: &AppSetupSeen,
) -> AppCompletion {
    store
        .complete_app(AppCodeUse {
            session: e,
            step: step(i),
            step_remembered_until: NOW.plus_secs(90),
            now: NOW,
            reseal: None,
            seen: Some(seen),
        })
        .await
        .unwrap()
}

pub(super) async fn adoption_counts_users_created_not_replaced(store: &dyn Store) {
    let ns = ns();
    assert_eq!(figures(store, &ns.app, NOW).await, Adoption::default());
    let mut u = user(&ns.app, &ns.user);
    store.put_user(&u).await.unwrap();
    u.email = "b@example.com".into();
    store.put_user(&u).await.unwrap();
    store.put_user(&u).await.unwrap();
    assert_eq!(figures(store, &ns.app, NOW).await.users, 1);
    store.put_user(&user(&ns.app, &ns.other)).await.unwrap();
    let a = figures(store, &ns.app, NOW).await;
    assert_eq!((a.users, a.enrolled), (2, 0));
}

pub(super) async fn adoption_follows_factors_through_add_remove_and_reset(store: &dyn Store) {
    let ns = ns();
    // A first phone enrolls; a second phone moves nothing.
    let first = add(store, &ns, &num(1), NOW).await;
    assert_eq!(factor_counts(store, &ns).await, (1, 1, 0));
    let second = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    assert_eq!(factor_counts(store, &ns).await, (1, 1, 0));

    // An app beside the phones: one more with an app, not one more enrolled.
    let e = app_setup(store, &ns, false, NOW).await;
    let seen = AppSetupSeen {
        phones: 2,
        app: None,
    };
    assert_eq!(
        complete_seen(store, &e, 0, &seen).await,
        AppCompletion::Done
    );
    let a1 = bound(&e, NOW);
    assert_eq!(factor_counts(store, &ns).await, (1, 1, 1));

    // A setup over factors that changed since they were read binds and counts nothing.
    let stale = app_setup(store, &ns, false, NOW).await;
    assert_eq!(
        complete_seen(store, &stale, 1, &seen).await,
        AppCompletion::FactorsChanged
    );
    assert_eq!(app(store, &ns).await, Some(a1.clone()));
    assert_eq!(factor_counts(store, &ns).await, (1, 1, 1));

    // A replaced app is still one app.
    let e = app_setup(store, &ns, false, NOW).await;
    let seen = AppSetupSeen {
        phones: 2,
        app: Some(a1.authenticator_id.clone()),
    };
    assert_eq!(
        complete_seen(store, &e, 2, &seen).await,
        AppCompletion::Done
    );
    let a2 = bound(&e, NOW);
    assert_eq!(factor_counts(store, &ns).await, (1, 1, 1));

    // Phones go: the last one takes the user out of `sms`, not out of `enrolled`.
    let r = removal(store, &ns, &second, None).await;
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert_eq!(factor_counts(store, &ns).await, (1, 1, 1));
    let r = Removal {
        app_seen: true,
        ..removal(store, &ns, &first, None).await
    };
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert_eq!(factor_counts(store, &ns).await, (1, 0, 1));
    // The app, the last factor, goes: nobody is enrolled.
    assert!(
        store
            .remove_app(ns.owner(), &a2.authenticator_id, 0)
            .await
            .unwrap()
    );
    assert_eq!(factor_counts(store, &ns).await, (0, 0, 0));

    // Another user: a first app, then a phone from settings beside it, then an admin reset.
    let other = ns.of(&ns.other);
    let e = open_for(
        store,
        &ns,
        &ns.other,
        SessionKind::AppSetup(setup_kind(true, None)),
        NOW,
    )
    .await;
    assert_eq!(
        super::complete(store, &e, 3, NOW).await,
        AppCompletion::Done
    );
    assert_eq!(factor_counts(store, &ns).await, (1, 0, 1));
    // An add that thinks the user has no app is refused and counts nothing.
    let (e, code_id) = at_code_for(store, &ns, &ns.other, SessionKind::Add, &num(3), NOW).await;
    let phone = new_phone(&num(3), true, NOW);
    let blind = PhoneChange::Add {
        phone: phone.clone(),
        number_tag: tag(&num(3)),
        seen_count: 0,
        app_seen: false,
    };
    let done = store
        .complete_enrollment(e.code_use(&code_id, NOW), &blind)
        .await
        .unwrap();
    assert_eq!(done, Completion::PhonesChanged);
    assert_eq!(factor_counts(store, &ns).await, (1, 0, 1));
    let beside = PhoneChange::Add {
        app_seen: true,
        phone,
        number_tag: tag(&num(3)),
        seen_count: 0,
    };
    let done = store
        .complete_enrollment(e.code_use(&code_id, NOW), &beside)
        .await
        .unwrap();
    assert_eq!(done, Completion::Done);
    assert_eq!(factor_counts(store, &ns).await, (1, 1, 1));
    let reset = store.reset_user(other).await.unwrap();
    assert_eq!((reset.phones.len(), reset.app.is_some()), (1, true));
    assert_eq!(factor_counts(store, &ns).await, (0, 0, 0));
    // A second reset finds nothing and moves nothing.
    store.reset_user(other).await.unwrap();
    assert_eq!(factor_counts(store, &ns).await, (0, 0, 0));
    assert!(phones(store, &ns).await.is_empty());
}

pub(super) async fn adoption_counts_skips_and_texts_in_their_windows(store: &dyn Store) {
    let ns = ns();
    let day = 86_400;
    // NOW is midnight UTC: a skip now is in today's bucket through the sixth day after.
    store
        .put_skip(ns.owner(), NOW, NOW.plus_secs(7 * day))
        .await
        .unwrap();
    store
        .put_skip(ns.of(&ns.other), NOW.plus_secs(day), NOW.plus_secs(8 * day))
        .await
        .unwrap();
    let at = |secs: u64| figures(store, &ns.app, NOW.plus_secs(secs));
    assert_eq!(at(0).await.skips_last_7_days, 1);
    assert_eq!(at(7 * day - 1).await.skips_last_7_days, 2);
    assert_eq!(
        at(7 * day).await.skips_last_7_days,
        1,
        "the first day left the window"
    );
    assert_eq!(at(8 * day).await.skips_last_7_days, 0);

    // A text at 00:00 counts through 23:59:59, one at 00:59:59 through 23:59:59 the next day
    // (whole clock hours).
    store.count_text(ns.owner(), NOW).await.unwrap();
    store
        .count_text(ns.owner(), NOW.plus_secs(3_599))
        .await
        .unwrap();
    store
        .count_text(ns.of(&ns.other), NOW.plus_secs(3_600))
        .await
        .unwrap();
    assert_eq!(at(3_599).await.texts_last_24h, 2);
    assert_eq!(at(day - 1).await.texts_last_24h, 3);
    assert_eq!(at(day).await.texts_last_24h, 1);
    assert_eq!(at(day + 3_600).await.texts_last_24h, 0);
    // Skips and texts move no user count.
    let a = figures(store, &ns.app, NOW).await;
    assert_eq!((a.users, a.enrolled, a.sms, a.totp), (0, 0, 0, 0));
}

pub(super) async fn adoption_is_another_applications_own(store: &dyn Store) {
    let (mine, theirs) = (ns(), ns());
    store.put_user(&user(&mine.app, &mine.user)).await.unwrap();
    add(store, &mine, &num(1), NOW).await;
    store
        .put_skip(mine.owner(), NOW, NOW.plus_secs(60))
        .await
        .unwrap();
    store.count_text(mine.owner(), NOW).await.unwrap();
    let a = figures(store, &mine.app, NOW).await;
    assert_eq!(
        a,
        Adoption {
            users: 1,
            enrolled: 1,
            sms: 1,
            totp: 0,
            skips_last_7_days: 1,
            texts_last_24h: 1,
        }
    );
    assert_eq!(figures(store, &theirs.app, NOW).await, Adoption::default());
}

pub(super) async fn start_grace_keeps_the_first_grace(store: &dyn Store) {
    let ns = ns();
    let first = Grace {
        started_at: NOW,
        ends_at: NOW.plus_secs(14 * 86_400),
    };
    let later = Grace {
        started_at: NOW.plus_secs(60),
        ends_at: NOW.plus_secs(90 * 86_400),
    };
    assert_eq!(store.user_overview(ns.owner()).await.unwrap().grace, None);
    assert_eq!(store.start_grace(ns.owner(), first).await.unwrap(), first);
    assert_eq!(store.start_grace(ns.owner(), later).await.unwrap(), first);
    assert_eq!(
        store.user_overview(ns.owner()).await.unwrap().grace,
        Some(first)
    );
    // Another user's is their own; a reset keeps it.
    let other = Owner::new(&ns.app, &ns.other);
    assert_eq!(store.user_overview(other).await.unwrap().grace, None);
    store.reset_user(ns.owner()).await.unwrap();
    assert_eq!(
        store.user_overview(ns.owner()).await.unwrap().grace,
        Some(first)
    );
}
