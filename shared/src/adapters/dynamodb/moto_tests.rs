//! What only the raw items show, on moto's DynamoDB: the attributes that make TTL, retries and
//! guards work (TTL values, write tokens, `used_by`, the recovery set's generation, the phone
//! count and number claims), and that no code is stored in clear. What the store answers is
//! the store contract suite's (`shared/tests/it/store_contract.rs`, on memory, moto and dynoxide).

use aws_sdk_dynamodb::Client;

use crate::ports::{
    AuditEvent, AuditStore, Completion, Counted, CounterStore, Enrollment, NewSend, PendingCode,
    PhoneChange, PhoneRecord, PolicyStore, RecoveryStore, SessionKind, SessionStore, UserRecord,
    UserStore, Window,
};
use crate::types::ids::CodeId;
use crate::types::{AppId, Owner, PhoneId, PhoneNumber, UnixTime, UserId};

use super::audit::audit_from_item;
use super::counters::{CounterState, counter_from_item};
use super::item::{
    BLOCKED_UNTIL, CODE_HASH, CODE_ID, COUNT, CREATED_AT, ENROLLMENT_ID, FIRST_VERIFIED_AT,
    GENERATION, PENDING_ATTRS, PHONE_ID, PURPOSE, PURPOSE_PHONE_ID, REFUSED, USED_AT, USED_BY,
    VERIFIED_AT, WRITE_TOKEN, n, s, t,
};
use super::keys::{
    RECOVERY_PREFIX, SK, SK_COUNTER, SK_PHONES, SK_PROFILE, SK_RECOVERY_SET, SK_SKIP, TTL,
    counter_pk, key, number_sk, phone_sk, recovery_sk, user_audit_pk, user_pk,
};
use super::sessions::enrollment_key;
use super::{DynamoStore, Item};
use crate::adapters::aws::moto;

async fn store() -> DynamoStore {
    let (sdk, table) = moto::fresh_table("mfa-store").await;
    DynamoStore::new(Client::new(&sdk), table)
}

/// A fresh table, and the user `user-1` of the application `app`.
async fn user_of(app: &str) -> (DynamoStore, AppId, UserId) {
    let app = AppId::parse(app).unwrap();
    (store().await, app, UserId::parse("user-1").unwrap())
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
    Enrollment::begin(app, user, SessionKind::Enroll, NOW, 1800).unwrap()
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

/// A user with a verified email (the hash is a well-formed PHC string nothing checks here).
fn user_record(app: &AppId, user: &UserId) -> UserRecord {
    UserRecord {
        app_id: app.clone(),
        user_id: user.clone(),
        email: format!("{user}@example.com"),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        locale: None,
        updated_at: NOW,
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
        app_seen: false,
    }
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn an_aws_error_names_the_operation_and_the_error() {
    let db = store().await;
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
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn a_counter_item_carries_its_window_its_ttl_and_a_write_token() {
    let db = store().await;
    let key = moto::unique("txt-user#app#u");
    for i in 1..=3 {
        db.counter_take(&key, Window::new(3, 100), NOW)
            .await
            .unwrap();
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
        assert_eq!(item[TTL], t(NOW.plus_secs(100)));
        assert!(item.contains_key(WRITE_TOKEN));
    }
    // A refusal marks its window once (`refused`).
    db.counter_take(&key, Window::new(3, 100), NOW.plus_secs(10))
        .await
        .unwrap();
    let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
    assert_eq!(raw[REFUSED], s(format!("w{}", NOW.0)));
    // A block past the window's end moves the TTL to the block's end.
    let next = NOW.plus_secs(100);
    let until = next.plus_secs(900);
    db.counter_take(&key, Window::new(3, 100), next)
        .await
        .unwrap();
    db.counter_block(&key, until).await.unwrap();
    let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
    assert_eq!(
        (raw[TTL].clone(), raw[BLOCKED_UNTIL].clone()),
        (t(until), t(until))
    );
    // The window after the block drops it and takes the window's TTL.
    assert!(matches!(
        db.counter_take(&key, Window::new(3, 100), until)
            .await
            .unwrap(),
        Counted::Taken { count: 1, .. }
    ));
    let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
    assert_eq!(
        (raw[TTL].clone(), raw.contains_key(BLOCKED_UNTIL)),
        (t(until.plus_secs(100)), false)
    );
    // A short block inside a long window keeps the window's TTL.
    db.counter_block(&key, until.plus_secs(10)).await.unwrap();
    let raw = db.get("test", key_item(&key)).await.unwrap().unwrap();
    assert_eq!(raw[TTL], t(until.plus_secs(100)));
    // Blocking a counter never taken writes no item.
    let fresh = moto::unique("pw#app#u");
    db.counter_block(&fresh, until).await.unwrap();
    assert_eq!(db.get("test", key_item(&fresh)).await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn a_pending_code_is_stored_as_its_hash_with_the_enrollments_ttl() {
    let (db, app, user) = user_of("app-raw").await;
    let e = new_enrollment(&app, &user);
    db.create_enrollment(&e).await.unwrap();
    let raw = db.get("t", enrollment_key(&e)).await.unwrap().unwrap();
    assert_eq!(raw[TTL], t(e.expires_at));
    let code = pending("+14155550101", NOW.plus_secs(600));
    db.begin_send(&e, &send(&code, NOW)).await.unwrap().unwrap();
    let raw = db.get("t", enrollment_key(&e)).await.unwrap().unwrap();
    assert_eq!(raw[CODE_HASH], s(code.code_hash.as_str()));
    assert_eq!(raw[CODE_ID], s(code.code_id.as_str()));
    assert_eq!(raw[TTL], t(e.expires_at));
    // The counting write carries its token; no attribute but the hash is about the code.
    assert!(raw.contains_key(WRITE_TOKEN));
    for (name, value) in &raw {
        assert!(
            !name.contains("code") || PENDING_ATTRS.contains(&name.as_str()),
            "{name}: {value:?}"
        );
    }

    // A sign-in challenge is an enrollment item, keyed by its challenge id, with its phone in
    // `replace_phone_id`.
    let ph = first_phone(&db, &app, &user).await;
    let (ec, _) = at_code(
        &db,
        &app,
        &user,
        SessionKind::SignIn(ph.phone_id.clone()),
        "+14155550101",
    )
    .await;
    let raw = db.get("t", enrollment_key(&ec)).await.unwrap().unwrap();
    assert_eq!(raw[PURPOSE], s("challenge"));
    assert!(ec.id.as_str().starts_with("chl_"));
    assert_eq!(raw[SK], s(format!("ENROLLMENT#{}", ec.id)));
    assert_eq!(raw[ENROLLMENT_ID], s(ec.id.as_str()));
    assert_eq!(raw[PURPOSE_PHONE_ID], s(ph.phone_id.as_str()));
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn number_claims_and_the_phone_count_are_items_of_the_user() {
    let (db, app, user) = user_of("app-phones").await;
    let pk = user_pk(&app, &user);
    let raw = |sk: String| key(pk.clone(), sk);
    let a = first_phone(&db, &app, &user).await;
    let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
    assert_eq!(count[COUNT], n(1));
    // The claim's sort key holds the number's tag, never the number.
    let claim = db.get("t", raw(number_sk("tag-a"))).await.unwrap().unwrap();
    assert_eq!(claim[PHONE_ID], s(a.phone_id.as_str()));
    let item = db
        .get("t", raw(phone_sk(&a.phone_id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item[FIRST_VERIFIED_AT], t(NOW));
    assert!(!item.contains_key(TTL));

    // A replace moves the claim to the new tag, keeps the count and the first verification.
    let (er, cr) = at_code(
        &db,
        &app,
        &user,
        SessionKind::Replace(a.phone_id.clone()),
        "+14155550177",
    )
    .await;
    let replace = PhoneChange::Replace {
        phone_id: a.phone_id.clone(),
        old_number: a.number.clone(),
        old_number_tag: "tag-a".into(),
        new_number: PhoneNumber::parse("+14155550177").unwrap(),
        new_number_tag: "tag-r".into(),
    };
    let later = NOW.plus_secs(60);
    assert_eq!(
        db.complete_enrollment(er.code_use(&cr, later), &replace)
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(db.get("t", raw(number_sk("tag-a"))).await.unwrap(), None);
    let claim = db.get("t", raw(number_sk("tag-r"))).await.unwrap().unwrap();
    assert_eq!(claim[PHONE_ID], s(a.phone_id.as_str()));
    let count = db.get("t", raw(SK_PHONES.into())).await.unwrap().unwrap();
    assert_eq!(count[COUNT], n(1), "a replace keeps the count");
    let item = db
        .get("t", raw(phone_sk(&a.phone_id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (item[FIRST_VERIFIED_AT].clone(), item[VERIFIED_AT].clone()),
        (t(NOW), t(later))
    );

    // The reset leaves the profile and the skip, and no other item.
    db.put_user(&user_record(&app, &user)).await.unwrap();
    db.put_skip(Owner::new(&app, &user), NOW, NOW.plus_secs(60))
        .await
        .unwrap();
    let skip = db.get("t", raw(SK_SKIP.into())).await.unwrap().unwrap();
    assert_eq!(skip[TTL], t(NOW.plus_secs(60)));
    db.replace_recovery_codes(Owner::new(&app, &user), &hashes("r", 3), NOW)
        .await
        .unwrap();
    db.reset_user(Owner::new(&app, &user)).await.unwrap();
    assert_eq!(
        sks(&db.query_partition("t", pk.clone()).await.unwrap()),
        vec![SK_PROFILE.to_owned(), SK_SKIP.to_owned()]
    );
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn recovery_codes_are_items_keyed_by_hash_marked_when_used() {
    let (db, app, user) = user_of("app-recovery").await;
    first_phone(&db, &app, &user).await;
    let first = hashes("first", 10);
    db.replace_recovery_codes(Owner::new(&app, &user), &first, NOW)
        .await
        .unwrap();
    let mut expected: Vec<String> = first.iter().map(|h| recovery_sk(h)).collect();
    expected.sort();
    assert_eq!(recovery_sks(&db, &app, &user).await, expected);
    let code_key = key(user_pk(&app, &user), recovery_sk(&first[0]));
    let item = db.get("t", code_key.clone()).await.unwrap().unwrap();
    assert_eq!(item[CREATED_AT], t(NOW));
    assert!(!item.contains_key(TTL) && !item.contains_key(USED_BY));
    // A use marks the code (the token of the use), and the code stays until its set goes.
    assert!(
        db.consume_recovery_code(Owner::new(&app, &user), &first[0])
            .await
            .unwrap()
    );
    let item = db.get("t", code_key).await.unwrap().unwrap();
    assert!(item.contains_key(USED_BY) && item.contains_key(USED_AT));
    // Each replacement moves the set's generation.
    db.replace_recovery_codes(Owner::new(&app, &user), &hashes("second", 10), NOW)
        .await
        .unwrap();
    let set = db
        .get("t", key(user_pk(&app, &user), SK_RECOVERY_SET))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set[GENERATION], n(2));
    // A set too big for one transaction (the non-atomic fallback), then a normal one.
    db.replace_recovery_codes(Owner::new(&app, &user), &hashes("big", 150), NOW)
        .await
        .unwrap();
    assert_eq!(
        db.count_recovery_codes(Owner::new(&app, &user))
            .await
            .unwrap(),
        150
    );
    assert_eq!(recovery_sks(&db, &app, &user).await.len(), 150);
    let last = hashes("last", 10);
    db.replace_recovery_codes(Owner::new(&app, &user), &last, NOW)
        .await
        .unwrap();
    let mut expected: Vec<String> = last.iter().map(|h| recovery_sk(h)).collect();
    expected.sort();
    assert_eq!(recovery_sks(&db, &app, &user).await, expected);
    // The reset leaves nothing of the user (no profile was written).
    db.reset_user(Owner::new(&app, &user)).await.unwrap();
    assert_eq!(
        db.query_partition("t", user_pk(&app, &user)).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn an_audit_event_is_written_under_the_app_and_its_user_with_its_ttl() {
    let (db, app, user) = user_of("app-audit").await;
    let event = AuditEvent {
        app_id: app.clone(),
        id: format!("{:012}-0001", NOW.0),
        at: NOW,
        actor: "arn:aws:iam::123456789012:user/admin".into(),
        action: "action.1".into(),
        user_id: Some(user.clone()),
        outcome: "ok".into(),
        details: r#"{"n":1}"#.into(),
        expires_at: NOW.plus_secs(86_400),
    };
    db.append_audit(&event).await.unwrap();
    let shard = super::audit::audit_shard_pk(&app, super::audit::audit_shard_of(&event.id));
    for pk in [shard, user_audit_pk(&app, &user)] {
        let item = db
            .get("t", key(pk, event.id.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item[TTL], t(NOW.plus_secs(86_400)));
        assert_eq!(audit_from_item(&item).unwrap(), event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn concurrent_writes_keep_a_counter_under_its_limit_and_one_whole_recovery_set() {
    // Kept from the former moto walk-through: races on raw items the contract suite does not
    // run concurrently on moto (concurrent first takes; concurrent whole-set replacements).
    let db = std::sync::Arc::new(store().await);
    let key = moto::unique("txt-ip#1.2.3.4");
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (db, key) = (db.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            db.counter_take(&key, Window::new(4, 3600), NOW)
                .await
                .unwrap()
        }));
    }
    let mut counts = Vec::new();
    for task in tasks {
        if let Counted::Taken { count, .. } = task.await.unwrap() {
            counts.push(count);
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4]);

    let app = AppId::parse("app-race").unwrap();
    let user = UserId::parse("user-1").unwrap();
    first_phone(&db, &app, &user).await;
    let sets: Vec<Vec<String>> = (0..4).map(|i| hashes(&format!("race{i}"), 10)).collect();
    let mut tasks = Vec::new();
    for set in sets.clone() {
        let (db, app, user) = (db.clone(), app.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            db.replace_recovery_codes(Owner::new(&app, &user), &set, NOW)
                .await
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
    purpose: SessionKind,
    number: &str,
) -> (Enrollment, CodeId) {
    let e = Enrollment::begin(app, user, purpose, NOW, 1800).unwrap();
    db.create_enrollment(&e).await.unwrap();
    let code = pending(number, NOW.plus_secs(600));
    db.begin_send(&e, &send(&code, NOW)).await.unwrap().unwrap();
    let e = db
        .get_enrollment(Owner { app, user }, &e.id)
        .await
        .unwrap()
        .unwrap();
    (e, code.code_id)
}

/// The user's first phone (+14155550101, claimed as `tag-a`), enrolled through a code.
async fn first_phone(db: &DynamoStore, app: &AppId, user: &UserId) -> PhoneRecord {
    let ph = phone("+14155550101");
    let (e, code) = at_code(db, app, user, SessionKind::Enroll, "+14155550101").await;
    assert_eq!(
        db.complete_enrollment(e.code_use(&code, NOW), &add(&ph, "tag-a", 0))
            .await
            .unwrap(),
        Completion::Done
    );
    ph
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
async fn adoption_counts_are_spread_over_shard_items_and_stay_exact_under_concurrency() {
    use super::stats::{STATS_SHARDS, shard_of, stats_pk};
    use crate::ports::StatsStore;

    let db = std::sync::Arc::new(store().await);
    let app = AppId::parse("app-shards").unwrap();
    // 64 users provisioned at once (each twice, racing with itself), each then enrolled.
    let mut tasks = Vec::new();
    for i in 0..64 {
        for _ in 0..2 {
            let (db, app) = (db.clone(), app.clone());
            tasks.push(tokio::spawn(async move {
                let user = UserId::parse(&format!("user-{i}")).unwrap();
                db.put_user(&user_record(&app, &user)).await.unwrap();
                let ph = phone("+14155550101");
                let (e, code) =
                    at_code(&db, &app, &user, SessionKind::Enroll, "+14155550101").await;
                db.complete_enrollment(e.code_use(&code, NOW), &add(&ph, "tag-a", 0))
                    .await
                    .unwrap()
            }));
        }
    }
    let mut done = 0;
    for task in tasks {
        // Of a user's two enrollments, one adds the first phone; the other meets it.
        done += usize::from(task.await.unwrap() == Completion::Done);
    }
    assert_eq!(done, 64);
    let figures = db.adoption(&app, NOW).await.unwrap();
    assert_eq!((figures.users, figures.enrolled, figures.sms), (64, 64, 64));

    // The counts live in many shard items, none holding more than its users' share.
    let mut shards_used = 0;
    for shard in 0..STATS_SHARDS {
        let items = db
            .query_partition("test", stats_pk(&app, shard))
            .await
            .unwrap();
        let users_here = (0..64)
            .filter(|i| shard_of(&UserId::parse(&format!("user-{i}")).unwrap()) == shard)
            .count();
        if users_here == 0 {
            assert!(items.is_empty(), "shard {shard}: {items:?}");
            continue;
        }
        shards_used += 1;
        assert_eq!(items.len(), 1, "one TOTAL item: {items:?}");
        assert_eq!(items[0].get("users"), Some(&n(users_here)));
        assert_eq!(items[0].get("enrolled"), Some(&n(users_here)));
        assert!(!items[0].contains_key(TTL), "totals never expire");
    }
    assert!(shards_used > STATS_SHARDS / 2, "{shards_used} shards used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn audit_events_are_spread_over_shard_partitions_and_the_users_stay_in_theirs() {
    use super::audit::{AUDIT_SHARDS, audit_shard_of, audit_shard_pk};

    let (db, app, user) = user_of("app-audit-shards").await;
    let event = |i: u64, user: Option<&UserId>| AuditEvent {
        app_id: app.clone(),
        id: format!(
            "{:012}-{:020}-{:08x}",
            NOW.plus_secs(i).0,
            i * 1_000_003,
            i * 2_654_435_761 % (1 << 32)
        ),
        at: NOW.plus_secs(i),
        actor: "system".into(),
        action: format!("action.{i}"),
        user_id: user.cloned(),
        outcome: "ok".into(),
        details: "{}".into(),
        expires_at: NOW.plus_secs(86_400),
    };
    // 24 events of the user and 8 of nobody in particular.
    let events: Vec<AuditEvent> = (0..32)
        .map(|i| event(i, (i % 4 != 0).then_some(&user)))
        .collect();
    for e in &events {
        db.append_audit(e).await.unwrap();
    }
    // Each application copy is in its id's shard partition, and nowhere else among them.
    let mut used = 0;
    let mut found = 0;
    for shard in 0..AUDIT_SHARDS {
        let items = db
            .query_partition("test", audit_shard_pk(&app, shard))
            .await
            .unwrap();
        used += usize::from(!items.is_empty());
        found += items.len();
        for item in &items {
            let e = audit_from_item(item).unwrap();
            assert_eq!(audit_shard_of(&e.id), shard);
            assert!(events.contains(&e), "{e:?}");
        }
    }
    assert_eq!(found, events.len());
    assert!(
        used > 1,
        "the copies are spread: {used} shard partitions used"
    );
    // Nothing under the former unsharded partition.
    let old = db
        .query_partition("test", format!("AUDIT#{app}"))
        .await
        .unwrap();
    assert!(old.is_empty(), "{old:?}");
    // The user's copies stay together in the user's partition, newest first when listed.
    let mine = db
        .query_partition("test", user_audit_pk(&app, &user))
        .await
        .unwrap();
    let mine: Vec<AuditEvent> = mine.iter().map(|i| audit_from_item(i).unwrap()).collect();
    let want: Vec<AuditEvent> = events
        .iter()
        .filter(|e| e.user_id.is_some())
        .cloned()
        .collect();
    assert_eq!(mine, want);
}
