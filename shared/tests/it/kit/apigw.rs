//! API Gateway HTTP API (v2) events, as a deployment delivers them to the functions, and the
//! answers as a client sees them. The events start from the recorded fixtures in
//! `shared/tests/fixtures/` (authorizer context included) and are adjusted: method, path,
//! body, claims.

use base64::Engine;
use lambda_http::http::HeaderMap;
use mfa_shared::Service;
use mfa_shared::http::dispatch;
use mfa_shared::http::routes::Function;
use serde_json::{Value, json};

use super::Memo;

/// The application of the handler suites' deployment.
pub const APP: &str = "app-acme";
/// The end user of the user fixture (and of most requests).
pub const ADA: &str = "user-ada";
/// A second end user.
pub const BOB: &str = "user-bob";
/// The handler suites' clock: 2026-11-18T11:06:40Z.
pub const T0: i64 = 1_795_000_000;

/// An end user's request, with the JWT authorizer's claims.
pub const USER_FIXTURE: &str = "apigw-v2-user-jwt.json";
/// An operator's request, with the IAM authorizer's context.
pub const ADMIN_FIXTURE: &str = "apigw-v2-admin-iam.json";

/// The fixture `name` of `shared/tests/fixtures/` (read once per test process).
pub fn fixture(name: &str) -> Value {
    static FIXTURES: Memo<Value> = Memo::new();
    FIXTURES.get(name, || {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

/// Sets the method and path of an event.
pub fn route(mut ev: Value, method: &str, path: &str) -> Value {
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["method"] = json!(method);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev
}

/// Sets the body of an event and its `content-length`: as text when it is UTF-8 and `base64`
/// is not asked for, base64-encoded otherwise (as API Gateway passes binary bodies).
pub fn with_body(mut ev: Value, body: &[u8], base64: bool) -> Value {
    ev["headers"]["content-length"] = json!(body.len().to_string());
    match std::str::from_utf8(body) {
        Ok(text) if !base64 => {
            ev["body"] = json!(text);
            ev["isBase64Encoded"] = json!(false);
        }
        _ => {
            ev["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
            ev["isBase64Encoded"] = json!(true);
        }
    }
    ev
}

/// Sets the method, path and (plain) body of an event, as API Gateway would deliver them; no
/// body is a `null` one.
pub fn shape(ev: Value, method: &str, path: &str, body: Option<&str>) -> Value {
    let mut ev = with_body(
        route(ev, method, path),
        body.unwrap_or_default().as_bytes(),
        false,
    );
    if body.is_none() {
        ev["body"] = Value::Null;
    }
    ev
}

/// A user route's event; `sub` is the signed-in user of the JWT authorizer's claims.
pub fn user_event(sub: &str, method: &str, path: &str, body: Option<&str>) -> Value {
    let mut ev = shape(fixture(USER_FIXTURE), method, path, body);
    ev["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
    ev
}

/// An admin route's event, signed by the operator's IAM identity.
pub fn admin_event(method: &str, path: &str, body: Option<&str>) -> Value {
    shape(fixture(ADMIN_FIXTURE), method, path, body)
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON; `null` for an empty `204`.
    pub json: Value,
}

impl Answer {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        &self.json
    }

    /// Asserts an error answer and returns its `message`.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) -> String {
        let got = (self.status, self.json["error"].as_str());
        assert_eq!(got, (status, Some(code)), "{}", self.text);
        self.json["message"].as_str().unwrap().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The `enrollment_id` of a `201`.
    pub fn id(&self) -> String {
        self.ok(201)["enrollment_id"].as_str().unwrap().to_owned()
    }

    /// The error code (empty when there is none).
    pub fn code(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }

    /// The error message (empty when there is none).
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or_default()
    }
}

/// Runs the event through function `f`, as Lambda would, on a task of its own: a panic, an
/// event `lambda_http` refuses, a body that is not UTF-8 or (but for an empty `204`) not JSON
/// is the error, with what went wrong.
pub async fn call(f: Function, svc: &Service, ev: &Value) -> Result<Answer, String> {
    let request =
        lambda_http::request::from_str(&ev.to_string()).map_err(|e| format!("event: {e}"))?;
    let svc = svc.clone();
    let resp = tokio::spawn(async move { dispatch(f, &svc, request).await })
        .await
        .map_err(|e| format!("the handler panicked: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = String::from_utf8(resp.body().to_vec()).map_err(|e| format!("not UTF-8: {e}"))?;
    let json = if status == 204 && text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{status} not JSON ({e}): {text}"))?
    };
    Ok(Answer {
        status,
        headers,
        text,
        json,
    })
}
