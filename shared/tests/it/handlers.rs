#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Lambda handlers driven by API Gateway HTTP API (v2) events, as a deployment delivers
//! them: fixtures in `tests/fixtures/` are adjusted (method, path, body, claims) and turned into
//! a `lambda_http::Request` by `lambda_http::request::from_str`, then run by `dispatch`.

use std::sync::Arc;

use base64::Engine;
use mfa_shared::Service;
use mfa_shared::adapters::console::ConsoleOutbox;
use mfa_shared::config::{Limits, Settings};
use mfa_shared::http::dispatch;
use mfa_shared::http::routes::Function::{
    Challenge, CodeVerify, EnrollmentStart, PhoneEdits, PhoneSubmit, PolicyConfig,
};
use mfa_shared::http::routes::{self, Function};
use mfa_shared::ports::FixedClock;
use serde_json::{Value, json};

use crate::kit::apigw::{
    ADA as USER, ADMIN_FIXTURE, APP, Answer, BOB, T0, admin_event, call, fixture, shape, user_event,
};
use crate::kit::{self, hash};

const ADMIN_ARN: &str = "arn:aws:iam::123456789012:user/grace-admin";
const PHONE: &str = "+1 (415) 555-0123";
const MASKED: &str = "+1••••••0123";
const POLICY: &str = "/v1/admin/applications/app-acme/mfa-policy";
const AVAILABILITY: &str = "/v1/admin/applications/app-acme/mfa-availability";
const START: &str = "/v1/mfa/enrollments";
const RIGHT_PW: Option<&str> = Some(r#"{"password":"pw"}"#);
const WRONG_PW: Option<&str> = Some(r#"{"password":"not-it"}"#);

fn rfc3339(t: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn policy(enabled: bool, include_in_signup: bool, enforcement: &str) -> Value {
    json!({ "enabled": enabled, "include_in_signup": include_in_signup, "enforcement": enforcement })
}

/// The object's keys, sorted and space-separated: the JSON shape a client relies on.
fn keys(v: &Value) -> String {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k.join(" ")
}

fn enr(id: &str, step: &str) -> String {
    format!("/v1/mfa/enrollments/{id}/{step}")
}

/// Runs the event through function `f` and checks what every answer must be.
async fn run(f: Function, svc: &Service, ev: &Value) -> Answer {
    // Each route goes to the function the route table (and the deployment) gives it.
    let path = ev["rawPath"].as_str().unwrap();
    assert_eq!(
        routes::function_for(path).map(|(g, _)| g),
        Some(f),
        "{path}"
    );
    let a = call(f, svc, ev).await.unwrap_or_else(|e| panic!("{e}"));
    let status = a.status;
    if status == 204 {
        assert!(a.text.is_empty(), "204 with a body: {}", a.text);
        return a;
    }
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    if status >= 400 {
        let message = a.json["message"].as_str().unwrap_or_default();
        assert!(
            a.json["error"].is_string() && !message.is_empty(),
            "not the error shape: {}",
            a.text
        );
        let allowed = ["error", "message", "attempts_remaining", "retry_after"];
        let shape = keys(&a.json);
        assert!(shape.split(' ').all(|k| allowed.contains(&k)), "{}", a.text);
    }
    if status == 429 {
        let header: u64 = a
            .header("retry-after")
            .expect("429 without Retry-After")
            .parse()
            .unwrap();
        assert!(header >= 1, "{a:?}");
        assert_eq!(a.json["retry_after"].as_u64(), Some(header), "{a:?}");
    }
    a
}

/// One deployment: the service over the in-memory store, its outbox and its clock.
struct H {
    svc: Service,
    outbox: ConsoleOutbox,
    clock: Arc<FixedClock>,
}

impl H {
    fn new() -> H {
        H::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> H {
        let clock = Arc::new(FixedClock::at(T0));
        let (svc, outbox) = Service::in_memory(limits, Settings::default(), clock.clone()).unwrap();
        H { svc, outbox, clock }
    }

    /// Operator makes MFA available, admin saves `policy`, Ada is provisioned (email verified).
    async fn configured(self, policy: Value) -> H {
        self.admin("PUT", AVAILABILITY, Some(r#"{"available":true}"#))
            .await
            .ok(200);
        self.admin("PUT", POLICY, Some(&policy.to_string()))
            .await
            .ok(200);
        self.provision(USER, true).await;
        self
    }

    async fn with_policy(policy: Value) -> H {
        H::new().configured(policy).await
    }

    async fn optional() -> H {
        H::with_policy(policy(true, true, "optional")).await
    }

    async fn run(&self, f: Function, ev: &Value) -> Answer {
        run(f, &self.svc, ev).await
    }

    async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let ev = admin_event(method, path, body);
        run(PolicyConfig, &self.svc, &ev).await
    }

    async fn put_policy(&self, body: &Value) -> Answer {
        self.admin("PUT", POLICY, Some(&body.to_string())).await
    }

    /// Ada's request.
    async fn user(&self, f: Function, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.user_as(USER, f, method, path, body).await
    }

    async fn user_as(
        &self,
        sub: &str,
        f: Function,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Answer {
        run(f, &self.svc, &user_event(sub, method, path, body)).await
    }

    /// A request with the step-up header `MFA-Assertion`.
    async fn user_proving(
        &self,
        sub: &str,
        assertion: &str,
        f: Function,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Answer {
        let mut ev = user_event(sub, method, path, body);
        ev["headers"]["mfa-assertion"] = json!(assertion);
        run(f, &self.svc, &ev).await
    }

    /// Step-up over the handlers: a sign-in challenge to `sub`'s primary phone and the texted
    /// code; returns the assertion.
    async fn step_up_as(&self, sub: &str) -> String {
        let c = self
            .user_as(sub, Challenge, "POST", "/v1/mfa/challenges", None)
            .await;
        let id = c.ok(202)["challenge_id"].as_str().unwrap().to_owned();
        let body = json!({ "code": self.last_code() }).to_string();
        let path = format!("/v1/mfa/challenges/{id}/code");
        let v = self
            .user_as(sub, Challenge, "POST", &path, Some(&body))
            .await;
        v.ok(200)["assertion"].as_str().unwrap().to_owned()
    }

    async fn step_up(&self) -> String {
        self.step_up_as(USER).await
    }

    async fn provision(&self, user: &str, email_verified: bool) {
        let body = json!({"email": format!("{user}@example.com"), "email_verified": email_verified, "password_hash": hash("pw")});
        let path = format!("/v1/admin/applications/{APP}/users/{user}");
        self.admin("PUT", &path, Some(&body.to_string()))
            .await
            .ok(200);
    }

    async fn start_as(&self, sub: &str, body: Option<&str>) -> Answer {
        self.user_as(sub, EnrollmentStart, "POST", START, body)
            .await
    }

    async fn start(&self) -> String {
        self.start_as(USER, RIGHT_PW).await.id()
    }

    async fn status(&self) -> Value {
        self.user(EnrollmentStart, "GET", "/v1/mfa/status", None)
            .await
            .ok(200)
            .clone()
    }

    async fn phone_as(&self, sub: &str, id: &str, number: &str) -> Answer {
        let body = json!({ "phone_number": number }).to_string();
        self.user_as(sub, PhoneSubmit, "POST", &enr(id, "phone"), Some(&body))
            .await
    }

    async fn phone(&self, id: &str, number: &str) -> Answer {
        self.phone_as(USER, id, number).await
    }

    async fn code(&self, id: &str, code: &str) -> Answer {
        let body = json!({ "code": code }).to_string();
        self.user(CodeVerify, "POST", &enr(id, "code"), Some(&body))
            .await
    }

    async fn resend(&self, id: &str) -> Answer {
        self.user(CodeVerify, "POST", &enr(id, "resend"), None)
            .await
    }

    /// Ada at the code step, one text sent.
    async fn at_code_step() -> (H, String) {
        let h = H::optional().await;
        let id = h.start().await;
        h.phone(&id, PHONE).await.ok(202);
        (h, id)
    }

    /// Texts sent so far, as `(to, body)`.
    fn texts(&self) -> Vec<(String, String)> {
        kit::sent(&self.outbox).0
    }

    /// The code in the last text: its first 6 characters.
    fn last_code(&self) -> String {
        self.texts().last().unwrap().1.chars().take(6).collect()
    }

    fn wrong_code(&self) -> String {
        if self.last_code() == "000000" {
            "111111".into()
        } else {
            "000000".into()
        }
    }
}

// ---------------------------------------------------------------- admin: policy and users

#[tokio::test]
async fn a_never_configured_app_answers_the_default_policy() {
    let h = H::new();
    let a = h.admin("GET", POLICY, None).await;
    let p = a.ok(200);
    let shape = "allowed_countries app_id available display_name enabled enforcement factors \
                 grace_period_days include_in_signup updated_at updated_by version webotp_domain";
    assert_eq!(keys(p), shape);
    assert_eq!(p["app_id"], APP);
    assert_eq!(p["available"], false);
    assert_eq!(p["enabled"], false);
    assert_eq!(p["include_in_signup"], false);
    assert_eq!(p["factors"], serde_json::json!(["sms"]));
    assert_eq!(
        p["display_name"], APP,
        "the default name is the application's id"
    );
    assert_eq!(p["webotp_domain"], Value::Null);
    assert_eq!(p["grace_period_days"], 0);
    assert_eq!(p["enforcement"], "optional");
    assert_eq!(p["allowed_countries"], Value::Null);
    assert_eq!(p["version"], 0);
    assert_eq!(a.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_admin_fixture_is_refused_until_the_operator_makes_mfa_available() {
    let h = H::new();
    // The fixture exactly as API Gateway delivers it: PUT mfa-policy with an IAM caller.
    let as_delivered = fixture(ADMIN_FIXTURE);
    let msg = h
        .run(PolicyConfig, &as_delivered)
        .await
        .err(403, "mfa_not_available");
    assert!(msg.contains("customer success manager"), "{msg}");
    assert_eq!(h.admin("GET", POLICY, None).await.ok(200)["version"], 0);

    let a = h
        .admin("PUT", AVAILABILITY, Some(r#"{"available":true}"#))
        .await;
    let p = a.ok(200);
    assert_eq!(p["available"], true);
    assert_eq!(p["enabled"], false);
    assert_eq!(p["version"], 1);
    assert_eq!(p["updated_by"], ADMIN_ARN);

    let a = h.run(PolicyConfig, &as_delivered).await;
    let p = a.ok(200);
    assert_eq!(p["enabled"], true);
    assert_eq!(p["include_in_signup"], true);
    assert_eq!(p["version"], 2);
    assert_eq!(p["updated_by"], ADMIN_ARN);
    assert_eq!(p["updated_at"], rfc3339(T0));
    assert_eq!(h.admin("GET", POLICY, None).await.ok(200), p);
}

#[tokio::test]
async fn if_match_guards_the_policy_version() {
    let h = H::optional().await; // version 2
    let body = json!({"enabled": true, "include_in_signup": false, "enforcement": "required", "allowed_countries": ["US", "GB"]});
    let mut ev = shape(
        fixture(ADMIN_FIXTURE),
        "PUT",
        POLICY,
        Some(&body.to_string()),
    );
    ev["headers"]["if-match"] = json!("1");
    h.run(PolicyConfig, &ev).await.err(412, "version_conflict");
    ev["headers"]["if-match"] = json!("2");
    let a = h.run(PolicyConfig, &ev).await;
    let p = a.ok(200);
    assert_eq!(p["version"], 3);
    assert_eq!(p["enforcement"], "required");
    assert_eq!(p["allowed_countries"], json!(["US", "GB"]));
    // The same If-Match again is now stale.
    h.run(PolicyConfig, &ev).await.err(412, "version_conflict");
}

#[tokio::test]
async fn invalid_policies_are_refused_and_change_nothing() {
    let h = H::optional().await;
    let with_countries = |c: &str| json!({"enabled": true, "include_in_signup": false, "enforcement": "optional", "allowed_countries": [c]});
    let cases = [
        (policy(false, true, "optional"), "include_in_signup"),
        (policy(true, false, "sometimes"), "enforcement"),
        (with_countries("USA"), "allowed_countries"),
        (with_countries("ZZ"), "allowed_countries"),
        (
            json!({"enabled": "yes", "include_in_signup": false, "enforcement": "optional"}),
            "enabled",
        ),
    ];
    for (body, field) in cases {
        let msg = h.put_policy(&body).await.err(400, "invalid_request");
        assert!(msg.contains(field), "{body}: {msg}");
    }
    let a = h.admin("GET", POLICY, None).await;
    assert_eq!(a.ok(200)["version"], 2);
    assert_eq!(a.json["allowed_countries"], Value::Null);
}

#[tokio::test]
async fn users_are_provisioned_with_argon2_hashes_only() {
    let h = H::new();
    let path = format!("/v1/admin/applications/{APP}/users/{USER}");
    let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    let bad = json!({"email": "ada@example.com", "email_verified": true, "password_hash": bcrypt});
    let msg = h
        .admin("PUT", &path, Some(&bad.to_string()))
        .await
        .err(400, "invalid_request");
    assert!(msg.contains("password_hash"), "{msg}");

    let good =
        json!({"email": "ada@example.com", "email_verified": true, "password_hash": hash("pw")});
    let a = h.admin("PUT", &path, Some(&good.to_string())).await;
    let u = a.ok(200);
    assert_eq!(u["app_id"], APP);
    assert_eq!(u["user_id"], USER);
    assert_eq!(u["email"], "ada@example.com");
    assert_eq!(u["email_verified"], true);
    assert!(!a.text.contains("argon2"), "{}", a.text);
}

// ---------------------------------------------------------------- who is calling

#[tokio::test]
async fn a_request_without_an_authorizer_is_unauthenticated() {
    let h = H::optional().await;
    let ev = fixture("apigw-v2-no-authorizer.json");
    h.run(EnrollmentStart, &ev)
        .await
        .err(401, "unauthenticated");
    let admin = shape(ev.clone(), "GET", POLICY, None);
    h.run(PolicyConfig, &admin)
        .await
        .err(401, "unauthenticated");
    let phones = shape(ev, "GET", "/v1/mfa/phones", None);
    h.run(PhoneEdits, &phones).await.err(401, "unauthenticated");
}

#[tokio::test]
async fn user_claims_need_both_sub_and_app_id() {
    let h = H::optional().await;
    for claim in ["app_id", "sub"] {
        let mut ev = user_event(USER, "GET", "/v1/mfa/status", None);
        ev["requestContext"]["authorizer"]["jwt"]["claims"]
            .as_object_mut()
            .unwrap()
            .remove(claim);
        h.run(EnrollmentStart, &ev)
            .await
            .err(401, "unauthenticated");
    }
    // A user's JWT does not open the admin API.
    let ev = user_event(USER, "GET", POLICY, None);
    h.run(PolicyConfig, &ev).await.err(401, "unauthenticated");
}

// ---------------------------------------------------------------- status and skip

#[tokio::test]
async fn skip_postpones_the_prompt_for_seven_days() {
    let h = H::optional().await;
    let s = h.status().await;
    let shape = "can_skip email_verified enabled enforcement enroll_by enrolled factors phones prompt recovery_codes_remaining skipped_until totp";
    assert_eq!(keys(&s), shape);
    assert_eq!(s["prompt"], "enroll");
    assert_eq!(s["enabled"], true);
    assert_eq!(s["enrolled"], false);
    assert_eq!(s["can_skip"], true);
    assert_eq!(s["skipped_until"], Value::Null);
    assert_eq!(s["phones"], json!([]));

    let until = rfc3339(T0 + 7 * 24 * 3600);
    let a = h.user(EnrollmentStart, "POST", "/v1/mfa/skip", None).await;
    assert_eq!(a.ok(200), &json!({ "skipped_until": until }));

    h.clock.advance(3600);
    let s = h.status().await;
    assert_eq!(s["prompt"], "none");
    assert_eq!(s["skipped_until"], until);
}

#[tokio::test]
async fn skip_is_refused_when_disabled_or_required() {
    let h = H::with_policy(policy(false, false, "optional")).await;
    h.user(EnrollmentStart, "POST", "/v1/mfa/skip", Some("{}"))
        .await
        .err(403, "mfa_disabled");
    let h = H::with_policy(policy(true, true, "required")).await;
    h.user(EnrollmentStart, "POST", "/v1/mfa/skip", None)
        .await
        .err(403, "enrollment_required");
    let s = h.status().await;
    assert_eq!(s["prompt"], "enroll");
    assert_eq!(s["can_skip"], false);
}

#[tokio::test]
async fn under_required_a_grace_shows_enroll_by_and_skip_lasts_until_it() {
    let h = H::with_policy(json!({"enabled": true, "include_in_signup": true,
        "enforcement": "required", "grace_period_days": 3}))
    .await;
    let s = h.status().await;
    let end = rfc3339(T0 + 3 * 86_400);
    assert_eq!(
        (&s["prompt"], &s["can_skip"], &s["enroll_by"]),
        (&json!("enroll"), &json!(true), &json!(end))
    );
    // Seven days asked for, three left: the skip ends with the grace.
    let a = h.user(EnrollmentStart, "POST", "/v1/mfa/skip", None).await;
    assert_eq!(a.ok(200), &json!({ "skipped_until": end }));
    let s = h.status().await;
    assert_eq!(
        (&s["prompt"], &s["skipped_until"]),
        (&json!("none"), &json!(end))
    );
    h.clock.advance(3 * 86_400);
    let s = h.status().await;
    assert_eq!(
        (&s["prompt"], &s["can_skip"], &s["enroll_by"]),
        (&json!("enroll"), &json!(false), &Value::Null)
    );
    h.user(EnrollmentStart, "POST", "/v1/mfa/skip", None)
        .await
        .err(403, "enrollment_required");
}

#[tokio::test]
async fn the_grace_period_is_set_kept_and_checked_by_the_admin_api() {
    let h = H::optional().await; // version 2
    assert_eq!(
        h.admin("GET", POLICY, None).await.ok(200)["grace_period_days"],
        0
    );
    let mut body = policy(true, true, "required");
    body["grace_period_days"] = json!(14);
    let p = h.put_policy(&body).await.ok(200).clone();
    assert_eq!(
        (&p["grace_period_days"], &p["version"]),
        (&json!(14), &json!(3))
    );
    assert_eq!(h.admin("GET", POLICY, None).await.ok(200), &p);
    // Absent keeps it, like `factors`; 0 and 90 are the bounds.
    let p = h
        .put_policy(&policy(true, true, "optional"))
        .await
        .ok(200)
        .clone();
    assert_eq!(p["grace_period_days"], 14);
    for days in [0, 90] {
        body["grace_period_days"] = json!(days);
        assert_eq!(h.put_policy(&body).await.ok(200)["grace_period_days"], days);
    }
    for bad in [
        json!(91),
        json!(-1),
        json!(65_536),
        json!(1.5),
        json!(14.0),
        json!(null),
        json!("14"),
        json!(true),
        json!([14]),
    ] {
        body["grace_period_days"] = bad.clone();
        let msg = h.put_policy(&body).await.err(400, "invalid_request");
        assert!(msg.contains("grace_period_days"), "{bad}: {msg}");
    }
    let p = h.admin("GET", POLICY, None).await;
    assert_eq!(
        (&p.ok(200)["grace_period_days"], &p.json["version"]),
        (&json!(90), &json!(6))
    );
    // The audit log says each change of the grace period apart, and only those.
    let path = format!("/v1/admin/applications/{APP}/audit-events");
    let events = h.admin("GET", &path, None).await.ok(200)["events"].clone();
    let changes: Vec<Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "policy.updated")
        .map(|e| e["details"]["grace_period_days"].clone())
        .collect();
    assert_eq!(
        changes,
        [
            json!({"from": 0, "to": 90}),
            json!({"from": 14, "to": 0}),
            Value::Null,
            json!({"from": 0, "to": 14}),
            Value::Null,
        ]
    );
    let newest = &events[0]["details"];
    assert_eq!(
        (
            &newest["old"]["grace_period_days"],
            &newest["new"]["grace_period_days"]
        ),
        (&json!(0), &json!(90))
    );
}

// ---------------------------------------------------------------- start

#[tokio::test]
async fn start_checks_the_password_and_a_missing_user_looks_the_same() {
    let h = H::optional().await;
    let ada = h.start_as(USER, WRONG_PW).await;
    ada.err(401, "invalid_password");
    assert_eq!(ada.json["attempts_remaining"], 4);
    let ghost = h.start_as("user-nobody", RIGHT_PW).await;
    assert_eq!((ghost.status, &ghost.text), (ada.status, &ada.text));

    let a = h.start_as(USER, RIGHT_PW).await;
    let s = a.ok(201);
    assert_eq!(keys(s), "enrollment_id expires_at step");
    assert!(
        s["enrollment_id"].as_str().unwrap().starts_with("enr_"),
        "{s}"
    );
    assert_eq!(s["step"], "phone");
    assert_eq!(s["expires_at"], rfc3339(T0 + 1800));
}

#[tokio::test]
async fn the_fifth_wrong_password_locks_even_the_right_one() {
    let h = H::optional().await;
    for left in [4, 3, 2, 1] {
        let a = h.start_as(USER, WRONG_PW).await;
        a.err(401, "invalid_password");
        assert_eq!(a.json["attempts_remaining"], left);
    }
    let a = h.start_as(USER, WRONG_PW).await;
    a.err(429, "too_many_attempts");
    assert_eq!(a.json["retry_after"], 900);
    h.start_as(USER, RIGHT_PW)
        .await
        .err(429, "too_many_attempts");
}

#[tokio::test]
async fn start_refuses_unverified_emails_and_disabled_apps() {
    let h = H::optional().await;
    h.provision(BOB, false).await;
    h.start_as(BOB, RIGHT_PW)
        .await
        .err(409, "email_not_verified");
    let h = H::with_policy(policy(false, false, "optional")).await;
    h.start_as(USER, RIGHT_PW).await.err(403, "mfa_disabled");
}

// ---------------------------------------------------------------- phone

#[tokio::test]
async fn the_phone_step_texts_a_code_and_shows_only_the_masked_number() {
    let h = H::optional().await;
    let id = h.start().await;
    let a = h.phone(&id, PHONE).await;
    let p = a.ok(202);
    let shape = "attempts_remaining code_expires_at phone resend_available_at step";
    assert_eq!(keys(p), shape);
    assert_eq!(p["step"], "code");
    assert_eq!(p["phone"], json!({ "masked": MASKED }));
    assert_eq!(p["attempts_remaining"], 5);
    assert_eq!(p["code_expires_at"], rfc3339(T0 + 600));
    assert_eq!(p["resend_available_at"], rfc3339(T0 + 30));
    assert!(
        !a.text.contains("4155550123") && !a.text.contains("555-0123"),
        "{}",
        a.text
    );
    let texts = h.texts();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0, "+14155550123");
    assert!(
        h.last_code().bytes().all(|b| b.is_ascii_digit()),
        "{texts:?}"
    );
}

#[tokio::test]
async fn bad_and_unsupported_numbers_are_refused() {
    let h = H::optional().await;
    let id = h.start().await;
    // Nothing to check or resend before a number is in.
    h.code(&id, "123456").await.err(409, "wrong_step");
    h.resend(&id).await.err(409, "wrong_step");
    for bad in [
        "4155550123",
        "+1 415 555 012x",
        "+1 23",
        "+1 415 555 0123 ext 9",
    ] {
        h.phone(&id, bad).await.err(400, "invalid_phone_number");
    }
    h.phone(&id, "+1 800 555 0123")
        .await
        .err(422, "unsupported_number_type");
    assert!(h.texts().is_empty());
}

#[tokio::test]
async fn numbers_outside_allowed_countries_are_refused() {
    let gb = json!({"enabled": true, "include_in_signup": true, "enforcement": "optional", "allowed_countries": ["GB"]});
    let h = H::with_policy(gb).await;
    let id = h.start().await;
    let msg = h.phone(&id, PHONE).await.err(422, "country_not_allowed");
    assert!(!msg.contains("4155550123"), "{msg}");
    h.phone(&id, "+44 7400 123456").await.ok(202);
}

#[tokio::test]
async fn unknown_and_other_users_enrollments_are_not_found() {
    let h = H::optional().await;
    h.provision(BOB, true).await;
    let made_up = format!("enr_{}", "0123456789abcdef".repeat(2));
    let not_found = h.phone(&made_up, PHONE).await;
    let msg = not_found.err(404, "enrollment_not_found");
    h.phone("not-an-id", PHONE)
        .await
        .err(404, "enrollment_not_found");

    let bobs = h.start_as(BOB, RIGHT_PW).await.id();
    let a = h.phone(&bobs, PHONE).await;
    assert_eq!(a.err(404, "enrollment_not_found"), msg);
    assert_eq!(a.text, not_found.text);
    h.resend(&bobs).await.err(404, "enrollment_not_found");
    assert!(h.texts().is_empty());
}

// ---------------------------------------------------------------- code and resend

#[tokio::test]
async fn a_code_that_is_not_six_ascii_digits_is_invalid_and_not_counted() {
    let (h, id) = H::at_code_step().await;
    for code in ["12345", "１２３４５６", "1234567", "-12345", " 123456", ""] {
        let msg = h.code(&id, code).await.err(400, "invalid_request");
        assert!(msg.contains("code"), "{code:?}: {msg}");
    }
    let number = h
        .user(
            CodeVerify,
            "POST",
            &enr(&id, "code"),
            Some(r#"{"code":123456}"#),
        )
        .await;
    assert!(
        number.err(400, "invalid_request").contains("code"),
        "{}",
        number.text
    );

    let wrong = h.code(&id, &h.wrong_code()).await;
    wrong.err(400, "invalid_code");
    assert_eq!(wrong.json["attempts_remaining"], 4);
}

#[tokio::test]
async fn resend_waits_for_the_cooldown_and_replaces_the_code() {
    let (h, id) = H::at_code_step().await;
    let first = h.last_code();
    let a = h.resend(&id).await;
    a.err(429, "resend_too_soon");
    assert_eq!(a.header("retry-after"), Some("30"));
    h.clock.advance(10);
    let a = h
        .user(CodeVerify, "POST", &enr(&id, "resend"), Some("{}"))
        .await;
    a.err(429, "resend_too_soon");
    assert_eq!(a.json["retry_after"], 20);
    assert_eq!(h.texts().len(), 1);

    h.clock.advance(20);
    let a = h.resend(&id).await;
    let r = a.ok(202);
    let shape = "attempts_remaining code_expires_at resend_available_at";
    assert_eq!(keys(r), shape);
    assert_eq!(r["code_expires_at"], rfc3339(T0 + 30 + 600));
    assert_eq!(r["resend_available_at"], rfc3339(T0 + 60));
    assert_eq!(r["attempts_remaining"], 5);
    let texts = h.texts();
    assert_eq!((texts.len(), texts[1].0.as_str()), (2, "+14155550123"));

    let second = h.last_code();
    if first != second {
        h.code(&id, &first).await.err(400, "invalid_code");
    }
    assert_eq!(h.code(&id, &second).await.ok(200)["step"], "complete");
}

#[tokio::test]
async fn the_fifth_wrong_code_burns_it_until_a_resend() {
    let (h, id) = H::at_code_step().await;
    let (right, wrong) = (h.last_code(), h.wrong_code());
    for left in [4, 3, 2, 1] {
        let a = h.code(&id, &wrong).await;
        a.err(400, "invalid_code");
        assert_eq!(a.json["attempts_remaining"], left);
    }
    h.code(&id, &wrong).await.err(429, "too_many_attempts");
    h.code(&id, &right).await.err(429, "too_many_attempts");
    h.clock.advance(30);
    h.resend(&id).await.ok(202);
    assert_eq!(
        h.code(&id, &h.last_code()).await.ok(200)["step"],
        "complete"
    );
}

#[tokio::test]
async fn codes_expire_after_ten_minutes_and_enrollments_after_thirty() {
    let (h, id) = H::at_code_step().await;
    h.clock.advance(600);
    h.code(&id, &h.last_code()).await.err(410, "code_expired");
    h.resend(&id).await.ok(202);
    h.clock.advance(1200);
    h.code(&id, &h.last_code())
        .await
        .err(404, "enrollment_not_found");
    h.phone(&id, PHONE).await.err(404, "enrollment_not_found");
}

#[tokio::test]
async fn an_enrollment_sends_at_most_five_texts() {
    let (h, id) = H::at_code_step().await;
    for _ in 0..4 {
        h.clock.advance(30);
        h.resend(&id).await.ok(202);
    }
    h.clock.advance(30);
    let a = h.resend(&id).await;
    a.err(429, "send_limit_reached");
    assert_eq!(a.json["retry_after"], 1800 - 5 * 30);
    assert_eq!(h.texts().len(), 5);
}

#[tokio::test]
async fn a_number_gets_at_most_five_texts_an_hour_across_users() {
    let (h, id) = H::at_code_step().await;
    for _ in 0..4 {
        h.clock.advance(30);
        h.resend(&id).await.ok(202);
    }
    h.provision(BOB, true).await;
    let bobs = h.start_as(BOB, RIGHT_PW).await.id();
    let a = h.phone_as(BOB, &bobs, PHONE).await;
    a.err(429, "rate_limited");
    assert_eq!(a.json["retry_after"], 3600 - 4 * 30);
    assert_eq!(h.texts().len(), 5);
}

#[tokio::test]
async fn the_ip_budget_uses_the_source_ip_never_a_header() {
    let limits = Limits {
        texts_per_ip_per_hour: 1,
        ..Limits::default()
    };
    let h = H::with_limits(limits)
        .configured(policy(true, true, "optional"))
        .await;
    let id = h.start().await;
    h.phone(&id, PHONE).await.ok(202);
    h.provision(BOB, true).await;
    let bobs = h.start_as(BOB, RIGHT_PW).await.id();
    let body = json!({ "phone_number": "+1 415 555 0199" }).to_string();
    let mut ev = user_event(BOB, "POST", &enr(&bobs, "phone"), Some(&body));
    ev["headers"]["x-forwarded-for"] = json!("192.0.2.99");
    let a = h.run(PhoneSubmit, &ev).await;
    assert!(a.err(429, "rate_limited").contains("IP"), "{}", a.text);
    ev["requestContext"]["http"]["sourceIp"] = json!("192.0.2.99");
    h.run(PhoneSubmit, &ev).await.ok(202);
}

#[tokio::test]
async fn a_corrected_number_replaces_the_pending_one() {
    let (h, id) = H::at_code_step().await;
    let first = h.last_code();
    let a = h.phone(&id, "+1 415-555-0199").await;
    assert_eq!(a.ok(202)["phone"]["masked"], "+1••••••0199");
    assert_eq!(h.texts().last().unwrap().0, "+14155550199");
    if first != h.last_code() {
        h.code(&id, &first).await.err(400, "invalid_code");
    }
    let done = h.code(&id, &h.last_code()).await;
    assert_eq!(done.ok(200)["phone"]["masked"], "+1••••••0199");
}

#[tokio::test]
async fn the_texted_code_completes_enrollment_and_emails_the_user() {
    let (h, id) = H::at_code_step().await;
    let a = h.code(&id, &h.last_code()).await;
    let c = a.ok(200);
    assert_eq!(keys(c), "confirmation_email phone step");
    let shape = "label masked phone_id primary verified_at";
    assert_eq!(keys(&c["phone"]), shape);
    assert_eq!(c["step"], "complete");
    assert_eq!(c["confirmation_email"], "sent");
    assert_eq!(c["phone"]["masked"], MASKED);
    assert_eq!(c["phone"]["primary"], true);
    assert_eq!(c["phone"]["verified_at"], rfc3339(T0));
    assert!(
        c["phone"]["phone_id"].as_str().unwrap().starts_with("ph_"),
        "{c}"
    );
    assert!(!a.text.contains("4155550123"), "{}", a.text);
    let emails = h.outbox.snapshot().email;
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].to, "user-ada@example.com");

    let s = h.status().await;
    assert_eq!(s["enrolled"], true);
    assert_eq!(s["prompt"], "none");
    assert_eq!(s["phones"], json!([c["phone"]]));
    // The code is single-use, and the enrollment is over.
    h.code(&id, &h.last_code()).await.err(409, "wrong_step");
    h.phone(&id, "+1 415 555 0199").await.err(409, "wrong_step");
    h.resend(&id).await.err(409, "wrong_step");
    h.start_as(USER, RIGHT_PW)
        .await
        .err(409, "already_enrolled");
}

#[tokio::test]
async fn a_failed_confirmation_email_does_not_undo_the_enrollment() {
    let (h, id) = H::at_code_step().await;
    h.outbox.set_email_failing(true);
    let a = h.code(&id, &h.last_code()).await;
    let c = a.ok(200);
    assert_eq!(c["step"], "complete");
    assert_eq!(c["confirmation_email"], "failed");
    assert_eq!(h.status().await["enrolled"], true);
}

#[tokio::test]
async fn a_failed_text_answers_502_and_the_enrollment_stays_usable() {
    let h = H::optional().await;
    let id = h.start().await;
    h.outbox.set_sms_failing(true);
    h.phone(&id, PHONE).await.err(502, "sms_send_failed");
    h.outbox.set_sms_failing(false);
    h.phone(&id, PHONE).await.ok(202);
    assert_eq!(
        h.code(&id, &h.last_code()).await.ok(200)["step"],
        "complete"
    );
}

#[tokio::test]
async fn a_throttled_text_answers_503_with_retry_after_and_the_enrollment_stays_usable() {
    let h = H::optional().await;
    let id = h.start().await;
    h.outbox.set_sms_throttled(true);
    let a = h.phone(&id, PHONE).await;
    a.err(503, "service_unavailable");
    assert_eq!(a.header("retry-after"), Some("2"), "{a:?}");
    assert_eq!(a.json["retry_after"], 2, "{a:?}");
    h.outbox.set_sms_throttled(false);
    h.phone(&id, PHONE).await.ok(202);
    assert_eq!(
        h.code(&id, &h.last_code()).await.ok(200)["step"],
        "complete"
    );
}

// ---------------------------------------------------------------- phones in settings

#[tokio::test]
async fn phones_in_settings_over_the_handler() {
    let (h, id) = H::at_code_step().await;
    h.code(&id, &h.last_code()).await.ok(200);
    h.clock.advance(31);

    let list = h.user(PhoneEdits, "GET", "/v1/mfa/phones", None).await;
    let phones = list.ok(200)["phones"].as_array().unwrap().clone();
    assert_eq!(phones.len(), 1);
    assert_eq!(phones[0]["masked"], MASKED);
    let first = phones[0]["phone_id"].as_str().unwrap().to_owned();

    let add = Some(r#"{"password":"pw","phone_number":"+1 415 555 0188","label":"Desk"}"#);
    // Enrolled: a change needs the step-up proof first.
    h.user(PhoneEdits, "POST", "/v1/mfa/phones", add)
        .await
        .err(403, "step_up_required");
    let proof = h.step_up().await;
    let a = h
        .user_proving(USER, &proof, PhoneEdits, "POST", "/v1/mfa/phones", add)
        .await;
    let body = a.ok(202).clone();
    assert_eq!(
        (body["purpose"].as_str(), body["step"].as_str()),
        (Some("add"), Some("code"))
    );
    assert_eq!(body["phone"]["masked"], "+1••••••0188");
    assert!(!a.text.contains("4155550188"));
    let add_id = body["enrollment_id"].as_str().unwrap().to_owned();
    let done = h.code(&add_id, &h.last_code()).await;
    assert_eq!(done.ok(200)["phone"]["primary"], false);

    let list = h.user(PhoneEdits, "GET", "/v1/mfa/phones", None).await;
    let second = list.ok(200)["phones"][1]["phone_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/mfa/phones/{second}");
    let p = h
        .user(
            PhoneEdits,
            "PATCH",
            &path,
            Some(r#"{"primary":true,"label":"Work"}"#),
        )
        .await;
    assert_eq!(
        (p.ok(200)["primary"].clone(), p.json["label"].clone()),
        (json!(true), json!("Work"))
    );

    h.user(PhoneEdits, "PATCH", &path, Some(r#"{"primary":false}"#))
        .await
        .err(400, "invalid_request");
    h.user(PhoneEdits, "PATCH", &path, Some("{}"))
        .await
        .err(400, "invalid_request");
    // `null` is a wrong type, not "absent": the label is not cleared behind the caller's back.
    let nulled = h
        .user(
            PhoneEdits,
            "PATCH",
            &path,
            Some(r#"{"label":"","primary":null}"#),
        )
        .await;
    nulled.err(400, "invalid_request");
    assert!(
        nulled.json["message"].as_str().unwrap().contains("primary"),
        "{:?}",
        nulled.json
    );
    let list = h.user(PhoneEdits, "GET", "/v1/mfa/phones", None).await;
    let phones = list.ok(200)["phones"].as_array().unwrap().clone();
    let work = phones.iter().find(|p| p["phone_id"] == second.as_str());
    assert_eq!(work.unwrap()["label"], "Work");
    h.user(
        Challenge,
        "POST",
        "/v1/mfa/challenges",
        Some(r#"{"phone_id":null}"#),
    )
    .await
    .err(400, "invalid_request");
    h.user(
        PhoneEdits,
        "PATCH",
        "/v1/mfa/phones/not-an-id",
        Some(r#"{"label":"x"}"#),
    )
    .await
    .err(404, "phone_not_found");
    h.user(
        PhoneEdits,
        "POST",
        "/v1/mfa/phones",
        Some(r#"{"password":"pw","phone_number":"+14155550199","extra":1}"#),
    )
    .await
    .err(400, "invalid_request");

    // The same assertion serves several changes within its lifetime.
    let d = h
        .user_proving(
            USER,
            &proof,
            PhoneEdits,
            "DELETE",
            &format!("/v1/mfa/phones/{first}"),
            RIGHT_PW,
        )
        .await;
    assert_eq!(d.status, 204);
    let list = h.user(PhoneEdits, "GET", "/v1/mfa/phones", None).await;
    assert_eq!(list.ok(200)["phones"].as_array().unwrap().len(), 1);
    // Bob has no phone, so no proof is asked of him; Ada's phone is still not his.
    h.provision(BOB, true).await;
    h.user_as(BOB, PhoneEdits, "DELETE", &path, RIGHT_PW)
        .await
        .err(404, "phone_not_found");
}

#[tokio::test]
async fn the_adoption_figures_over_the_handler() {
    let (h, id) = H::at_code_step().await;
    let stats = format!("/v1/admin/applications/{APP}/mfa-stats");
    let before = h.admin("GET", &stats, None).await;
    assert_eq!(before.ok(200)["enrolled"], 0);
    h.code(&id, &h.last_code()).await.ok(200);
    let after = h.admin("GET", &stats, None).await;
    assert_eq!(
        after.ok(200),
        &json!({
            "users": 1,
            "enrolled": 1,
            "enrolled_by_factor": {"sms": 1, "totp": 0},
            "skips_last_7_days": 0,
            "texts_last_24h": 1,
            "texts_per_day_limit": Limits::default().texts_per_app_per_day,
            "as_of": rfc3339(T0),
        })
    );
    // Read-only: another method is refused; a user token is not an admin.
    assert_eq!(h.admin("POST", &stats, Some("{}")).await.status, 405);
    let as_user = h.user(PolicyConfig, "GET", &stats, None).await;
    assert!(matches!(as_user.status, 401 | 403), "{}", as_user.status);
}

#[tokio::test]
async fn admin_reset_and_audit_events_over_the_handler() {
    let (h, id) = H::at_code_step().await;
    h.code(&id, &h.last_code()).await.ok(200);
    let reset = format!("/v1/admin/applications/{APP}/users/{USER}/mfa");
    assert_eq!(h.admin("DELETE", &reset, None).await.status, 204);
    assert_eq!(h.status().await["enrolled"], false);

    let events = format!("/v1/admin/applications/{APP}/audit-events");
    let all = h.admin("GET", &events, None).await;
    let list = all.ok(200)["events"].as_array().unwrap().clone();
    assert_eq!(list[0]["action"], "mfa.reset");
    assert_eq!(list[0]["actor"], ADMIN_ARN);
    assert_eq!(list[0]["user_id"], USER);
    assert!(!all.text.contains("4155550123"));

    let mut ev = shape(fixture(ADMIN_FIXTURE), "GET", &events, None);
    ev["rawQueryString"] = json!(format!("user_id={USER}&limit=1"));
    let page = h.run(PolicyConfig, &ev).await;
    let page = page.ok(200).clone();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    ev["rawQueryString"] = json!(format!("user_id={USER}&limit=1&cursor={cursor}"));
    let next = h.run(PolicyConfig, &ev).await;
    assert_eq!(next.ok(200)["events"][0]["action"], "enrollment.completed");

    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=nothex",
        "user_id=a%23b",
    ] {
        ev["rawQueryString"] = json!(bad);
        h.run(PolicyConfig, &ev).await.err(400, "invalid_request");
    }
}

// ---------------------------------------------------------------- conventions

#[tokio::test]
async fn bad_bodies_are_invalid_requests_naming_the_field_and_cost_no_attempt() {
    let h = H::optional().await;
    let cases = [
        (r#"{"password":"#, ""),
        ("[1,2", ""),
        ("{}", "password"),
        (r#"{"password":5}"#, "password"),
        (r#"{"password":null}"#, "password"),
        (r#"{"password":"pw","remember_me":true}"#, "remember_me"),
        (r#"{"password":"pw"} {"password":"pw"}"#, ""),
        (r#"{"password":"pw"}x"#, ""),
        ("{not json", "not valid JSON"),
        (r#"{"password":14155550123}"#, "password"),
    ];
    for (body, field) in cases {
        let msg = h
            .start_as(USER, Some(body))
            .await
            .err(400, "invalid_request");
        assert!(msg.contains(field), "{body}: {msg}");
        assert!(
            !msg.contains("line 1") && !msg.contains('?'),
            "{body}: {msg}"
        );
    }
    let a = h.start_as(USER, WRONG_PW).await;
    a.err(401, "invalid_password");
    assert_eq!(a.json["attempts_remaining"], 4);
    // Unknown fields on the other functions too.
    let id = h.start().await;
    let body = json!({"phone_number": PHONE, "country": "US"}).to_string();
    let a = h
        .user(PhoneSubmit, "POST", &enr(&id, "phone"), Some(&body))
        .await;
    assert!(
        a.err(400, "invalid_request").contains("country"),
        "{}",
        a.text
    );
    let a = h
        .admin("PUT", AVAILABILITY, Some(r#"{"available":true,"why":"x"}"#))
        .await;
    assert!(a.err(400, "invalid_request").contains("why"), "{}", a.text);
}

#[tokio::test]
async fn bodies_over_16_kib_are_too_large() {
    let h = H::optional().await;
    let big = json!({ "password": "a".repeat(16 * 1024) }).to_string();
    h.start_as(USER, Some(&big))
        .await
        .err(413, "payload_too_large");
    let mut big_policy = policy(true, true, "optional");
    big_policy["allowed_countries"] = json!(vec!["US"; 4000]);
    h.put_policy(&big_policy)
        .await
        .err(413, "payload_too_large");
    // Just under the limit is read (and is simply the wrong password).
    let fits = json!({ "password": "a".repeat(16 * 1024 - 20) }).to_string();
    h.start_as(USER, Some(&fits))
        .await
        .err(401, "invalid_password");
}

#[tokio::test]
async fn an_unknown_method_on_a_known_path_is_405() {
    let h = H::optional().await;
    let id = format!("enr_{}", "ab".repeat(16));
    let cases = [
        (EnrollmentStart, "DELETE", "/v1/mfa/status".to_owned()),
        (EnrollmentStart, "GET", START.to_owned()),
        (EnrollmentStart, "PUT", "/v1/mfa/skip".to_owned()),
        (PhoneSubmit, "GET", enr(&id, "phone")),
        (CodeVerify, "GET", enr(&id, "code")),
        (CodeVerify, "DELETE", enr(&id, "resend")),
    ];
    for (f, method, path) in cases {
        h.user(f, method, &path, None)
            .await
            .err(405, "method_not_allowed");
    }
    h.admin("DELETE", POLICY, None)
        .await
        .err(405, "method_not_allowed");
    h.admin("POST", AVAILABILITY, Some(r#"{"available":true}"#))
        .await
        .err(405, "method_not_allowed");
    let user = format!("/v1/admin/applications/{APP}/users/{USER}");
    h.admin("GET", &user, None)
        .await
        .err(405, "method_not_allowed");
}

#[tokio::test]

async fn a_405_names_the_methods_the_path_accepts() {
    let h = H::optional().await;
    let a = h
        .user(EnrollmentStart, "DELETE", "/v1/mfa/status", None)
        .await;
    a.err(405, "method_not_allowed");
    assert_eq!(a.header("allow"), Some("GET"));
    assert_eq!(
        h.admin("DELETE", POLICY, None).await.header("allow"),
        Some("GET, PUT")
    );
}

#[tokio::test]
async fn a_base64_encoded_body_is_read() {
    let h = H::optional().await;
    // The fixture as API Gateway delivers a body it encoded: `{"password": "pw"}`.
    let ev = fixture("apigw-v2-user-jwt-base64-body.json");
    let id = h.run(EnrollmentStart, &ev).await.id();

    let body = json!({ "phone_number": PHONE, "label": "Ada’s phone" }).to_string();
    let mut ev = ev;
    ev["rawPath"] = json!(enr(&id, "phone"));
    ev["requestContext"]["http"]["path"] = ev["rawPath"].clone();
    ev["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body.as_bytes()));
    h.run(PhoneSubmit, &ev).await.ok(202);

    let done = h.code(&id, &h.last_code()).await;
    assert_eq!(done.ok(200)["phone"]["label"], "Ada’s phone");
}

#[tokio::test]
async fn a_named_stage_in_raw_path_is_not_part_of_the_route() {
    let h = H::optional().await;
    let mut ev = user_event(USER, "GET", "/prod/v1/mfa/status", None);
    ev["requestContext"]["stage"] = json!("prod");
    let req = lambda_http::request::from_str(&ev.to_string()).unwrap();
    let resp = dispatch(EnrollmentStart, &h.svc, req).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["prompt"], "enroll");
}

#[tokio::test]
async fn a_body_must_say_it_is_json() {
    let h = H::optional().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut ev = user_event(USER, "POST", START, RIGHT_PW);
        match content_type {
            None => {
                ev["headers"]
                    .as_object_mut()
                    .unwrap()
                    .remove("content-type");
            }
            Some(ct) => ev["headers"]["content-type"] = json!(ct),
        }
        let msg = h
            .run(EnrollmentStart, &ev)
            .await
            .err(400, "invalid_request");
        assert!(msg.contains("application/json"), "{content_type:?}: {msg}");
    }
    // A route without a body needs no Content-Type.
    let ev = user_event(USER, "GET", "/v1/mfa/status", None);
    let mut ev = ev;
    ev["headers"]
        .as_object_mut()
        .unwrap()
        .remove("content-type");
    h.run(EnrollmentStart, &ev).await.ok(200);
}

// ---------------------------------------------------------------- step-up (contract v2)

/// Ada enrolled with `PHONE`, the clock past the resend cooldown.
async fn enrolled() -> H {
    let (h, id) = H::at_code_step().await;
    h.code(&id, &h.last_code()).await.ok(200);
    h.clock.advance(31);
    h
}

/// Claims as the service signs them, for Ada in `APP`, valid now.
fn claims(h: &H) -> Value {
    let now = mfa_shared::ports::Clock::now(h.clock.as_ref()).0;
    json!({ "iss": "mfa", "sub": USER, "app_id": APP, "amr": ["sms"], "iat": now,
            "exp": now + 300, "jti": "00" })
}

async fn ada_phone_path(h: &H) -> String {
    let list = h.user(PhoneEdits, "GET", "/v1/mfa/phones", None).await;
    let id = list.ok(200)["phones"][0]["phone_id"]
        .as_str()
        .unwrap()
        .to_owned();
    format!("/v1/mfa/phones/{id}")
}

#[tokio::test]
async fn without_a_proof_factor_changes_answer_403_and_no_password_attempt_is_counted() {
    let h = enrolled().await;
    let phone = ada_phone_path(&h).await;
    let add = r#"{"password":"not-it","phone_number":"+14155550188"}"#;
    let replace = r#"{"password":"not-it","phone_number":"+14155550177"}"#;
    // Wrong passwords, many times over the lockout limit, without a proof.
    for _ in 0..3 {
        let m = h
            .user(PhoneEdits, "POST", "/v1/mfa/phones", Some(add))
            .await
            .err(403, "step_up_required");
        assert!(m.contains("code"), "{m}");
        h.user(PhoneEdits, "PUT", &phone, Some(replace))
            .await
            .err(403, "step_up_required");
        h.user(PhoneEdits, "DELETE", &phone, WRONG_PW)
            .await
            .err(403, "step_up_required");
        h.user(Challenge, "POST", "/v1/mfa/recovery-codes", WRONG_PW)
            .await
            .err(403, "step_up_required");
    }
    // An empty header is no proof either.
    h.user_proving(USER, " ", PhoneEdits, "DELETE", &phone, WRONG_PW)
        .await
        .err(403, "step_up_required");
    // None of them was a password attempt: the first real one still has 4 left after it.
    let proof = h.step_up().await;
    let wrong = h
        .user_proving(USER, &proof, PhoneEdits, "DELETE", &phone, WRONG_PW)
        .await;
    wrong.err(401, "invalid_password");
    assert_eq!(wrong.json["attempts_remaining"], 4);
    // Relabel and make-primary need no proof.
    h.user(PhoneEdits, "PATCH", &phone, Some(r#"{"label":"Home"}"#))
        .await
        .ok(200);
    // Nothing was texted or changed by the refused requests: the phone is still the only one.
    let list = h.user(PhoneEdits, "GET", "/v1/mfa/phones", None).await;
    assert_eq!(list.ok(200)["phones"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn only_a_valid_assertion_of_this_user_and_app_is_a_proof() {
    let h = enrolled().await;
    h.provision(BOB, true).await;
    let bob_enrollment = h.start_as(BOB, RIGHT_PW).await.id();
    h.phone_as(BOB, &bob_enrollment, "+14155550166")
        .await
        .ok(202);
    let body = json!({ "code": h.last_code() }).to_string();
    h.user_as(
        BOB,
        CodeVerify,
        "POST",
        &enr(&bob_enrollment, "code"),
        Some(&body),
    )
    .await
    .ok(200);
    h.clock.advance(31);
    let bobs = h.step_up_as(BOB).await;
    let phone = ada_phone_path(&h).await;
    let signing = h.svc.signing.clone().unwrap();
    let sign = |patch: Value| {
        let mut c = claims(&h);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        signing.sign(&c).unwrap()
    };
    let stranger = mfa_shared::signing::SigningKeys::random().unwrap();
    let forged_sig = {
        let good = sign(json!({}));
        let (input, _) = good.rsplit_once('.').unwrap();
        let other = stranger.sign(&claims(&h)).unwrap();
        format!("{input}.{}", other.rsplit_once('.').unwrap().1)
    };
    let refused = [
        ("another user's", bobs.clone()),
        ("another app's", sign(json!({ "app_id": "app-other" }))),
        (
            "expired",
            sign(json!({ "exp": mfa_shared::ports::Clock::now(h.clock.as_ref()).0 })),
        ),
        ("another issuer's", sign(json!({ "iss": "someone-else" }))),
        ("a factor we never issue", sign(json!({ "amr": ["pwd"] }))),
        ("no amr", sign(json!({ "amr": [] }))),
        ("another key's", stranger.sign(&claims(&h)).unwrap()),
        ("a signature of other claims", forged_sig),
        ("not a JWS", "not-a-token".to_owned()),
        ("empty JSON parts", "e30.e30.AAAA".to_owned()),
        ("100 kB of it", "A".repeat(100_000)),
    ];
    for (what, token) in refused {
        let a = h
            .user_proving(USER, &token, PhoneEdits, "DELETE", &phone, RIGHT_PW)
            .await;
        assert_eq!(
            (a.status, a.json["error"].as_str()),
            (403, Some("step_up_required")),
            "{what}: {}",
            a.text
        );
    }
    // Bob's own assertion works for Bob (his own phone: a 409 would mean it got past the proof).
    let list = h
        .user_as(BOB, PhoneEdits, "GET", "/v1/mfa/phones", None)
        .await;
    let bob_phone = list.ok(200)["phones"][0]["phone_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.user_proving(
        BOB,
        &bobs,
        PhoneEdits,
        "PATCH",
        &format!("/v1/mfa/phones/{bob_phone}"),
        Some(r#"{"label":"x"}"#),
    )
    .await
    .ok(200);
    let a = h
        .user_proving(
            BOB,
            &bobs,
            Challenge,
            "POST",
            "/v1/mfa/recovery-codes",
            RIGHT_PW,
        )
        .await;
    assert_eq!(a.ok(201)["codes"].as_array().unwrap().len(), 10);
    // An assertion expires with its 5 minutes.
    h.clock.advance(301);
    h.user_proving(
        BOB,
        &bobs,
        Challenge,
        "POST",
        "/v1/mfa/recovery-codes",
        RIGHT_PW,
    )
    .await
    .err(403, "step_up_required");
    // And a right one of Ada's, for Ada, is a proof.
    let proof = h.step_up().await;
    let added = h
        .user_proving(
            USER,
            &proof,
            PhoneEdits,
            "POST",
            "/v1/mfa/phones",
            Some(r#"{"password":"pw","phone_number":"+14155550188"}"#),
        )
        .await;
    added.ok(202);
}

#[tokio::test]
async fn a_user_who_lost_their_phone_replaces_it_with_a_recovery_code_assertion() {
    let h = enrolled().await;
    let proof = h.step_up().await;
    let set = h
        .user_proving(
            USER,
            &proof,
            Challenge,
            "POST",
            "/v1/mfa/recovery-codes",
            RIGHT_PW,
        )
        .await;
    let code = set.ok(201)["codes"][0].as_str().unwrap().to_owned();
    // Later, the phone is gone: a recovery code signs the user in.
    h.clock.advance(3600);
    let body = json!({ "code": code }).to_string();
    let r = h
        .user(
            Challenge,
            "POST",
            "/v1/mfa/challenges/recovery",
            Some(&body),
        )
        .await;
    let recovery = r.ok(200)["assertion"].as_str().unwrap().to_owned();
    let phone = ada_phone_path(&h).await;
    let sent = h
        .user_proving(
            USER,
            &recovery,
            PhoneEdits,
            "PUT",
            &phone,
            Some(r#"{"password":"pw","phone_number":"+14155550177"}"#),
        )
        .await;
    let id = sent.ok(202)["enrollment_id"].as_str().unwrap().to_owned();
    assert_eq!(h.texts().last().unwrap().0, "+14155550177");
    let done = h.code(&id, &h.last_code()).await;
    assert_eq!(done.ok(200)["phone"]["masked"], "+1••••••0177");
}

#[tokio::test]
async fn the_first_factor_needs_no_proof() {
    let h = H::optional().await;
    // From settings, a user with no phone adds one with the password alone.
    let a = h
        .user(
            PhoneEdits,
            "POST",
            "/v1/mfa/phones",
            Some(r#"{"password":"pw","phone_number":"+14155550188"}"#),
        )
        .await;
    let id = a.ok(202)["enrollment_id"].as_str().unwrap().to_owned();
    h.code(&id, &h.last_code()).await.ok(200);
    // Now enrolled: the next change needs one.
    h.user(
        PhoneEdits,
        "POST",
        "/v1/mfa/phones",
        Some(r#"{"password":"pw","phone_number":"+14155550189"}"#),
    )
    .await
    .err(403, "step_up_required");
    // The admin reset needs none, and afterwards the user starts over without one.
    let reset = format!("/v1/admin/applications/{APP}/users/{USER}/mfa");
    assert_eq!(h.admin("DELETE", &reset, None).await.status, 204);
    h.start().await;
}
