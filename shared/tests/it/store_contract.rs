//! The store contract: one named case per guarantee that `ports/` writes for [`Store`], each an
//! async function over `&dyn Store`, run unchanged on three stores:
//!
//! - `memory::*`: [`MemoryStore`] (plain `cargo test`);
//! - `moto::*`: [`DynamoStore`] on the moto server of `MFA_TEST_MOTO_URL`;
//! - `dynoxide::*`: [`DynamoStore`] on the dynoxide server (a DynamoDB emulator on SQLite) of
//!   `MFA_TEST_DYNOXIDE_URL`.
//!
//! The emulator runs are `#[ignore]`d; `tests/run.sh` starts both emulators and runs them with
//! `--include-ignored`. A missing URL fails the test, never skips it. Every case works in a
//! namespace of its own (a fresh application, user and counter prefix), so that the cases of
//! one emulator share one table, made by the project's own table creation (`ensure_table`:
//! keys and TTL as deployed).
//!
//! Times are fixed (see [`NOW`]): the cases move the clock by passing `now`, as the flows do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mfa_shared::adapters::dynamodb::DynamoStore;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::ports::{
    AppCodeUse, AppCompletion, AppSetup, AuditEvent, AuditQuery, AuthenticatorRecord, Completion,
    Counted, Enrollment, NewSend, PendingCode, PhoneChange, PhoneRecord, Removal, SessionKind,
    Step, Store, UserOverview, UserRecord, Window,
};
use mfa_shared::totp::Sealed;
use mfa_shared::types::ids::{CodeId, SessionId};
use mfa_shared::types::{
    AppId, AuthenticatorId, CountryCode, DisplayName, Enforcement, EnrollmentId, Factor, Owner,
    PhoneId, PhoneNumber, Policy, UnixTime, UserId, WebOtpDomain,
};
use tokio::sync::OnceCell;

use crate::kit::{self, unique};

/// 2100-01-01: far after any run, so that no emulator's TTL sweep (dynoxide deletes expired
/// items in the background, by the real clock, as DynamoDB does within days) removes what a
/// case wrote: expiry is the stores' own checks against the `now` a case passes.
const NOW: UnixTime = UnixTime(4_102_444_800);
/// An enrollment's life in these cases.
const ENROLLMENT_TTL: u64 = 1800;
/// A code's life in these cases.
const CODE_TTL: u64 = 600;

// ---------------------------------------------------------------------------------------------
// The three stores.

/// A `DynamoStore` on the emulator named by `var`, over one table per test process (created
/// once, by the project's table creation).
async fn dynamo(var: &str, table: &'static OnceCell<String>) -> Arc<dyn Store> {
    let sdk = kit::emulators::sdk(var).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let name = table
        .get_or_init(|| async {
            let name = unique("mfa-contract");
            mfa_shared::adapters::aws::ensure_table(&client, &name)
                .await
                .unwrap_or_else(|e| panic!("creating table {name} on {var}: {e}"));
            name
        })
        .await;
    Arc::new(DynamoStore::new(client, name.clone()))
}

static MOTO_TABLE: OnceCell<String> = OnceCell::const_new();
static DYNOXIDE_TABLE: OnceCell<String> = OnceCell::const_new();

async fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

async fn moto_store() -> Arc<dyn Store> {
    dynamo("MFA_TEST_MOTO_URL", &MOTO_TABLE).await
}

async fn dynoxide_store() -> Arc<dyn Store> {
    dynamo("MFA_TEST_DYNOXIDE_URL", &DYNOXIDE_TABLE).await
}

/// Instantiates every case for each store.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&*super::memory_store().await).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
                async fn $case() {
                    super::$case(&*super::moto_store().await).await;
                }
            )*
        }
        mod dynoxide {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs dynoxide: run by tests/run.sh with MFA_TEST_DYNOXIDE_URL"]
                async fn $case() {
                    super::$case(&*super::dynoxide_store().await).await;
                }
            )*
        }
    };
}

contract!(
    // policy
    policy_never_configured_is_none,
    a_second_first_write_of_a_policy_loses,
    put_policy_with_a_stale_version_is_refused,
    policy_factors_read_back_as_written,
    policy_message_settings_read_back_as_written,
    // users and skips
    put_user_replaces_the_record,
    put_skip_replaces_the_end,
    user_overview_is_what_the_single_reads_give,
    // sessions
    an_enrollment_reads_back_as_created_for_its_user_only,
    an_enrollment_id_taken_is_an_error,
    create_enrollment_keeps_at_most_3_open,
    finished_and_expired_enrollments_do_not_count_toward_the_3,
    a_finished_enrollment_stays_complete_until_it_expires,
    begin_send_counts_the_send_and_returns_the_enrollment_as_it_was,
    begin_send_refuses_past_max_sends,
    begin_send_refuses_inside_the_cooldown,
    begin_send_refuses_a_replaced_code,
    begin_send_refuses_an_expired_complete_or_missing_enrollment,
    undo_send_restores_the_previous_code,
    undo_send_does_nothing_once_the_failed_code_is_not_pending,
    take_code_attempt_counts_up_to_max,
    a_burned_code_takes_no_attempt,
    take_code_attempt_refuses_a_replaced_code,
    take_code_attempt_refuses_an_expired_code,
    complete_enrollment_adds_the_phone,
    complete_enrollment_is_single_use,
    complete_enrollment_refuses_a_replaced_or_expired_code,
    a_number_claimed_by_the_user_is_refused,
    number_claims_are_per_user,
    phones_changed_meanwhile_refuse_an_add,
    an_enroll_never_adds_to_a_user_with_a_phone,
    a_replace_moves_the_number_and_its_claims,
    a_replace_of_a_number_changed_meanwhile_is_refused,
    a_replace_to_a_number_the_user_has_is_number_taken,
    a_challenge_completes_only_while_its_phone_keeps_the_number,
    a_gone_code_comes_before_a_taken_number_before_changed_phones,
    // phones
    phones_are_listed_in_the_order_first_verified,
    a_replaced_phone_keeps_its_place_in_the_list,
    set_phone_label_sets_and_clears,
    set_primary_leaves_exactly_one_primary,
    set_primary_refuses_when_the_phones_changed,
    remove_phone_releases_the_number_and_promotes,
    remove_phone_refuses_when_the_phones_changed,
    remove_phone_promotes_only_another_phone_not_primary,
    remove_phone_of_the_last_phone_drops_recovery_codes,
    reset_user_removes_everything_and_returns_the_phones,
    reset_user_of_a_user_with_nothing_is_empty,
    reset_user_removes_the_app_too,
    // authenticator apps
    an_app_setup_reads_back_as_created_and_takes_attempts_up_to_max,
    complete_app_binds_the_app,
    complete_app_is_single_use,
    a_step_is_used_once_per_user,
    a_first_setup_completes_only_while_the_user_has_no_factor,
    an_app_sign_in_completes_only_while_its_app_is_bound,
    remove_app_releases_the_app_and_the_last_factor_takes_the_recovery_codes,
    remove_app_refuses_when_the_factors_changed,
    a_phone_removal_counts_the_app,
    // recovery codes
    replace_recovery_codes_needs_a_factor,
    replace_recovery_codes_replaces_the_whole_set,
    a_duplicated_recovery_hash_is_one_code,
    consume_recovery_code_is_true_exactly_once,
    count_recovery_codes_counts_unused_only,
    // audit
    list_audit_is_newest_first_and_pages,
    list_audit_per_user,
    list_audit_hides_expired_events,
    list_audit_is_per_application,
    list_audit_pages_every_event_once_newest_first,
    an_event_appended_twice_is_one_event,
    // counters
    counter_take_refuses_at_the_limit_first_once,
    counter_take_opens_a_new_window_after_the_old_one,
    counter_block_refuses_until_its_end_first_once,
    counter_give_back_only_to_its_window,
    // adoption figures and the grace
    adoption_counts_users_created_not_replaced,
    adoption_follows_factors_through_add_remove_and_reset,
    adoption_counts_skips_and_texts_in_their_windows,
    adoption_is_another_applications_own,
    start_grace_keeps_the_first_grace,
);

mod adoption;
use adoption::{
    adoption_counts_skips_and_texts_in_their_windows, adoption_counts_users_created_not_replaced,
    adoption_follows_factors_through_add_remove_and_reset, adoption_is_another_applications_own,
    start_grace_keeps_the_first_grace,
};

// ---------------------------------------------------------------------------------------------
// Helpers: a namespace per case, and the steps the flows take.

/// A case's own application and user (and a second user of the same application).
struct Ns {
    app: AppId,
    user: UserId,
    other: UserId,
}

impl Ns {
    /// The case's user.
    fn owner(&self) -> Owner<'_> {
        self.of(&self.user)
    }

    /// `user` of the case's application.
    fn of<'a>(&'a self, user: &'a UserId) -> Owner<'a> {
        Owner {
            app: &self.app,
            user,
        }
    }
}

fn ns() -> Ns {
    Ns {
        app: AppId::parse(&unique("app")).unwrap(),
        user: UserId::parse(&unique("user")).unwrap(),
        other: UserId::parse(&unique("other")).unwrap(),
    }
}

/// `+1415555010{i}`: distinct numbers within a case.
fn num(i: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415555{:04}", 100 + i)).unwrap()
}

/// Stands in for the keyed tag of a number: the store only needs it to be distinct.
fn tag(n: &PhoneNumber) -> String {
    format!("tag{}", n.e164().trim_start_matches('+'))
}

fn code(number: &PhoneNumber, at: UnixTime) -> PendingCode {
    PendingCode {
        code_id: CodeId::generate().unwrap(),
        code_hash: "ab".repeat(32),
        number: number.clone(),
        label: None,
        expires_at: at.plus_secs(CODE_TTL),
        attempts: 0,
    }
}

fn send(code: &PendingCode, now: UnixTime) -> NewSend {
    NewSend {
        code: code.clone(),
        now,
        max_sends: 5,
        last_sent_at_most: None,
        replaces: None,
    }
}

/// A stored enrollment of `purpose` for `user`, created at `at`, at the phone step.
async fn open_for(
    store: &dyn Store,
    ns: &Ns,
    user: &UserId,
    purpose: SessionKind,
    at: UnixTime,
) -> Enrollment {
    let e = Enrollment::begin(&ns.app, user, purpose, at, ENROLLMENT_TTL).unwrap();
    store.create_enrollment(&e).await.unwrap();
    e
}

async fn open(store: &dyn Store, ns: &Ns, purpose: SessionKind, at: UnixTime) -> Enrollment {
    open_for(store, ns, &ns.user, purpose, at).await
}

/// An enrollment of `purpose` for `user` at the code step, texted to `number` at `at`.
async fn at_code_for(
    store: &dyn Store,
    ns: &Ns,
    user: &UserId,
    purpose: SessionKind,
    number: &PhoneNumber,
    at: UnixTime,
) -> (Enrollment, CodeId) {
    let e = open_for(store, ns, user, purpose, at).await;
    let c = code(number, at);
    store.begin_send(&e, &send(&c, at)).await.unwrap().unwrap();
    (e, c.code_id)
}

async fn at_code(
    store: &dyn Store,
    ns: &Ns,
    purpose: SessionKind,
    number: &PhoneNumber,
    at: UnixTime,
) -> (Enrollment, CodeId) {
    at_code_for(store, ns, &ns.user, purpose, number, at).await
}

fn new_phone(number: &PhoneNumber, primary: bool, at: UnixTime) -> PhoneRecord {
    PhoneRecord {
        phone_id: PhoneId::generate().unwrap(),
        number: number.clone(),
        label: None,
        primary,
        verified_at: at,
    }
}

fn add_change(phone: &PhoneRecord, seen_count: u32) -> PhoneChange {
    PhoneChange::Add {
        phone: phone.clone(),
        number_tag: tag(&phone.number),
        seen_count,
        app_seen: false,
    }
}

/// Completes an add of `number` for `user` as the flow does (the first phone is primary and
/// enrolls), verified at `at`: the completion's answer and the phone it would add.
async fn try_add_for(
    store: &dyn Store,
    ns: &Ns,
    user: &UserId,
    number: &PhoneNumber,
    at: UnixTime,
) -> (Completion, PhoneRecord) {
    let phones = store.list_phones(ns.of(user)).await.unwrap();
    let purpose = if phones.is_empty() {
        SessionKind::Enroll
    } else {
        SessionKind::Add
    };
    let (e, code_id) = at_code_for(store, ns, user, purpose, number, at).await;
    let phone = new_phone(number, phones.is_empty(), at);
    let change = add_change(&phone, phones.len() as u32);
    let done = store
        .complete_enrollment(e.code_use(&code_id, at), &change)
        .await
        .unwrap();
    (done, phone)
}

/// Adds a phone to the case's user; it must succeed.
async fn add(store: &dyn Store, ns: &Ns, number: &PhoneNumber, at: UnixTime) -> PhoneRecord {
    let (done, phone) = try_add_for(store, ns, &ns.user, number, at).await;
    assert_eq!(done, Completion::Done, "adding {number:?}");
    phone
}

/// Replaces `phone`'s number with `new`, verified at `at`.
async fn replace(
    store: &dyn Store,
    ns: &Ns,
    phone: &PhoneRecord,
    new: &PhoneNumber,
    at: UnixTime,
) -> Completion {
    let (e, code_id) = at_code(
        store,
        ns,
        SessionKind::Replace(phone.phone_id.clone()),
        new,
        at,
    )
    .await;
    let change = PhoneChange::Replace {
        phone_id: phone.phone_id.clone(),
        old_number: phone.number.clone(),
        old_number_tag: tag(&phone.number),
        new_number: new.clone(),
        new_number_tag: tag(new),
    };
    store
        .complete_enrollment(e.code_use(&code_id, at), &change)
        .await
        .unwrap()
}

async fn phones(store: &dyn Store, ns: &Ns) -> Vec<PhoneRecord> {
    store.list_phones(ns.owner()).await.unwrap()
}

fn ids(phones: &[PhoneRecord]) -> Vec<PhoneId> {
    phones.iter().map(|p| p.phone_id.clone()).collect()
}

fn primaries(phones: &[PhoneRecord]) -> Vec<PhoneId> {
    phones
        .iter()
        .filter(|p| p.primary)
        .map(|p| p.phone_id.clone())
        .collect()
}

/// The removal the flow would make of `phone`, promoting `promote`.
async fn removal(
    store: &dyn Store,
    ns: &Ns,
    phone: &PhoneRecord,
    promote: Option<&PhoneRecord>,
) -> Removal {
    Removal {
        app_seen: false,
        phone: phone.clone(),
        number_tag: tag(&phone.number),
        seen: phones(store, ns).await,
        promote: promote.map(|p| p.phone_id.clone()),
    }
}

fn hashes(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

async fn count_codes(store: &dyn Store, ns: &Ns) -> u32 {
    store.count_recovery_codes(ns.owner()).await.unwrap()
}

async fn reread(store: &dyn Store, e: &Enrollment) -> Option<Enrollment> {
    store.get_enrollment(e.owner(), &e.id).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Policy.

fn policy(app: &AppId, version: u64, by: &str) -> Policy {
    Policy {
        app_id: app.clone(),
        available: true,
        enabled: true,
        include_in_signup: version.is_multiple_of(2),
        enforcement: Enforcement::Required,
        allowed_countries: Some(vec![
            CountryCode::parse("US").unwrap(),
            CountryCode::parse("GB").unwrap(),
        ]),
        factors: vec![Factor::Sms],
        display_name: None,
        webotp_domain: None,
        grace_period_days: 30,
        version,
        updated_at: Some(NOW.plus_secs(version)),
        updated_by: Some(by.to_owned()),
    }
}

async fn policy_never_configured_is_none(store: &dyn Store) {
    let ns = ns();
    assert_eq!(store.get_policy(&ns.app).await.unwrap(), None);
}

async fn a_second_first_write_of_a_policy_loses(store: &dyn Store) {
    let ns = ns();
    let first = policy(&ns.app, 1, "alice");
    assert!(store.put_policy(&first, 0).await.unwrap());
    assert!(
        !store
            .put_policy(&policy(&ns.app, 1, "bob"), 0)
            .await
            .unwrap()
    );
    assert_eq!(store.get_policy(&ns.app).await.unwrap(), Some(first));
}

async fn put_policy_with_a_stale_version_is_refused(store: &dyn Store) {
    let ns = ns();
    assert!(store.put_policy(&policy(&ns.app, 1, "a"), 0).await.unwrap());
    let second = Policy {
        allowed_countries: None,
        enforcement: Enforcement::Optional,
        ..policy(&ns.app, 2, "b")
    };
    assert!(store.put_policy(&second, 1).await.unwrap());
    // Written against version 1, which is gone.
    assert!(!store.put_policy(&policy(&ns.app, 2, "c"), 1).await.unwrap());
    assert!(!store.put_policy(&policy(&ns.app, 3, "c"), 3).await.unwrap());
    assert_eq!(store.get_policy(&ns.app).await.unwrap(), Some(second));
}

async fn policy_factors_read_back_as_written(store: &dyn Store) {
    let ns = ns();
    let both = Policy {
        factors: vec![Factor::Sms, Factor::Totp],
        ..policy(&ns.app, 1, "a")
    };
    assert!(store.put_policy(&both, 0).await.unwrap());
    assert_eq!(store.get_policy(&ns.app).await.unwrap(), Some(both));
    let app_only = Policy {
        factors: vec![Factor::Totp],
        ..policy(&ns.app, 2, "b")
    };
    assert!(store.put_policy(&app_only, 1).await.unwrap());
    assert_eq!(store.get_policy(&ns.app).await.unwrap(), Some(app_only));
}

async fn policy_message_settings_read_back_as_written(store: &dyn Store) {
    let ns = ns();
    let named = Policy {
        display_name: Some(DisplayName::parse("Acme Travel – Café <b>").unwrap()),
        webotp_domain: Some(WebOtpDomain::parse("login.acme.example").unwrap()),
        ..policy(&ns.app, 1, "a")
    };
    assert!(store.put_policy(&named, 0).await.unwrap());
    assert_eq!(store.get_policy(&ns.app).await.unwrap(), Some(named));
    // Cleared: back to the defaults (the id as the name, no WebOTP line).
    let cleared = policy(&ns.app, 2, "b");
    assert!(store.put_policy(&cleared, 1).await.unwrap());
    let read = store.get_policy(&ns.app).await.unwrap().unwrap();
    assert_eq!(read, cleared);
    assert_eq!(read.name(), ns.app.as_str());
}

// ---------------------------------------------------------------------------------------------
// Users and skips.

async fn put_user_replaces_the_record(store: &dyn Store) {
    let ns = ns();
    assert_eq!(store.get_user(ns.owner()).await.unwrap(), None);
    let mut u = UserRecord {
        app_id: ns.app.clone(),
        user_id: ns.user.clone(),
        email: "a@example.com".into(),
        email_verified: false,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        locale: None,
        updated_at: NOW,
    };
    store.put_user(&u).await.unwrap();
    assert_eq!(store.get_user(ns.owner()).await.unwrap(), Some(u.clone()));
    u.email = "b@example.com".into();
    u.email_verified = true;
    u.updated_at = NOW.plus_secs(5);
    store.put_user(&u).await.unwrap();
    assert_eq!(store.get_user(ns.owner()).await.unwrap(), Some(u));
    assert_eq!(store.get_user(ns.of(&ns.other)).await.unwrap(), None);
}

async fn put_skip_replaces_the_end(store: &dyn Store) {
    let ns = ns();
    assert_eq!(store.get_skip(ns.owner()).await.unwrap(), None);
    store
        .put_skip(ns.owner(), NOW, NOW.plus_secs(100))
        .await
        .unwrap();
    store
        .put_skip(ns.owner(), NOW, NOW.plus_secs(200))
        .await
        .unwrap();
    assert_eq!(
        store.get_skip(ns.owner()).await.unwrap(),
        Some(NOW.plus_secs(200))
    );
    assert_eq!(store.get_skip(ns.of(&ns.other)).await.unwrap(), None);
}

/// What `get_user`, `list_phones`, `get_skip` and `count_recovery_codes` give, read one by one.
async fn four_reads(store: &dyn Store, app: &AppId, user: &UserId) -> UserOverview {
    UserOverview {
        app: store.get_app(Owner { app, user }).await.unwrap(),
        user: store.get_user(Owner { app, user }).await.unwrap(),
        phones: store.list_phones(Owner { app, user }).await.unwrap(),
        skip: store.get_skip(Owner { app, user }).await.unwrap(),
        recovery_codes_remaining: store
            .count_recovery_codes(Owner { app, user })
            .await
            .unwrap(),
        grace: None,
    }
}

async fn user_overview_is_what_the_single_reads_give(store: &dyn Store) {
    let ns = ns();
    let overview = || async { store.user_overview(ns.owner()).await.unwrap() };
    // Nothing stored yet: empty.
    assert_eq!(overview().await, UserOverview::default());
    assert_eq!(
        four_reads(store, &ns.app, &ns.user).await,
        UserOverview::default()
    );

    let profile = UserRecord {
        app_id: ns.app.clone(),
        user_id: ns.user.clone(),
        email: "u@example.com".into(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        locale: None,
        updated_at: NOW,
    };
    store.put_user(&profile).await.unwrap();
    store
        .put_skip(ns.owner(), NOW, NOW.plus_secs(600))
        .await
        .unwrap();
    // Three phones (with their number claims), the first replaced after the others were
    // verified (list order is not verification order), the second made primary.
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(10)).await;
    let p3 = add(store, &ns, &num(3), NOW.plus_secs(20)).await;
    assert_eq!(
        replace(store, &ns, &p1, &num(4), NOW.plus_secs(30)).await,
        Completion::Done
    );
    let seen = phones(store, &ns).await;
    assert!(
        store
            .set_primary(ns.owner(), &p2.phone_id, &seen)
            .await
            .unwrap()
    );
    // Recovery codes, one used; an enrollment pending at its code step.
    let codes = hashes("ov", 3);
    set_codes(store, &ns, &codes).await;
    assert!(
        store
            .consume_recovery_code(ns.owner(), &codes[1])
            .await
            .unwrap()
    );
    at_code(store, &ns, SessionKind::Add, &num(5), NOW.plus_secs(40)).await;
    // An authenticator app, and a sign-in with it pending.
    let app = bind_app(store, &ns, false, 7, NOW.plus_secs(50)).await;
    open(
        store,
        &ns,
        SessionKind::AppSignIn(app.authenticator_id.clone()),
        NOW.plus_secs(60),
    )
    .await;
    // Another user of the application, with items of every kind.
    store
        .put_user(&UserRecord {
            user_id: ns.other.clone(),
            email: "o@example.com".into(),
            ..profile.clone()
        })
        .await
        .unwrap();
    store
        .put_skip(ns.of(&ns.other), NOW, NOW.plus_secs(900))
        .await
        .unwrap();
    let (done, _) = try_add_for(store, &ns, &ns.other, &num(6), NOW).await;
    assert_eq!(done, Completion::Done);
    store
        .replace_recovery_codes(ns.of(&ns.other), &hashes("theirs", 5), NOW)
        .await
        .unwrap();

    let got = overview().await;
    assert_eq!(got, four_reads(store, &ns.app, &ns.user).await);
    assert_eq!(got.user, Some(profile));
    assert_eq!(got.skip, Some(NOW.plus_secs(600)));
    assert_eq!(ids(&got.phones), ids(&[p1, p2.clone(), p3]));
    assert_eq!(got.phones[0].number, num(4));
    assert_eq!(primaries(&got.phones), vec![p2.phone_id]);
    assert_eq!(got.recovery_codes_remaining, 2);
    assert_eq!(got.app, Some(app));
    // The other user's is theirs.
    let theirs = store.user_overview(ns.of(&ns.other)).await.unwrap();
    assert_eq!(theirs, four_reads(store, &ns.app, &ns.other).await);
    assert_eq!(theirs.phones.len(), 1);
    assert_eq!(theirs.recovery_codes_remaining, 5);
    assert_eq!(theirs.app, None);
    // A user with nothing, in the same application, is empty.
    let nobody = UserId::parse(&unique("nobody")).unwrap();
    assert_eq!(
        store.user_overview(ns.of(&nobody)).await.unwrap(),
        UserOverview::default()
    );
}

// ---------------------------------------------------------------------------------------------
// Sessions: enrollments and sign-in challenges, with their pending codes.

async fn an_enrollment_reads_back_as_created_for_its_user_only(store: &dyn Store) {
    let ns = ns();
    let phone = PhoneId::generate().unwrap();
    for purpose in [
        SessionKind::Enroll,
        SessionKind::Add,
        SessionKind::Replace(phone.clone()),
        SessionKind::SignIn(phone.clone()),
        SessionKind::AppSetup(setup_kind(true, Some("phone app"))),
        SessionKind::AppSetup(setup_kind(false, None)),
        SessionKind::AppSignIn(AuthenticatorId::generate().unwrap()),
    ] {
        let e = open(store, &ns, purpose, NOW).await;
        assert_eq!(reread(store, &e).await, Some(e.clone()));
        assert_eq!(
            store
                .get_enrollment(
                    Owner {
                        app: &ns.app,
                        user: &ns.other
                    },
                    &e.id
                )
                .await
                .unwrap(),
            None,
            "another user's enrollment is not found"
        );
        // The same random part under the other kind's prefix is another session: none.
        let (from, to) = if e.id.is_sign_in() {
            ("chl_", "enr_")
        } else {
            ("enr_", "chl_")
        };
        let swapped = SessionId::parse_stored(&e.id.as_str().replacen(from, to, 1)).unwrap();
        assert_eq!(
            store
                .get_enrollment(
                    Owner {
                        app: &ns.app,
                        user: &ns.user
                    },
                    &swapped
                )
                .await
                .unwrap(),
            None,
            "an id of the other kind is not found"
        );
    }
    let unknown = EnrollmentId::generate().unwrap().into();
    assert_eq!(
        store
            .get_enrollment(
                Owner {
                    app: &ns.app,
                    user: &ns.user
                },
                &unknown
            )
            .await
            .unwrap(),
        None
    );
}

async fn an_enrollment_id_taken_is_an_error(store: &dyn Store) {
    let ns = ns();
    let e = open(store, &ns, SessionKind::Enroll, NOW).await;
    let c = code(&num(1), NOW);
    store.begin_send(&e, &send(&c, NOW)).await.unwrap().unwrap();
    assert!(store.create_enrollment(&e).await.is_err());
    // The stored one is untouched.
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.sends, 1);
    assert_eq!(stored.pending.map(|p| p.code_id), Some(c.code_id));
}

async fn create_enrollment_keeps_at_most_3_open(store: &dyn Store) {
    let ns = ns();
    let mut made = Vec::new();
    for i in 0..4 {
        let purpose = if i % 2 == 0 {
            SessionKind::Enroll
        } else {
            SessionKind::SignIn(PhoneId::generate().unwrap())
        };
        made.push(open(store, &ns, purpose, NOW.plus_secs(i)).await);
    }
    assert_eq!(reread(store, &made[0]).await, None, "the oldest is ended");
    for e in &made[1..] {
        assert!(reread(store, e).await.is_some());
    }
    // Another user's are not touched.
    let theirs = open_for(store, &ns, &ns.other, SessionKind::Enroll, NOW).await;
    made.push(open(store, &ns, SessionKind::Add, NOW.plus_secs(10)).await);
    assert_eq!(reread(store, &made[1]).await, None);
    assert!(reread(store, &theirs).await.is_some());
}

async fn finished_and_expired_enrollments_do_not_count_toward_the_3(store: &dyn Store) {
    let ns = ns();
    // One that has expired by the time of the next ones, and one completed.
    open(store, &ns, SessionKind::Enroll, NOW).await;
    let later = NOW.plus_secs(ENROLLMENT_TTL + 10);
    add(store, &ns, &num(1), later).await;
    let mut live = Vec::new();
    for i in 0..3 {
        live.push(open(store, &ns, SessionKind::Add, later.plus_secs(1 + i)).await);
    }
    for e in &live {
        assert!(reread(store, e).await.is_some(), "three open ones stay");
    }
}

async fn a_finished_enrollment_stays_complete_until_it_expires(store: &dyn Store) {
    let ns = ns();
    let (e, code_id) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    let phone = new_phone(&num(1), true, NOW);
    store
        .complete_enrollment(e.code_use(&code_id, NOW), &add_change(&phone, 0))
        .await
        .unwrap();
    // The user goes on (a sign-in, two adds): a late retry of the finished one still finds it
    // complete (409 wrong_step), not gone (404) as an ended one would be.
    open(store, &ns, SessionKind::SignIn(phone.phone_id.clone()), NOW).await;
    for i in 1..=2 {
        open(store, &ns, SessionKind::Add, NOW.plus_secs(i)).await;
    }
    let stored = reread(store, &e).await.unwrap();
    assert_eq!((stored.step, stored.pending), (Step::Complete, None));
}

async fn begin_send_counts_the_send_and_returns_the_enrollment_as_it_was(store: &dyn Store) {
    let ns = ns();
    let e = open(store, &ns, SessionKind::Add, NOW).await;
    let mut first = code(&num(1), NOW);
    first.label = Some("work".into());
    let before = store
        .begin_send(&e, &send(&first, NOW.plus_secs(1)))
        .await
        .unwrap();
    assert_eq!(before, Some(e.clone()));
    let after = reread(store, &e).await.unwrap();
    assert_eq!(after.step, Step::Code);
    assert_eq!(after.sends, 1);
    assert_eq!(after.last_sent_at, Some(NOW.plus_secs(1)));
    assert_eq!(after.pending, Some(first.clone()));

    // A second send (no label) replaces the code and returns the first state.
    let second = code(&num(2), NOW.plus_secs(40));
    let before = store
        .begin_send(&e, &send(&second, NOW.plus_secs(40)))
        .await
        .unwrap();
    assert_eq!(before, Some(after));
    let after = reread(store, &e).await.unwrap();
    assert_eq!(after.sends, 2);
    assert_eq!(after.pending, Some(second));
}

async fn begin_send_refuses_past_max_sends(store: &dyn Store) {
    let ns = ns();
    let e = open(store, &ns, SessionKind::Enroll, NOW).await;
    for i in 0..2 {
        let c = code(&num(1), NOW.plus_secs(i));
        let s = NewSend {
            max_sends: 2,
            ..send(&c, NOW.plus_secs(i))
        };
        assert!(store.begin_send(&e, &s).await.unwrap().is_some());
    }
    let third = code(&num(1), NOW.plus_secs(5));
    let s = NewSend {
        max_sends: 2,
        ..send(&third, NOW.plus_secs(5))
    };
    assert_eq!(store.begin_send(&e, &s).await.unwrap(), None);
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.sends, 2);
    assert_ne!(stored.pending.map(|p| p.code_id), Some(third.code_id));
}

async fn begin_send_refuses_inside_the_cooldown(store: &dyn Store) {
    let ns = ns();
    let e = open(store, &ns, SessionKind::Enroll, NOW).await;
    let first = code(&num(1), NOW);
    store
        .begin_send(&e, &send(&first, NOW))
        .await
        .unwrap()
        .unwrap();
    // A resend 29 s later with a 30 s cooldown: the last send must be at or before now - 30.
    let early = NOW.plus_secs(29);
    let s = NewSend {
        last_sent_at_most: Some(UnixTime(early.0 - 30)),
        ..send(&code(&num(1), early), early)
    };
    assert_eq!(store.begin_send(&e, &s).await.unwrap(), None);
    assert_eq!(
        reread(store, &e).await.unwrap().pending.map(|p| p.code_id),
        Some(first.code_id)
    );
    // At 30 s it goes.
    let on_time = NOW.plus_secs(30);
    let s = NewSend {
        last_sent_at_most: Some(NOW),
        ..send(&code(&num(1), on_time), on_time)
    };
    assert!(store.begin_send(&e, &s).await.unwrap().is_some());
    assert_eq!(reread(store, &e).await.unwrap().sends, 2);
}

async fn begin_send_refuses_a_replaced_code(store: &dyn Store) {
    let ns = ns();
    let e = open(store, &ns, SessionKind::Enroll, NOW).await;
    let first = code(&num(1), NOW);
    store
        .begin_send(&e, &send(&first, NOW))
        .await
        .unwrap()
        .unwrap();
    let second = code(&num(1), NOW.plus_secs(1));
    let resend = NewSend {
        replaces: Some(first.code_id.clone()),
        ..send(&second, NOW.plus_secs(1))
    };
    assert!(store.begin_send(&e, &resend).await.unwrap().is_some());
    // A second resend of the first code (a concurrent one that lost) is refused.
    let third = code(&num(1), NOW.plus_secs(2));
    let stale = NewSend {
        replaces: Some(first.code_id.clone()),
        ..send(&third, NOW.plus_secs(2))
    };
    assert_eq!(store.begin_send(&e, &stale).await.unwrap(), None);
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.sends, 2);
    assert_eq!(stored.pending, Some(second));
}

async fn begin_send_refuses_an_expired_complete_or_missing_enrollment(store: &dyn Store) {
    let ns = ns();
    // Expired: at its expiry, not a second later.
    let e = open(store, &ns, SessionKind::Enroll, NOW).await;
    let end = e.expires_at;
    assert_eq!(
        store
            .begin_send(&e, &send(&code(&num(1), end), end))
            .await
            .unwrap(),
        None
    );
    assert_eq!(reread(store, &e).await.unwrap().sends, 0);
    // Complete.
    add(store, &ns, &num(2), NOW).await;
    let done = open(store, &ns, SessionKind::Add, NOW).await;
    let c = code(&num(3), NOW);
    store.begin_send(&done, &send(&c, NOW)).await.unwrap();
    let phone = new_phone(&num(3), false, NOW);
    assert_eq!(
        store
            .complete_enrollment(done.code_use(&c.code_id, NOW), &add_change(&phone, 1))
            .await
            .unwrap(),
        Completion::Done
    );
    let later = NOW.plus_secs(60);
    assert_eq!(
        store
            .begin_send(&done, &send(&code(&num(3), later), later))
            .await
            .unwrap(),
        None
    );
    // Never created: nothing is written either.
    let ghost =
        Enrollment::begin(&ns.app, &ns.user, SessionKind::Add, NOW, ENROLLMENT_TTL).unwrap();
    assert_eq!(
        store
            .begin_send(&ghost, &send(&code(&num(4), NOW), NOW))
            .await
            .unwrap(),
        None
    );
    assert_eq!(reread(store, &ghost).await, None);
}

async fn undo_send_restores_the_previous_code(store: &dyn Store) {
    let ns = ns();
    let e = open(store, &ns, SessionKind::Enroll, NOW).await;
    // The first text failed: back at the phone step, nothing sent.
    let failed_first = code(&num(1), NOW);
    let previous = store
        .begin_send(&e, &send(&failed_first, NOW))
        .await
        .unwrap()
        .unwrap();
    store
        .undo_send(&previous, &failed_first.code_id)
        .await
        .unwrap();
    assert_eq!(reread(store, &e).await, Some(e.clone()));
    // A later text failed: the earlier code is pending again, counted once.
    let first = code(&num(1), NOW);
    store
        .begin_send(&e, &send(&first, NOW))
        .await
        .unwrap()
        .unwrap();
    let before = reread(store, &e).await.unwrap();
    let failed = code(&num(2), NOW.plus_secs(40));
    let previous = store
        .begin_send(&e, &send(&failed, NOW.plus_secs(40)))
        .await
        .unwrap()
        .unwrap();
    store.undo_send(&previous, &failed.code_id).await.unwrap();
    assert_eq!(reread(store, &e).await, Some(before));
}

async fn undo_send_does_nothing_once_the_failed_code_is_not_pending(store: &dyn Store) {
    let ns = ns();
    let e = open(store, &ns, SessionKind::Enroll, NOW).await;
    let first = code(&num(1), NOW);
    let previous = store
        .begin_send(&e, &send(&first, NOW))
        .await
        .unwrap()
        .unwrap();
    // A newer send came between the failed one and its undo.
    let newer = code(&num(1), NOW.plus_secs(40));
    store
        .begin_send(&e, &send(&newer, NOW.plus_secs(40)))
        .await
        .unwrap()
        .unwrap();
    store.undo_send(&previous, &first.code_id).await.unwrap();
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.sends, 2);
    assert_eq!(stored.pending, Some(newer.clone()));
    // A completion came: the undo does not reopen the enrollment.
    let phone = new_phone(&num(1), true, NOW);
    assert_eq!(
        store
            .complete_enrollment(
                e.code_use(&newer.code_id, NOW.plus_secs(41)),
                &add_change(&phone, 0)
            )
            .await
            .unwrap(),
        Completion::Done
    );
    store.undo_send(&previous, &newer.code_id).await.unwrap();
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.step, Step::Complete);
    assert_eq!(stored.pending, None);
}

async fn take_code_attempt_counts_up_to_max(store: &dyn Store) {
    let ns = ns();
    let (e, code_id) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    for expected in 1..=3 {
        assert_eq!(
            store
                .take_code_attempt(e.code_use(&code_id, NOW.plus_secs(1)), 3)
                .await
                .unwrap(),
            Some(expected)
        );
    }
    assert_eq!(
        store
            .take_code_attempt(e.code_use(&code_id, NOW.plus_secs(1)), 3)
            .await
            .unwrap(),
        None
    );
}

async fn a_burned_code_takes_no_attempt(store: &dyn Store) {
    let ns = ns();
    let (e, code_id) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    for _ in 0..2 {
        store
            .take_code_attempt(e.code_use(&code_id, NOW), 2)
            .await
            .unwrap()
            .unwrap();
    }
    for _ in 0..3 {
        assert_eq!(
            store
                .take_code_attempt(e.code_use(&code_id, NOW), 2)
                .await
                .unwrap(),
            None
        );
    }
    let pending = reread(store, &e).await.unwrap().pending.unwrap();
    assert_eq!(pending.attempts, 2);
    // A fresh code starts from no attempt.
    let fresh = code(&num(1), NOW.plus_secs(40));
    store
        .begin_send(&e, &send(&fresh, NOW.plus_secs(40)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .take_code_attempt(e.code_use(&fresh.code_id, NOW.plus_secs(41)), 2)
            .await
            .unwrap(),
        Some(1)
    );
}

async fn take_code_attempt_refuses_a_replaced_code(store: &dyn Store) {
    let ns = ns();
    let (e, old) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    let newer = code(&num(1), NOW.plus_secs(40));
    store
        .begin_send(&e, &send(&newer, NOW.plus_secs(40)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .take_code_attempt(e.code_use(&old, NOW.plus_secs(41)), 5)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reread(store, &e).await.unwrap().pending.unwrap().attempts,
        0
    );
}

async fn take_code_attempt_refuses_an_expired_code(store: &dyn Store) {
    let ns = ns();
    let (e, code_id) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    let expiry = NOW.plus_secs(CODE_TTL);
    assert_eq!(
        store
            .take_code_attempt(e.code_use(&code_id, UnixTime(expiry.0 - 1)), 5)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .take_code_attempt(e.code_use(&code_id, expiry), 5)
            .await
            .unwrap(),
        None
    );
    // A code that outlives its enrollment is refused with it.
    let e2 = open(store, &ns, SessionKind::Add, NOW).await;
    let long = PendingCode {
        expires_at: e2.expires_at.plus_secs(600),
        ..code(&num(2), NOW)
    };
    store.begin_send(&e2, &send(&long, NOW)).await.unwrap();
    assert_eq!(
        store
            .take_code_attempt(e2.code_use(&long.code_id, e2.expires_at), 5)
            .await
            .unwrap(),
        None
    );
}

async fn complete_enrollment_adds_the_phone(store: &dyn Store) {
    let ns = ns();
    let (e, code_id) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    let phone = PhoneRecord {
        label: Some("mine".into()),
        ..new_phone(&num(1), true, NOW.plus_secs(3))
    };
    assert_eq!(
        store
            .complete_enrollment(
                e.code_use(&code_id, NOW.plus_secs(3)),
                &add_change(&phone, 0)
            )
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(phones(store, &ns).await, vec![phone]);
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.step, Step::Complete);
    assert_eq!(stored.pending, None);
}

async fn complete_enrollment_is_single_use(store: &dyn Store) {
    let ns = ns();
    let (e, code_id) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    let phone = new_phone(&num(1), true, NOW);
    let again = new_phone(&num(2), true, NOW);
    let (first, second) = (add_change(&phone, 0), add_change(&again, 0));
    let (a, b) = tokio::join!(
        store.complete_enrollment(e.code_use(&code_id, NOW), &first),
        store.complete_enrollment(e.code_use(&code_id, NOW), &second),
    );
    let mut answers = vec![a.unwrap(), b.unwrap()];
    answers.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(answers, vec![Completion::CodeGone, Completion::Done]);
    assert_eq!(phones(store, &ns).await.len(), 1);
    // The used code takes no attempt either.
    assert_eq!(
        store
            .take_code_attempt(e.code_use(&code_id, NOW), 5)
            .await
            .unwrap(),
        None
    );
    // And once more, later.
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&code_id, NOW), &add_change(&again, 1))
            .await
            .unwrap(),
        Completion::CodeGone
    );
    assert_eq!(phones(store, &ns).await.len(), 1);
}

async fn complete_enrollment_refuses_a_replaced_or_expired_code(store: &dyn Store) {
    let ns = ns();
    let (e, old) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    let newer = code(&num(1), NOW.plus_secs(40));
    store
        .begin_send(&e, &send(&newer, NOW.plus_secs(40)))
        .await
        .unwrap()
        .unwrap();
    let phone = new_phone(&num(1), true, NOW);
    let change = add_change(&phone, 0);
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&old, NOW.plus_secs(41)), &change)
            .await
            .unwrap(),
        Completion::CodeGone
    );
    // The pending code expires at its expires_at.
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&newer.code_id, newer.expires_at), &change)
            .await
            .unwrap(),
        Completion::CodeGone
    );
    assert!(phones(store, &ns).await.is_empty());
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.step, Step::Code);
    // Still usable before its expiry.
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&newer.code_id, NOW.plus_secs(41)), &change)
            .await
            .unwrap(),
        Completion::Done
    );
}

async fn a_number_claimed_by_the_user_is_refused(store: &dyn Store) {
    let ns = ns();
    add(store, &ns, &num(1), NOW).await;
    let (e, code_id) = at_code(store, &ns, SessionKind::Add, &num(1), NOW).await;
    let dup = new_phone(&num(1), false, NOW);
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&code_id, NOW), &add_change(&dup, 1))
            .await
            .unwrap(),
        Completion::NumberTaken
    );
    assert_eq!(phones(store, &ns).await.len(), 1);
    // Nothing was written: the code is still pending.
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.step, Step::Code);
    assert_eq!(stored.pending.map(|p| p.code_id), Some(code_id));
}

async fn number_claims_are_per_user(store: &dyn Store) {
    let ns = ns();
    add(store, &ns, &num(1), NOW).await;
    let (done, _) = try_add_for(store, &ns, &ns.other, &num(1), NOW).await;
    assert_eq!(done, Completion::Done);
    assert_eq!(store.list_phones(ns.of(&ns.other)).await.unwrap().len(), 1);
}

async fn phones_changed_meanwhile_refuse_an_add(store: &dyn Store) {
    let ns = ns();
    add(store, &ns, &num(1), NOW).await;
    // Two adds begun while the user had one phone: the second to complete saw 1, there are 2.
    let (e2, c2) = at_code(store, &ns, SessionKind::Add, &num(2), NOW).await;
    let (e3, c3) = at_code(store, &ns, SessionKind::Add, &num(3), NOW).await;
    let p2 = new_phone(&num(2), false, NOW);
    let p3 = new_phone(&num(3), false, NOW);
    assert_eq!(
        store
            .complete_enrollment(e2.code_use(&c2, NOW), &add_change(&p2, 1))
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(
        store
            .complete_enrollment(e3.code_use(&c3, NOW), &add_change(&p3, 1))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    assert_eq!(phones(store, &ns).await.len(), 2);
    // Nothing was written: the code is still pending, and completes with the count now seen.
    assert_eq!(
        store
            .complete_enrollment(e3.code_use(&c3, NOW), &add_change(&p3, 2))
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(phones(store, &ns).await.len(), 3);
}

async fn an_enroll_never_adds_to_a_user_with_a_phone(store: &dyn Store) {
    let ns = ns();
    // Two Starts begun before either completed.
    let (e1, c1) = at_code(store, &ns, SessionKind::Enroll, &num(1), NOW).await;
    let (e2, c2) = at_code(store, &ns, SessionKind::Enroll, &num(2), NOW).await;
    let p1 = new_phone(&num(1), true, NOW);
    let p2 = new_phone(&num(2), true, NOW);
    assert_eq!(
        store
            .complete_enrollment(e1.code_use(&c1, NOW), &add_change(&p1, 0))
            .await
            .unwrap(),
        Completion::Done
    );
    // Even claiming to have seen the phone, an Enroll adds only the first one.
    assert_eq!(
        store
            .complete_enrollment(e2.code_use(&c2, NOW), &add_change(&p2, 1))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    assert_eq!(phones(store, &ns).await, vec![p1]);
    // Nor to a user with an authenticator app (and no phone).
    let ns = self::ns();
    let (e, c) = at_code(store, &ns, SessionKind::Enroll, &num(3), NOW).await;
    bind_app(store, &ns, true, 1, NOW).await;
    let p3 = new_phone(&num(3), true, NOW);
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&c, NOW), &add_change(&p3, 0))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    assert!(phones(store, &ns).await.is_empty());
}

async fn a_replace_moves_the_number_and_its_claims(store: &dyn Store) {
    let ns = ns();
    let p = add(store, &ns, &num(1), NOW).await;
    store
        .set_phone_label(ns.owner(), &p.phone_id, Some("home".into()))
        .await
        .unwrap();
    let at = NOW.plus_secs(100);
    assert_eq!(replace(store, &ns, &p, &num(2), at).await, Completion::Done);
    let list = phones(store, &ns).await;
    assert_eq!(
        list,
        vec![PhoneRecord {
            number: num(2),
            label: Some("home".into()),
            verified_at: at,
            ..p.clone()
        }]
    );
    // The new number is claimed, the old one released.
    let (taken, _) = try_add_for(store, &ns, &ns.user, &num(2), at).await;
    assert_eq!(taken, Completion::NumberTaken);
    let (freed, _) = try_add_for(store, &ns, &ns.user, &num(1), at).await;
    assert_eq!(freed, Completion::Done);
}

async fn a_replace_of_a_number_changed_meanwhile_is_refused(store: &dyn Store) {
    let ns = ns();
    let p = add(store, &ns, &num(1), NOW).await;
    // Two replaces begun from the same number: the second to complete finds it changed.
    let (e1, c1) = at_code(
        store,
        &ns,
        SessionKind::Replace(p.phone_id.clone()),
        &num(2),
        NOW,
    )
    .await;
    let (e2, c2) = at_code(
        store,
        &ns,
        SessionKind::Replace(p.phone_id.clone()),
        &num(3),
        NOW,
    )
    .await;
    let change = |new: &PhoneNumber| PhoneChange::Replace {
        phone_id: p.phone_id.clone(),
        old_number: p.number.clone(),
        old_number_tag: tag(&p.number),
        new_number: new.clone(),
        new_number_tag: tag(new),
    };
    assert_eq!(
        store
            .complete_enrollment(e1.code_use(&c1, NOW), &change(&num(2)))
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(
        store
            .complete_enrollment(e2.code_use(&c2, NOW), &change(&num(3)))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    assert_eq!(phones(store, &ns).await[0].number, num(2));
    // Number 3 was never claimed.
    let (n3, _) = try_add_for(store, &ns, &ns.user, &num(3), NOW.plus_secs(1)).await;
    assert_eq!(n3, Completion::Done);
    // A removed phone cannot be replaced.
    let gone = phones(store, &ns).await[1].clone();
    let r = removal(store, &ns, &gone, None).await;
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert_eq!(
        replace(store, &ns, &gone, &num(4), NOW).await,
        Completion::PhonesChanged
    );
    assert_eq!(phones(store, &ns).await.len(), 1);
}

async fn a_replace_to_a_number_the_user_has_is_number_taken(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    assert_eq!(
        replace(store, &ns, &p1, &num(2), NOW).await,
        Completion::NumberTaken
    );
    // Its own number too.
    assert_eq!(
        replace(store, &ns, &p1, &num(1), NOW).await,
        Completion::NumberTaken
    );
    assert_eq!(phones(store, &ns).await, vec![p1.clone(), p2]);
    // Both claims still hold: the old number was not released.
    let (n1, _) = try_add_for(store, &ns, &ns.user, &num(1), NOW).await;
    assert_eq!(n1, Completion::NumberTaken);
}

async fn a_challenge_completes_only_while_its_phone_keeps_the_number(store: &dyn Store) {
    let ns = ns();
    let p = add(store, &ns, &num(1), NOW).await;
    let challenge = |phone: &PhoneRecord| PhoneChange::Challenge {
        phone_id: phone.phone_id.clone(),
        number: phone.number.clone(),
    };
    // Done, and nothing changes but the challenge.
    let (e, c) = at_code(
        store,
        &ns,
        SessionKind::SignIn(p.phone_id.clone()),
        &p.number,
        NOW,
    )
    .await;
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&c, NOW), &challenge(&p))
            .await
            .unwrap(),
        Completion::Done
    );
    assert_eq!(phones(store, &ns).await, vec![p.clone()]);
    assert_eq!(reread(store, &e).await.unwrap().step, Step::Complete);
    // A challenge texted before a replace proves nothing after it.
    let (e, c) = at_code(
        store,
        &ns,
        SessionKind::SignIn(p.phone_id.clone()),
        &p.number,
        NOW,
    )
    .await;
    assert_eq!(
        replace(store, &ns, &p, &num(2), NOW).await,
        Completion::Done
    );
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&c, NOW), &challenge(&p))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
    // Nor one texted before the phone's removal.
    let p = phones(store, &ns).await[0].clone();
    let (e, c) = at_code(
        store,
        &ns,
        SessionKind::SignIn(p.phone_id.clone()),
        &p.number,
        NOW,
    )
    .await;
    let r = removal(store, &ns, &p, None).await;
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&c, NOW), &challenge(&p))
            .await
            .unwrap(),
        Completion::PhonesChanged
    );
}

async fn a_gone_code_comes_before_a_taken_number_before_changed_phones(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    // An add of a number the user has, with a stale count: the number is what the user hears.
    let (e, old) = at_code(store, &ns, SessionKind::Add, &num(1), NOW).await;
    let both = add_change(&new_phone(&num(1), false, NOW), 1);
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&old, NOW), &both)
            .await
            .unwrap(),
        Completion::NumberTaken
    );
    // A replace to a number the user has, from a number the phone no longer carries.
    let stale_replace = PhoneChange::Replace {
        phone_id: p1.phone_id.clone(),
        old_number: num(9),
        old_number_tag: tag(&num(9)),
        new_number: num(2),
        new_number_tag: tag(&num(2)),
    };
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&old, NOW), &stale_replace)
            .await
            .unwrap(),
        Completion::NumberTaken
    );
    // With the code replaced meanwhile, neither matters: the code is gone.
    let newer = code(&num(1), NOW.plus_secs(40));
    store
        .begin_send(&e, &send(&newer, NOW.plus_secs(40)))
        .await
        .unwrap()
        .unwrap();
    for change in [&both, &stale_replace] {
        assert_eq!(
            store
                .complete_enrollment(e.code_use(&old, NOW.plus_secs(41)), change)
                .await
                .unwrap(),
            Completion::CodeGone
        );
    }
    assert_eq!(phones(store, &ns).await.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Phones.

async fn phones_are_listed_in_the_order_first_verified(store: &dyn Store) {
    let ns = ns();
    assert!(phones(store, &ns).await.is_empty());
    let mut added = Vec::new();
    for i in 0..5 {
        added.push(add(store, &ns, &num(i), NOW.plus_secs(10 * u64::from(i))).await);
    }
    assert_eq!(phones(store, &ns).await, added);
    assert!(
        store
            .list_phones(ns.of(&ns.other))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_replaced_phone_keeps_its_place_in_the_list(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(10)).await;
    let p3 = add(store, &ns, &num(3), NOW.plus_secs(20)).await;
    // The first phone gets a new number after the others were verified.
    assert_eq!(
        replace(store, &ns, &p1, &num(4), NOW.plus_secs(30)).await,
        Completion::Done
    );
    let list = phones(store, &ns).await;
    assert_eq!(ids(&list), ids(&[p1.clone(), p2, p3]));
    assert_eq!(list[0].number, num(4));
    assert_eq!(list[0].verified_at, NOW.plus_secs(30));
    // And the reset returns them in the same order.
    let removed = store.reset_user(ns.owner()).await.unwrap();
    assert_eq!(removed.phones, list);
}

async fn set_phone_label_sets_and_clears(store: &dyn Store) {
    let ns = ns();
    let p = add(store, &ns, &num(1), NOW).await;
    let labelled = store
        .set_phone_label(ns.owner(), &p.phone_id, Some("work".into()))
        .await
        .unwrap();
    let expected = PhoneRecord {
        label: Some("work".into()),
        ..p.clone()
    };
    assert_eq!(labelled, Some(expected.clone()));
    assert_eq!(phones(store, &ns).await, vec![expected]);
    let cleared = store
        .set_phone_label(ns.owner(), &p.phone_id, None)
        .await
        .unwrap();
    assert_eq!(cleared, Some(p.clone()));
    assert_eq!(phones(store, &ns).await, vec![p.clone()]);
    // An unknown phone, or another user's, is not found, and nothing is created.
    let unknown = PhoneId::generate().unwrap();
    assert_eq!(
        store
            .set_phone_label(ns.owner(), &unknown, Some("x".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .set_phone_label(ns.of(&ns.other), &p.phone_id, Some("x".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(phones(store, &ns).await, vec![p]);
    assert!(
        store
            .list_phones(ns.of(&ns.other))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn set_primary_leaves_exactly_one_primary(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    let p3 = add(store, &ns, &num(3), NOW.plus_secs(2)).await;
    assert_eq!(
        primaries(&phones(store, &ns).await),
        vec![p1.phone_id.clone()]
    );
    let seen = phones(store, &ns).await;
    assert!(
        store
            .set_primary(ns.owner(), &p3.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(
        primaries(&phones(store, &ns).await),
        vec![p3.phone_id.clone()]
    );
    // The primary one again: still exactly one.
    let seen = phones(store, &ns).await;
    assert!(
        store
            .set_primary(ns.owner(), &p3.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(
        primaries(&phones(store, &ns).await),
        vec![p3.phone_id.clone()]
    );
    // A user whose phones have no primary gets one.
    let r = removal(store, &ns, &p3, None).await;
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    let seen = phones(store, &ns).await;
    assert!(primaries(&seen).is_empty());
    assert!(
        store
            .set_primary(ns.owner(), &p2.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(primaries(&phones(store, &ns).await), vec![p2.phone_id]);
}

async fn set_primary_refuses_when_the_phones_changed(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    let seen = phones(store, &ns).await;
    // Another make-primary won.
    assert!(
        store
            .set_primary(ns.owner(), &p2.phone_id, &seen)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_primary(ns.owner(), &p1.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(
        primaries(&phones(store, &ns).await),
        vec![p2.phone_id.clone()]
    );
    // A phone was added meanwhile.
    let seen = phones(store, &ns).await;
    add(store, &ns, &num(3), NOW.plus_secs(2)).await;
    assert!(
        !store
            .set_primary(ns.owner(), &p1.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(
        primaries(&phones(store, &ns).await),
        vec![p2.phone_id.clone()]
    );
    // A phone the user does not have.
    let seen = phones(store, &ns).await;
    let unknown = PhoneId::generate().unwrap();
    assert!(
        !store
            .set_primary(ns.owner(), &unknown, &seen)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_primary(ns.of(&ns.other), &p1.phone_id, &seen)
            .await
            .unwrap()
    );
    assert_eq!(primaries(&phones(store, &ns).await), vec![p2.phone_id]);
}

async fn remove_phone_releases_the_number_and_promotes(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    let p3 = add(store, &ns, &num(3), NOW.plus_secs(2)).await;
    store
        .replace_recovery_codes(ns.owner(), &hashes("r", 3), NOW)
        .await
        .unwrap();
    let r = removal(store, &ns, &p1, Some(&p3)).await;
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    let list = phones(store, &ns).await;
    assert_eq!(ids(&list), ids(&[p2.clone(), p3.clone()]));
    assert_eq!(primaries(&list), vec![p3.phone_id.clone()]);
    // Not the last: the recovery codes stay.
    assert_eq!(count_codes(store, &ns).await, 3);
    // Its number can be added again, counted from the phones left.
    let again = add(store, &ns, &num(1), NOW.plus_secs(3)).await;
    assert_eq!(
        ids(&phones(store, &ns).await),
        ids(&[p2, p3, again.clone()])
    );
    assert!(!again.primary);
}

async fn remove_phone_refuses_when_the_phones_changed(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    // A make-primary came between the look and the removal.
    let stale = removal(store, &ns, &p1, Some(&p2)).await;
    let seen = phones(store, &ns).await;
    assert!(
        store
            .set_primary(ns.owner(), &p2.phone_id, &seen)
            .await
            .unwrap()
    );
    assert!(!store.remove_phone(ns.owner(), &stale).await.unwrap());
    assert_eq!(phones(store, &ns).await.len(), 2);
    // A replace came: the removal names the old number.
    let p1 = phones(store, &ns).await[0].clone();
    let stale = removal(store, &ns, &p1, None).await;
    assert_eq!(
        replace(store, &ns, &p1, &num(3), NOW).await,
        Completion::Done
    );
    assert!(!store.remove_phone(ns.owner(), &stale).await.unwrap());
    // An add came: the count differs.
    let p2 = phones(store, &ns).await[1].clone();
    let stale = removal(store, &ns, &p2, None).await;
    add(store, &ns, &num(4), NOW.plus_secs(2)).await;
    assert!(!store.remove_phone(ns.owner(), &stale).await.unwrap());
    let list = phones(store, &ns).await;
    assert_eq!(list.len(), 3);
    assert_eq!(primaries(&list), vec![p2.phone_id]);
}

async fn remove_phone_promotes_only_another_phone_not_primary(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    let seen = phones(store, &ns).await;
    // The primary phone promoting itself would leave no primary.
    let itself = removal(store, &ns, &p1, Some(&p1)).await;
    // A phone already primary cannot be promoted by removing another.
    let already = removal(store, &ns, &p2, Some(&p1)).await;
    // Nor a phone the user does not have.
    let stranger = Removal {
        app_seen: false,
        promote: Some(PhoneId::generate().unwrap()),
        ..removal(store, &ns, &p1, None).await
    };
    for r in [itself, already, stranger] {
        assert!(!store.remove_phone(ns.owner(), &r).await.unwrap());
        assert_eq!(phones(store, &ns).await, seen);
    }
    let r = removal(store, &ns, &p1, Some(&p2)).await;
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert_eq!(primaries(&phones(store, &ns).await), vec![p2.phone_id]);
}

async fn remove_phone_of_the_last_phone_drops_recovery_codes(store: &dyn Store) {
    let ns = ns();
    let p = add(store, &ns, &num(1), NOW).await;
    let codes = hashes("last", 4);
    assert!(set_codes(store, &ns, &codes).await);
    assert!(
        store
            .consume_recovery_code(ns.owner(), &codes[0])
            .await
            .unwrap()
    );
    let r = removal(store, &ns, &p, None).await;
    assert!(r.is_last());
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert!(phones(store, &ns).await.is_empty());
    assert_eq!(count_codes(store, &ns).await, 0);
    assert!(
        !store
            .consume_recovery_code(ns.owner(), &codes[1])
            .await
            .unwrap()
    );
    // Enrolling again starts with no codes, and the old ones never come back.
    add(store, &ns, &num(1), NOW.plus_secs(1)).await;
    assert_eq!(count_codes(store, &ns).await, 0);
    assert!(
        !store
            .consume_recovery_code(ns.owner(), &codes[2])
            .await
            .unwrap()
    );
}

async fn reset_user_removes_everything_and_returns_the_phones(store: &dyn Store) {
    let ns = ns();
    let p1 = add(store, &ns, &num(1), NOW).await;
    let p2 = add(store, &ns, &num(2), NOW.plus_secs(1)).await;
    store
        .replace_recovery_codes(ns.owner(), &hashes("x", 3), NOW)
        .await
        .unwrap();
    let (open_add, _) = at_code(store, &ns, SessionKind::Add, &num(3), NOW).await;
    let challenge = open(store, &ns, SessionKind::SignIn(p1.phone_id.clone()), NOW).await;
    let user = UserRecord {
        app_id: ns.app.clone(),
        user_id: ns.user.clone(),
        email: "u@example.com".into(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        locale: None,
        updated_at: NOW,
    };
    store.put_user(&user).await.unwrap();
    // Another user of the application keeps theirs.
    let (done, theirs) = try_add_for(store, &ns, &ns.other, &num(1), NOW).await;
    assert_eq!(done, Completion::Done);

    let removed = store.reset_user(ns.owner()).await.unwrap();
    assert_eq!(removed.phones, vec![p1, p2]);
    assert!(phones(store, &ns).await.is_empty());
    assert_eq!(count_codes(store, &ns).await, 0);
    assert_eq!(reread(store, &open_add).await, None);
    assert_eq!(reread(store, &challenge).await, None);
    // The account record is the platform's: it stays.
    assert_eq!(store.get_user(ns.owner()).await.unwrap(), Some(user));
    assert_eq!(
        store.list_phones(ns.of(&ns.other)).await.unwrap(),
        vec![theirs]
    );
    // No phone: no recovery codes can be set.
    assert!(
        !store
            .replace_recovery_codes(ns.owner(), &hashes("y", 2), NOW)
            .await
            .unwrap()
    );
    // The numbers are released, and the user enrolls again as new.
    let again = add(store, &ns, &num(2), NOW.plus_secs(5)).await;
    assert!(again.primary);
    assert_eq!(phones(store, &ns).await, vec![again]);
}

async fn reset_user_of_a_user_with_nothing_is_empty(store: &dyn Store) {
    let ns = ns();
    assert!(
        store
            .reset_user(ns.owner())
            .await
            .unwrap()
            .phones
            .is_empty()
    );
    // Twice is the same.
    assert!(
        store
            .reset_user(ns.owner())
            .await
            .unwrap()
            .phones
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Recovery codes.

async fn replace_recovery_codes_needs_a_factor(store: &dyn Store) {
    let ns = ns();
    let codes = hashes("n", 3);
    assert!(!set_codes(store, &ns, &codes).await);
    assert_eq!(count_codes(store, &ns).await, 0);
    assert!(
        !store
            .consume_recovery_code(ns.owner(), &codes[0])
            .await
            .unwrap()
    );
    add(store, &ns, &num(1), NOW).await;
    assert!(set_codes(store, &ns, &codes).await);
    assert_eq!(count_codes(store, &ns).await, 3);
    // A user whose only factor is an authenticator app.
    let ns = self::ns();
    let app = bind_app(store, &ns, true, 1, NOW).await;
    assert!(set_codes(store, &ns, &codes).await);
    assert_eq!(count_codes(store, &ns).await, 3);
    // Once it is gone, no set can be made.
    assert!(drop_app(store, &ns, &app.authenticator_id, 0).await);
    assert!(!set_codes(store, &ns, &codes).await);
    assert_eq!(count_codes(store, &ns).await, 0);
}

async fn replace_recovery_codes_replaces_the_whole_set(store: &dyn Store) {
    let ns = ns();
    add(store, &ns, &num(1), NOW).await;
    let old = hashes("old", 4);
    set_codes(store, &ns, &old).await;
    assert!(
        store
            .consume_recovery_code(ns.owner(), &old[0])
            .await
            .unwrap()
    );
    // The new set keeps one old hash (used before): it is a fresh, unused code again.
    let mut new = hashes("new", 2);
    new.push(old[0].clone());
    assert!(
        store
            .replace_recovery_codes(ns.owner(), &new, NOW.plus_secs(1))
            .await
            .unwrap()
    );
    assert_eq!(count_codes(store, &ns).await, 3);
    for gone in &old[1..] {
        assert!(!store.consume_recovery_code(ns.owner(), gone).await.unwrap());
    }
    for code in &new {
        assert!(store.consume_recovery_code(ns.owner(), code).await.unwrap());
    }
    // An empty set leaves none.
    assert!(
        store
            .replace_recovery_codes(ns.owner(), &[], NOW.plus_secs(2))
            .await
            .unwrap()
    );
    assert_eq!(count_codes(store, &ns).await, 0);
}

async fn a_duplicated_recovery_hash_is_one_code(store: &dyn Store) {
    let ns = ns();
    add(store, &ns, &num(1), NOW).await;
    let h = "dup".to_owned();
    let set = vec![h.clone(), "other".to_owned(), h.clone()];
    assert!(set_codes(store, &ns, &set).await);
    assert_eq!(count_codes(store, &ns).await, 2);
    assert!(store.consume_recovery_code(ns.owner(), &h).await.unwrap());
    assert!(!store.consume_recovery_code(ns.owner(), &h).await.unwrap());
    assert_eq!(count_codes(store, &ns).await, 1);
}

async fn consume_recovery_code_is_true_exactly_once(store: &dyn Store) {
    let ns = ns();
    add(store, &ns, &num(1), NOW).await;
    let codes = hashes("once", 2);
    set_codes(store, &ns, &codes).await;
    let use_it = || store.consume_recovery_code(ns.owner(), &codes[0]);
    let (a, b, c, d) = tokio::join!(use_it(), use_it(), use_it(), use_it());
    let wins = [a, b, c, d]
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    assert!(
        !store
            .consume_recovery_code(ns.owner(), &codes[0])
            .await
            .unwrap()
    );
    // Unknown hashes, and another user's, are never true.
    assert!(
        !store
            .consume_recovery_code(ns.owner(), "unknown")
            .await
            .unwrap()
    );
    assert!(
        !store
            .consume_recovery_code(ns.of(&ns.other), &codes[1])
            .await
            .unwrap()
    );
    assert_eq!(count_codes(store, &ns).await, 1);
}

async fn count_recovery_codes_counts_unused_only(store: &dyn Store) {
    let ns = ns();
    assert_eq!(count_codes(store, &ns).await, 0);
    add(store, &ns, &num(1), NOW).await;
    let codes = hashes("c", 10);
    set_codes(store, &ns, &codes).await;
    assert_eq!(count_codes(store, &ns).await, 10);
    for (i, code) in codes.iter().enumerate().take(3) {
        store.consume_recovery_code(ns.owner(), code).await.unwrap();
        assert_eq!(count_codes(store, &ns).await, 9 - i as u32);
    }
    assert_eq!(
        store.count_recovery_codes(ns.of(&ns.other)).await.unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// Audit.

fn event(app: &AppId, i: u64, user: Option<&UserId>) -> AuditEvent {
    let at = NOW.plus_secs(i);
    AuditEvent {
        app_id: app.clone(),
        // Ids sort by time, as the flows make them.
        id: format!("{:012}-{i:04}", at.0),
        at,
        actor: user.map_or("admin".to_owned(), |u| u.to_string()),
        action: "phone.added".into(),
        user_id: user.cloned(),
        outcome: "ok".into(),
        details: format!("{{\"n\":{i}}}"),
        expires_at: NOW.plus_secs(86_400),
    }
}

async fn list_audit_is_newest_first_and_pages(store: &dyn Store) {
    let ns = ns();
    let events: Vec<AuditEvent> = (0..5).map(|i| event(&ns.app, i, Some(&ns.user))).collect();
    // Appended out of order: the listing sorts.
    for i in [2, 0, 4, 1, 3] {
        store.append_audit(&events[i]).await.unwrap();
    }
    let newest_first: Vec<AuditEvent> = events.iter().rev().cloned().collect();
    let all = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 10,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(all.events, newest_first);
    assert_eq!(all.next_after, None);

    let first = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 2,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(first.events, newest_first[..2]);
    let after = first.next_after.clone().unwrap();
    let second = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 2,
            after: Some(&after),
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(second.events, newest_first[2..4]);
    let after = second.next_after.clone().unwrap();
    let last = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 2,
            after: Some(&after),
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(last.events, newest_first[4..]);
    assert_eq!(last.next_after, None);
    // A page that ends exactly at the last event says no more follow.
    let exact = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 5,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(exact.events.len(), 5);
    assert_eq!(exact.next_after, None);
}

async fn list_audit_per_user(store: &dyn Store) {
    let ns = ns();
    let mine = event(&ns.app, 1, Some(&ns.user));
    let theirs = event(&ns.app, 2, Some(&ns.other));
    let admin = event(&ns.app, 3, None);
    let mine_later = event(&ns.app, 4, Some(&ns.user));
    for e in [&mine, &theirs, &admin, &mine_later] {
        store.append_audit(e).await.unwrap();
    }
    let page = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: Some(&ns.user),
            limit: 10,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(page.events, vec![mine_later.clone(), mine.clone()]);
    let first = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: Some(&ns.user),
            limit: 1,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(first.events, vec![mine_later]);
    let rest = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: Some(&ns.user),
            limit: 1,
            after: first.next_after.as_deref(),
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(rest.events, vec![mine]);
    assert_eq!(rest.next_after, None);
    let all = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 10,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert_eq!(all.events.len(), 4);
}

async fn list_audit_hides_expired_events(store: &dyn Store) {
    let ns = ns();
    let expired = AuditEvent {
        expires_at: NOW.plus_secs(10),
        ..event(&ns.app, 1, Some(&ns.user))
    };
    let live = event(&ns.app, 2, Some(&ns.user));
    store.append_audit(&expired).await.unwrap();
    store.append_audit(&live).await.unwrap();
    let before = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 10,
            after: None,
            now: NOW.plus_secs(9),
        })
        .await
        .unwrap();
    assert_eq!(before.events, vec![live.clone(), expired]);
    // At its expiry it is gone, from both listings, and never makes an empty page say more.
    let at = NOW.plus_secs(10);
    for user in [None, Some(&ns.user)] {
        let page = store
            .list_audit(&AuditQuery {
                app: &ns.app,
                user,
                limit: 1,
                after: None,
                now: at,
            })
            .await
            .unwrap();
        assert_eq!(page.events, vec![live.clone()]);
        assert_eq!(page.next_after, None);
    }
}

async fn list_audit_is_per_application(store: &dyn Store) {
    let ns = ns();
    let elsewhere = self::ns();
    store
        .append_audit(&event(&elsewhere.app, 1, Some(&ns.user)))
        .await
        .unwrap();
    let page = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: None,
            limit: 10,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.next_after, None);
    let page = store
        .list_audit(&AuditQuery {
            app: &ns.app,
            user: Some(&ns.user),
            limit: 10,
            after: None,
            now: NOW,
        })
        .await
        .unwrap();
    assert!(page.events.is_empty());
}

async fn list_audit_pages_every_event_once_newest_first(store: &dyn Store) {
    // Three pages' worth and more, at distinct times, appended out of order: on DynamoDB they
    // land in many of the application log's shards, which a page reads and merges.
    const LIMIT: u32 = 6;
    let ns = ns();
    let mut live = Vec::new();
    let mut expired = Vec::new();
    for i in 0..22u64 {
        let user = match i % 3 {
            0 => None,
            1 => Some(&ns.user),
            _ => Some(&ns.other),
        };
        let e = event(&ns.app, i, user);
        // Four expire before the listing: the oldest, the newest and two between.
        if [0, 5, 13, 21].contains(&i) {
            expired.push(AuditEvent {
                expires_at: NOW.plus_secs(100),
                ..e
            });
        } else {
            live.push(e);
        }
    }
    assert_eq!(live.len(), 3 * LIMIT as usize);
    let shards: std::collections::BTreeSet<u32> = live
        .iter()
        .map(|e| mfa_shared::adapters::dynamodb::audit_shard_of(&e.id))
        .collect();
    assert!(
        shards.len() > 8,
        "the events land in {} shards",
        shards.len()
    );
    let all: Vec<&AuditEvent> = live.iter().chain(&expired).collect();
    // Every 7th of 22 (coprime): each once, far from time order.
    for k in 0..all.len() {
        store.append_audit(all[k * 7 % all.len()]).await.unwrap();
    }
    let now = NOW.plus_secs(100);
    let mut listed: Vec<AuditEvent> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_audit(&AuditQuery {
                app: &ns.app,
                user: None,
                limit: LIMIT,
                after: after.as_deref(),
                now,
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.events.len() <= LIMIT as usize);
        listed.extend(page.events.iter().cloned());
        match page.next_after {
            Some(next) => {
                assert_eq!(
                    page.events.len(),
                    LIMIT as usize,
                    "a page before the last is full"
                );
                assert_eq!(Some(&next), page.events.last().map(|e| &e.id));
                after = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    // Every live event exactly once, newest first; the last page ends at the oldest live one.
    let newest_first: Vec<AuditEvent> = live.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    assert_eq!(pages, 3);
}

async fn an_event_appended_twice_is_one_event(store: &dyn Store) {
    let ns = ns();
    // A retried append (its answer lost) writes the same event, under the same id, again.
    let e = event(&ns.app, 1, Some(&ns.user));
    store.append_audit(&e).await.unwrap();
    store.append_audit(&e).await.unwrap();
    for user in [None, Some(&ns.user)] {
        let page = store
            .list_audit(&AuditQuery {
                app: &ns.app,
                user,
                limit: 10,
                after: None,
                now: NOW,
            })
            .await
            .unwrap();
        assert_eq!(page.events, vec![e.clone()]);
    }
}

// ---------------------------------------------------------------------------------------------
// Counters.

fn counter(ns: &Ns, what: &str) -> String {
    format!("{}:{what}", ns.app)
}

async fn counter_take_refuses_at_the_limit_first_once(store: &dyn Store) {
    let ns = ns();
    let key = counter(&ns, "limit");
    for i in 1..=3 {
        assert_eq!(
            store
                .counter_take(&key, Window::new(3, 60), NOW.plus_secs(u64::from(i)))
                .await
                .unwrap(),
            Counted::Taken {
                count: i,
                window_start: NOW.plus_secs(1)
            }
        );
    }
    let end = NOW.plus_secs(61);
    assert_eq!(
        store
            .counter_take(&key, Window::new(3, 60), NOW.plus_secs(10))
            .await
            .unwrap(),
        Counted::Limited {
            until: end,
            first: true
        }
    );
    for _ in 0..2 {
        assert_eq!(
            store
                .counter_take(&key, Window::new(3, 60), NOW.plus_secs(20))
                .await
                .unwrap(),
            Counted::Limited {
                until: end,
                first: false
            }
        );
    }
    // Another key is another counter.
    assert_eq!(
        store
            .counter_take(
                &counter(&ns, "other"),
                Window::new(3, 60),
                NOW.plus_secs(20)
            )
            .await
            .unwrap(),
        Counted::Taken {
            count: 1,
            window_start: NOW.plus_secs(20)
        }
    );
}

async fn counter_take_opens_a_new_window_after_the_old_one(store: &dyn Store) {
    let ns = ns();
    let key = counter(&ns, "window");
    store
        .counter_take(&key, Window::new(1, 60), NOW)
        .await
        .unwrap();
    assert!(matches!(
        store
            .counter_take(&key, Window::new(1, 60), NOW.plus_secs(59))
            .await
            .unwrap(),
        Counted::Limited { first: true, .. }
    ));
    // At the window's end a new one opens at the first unit, and has its own first refusal.
    let next = NOW.plus_secs(60);
    assert_eq!(
        store
            .counter_take(&key, Window::new(1, 60), next)
            .await
            .unwrap(),
        Counted::Taken {
            count: 1,
            window_start: next
        }
    );
    assert_eq!(
        store
            .counter_take(&key, Window::new(1, 60), next.plus_secs(1))
            .await
            .unwrap(),
        Counted::Limited {
            until: next.plus_secs(60),
            first: true
        }
    );
    // A window opens at its first unit, not at a multiple of its length.
    let late = NOW.plus_secs(1000);
    assert_eq!(
        store
            .counter_take(&key, Window::new(1, 60), late)
            .await
            .unwrap(),
        Counted::Taken {
            count: 1,
            window_start: late
        }
    );
}

async fn counter_block_refuses_until_its_end_first_once(store: &dyn Store) {
    let ns = ns();
    let key = counter(&ns, "block");
    // Blocking a counter never taken does nothing (the lockout blocks a counter it took from).
    store
        .counter_block(&counter(&ns, "never"), NOW.plus_secs(900))
        .await
        .unwrap();
    assert!(matches!(
        store
            .counter_take(&counter(&ns, "never"), Window::new(5, 60), NOW)
            .await
            .unwrap(),
        Counted::Taken { count: 1, .. }
    ));

    store
        .counter_take(&key, Window::new(5, 60), NOW)
        .await
        .unwrap();
    let until = NOW.plus_secs(900);
    store.counter_block(&key, until).await.unwrap();
    assert_eq!(
        store
            .counter_take(&key, Window::new(5, 60), NOW.plus_secs(1))
            .await
            .unwrap(),
        Counted::Limited { until, first: true }
    );
    // Past the window but inside the block: still refused, not first again.
    assert_eq!(
        store
            .counter_take(&key, Window::new(5, 60), NOW.plus_secs(300))
            .await
            .unwrap(),
        Counted::Limited {
            until,
            first: false
        }
    );
    // A longer block is a new block, with its own first refusal.
    let longer = NOW.plus_secs(1800);
    store.counter_block(&key, longer).await.unwrap();
    assert_eq!(
        store
            .counter_take(&key, Window::new(5, 60), NOW.plus_secs(301))
            .await
            .unwrap(),
        Counted::Limited {
            until: longer,
            first: true
        }
    );
    // At its end the counter takes again, in a fresh window.
    assert_eq!(
        store
            .counter_take(&key, Window::new(5, 60), longer)
            .await
            .unwrap(),
        Counted::Taken {
            count: 1,
            window_start: longer
        }
    );
}

async fn counter_give_back_only_to_its_window(store: &dyn Store) {
    let ns = ns();
    let key = counter(&ns, "give");
    let Counted::Taken { window_start, .. } = store
        .counter_take(&key, Window::new(2, 60), NOW)
        .await
        .unwrap()
    else {
        panic!("first take refused");
    };
    store
        .counter_take(&key, Window::new(2, 60), NOW)
        .await
        .unwrap();
    store.counter_give_back(&key, window_start).await.unwrap();
    assert_eq!(
        store
            .counter_take(&key, Window::new(2, 60), NOW.plus_secs(1))
            .await
            .unwrap(),
        Counted::Taken {
            count: 2,
            window_start
        }
    );
    // Into a newer window, a give-back of the old one is a no-op.
    let next = NOW.plus_secs(60);
    store
        .counter_take(&key, Window::new(2, 60), next)
        .await
        .unwrap();
    store
        .counter_take(&key, Window::new(2, 60), next)
        .await
        .unwrap();
    store.counter_give_back(&key, window_start).await.unwrap();
    assert!(matches!(
        store
            .counter_take(&key, Window::new(2, 60), next)
            .await
            .unwrap(),
        Counted::Limited { .. }
    ));
    // Never below zero: extra give-backs do not make room beyond the limit.
    let other = counter(&ns, "give2");
    let Counted::Taken { window_start, .. } = store
        .counter_take(&other, Window::new(2, 60), NOW)
        .await
        .unwrap()
    else {
        panic!("first take refused");
    };
    for _ in 0..3 {
        store.counter_give_back(&other, window_start).await.unwrap();
    }
    assert_eq!(
        store
            .counter_take(&other, Window::new(2, 60), NOW)
            .await
            .unwrap(),
        Counted::Taken {
            count: 1,
            window_start
        }
    );
    assert_eq!(
        store
            .counter_take(&other, Window::new(2, 60), NOW)
            .await
            .unwrap(),
        Counted::Taken {
            count: 2,
            window_start
        }
    );
    assert!(matches!(
        store
            .counter_take(&other, Window::new(2, 60), NOW)
            .await
            .unwrap(),
        Counted::Limited { .. }
    ));
    // Giving back to a counter that does not exist creates nothing.
    store
        .counter_give_back(&counter(&ns, "none"), NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .counter_take(&counter(&ns, "none"), Window::new(2, 60), NOW.plus_secs(5))
            .await
            .unwrap(),
        Counted::Taken {
            count: 1,
            window_start: NOW.plus_secs(5)
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Authenticator apps.

/// A sealed secret as the store sees it: an opaque string.
fn sealed(tag: &str) -> Sealed {
    Sealed::from_stored(format!("v1.0123abcd.{tag}"))
}

/// A new app's setup (`first`: begun without a step-up, for a user with no factor).
fn setup_kind(first: bool, label: Option<&str>) -> AppSetup {
    let authenticator = AuthenticatorId::generate().unwrap();
    AppSetup {
        sealed: sealed(authenticator.as_str()),
        authenticator,
        label: label.map(str::to_owned),
        first,
    }
}

/// A stored app setup for the case's user, begun at `at` (at the code step).
async fn app_setup(store: &dyn Store, ns: &Ns, first: bool, at: UnixTime) -> Enrollment {
    let e = open(
        store,
        ns,
        SessionKind::AppSetup(setup_kind(first, Some("phone app"))),
        at,
    )
    .await;
    assert_eq!(e.step, Step::Code);
    e
}

/// A stored app sign-in for the case's user with `app`, begun at `at`.
async fn app_sign_in(
    store: &dyn Store,
    ns: &Ns,
    app: &AuthenticatorRecord,
    at: UnixTime,
) -> Enrollment {
    open(
        store,
        ns,
        SessionKind::AppSignIn(app.authenticator_id.clone()),
        at,
    )
    .await
}

/// The code of step `step` of `session`, used at `now` (remembered for the accepted skew).
fn app_use(session: &Enrollment, step: i64, now: UnixTime) -> AppCodeUse<'_> {
    AppCodeUse {
        session,
        step,
        step_remembered_until: now.plus_secs(90),
        now,
        reseal: None,
        seen: None,
    }
}

/// A step of these cases: around [`NOW`]'s, distinct per `i`.
fn step(i: i64) -> i64 {
    NOW.0 / 30 + i
}

async fn complete(store: &dyn Store, session: &Enrollment, i: i64, now: UnixTime) -> AppCompletion {
    store
        .complete_app(app_use(session, step(i), now))
        .await
        .unwrap()
}

/// The app a setup binds when it completes at `at`.
fn bound(setup: &Enrollment, at: UnixTime) -> AuthenticatorRecord {
    let SessionKind::AppSetup(s) = &setup.kind else {
        panic!("not an app setup: {setup:?}");
    };
    AuthenticatorRecord {
        authenticator_id: s.authenticator.clone(),
        sealed: s.sealed.clone(),
        label: s.label.clone(),
        verified_at: at,
        last_used_at: None,
    }
}

/// Binds an app to the case's user with the code of step `i`, at `at`; it must succeed.
async fn bind_app(
    store: &dyn Store,
    ns: &Ns,
    first: bool,
    i: i64,
    at: UnixTime,
) -> AuthenticatorRecord {
    let e = app_setup(store, ns, first, at).await;
    assert_eq!(complete(store, &e, i, at).await, AppCompletion::Done);
    bound(&e, at)
}

/// Replaces the user's recovery codes by `codes` at [`NOW`]: whether the store took them.
async fn set_codes(store: &dyn Store, ns: &Ns, codes: &[String]) -> bool {
    store
        .replace_recovery_codes(ns.owner(), codes, NOW)
        .await
        .unwrap()
}

/// Removes the user's app `id`, seeing `phones` phones: whether the removal held.
async fn drop_app(store: &dyn Store, ns: &Ns, id: &AuthenticatorId, phones: u32) -> bool {
    store.remove_app(ns.owner(), id, phones).await.unwrap()
}

async fn app(store: &dyn Store, ns: &Ns) -> Option<AuthenticatorRecord> {
    store.get_app(ns.owner()).await.unwrap()
}

async fn an_app_setup_reads_back_as_created_and_takes_attempts_up_to_max(store: &dyn Store) {
    let ns = ns();
    let e = app_setup(store, &ns, true, NOW).await;
    assert_eq!(reread(store, &e).await, Some(e.clone()));
    assert_eq!(
        store.get_enrollment(ns.of(&ns.other), &e.id).await.unwrap(),
        None
    );
    for expected in 1..=3 {
        assert_eq!(
            store.take_app_attempt(&e, 3, NOW).await.unwrap(),
            Some(expected)
        );
    }
    assert_eq!(store.take_app_attempt(&e, 3, NOW).await.unwrap(), None);
    let stored = reread(store, &e).await.unwrap();
    assert_eq!(stored.app_attempts, 3);
    assert_eq!(
        stored,
        Enrollment {
            app_attempts: 3,
            ..e.clone()
        }
    );
    // A higher max takes more.
    assert_eq!(store.take_app_attempt(&e, 5, NOW).await.unwrap(), Some(4));
    // A sign-in with an app reads back too, and counts its own attempts.
    let app = bind_app(store, &ns, true, 1, NOW).await;
    let c = app_sign_in(store, &ns, &app, NOW).await;
    assert_eq!(reread(store, &c).await, Some(c.clone()));
    assert_eq!(store.take_app_attempt(&c, 3, NOW).await.unwrap(), Some(1));
    // An expired session takes none; nor a completed one, nor a missing one.
    let late = c.expires_at;
    assert_eq!(store.take_app_attempt(&c, 3, late).await.unwrap(), None);
    assert_eq!(complete(store, &c, 2, NOW).await, AppCompletion::Done);
    assert_eq!(store.take_app_attempt(&c, 3, NOW).await.unwrap(), None);
    let never = Enrollment::begin(
        &ns.app,
        &ns.user,
        SessionKind::AppSignIn(app.authenticator_id.clone()),
        NOW,
        ENROLLMENT_TTL,
    )
    .unwrap();
    assert_eq!(store.take_app_attempt(&never, 3, NOW).await.unwrap(), None);
    assert_eq!(reread(store, &never).await, None);
    // A phone enrollment takes no app attempt.
    let (phone, _) = at_code(store, &ns, SessionKind::Add, &num(1), NOW).await;
    assert_eq!(store.take_app_attempt(&phone, 3, NOW).await.unwrap(), None);
    assert_eq!(reread(store, &phone).await.unwrap().app_attempts, 0);
}

async fn complete_app_binds_the_app(store: &dyn Store) {
    let ns = ns();
    assert_eq!(app(store, &ns).await, None);
    let e = app_setup(store, &ns, true, NOW).await;
    store.take_app_attempt(&e, 5, NOW).await.unwrap();
    let at = NOW.plus_secs(5);
    assert_eq!(complete(store, &e, 0, at).await, AppCompletion::Done);
    let first = bound(&e, at);
    assert_eq!(app(store, &ns).await, Some(first.clone()));
    assert_eq!(reread(store, &e).await.unwrap().step, Step::Complete);
    assert_eq!(
        store.user_overview(ns.owner()).await.unwrap().app,
        Some(first)
    );
    // Another setup (with a step-up) replaces it.
    let again = app_setup(store, &ns, false, NOW.plus_secs(10)).await;
    let at = NOW.plus_secs(40);
    assert_eq!(complete(store, &again, 1, at).await, AppCompletion::Done);
    let second = bound(&again, at);
    assert_eq!(app(store, &ns).await, Some(second.clone()));
    assert_eq!(
        store.user_overview(ns.owner()).await.unwrap().app,
        Some(second)
    );
    // The other user has none.
    assert_eq!(store.get_app(ns.of(&ns.other)).await.unwrap(), None);
}

async fn complete_app_is_single_use(store: &dyn Store) {
    let ns = ns();
    let e = app_setup(store, &ns, true, NOW).await;
    let (a, b) = tokio::join!(
        store.complete_app(app_use(&e, step(0), NOW)),
        store.complete_app(app_use(&e, step(1), NOW)),
    );
    let mut answers = vec![a.unwrap(), b.unwrap()];
    answers.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        answers,
        vec![AppCompletion::Done, AppCompletion::SessionGone]
    );
    assert_eq!(app(store, &ns).await, Some(bound(&e, NOW)));
    // And once more, later.
    assert_eq!(
        complete(store, &e, 2, NOW.plus_secs(60)).await,
        AppCompletion::SessionGone
    );
    // A sign-in too.
    let bound_app = app(store, &ns).await.unwrap();
    let c = app_sign_in(store, &ns, &bound_app, NOW).await;
    let at = NOW.plus_secs(30);
    let (a, b) = tokio::join!(
        store.complete_app(app_use(&c, step(3), at)),
        store.complete_app(app_use(&c, step(4), at)),
    );
    let mut answers = vec![a.unwrap(), b.unwrap()];
    answers.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        answers,
        vec![AppCompletion::Done, AppCompletion::SessionGone]
    );
    // An expired session is gone (and nothing is written).
    let late = app_sign_in(store, &ns, &bound_app, NOW).await;
    assert_eq!(
        complete(store, &late, 5, late.expires_at).await,
        AppCompletion::SessionGone
    );
    assert_eq!(reread(store, &late).await.unwrap().step, Step::Code);
    assert_eq!(app(store, &ns).await.unwrap().last_used_at, Some(at));
    // The step it offered is still free.
    let other = app_sign_in(store, &ns, &bound_app, NOW).await;
    assert_eq!(complete(store, &other, 5, at).await, AppCompletion::Done);
}

async fn a_step_is_used_once_per_user(store: &dyn Store) {
    let ns = ns();
    let app_ = bind_app(store, &ns, true, 0, NOW).await;
    // The setup's step cannot sign in (nothing is written).
    let c = app_sign_in(store, &ns, &app_, NOW).await;
    assert_eq!(complete(store, &c, 0, NOW).await, AppCompletion::StepUsed);
    assert_eq!(reread(store, &c).await.unwrap().step, Step::Code);
    assert_eq!(app(store, &ns).await.unwrap().last_used_at, None);
    assert_eq!(complete(store, &c, 1, NOW).await, AppCompletion::Done);
    // Two sessions completing with the same step: one wins.
    let s1 = app_sign_in(store, &ns, &app_, NOW).await;
    let s2 = app_sign_in(store, &ns, &app_, NOW).await;
    let (a, b) = tokio::join!(
        store.complete_app(app_use(&s1, step(2), NOW)),
        store.complete_app(app_use(&s2, step(2), NOW)),
    );
    let mut answers = vec![a.unwrap(), b.unwrap()];
    answers.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(answers, vec![AppCompletion::Done, AppCompletion::StepUsed]);
    // A sign-in's step cannot set up another app.
    let setup = app_setup(store, &ns, false, NOW).await;
    assert_eq!(
        complete(store, &setup, 1, NOW).await,
        AppCompletion::StepUsed
    );
    assert_eq!(
        app(store, &ns).await.unwrap().authenticator_id,
        app_.authenticator_id
    );
    // Steps are per user: another user may use the same one.
    let other = Ns {
        app: ns.app.clone(),
        user: ns.other.clone(),
        other: ns.user.clone(),
    };
    bind_app(store, &other, true, 0, NOW).await;
}

async fn a_first_setup_completes_only_while_the_user_has_no_factor(store: &dyn Store) {
    let ns = ns();
    // A phone added meanwhile.
    let e = app_setup(store, &ns, true, NOW).await;
    add(store, &ns, &num(1), NOW).await;
    assert_eq!(
        complete(store, &e, 0, NOW).await,
        AppCompletion::FactorsChanged
    );
    assert_eq!(app(store, &ns).await, None);
    assert_eq!(reread(store, &e).await.unwrap().step, Step::Code);
    // Nothing was written: the step is still free, for a setup begun with a step-up.
    bind_app(store, &ns, false, 0, NOW).await;
    // An app bound meanwhile (another first setup).
    let ns = self::ns();
    let e1 = app_setup(store, &ns, true, NOW).await;
    let e2 = app_setup(store, &ns, true, NOW).await;
    assert_eq!(complete(store, &e1, 0, NOW).await, AppCompletion::Done);
    assert_eq!(
        complete(store, &e2, 1, NOW).await,
        AppCompletion::FactorsChanged
    );
    assert_eq!(app(store, &ns).await, Some(bound(&e1, NOW)));
    // Once the last factor is gone, a first setup completes again.
    assert!(
        store
            .remove_app(ns.owner(), &bound(&e1, NOW).authenticator_id, 0)
            .await
            .unwrap()
    );
    assert_eq!(complete(store, &e2, 1, NOW).await, AppCompletion::Done);
    assert_eq!(app(store, &ns).await, Some(bound(&e2, NOW)));
}

async fn an_app_sign_in_completes_only_while_its_app_is_bound(store: &dyn Store) {
    let ns = ns();
    let first = bind_app(store, &ns, true, 0, NOW).await;
    let c = app_sign_in(store, &ns, &first, NOW).await;
    let at = NOW.plus_secs(5);
    assert_eq!(complete(store, &c, 1, at).await, AppCompletion::Done);
    assert_eq!(
        app(store, &ns).await,
        Some(AuthenticatorRecord {
            last_used_at: Some(at),
            ..first.clone()
        })
    );
    // A secret sealed again (a key rotation) is stored with the use.
    let c = app_sign_in(store, &ns, &first, NOW).await;
    let resealed = sealed("resealed");
    let at = NOW.plus_secs(35);
    let used = AppCodeUse {
        reseal: Some(&resealed),
        ..app_use(&c, step(2), at)
    };
    assert_eq!(store.complete_app(used).await.unwrap(), AppCompletion::Done);
    assert_eq!(
        app(store, &ns).await,
        Some(AuthenticatorRecord {
            sealed: resealed,
            last_used_at: Some(at),
            ..first.clone()
        })
    );
    // Replaced meanwhile: the old app's sign-in proves nothing.
    let stale = app_sign_in(store, &ns, &first, NOW).await;
    let second = bind_app(store, &ns, false, 3, NOW.plus_secs(60)).await;
    assert_eq!(
        complete(store, &stale, 4, NOW.plus_secs(60)).await,
        AppCompletion::FactorsChanged
    );
    assert_eq!(app(store, &ns).await, Some(second.clone()));
    assert_eq!(reread(store, &stale).await.unwrap().step, Step::Code);
    // Removed meanwhile.
    let stale = app_sign_in(store, &ns, &second, NOW).await;
    assert!(drop_app(store, &ns, &second.authenticator_id, 0).await);
    assert_eq!(
        complete(store, &stale, 5, NOW.plus_secs(60)).await,
        AppCompletion::FactorsChanged
    );
    assert_eq!(app(store, &ns).await, None);
}

async fn remove_app_releases_the_app_and_the_last_factor_takes_the_recovery_codes(
    store: &dyn Store,
) {
    // With a phone: the codes stay.
    let ns = ns();
    add(store, &ns, &num(1), NOW).await;
    let a = bind_app(store, &ns, false, 0, NOW).await;
    assert!(
        store
            .replace_recovery_codes(ns.owner(), &hashes("keep", 3), NOW)
            .await
            .unwrap()
    );
    assert!(drop_app(store, &ns, &a.authenticator_id, 1).await);
    assert_eq!(app(store, &ns).await, None);
    assert_eq!(count_codes(store, &ns).await, 3);
    assert_eq!(phones(store, &ns).await.len(), 1);
    // The last factor: the codes go with it, for good.
    let ns = self::ns();
    let a = bind_app(store, &ns, true, 0, NOW).await;
    let codes = hashes("gone", 3);
    assert!(set_codes(store, &ns, &codes).await);
    assert!(drop_app(store, &ns, &a.authenticator_id, 0).await);
    assert_eq!(app(store, &ns).await, None);
    assert_eq!(count_codes(store, &ns).await, 0);
    assert!(
        !store
            .consume_recovery_code(ns.owner(), &codes[0])
            .await
            .unwrap()
    );
    bind_app(store, &ns, true, 1, NOW).await;
    assert_eq!(count_codes(store, &ns).await, 0);
    assert!(
        !store
            .consume_recovery_code(ns.owner(), &codes[1])
            .await
            .unwrap()
    );
}

async fn remove_app_refuses_when_the_factors_changed(store: &dyn Store) {
    let ns = ns();
    let a = bind_app(store, &ns, true, 0, NOW).await;
    store
        .replace_recovery_codes(ns.owner(), &hashes("r", 2), NOW)
        .await
        .unwrap();
    // A phone was added since the flow looked: not the last factor any more.
    add_beside_app(store, &ns, &num(1), NOW).await;
    let id = &a.authenticator_id;
    assert!(!drop_app(store, &ns, id, 0).await);
    assert!(!drop_app(store, &ns, id, 2).await);
    // An unknown app, or another user's.
    let unknown = AuthenticatorId::generate().unwrap();
    assert!(!drop_app(store, &ns, &unknown, 1).await);
    assert!(!store.remove_app(ns.of(&ns.other), id, 0).await.unwrap());
    // Replaced since: the old one is not removed.
    let b = bind_app(store, &ns, false, 1, NOW).await;
    assert!(!drop_app(store, &ns, id, 1).await);
    assert_eq!(app(store, &ns).await, Some(b.clone()));
    assert_eq!(count_codes(store, &ns).await, 2);
    assert!(drop_app(store, &ns, &b.authenticator_id, 1).await);
    assert_eq!(count_codes(store, &ns).await, 2);
}

/// Adds a phone to a user who has an app but no phone (an add from settings, the phone
/// primary): an Enroll would be refused.
async fn add_beside_app(
    store: &dyn Store,
    ns: &Ns,
    number: &PhoneNumber,
    at: UnixTime,
) -> PhoneRecord {
    let seen = phones(store, ns).await.len() as u32;
    let (e, code_id) = at_code(store, ns, SessionKind::Add, number, at).await;
    let phone = new_phone(number, seen == 0, at);
    let change = PhoneChange::Add {
        phone: phone.clone(),
        number_tag: tag(&phone.number),
        seen_count: seen,
        app_seen: app(store, ns).await.is_some(),
    };
    assert_eq!(
        store
            .complete_enrollment(e.code_use(&code_id, at), &change)
            .await
            .unwrap(),
        Completion::Done
    );
    phone
}

async fn a_phone_removal_counts_the_app(store: &dyn Store) {
    let ns = ns();
    let p = add(store, &ns, &num(1), NOW).await;
    let a = bind_app(store, &ns, false, 0, NOW).await;
    store
        .replace_recovery_codes(ns.owner(), &hashes("r", 3), NOW)
        .await
        .unwrap();
    // Seen without the app: refused (the app was bound since).
    let stale = removal(store, &ns, &p, None).await;
    assert!(stale.is_last());
    assert!(!store.remove_phone(ns.owner(), &stale).await.unwrap());
    // The last phone, beside the app: not the last factor, the codes stay.
    let r = Removal {
        app_seen: true,
        ..removal(store, &ns, &p, None).await
    };
    assert!(r.is_last_phone() && !r.is_last());
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert!(phones(store, &ns).await.is_empty());
    assert_eq!(count_codes(store, &ns).await, 3);
    assert_eq!(app(store, &ns).await, Some(a.clone()));
    // The app removed since the flow looked: the removal is refused.
    let p = add_beside_app(store, &ns, &num(2), NOW).await;
    let stale = Removal {
        app_seen: true,
        ..removal(store, &ns, &p, None).await
    };
    assert!(drop_app(store, &ns, &a.authenticator_id, 1).await);
    assert_eq!(count_codes(store, &ns).await, 3);
    assert!(!store.remove_phone(ns.owner(), &stale).await.unwrap());
    assert_eq!(count_codes(store, &ns).await, 3);
    // Now it is the last factor: the codes go.
    let r = removal(store, &ns, &p, None).await;
    assert!(r.is_last());
    assert!(store.remove_phone(ns.owner(), &r).await.unwrap());
    assert_eq!(count_codes(store, &ns).await, 0);
}

async fn reset_user_removes_the_app_too(store: &dyn Store) {
    let ns = ns();
    let p = add(store, &ns, &num(1), NOW).await;
    let a = bind_app(store, &ns, false, 0, NOW).await;
    store
        .replace_recovery_codes(ns.owner(), &hashes("r", 2), NOW)
        .await
        .unwrap();
    let pending = app_sign_in(store, &ns, &a, NOW).await;
    let removed = store.reset_user(ns.owner()).await.unwrap();
    assert_eq!(removed.phones, vec![p]);
    assert_eq!(removed.app, Some(a));
    assert_eq!(app(store, &ns).await, None);
    assert_eq!(reread(store, &pending).await, None);
    assert_eq!(count_codes(store, &ns).await, 0);
    assert_eq!(store.user_overview(ns.owner()).await.unwrap().app, None);
    // The user sets up as new.
    let again = bind_app(store, &ns, true, 1, NOW).await;
    // A user with only an app.
    let removed = store.reset_user(ns.owner()).await.unwrap();
    assert!(removed.phones.is_empty());
    assert_eq!(removed.app, Some(again));
    assert_eq!(app(store, &ns).await, None);
    assert_eq!(
        store.reset_user(ns.owner()).await.unwrap(),
        Default::default()
    );
}
