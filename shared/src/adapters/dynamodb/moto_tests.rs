//! Tests on moto's DynamoDB.

use std::sync::Arc;

use super::*;

use aws_sdk_dynamodb::Client;

use crate::ports::{
    AuditEvent, AuditStore, Completion, Counted, CounterStore, Enrollment, NewSend, PendingCode,
    PhoneChange, PhoneRecord, PhoneStore, PolicyStore, Purpose, RecoveryStore, Removal,
    SessionStore, Step, UserRecord, UserStore,
};
use crate::types::ids::CodeId;
use crate::types::{
    AppId, CountryCode, EnrollmentId, PhoneId, PhoneNumber, Policy, UnixTime, UserId,
};

use super::counters::*;
use super::item::*;
use super::keys::*;
use crate::adapters::aws::{bootstrap, moto};
use crate::config::AwsNames;

async fn store() -> DynamoStore {
    let url = std::env::var("MFA_TEST_MOTO_URL").unwrap();
    let sdk = moto::sdk_config(&url).await;
    let names = AwsNames {
        table_name: moto::unique("mfa-store"),
        secret_id: moto::unique("mfa-store-secret"),
        signing_secret_id: None,
    };
    bootstrap(&sdk, &names, "store-test@example.com")
        .await
        .unwrap();
    DynamoStore::new(Client::new(&sdk), names.table_name)
}

const NOW: UnixTime = UnixTime(1_800_000_000);

fn pending(number: &str, expires_at: UnixTime) -> PendingCode {
    PendingCode {
        code_id: CodeId::generate().unwrap(),
        code_hash: "cd".repeat(32),
        number: PhoneNumber::parse(number).unwrap(),
        label: Some("mine".into()),
        expires_at,
        attempts: 0,
    }
}

fn new_enrollment(app: &AppId, user: &UserId) -> Enrollment {
    Enrollment {
        id: EnrollmentId::generate().unwrap(),
        app_id: app.clone(),
        user_id: user.clone(),
        purpose: Purpose::Enroll,
        step: Step::Phone,
        created_at: NOW,
        expires_at: NOW.plus_secs(1800),
        sends: 0,
        last_sent_at: None,
        pending: None,
    }
}

fn send(code: &PendingCode, now: UnixTime) -> NewSend {
    NewSend {
        code: code.clone(),
        now,
        max_sends: 3,
        last_sent_at_most: None,
        replaces: None,
    }
}

fn phone(number: &str) -> PhoneRecord {
    PhoneRecord {
        phone_id: PhoneId::generate().unwrap(),
        number: PhoneNumber::parse(number).unwrap(),
        label: None,
        primary: true,
        verified_at: NOW,
    }
}

fn add(phone: &PhoneRecord, tag: &str, seen_count: u32) -> PhoneChange {
    PhoneChange::Add {
        phone: phone.clone(),
        number_tag: tag.into(),
        seen_count,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn every_store_method_against_moto() {
    let db = Arc::new(store().await);
    let missing = DynamoStore::new(db.client.clone(), "no-such-table");
    let err = missing
        .get_policy(&AppId::parse("a").unwrap())
        .await
        .unwrap_err()
        .0;
    assert!(
        err.starts_with("dynamodb get_policy: ") && err.contains("ResourceNotFoundException"),
        "{err}"
    );
    assert!(!err.contains("SdkBody"), "{err}");
    let app = AppId::parse("app-moto").unwrap();
    let user = UserId::parse("user-1").unwrap();
    let other = UserId::parse("user-2").unwrap();

    // Policy: optimistic versions.
    assert_eq!(db.get_policy(&app).await.unwrap(), None);
    let mut p = Policy::default_for(app.clone());
    p.available = true;
    p.version = 1;
    p.allowed_countries = Some(vec![CountryCode::parse("US").unwrap()]);
    assert!(db.put_policy(&p, 0).await.unwrap());
    assert!(
        !db.put_policy(&p, 0).await.unwrap(),
        "a second first write must lose"
    );
    p.enabled = true;
    p.version = 2;
    assert!(!db.put_policy(&p, 5).await.unwrap());
    assert!(db.put_policy(&p, 1).await.unwrap());
    assert!(!db.put_policy(&p, 1).await.unwrap());
    assert_eq!(db.get_policy(&app).await.unwrap(), Some(p));

    // Users and skips.
    let u = UserRecord {
        app_id: app.clone(),
        user_id: user.clone(),
        email: "u@example.com".into(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        updated_at: NOW,
    };
    assert_eq!(db.get_user(&app, &user).await.unwrap(), None);
    db.put_user(&u).await.unwrap();
    assert_eq!(db.get_user(&app, &user).await.unwrap(), Some(u));
    assert_eq!(db.get_skip(&app, &user).await.unwrap(), None);
    db.put_skip(&app, &user, NOW.plus_secs(60)).await.unwrap();
    assert_eq!(
        db.get_skip(&app, &user).await.unwrap(),
        Some(NOW.plus_secs(60))
    );

    // Enrollments: created once, found only under their user.
    let e = new_enrollment(&app, &user);
    db.create_enrollment(&e).await.unwrap();
    assert!(db.create_enrollment(&e).await.is_err());
    assert_eq!(
        db.get_enrollment(&app, &user, &e.id).await.unwrap(),
        Some(e.clone())
    );
    assert_eq!(db.get_enrollment(&app, &other, &e.id).await.unwrap(), None);

    // begin_send and its guards.
    let c1 = pending("+14155550123", NOW.plus_secs(600));
    let prev = db.begin_send(&e, &send(&c1, NOW)).await.unwrap();
    assert_eq!(prev, Some(e.clone()));
    let e1 = db
        .get_enrollment(&app, &user, &e.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e1.step, e1.sends, e1.last_sent_at),
        (Step::Code, 1, Some(NOW))
    );
    assert_eq!(e1.pending, Some(c1.clone()));

    let c2 = pending("+14155550124", NOW.plus_secs(630));
    let later = NOW.plus_secs(30);
    let cooldown = NewSend {
        last_sent_at_most: Some(UnixTime(NOW.0 - 1)),
        ..send(&c2, later)
    };
    assert_eq!(
        db.begin_send(&e, &cooldown).await.unwrap(),
        None,
        "cooldown"
    );
    let wrong = NewSend {
        replaces: Some(c2.code_id.clone()),
        ..send(&c2, later)
    };
    assert_eq!(
        db.begin_send(&e, &wrong).await.unwrap(),
        None,
        "replaces another code"
    );
    let expired = send(&c2, e.expires_at);
    assert_eq!(
        db.begin_send(&e, &expired).await.unwrap(),
        None,
        "expired enrollment"
    );
    let resend = NewSend {
        replaces: Some(c1.code_id.clone()),
        last_sent_at_most: Some(NOW),
        ..send(&c2, later)
    };
    assert_eq!(db.begin_send(&e, &resend).await.unwrap(), Some(e1.clone()));
    let mut c2_nolabel = pending("+14155550124", NOW.plus_secs(640));
    c2_nolabel.label = None;
    db.begin_send(&e, &send(&c2_nolabel, later))
        .await
        .unwrap()
        .unwrap();
    let e3 = db
        .get_enrollment(&app, &user, &e.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e3.sends, e3.pending.clone()),
        (3, Some(c2_nolabel.clone()))
    );
    let c4 = pending("+14155550125", NOW.plus_secs(700));
    assert_eq!(
        db.begin_send(&e, &send(&c4, later)).await.unwrap(),
        None,
        "send limit"
    );

    // undo_send restores the previous state only while the failed code is pending.
    let e2 = db
        .get_enrollment(&app, &user, &e.id)
        .await
        .unwrap()
        .unwrap();
    db.undo_send(&e1, &c1.code_id).await.unwrap();
    assert_eq!(
        db.get_enrollment(&app, &user, &e.id).await.unwrap(),
        Some(e2),
        "not the pending code"
    );
    db.undo_send(&e1, &c2_nolabel.code_id).await.unwrap();
    assert_eq!(
        db.get_enrollment(&app, &user, &e.id).await.unwrap(),
        Some(e1.clone())
    );

    // Attempts: concurrent takes never exceed max.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (db, e1, cid) = (db.clone(), e1.clone(), c1.code_id.clone());
        tasks.push(tokio::spawn(async move {
            db.take_code_attempt(&e1, &cid, 5, NOW).await.unwrap()
        }));
    }
    let mut taken: Vec<u32> = Vec::new();
    for task in tasks {
        taken.extend(task.await.unwrap());
    }
    taken.sort_unstable();
    assert_eq!(taken, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        db.take_code_attempt(&e1, &c1.code_id, 6, NOW)
            .await
            .unwrap(),
        Some(6)
    );
    assert_eq!(
        db.take_code_attempt(&e1, &c2.code_id, 9, NOW)
            .await
            .unwrap(),
        None,
        "other code"
    );
    assert_eq!(
        db.take_code_attempt(&e1, &c1.code_id, 9, c1.expires_at)
            .await
            .unwrap(),
        None,
        "code expired"
    );

    // Completion: once, then the code is gone.
    let ph = phone("+14155550123");
    assert_eq!(
        db.complete_enrollment(&e1, &c1.code_id, &add(&ph, "tag-1", 0), c1.expires_at)
            .await
            .unwrap(),
        Completion::CodeGone,
        "expired"
    );
    assert_eq!(
        db.complete_enrollment(&e1, &c2.code_id, &add(&ph, "tag-1", 0), NOW)
            .await
            .unwrap(),
        Completion::CodeGone,
        "other code"
    );
    assert_eq!(
        db.complete_enrollment(&e1, &c1.code_id, &add(&ph, "tag-1", 0), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(
        db.complete_enrollment(
            &e1,
            &c1.code_id,
            &add(&phone("+14155550123"), "tag-1", 0),
            NOW
        )
        .await
        .unwrap(),
        Completion::CodeGone
    );
    let done = db
        .get_enrollment(&app, &user, &e.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.step, done.pending), (Step::Complete, None));
    assert_eq!(
        db.take_code_attempt(&e1, &c1.code_id, 9, NOW)
            .await
            .unwrap(),
        None,
        "completed"
    );
    assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph.clone()]);
    assert_eq!(db.list_phones(&app, &other).await.unwrap(), vec![]);

    // The same number again for this user: NumberTaken, and nothing changes.
    let again = Enrollment {
        purpose: Purpose::Add,
        ..new_enrollment(&app, &user)
    };
    db.create_enrollment(&again).await.unwrap();
    let c5 = pending("+14155550123", NOW.plus_secs(600));
    db.begin_send(&again, &send(&c5, NOW))
        .await
        .unwrap()
        .unwrap();
    let again_code = db
        .get_enrollment(&app, &user, &again.id)
        .await
        .unwrap()
        .unwrap();
    let ph2 = PhoneRecord {
        primary: false,
        verified_at: NOW.plus_secs(1),
        ..phone("+14155550123")
    };
    assert_eq!(
        db.complete_enrollment(&again_code, &c5.code_id, &add(&ph2, "tag-1", 1), NOW)
            .await
            .unwrap(),
        Completion::NumberTaken
    );
    assert_eq!(
        db.get_enrollment(&app, &user, &again.id).await.unwrap(),
        Some(again_code.clone())
    );
    assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph.clone()]);
    // Another number completes, and phones list in verification order.
    assert_eq!(
        db.complete_enrollment(&again_code, &c5.code_id, &add(&ph2, "tag-2", 1), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph, ph2]);

    // Counters: limit, give back, window reset.
    let key = moto::unique("txt-user#app#u");
    for i in 1..=3 {
        assert_eq!(
            db.counter_take(&key, 3, 100, NOW).await.unwrap(),
            Counted::Taken {
                count: i,
                window_start: NOW
            }
        );
        // The first take creates the counter in the same write, window and TTL included.
        let item = db.get("test", key_item(&key)).await.unwrap().unwrap();
        assert_eq!(
            counter_from_item(&item).unwrap(),
            CounterState {
                window_start: NOW,
                window_end: NOW.plus_secs(100),
                count: i,
                blocked_until: None,
            }
        );
        assert_eq!(item[TTL].as_n().unwrap(), &NOW.plus_secs(100).0.to_string());
    }
    assert_eq!(
        db.counter_take(&key, 3, 100, NOW.plus_secs(10))
            .await
            .unwrap(),
        Counted::Limited {
            until: NOW.plus_secs(100),
            first: true,
        }
    );
    // The next refusal of the same window is not the first.
    assert_eq!(
        db.counter_take(&key, 3, 100, NOW.plus_secs(11))
            .await
            .unwrap(),
        Counted::Limited {
            until: NOW.plus_secs(100),
            first: false,
        }
    );
    db.counter_give_back(&key, NOW).await.unwrap();
    db.counter_give_back(&key, UnixTime(1)).await.unwrap(); // another window: no-op
    assert_eq!(
        db.counter_take(&key, 3, 100, NOW.plus_secs(20))
            .await
            .unwrap(),
        Counted::Taken {
            count: 3,
            window_start: NOW
        }
    );
    let next = NOW.plus_secs(100);
    assert_eq!(
        db.counter_take(&key, 3, 100, next).await.unwrap(),
        Counted::Taken {
            count: 1,
            window_start: next
        }
    );
    db.counter_give_back(&key, NOW).await.unwrap(); // the old window: no-op
    assert_eq!(
        db.counter_take(&key, 3, 100, next).await.unwrap(),
        Counted::Taken {
            count: 2,
            window_start: next
        }
    );
    db.counter_give_back(&key, next).await.unwrap();
    db.counter_give_back(&key, next).await.unwrap();
    db.counter_give_back(&key, next).await.unwrap(); // never below zero
    assert_eq!(
        db.counter_take(&key, 3, 100, next).await.unwrap(),
        Counted::Taken {
            count: 1,
            window_start: next
        }
    );

    // Blocks outlast the window; a block on a missing counter does nothing.
    let until = next.plus_secs(900);
    db.counter_block(&key, until).await.unwrap();
    assert_eq!(
        db.counter_take(&key, 3, 100, next.plus_secs(1))
            .await
            .unwrap(),
        Counted::Limited { until, first: true }
    );
    assert_eq!(
        db.counter_take(&key, 3, 100, next.plus_secs(500))
            .await
            .unwrap(),
        Counted::Limited {
            until,
            first: false
        }
    );
    let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
    assert_eq!(raw[TTL], t(until));
    assert_eq!(
        db.counter_take(&key, 3, 100, until).await.unwrap(),
        Counted::Taken {
            count: 1,
            window_start: until
        }
    );
    let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
    assert_eq!(
        (raw[TTL].clone(), raw.contains_key("blocked_until")),
        (t(until.plus_secs(100)), false)
    );
    // A short block inside a long window keeps the window's TTL.
    db.counter_block(&key, until.plus_secs(10)).await.unwrap();
    let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
    assert_eq!(raw[TTL], t(until.plus_secs(100)));
    assert_eq!(
        db.counter_take(&key, 3, 100, until.plus_secs(5))
            .await
            .unwrap(),
        Counted::Limited {
            until: until.plus_secs(10),
            first: true,
        }
    );
    assert_eq!(
        db.counter_take(&key, 3, 100, until.plus_secs(10))
            .await
            .unwrap(),
        Counted::Taken {
            count: 2,
            window_start: until
        }
    );
    let fresh = moto::unique("pw#app#u");
    db.counter_block(&fresh, until).await.unwrap();
    assert_eq!(db.get("test", key_item(&fresh)).await.unwrap(), None);
    assert_eq!(
        db.counter_take(&fresh, 3, 100, NOW).await.unwrap(),
        Counted::Taken {
            count: 1,
            window_start: NOW
        }
    );

    // Concurrent takes on a fresh counter never exceed the limit.
    let key = moto::unique("txt-ip#1.2.3.4");
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (db, key) = (db.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            db.counter_take(&key, 4, 3600, NOW).await.unwrap()
        }));
    }
    let mut counts = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Counted::Taken {
                count,
                window_start,
            } => {
                assert_eq!(window_start, NOW);
                counts.push(count);
            }
            Counted::Limited { until, .. } => assert_eq!(until, NOW.plus_secs(3600)),
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4]);
}

fn challenge_change(p: &PhoneRecord) -> PhoneChange {
    PhoneChange::Challenge {
        phone_id: p.phone_id.clone(),
        number: p.number.clone(),
    }
}

fn key_item(k: &str) -> Item {
    key(counter_pk(k), SK_COUNTER)
}

/// An enrollment of `purpose` at the code step for `number`: the enrollment as the flow
/// holds it, and its pending code.
async fn at_code(
    db: &DynamoStore,
    app: &AppId,
    user: &UserId,
    purpose: Purpose,
    number: &str,
) -> (Enrollment, CodeId) {
    let e = Enrollment {
        purpose,
        ..new_enrollment(app, user)
    };
    db.create_enrollment(&e).await.unwrap();
    let code = pending(number, NOW.plus_secs(600));
    db.begin_send(&e, &send(&code, NOW)).await.unwrap().unwrap();
    let e = db.get_enrollment(app, user, &e.id).await.unwrap().unwrap();
    (e, code.code_id)
}

fn sks(items: &[Item]) -> Vec<String> {
    let mut sks: Vec<String> = items
        .iter()
        .map(|i| i[SK].as_s().unwrap().clone())
        .collect();
    sks.sort();
    sks
}

fn hashes(tag: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| hex::encode(format!("{tag}-{i:04}")))
        .collect()
}

async fn recovery_sks(db: &DynamoStore, app: &AppId, user: &UserId) -> Vec<String> {
    sks(&db.query_partition("t", user_pk(app, user)).await.unwrap())
        .into_iter()
        .filter(|sk| sk.starts_with(RECOVERY_PREFIX))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn challenges_and_recovery_codes_against_moto() {
    let db = Arc::new(store().await);
    let app = AppId::parse("app-recovery").unwrap();
    let user = UserId::parse("user-1").unwrap();
    let other = UserId::parse("user-2").unwrap();

    // A sign-in challenge round trips with its purpose and phone.
    let ph = phone("+14155550101");
    let (ea, ca) = at_code(&db, &app, &user, Purpose::Enroll, "+14155550101").await;
    assert_eq!(
        db.complete_enrollment(&ea, &ca, &add(&ph, "tag-a", 0), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    let challenge = Purpose::Challenge(ph.phone_id.clone());
    let (ec, cc) = at_code(&db, &app, &user, challenge.clone(), "+14155550101").await;
    assert_eq!(ec.purpose, challenge);
    assert_eq!(ec.step, Step::Code);
    let raw = db
        .get("t", key(user_pk(&app, &user), enrollment_sk(&ec.id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw["purpose"], s("challenge"));
    assert_eq!(raw["replace_phone_id"], s(ph.phone_id.as_str()));
    assert_eq!(db.get_enrollment(&app, &other, &ec.id).await.unwrap(), None);

    // Completing it changes nothing but the challenge: once, then CodeGone.
    let other_code = CodeId::generate().unwrap();
    let expiry = ec.pending.as_ref().unwrap().expires_at;
    for (code, at, why) in [(&other_code, NOW, "other code"), (&cc, expiry, "expired")] {
        assert_eq!(
            db.complete_enrollment(&ec, code, &challenge_change(&ph), at)
                .await
                .unwrap(),
            Completion::CodeGone,
            "{why}"
        );
    }
    assert_eq!(
        db.get_enrollment(&app, &user, &ec.id).await.unwrap(),
        Some(ec.clone())
    );
    assert_eq!(
        db.complete_enrollment(&ec, &cc, &challenge_change(&ph), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(
        db.complete_enrollment(&ec, &cc, &challenge_change(&ph), NOW)
            .await
            .unwrap(),
        Completion::CodeGone
    );
    let done = db
        .get_enrollment(&app, &user, &ec.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.purpose, done.step, done.pending),
        (challenge.clone(), Step::Complete, None)
    );
    assert_eq!(
        db.take_code_attempt(&ec, &cc, 9, NOW).await.unwrap(),
        None,
        "completed"
    );
    assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![ph.clone()]);

    // Concurrent completions of one challenge: exactly one is Done.
    let (ec2, cc2) = at_code(&db, &app, &user, challenge.clone(), "+14155550101").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (db, e, c, ph) = (db.clone(), ec2.clone(), cc2.clone(), ph.clone());
        tasks.push(tokio::spawn(async move {
            db.complete_enrollment(&e, &c, &challenge_change(&ph), NOW)
                .await
                .unwrap()
        }));
    }
    let mut done = 0;
    for task in tasks {
        match task.await.unwrap() {
            Completion::Done => done += 1,
            other => assert_eq!(other, Completion::CodeGone),
        }
    }
    assert_eq!(done, 1);

    // Recovery codes: none, then a set of ten, each usable once.
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
    let first = hashes("first", 10);
    db.replace_recovery_codes(&app, &user, &first, NOW)
        .await
        .unwrap();
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 10);
    assert_eq!(db.count_recovery_codes(&app, &other).await.unwrap(), 0);
    let mut expected: Vec<String> = first.iter().map(|h| recovery_sk(h)).collect();
    expected.sort();
    assert_eq!(recovery_sks(&db, &app, &user).await, expected);
    let item = db
        .get("t", key(user_pk(&app, &user), recovery_sk(&first[0])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item["created_at"], t(NOW));
    assert!(!item.contains_key(TTL));
    assert!(
        db.consume_recovery_code(&app, &user, &first[0])
            .await
            .unwrap()
    );
    assert!(
        !db.consume_recovery_code(&app, &user, &first[0])
            .await
            .unwrap(),
        "used"
    );
    assert!(
        !db.consume_recovery_code(&app, &other, &first[1])
            .await
            .unwrap(),
        "another user's"
    );
    assert!(
        !db.consume_recovery_code(&app, &user, &"ee".repeat(32))
            .await
            .unwrap(),
        "unknown"
    );
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 9);

    // Concurrent uses of one code: exactly one succeeds.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (db, app, user, h) = (db.clone(), app.clone(), user.clone(), first[1].clone());
        tasks.push(tokio::spawn(async move {
            db.consume_recovery_code(&app, &user, &h).await.unwrap()
        }));
    }
    let mut used = 0;
    for task in tasks {
        used += u32::from(task.await.unwrap());
    }
    assert_eq!(used, 1);
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 8);

    // A new set replaces the old one: old codes no longer work. A hash in both sets (never
    // in practice) stays one code; a hash given twice is one code.
    let mut second = hashes("second", 9);
    second.push(first[5].clone());
    let mut given = second.clone();
    given.push(second[0].clone());
    db.replace_recovery_codes(&app, &user, &given, NOW.plus_secs(1))
        .await
        .unwrap();
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 10);
    for h in first.iter().filter(|h| **h != first[5]) {
        assert!(!db.consume_recovery_code(&app, &user, h).await.unwrap());
    }
    let set = db
        .get("t", key(user_pk(&app, &user), SK_RECOVERY_SET))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set[GENERATION], n(2));
    assert!(
        db.consume_recovery_code(&app, &user, &first[5])
            .await
            .unwrap()
    );
    assert!(
        db.consume_recovery_code(&app, &user, &second[0])
            .await
            .unwrap()
    );
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 8);

    // Concurrent replacements: one whole set wins, never a mix.
    let sets: Vec<Vec<String>> = (0..4).map(|i| hashes(&format!("race{i}"), 10)).collect();
    let mut tasks = Vec::new();
    for set in sets.clone() {
        let (db, app, user) = (db.clone(), app.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            db.replace_recovery_codes(&app, &user, &set, NOW).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stored = recovery_sks(&db, &app, &user).await;
    assert!(
        sets.iter().any(|set| {
            let mut want: Vec<String> = set.iter().map(|h| recovery_sk(h)).collect();
            want.sort();
            want == stored
        }),
        "{stored:?}"
    );

    // A set too big for one transaction (the non-atomic fallback), then a normal one.
    db.replace_recovery_codes(&app, &user, &hashes("big", 150), NOW)
        .await
        .unwrap();
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 150);
    let last = hashes("last", 10);
    db.replace_recovery_codes(&app, &user, &last, NOW)
        .await
        .unwrap();
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 10);
    db.replace_recovery_codes(&app, &user, &[], NOW)
        .await
        .unwrap();
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
    db.replace_recovery_codes(&app, &user, &last, NOW)
        .await
        .unwrap();
    // A user without a phone keeps no set.
    assert!(
        !db.replace_recovery_codes(&app, &other, &first, NOW)
            .await
            .unwrap()
    );

    // Reset removes the codes (and the set item) with the phones and challenges.
    assert_eq!(db.reset_user(&app, &user).await.unwrap(), vec![ph]);
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
    assert!(
        !db.consume_recovery_code(&app, &user, &last[0])
            .await
            .unwrap()
    );
    assert_eq!(
        db.query_partition("t", user_pk(&app, &user)).await.unwrap(),
        vec![]
    );
    assert_eq!(db.count_recovery_codes(&app, &other).await.unwrap(), 0);
    // After a reset the user has no phone: a set is not kept.
    assert!(
        !db.replace_recovery_codes(&app, &user, &last, NOW)
            .await
            .unwrap()
    );
    assert_eq!(db.count_recovery_codes(&app, &user).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn phones_reset_and_audit_against_moto() {
    let db = store().await;
    let app = AppId::parse("app-phones").unwrap();
    let user = UserId::parse("user-1").unwrap();
    let pk = user_pk(&app, &user);
    let raw = |sk: String| key(pk.clone(), sk);
    let number = |s: &str| PhoneNumber::parse(s).unwrap();
    let t2 = NOW.plus_secs(2);

    // The first phone, at count 0.
    let a = phone("+14155550101");
    let (ea, ca) = at_code(&db, &app, &user, Purpose::Enroll, "+14155550101").await;
    assert_eq!(
        db.complete_enrollment(&ea, &ca, &add(&a, "tag-a", 0), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
    assert_eq!(count[COUNT], n(1));
    let claim = db.get("t", raw(number_sk("tag-a"))).await.unwrap().unwrap();
    assert_eq!(claim["phone_id"], s(a.phone_id.as_str()));

    // Two adds that both saw one phone: the second finds the phones changed and its code
    // stays pending.
    let b = PhoneRecord {
        primary: false,
        label: Some("work".into()),
        verified_at: NOW.plus_secs(1),
        ..phone("+14155550102")
    };
    let c = PhoneRecord {
        primary: false,
        verified_at: t2,
        ..phone("+14155550103")
    };
    let (eb, cb) = at_code(&db, &app, &user, Purpose::Add, "+14155550102").await;
    let (ec, cc) = at_code(&db, &app, &user, Purpose::Add, "+14155550103").await;
    assert_eq!(
        db.complete_enrollment(&eb, &cb, &add(&b, "tag-b", 1), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(
        db.complete_enrollment(&ec, &cc, &add(&c, "tag-c", 1), NOW)
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    assert_eq!(
        db.get_enrollment(&app, &user, &ec.id).await.unwrap(),
        Some(ec.clone())
    );
    assert_eq!(
        db.get("t", raw(number_sk("tag-c"))).await.unwrap(),
        None,
        "no claim left behind"
    );
    // A number the user has: NumberTaken before PhonesChanged; CodeGone before both.
    assert_eq!(
        db.complete_enrollment(&ec, &cc, &add(&c, "tag-a", 1), NOW)
            .await
            .unwrap(),
        Completion::NumberTaken
    );
    assert_eq!(
        db.complete_enrollment(&eb, &cb, &add(&c, "tag-a", 1), NOW)
            .await
            .unwrap(),
        Completion::CodeGone
    );
    assert_eq!(
        db.complete_enrollment(&ec, &cc, &add(&c, "tag-c", 2), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(
        db.list_phones(&app, &user).await.unwrap(),
        vec![a.clone(), b.clone(), c.clone()]
    );

    // Replace, make-before-break: B keeps its number until the code is verified.
    let (er, cr) = at_code(
        &db,
        &app,
        &user,
        Purpose::Replace(b.phone_id.clone()),
        "+14155550104",
    )
    .await;
    assert_eq!(db.list_phones(&app, &user).await.unwrap()[1], b);
    let replace = |old: &str, old_tag: &str, new_tag: &str| PhoneChange::Replace {
        phone_id: b.phone_id.clone(),
        old_number: number(old),
        old_number_tag: old_tag.into(),
        new_number: number("+14155550104"),
        new_number_tag: new_tag.into(),
    };
    let t3 = NOW.plus_secs(3);
    assert_eq!(
        db.complete_enrollment(&er, &cr, &replace("+14155550109", "tag-b", "tag-d"), t3)
            .await
            .unwrap(),
        Completion::PhonesChanged,
        "stale old number"
    );
    assert_eq!(
        db.complete_enrollment(&er, &cr, &replace("+14155550102", "tag-b", "tag-c"), t3)
            .await
            .unwrap(),
        Completion::NumberTaken,
        "a number the user has"
    );
    assert_eq!(
        db.complete_enrollment(&er, &cr, &replace("+14155550102", "tag-b", "tag-b"), t3)
            .await
            .unwrap(),
        Completion::NumberTaken,
        "the same number"
    );
    let wrong_phone = PhoneChange::Replace {
        phone_id: PhoneId::generate().unwrap(),
        old_number: number("+14155550102"),
        old_number_tag: "tag-b".into(),
        new_number: number("+14155550104"),
        new_number_tag: "tag-d".into(),
    };
    assert_eq!(
        db.complete_enrollment(&er, &cr, &wrong_phone, t3)
            .await
            .unwrap(),
        Completion::PhonesChanged,
        "no such phone"
    );
    assert_eq!(db.list_phones(&app, &user).await.unwrap()[1], b);
    assert!(
        db.get("t", raw(number_sk("tag-b")))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        db.get_enrollment(&app, &user, &er.id).await.unwrap(),
        Some(er.clone())
    );
    assert_eq!(
        db.complete_enrollment(&er, &cr, &replace("+14155550102", "tag-b", "tag-d"), t3)
            .await
            .unwrap(),
        Completion::Done
    );
    let b = PhoneRecord {
        number: number("+14155550104"),
        verified_at: t3,
        ..b
    };
    let phones = db.list_phones(&app, &user).await.unwrap();
    assert_eq!(
        phones,
        vec![a.clone(), b.clone(), c.clone()],
        "b keeps its place"
    );
    assert_eq!(db.get("t", raw(number_sk("tag-b"))).await.unwrap(), None);
    let claim = db.get("t", raw(number_sk("tag-d"))).await.unwrap().unwrap();
    assert_eq!(claim["phone_id"], s(b.phone_id.as_str()));
    let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
    assert_eq!(count[COUNT], n(3), "a replace keeps the count");

    // The old number can be added again.
    let old_b = PhoneRecord {
        primary: false,
        verified_at: NOW.plus_secs(4),
        ..phone("+14155550102")
    };
    let (eo, co) = at_code(&db, &app, &user, Purpose::Add, "+14155550102").await;
    assert_eq!(
        db.complete_enrollment(&eo, &co, &add(&old_b, "tag-b", 3), NOW)
            .await
            .unwrap(),
        Completion::Done
    );

    // Labels.
    let labelled = db
        .set_phone_label(&app, &user, &c.phone_id, Some("desk".into()))
        .await
        .unwrap();
    let c = PhoneRecord {
        label: Some("desk".into()),
        ..c
    };
    assert_eq!(labelled, Some(c.clone()));
    let b_cleared = db
        .set_phone_label(&app, &user, &b.phone_id, None)
        .await
        .unwrap();
    let b = PhoneRecord { label: None, ..b };
    assert_eq!(b_cleared, Some(b.clone()));
    let ghost = PhoneId::generate().unwrap();
    assert_eq!(
        db.set_phone_label(&app, &user, &ghost, Some("x".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.set_phone_label(&app, &user, &ghost, None).await.unwrap(),
        None
    );
    assert_eq!(db.get("t", raw(phone_sk(&ghost))).await.unwrap(), None);
    assert_eq!(
        db.list_phones(&app, &user).await.unwrap(),
        vec![a.clone(), b.clone(), c.clone(), old_b.clone()]
    );

    // Primary.
    let primaries = |phones: Vec<PhoneRecord>| -> Vec<PhoneId> {
        phones
            .into_iter()
            .filter(|p| p.primary)
            .map(|p| p.phone_id)
            .collect()
    };
    let seen = db.list_phones(&app, &user).await.unwrap();
    assert!(
        db.set_primary(&app, &user, &b.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(
        primaries(db.list_phones(&app, &user).await.unwrap()),
        vec![b.phone_id.clone()]
    );
    let a = PhoneRecord {
        primary: false,
        ..a
    };
    assert!(
        !db.set_primary(&app, &user, &c.phone_id, &seen)
            .await
            .unwrap(),
        "A is no longer primary"
    );
    let seen = db.list_phones(&app, &user).await.unwrap();
    assert!(
        !db.set_primary(&app, &user, &ghost, &seen).await.unwrap(),
        "no such phone"
    );
    assert!(
        !db.set_primary(&app, &user, &c.phone_id, &seen[..3])
            .await
            .unwrap(),
        "a phone missing from the view"
    );
    assert!(
        db.set_primary(&app, &user, &b.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(db.get("t", raw(phone_sk(&ghost))).await.unwrap(), None);
    assert_eq!(
        primaries(db.list_phones(&app, &user).await.unwrap()),
        vec![b.phone_id.clone()]
    );

    // Removal: the primary B goes, C is promoted; a stale count or a gone phone refuses.
    let removal =
        |p: &PhoneRecord, tag: &str, seen: &[PhoneRecord], promote: Option<&PhoneRecord>| Removal {
            phone: p.clone(),
            number_tag: tag.into(),
            seen: seen.to_vec(),
            promote: promote.map(|p| p.phone_id.clone()),
        };
    let b = PhoneRecord { primary: true, ..b };
    let view = db.list_phones(&app, &user).await.unwrap();
    assert_eq!(view.len(), 4);
    assert!(
        !db.remove_phone(&app, &user, &removal(&b, "tag-d", &view[..3], Some(&c)))
            .await
            .unwrap(),
        "stale count"
    );
    assert!(
        !db.remove_phone(
            &app,
            &user,
            &removal(
                &b,
                "tag-d",
                &view,
                Some(&PhoneRecord {
                    phone_id: ghost.clone(),
                    ..c.clone()
                })
            )
        )
        .await
        .unwrap(),
        "no phone to promote"
    );
    assert_eq!(db.list_phones(&app, &user).await.unwrap().len(), 4);
    assert!(
        db.get("t", raw(number_sk("tag-d")))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.remove_phone(&app, &user, &removal(&b, "tag-d", &view, Some(&c)))
            .await
            .unwrap()
    );
    let c = PhoneRecord { primary: true, ..c };
    assert_eq!(
        db.list_phones(&app, &user).await.unwrap(),
        vec![a.clone(), c.clone(), old_b.clone()]
    );
    assert_eq!(db.get("t", raw(number_sk("tag-d"))).await.unwrap(), None);
    assert!(
        !db.remove_phone(&app, &user, &removal(&b, "tag-d", &view, None))
            .await
            .unwrap(),
        "already removed"
    );
    assert!(
        db.remove_phone(
            &app,
            &user,
            &removal(
                &old_b,
                "tag-b",
                &db.list_phones(&app, &user).await.unwrap(),
                None
            )
        )
        .await
        .unwrap()
    );
    let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
    assert_eq!(count[COUNT], n(2));

    // Reset: phones, claims, the count and enrollments go; the profile and skip stay.
    db.put_user(&UserRecord {
        app_id: app.clone(),
        user_id: user.clone(),
        email: "u@example.com".into(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        updated_at: NOW,
    })
    .await
    .unwrap();
    db.put_skip(&app, &user, NOW.plus_secs(60)).await.unwrap();
    let (ep, cp) = at_code(&db, &app, &user, Purpose::Add, "+14155550105").await;
    let other = UserId::parse("user-2").unwrap();
    let d = phone("+14155550101");
    let (ed, cd) = at_code(&db, &app, &other, Purpose::Enroll, "+14155550101").await;
    assert_eq!(
        db.complete_enrollment(&ed, &cd, &add(&d, "tag-a", 0), NOW)
            .await
            .unwrap(),
        Completion::Done,
        "claims are per user"
    );
    assert_eq!(
        db.reset_user(&app, &user).await.unwrap(),
        vec![a.clone(), c.clone()]
    );
    assert_eq!(db.list_phones(&app, &user).await.unwrap(), vec![]);
    assert_eq!(db.get_enrollment(&app, &user, &ep.id).await.unwrap(), None);
    assert_eq!(
        sks(&db.query_partition("t", pk.clone()).await.unwrap()),
        vec![SK_PROFILE.to_owned(), SK_SKIP.to_owned()]
    );
    assert_eq!(
        db.complete_enrollment(&ep, &cp, &add(&phone("+14155550105"), "tag-e", 2), NOW)
            .await
            .unwrap(),
        Completion::CodeGone
    );
    assert_eq!(db.list_phones(&app, &other).await.unwrap(), vec![d.clone()]);
    assert_eq!(db.reset_user(&app, &user).await.unwrap(), vec![]);
    // Enrolling again starts from no phones, with the old numbers free.
    let (ea2, ca2) = at_code(&db, &app, &user, Purpose::Enroll, "+14155550101").await;
    assert_eq!(
        db.complete_enrollment(&ea2, &ca2, &add(&a, "tag-a", 0), NOW)
            .await
            .unwrap(),
        Completion::Done
    );
    // Removing every phone leaves a count of 0, which an add at 0 accepts.
    assert!(
        db.remove_phone(
            &app,
            &user,
            &removal(&a, "tag-a", std::slice::from_ref(&a), None)
        )
        .await
        .unwrap()
    );
    let (ea3, ca3) = at_code(&db, &app, &user, Purpose::Add, "+14155550101").await;
    assert_eq!(
        db.complete_enrollment(&ea3, &ca3, &add(&a, "tag-a", 1), NOW)
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    assert_eq!(
        db.complete_enrollment(&ea3, &ca3, &add(&a, "tag-a", 0), NOW)
            .await
            .unwrap(),
        Completion::Done
    );

    // Audit: newest first, per user, in pages.
    let other_app = AppId::parse("app-other").unwrap();
    let ev = |i: u32, app: &AppId, user: Option<&UserId>| AuditEvent {
        app_id: app.clone(),
        id: format!("{:012}-{i:04}", NOW.0),
        at: NOW,
        actor: "arn:aws:iam::123456789012:user/admin".into(),
        action: format!("action.{i}"),
        user_id: user.cloned(),
        outcome: "ok".into(),
        details: format!(r#"{{"n":{i}}}"#),
        expires_at: NOW.plus_secs(86_400),
    };
    let events: Vec<AuditEvent> = (1..=7)
        .map(|i| ev(i, &app, [Some(&user), Some(&other), None][i as usize % 3]))
        .collect();
    // Appended out of order: the listing sorts by id.
    for i in [3, 0, 6, 1, 5, 2, 4] {
        db.append_audit(&events[i]).await.unwrap();
    }
    db.append_audit(&ev(9, &other_app, Some(&user)))
        .await
        .unwrap();
    let newest: Vec<AuditEvent> = events.iter().rev().cloned().collect();
    let page = db.list_audit(&app, None, 50, None, NOW).await.unwrap();
    assert_eq!(page.events, newest);
    assert_eq!(page.next_after, None);
    let page = db.list_audit(&app, None, 7, None, NOW).await.unwrap();
    assert_eq!((page.events.len(), page.next_after), (7, None));
    let mine: Vec<AuditEvent> = newest
        .iter()
        .filter(|e| e.user_id.as_ref() == Some(&user))
        .cloned()
        .collect();
    assert_eq!(mine.len(), 2);
    let page = db
        .list_audit(&app, Some(&user), 50, None, NOW)
        .await
        .unwrap();
    assert_eq!((page.events, page.next_after), (mine, None));
    let page = db
        .list_audit(&app, Some(&other), 2, None, NOW)
        .await
        .unwrap();
    assert_eq!(page.events, vec![events[6].clone(), events[3].clone()]);
    assert_eq!(page.next_after, Some(events[3].id.clone()));
    let page = db
        .list_audit(&app, Some(&other), 2, page.next_after.as_deref(), NOW)
        .await
        .unwrap();
    assert_eq!(
        (page.events, page.next_after),
        (vec![events[0].clone()], None)
    );
    // Pages of 3 across all 7.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = db
            .list_audit(&app, None, 3, after.as_deref(), NOW)
            .await
            .unwrap();
        pages += 1;
        assert!(page.events.len() <= 3);
        if let Some(next) = &page.next_after {
            assert_eq!(Some(next), page.events.last().map(|e| &e.id));
        }
        seen.extend(page.events);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!((seen, pages), (newest.clone(), 3));
    let page = db.list_audit(&app, None, 0, None, NOW).await.unwrap();
    assert_eq!((page.events, page.next_after), (vec![], None));
    let page = db
        .list_audit(&app, None, 10, Some(&events[0].id), NOW)
        .await
        .unwrap();
    assert_eq!((page.events, page.next_after), (vec![], None));
    let page = db
        .list_audit(&other_app, None, 10, None, NOW)
        .await
        .unwrap();
    assert_eq!(page.events, vec![ev(9, &other_app, Some(&user))]);
    let item = db
        .get("t", key(user_audit_pk(&app, &user), events[2].id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item[TTL], t(NOW.plus_secs(86_400)));
    // Past their retention, events are hidden before TTL deletes them.
    let late = NOW.plus_secs(86_400);
    let page = db.list_audit(&app, None, 50, None, late).await.unwrap();
    assert_eq!((page.events, page.next_after), (vec![], None));
    let page = db
        .list_audit(&app, Some(&user), 50, None, late)
        .await
        .unwrap();
    assert_eq!(page.events, vec![]);
}
