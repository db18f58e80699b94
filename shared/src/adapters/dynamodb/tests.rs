//! Unit tests of the item codecs.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::ports::{
    AppSetup, AuditEvent, AuthenticatorRecord, Enrollment, PendingCode, PhoneRecord, SessionKind,
    Step, UserRecord,
};
use crate::totp::Sealed;
use crate::types::ids::{ChallengeId, CodeId, SessionId};
use crate::types::{
    AppId, AuthenticatorId, CountryCode, Enforcement, EnrollmentId, Factor, PhoneId, PhoneNumber,
    Policy, UnixTime, UserId,
};

use super::Item;
use super::audit::{AUDIT_SHARDS, audit_from_item, audit_shard_of, audit_to_items};
use super::authenticators::used_step_item;
use super::counters::{CounterState, counter_from_item, counter_to_item};
use super::item::{
    ACTOR, CODE_HASH, CREATED_AT, DETAILS, NUMBER, PRIMARY, SENDS, UNTIL, USER_ID, get_t, n, s,
};
use super::keys::{PK, RECOVERY_PREFIX, SK, SK_RECOVERY_SET, TTL, key};
use super::phones::{app_from_item, number_claim_item, phone_from_item, phone_to_item};
use super::policy::{policy_from_item, policy_to_item};
use super::recovery::recovery_code_item;
use super::request::Expr;
use super::sessions::{enrollment_from_item, enrollment_to_item};
use super::transact::{cancelled_err, condition_failed, lost_race};
use super::users::{skip_to_item, user_from_item, user_to_item};

fn app() -> AppId {
    AppId::parse("app-1").unwrap()
}

fn user() -> UserId {
    UserId::parse("auth0|u1").unwrap()
}

fn number() -> PhoneNumber {
    PhoneNumber::parse("+14155550123").unwrap()
}

fn enrollment(pending: bool) -> Enrollment {
    Enrollment {
        id: EnrollmentId::generate().unwrap().into(),
        app_id: app(),
        user_id: user(),
        kind: SessionKind::Enroll,
        step: if pending { Step::Code } else { Step::Phone },
        created_at: UnixTime(1_000),
        expires_at: UnixTime(2_800),
        sends: u32::from(pending),
        last_sent_at: pending.then_some(UnixTime(1_010)),
        pending: pending.then(|| PendingCode {
            code_id: CodeId::generate().unwrap(),
            code_hash: "ab".repeat(32),
            number: number(),
            label: Some("work".into()),
            expires_at: UnixTime(1_610),
            attempts: 2,
        }),
        app_attempts: 0,
    }
}

fn str_of<'a>(item: &'a Item, attr: &str) -> &'a str {
    item[attr].as_s().unwrap()
}

#[test]
fn policy_round_trips_with_and_without_optional_fields() {
    let mut p = Policy::default_for(app());
    assert_eq!(policy_from_item(&policy_to_item(&p)).unwrap(), p);
    p.available = true;
    p.enabled = true;
    p.enforcement = Enforcement::Required;
    p.allowed_countries = Some(vec![
        CountryCode::parse("US").unwrap(),
        CountryCode::parse("GB").unwrap(),
    ]);
    p.version = 7;
    p.updated_at = Some(UnixTime(1_795_000_000));
    p.updated_by = Some("arn:aws:iam::123456789012:user/admin".into());
    let item = policy_to_item(&p);
    assert_eq!(str_of(&item, PK), "APP#app-1");
    assert_eq!(str_of(&item, SK), "POLICY");
    assert!(!item.contains_key(TTL));
    assert_eq!(policy_from_item(&item).unwrap(), p);
    // An empty allow-list is not the same as none.
    p.allowed_countries = Some(vec![]);
    assert_eq!(policy_from_item(&policy_to_item(&p)).unwrap(), p);
}

#[test]
fn policy_factors_are_a_list_of_names_and_default_to_sms() {
    let mut p = Policy::default_for(app());
    p.factors = vec![Factor::Sms, Factor::Totp];
    let mut item = policy_to_item(&p);
    assert_eq!(
        item["factors"],
        AttributeValue::L(vec![s("sms"), s("totp")])
    );
    assert_eq!(policy_from_item(&item).unwrap(), p);
    // A policy item written before apps existed allows SMS only.
    item.remove("factors");
    assert_eq!(policy_from_item(&item).unwrap().factors, vec![Factor::Sms]);
    item.insert("factors".into(), AttributeValue::L(vec![s("voice")]));
    let err = policy_from_item(&item).unwrap_err();
    assert!(err.0.contains("`factors`"), "{}", err.0);
}

#[test]
fn user_round_trips() {
    let u = UserRecord {
        app_id: app(),
        user_id: user(),
        email: "a@example.com".into(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        locale: None,
        updated_at: UnixTime(5),
    };
    let item = user_to_item(&u);
    assert_eq!(str_of(&item, PK), "USER#app-1#auth0|u1");
    assert_eq!(str_of(&item, SK), "PROFILE");
    assert_eq!(user_from_item(&item).unwrap(), u);
}

#[test]
fn skip_expires_with_its_end() {
    let item = skip_to_item(&app(), &user(), UnixTime(99));
    assert_eq!(str_of(&item, SK), "SKIP");
    assert_eq!(item[TTL], n(99));
    assert_eq!(get_t(&item, "skip", UNTIL).unwrap(), UnixTime(99));
}

#[test]
fn phone_round_trips_and_keeps_e164() {
    let p = PhoneRecord {
        phone_id: PhoneId::generate().unwrap(),
        number: number(),
        label: None,
        primary: true,
        verified_at: UnixTime(42),
    };
    let item = phone_to_item(&app(), &user(), &p);
    assert_eq!(str_of(&item, SK), format!("PHONE#{}", p.phone_id));
    assert_eq!(str_of(&item, NUMBER), "+14155550123");
    assert!(!item.contains_key(TTL));
    assert_eq!(phone_from_item(&item).unwrap(), p);
}

#[test]
fn number_claim_holds_the_tag_not_the_number() {
    let item = number_claim_item(
        &app(),
        &user(),
        "0123abcd",
        &PhoneId::generate().unwrap(),
        UnixTime(1),
    );
    assert_eq!(str_of(&item, SK), "NUMBER#0123abcd");
    assert!(
        item.values()
            .all(|v| v.as_s().map_or(true, |s| !s.contains("4155550123")))
    );
}

#[test]
fn enrollment_round_trips_with_and_without_a_pending_code() {
    for pending in [false, true] {
        let e = enrollment(pending);
        let item = enrollment_to_item(&e);
        assert_eq!(str_of(&item, PK), "USER#app-1#auth0|u1");
        assert_eq!(str_of(&item, SK), format!("ENROLLMENT#{}", e.id));
        assert_eq!(item[TTL], n(2_800));
        assert_eq!(item.contains_key(CODE_HASH), pending);
        assert_eq!(enrollment_from_item(&item).unwrap(), e);
    }
    let mut e = enrollment(false);
    e.kind = SessionKind::Replace(PhoneId::generate().unwrap());
    e.step = Step::Complete;
    assert_eq!(enrollment_from_item(&enrollment_to_item(&e)).unwrap(), e);
}

/// The kinds keep the names stored before there were kinds: `purpose`, `replace_phone_id`
/// (a sign-in's phone too), and a sign-in keyed and named by its `chl_` id.
///
/// The one test that names attributes by literal, on purpose: it pins the names items already
/// in a table carry (`PURPOSE_PHONE_ID` is stored as `replace_phone_id`), so that a change of
/// a constant's value fails here. Every other test uses the constants of `item.rs`.
#[test]
fn kinds_map_to_stable_names_and_the_phone_attribute() {
    let phone = PhoneId::generate().unwrap();
    let challenge = SessionId::from(ChallengeId::generate().unwrap());
    for (kind, name, phone_attr) in [
        (SessionKind::Enroll, "enroll", false),
        (SessionKind::Add, "add", false),
        (SessionKind::Replace(phone.clone()), "replace", true),
        (SessionKind::SignIn(phone.clone()), "challenge", true),
    ] {
        for pending in [false, true] {
            let mut e = Enrollment {
                kind: kind.clone(),
                ..enrollment(pending)
            };
            if kind.is_sign_in() {
                e.id = challenge.clone();
            }
            let item = enrollment_to_item(&e);
            assert_eq!(str_of(&item, "purpose"), name);
            assert_eq!(str_of(&item, SK), format!("ENROLLMENT#{}", e.id));
            assert_eq!(str_of(&item, "enrollment_id"), e.id.as_str());
            assert_eq!(item.contains_key("replace_phone_id"), phone_attr);
            if phone_attr {
                assert_eq!(str_of(&item, "replace_phone_id"), phone.as_str());
            }
            assert_eq!(enrollment_from_item(&item).unwrap(), e);
        }
    }
    // A challenge or a replace without its phone, or an unknown purpose, is malformed.
    let mut item = enrollment_to_item(&Enrollment {
        id: challenge,
        kind: SessionKind::SignIn(phone),
        ..enrollment(true)
    });
    item.remove("replace_phone_id");
    let err = enrollment_from_item(&item).unwrap_err();
    assert!(err.0.contains("`replace_phone_id`"), "{}", err.0);
    item.insert("purpose".into(), s("recover"));
    let err = enrollment_from_item(&item).unwrap_err();
    assert!(err.0.contains("`purpose`"), "{}", err.0);
}

#[test]
fn recovery_code_item_is_keyed_by_its_hash() {
    let hash = "0f".repeat(32);
    let item = recovery_code_item(&app(), &user(), &hash, UnixTime(7));
    assert_eq!(str_of(&item, PK), "USER#app-1#auth0|u1");
    assert_eq!(str_of(&item, SK), format!("RECOVERY#{hash}"));
    assert_eq!(item[CREATED_AT], n(7));
    assert!(!item.contains_key(TTL));
    assert_eq!(item.len(), 3);
    // The set item sorts outside the codes' prefix, so counting codes never counts it.
    assert!(!SK_RECOVERY_SET.starts_with(RECOVERY_PREFIX));
}

#[test]
fn enrollment_item_never_holds_the_code() {
    let e = enrollment(true);
    let item = enrollment_to_item(&e);
    let hash = &e.pending.as_ref().unwrap().code_hash;
    assert_eq!(str_of(&item, CODE_HASH), hash);
    assert!(!item.contains_key("code"));
}

#[test]
fn counter_ttl_is_the_later_of_window_and_block() {
    let mut c = CounterState {
        window_start: UnixTime(100),
        window_end: UnixTime(200),
        count: 3,
        blocked_until: None,
    };
    let item = counter_to_item("pw#a#u", &c);
    assert_eq!(str_of(&item, PK), "COUNTER#pw#a#u");
    assert_eq!(str_of(&item, SK), "COUNTER");
    assert_eq!(item[TTL], n(200));
    assert_eq!(counter_from_item(&item).unwrap(), c);
    c.blocked_until = Some(UnixTime(900));
    let item = counter_to_item("k", &c);
    assert_eq!(item[TTL], n(900));
    assert_eq!(counter_from_item(&item).unwrap(), c);
}

#[test]
fn malformed_items_name_the_attribute_not_the_value() {
    let mut item = phone_to_item(
        &app(),
        &user(),
        &PhoneRecord {
            phone_id: PhoneId::generate().unwrap(),
            number: number(),
            label: None,
            primary: false,
            verified_at: UnixTime(1),
        },
    );
    item.remove(PRIMARY);
    let err = phone_from_item(&item).unwrap_err();
    assert!(err.0.contains(&format!("`{PRIMARY}`")), "{}", err.0);
    item.insert(PRIMARY.into(), AttributeValue::Bool(true));
    item.insert(NUMBER.into(), s("+1-800-555-012"));
    let err = phone_from_item(&item).unwrap_err();
    assert!(!err.0.contains("800555012"), "{}", err.0);
    let mut e = enrollment_to_item(&enrollment(false));
    e.insert(SENDS.into(), s("many"));
    let err = enrollment_from_item(&e).unwrap_err();
    assert!(err.0.contains(&format!("`{SENDS}`")), "{}", err.0);
}

fn event(id: &str, user: Option<UserId>) -> AuditEvent {
    AuditEvent {
        app_id: app(),
        id: id.into(),
        at: UnixTime(1_800_000_000),
        actor: "arn:aws:iam::123456789012:user/admin".into(),
        action: "user.reset".into(),
        user_id: user,
        outcome: "ok".into(),
        details: r#"{"phones":2}"#.into(),
        expires_at: UnixTime(1_807_776_000),
    }
}

#[test]
fn audit_event_is_written_under_the_app_and_its_user() {
    let e = event("001800000000-x", Some(user()));
    let items = audit_to_items(&e);
    assert_eq!(items.len(), 2);
    let shard = audit_shard_of("001800000000-x");
    assert_eq!(str_of(&items[0], PK), format!("AUDIT#app-1#{shard}"));
    assert_eq!(str_of(&items[1], PK), "AUDIT#app-1#USER#auth0|u1");
    for item in &items {
        assert_eq!(str_of(item, SK), "001800000000-x");
        assert_eq!(item[TTL], n(1_807_776_000));
        assert_eq!(str_of(item, DETAILS), r#"{"phones":2}"#);
        assert_eq!(audit_from_item(item).unwrap(), e);
    }
    let e = event("001800000000-y", None);
    let items = audit_to_items(&e);
    assert_eq!(items.len(), 1);
    let shard = audit_shard_of("001800000000-y");
    assert_eq!(str_of(&items[0], PK), format!("AUDIT#app-1#{shard}"));
    assert!(!items[0].contains_key(USER_ID));
    assert_eq!(audit_from_item(&items[0]).unwrap(), e);
    let mut bad = items[0].clone();
    bad.remove(ACTOR);
    let err = audit_from_item(&bad).unwrap_err();
    assert!(err.0.contains(&format!("`{ACTOR}`")), "{}", err.0);
}

#[test]
fn audit_events_spread_over_every_shard_and_keep_theirs() {
    // Ids as the flows make them: the second, the nanoseconds, then a random salt.
    let mut seen = vec![0u32; AUDIT_SHARDS as usize];
    let mut salt: u32 = 12_345;
    for i in 0..6_400u64 {
        salt = salt.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let id = format!(
            "{:012}-{:020}-{salt:08x}",
            1_800_000_000 + i / 100,
            1_800_000_000_000_000_000u64 + i * 7_919
        );
        let shard = audit_shard_of(&id);
        assert_eq!(shard, audit_shard_of(&id.clone()));
        seen[shard as usize] += 1;
    }
    // Every shard takes a share near 100: none hot, none unused.
    assert!(seen.iter().all(|n| (50..=150).contains(n)), "{seen:?}");
    // The same spread for ids that differ only in the clock (a salt that failed to 0).
    let mut seen = vec![0u32; AUDIT_SHARDS as usize];
    for i in 0..6_400u64 {
        let id = format!(
            "{:012}-{:020}-00000000",
            1_800_000_000 + i / 100,
            i * 1_000_003
        );
        seen[audit_shard_of(&id) as usize] += 1;
    }
    assert!(seen.iter().all(|n| (40..=160).contains(n)), "{seen:?}");
}

#[test]
fn cancellations_name_their_cause() {
    let codes = |c: &[&str]| -> Vec<Option<String>> {
        c.iter()
            .map(|c| (*c != "None").then(|| (*c).to_owned()))
            .collect()
    };
    let c = codes(&["None", "ConditionalCheckFailed", "TransactionConflict"]);
    assert!(condition_failed(&c, 1));
    assert!(!condition_failed(&c, 0));
    assert!(!condition_failed(&c, 7));
    assert!(lost_race(&c));
    assert!(!lost_race(&codes(&["None", "None"])));
    assert!(!lost_race(&codes(&[
        "ValidationError",
        "ConditionalCheckFailed"
    ])));
    let err = cancelled_err("op", &codes(&["None", "ThrottlingError"]));
    assert_eq!(
        err.0,
        "dynamodb op: transaction cancelled: [None, ThrottlingError]"
    );
}

#[test]
fn expressions_name_every_attribute() {
    let mut x = Expr::default();
    assert_eq!(x.name("ttl"), "#ttl");
    assert_eq!(x.value("now", n(1)), ":now");
    assert_eq!(x.names().unwrap()["#ttl"], "ttl");
    assert!(Expr::default().names().is_none());
    assert!(Expr::default().values().is_none());
}

#[test]
fn app_sessions_and_the_bound_app_keep_their_stored_names() {
    let authenticator = AuthenticatorId::generate().unwrap();
    let sealed = Sealed::from_stored("v1.0123abcd.bm9uY2U.Y2lwaGVy".into());
    // An app setup: purpose `totp`, the app's id and sealed secret, its label where a code's
    // label goes, `totp_first`, and its attempts.
    let setup = Enrollment {
        kind: SessionKind::AppSetup(AppSetup {
            authenticator: authenticator.clone(),
            sealed: sealed.clone(),
            label: Some("phone app".into()),
            first: true,
        }),
        step: Step::Code,
        app_attempts: 2,
        ..enrollment(false)
    };
    let item = enrollment_to_item(&setup);
    assert_eq!(str_of(&item, "purpose"), "totp");
    assert_eq!(str_of(&item, "totp_id"), authenticator.as_str());
    assert_eq!(str_of(&item, "totp_sealed"), sealed.as_str());
    assert_eq!(str_of(&item, "code_label"), "phone app");
    assert_eq!(item["totp_first"], AttributeValue::Bool(true));
    assert_eq!(item["app_attempts"], n(2));
    assert!(!item.contains_key("code_id"));
    assert_eq!(enrollment_from_item(&item).unwrap(), setup);
    // An app sign-in: purpose `totp_challenge` and the app's id only.
    let sign_in = Enrollment {
        id: ChallengeId::generate().unwrap().into(),
        kind: SessionKind::AppSignIn(authenticator.clone()),
        step: Step::Code,
        ..enrollment(false)
    };
    let item = enrollment_to_item(&sign_in);
    assert_eq!(str_of(&item, "purpose"), "totp_challenge");
    assert_eq!(str_of(&item, "totp_id"), authenticator.as_str());
    assert!(!item.contains_key("totp_sealed"));
    assert_eq!(item["app_attempts"], n(0));
    assert_eq!(enrollment_from_item(&item).unwrap(), sign_in);
    // Phone sessions carry no app attributes (their stored form is unchanged).
    let item = enrollment_to_item(&enrollment(true));
    for attr in ["app_attempts", "totp_id", "totp_sealed", "totp_first"] {
        assert!(!item.contains_key(attr), "{attr}");
    }

    // The bound app: attributes of the phone count item, beside `count`.
    let mut phones = key("USER#app-1#auth0|u1".into(), "PHONES");
    phones.insert("count".into(), n(1));
    assert_eq!(app_from_item(&phones).unwrap(), None);
    phones.insert("totp_id".into(), s(authenticator.as_str()));
    phones.insert("totp_sealed".into(), s(sealed.as_str()));
    phones.insert("totp_label".into(), s("phone app"));
    phones.insert("totp_verified_at".into(), n(1_000));
    let mut bound = AuthenticatorRecord {
        authenticator_id: authenticator,
        sealed,
        label: Some("phone app".into()),
        verified_at: UnixTime(1_000),
        last_used_at: None,
    };
    assert_eq!(app_from_item(&phones).unwrap(), Some(bound.clone()));
    phones.insert("totp_last_used_at".into(), n(1_030));
    bound.last_used_at = Some(UnixTime(1_030));
    assert_eq!(app_from_item(&phones).unwrap(), Some(bound));
    phones.remove("totp_sealed");
    let err = app_from_item(&phones).unwrap_err();
    assert!(err.0.contains("`totp_sealed`"), "{}", err.0);

    // A used step: its own item, expiring when it need not be remembered.
    let step = used_step_item(
        &app(),
        &user(),
        59_000_000,
        UnixTime(1_770_000_000),
        UnixTime(1_770_000_090),
    );
    assert_eq!(str_of(&step, PK), "USER#app-1#auth0|u1");
    assert_eq!(str_of(&step, SK), "TOTP_STEP#59000000");
    assert_eq!(step["totp_step"], n(59_000_000));
    assert_eq!(step[TTL], n(1_770_000_090));
}
