#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile input: every route that reads a body, driven through `dispatch` with API Gateway
//! HTTP API (v2) events (as `handlers.rs` does) carrying arbitrary bytes, arbitrary JSON and a
//! table of named hostile cases; and the parsers underneath (phone numbers, codes, ids, paths)
//! on arbitrary strings.
//!
//! What every answer must be: no panic, no 5xx, the contract's JSON error shape with one of the
//! route's contract codes, and, for input the contract calls malformed, `400 invalid_request`
//! naming the offending field (`413 payload_too_large` over 16 KiB) with nothing changed: no
//! text, no email, no audit entry, no attempt counted.

use std::sync::{Arc, OnceLock};

use mfa_shared::Service;
use mfa_shared::adapters::console::ConsoleOutbox;
use mfa_shared::config::{Limits, Settings};
use mfa_shared::flows::{Caller, challenge, enrollment, phones, policy, recovery, totp, users};
use mfa_shared::http::routes::{self, Function};
use mfa_shared::ports::{
    AuditQuery, AuthenticatorRecord, Enrollment, FixedClock, PhoneRecord, UserRecord,
};
use mfa_shared::totp::{TotpSecret, step_at};
use mfa_shared::types::ids::{ChallengeId, CodeId, SessionId};
use mfa_shared::types::phone::PhoneError;
use mfa_shared::types::{
    AppId, Code, Enforcement, EnrollmentId, Factor, Owner, PhoneId, PhoneNumber, Policy, UnixTime,
    UserId,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use crate::kit::apigw::{
    self, ADA, ADMIN_FIXTURE, APP, Answer, BOB, T0, USER_FIXTURE, call, fixture, with_body,
};
use crate::kit::hash;

// In this suite's world (kit's APP at kit's T0): ADA is enrolled (one phone), with recovery
// codes, a pending add-phone enrollment and a challenge; BOB is provisioned, email verified,
// not enrolled: Start and Skip act on him.
/// Not provisioned: the admin `PUT .../users/{user_id}` would create her.
const CAROL: &str = "user-carol";
/// The source IP of the user fixture.
const SOURCE_IP: &str = "203.0.113.24";
const ADA_PHONE: &str = "+14155550123";
const ADDED_PHONE: &str = "+14155550188";
const MAX_BODY: usize = 16 * 1024;

// ---------------------------------------------------------------- the contract's errors

/// Every error code of the contract with its status (the contract's tables and lists; the
/// README's choices add `conflict`). An answer outside this table is a bug.
const CONTRACT_ERRORS: &[(&str, u16)] = &[
    ("invalid_request", 400),
    ("invalid_phone_number", 400),
    ("invalid_code", 400),
    ("unauthenticated", 401),
    ("invalid_password", 401),
    ("mfa_not_available", 403),
    ("factor_not_allowed", 403),
    ("mfa_disabled", 403),
    ("enrollment_required", 403),
    ("step_up_required", 403),
    ("enrollment_not_found", 404),
    ("phone_not_found", 404),
    ("challenge_not_found", 404),
    ("totp_not_found", 404),
    ("email_not_verified", 409),
    ("already_enrolled", 409),
    ("phone_already_enrolled", 409),
    ("wrong_step", 409),
    ("too_many_phones", 409),
    ("last_phone_required", 409),
    ("last_factor_required", 409),
    ("not_enrolled", 409),
    ("conflict", 409),
    ("code_expired", 410),
    ("version_conflict", 412),
    ("payload_too_large", 413),
    ("country_not_allowed", 422),
    ("unsupported_number_type", 422),
    ("too_many_attempts", 429),
    ("rate_limited", 429),
    ("resend_too_soon", 429),
    ("send_limit_reached", 429),
];

/// Any route may refuse a body as malformed or too large.
const BODY_ERRORS: &[&str] = &["invalid_request", "payload_too_large"];

// ---------------------------------------------------------------- the world

fn caller(user: &str) -> Caller {
    Caller {
        app: AppId::parse(APP).unwrap(),
        user: UserId::parse(user).unwrap(),
        source_ip: SOURCE_IP.into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One deployment on the memory store, with something for every body route to act on.
struct World {
    svc: Service,
    outbox: ConsoleOutbox,
    /// Ada's (primary) phone.
    phone: PhoneId,
    /// Ada's add-phone enrollment, at the code step, and its code.
    add: EnrollmentId,
    add_code: String,
    /// Ada's sign-in challenge and its code.
    challenge: ChallengeId,
    challenge_code: String,
    /// Ada's recovery codes.
    recovery: Vec<String>,
}

impl World {
    async fn new(limits: Limits) -> World {
        let clock = Arc::new(FixedClock::at(T0));
        let (mut svc, outbox) =
            Service::in_memory(limits, Settings::default(), clock.clone()).unwrap();
        // One fixed key, so that Ada's step-up proof (`ada_proof`) is valid in every world.
        let keys = signing_keys();
        svc.assertion_keys = Arc::new(mfa_shared::adapters::jwks::AssertionKeys::new(
            keys.public_keys(),
            None,
        ));
        svc.signing = Some(keys);
        let app = AppId::parse(APP).unwrap();
        policy::set_availability(&svc, &app, true, "operator")
            .await
            .unwrap();
        let change = policy::PolicyChange {
            enabled: true,
            include_in_signup: true,
            enforcement: Enforcement::Optional,
            allowed_countries: None,
            factors: Some(vec![Factor::Sms, Factor::Totp]),
            display_name: None,
            webotp_domain: None,
            grace_period_days: None,
        };
        policy::update(&svc, &app, change, None, "admin")
            .await
            .unwrap();
        for user in [ADA, BOB] {
            let email = format!("{user}@example.com");
            let user = UserId::parse(user).unwrap();
            users::put(&svc, &app, &user, email, true, hash("pw"), None)
                .await
                .unwrap();
        }
        let last_code = || outbox.snapshot().sms.last().unwrap().body[..6].to_owned();
        let ada = caller(ADA);
        let e = enrollment::start(&svc, &ada, "pw".into())
            .await
            .unwrap()
            .enrollment_id;
        let number = PhoneNumber::parse(ADA_PHONE).unwrap();
        enrollment::submit_phone(&svc, &ada, &e, number, None)
            .await
            .unwrap();
        let code = Code::parse(&last_code()).unwrap();
        enrollment::verify(&svc, &ada, &e, code).await.unwrap();
        let phone = svc
            .store
            .list_phones(Owner::new(&ada.app, &ada.user))
            .await
            .unwrap()[0]
            .phone_id
            .clone();
        // Ada's authenticator app, set up with its code (the step-up a routes' request needs is
        // in every event of hers; the flow itself is called here).
        let started = totp::begin(&svc, &ada, "pw".into(), None).await.unwrap();
        let secret = TotpSecret::from_bytes(
            &data_encoding::BASE32_NOPAD
                .decode(started.secret.as_bytes())
                .unwrap(),
        )
        .unwrap();
        let app_code = secret.code_at_step(step_at(svc.clock.now()));
        enrollment::verify_code(&svc, &ada, &started.enrollment_id, app_code)
            .await
            .unwrap();
        let recovery = recovery::create(&svc, &ada, "pw".into())
            .await
            .unwrap()
            .codes;
        let number = PhoneNumber::parse(ADDED_PHONE).unwrap();
        let add = phones::add(&svc, &ada, "pw".into(), number, None)
            .await
            .unwrap()
            .enrollment_id
            .unwrap();
        let add_code = last_code();
        let challenge = challenge::start(&svc, &ada, None)
            .await
            .unwrap()
            .challenge_id;
        let challenge_code = last_code();
        // Past the resend cooldown: a resend would act now.
        clock.advance(31);
        World {
            svc,
            outbox,
            phone,
            add,
            add_code,
            challenge,
            challenge_code,
            recovery,
        }
    }

    /// Limits that no fuzzing run reaches, so that random requests keep reaching the parsers
    /// and the flows behind them rather than a lockout.
    async fn roomy() -> World {
        World::new(Limits {
            password_max_attempts: 1_000_000,
            code_max_attempts: 1_000_000,
            code_failures_per_user_per_hour: 1_000_000,
            max_sends_per_enrollment: 1_000_000,
            texts_per_user_per_day: 1_000_000,
            texts_per_number_per_hour: 1_000_000,
            texts_per_ip_per_hour: 1_000_000,
            ..Limits::default()
        })
        .await
    }

    /// Everything a request could change: the stored records the routes touch, the outbox (a
    /// text or an email) and the audit log. Counters show through `attempts_remaining`, which
    /// `named_hostile_bodies_are_refused_and_change_nothing` checks at the end.
    async fn snapshot(&self) -> Snapshot {
        let s = &self.svc.store;
        let app = AppId::parse(APP).unwrap();
        let ada = UserId::parse(ADA).unwrap();
        let mut users = Vec::new();
        let mut skips = Vec::new();
        let mut phones = Vec::new();
        let mut apps = Vec::new();
        for u in [ADA, BOB, CAROL] {
            let u = UserId::parse(u).unwrap();
            apps.push(s.get_app(Owner::new(&app, &u)).await.unwrap());
            users.push(s.get_user(Owner::new(&app, &u)).await.unwrap());
            skips.push(s.get_skip(Owner::new(&app, &u)).await.unwrap());
            phones.push(s.list_phones(Owner::new(&app, &u)).await.unwrap());
        }
        let enrollments = vec![
            s.get_enrollment(
                Owner {
                    app: &app,
                    user: &ada,
                },
                &self.add.clone().into(),
            )
            .await
            .unwrap(),
            s.get_enrollment(
                Owner {
                    app: &app,
                    user: &ada,
                },
                &self.challenge.clone().into(),
            )
            .await
            .unwrap(),
        ];
        let mut audit = 0;
        let mut after: Option<String> = None;
        loop {
            let page = s
                .list_audit(&AuditQuery {
                    app: &app,
                    user: None,
                    limit: 100,
                    after: after.as_deref(),
                    now: UnixTime(0),
                })
                .await
                .unwrap();
            audit += page.events.len();
            match page.next_after {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let outbox = self.outbox.snapshot();
        Snapshot {
            policy: s.get_policy(&app).await.unwrap(),
            apps,
            users,
            skips,
            phones,
            enrollments,
            recovery_codes: s
                .count_recovery_codes(Owner::new(&app, &ada))
                .await
                .unwrap(),
            audit,
            texts: outbox.sms.len(),
            emails: outbox.email.len(),
        }
    }

    /// Every body-reading route, with a well-formed body that would act (see
    /// `the_good_bodies_act`) and the errors the contract gives it.
    fn routes(&self) -> Vec<Route> {
        use Function::*;
        use Kind::*;
        let enr = |step: &str| format!("/v1/mfa/enrollments/{}/{step}", self.add.as_str());
        let chl = |step: &str| format!("/v1/mfa/challenges/{}/{step}", self.challenge.as_str());
        let phone = format!("/v1/mfa/phones/{}", self.phone.as_str());
        let pw = ("password", Password, true);
        vec![
            Route {
                template: "PUT /v1/admin/applications/{app_id}/mfa-policy",
                path: format!("/v1/admin/applications/{APP}/mfa-policy"),
                function: PolicyConfig,
                who: Who::Admin,
                fields: vec![
                    ("enabled", Bool, true),
                    ("include_in_signup", Bool, true),
                    ("enforcement", Enforcement, true),
                    ("allowed_countries", Countries, false),
                    ("factors", Factors, false),
                    ("display_name", DisplayName, false),
                    ("webotp_domain", Domain, false),
                    ("grace_period_days", GraceDays, false),
                ],
                good: json!({"enabled": true, "include_in_signup": true,
                             "enforcement": "required", "allowed_countries": ["US", "GB"],
                             "factors": ["totp", "sms"], "display_name": "Acme Travel",
                             "webotp_domain": "login.acme.example", "grace_period_days": 14}),
                empty_ok: false,
                errors: &["mfa_not_available", "version_conflict"],
            },
            Route {
                template: "PUT /v1/admin/applications/{app_id}/mfa-availability",
                path: format!("/v1/admin/applications/{APP}/mfa-availability"),
                function: PolicyConfig,
                who: Who::Admin,
                fields: vec![("available", Bool, true)],
                good: json!({"available": false}),
                empty_ok: false,
                errors: &[],
            },
            Route {
                template: "PUT /v1/admin/applications/{app_id}/users/{user_id}",
                path: format!("/v1/admin/applications/{APP}/users/{CAROL}"),
                function: PolicyConfig,
                who: Who::Admin,
                fields: vec![
                    ("email", Email, true),
                    ("email_verified", Bool, true),
                    ("password_hash", Hash, true),
                    ("locale", LocaleTag, false),
                ],
                good: json!({"email": "carol@example.com", "email_verified": true,
                             "password_hash": hash("pw"), "locale": "pt-BR"}),
                empty_ok: false,
                errors: &[],
            },
            Route {
                template: "POST /v1/mfa/skip",
                path: "/v1/mfa/skip".into(),
                function: EnrollmentStart,
                who: Who::User(BOB),
                fields: vec![],
                good: json!({}),
                empty_ok: true,
                errors: &["enrollment_required", "mfa_disabled", "already_enrolled"],
            },
            Route {
                template: "POST /v1/mfa/enrollments",
                path: "/v1/mfa/enrollments".into(),
                function: EnrollmentStart,
                who: Who::User(BOB),
                fields: vec![pw],
                good: json!({"password": "pw"}),
                empty_ok: false,
                errors: &[
                    "invalid_password",
                    "too_many_attempts",
                    "mfa_disabled",
                    "email_not_verified",
                    "already_enrolled",
                ],
            },
            Route {
                template: "POST /v1/mfa/enrollments/{enrollment_id}/phone",
                path: enr("phone"),
                function: PhoneSubmit,
                who: Who::User(ADA),
                fields: vec![("phone_number", Phone, true), ("label", Label, false)],
                good: json!({"phone_number": "+1 415 555 0177", "label": "Work"}),
                empty_ok: false,
                errors: &[
                    "invalid_phone_number",
                    "country_not_allowed",
                    "unsupported_number_type",
                    "phone_already_enrolled",
                    "enrollment_not_found",
                    "wrong_step",
                    "rate_limited",
                    "resend_too_soon",
                    "send_limit_reached",
                ],
            },
            Route {
                template: "POST /v1/mfa/enrollments/{enrollment_id}/code",
                path: enr("code"),
                function: CodeVerify,
                who: Who::User(ADA),
                fields: vec![("code", Code6, true)],
                good: json!({"code": self.add_code}),
                empty_ok: false,
                errors: &[
                    "invalid_code",
                    "code_expired",
                    "too_many_attempts",
                    "enrollment_not_found",
                    "wrong_step",
                ],
            },
            Route {
                template: "POST /v1/mfa/enrollments/{enrollment_id}/resend",
                path: enr("resend"),
                function: CodeVerify,
                who: Who::User(ADA),
                fields: vec![],
                good: json!({}),
                empty_ok: true,
                errors: &[
                    "resend_too_soon",
                    "send_limit_reached",
                    "rate_limited",
                    "wrong_step",
                    "enrollment_not_found",
                ],
            },
            Route {
                template: "POST /v1/mfa/phones",
                path: "/v1/mfa/phones".into(),
                function: PhoneEdits,
                who: Who::User(ADA),
                fields: vec![pw, ("phone_number", Phone, true), ("label", Label, false)],
                good: json!({"password": "pw", "phone_number": "+1 415 555 0166",
                             "label": "Spare"}),
                empty_ok: false,
                errors: &[
                    "invalid_password",
                    "too_many_attempts",
                    "invalid_phone_number",
                    "country_not_allowed",
                    "unsupported_number_type",
                    "phone_already_enrolled",
                    "too_many_phones",
                    "rate_limited",
                    "mfa_disabled",
                    "email_not_verified",
                ],
            },
            Route {
                template: "PUT /v1/mfa/phones/{phone_id}",
                path: phone.clone(),
                function: PhoneEdits,
                who: Who::User(ADA),
                fields: vec![pw, ("phone_number", Phone, true)],
                good: json!({"password": "pw", "phone_number": "+1 415 555 0155"}),
                empty_ok: false,
                errors: &[
                    "invalid_password",
                    "too_many_attempts",
                    "invalid_phone_number",
                    "country_not_allowed",
                    "unsupported_number_type",
                    "phone_already_enrolled",
                    "phone_not_found",
                    "rate_limited",
                    "mfa_disabled",
                    "email_not_verified",
                ],
            },
            Route {
                template: "PATCH /v1/mfa/phones/{phone_id}",
                path: phone.clone(),
                function: PhoneEdits,
                who: Who::User(ADA),
                fields: vec![("label", Label, false), ("primary", TrueOnly, false)],
                good: json!({"label": "Renamed", "primary": true}),
                empty_ok: false,
                errors: &["phone_not_found"],
            },
            Route {
                template: "DELETE /v1/mfa/phones/{phone_id}",
                path: phone,
                function: PhoneEdits,
                who: Who::User(ADA),
                fields: vec![pw],
                good: json!({"password": "pw"}),
                empty_ok: false,
                errors: &[
                    "invalid_password",
                    "too_many_attempts",
                    "phone_not_found",
                    "last_phone_required",
                ],
            },
            Route {
                template: "POST /v1/mfa/totp",
                path: "/v1/mfa/totp".into(),
                function: PhoneEdits,
                who: Who::User(ADA),
                fields: vec![pw, ("label", Label, false)],
                good: json!({"password": "pw", "label": "Tablet"}),
                empty_ok: false,
                errors: &[
                    "invalid_password",
                    "too_many_attempts",
                    "mfa_disabled",
                    "email_not_verified",
                    "factor_not_allowed",
                ],
            },
            Route {
                template: "DELETE /v1/mfa/totp",
                path: "/v1/mfa/totp".into(),
                function: PhoneEdits,
                who: Who::User(ADA),
                fields: vec![pw],
                good: json!({"password": "pw"}),
                empty_ok: false,
                errors: &[
                    "invalid_password",
                    "too_many_attempts",
                    "totp_not_found",
                    "last_factor_required",
                ],
            },
            Route {
                template: "POST /v1/mfa/challenges",
                path: "/v1/mfa/challenges".into(),
                function: Function::Challenge,
                who: Who::User(ADA),
                fields: vec![("phone_id", PhoneRef, false), ("factor", FactorName, false)],
                good: json!({"phone_id": self.phone.as_str(), "factor": "sms"}),
                empty_ok: true,
                errors: &[
                    "factor_not_allowed",
                    "not_enrolled",
                    "phone_not_found",
                    "rate_limited",
                    "resend_too_soon",
                    "send_limit_reached",
                ],
            },
            Route {
                template: "POST /v1/mfa/challenges/{challenge_id}/code",
                path: chl("code"),
                function: Function::Challenge,
                who: Who::User(ADA),
                fields: vec![("code", Code6, true)],
                good: json!({"code": self.challenge_code}),
                empty_ok: false,
                errors: &[
                    "invalid_code",
                    "code_expired",
                    "too_many_attempts",
                    "challenge_not_found",
                    "wrong_step",
                ],
            },
            Route {
                template: "POST /v1/mfa/challenges/{challenge_id}/resend",
                path: chl("resend"),
                function: Function::Challenge,
                who: Who::User(ADA),
                fields: vec![],
                good: json!({}),
                empty_ok: true,
                errors: &[
                    "resend_too_soon",
                    "send_limit_reached",
                    "rate_limited",
                    "wrong_step",
                    "challenge_not_found",
                ],
            },
            Route {
                template: "POST /v1/mfa/challenges/recovery",
                path: "/v1/mfa/challenges/recovery".into(),
                function: Function::Challenge,
                who: Who::User(ADA),
                fields: vec![("code", Recovery, true)],
                good: json!({"code": self.recovery[0]}),
                empty_ok: false,
                errors: &["invalid_code", "too_many_attempts", "not_enrolled"],
            },
            Route {
                template: "POST /v1/mfa/recovery-codes",
                path: "/v1/mfa/recovery-codes".into(),
                function: Function::Challenge,
                who: Who::User(ADA),
                fields: vec![pw],
                good: json!({"password": "pw"}),
                empty_ok: false,
                errors: &["invalid_password", "too_many_attempts", "not_enrolled"],
            },
        ]
    }

    fn route(&self, template: &str) -> Route {
        self.routes()
            .into_iter()
            .find(|r| r.template == template)
            .unwrap_or_else(|| panic!("no route {template}"))
    }
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    policy: Option<Policy>,
    apps: Vec<Option<AuthenticatorRecord>>,
    users: Vec<Option<UserRecord>>,
    skips: Vec<Option<UnixTime>>,
    phones: Vec<Vec<PhoneRecord>>,
    enrollments: Vec<Option<Enrollment>>,
    recovery_codes: u32,
    audit: usize,
    texts: usize,
    emails: usize,
}

// ---------------------------------------------------------------- routes and requests

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Admin,
    User(&'static str),
}

/// What a body field holds, for the hostile values each kind gets.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Password,
    Phone,
    Label,
    /// Exactly six ASCII digits.
    Code6,
    /// A recovery code (`XXXXX-XXXXX`, dashes, spaces and case ignored).
    Recovery,
    Bool,
    /// `primary`: only `true` (or absent).
    TrueOnly,
    Enforcement,
    Countries,
    Email,
    Hash,
    /// `phone_id` of a challenge.
    PhoneRef,
    /// The policy's `factors`: a list of `"sms"` and `"totp"`.
    Factors,
    /// A challenge's `factor`: `"sms"` or `"totp"`.
    FactorName,
    /// The policy's `display_name`: 1-30 characters on one line (`null` resets it).
    DisplayName,
    /// The policy's `webotp_domain`: a host name (`null` clears it).
    Domain,
    /// A user's `locale`: a BCP 47 tag (`null`: none).
    LocaleTag,
    /// The policy's `grace_period_days`: a whole number from 0 to 90 (`null` refused).
    GraceDays,
}

impl Kind {
    /// Whether `v` has the JSON type the field takes (`null` counts as absent where the
    /// field is optional).
    fn type_ok(self, v: &Value) -> bool {
        use Kind::*;
        match self {
            Password | Phone | Code6 | Recovery | Enforcement | Email | Hash | FactorName => {
                v.is_string()
            }
            Factors => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Label | PhoneRef | DisplayName | Domain | LocaleTag => v.is_string() || v.is_null(),
            Bool => v.is_boolean(),
            // Out of range is as wrong as another type: the parser refuses both alike.
            GraceDays => v.as_u64().is_some_and(|d| d <= 90),
            TrueOnly => v.is_boolean() || v.is_null(),
            Countries => {
                v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            }
        }
    }
}

struct Route {
    /// `METHOD template`, as in `routes::ROUTES`.
    template: &'static str,
    path: String,
    function: Function,
    who: Who,
    /// `(name, kind, required)`.
    fields: Vec<(&'static str, Kind, bool)>,
    /// A well-formed body that acts: the hostile cases are built around it.
    good: Value,
    /// The route also takes no body at all.
    empty_ok: bool,
    /// The contract's errors of this route, besides [`BODY_ERRORS`].
    errors: &'static [&'static str],
}

impl Route {
    fn method(&self) -> &str {
        self.template.split(' ').next().unwrap()
    }

    fn field_names(&self) -> Vec<&'static str> {
        self.fields.iter().map(|f| f.0).collect()
    }

    /// Whether `code` is one of the errors this route may answer.
    fn allows(&self, code: &str) -> bool {
        BODY_ERRORS.contains(&code) || self.errors.contains(&code)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ContentType {
    /// The fixture's `application/json`.
    Json,
    Missing,
    Is(String),
}

/// One request body with its `Content-Type`, as a client could send it.
#[derive(Clone)]
struct Req {
    body: Vec<u8>,
    content_type: ContentType,
    /// Deliver the body base64-encoded (API Gateway does so for binary bodies).
    base64: bool,
}

impl Req {
    fn json(body: impl Into<Vec<u8>>) -> Req {
        Req {
            body: body.into(),
            content_type: ContentType::Json,
            base64: false,
        }
    }
}

impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.body);
        let shown: String = text.chars().take(300).collect();
        let ct = match &self.content_type {
            ContentType::Json => "application/json".to_owned(),
            ContentType::Missing => "(none)".to_owned(),
            ContentType::Is(s) => s.clone(),
        };
        write!(
            f,
            "Req {{ {} bytes{}, content-type {ct:?}, body {shown:?}{} }}",
            self.body.len(),
            if self.base64 { " base64" } else { "" },
            if text.chars().count() > 300 {
                "…"
            } else {
                ""
            },
        )
    }
}

fn signing_keys() -> mfa_shared::signing::SigningKeys {
    mfa_shared::signing::SigningKeys::from_secret(&"hostile-input-test-key-".repeat(3)).unwrap()
}

/// Ada's step-up proof (an SMS assertion valid long past the tests' clock): every request of
/// hers carries it, so that the routes that need one reach their parsers and flows.
fn ada_proof() -> &'static str {
    static PROOF: OnceLock<String> = OnceLock::new();
    PROOF.get_or_init(|| {
        let claims = json!({ "iss": "mfa", "sub": ADA, "app_id": APP, "amr": ["sms"],
                             "iat": T0, "exp": T0 + 10_000_000, "jti": "00" });
        signing_keys().sign(&claims).unwrap()
    })
}

/// The API Gateway v2 event of `req` on `route`, with a valid authorizer context (and Ada's
/// step-up proof on her requests).
fn event(route: &Route, req: &Req) -> Value {
    let ev = match route.who {
        Who::Admin => fixture(ADMIN_FIXTURE),
        Who::User(sub) => {
            let mut ev = fixture(USER_FIXTURE);
            ev["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
            if sub == ADA {
                ev["headers"]["mfa-assertion"] = json!(ada_proof());
            }
            ev
        }
    };
    let mut ev = with_body(
        apigw::route(ev, route.method(), &route.path),
        &req.body,
        req.base64,
    );
    match &req.content_type {
        ContentType::Json => ev["headers"]["content-type"] = json!("application/json"),
        ContentType::Missing => {
            ev["headers"]
                .as_object_mut()
                .unwrap()
                .remove("content-type");
        }
        ContentType::Is(ct) => ev["headers"]["content-type"] = json!(ct),
    }
    ev
}

/// Runs `req` through the route's function on its own task, so that a panic is reported
/// with the input instead of tearing the test down.
async fn send(svc: &Service, route: &Route, req: &Req) -> Result<Answer, String> {
    call(route.function, svc, &event(route, req)).await
}

/// What every answer of a body route must be, whatever the body: below 500, JSON with
/// `no-store`, and an error in the contract's shape with one of the route's codes, at the
/// contract's status.
fn check_shape(route: &Route, a: &Answer) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{} → {why}: {}", route.template, a.text));
    if a.status >= 500 {
        return fail(&format!("status {}", a.status));
    }
    let header = |n: &str| a.headers.get(n).and_then(|v| v.to_str().ok());
    if header("cache-control") != Some("no-store") {
        return fail("no Cache-Control: no-store");
    }
    if a.status == 204 {
        return if a.text.is_empty() {
            Ok(())
        } else {
            fail("204 with a body")
        };
    }
    if header("content-type") != Some("application/json") {
        return fail("not application/json");
    }
    if a.status < 400 {
        return if a.json.is_object() {
            Ok(())
        } else {
            fail("not a JSON object")
        };
    }
    let Some(obj) = a.json.as_object() else {
        return fail("error not an object");
    };
    let extra = ["error", "message", "attempts_remaining", "retry_after"];
    if let Some(k) = obj.keys().find(|k| !extra.contains(&k.as_str())) {
        return fail(&format!("unexpected key {k:?}"));
    }
    let code = a.code();
    let Some(&(_, status)) = CONTRACT_ERRORS.iter().find(|(c, _)| *c == code) else {
        return fail(&format!("{code:?} is not a contract error code"));
    };
    if status != a.status {
        return fail(&format!("{code} at {} (the contract: {status})", a.status));
    }
    if !route.allows(code) {
        return fail(&format!("{code} is not among this route's errors"));
    }
    if a.message().trim().is_empty() {
        return fail("empty message");
    }
    if a.message().contains(" at line ") {
        return fail("the message carries the parser's position");
    }
    if a.status == 429 {
        let h: Option<u64> = header("retry-after").and_then(|v| v.parse().ok());
        if h.is_none_or(|h| h < 1) || a.json["retry_after"].as_u64() != h {
            return fail("429 without a matching Retry-After");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- what the contract expects

/// JSON's own whitespace (RFC 8259): a body of nothing else is no body.
fn json_blank(body: &[u8]) -> bool {
    body.iter().all(|b| b" \t\n\r".contains(b))
}

fn content_type_is_json(ct: &ContentType) -> bool {
    match ct {
        ContentType::Json => true,
        ContentType::Missing => false,
        ContentType::Is(s) => {
            let essence = s.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
        }
    }
}

/// What the contract says of a body, when it says enough to predict the answer.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// `400 invalid_request` whose message names one of these (any of them will do), and
    /// nothing changed. Empty: no particular name.
    Invalid(Vec<String>),
    /// `413 payload_too_large`, nothing changed.
    TooLarge,
    /// This error exactly, nothing changed.
    Refused(u16, &'static str),
    /// Any of the route's answers (the body is well-formed; the flow decides).
    Any,
}

fn invalid<S: AsRef<str>>(names: &[S]) -> Expect {
    Expect::Invalid(names.iter().map(|s| s.as_ref().to_owned()).collect())
}

/// The oracle: what the contract predicts for `req` on `route`, from the body alone.
fn expected(route: &Route, req: &Req) -> Expect {
    if req.body.len() > MAX_BODY {
        return Expect::TooLarge;
    }
    if json_blank(&req.body) {
        return if route.empty_ok {
            Expect::Any
        } else {
            invalid::<&str>(&[])
        };
    }
    if !content_type_is_json(&req.content_type) {
        return invalid(&["application/json"]);
    }
    let Ok(value) = serde_json::from_slice::<Value>(&req.body) else {
        return invalid::<&str>(&[]);
    };
    let Some(obj) = value.as_object() else {
        return invalid::<&str>(&[]);
    };
    let names = route.field_names();
    let unknown: Vec<&String> = obj
        .keys()
        .filter(|k| !names.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        let mut named: Vec<String> = unknown.iter().map(|k| k.to_string()).collect();
        named.extend(names.iter().map(|n| n.to_string()));
        return Expect::Invalid(named);
    }
    let offending: Vec<&str> = route
        .fields
        .iter()
        .filter(|(name, kind, required)| match obj.get(*name) {
            None => *required,
            Some(v) => !kind.type_ok(v),
        })
        .map(|f| f.0)
        .collect();
    if !offending.is_empty() {
        return invalid(&offending);
    }
    // Well-formed: the field parsers the contract spells out.
    if let [("code", Kind::Code6, _)] = route.fields.as_slice() {
        let code = obj["code"].as_str().unwrap_or_default();
        if Code::parse(code).is_err() {
            return invalid(&["code"]);
        }
    }
    if let Some(Value::String(n)) = obj.get("phone_number")
        && let Err(e) = PhoneNumber::parse(n)
    {
        // A number that is not one: refused before the password or the label is looked at.
        return match e {
            PhoneError::Invalid(_) => Expect::Refused(400, "invalid_phone_number"),
            PhoneError::UnsupportedType(_) => Expect::Refused(422, "unsupported_number_type"),
        };
    }
    Expect::Any
}

/// Sends `req` and checks the answer against the shape and the oracle (or `expect`, for a
/// named case), including that a refused body changed nothing.
async fn check(w: &World, route: &Route, req: &Req, expect: &Expect) -> Result<Answer, String> {
    let before = w.snapshot().await;
    let a = send(&w.svc, route, req).await?;
    check_shape(route, &a)?;
    let fail = |why: String| Err(format!("{} {req:?}: {why}: {}", route.template, a.text));
    if let Some(value) = echoed(req, &a) {
        return fail(format!("the message repeats the value {value:?}"));
    }
    match expect {
        Expect::Any => return Ok(a),
        Expect::Invalid(names) => {
            if (a.status, a.code()) != (400, "invalid_request") {
                return fail("expected 400 invalid_request".into());
            }
            if !names.is_empty() && !names.iter().any(|n| a.message().contains(n.as_str())) {
                return fail(format!("the message names none of {names:?}"));
            }
        }
        Expect::TooLarge => {
            if (a.status, a.code()) != (413, "payload_too_large") {
                return fail("expected 413 payload_too_large".into());
            }
        }
        Expect::Refused(status, code) => {
            if (a.status, a.code()) != (*status, *code) {
                return fail(format!("expected {status} {code}"));
            }
        }
    }
    let after = w.snapshot().await;
    if before != after {
        return fail(format!(
            "a refused body changed something:\n{before:#?}\n→\n{after:#?}"
        ));
    }
    Ok(a)
}

/// A submitted value an error message repeats: any string or number of the body with six or
/// more digits (a code, a phone number, maybe a password) must not come back. (The
/// `allowed_countries` message shows up to 8 characters of a bad country, by design.)
fn echoed(req: &Req, a: &Answer) -> Option<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => m.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    if a.status < 400 || a.message().starts_with("`allowed_countries`") {
        return None;
    }
    let body: Value = serde_json::from_slice(&req.body).ok()?;
    let mut values = Vec::new();
    walk(&body, &mut values);
    values
        .into_iter()
        .filter(|v| v.bytes().filter(u8::is_ascii_digit).count() >= 6)
        .find(|v| a.message().contains(v.as_str()))
}

// ---------------------------------------------------------------- named hostile cases

/// `good` with one field set to `v`.
fn with(good: &Value, field: &str, v: Value) -> String {
    let mut g = good.clone();
    g[field] = v;
    g.to_string()
}

/// `good`'s text with `extra` (raw JSON text) as one more member.
fn plus_member(good: &Value, extra: &str) -> String {
    let text = good.to_string();
    let inner = &text[1..text.len() - 1];
    if inner.is_empty() {
        format!("{{{extra}}}")
    } else {
        format!("{{{inner},{extra}}}")
    }
}

/// Arabic-Indic and fullwidth forms of ASCII digits.
fn arabic(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0x0660 + d).unwrap(),
            None => c,
        })
        .collect()
}

fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap(),
            c => c,
        })
        .collect()
}

struct Case {
    name: String,
    req: Req,
    expect: Expect,
}

/// The named hostile cases of one route: each is malformed input the contract refuses, built
/// around the route's good body so that a lenient parser would act on it.
fn hostile_cases(route: &Route) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: String, req: Req, expect: Expect| cases.push(Case { name, req, expect });
    let good = route.good.to_string();
    let none = invalid::<&str>(&[]);
    let names = route.field_names();

    // Not an object, or not JSON at all.
    if !route.empty_ok {
        add("empty body".into(), Req::json(""), none.clone());
        add("only whitespace".into(), Req::json(" \n\t "), none.clone());
    }
    for (name, body) in [
        ("null", "null"),
        ("true", "true"),
        ("a number", "0"),
        ("negative zero", "-0"),
        ("a string", r#""{}""#),
        ("an empty array", "[]"),
        ("an array of an object", "[{}]"),
        ("an unclosed object", "{"),
        ("a lone close", "}"),
        ("a key without a value", r#"{"a"}"#),
        ("a member without a value", r#"{"a":}"#),
        ("a lone comma", "{,}"),
        ("a form feed (not JSON whitespace)", "\u{c}"),
        ("a vertical tab", "\u{b}"),
        ("a no-break space", "\u{a0}"),
        ("an ideographic space", "\u{3000}"),
        ("a NUL byte", "\0"),
    ] {
        add(name.into(), Req::json(body), none.clone());
    }
    // The good body's values in order, as an array (serde's derive takes a sequence for a
    // struct: the contract's bodies are objects).
    let values: Vec<Value> = route.good.as_object().unwrap().values().cloned().collect();
    add(
        "the good body as an array".into(),
        Req::json(Value::Array(values).to_string()),
        none.clone(),
    );
    // Trailing data, comments, a byte-order mark, NULs around the good body.
    for (name, body) in [
        ("trailing garbage", format!("{good} x")),
        ("two objects", format!("{good}{good}")),
        ("an object then {}", format!("{good}{{}}")),
        ("a trailing close bracket", format!("{good}]")),
        ("a trailing null", format!("{good} null")),
        ("a trailing NUL", format!("{good}\0")),
        ("a leading NUL", format!("\0{good}")),
        ("a byte-order mark", format!("\u{feff}{good}")),
        ("a comment", format!("/* */{good}")),
        (
            "a trailing comma",
            format!("{},}}", &good[..good.len() - 1]),
        ),
    ] {
        // `{}` with a trailing comma is `{,}`, also refused.
        add(name.into(), Req::json(body), none.clone());
    }
    // Deep nesting.
    add(
        "10,000 [".into(),
        Req::json("[".repeat(10_000)),
        none.clone(),
    );
    add(
        "10,000 nested arrays, closed".into(),
        Req::json(format!("{}{}", "[".repeat(5_000), "]".repeat(5_000))),
        none.clone(),
    );
    add(
        "10,000 nested objects".into(),
        Req::json(format!(
            "{}1{}",
            r#"{"a":"#.repeat(2_000),
            "}".repeat(2_000)
        )),
        none.clone(),
    );
    // Members: unknown, differently spelt, duplicated, missing.
    add(
        "an unknown field".into(),
        Req::json(plus_member(&route.good, r#""extra":1"#)),
        invalid(&["extra"]),
    );
    add(
        "a NUL field name".into(),
        Req::json(plus_member(&route.good, r#""\u0000":1"#)),
        none.clone(),
    );
    for (field, kind, required) in &route.fields {
        let upper = field.to_uppercase();
        let spaced = format!("{field} ");
        for (what, alias) in [("upper-case", &upper), ("trailing-space", &spaced)] {
            add(
                format!("{field}: {what} name"),
                Req::json(plus_member(&route.good, &format!("{}:1", json!(alias)))),
                invalid(&[alias.as_str()]),
            );
        }
        let v = route.good.get(*field).cloned().unwrap_or(Value::Null);
        let other = match kind {
            Kind::Bool | Kind::TrueOnly => json!(!v.as_bool().unwrap_or(false)),
            _ => json!("000000"),
        };
        for (what, second) in [("same", v.clone()), ("different", other)] {
            add(
                format!("{field}: duplicated, {what} value"),
                Req::json(plus_member(
                    &route.good,
                    &format!("{}:{second}", json!(field)),
                )),
                invalid(&[*field]),
            );
        }
        if *required {
            let mut g = route.good.clone();
            g.as_object_mut().unwrap().remove(*field);
            add(
                format!("{field}: missing"),
                Req::json(g.to_string()),
                invalid(&[*field]),
            );
        }
        // A raw NUL and a raw newline inside the string (JSON forbids raw control characters).
        if let Some(s) = v.as_str() {
            for (what, raw) in [("NUL", "\0"), ("newline", "\n")] {
                let body = good.replacen(
                    &format!("{}:{}", json!(field), json!(s)),
                    &format!("{}:\"{raw}{}", json!(field), &json!(s).to_string()[1..]),
                    1,
                );
                assert_ne!(body, good, "{field}");
                add(
                    format!("{field}: raw {what} in the string"),
                    Req::json(body),
                    none.clone(),
                );
            }
            // Invalid UTF-8 inside the string, and a lone surrogate escape.
            let key = format!("{}:\"", json!(field));
            let at = good.find(&key).unwrap() + key.len();
            for (what, bytes) in [
                ("0xFF", &b"\xff"[..]),
                ("an overlong /", &b"\xc0\xaf"[..]),
                ("a truncated sequence", &b"\xe2\x82"[..]),
                ("an encoded surrogate", &b"\xed\xa0\x80"[..]),
            ] {
                let mut body = good.as_bytes().to_vec();
                body.splice(at..at, bytes.iter().copied());
                add(
                    format!("{field}: invalid UTF-8 ({what})"),
                    Req::json(body),
                    none.clone(),
                );
            }
            let body = format!("{}\\ud800{}", &good[..at], &good[at..]);
            add(
                format!("{field}: a lone surrogate escape"),
                Req::json(body),
                none.clone(),
            );
        }
        // Deep nesting as the field's value.
        add(
            format!("{field}: 5,000 nested arrays"),
            Req::json(with(&route.good, field, json!([]))).nested_at(field, 5_000),
            invalid(&[*field]),
        );
        // Wrong JSON types.
        let mut wrong: Vec<(&str, Value)> = vec![
            ("an object", json!({})),
            ("an array", json!([])),
            ("an array of the value", json!([v.clone()])),
        ];
        if !matches!(kind, Kind::Bool | Kind::TrueOnly) {
            wrong.push(("true", json!(true)));
        }
        if !matches!(
            kind,
            Kind::Label
                | Kind::PhoneRef
                | Kind::TrueOnly
                | Kind::Countries
                | Kind::DisplayName
                | Kind::Domain
                | Kind::LocaleTag
        ) {
            wrong.push(("null", Value::Null));
        }
        match kind {
            Kind::Bool | Kind::TrueOnly => {
                wrong.extend([
                    ("the string \"true\"", json!("true")),
                    ("1", json!(1)),
                    ("0", json!(0)),
                    ("a phone number string", json!("+14155550123")),
                ]);
            }
            Kind::Factors => wrong.extend([
                ("a string", json!("sms")),
                ("a number in the list", json!([1])),
                ("null in the list", json!([null])),
                ("a nested list", json!([["sms"]])),
                ("an object", json!({"sms": true})),
            ]),
            Kind::GraceDays => wrong.extend([
                ("the string \"14\"", json!("14")),
                ("a string of six digits", json!("123456")),
                ("a float", json!(14.5)),
                ("a float in exponent form", json!(1e300)),
                ("a negative number", json!(-123456)),
            ]),
            Kind::Countries => wrong.extend([
                ("a string", json!("US")),
                ("a number in the list", json!([1])),
                ("null in the list", json!([null])),
                ("a nested list", json!([["US"]])),
                ("an object", json!({"US": true})),
            ]),
            _ => wrong.extend([
                ("a number", json!(123456)),
                ("a negative number", json!(-12345)),
                ("a float", json!(123456.0)),
                ("a float in exponent form", json!(1e300)),
            ]),
        }
        for (what, value) in wrong {
            add(
                format!("{field}: {what}"),
                Req::json(with(&route.good, field, value)),
                invalid(&[*field]),
            );
        }
        // A number out of any float's range.
        let member = format!("{}:{v}", json!(field));
        add(
            format!("{field}: 1e400"),
            Req::json(good.replacen(&member, &format!("{}:1e400", json!(field)), 1)),
            none.clone(),
        );
        // Hostile values of the right type.
        for (what, value, expect) in hostile_values(field, *kind, &v) {
            add(
                format!("{field}: {what}"),
                Req::json(with(&route.good, field, value)),
                expect,
            );
        }
    }
    // Too large.
    let pad = " ".repeat(MAX_BODY + 1 - good.len());
    add(
        "the good body padded past 16 KiB".into(),
        Req::json(format!("{good}{pad}")),
        Expect::TooLarge,
    );
    add(
        "16 KiB + 1 of whitespace".into(),
        Req::json(" ".repeat(MAX_BODY + 1)),
        Expect::TooLarge,
    );
    add(
        "20,000 [".into(),
        Req::json("[".repeat(20_000)),
        Expect::TooLarge,
    );
    if let Some(field) = names.first() {
        add(
            format!("{field}: 17 KiB"),
            Req::json(with(&route.good, field, json!("1".repeat(17 * 1024)))),
            Expect::TooLarge,
        );
    }
    // Content types: the good body, said not to be JSON.
    for ct in [
        Some("text/plain"),
        Some("text/json"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("application/json-patch+json"),
        Some("application/ld+json"),
        Some("application/json, text/plain"),
        Some("json"),
        Some(""),
        None,
    ] {
        let content_type = match ct {
            Some(ct) => ContentType::Is(ct.into()),
            None => ContentType::Missing,
        };
        add(
            format!("Content-Type {ct:?}"),
            Req {
                body: good.clone().into_bytes(),
                content_type,
                base64: false,
            },
            invalid(&["application/json"]),
        );
    }
    if !route.empty_ok {
        add(
            "Content-Type application/json, empty body".into(),
            Req::json(""),
            none.clone(),
        );
    }
    add(
        "a form body".into(),
        Req {
            body: b"password=pw&code=123456".to_vec(),
            content_type: ContentType::Is("application/x-www-form-urlencoded".into()),
            base64: false,
        },
        invalid(&["application/json"]),
    );
    add(
        "UTF-16 with a byte-order mark".into(),
        Req {
            body: std::iter::once(0xfeff_u16)
                .chain(good.encode_utf16())
                .flat_map(u16::to_le_bytes)
                .collect(),
            content_type: ContentType::Is("application/json; charset=utf-16".into()),
            base64: true,
        },
        none.clone(),
    );
    cases
}

impl Req {
    /// Replaces the field's `[]` with `depth` nested arrays.
    fn nested_at(mut self, field: &str, depth: usize) -> Req {
        let text = String::from_utf8(self.body).unwrap();
        let key = format!("{}:[]", json!(field));
        let deep = format!(
            "{}:{}{}",
            json!(field),
            "[".repeat(depth),
            "]".repeat(depth)
        );
        self.body = text.replacen(&key, &deep, 1).into_bytes();
        self
    }
}

/// A hostile string as a case's name: itself (debug-quoted), or its length when long.
fn describe(v: &str) -> String {
    if v.len() > 80 {
        format!("{} bytes", v.len())
    } else {
        format!("{v:?}")
    }
}

/// Hostile values of a field's own type, and what each must answer.
fn hostile_values(field: &str, kind: Kind, good: &Value) -> Vec<(String, Value, Expect)> {
    let s = good.as_str().unwrap_or_default();
    let big = |c: &str| c.repeat(15 * 1024 / c.len());
    let mut out: Vec<(String, Value, Expect)> = Vec::new();
    let named = invalid(&[field]);
    match kind {
        Kind::Code6 => {
            for v in [
                format!("+{}", &s[1..]),
                format!("-{}", &s[1..]),
                format!("+{s}"),
                format!("-{s}"),
                format!(" {s}"),
                format!("{s} "),
                format!("{s}\n"),
                format!("{} {}", &s[..3], &s[3..]),
                arabic(s),
                format!("{}{}", &s[..5], arabic(&s[5..])),
                fullwidth(s),
                "𝟏𝟐𝟑𝟒𝟓𝟔".into(),
                "¹²³⁴⁵⁶".into(),
                format!("{s}\0"),
                format!("\0{s}"),
                format!("{}\0{}", &s[..3], &s[4..]),
                format!("\u{feff}{s}"),
                format!("{s}\u{200b}"),
                format!("{s}0"),
                s[..5].into(),
                String::new(),
                "0x1e24".into(),
                "1e5".into(),
                "12345.".into(),
                big("1"),
            ] {
                out.push((format!("{v:?}"), json!(v), named.clone()));
            }
        }
        Kind::Recovery => {
            for v in [
                format!("{s}\0"),
                format!("\0{s}"),
                format!("+{s}"),
                format!("{s}\t"),
                format!("{s}_"),
                format!("{s}0"),
                fullwidth(s),
                arabic("0123456789"),
                "٣٣٣٣٣-٣٣٣٣٣".into(),
                format!("{}\u{0130}", &s[..s.len() - 1]),
                String::new(),
                big("٣"),
                big("-"),
            ] {
                out.push((format!("{v:?}"), json!(v), named.clone()));
            }
        }
        Kind::Phone => {
            let bad = Expect::Refused(400, "invalid_phone_number");
            let n = "+14155550177";
            for v in [
                arabic(n),
                format!("+{}", arabic(&n[1..])),
                fullwidth(n),
                format!("+{}", fullwidth(&n[1..])),
                "+1415555\u{0}0177".into(),
                format!("\0{n}"),
                format!("{n}\0"),
                format!("+{n}"),
                n[1..].into(),
                format!("-{}", &n[1..]),
                format!("{n} ext 1"),
                "+1\t415 555 0177".into(),
                "+1\u{a0}415 555 0177".into(),
                "+1 415 555 0177\u{200b}".into(),
                "+0 415 555 0177".into(),
                "+1 415 555 017".into(),
                "+1234567890123456".into(),
                "+".into(),
                String::new(),
                big("+1"),
                format!("+{}", big("1")),
            ] {
                out.push((format!("{v:?}"), json!(v), bad.clone()));
            }
        }
        Kind::Label => {
            for v in [
                "\0".to_owned(),
                "Work\0".into(),
                "a\u{7}b".into(),
                "a\u{1b}[31mred".into(),
                "line\nbreak".into(),
                // (A label of only whitespace, even U+0085, is no label: not refused.)
                "a\u{85}b".into(),
                "x".repeat(65),
                "é".repeat(65),
                big("x"),
                big("٣"),
            ] {
                out.push((describe(&v), json!(v), named.clone()));
            }
        }
        Kind::Enforcement => {
            for v in [
                "OPTIONAL",
                "Required",
                " optional",
                "optional ",
                "optional\0",
                "requіred", // Cyrillic і
                "",
                "0",
            ] {
                out.push((format!("{v:?}"), json!(v), named.clone()));
            }
            out.push(("15 KiB".into(), json!(big("x")), named.clone()));
        }
        Kind::Countries => {
            for v in [
                json!(["us"]),
                json!(["USA"]),
                json!(["U\u{0}"]),
                json!([fullwidth("US")]),
                json!(["٣٣"]),
                json!([" US"]),
                json!(["ZZ"]),
                json!(["US", ""]),
                json!([]),
                json!([big("U")]),
            ] {
                out.push((format!("{v}"), v, named.clone()));
            }
        }
        Kind::Factors => {
            for v in [
                json!([]),
                json!(["SMS"]),
                json!(["otp"]),
                json!(["sms "]),
                json!(["sms", "x"]),
                json!(["sms\u{0}"]),
                json!([fullwidth("sms")]),
                json!(["sms", ""]),
                json!([big("s")]),
            ] {
                let what = if v.to_string().len() > 80 {
                    "a 15 KiB factor".to_owned()
                } else {
                    format!("{v}")
                };
                out.push((what, v, named.clone()));
            }
        }
        Kind::DisplayName => {
            for v in [
                String::new(),
                "x".repeat(31),
                "é".repeat(31),
                "Acme\nTravel".into(),
                "Acme\r\nTravel".into(),
                "Acme\u{2028}Travel".into(),
                "Acme\u{85}".into(),
                "Acme\0".into(),
                "a\u{1b}[31mred".into(),
                " Acme".into(),
                "Acme\t".into(),
                big("x"),
            ] {
                out.push((describe(&v), json!(v), named.clone()));
            }
        }
        Kind::Domain => {
            for v in [
                "https://login.acme.example".to_owned(),
                "login.acme.example/otp".into(),
                "login.acme.example:443".into(),
                "user@login.acme.example".into(),
                "login.acme.example.".into(),
                "localhost".into(),
                "login..acme.example".into(),
                "-login.acme.example".into(),
                "bücher.example".into(),
                fullwidth("login.acme.example"),
                "login acme.example".into(),
                "login.acme.example\0".into(),
                String::new(),
                big("a."),
            ] {
                out.push((describe(&v), json!(v), named.clone()));
            }
        }
        Kind::LocaleTag => {
            for v in [
                "en_US".to_owned(),
                String::new(),
                "e".into(),
                "english".into(),
                "es-".into(),
                "es--MX".into(),
                "es MX".into(),
                "es\0".into(),
                " es".into(),
                fullwidth("es"),
                "e\u{301}s".into(),
                format!("en-{}", "a".repeat(40)),
                big("x"),
            ] {
                out.push((describe(&v), json!(v), named.clone()));
            }
        }
        Kind::FactorName => {
            for v in [
                "SMS".to_owned(),
                "Totp".into(),
                "otp".into(),
                String::new(),
                " totp".into(),
                "totp\0".into(),
                fullwidth("totp"),
                "tоtp".into(), // Cyrillic о
                big("t"),
            ] {
                out.push((describe(&v), json!(v), named.clone()));
            }
        }
        Kind::Email => {
            for v in [
                "carol\0@example.com".to_owned(),
                "carol@exa\0mple.com".into(),
                "carol@example.com\n".into(),
                " carol@example.com".into(),
                "carol@@example.com".into(),
                "carol".into(),
                String::new(),
                format!("{}@example.com", big("x")),
            ] {
                out.push((describe(&v), json!(v), named.clone()));
            }
        }
        Kind::Hash => {
            for v in [
                format!("{s}\0"),
                format!("\0{s}"),
                format!(" {s}"),
                s.replacen("m=19456", "m=4294967295", 1),
                s.replacen("t=2", "t=4294967295", 1),
                s.replacen("$argon2id$", "$argon2d$", 1),
                s.replacen("v=19", "v=16", 1),
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".into(),
                String::new(),
                big("$"),
            ] {
                assert_ne!(v, s);
                let what = if v.len() > 120 {
                    format!("{} bytes", v.len())
                } else {
                    format!("{v:?}")
                };
                out.push((what, json!(v), named.clone()));
            }
        }
        Kind::PhoneRef => {
            let gone = Expect::Refused(404, "phone_not_found");
            for v in [
                format!("{s}\0"),
                s.to_uppercase(),
                fullwidth(s),
                format!(" {s}"),
                s[..s.len() - 1].into(),
                String::new(),
                big("ph_"),
            ] {
                out.push((format!("{v:?}"), json!(v), gone.clone()));
            }
        }
        Kind::GraceDays => {
            for v in [
                json!(91),
                json!(-1),
                json!(65_536 + 14),
                json!(4_294_967_296_u64),
                json!(u64::MAX),
                json!(i64::MIN),
                json!(14.0),
                json!(-0.0),
                json!(0.5),
                json!(123_456),
            ] {
                out.push((describe(&v.to_string()), v, named.clone()));
            }
        }
        Kind::TrueOnly => out.push(("false".into(), json!(false), named.clone())),
        // Any string is a password (a wrong one is counted): `odd_passwords_are_wrong_passwords`.
        Kind::Password | Kind::Bool => {}
    }
    out
}

// ---------------------------------------------------------------- the named-case tests

/// Every `ROUTES` entry that reads a body is covered here; the others take none.
#[test]
fn every_route_that_takes_a_body_is_covered() {
    let rt = runtime();
    let w = rt.block_on(World::new(Limits::default()));
    let covered: Vec<&str> = w.routes().iter().map(|r| r.template).collect();
    let bodiless = [
        "GET /v1/admin/applications/{app_id}/mfa-policy",
        "DELETE /v1/admin/applications/{app_id}/users/{user_id}/mfa",
        "GET /v1/admin/applications/{app_id}/audit-events",
        "GET /v1/admin/applications/{app_id}/mfa-stats",
        "GET /v1/mfa/status",
        "GET /v1/mfa/phones",
        "GET /v1/mfa/jwks.json",
    ];
    for r in routes::ROUTES {
        let key = format!("{} {}", r.method, r.template);
        assert!(
            covered.contains(&key.as_str()) ^ bodiless.contains(&key.as_str()),
            "{key}: a body route missing from the hostile-input table (or listed twice)"
        );
    }
    assert_eq!(covered.len() + bodiless.len(), routes::ROUTES.len());
    for r in w.routes() {
        assert_eq!(
            routes::function_for(&r.path).map(|(f, _)| f),
            Some(r.function),
            "{}",
            r.template
        );
    }
}

/// Each route's good body acts (2xx), on a world of its own: the hostile cases are built
/// around bodies the route really accepts, so a refusal below is the hostility's doing.
#[test]
fn the_good_bodies_act() {
    let rt = runtime();
    let n = rt.block_on(World::new(Limits::default())).routes().len();
    for i in 0..n {
        let w = rt.block_on(World::new(Limits::default()));
        let route = w.routes().swap_remove(i);
        let req = Req::json(route.good.to_string());
        let a = rt
            .block_on(check(&w, &route, &req, &Expect::Any))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            (200..300).contains(&a.status),
            "{}: {}",
            route.template,
            a.text
        );
        if route.empty_ok {
            // No body, and `{}`, act alike (the resend route needs a fresh cooldown).
            let w = rt.block_on(World::new(Limits::default()));
            let route = w.routes().swap_remove(i);
            for req in [Req::json(""), Req::json(" \r\n")] {
                let a = rt.block_on(send(&w.svc, &route, &req)).unwrap();
                assert!(
                    a.status < 300 || a.code() == "resend_too_soon",
                    "{}",
                    a.text
                );
            }
        }
    }
}

/// The table: for every body route, every named hostile case is refused as the contract says,
/// and changes nothing; afterwards no password, code or recovery attempt was counted.
#[test]
fn named_hostile_bodies_are_refused_and_change_nothing() {
    let rt = runtime();
    let w = rt.block_on(World::new(Limits::default()));
    let mut failures = Vec::new();
    let mut count = 0;
    for route in w.routes() {
        for case in hostile_cases(&route) {
            count += 1;
            if let Err(e) = rt.block_on(check(&w, &route, &case.req, &case.expect)) {
                failures.push(format!("[{}] {}: {e}", route.template, case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(count > 600, "{count}");

    // Nothing was counted: the first wrong attempt of each kind still leaves all but one.
    let recovery = w.route("POST /v1/mfa/challenges/recovery");
    let a = rt
        .block_on(send(
            &w.svc,
            &recovery,
            &Req::json(r#"{"code":"00000-00000"}"#),
        ))
        .unwrap();
    assert_eq!((a.status, a.code()), (400, "invalid_code"), "{}", a.text);
    assert_eq!(a.json["attempts_remaining"], 19, "{}", a.text);
    for (template, wrong) in [
        ("POST /v1/mfa/enrollments/{enrollment_id}/code", &w.add_code),
        (
            "POST /v1/mfa/challenges/{challenge_id}/code",
            &w.challenge_code,
        ),
    ] {
        let wrong = if wrong == "000000" {
            "111111"
        } else {
            "000000"
        };
        let a = rt
            .block_on(send(
                &w.svc,
                &w.route(template),
                &Req::json(json!({ "code": wrong }).to_string()),
            ))
            .unwrap();
        assert_eq!((a.status, a.code()), (400, "invalid_code"), "{}", a.text);
        assert_eq!(a.json["attempts_remaining"], 4, "{template}: {}", a.text);
    }
    for template in ["POST /v1/mfa/recovery-codes", "POST /v1/mfa/enrollments"] {
        let a = rt
            .block_on(send(
                &w.svc,
                &w.route(template),
                &Req::json(r#"{"password":"not-it"}"#),
            ))
            .unwrap();
        assert_eq!(
            (a.status, a.code()),
            (401, "invalid_password"),
            "{}",
            a.text
        );
        assert_eq!(a.json["attempts_remaining"], 4, "{template}: {}", a.text);
    }
}

/// A password is any JSON string: NULs, 15 KiB or non-ASCII are just wrong passwords (401,
/// counted), never a 5xx; the right one with one of them attached is wrong too.
#[test]
fn odd_passwords_are_wrong_passwords() {
    let rt = runtime();
    let w = rt.block_on(World::new(Limits::default()));
    let route = w.route("POST /v1/mfa/enrollments");
    let cases = [
        "pw\0".to_owned(),
        "\0pw".into(),
        "p".repeat(15 * 1024),
        "ｐｗ".into(),
    ];
    for (i, pw) in cases.iter().enumerate() {
        let body = json!({ "password": pw }).to_string();
        let a = rt
            .block_on(check(&w, &route, &Req::json(body), &Expect::Any))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (a.status, a.code()),
            (401, "invalid_password"),
            "{}",
            a.text
        );
        assert_eq!(a.json["attempts_remaining"], 4 - i, "{}", a.text);
    }
}

/// Routes that read no body answer as usual whatever body comes with them.
#[test]
fn bodiless_routes_ignore_hostile_bodies() {
    let rt = runtime();
    let w = rt.block_on(World::new(Limits::default()));
    let gets = [
        (
            "GET /v1/admin/applications/{app_id}/mfa-policy",
            Who::Admin,
            Function::PolicyConfig,
        ),
        (
            "GET /v1/admin/applications/{app_id}/audit-events",
            Who::Admin,
            Function::PolicyConfig,
        ),
        (
            "GET /v1/mfa/status",
            Who::User(ADA),
            Function::EnrollmentStart,
        ),
        ("GET /v1/mfa/phones", Who::User(ADA), Function::PhoneEdits),
        ("GET /v1/mfa/jwks.json", Who::User(ADA), Function::Challenge),
    ];
    let bodies: [&[u8]; 5] = [
        b"\xff\xfe",
        b"[[[[[[",
        b"\0",
        &[b'{'; MAX_BODY + 10],
        b"null",
    ];
    for (template, who, function) in gets {
        let route = Route {
            template,
            path: template[4..].replace("{app_id}", APP),
            function,
            who,
            fields: vec![],
            good: json!({}),
            empty_ok: true,
            errors: &[],
        };
        for body in bodies {
            let req = Req {
                body: body.to_vec(),
                content_type: ContentType::Is("text/plain".into()),
                base64: true,
            };
            let a = rt.block_on(send(&w.svc, &route, &req)).unwrap();
            assert_eq!(a.status, 200, "{template} {req:?}: {}", a.text);
        }
    }
}

// ---------------------------------------------------------------- properties over the routes

/// Any string, control characters included (`any::<String>()` leaves them out).
fn any_chars() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..24).prop_map(String::from_iter)
}

/// Strings a hostile client tries: anything at all, digit look-alikes, signs and spaces,
/// phone-number shapes, and the occasional 15 KiB.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_chars(),
        3 => "[0-9٠-٩۰-۹０-９+\\- \\t\\x00\\x{a0}\\x{feff}]{0,9}",
        2 => "[0-9]{6}",
        2 => "\\+?[0-9 ().\\-]{0,20}",
        1 => "[0-9A-Za-z\\- ]{0,14}",
        1 => (any::<char>(), 1..16_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// Any JSON value (keys biased toward the route's field names).
fn json_value(fields: Vec<&'static str>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_string().prop_map(Value::String),
    ];
    let key = key_strategy(fields);
    leaf.prop_recursive(4, 24, 5, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key_strategy(fields: Vec<&'static str>) -> BoxedStrategy<String> {
    if fields.is_empty() {
        any_chars().boxed()
    } else {
        prop_oneof![
            3 => select(fields).prop_map(|f| f.to_owned()),
            1 => any_chars(),
        ]
        .boxed()
    }
}

/// Bodies for `route`: arbitrary bytes, whitespace of every kind, arbitrary JSON, objects of
/// the route's fields with arbitrary values, the good body with one field made hostile, and
/// the good body's text with a byte inserted, removed or replaced.
fn body_strategy(route: &Route) -> BoxedStrategy<Vec<u8>> {
    let names = route.field_names();
    let good = route.good.clone();
    let good_text = good.to_string().into_bytes();
    let objects = btree_map(key_strategy(names.clone()), json_value(names.clone()), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()).to_string());
    let one_field = if names.is_empty() {
        Just(good.to_string()).boxed()
    } else {
        (
            select(names.clone()),
            prop_oneof![
                3 => hostile_string().prop_map(Value::String),
                1 => json_value(names.clone()),
            ],
        )
            .prop_map(move |(f, v)| with(&good, f, v))
            .boxed()
    };
    let mutated = (
        Just(good_text),
        any::<prop::sample::Index>(),
        0..3u8,
        any::<u8>(),
    )
        .prop_map(|(mut text, at, op, byte)| {
            let i = at.index(text.len());
            match op {
                0 => text.insert(i, byte),
                1 => {
                    text.remove(i);
                }
                _ => text[i] = byte,
            }
            text
        });
    prop_oneof![
        2 => vec(any::<u8>(), 0..96),
        1 => vec(
            select(vec![" ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\u{a0}", "\u{3000}", "\u{feff}"]),
            0..6,
        )
        .prop_map(|ws| ws.concat().into_bytes()),
        3 => json_value(names.clone()).prop_map(|v| v.to_string().into_bytes()),
        3 => objects.prop_map(String::into_bytes),
        3 => one_field.prop_map(String::into_bytes),
        3 => mutated,
    ]
    .boxed()
}

fn content_type_strategy() -> impl Strategy<Value = ContentType> {
    prop_oneof![
        8 => Just(ContentType::Json),
        1 => Just(ContentType::Missing),
        2 => select(vec![
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/json ;charset=UTF-8",
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
        ])
        .prop_map(|s| ContentType::Is(s.into())),
    ]
}

fn req_strategy(route: &Route) -> impl Strategy<Value = Req> {
    (body_strategy(route), content_type_strategy(), any::<bool>()).prop_map(
        |(body, content_type, base64)| Req {
            body,
            content_type,
            base64,
        },
    )
}

/// Drives `cases` random requests through the route on one (roomy) world.
fn fuzz(template: &str, cases: u32) {
    let rt = runtime();
    let w = rt.block_on(World::roomy());
    let route = w.route(template);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    });
    let result = runner.run(&req_strategy(&route), |req| {
        let expect = expected(&route, &req);
        rt.block_on(check(&w, &route, &req, &expect))
            .map(|_| ())
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{template}: {e}");
    }
}

macro_rules! fuzz_routes {
    ($($name:ident: $template:literal, $cases:literal;)*) => {
        $(
            #[test]
            fn $name() {
                fuzz($template, $cases);
            }
        )*
    };
}

// Routes that check a password run argon2 (~35 ms) for each well-formed body: fewer cases.
fuzz_routes! {
    fuzz_put_policy: "PUT /v1/admin/applications/{app_id}/mfa-policy", 256;
    fuzz_put_availability: "PUT /v1/admin/applications/{app_id}/mfa-availability", 256;
    fuzz_put_user: "PUT /v1/admin/applications/{app_id}/users/{user_id}", 256;
    fuzz_skip: "POST /v1/mfa/skip", 256;
    fuzz_start: "POST /v1/mfa/enrollments", 64;
    fuzz_phone: "POST /v1/mfa/enrollments/{enrollment_id}/phone", 256;
    fuzz_code: "POST /v1/mfa/enrollments/{enrollment_id}/code", 256;
    fuzz_resend: "POST /v1/mfa/enrollments/{enrollment_id}/resend", 256;
    fuzz_add_phone: "POST /v1/mfa/phones", 64;
    fuzz_replace_phone: "PUT /v1/mfa/phones/{phone_id}", 64;
    fuzz_patch_phone: "PATCH /v1/mfa/phones/{phone_id}", 256;
    fuzz_delete_phone: "DELETE /v1/mfa/phones/{phone_id}", 64;
    fuzz_challenge: "POST /v1/mfa/challenges", 256;
    fuzz_challenge_code: "POST /v1/mfa/challenges/{challenge_id}/code", 256;
    fuzz_challenge_resend: "POST /v1/mfa/challenges/{challenge_id}/resend", 256;
    fuzz_recovery: "POST /v1/mfa/challenges/recovery", 256;
    fuzz_recovery_codes: "POST /v1/mfa/recovery-codes", 64;
}

/// Path parameters: any segment where an id goes answers the route's not-found (or a valid
/// refusal), never a panic or a 5xx.
#[test]
fn any_path_parameter_is_not_found_or_refused() {
    let rt = runtime();
    let w = rt.block_on(World::roomy());
    let templates = [
        "POST /v1/mfa/enrollments/{enrollment_id}/phone",
        "POST /v1/mfa/enrollments/{enrollment_id}/code",
        "POST /v1/mfa/enrollments/{enrollment_id}/resend",
        "PATCH /v1/mfa/phones/{phone_id}",
        "POST /v1/mfa/challenges/{challenge_id}/code",
        "POST /v1/mfa/challenges/{challenge_id}/resend",
        "PUT /v1/admin/applications/{app_id}/users/{user_id}",
    ];
    let segment = prop_oneof![
        "[A-Za-z0-9._~%:@!$&'()*+,;=\\-]{1,80}",
        "(enr|ph|chl)_[0-9a-fA-F]{30,34}",
        "%[0-9A-F]{2}[a-z0-9]{0,8}",
    ];
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(select(templates.to_vec()), segment), |(template, seg)| {
        let mut route = w.route(template);
        let id = match template {
            t if t.contains("enrollment_id") => w.add.as_str(),
            t if t.contains("challenge_id") => w.challenge.as_str(),
            t if t.contains("phone_id") => w.phone.as_str(),
            _ => CAROL,
        };
        route.path = route.path.replace(id, &seg);
        prop_assume!(seg != id);
        // A body the route parses, so that the id is what is judged.
        let body = match route.fields.first() {
            Some(("code", ..)) => json!({"code": "000000"}),
            Some(("phone_number", ..)) => json!({"phone_number": "+1 415 555 0199"}),
            Some(("label", ..)) => json!({"label": "x"}),
            _ => route.good.clone(),
        };
        let req = Req::json(body.to_string());
        let ev = event(&route, &req).to_string();
        // A path API Gateway could not have delivered (lambda_http refuses the event).
        prop_assume!(lambda_http::request::from_str(&ev).is_ok());
        let a = rt
            .block_on(send(&w.svc, &route, &req))
            .map_err(TestCaseError::fail)?;
        check_shape(&route, &a).map_err(TestCaseError::fail)?;
        let ok = match template {
            t if t.contains("enrollment_id") => a.code() == "enrollment_not_found",
            t if t.contains("challenge_id") => a.code() == "challenge_not_found",
            t if t.contains("phone_id") => a.code() == "phone_not_found",
            _ => a.code() == "invalid_request" || a.status == 200,
        };
        prop_assert!(ok, "{template} with {seg:?}: {}", a.text);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------- the parsers themselves

fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_chars(),
        3 => "[+0-9 ()\\-.٠-٩０-９\\x00\\t\\x{a0}]{0,45}",
        2 => "\\+[1-9][0-9]{6,14}",
        1 => (any::<char>(), 0..20_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => (any_chars(), 0..2_000usize).prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    /// Never panics; what it accepts is E.164, parses back to itself, and shows only the
    /// country code and the last four digits when masked.
    #[test]
    fn phone_parse_never_panics_and_round_trips(input in any_input()) {
        if let Ok(n) = PhoneNumber::parse(&input) {
            prop_assert!(is_e164(n.e164()), "{input:?} → {}", n.e164());
            let again = PhoneNumber::parse(n.e164());
            prop_assert_eq!(again.as_ref(), Ok(&n), "{:?}", input);
            let stored = PhoneNumber::from_stored(n.e164());
            prop_assert_eq!(stored.as_ref(), Ok(&n));
            let masked = n.masked();
            let last4 = &n.e164()[n.e164().len() - 4..];
            prop_assert!(masked.ends_with(last4), "{masked}");
            let shown: String = masked.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(shown.len() <= 3 + 4, "{masked}");
            // Only the documented separators and surrounding whitespace are dropped.
            let digits: String = input.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(digits.len() <= 15 && input.trim().starts_with('+'), "{input:?}");
        }
    }

    /// `+` and 7 to 15 digits with the documented separators: never a panic in the
    /// libphonenumber port, whatever the digits.
    #[test]
    fn phone_parse_survives_every_digit_string(
        digits in "[0-9]{1,16}",
        seps in vec(select(vec!["", " ", "-", "(", ")", "."]), 16),
    ) {
        let mut input = "+".to_owned();
        for (d, s) in digits.chars().zip(seps) {
            input.push(d);
            input.push_str(s);
        }
        if let Ok(n) = PhoneNumber::parse(&input) {
            prop_assert!(is_e164(n.e164()), "{input:?} → {}", n.e164());
            let again = PhoneNumber::parse(n.e164());
            prop_assert_eq!(again.as_ref(), Ok(&n));
        }
    }

    /// A code is exactly six ASCII digits: nothing else, whatever the string.
    #[test]
    fn code_parse_accepts_exactly_six_ascii_digits(input in prop_oneof![
        3 => any_chars(),
        3 => "[0-9٠-٩０-９+\\- \\x00]{4,8}",
        2 => "[0-9]{6}",
        1 => "[0-9]{6}[\\x00\\n ]?",
    ]) {
        let six = input.len() == 6 && input.bytes().all(|b| b.is_ascii_digit());
        match Code::parse(&input) {
            Ok(c) => {
                prop_assert!(six, "accepted {input:?}");
                prop_assert_eq!(c.expose(), input.as_str());
                prop_assert_eq!(format!("{c:?}"), "Code(******)");
            }
            Err(_) => prop_assert!(!six, "refused {input:?}"),
        }
    }

    /// The service's ids: exactly their prefix and 32 lowercase hex digits; anything else
    /// refused without a panic. External ids: 1 to 128 of the allowed characters.
    #[test]
    fn ids_parse_exactly_their_shape(input in prop_oneof![
        3 => any_chars(),
        3 => "(enr|ph|chl|code|x)_[0-9a-fA-F]{30,34}",
        2 => "(enr|ph|chl)_[0-9a-f\\x00٣３]{32}",
        1 => "[A-Za-z0-9.\\-_:@|+#/ ]{0,130}",
        1 => (any::<char>(), 0..20_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]) {
        let hex = |p: &str| {
            input.strip_prefix(p).is_some_and(|h| {
                h.len() == 32 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        };
        prop_assert_eq!(EnrollmentId::parse(&input).is_ok(), hex("enr_"));
        prop_assert_eq!(PhoneId::parse(&input).is_ok(), hex("ph_"));
        prop_assert_eq!(ChallengeId::parse(&input).is_ok(), hex("chl_"));
        prop_assert_eq!(CodeId::parse(&input).is_ok(), hex("code_"));
        prop_assert_eq!(
            SessionId::parse_stored(&input).is_ok(),
            hex("enr_") || hex("chl_")
        );
        if let Ok(id) = PhoneId::parse(&input) {
            prop_assert_eq!(id.as_str(), input.as_str());
        }
        let external = !input.is_empty()
            && input.len() <= 128
            && input.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:@|+".contains(&b));
        prop_assert_eq!(UserId::parse(&input).is_ok(), external);
        prop_assert_eq!(AppId::parse(&input).is_ok(), external);
    }

    /// The route table on any path: no panic, and a path it serves has a method list.
    #[test]
    fn route_lookup_never_panics(path in prop_oneof![
        any_chars(),
        "(/(v1|mfa|admin|applications|enrollments|phones|challenges|x|%2F|\\x00|٣)?){0,9}/?",
    ]) {
        let served = routes::function_for(&path);
        let methods = routes::allowed_methods(&path);
        if served.is_some() {
            prop_assert!(!methods.is_empty(), "{path:?}");
        }
    }
}
