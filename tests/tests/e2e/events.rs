//! `events/`: one API Gateway HTTP API (v2) event per route, for
//! `sam local invoke <Function> -e events/<name>.json`. `sam local` runs neither the JWT nor the
//! IAM authorizer, so each event carries the authorizer context a deployment would put there:
//! the JWT claims (`sub`, `app_id`, scope) of `shared/tests/fixtures/apigw-v2-user-jwt.json` for
//! user routes, the IAM caller of `apigw-v2-admin-iam.json` for admin and operator routes, none
//! for the public JWKS.
//!
//! The files are generated here from the route table and those fixtures, and committed (users
//! need them without building). The tests check that they are exactly what the generator makes,
//! one per route and nothing else, each naming its route, and that each one gets past its
//! handler's authorizer check: a file the handler would answer `401` is what a `sam local` user
//! would hit. Regenerate them with `MFA_WRITE_EVENTS=1 cargo test -p mfa-tests --test e2e
//! events::events_are_the_generated` (that test alone: the others read the files).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use lambda_http::Request;
use lambda_http::request::LambdaRequest;
use mfa_shared::Service;
use mfa_shared::config::{Limits, Settings};
use mfa_shared::http::dispatch;
use mfa_shared::http::routes::{Access, Function, ROUTES, Route, function_for, segments};
use mfa_shared::ports::SystemClock;
use mfa_tests::root;
use serde_json::{Value, json};

/// The application and user of the fixtures' claims: admin paths name the same ones, so that
/// the events make one walk (availability, policy, user, enrollment...).
const APP: &str = "app-acme";
const USER: &str = "user-ada";

/// `mfa-local hash-password` of `pw`, the password of the fixtures' bodies: the provisioning
/// event makes a user that the enrollment event can sign in as.
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$vOKimuix1RLUXMlYmtrLzg$8fwRuVY46Y0slUv8AHgjtpn68HtrbUYDk29uka/KDGA";

/// Example values of the path parameters, well-formed (ids are a prefix and 32 hex digits), so
/// that a handler reads them as ids, not as garbage. Replace them with the ids that earlier
/// answers gave.
const EXAMPLE_IDS: &[(&str, &str)] = &[
    ("app_id", APP),
    ("user_id", USER),
    ("enrollment_id", "enr_0123456789abcdef0123456789abcdef"),
    ("phone_id", "ph_0123456789abcdef0123456789abcdef"),
    ("challenge_id", "chl_0123456789abcdef0123456789abcdef"),
];

fn dir() -> PathBuf {
    root().join("events")
}

/// The function's crate (and binary) name, as `template.yaml` builds it.
fn binary(f: Function) -> &'static str {
    match f {
        Function::PolicyConfig => "policy-config",
        Function::EnrollmentStart => "enrollment-start",
        Function::PhoneSubmit => "phone-submit",
        Function::CodeVerify => "code-verify",
        Function::PhoneEdits => "phone-edits",
        Function::Challenge => "challenge",
    }
}

/// `<function>-<method>-<last literal segment>.json`, e.g. `phone-submit-post-phone.json`.
fn file_name(r: &Route) -> String {
    let last = segments(r.template)
        .into_iter()
        .rfind(|s| !s.starts_with('{'))
        .unwrap();
    let last = last.strip_suffix(".json").unwrap_or(last);
    format!(
        "{}-{}-{last}.json",
        binary(r.function),
        r.method.to_lowercase()
    )
}

/// The route's template with the example ids in place of its parameters, and those parameters.
fn example_path(r: &Route) -> (String, BTreeMap<&'static str, &'static str>) {
    let mut params = BTreeMap::new();
    let path = segments(r.template)
        .into_iter()
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let (name, value) = EXAMPLE_IDS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .unwrap_or_else(|| panic!("no example value for {{{name}}}"));
                    params.insert(*name, *value);
                    *value
                }
                None => s,
            },
        )
        .fold(String::new(), |p, s| p + "/" + s);
    (path, params)
}

/// A body the route accepts (`None`: the route takes none).
fn body(r: &Route) -> Option<Value> {
    let last = segments(r.template).last().copied().unwrap();
    let body = match (r.method, last) {
        // Both factors, so that the authenticator app's setup event is allowed too; the name
        // texts and emails give the application, the WebOTP domain of its code texts, and the
        // grace period a later switch to required gives.
        ("PUT", "mfa-policy") => {
            json!({"enabled": true, "include_in_signup": true, "enforcement": "optional",
                "factors": ["sms", "totp"], "display_name": "Acme Travel",
                "webotp_domain": "login.acme.example", "grace_period_days": 14})
        }
        ("PUT", "mfa-availability") => json!({"available": true}),
        ("PUT", "{user_id}") => {
            json!({"email": "ada@example.com", "email_verified": true,
                "password_hash": PASSWORD_HASH, "locale": "es"})
        }
        ("POST", "enrollments" | "recovery-codes") => json!({"password": "pw"}),
        ("POST", "phone") => json!({"phone_number": "+14155550100"}),
        ("POST", "code") => json!({"code": "123456"}),
        ("POST", "recovery") => json!({"code": "7K3QD-M9XWP"}),
        ("POST", "phones") => {
            json!({"password": "pw", "phone_number": "+14155550101", "label": "Desk"})
        }
        ("PUT", "{phone_id}") => json!({"password": "pw", "phone_number": "+14155550102"}),
        ("PATCH", "{phone_id}") => json!({"label": "Work", "primary": true}),
        ("DELETE", "{phone_id}" | "totp") => json!({"password": "pw"}),
        ("POST", "totp") => json!({"password": "pw", "label": "Phone"}),
        _ => return None,
    };
    Some(body)
}

fn fixture(name: &str) -> Value {
    let path = root().join("shared/tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The event of route `r`: the fixture of its authorizer, with the route's key, method, path,
/// path parameters and body.
fn event(r: &Route) -> Value {
    let mut ev = fixture(match r.access {
        Access::User => "apigw-v2-user-jwt.json",
        Access::Admin | Access::Operator => "apigw-v2-admin-iam.json",
        Access::Public => "apigw-v2-no-authorizer.json",
    });
    let (path, params) = example_path(r);
    let route_key = format!("{} {}", r.method, r.template);
    ev["routeKey"] = json!(route_key);
    ev["rawPath"] = json!(path);
    let obj = ev.as_object_mut().unwrap();
    if params.is_empty() {
        obj.remove("pathParameters");
    } else {
        obj.insert("pathParameters".into(), json!(params));
    }
    let ctx = &mut ev["requestContext"];
    ctx["routeKey"] = json!(route_key);
    ctx["http"]["method"] = json!(r.method);
    ctx["http"]["path"] = json!(path);
    let headers = ev["headers"].as_object_mut().unwrap();
    match body(r) {
        Some(b) => {
            let text = b.to_string();
            headers.insert("content-type".into(), json!("application/json"));
            headers.insert("content-length".into(), json!(text.len().to_string()));
            ev["body"] = json!(text);
        }
        None => {
            headers.remove("content-type");
            headers.remove("content-length");
            ev.as_object_mut().unwrap().remove("body");
        }
    }
    ev["isBase64Encoded"] = json!(false);
    ev
}

/// Every route's file name and contents, as the generator makes them.
fn generated() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in ROUTES {
        let text = serde_json::to_string_pretty(&event(r)).unwrap() + "\n";
        let name = file_name(r);
        assert!(
            out.insert(name.clone(), text).is_none(),
            "two routes make {name}"
        );
    }
    out
}

fn on_disk() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        out.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    out
}

/// The files are what the generator makes, byte for byte: one per route, no other. With
/// `MFA_WRITE_EVENTS=1` the test writes them instead (and removes any other file).
#[test]
fn events_are_the_generated_ones_one_per_route() {
    let want = generated();
    assert_eq!(want.len(), ROUTES.len());
    if std::env::var_os("MFA_WRITE_EVENTS").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        for name in on_disk().keys().filter(|n| !want.contains_key(*n)) {
            std::fs::remove_file(dir().join(name)).unwrap();
        }
        for (name, text) in &want {
            std::fs::write(dir().join(name), text).unwrap();
        }
    }
    let have = on_disk();
    let stray: Vec<_> = have.keys().filter(|n| !want.contains_key(*n)).collect();
    let missing: Vec<_> = want.keys().filter(|n| !have.contains_key(*n)).collect();
    let stale: Vec<_> = want
        .iter()
        .filter(|(n, text)| have.get(*n).is_some_and(|h| h != *text))
        .map(|(n, _)| n)
        .collect();
    assert!(
        stray.is_empty() && missing.is_empty() && stale.is_empty(),
        "events/ is not what the route table makes: stray {stray:?}, missing {missing:?}, \
         stale {stale:?} (regenerate: MFA_WRITE_EVENTS=1 cargo test -p mfa-tests --test e2e \
         events::events_are_the_generated)"
    );
}

/// The committed file of route `r`, read as Lambda reads it.
fn committed(r: &Route) -> (String, Value) {
    let name = file_name(r);
    let text =
        std::fs::read_to_string(dir().join(&name)).unwrap_or_else(|e| panic!("events/{name}: {e}"));
    (name, serde_json::from_str(&text).unwrap())
}

/// Each file names its own route, checked on the file itself (not through the generator): the
/// route key, the method, a path of the route's shape that the route table sends to the same
/// function, and the authorizer context its access needs.
#[test]
fn each_event_is_its_routes() {
    for r in ROUTES {
        let (name, ev) = committed(r);
        let key = format!("{} {}", r.method, r.template);
        assert_eq!(ev["routeKey"], json!(key), "{name}");
        assert_eq!(ev["requestContext"]["routeKey"], json!(key), "{name}");
        assert_eq!(
            ev["requestContext"]["http"]["method"],
            json!(r.method),
            "{name}"
        );
        let path = ev["rawPath"].as_str().unwrap();
        assert_eq!(ev["requestContext"]["http"]["path"], json!(path), "{name}");
        let (segs, tmpl) = (segments(path), segments(r.template));
        assert_eq!(segs.len(), tmpl.len(), "{name}: {path}");
        for (s, t) in segs.iter().zip(&tmpl) {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(param) => assert_eq!(ev["pathParameters"][param], json!(s), "{name}"),
                None => assert_eq!(s, t, "{name}: {path}"),
            }
        }
        assert_eq!(
            function_for(path),
            Some((r.function, r.access)),
            "{name}: {path}"
        );
        let auth = &ev["requestContext"]["authorizer"];
        match r.access {
            Access::User => {
                let claims = &auth["jwt"]["claims"];
                for claim in ["sub", "app_id", "scope"] {
                    assert!(claims[claim].is_string(), "{name}: no {claim} claim");
                }
            }
            Access::Admin | Access::Operator => {
                assert!(auth["iam"]["userArn"].is_string(), "{name}: no IAM caller");
            }
            Access::Public => assert!(auth.is_null(), "{name}: an authorizer on a public route"),
        }
    }
}

/// Runs a file's text through function `f` as its Lambda does (`run_lambda`: the payload as
/// `lambda_http` reads it, made a request), on the in-memory store.
async fn invoke(f: Function, svc: &Service, ev: &Value) -> (u16, Value) {
    let payload: LambdaRequest = serde_json::from_value(ev.clone()).unwrap();
    let resp = dispatch(f, svc, Request::from(payload)).await;
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (status, body)
}

/// What a `sam local invoke` user would notice: each event gets past its handler's check of
/// the authorizer context (no `401`, no `403`), and its body is accepted (no `400
/// invalid_request`, `413`, `415`). Without the authorizer context the same event answers
/// `401` (the JWKS aside), so it is the context in the file that lets it in. Run in the order of
/// a first walk (the operator's availability first), the events make a real flow: the
/// provisioned user's password is the enrollment's.
#[tokio::test]
async fn each_event_gets_past_its_handlers_authorizer_check() {
    let (svc, _outbox) = Service::in_memory(
        Limits::default(),
        Settings::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let mut order: Vec<&Route> = ROUTES.iter().collect();
    order.sort_by_key(|r| r.access != Access::Operator);
    let mut failures = Vec::new();
    for r in order {
        let (name, ev) = committed(r);
        let (status, body) = invoke(r.function, &svc, &ev).await;
        let code = body["error"].as_str().unwrap_or_default();
        println!("{name}: {status} {code}");
        if matches!(status, 401 | 403 | 413 | 415) || code == "invalid_request" {
            failures.push(format!("{name}: {status} {body}"));
        }
        if r.method == "POST" && r.template == "/v1/mfa/enrollments" && status != 201 {
            failures.push(format!(
                "{name}: {status} {body} (the provisioned user's password?)"
            ));
        }
        if r.access != Access::Public {
            let mut bare = ev.clone();
            bare["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
            let (status, body) = invoke(r.function, &svc, &bare).await;
            if status != 401 {
                failures.push(format!("{name} without its authorizer: {status} {body}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
