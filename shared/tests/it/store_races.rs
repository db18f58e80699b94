//! The store's promises under races, on both stores: the in-memory store always, DynamoDB
//! through moto when `MFA_TEST_MOTO_URL` names one (those tests are `#[ignore]`d otherwise;
//! `tests/run.sh` runs them). Each scenario is one function over `Arc<dyn Store>`, run by a
//! memory test and a moto test.
//!
//! - make-primary, remove and replace, interleaved at random (a property test), always leave
//!   exactly one primary phone, or none with no phone;
//! - the last phone's removal takes the recovery codes with it, and a set made concurrently
//!   never survives it;
//! - a sign-in code completes only while its phone still carries the number it was sent to;
//! - at most 3 open enrollments or challenges per user;
//! - a full counter says `first` once per window and once per block;
//! - an enrollment of the first phone never adds to a user who has one;
//! - the last factor (the last phone, or the app) takes the recovery codes with it, and a set
//!   made concurrently never survives it; the last phone and the app removed together leave
//!   one of them (and the codes);
//! - a first factor is bound once: a first app setup and a first phone's enrollment racing
//!   leave exactly one;
//! - audit events past their retention are hidden;
//! - the memory store sweeps what has expired.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mfa_shared::adapters::memory::{MemoryStore, SWEEP_EVERY};
use mfa_shared::ports::{
    AppCodeUse, AppCompletion, AppSetup, AuditEvent, AuditQuery, AuditStore, AuthenticatorRecord,
    AuthenticatorStore, Completion, Counted, CounterStore, Enrollment, NewSend, PendingCode,
    PhoneChange, PhoneRecord, Removal, SessionKind, SessionStore, Store, Window,
};
use mfa_shared::totp::Sealed;
use mfa_shared::types::ids::CodeId;
use mfa_shared::types::{AppId, AuthenticatorId, Owner, PhoneId, PhoneNumber, UnixTime, UserId};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::kit::{self, unique};

const NOW: UnixTime = UnixTime(1_800_000_000);

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// A fresh table on the moto server of `MFA_TEST_MOTO_URL`.
async fn moto() -> Arc<dyn Store> {
    kit::emulators::moto("mfa-races").await
}

fn app() -> AppId {
    AppId::parse("acme").unwrap()
}

fn fresh_user() -> UserId {
    UserId::parse(&unique("u")).unwrap()
}

/// A random US mobile-style number, distinct per call in practice.
/// A number not handed out before in this process (claims are per user, and every case has
/// its own users, so numbers need only differ within a process): a random start, then the next
/// one each time. Drawing each at random from the 10,000 let two phones of one user clash.
fn random_number() -> PhoneNumber {
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).unwrap();
        std::sync::atomic::AtomicU32::new(u32::from_le_bytes(b))
    });
    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10_000;
    PhoneNumber::parse(&format!("+1415555{n:04}")).unwrap()
}

/// Stands in for the keyed tag of a number: the store only needs it to be distinct.
fn tag(n: &PhoneNumber) -> String {
    format!("tag{}", n.e164().trim_start_matches('+'))
}

/// An enrollment of `purpose` at the code step, texted to `number`.
async fn at_code(
    store: &Arc<dyn Store>,
    user: &UserId,
    purpose: SessionKind,
    number: &PhoneNumber,
    at: UnixTime,
) -> (Enrollment, CodeId) {
    let e = Enrollment::begin(&app(), user, purpose, at, 1800).unwrap();
    store.create_enrollment(&e).await.unwrap();
    let code_id = CodeId::generate().unwrap();
    let send = NewSend {
        code: PendingCode {
            code_id: code_id.clone(),
            code_hash: "00".repeat(32),
            number: number.clone(),
            label: None,
            expires_at: at.plus_secs(600),
            attempts: 0,
        },
        now: at,
        max_sends: 5,
        last_sent_at_most: None,
        replaces: None,
    };
    store.begin_send(&e, &send).await.unwrap().unwrap();
    (e, code_id)
}

/// Adds a phone as the flow does (the first is primary).
async fn add_phone(store: &Arc<dyn Store>, user: &UserId, purpose: SessionKind) -> Completion {
    let number = random_number();
    let (e, code) = at_code(store, user, purpose, &number, NOW).await;
    let phones = store.list_phones(Owner::new(&app(), user)).await.unwrap();
    let phone = PhoneRecord {
        phone_id: PhoneId::generate().unwrap(),
        number: number.clone(),
        label: None,
        primary: phones.is_empty(),
        verified_at: NOW.plus_secs(phones.len() as u64),
    };
    let change = PhoneChange::Add {
        phone,
        number_tag: tag(&number),
        seen_count: phones.len() as u32,
        app_seen: false,
    };
    store
        .complete_enrollment(e.code_use(&code, NOW), &change)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Exactly one primary, under any interleaving.

#[derive(Debug, Clone, Copy)]
enum Op {
    MakePrimary(usize),
    Remove(usize),
    Replace(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize).prop_map(Op::MakePrimary),
        (0..4usize).prop_map(Op::Remove),
        (0..4usize).prop_map(Op::Replace),
    ]
}

/// What an operation decided from its read, to write after every operation has read.
enum Write {
    Nothing,
    MakePrimary(PhoneId, Vec<PhoneRecord>),
    Remove(Removal),
    Replace(Box<(Enrollment, CodeId, PhoneChange)>),
}

/// One operation as its flow runs it: read the phones and decide; then, once every operation
/// of the case has read (`barrier`) and after `yields` turns, write with what was seen. So
/// every write races the others on a view that may be stale.
async fn run_op(
    store: Arc<dyn Store>,
    user: UserId,
    op: Op,
    yields: u8,
    barrier: Arc<tokio::sync::Barrier>,
) {
    let app = app();
    let phones = store.list_phones(Owner::new(&app, &user)).await.unwrap();
    let pick = |i: usize| phones.get(i % phones.len().max(1)).cloned();
    let write = match op {
        Op::MakePrimary(i) => match pick(i) {
            Some(p) if !p.primary => Write::MakePrimary(p.phone_id, phones.clone()),
            _ => Write::Nothing,
        },
        Op::Remove(i) => match pick(i) {
            None => Write::Nothing,
            Some(p) => {
                let mut sorted = phones.clone();
                sorted.sort_by_key(|p| (!p.primary, p.verified_at));
                let promote = if p.primary {
                    sorted
                        .iter()
                        .find(|o| o.phone_id != p.phone_id)
                        .map(|o| o.phone_id.clone())
                } else {
                    None
                };
                Write::Remove(Removal {
                    app_seen: false,
                    number_tag: tag(&p.number),
                    seen: sorted,
                    promote,
                    phone: p,
                })
            }
        },
        Op::Replace(i) => match pick(i) {
            None => Write::Nothing,
            Some(p) => {
                let new = random_number();
                let (e, code) = at_code(
                    &store,
                    &user,
                    SessionKind::Replace(p.phone_id.clone()),
                    &new,
                    NOW,
                )
                .await;
                let change = PhoneChange::Replace {
                    phone_id: p.phone_id.clone(),
                    old_number_tag: tag(&p.number),
                    old_number: p.number,
                    new_number_tag: tag(&new),
                    new_number: new,
                };
                Write::Replace(Box::new((e, code, change)))
            }
        },
    };
    barrier.wait().await;
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    match write {
        Write::Nothing => {}
        Write::MakePrimary(id, seen) => {
            store
                .set_primary(Owner::new(&app, &user), &id, &seen)
                .await
                .unwrap();
        }
        Write::Remove(removal) => {
            store
                .remove_phone(Owner::new(&app, &user), &removal)
                .await
                .unwrap();
        }
        Write::Replace(replace) => {
            let (e, code, change) = *replace;
            store
                .complete_enrollment(e.code_use(&code, NOW), &change)
                .await
                .unwrap();
        }
    }
}

async fn one_primary_case(
    store: Arc<dyn Store>,
    phones: usize,
    ops: Vec<(Op, u8)>,
) -> Result<(), String> {
    let user = fresh_user();
    for i in 0..phones {
        let purpose = if i == 0 {
            SessionKind::Enroll
        } else {
            SessionKind::Add
        };
        assert_eq!(add_phone(&store, &user, purpose).await, Completion::Done);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(ops.len()));
    let tasks: Vec<_> = ops
        .iter()
        .map(|(op, yields)| {
            tokio::spawn(run_op(
                store.clone(),
                user.clone(),
                *op,
                *yields,
                barrier.clone(),
            ))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.list_phones(Owner::new(&app(), &user)).await.unwrap();
    let primaries = after.iter().filter(|p| p.primary).count();
    if after.is_empty() || primaries == 1 {
        Ok(())
    } else {
        Err(format!(
            "{primaries} primaries among {after:?} after {ops:?}"
        ))
    }
}

fn one_primary_property(store: Arc<dyn Store>, rt: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (1..=4usize, proptest::collection::vec((op(), 0..4u8), 2..6));
    runner
        .run(&strategy, |(phones, ops)| {
            rt.block_on(one_primary_case(store.clone(), phones, ops))
                .map_err(TestCaseError::fail)
        })
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn make_primary_remove_and_replace_keep_one_primary_on_memory() {
    let rt = runtime();
    one_primary_property(memory(), &rt, 200);
}

#[test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
fn make_primary_remove_and_replace_keep_one_primary_on_moto() {
    let rt = runtime();
    let store = rt.block_on(moto());
    // moto serves one request at a time: few cases.
    one_primary_property(store, &rt, 12);
}

// ---------------------------------------------------------------------------------------------
// The last phone takes the recovery codes with it, even when a set is made meanwhile.

fn hashes(prefix: &str) -> Vec<String> {
    (0..10)
        .map(|i| format!("{prefix}{i:02}{}", "ab".repeat(30)))
        .collect()
}

async fn last_phone_and_recovery_codes(store: Arc<dyn Store>, rounds: usize) {
    let app = app();
    // Sequential: removing the last phone drops the set; a set without a phone is refused.
    let user = fresh_user();
    assert!(
        !store
            .replace_recovery_codes(Owner::new(&app, &user), &hashes("a"), NOW)
            .await
            .unwrap(),
        "no phone, no set"
    );
    add_phone(&store, &user, SessionKind::Enroll).await;
    assert!(
        store
            .replace_recovery_codes(Owner::new(&app, &user), &hashes("a"), NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .count_recovery_codes(Owner::new(&app, &user))
            .await
            .unwrap(),
        10
    );
    let phones = store.list_phones(Owner::new(&app, &user)).await.unwrap();
    let removal = Removal {
        app_seen: false,
        phone: phones[0].clone(),
        number_tag: tag(&phones[0].number),
        seen: phones.clone(),
        promote: None,
    };
    assert!(
        store
            .remove_phone(Owner::new(&app, &user), &removal)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .count_recovery_codes(Owner::new(&app, &user))
            .await
            .unwrap(),
        0
    );
    assert!(
        !store
            .consume_recovery_code(Owner::new(&app, &user), &hashes("a")[0])
            .await
            .unwrap()
    );
    // Re-enrolling does not bring them back.
    add_phone(&store, &user, SessionKind::Enroll).await;
    assert_eq!(
        store
            .count_recovery_codes(Owner::new(&app, &user))
            .await
            .unwrap(),
        0
    );

    // Concurrent: a new set and the removal of the last phone. Whatever the order, a user
    // without a phone has no usable code.
    for round in 0..rounds {
        let user = fresh_user();
        add_phone(&store, &user, SessionKind::Enroll).await;
        let phones = store.list_phones(Owner::new(&app, &user)).await.unwrap();
        let removal = Removal {
            app_seen: false,
            phone: phones[0].clone(),
            number_tag: tag(&phones[0].number),
            seen: phones.clone(),
            promote: None,
        };
        let removal = std::sync::Arc::new(removal);
        no_code_survives(
            &store,
            &user,
            &format!("r{round}"),
            move |s, owner_app, owner_user| {
                Box::pin(async move {
                    s.remove_phone(Owner::new(&owner_app, &owner_user), &removal)
                        .await
                        .unwrap()
                })
            },
        )
        .await;
    }

    // The admin reset likewise.
    for round in 0..rounds {
        let user = fresh_user();
        add_phone(&store, &user, SessionKind::Enroll).await;
        no_code_survives(
            &store,
            &user,
            &format!("z{round}"),
            |s, owner_app, owner_user| {
                Box::pin(async move {
                    s.reset_user(Owner::new(&owner_app, &owner_user))
                        .await
                        .unwrap();
                    true
                })
            },
        )
        .await;
        assert!(
            store
                .list_phones(Owner::new(&app, &user))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_phone_takes_the_recovery_codes_on_memory() {
    last_phone_and_recovery_codes(memory(), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn the_last_phone_takes_the_recovery_codes_on_moto() {
    last_phone_and_recovery_codes(moto().await, 6).await;
}

// ---------------------------------------------------------------------------------------------
// A sign-in code proves a phone only while it carries the number the code went to.

async fn challenge_follows_the_phone(store: Arc<dyn Store>) {
    let app = app();
    let user = fresh_user();
    add_phone(&store, &user, SessionKind::Enroll).await;
    add_phone(&store, &user, SessionKind::Add).await;
    let phones = store.list_phones(Owner::new(&app, &user)).await.unwrap();
    let (first, second) = (phones[0].clone(), phones[1].clone());
    let change = |p: &PhoneRecord| PhoneChange::Challenge {
        phone_id: p.phone_id.clone(),
        number: p.number.clone(),
    };
    let challenge = |p: &PhoneRecord| SessionKind::SignIn(p.phone_id.clone());

    // The phone is as it was: Done, once.
    let (e, code) = at_code(&store, &user, challenge(&first), &first.number, NOW).await;
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&code, NOW), &change(&first))
            .await
            .unwrap(),
        Completion::Done
    );

    // Given another number between the text and the check: no.
    let (e, code) = at_code(&store, &user, challenge(&first), &first.number, NOW).await;
    let new = random_number();
    let (re, rcode) = at_code(
        &store,
        &user,
        SessionKind::Replace(first.phone_id.clone()),
        &new,
        NOW,
    )
    .await;
    let replace = PhoneChange::Replace {
        phone_id: first.phone_id.clone(),
        old_number: first.number.clone(),
        old_number_tag: tag(&first.number),
        new_number: new.clone(),
        new_number_tag: tag(&new),
    };
    assert_eq!(
        store
            .complete_enrollment(re.code_use(&rcode, NOW), &replace)
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&code, NOW), &change(&first))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );

    // Removed between the text and the check: no.
    let (e, code) = at_code(&store, &user, challenge(&second), &second.number, NOW).await;
    let seen = store.list_phones(Owner::new(&app, &user)).await.unwrap();
    let removal = Removal {
        app_seen: false,
        phone: second.clone(),
        number_tag: tag(&second.number),
        seen,
        promote: None,
    };
    assert!(
        store
            .remove_phone(Owner::new(&app, &user), &removal)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&code, NOW), &change(&second))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
}

#[tokio::test]
async fn a_challenge_follows_its_phone_on_memory() {
    challenge_follows_the_phone(memory()).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn a_challenge_follows_its_phone_on_moto() {
    challenge_follows_the_phone(moto().await).await;
}

// ---------------------------------------------------------------------------------------------
// Bounded partitions, first refusals, the first phone, expired audit events.

async fn at_most_three_open(store: Arc<dyn Store>) {
    let app = app();
    let user = fresh_user();
    let mut ids = Vec::new();
    for i in 0..6 {
        let e =
            Enrollment::begin(&app, &user, SessionKind::Enroll, NOW.plus_secs(i), 1800).unwrap();
        store.create_enrollment(&e).await.unwrap();
        ids.push(e.id);
    }
    let mut kept = Vec::new();
    for id in &ids {
        kept.push(
            store
                .get_enrollment(
                    Owner {
                        app: &app,
                        user: &user,
                    },
                    id,
                )
                .await
                .unwrap()
                .is_some(),
        );
    }
    // The newest three stay; the oldest were ended as each new one came.
    assert_eq!(kept, [false, false, false, true, true, true]);
}

#[tokio::test]
async fn at_most_three_open_enrollments_on_memory() {
    at_most_three_open(memory()).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn at_most_three_open_enrollments_on_moto() {
    at_most_three_open(moto().await).await;
}

async fn first_refusal_once(store: Arc<dyn Store>) {
    let key = unique("txt-user#acme#ada");
    for _ in 0..2 {
        assert!(matches!(
            store
                .counter_take(&key, Window::new(2, 3600), NOW)
                .await
                .unwrap(),
            Counted::Taken { .. }
        ));
    }
    let mut firsts = 0;
    for i in 0..50 {
        match store
            .counter_take(&key, Window::new(2, 3600), NOW.plus_secs(i))
            .await
            .unwrap()
        {
            Counted::Limited { until, first } => {
                assert_eq!(until, NOW.plus_secs(3600));
                firsts += u32::from(first);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(firsts, 1, "one first refusal per window");
    // A new window, full again: a new first refusal.
    let next = NOW.plus_secs(3600);
    for _ in 0..2 {
        store
            .counter_take(&key, Window::new(2, 3600), next)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .counter_take(&key, Window::new(2, 3600), next)
            .await
            .unwrap(),
        Counted::Limited {
            until: next.plus_secs(3600),
            first: true
        }
    );
    // A block: one first refusal for it too.
    let until = next.plus_secs(7200);
    store.counter_block(&key, until).await.unwrap();
    let answers: Vec<Counted> = futures_lite(store.clone(), &key, next.plus_secs(1)).await;
    assert_eq!(
        answers,
        vec![
            Counted::Limited { until, first: true },
            Counted::Limited {
                until,
                first: false
            },
        ]
    );
}

async fn futures_lite(store: Arc<dyn Store>, key: &str, at: UnixTime) -> Vec<Counted> {
    let mut out = Vec::new();
    for _ in 0..2 {
        out.push(
            store
                .counter_take(key, Window::new(2, 3600), at)
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn a_limit_refuses_first_once_per_window_on_memory() {
    first_refusal_once(memory()).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn a_limit_refuses_first_once_per_window_on_moto() {
    first_refusal_once(moto().await).await;
}

async fn enroll_adds_only_the_first(store: Arc<dyn Store>) {
    let user = fresh_user();
    let number = random_number();
    // Two Starts; the first completes, the second must not add a phone as if first.
    let (e2, c2) = at_code(&store, &user, SessionKind::Enroll, &number, NOW).await;
    assert_eq!(
        add_phone(&store, &user, SessionKind::Enroll).await,
        Completion::Done
    );
    let phone = PhoneRecord {
        phone_id: PhoneId::generate().unwrap(),
        number: number.clone(),
        label: None,
        primary: false,
        verified_at: NOW,
    };
    // Even with the count the store now holds, an Enroll completion is refused.
    let change = PhoneChange::Add {
        phone,
        number_tag: tag(&number),
        seen_count: 1,
        app_seen: false,
    };
    assert_eq!(
        store
            .complete_enrollment(e2.code_use(&c2, NOW), &change)
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    assert_eq!(
        store
            .list_phones(Owner::new(&app(), &user))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_enroll_completion_adds_only_a_first_phone_on_memory() {
    enroll_adds_only_the_first(memory()).await;
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn an_enroll_completion_adds_only_a_first_phone_on_moto() {
    enroll_adds_only_the_first(moto().await).await;
}

fn event(i: u32, expires_at: UnixTime) -> AuditEvent {
    AuditEvent {
        app_id: app(),
        id: format!("{:012}-{i:020}-00000000", NOW.0),
        at: NOW,
        actor: "ada".into(),
        action: "rate_limit.blocked".into(),
        user_id: Some(UserId::parse("ada").unwrap()),
        outcome: "blocked".into(),
        details: "{}".into(),
        expires_at,
    }
}

#[tokio::test]
async fn expired_audit_events_are_hidden_on_memory() {
    let store = memory();
    store
        .append_audit(&event(1, NOW.plus_secs(10)))
        .await
        .unwrap();
    store
        .append_audit(&event(2, NOW.plus_secs(1000)))
        .await
        .unwrap();
    let page = store
        .list_audit(&AuditQuery {
            app: &app(),
            user: None,
            limit: 10,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
    let page = store
        .list_audit(&AuditQuery {
            app: &app(),
            user: None,
            limit: 10,
            after: None,
            now: NOW.plus_secs(10),
        })
        .await
        .unwrap();
    assert_eq!(page.events, vec![event(2, NOW.plus_secs(1000))]);
}

#[tokio::test]
async fn the_memory_store_sweeps_expired_items() {
    let store = MemoryStore::new();
    let app = app();
    // Many short-lived items: counters, enrollments, audit events.
    for i in 0..600u32 {
        store
            .counter_take(&format!("txt-ip#{i}"), Window::new(5, 60), NOW)
            .await
            .unwrap();
    }
    for i in 0..300 {
        let user = UserId::parse(&format!("u{i}")).unwrap();
        let e = Enrollment::begin(&app, &user, SessionKind::Enroll, NOW, 60).unwrap();
        store.create_enrollment(&e).await.unwrap();
        store
            .append_audit(&event(i, NOW.plus_secs(60)))
            .await
            .unwrap();
    }
    // And the steps an app's sign-ins used (one app, bound for good).
    let user = UserId::parse("app-user").unwrap();
    let (setup, _) = app_setup(&app, &user, true, NOW);
    store.create_enrollment(&setup).await.unwrap();
    assert_eq!(
        store.complete_app(app_use(&setup, 0, NOW)).await.unwrap(),
        AppCompletion::Done
    );
    let bound = store
        .get_app(Owner::new(&app, &user))
        .await
        .unwrap()
        .unwrap();
    for i in 1..=300 {
        let c = Enrollment::begin(
            &app,
            &user,
            SessionKind::AppSignIn(bound.authenticator_id.clone()),
            NOW,
            60,
        )
        .unwrap();
        store.create_enrollment(&c).await.unwrap();
        assert_eq!(
            store.complete_app(app_use(&c, i, NOW)).await.unwrap(),
            AppCompletion::Done
        );
    }
    let full = store.item_count();
    assert!(full >= 1500, "{full}");
    // Later, ordinary traffic: the sweep drops what expired.
    let later = NOW.plus_secs(3600);
    for i in 0..SWEEP_EVERY {
        store
            .counter_take(&format!("later#{i}"), Window::new(5, 60), later)
            .await
            .unwrap();
    }
    let after = store.item_count();
    // What stays: the later counters, and the app bound.
    assert!(
        after <= SWEEP_EVERY as usize + 1,
        "{after} items left of {full}: expired ones were kept"
    );
}

// ---------------------------------------------------------------------------------------------
// Authenticator apps: the first and the last factor.

/// An app setup for `user`, begun at `at` (not stored), and the app it would bind.
fn app_setup(
    app: &AppId,
    user: &UserId,
    first: bool,
    at: UnixTime,
) -> (Enrollment, AuthenticatorId) {
    let id = AuthenticatorId::generate().unwrap();
    let kind = SessionKind::AppSetup(AppSetup {
        authenticator: id.clone(),
        sealed: Sealed::from_stored(format!("v1.0123abcd.{id}")),
        label: None,
        first,
    });
    (Enrollment::begin(app, user, kind, at, 1800).unwrap(), id)
}

/// The code of the `i`th step after [`NOW`]'s, used at `now`.
fn app_use(session: &Enrollment, i: i64, now: UnixTime) -> AppCodeUse<'_> {
    AppCodeUse {
        session,
        step: NOW.0 / 30 + i,
        step_remembered_until: now.plus_secs(90),
        now,
        reseal: None,
        seen: None,
    }
}

/// Binds an app to `user` (a setup with a step-up): it must succeed.
async fn bind_app(store: &Arc<dyn Store>, user: &UserId, i: i64) -> AuthenticatorRecord {
    let (setup, _) = app_setup(&app(), user, false, NOW);
    store.create_enrollment(&setup).await.unwrap();
    assert_eq!(
        store.complete_app(app_use(&setup, i, NOW)).await.unwrap(),
        AppCompletion::Done
    );
    store
        .get_app(Owner::new(&app(), user))
        .await
        .unwrap()
        .unwrap()
}

async fn last_factor_and_recovery_codes(store: Arc<dyn Store>, rounds: usize) {
    let app = app();
    // The app as the last factor, removed while a set is made: no code survives.
    for round in 0..rounds {
        let user = fresh_user();
        let bound = bind_app(&store, &user, 0).await;
        let id = bound.authenticator_id.clone();
        no_code_survives(
            &store,
            &user,
            &format!("t{round}"),
            move |s, owner_app, owner_user| {
                Box::pin(async move {
                    s.remove_app(Owner::new(&owner_app, &owner_user), &id, 0)
                        .await
                        .unwrap()
                })
            },
        )
        .await;
    }
    // The last phone and the app removed together, each seeing the other: exactly one goes,
    // and the user keeps a factor and the codes.
    for round in 0..rounds {
        let user = fresh_user();
        let owner = || Owner::new(&app, &user);
        add_phone(&store, &user, SessionKind::Enroll).await;
        let bound = bind_app(&store, &user, 0).await;
        assert!(
            store
                .replace_recovery_codes(owner(), &hashes(&format!("b{round}")), NOW)
                .await
                .unwrap()
        );
        let phones = store.list_phones(owner()).await.unwrap();
        let removal = Removal {
            app_seen: true,
            phone: phones[0].clone(),
            number_tag: tag(&phones[0].number),
            seen: phones.clone(),
            promote: None,
        };
        let (s1, s2, a1, a2, u1, u2) = (
            store.clone(),
            store.clone(),
            app.clone(),
            app.clone(),
            user.clone(),
            user.clone(),
        );
        let phone_gone = tokio::spawn(async move {
            s1.remove_phone(Owner::new(&a1, &u1), &removal)
                .await
                .unwrap()
        });
        let app_gone = tokio::spawn(async move {
            s2.remove_app(Owner::new(&a2, &u2), &bound.authenticator_id, 1)
                .await
                .unwrap()
        });
        let (phone_gone, app_gone) = (phone_gone.await.unwrap(), app_gone.await.unwrap());
        assert!(
            phone_gone != app_gone,
            "round {round}: phone removed {phone_gone}, app removed {app_gone}"
        );
        let phones_left = store.list_phones(owner()).await.unwrap().len();
        let app_left = store.get_app(owner()).await.unwrap().is_some();
        assert_eq!(phones_left == 1, app_gone, "round {round}");
        assert_eq!(app_left, phone_gone, "round {round}");
        assert_eq!(store.count_recovery_codes(owner()).await.unwrap(), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_factor_takes_the_recovery_codes_on_memory() {
    last_factor_and_recovery_codes(memory(), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn the_last_factor_takes_the_recovery_codes_on_moto() {
    last_factor_and_recovery_codes(moto().await, 6).await;
}

async fn first_factor_once(store: Arc<dyn Store>, rounds: usize) {
    let app = app();
    for round in 0..rounds {
        let user = fresh_user();
        let owner = || Owner::new(&app, &user);
        // A first app setup and a first phone's enrollment, both begun with no factor.
        let (setup, _) = app_setup(&app, &user, true, NOW);
        store.create_enrollment(&setup).await.unwrap();
        let number = random_number();
        let (e, code) = at_code(&store, &user, SessionKind::Enroll, &number, NOW).await;
        let change = PhoneChange::Add {
            phone: PhoneRecord {
                phone_id: PhoneId::generate().unwrap(),
                number: number.clone(),
                label: None,
                primary: true,
                verified_at: NOW,
            },
            number_tag: tag(&number),
            seen_count: 0,
            app_seen: false,
        };
        let (s1, s2) = (store.clone(), store.clone());
        let bound =
            tokio::spawn(async move { s1.complete_app(app_use(&setup, 0, NOW)).await.unwrap() });
        let added = tokio::spawn(async move {
            s2.complete_enrollment(e.code_use(&code, NOW), &change)
                .await
                .unwrap()
        });
        let (bound, added) = (bound.await.unwrap(), added.await.unwrap());
        let phones = store.list_phones(owner()).await.unwrap().len();
        let app_ = store.get_app(owner()).await.unwrap();
        match (&bound, &added) {
            (AppCompletion::Done, Completion::PhonesChanged) => {
                assert_eq!((phones, app_.is_some()), (0, true), "round {round}");
            }
            (AppCompletion::FactorsChanged, Completion::Done) => {
                assert_eq!((phones, app_.is_some()), (1, false), "round {round}");
            }
            other => panic!("round {round}: {other:?}: not exactly one first factor"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_factor_is_bound_once_on_memory() {
    first_factor_once(memory(), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn a_first_factor_is_bound_once_on_moto() {
    first_factor_once(moto().await, 6).await;
}

/// A removal of the last factor, as a task: true when it held.
type Removed = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// A new recovery set (`tag`'s) made while `remove` takes `user`'s last factor: whatever the
/// order, the removal holds and no code of the set (or of any other) survives it.
async fn no_code_survives(
    store: &Arc<dyn Store>,
    user: &UserId,
    tag: &str,
    remove: impl FnOnce(Arc<dyn Store>, AppId, UserId) -> Removed + Send + 'static,
) {
    let app = app();
    let set = hashes(tag);
    let (s1, s2, a1, a2, u1, u2) = (
        store.clone(),
        store.clone(),
        app.clone(),
        app.clone(),
        user.clone(),
        user.clone(),
    );
    let set2 = set.clone();
    let made = tokio::spawn(async move {
        s1.replace_recovery_codes(Owner::new(&a1, &u1), &set2, NOW)
            .await
            .unwrap()
    });
    let removed = tokio::spawn(remove(s2, a2, u2));
    let (made, removed) = (made.await.unwrap(), removed.await.unwrap());
    assert!(removed, "{tag}: the removal is as seen");
    assert_eq!(
        store
            .count_recovery_codes(Owner::new(&app, user))
            .await
            .unwrap(),
        0,
        "{tag}: set made {made}, yet codes survived the last factor"
    );
    assert!(
        !store
            .consume_recovery_code(Owner::new(&app, user), &set[0])
            .await
            .unwrap()
    );
}
