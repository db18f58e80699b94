//! The reference web page (`web/` at the repository root, embedded at build time so that
//! `cargo run -p mfa-local` serves it from anywhere) and its two local-only sign-in helpers,
//! which stand in for the platform's identity provider. Nothing here is deployed: the Lambdas
//! and `template.yaml` know nothing of it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mfa_shared::MfaError;
use mfa_shared::crypto::password_work;
use mfa_shared::http::routes::Function;
use mfa_shared::http::{dispatch, error_response, json_response};
use serde::Deserialize;
use serde_json::json;

use crate::event::{self, Authorizer, Incoming};
use crate::server::{AppState, to_axum};
use crate::token;

const INDEX: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const STYLE: &str = include_str!("../../../web/style.css");
/// lean-qr 2.7.4 (MIT, no dependencies), verbatim from its npm release: the page draws the QR
/// code of an authenticator app's `otpauth_uri` with it, with no network at run time. A
/// maintained, ISO 18004 compliant encoder rather than one written here; pinned by version in
/// its name, with its licence beside it (`web/vendor/README.md` says how to update it).
pub const LEAN_QR_PATH: &str = "/web/vendor/lean-qr-2.7.4.mjs";
const LEAN_QR: &str = include_str!("../../../web/vendor/lean-qr-2.7.4.mjs");

/// Tokens from the helpers last an hour.
const TOKEN_TTL: u64 = 3600;

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Same-origin scripts and styles only; the page calls the API on its own origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub async fn index() -> Response {
    page(INDEX, "text/html; charset=utf-8")
}

pub async fn app_js() -> Response {
    page(APP_JS, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    page(STYLE, "text/css; charset=utf-8")
}

/// The vendored QR library, an ES module that `app.js` imports when it first draws a code.
pub async fn lean_qr() -> Response {
    page(LEAN_QR, "text/javascript; charset=utf-8")
}

fn invalid(message: &str) -> Response {
    to_axum(error_response(&MfaError::InvalidRequest(
        message.to_owned(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    app_id: String,
    user_id: String,
    email: String,
    password: String,
    /// The user's language for texts and emails (BCP 47, `es`, `pt-BR`), passed to the admin
    /// user `PUT` as it is, which checks it; absent, none is set (English).
    #[serde(default)]
    locale: Option<String>,
}

/// `POST /_local/sign-in` (local only): the platform's sign-up and sign-in in one step. The user
/// is created or replaced through the admin route (`PUT .../users/{user_id}`, email verified,
/// the password hashed with argon2id as a platform would store it, and the `locale` if one is
/// given), then gets a user token.
pub async fn sign_in(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<SignIn>(&body) else {
        return invalid(
            "Send {\"app_id\", \"user_id\", \"email\", \"password\"} and optionally \"locale\".",
        );
    };
    let (app, user) = (b.app_id.trim().to_owned(), b.user_id.trim().to_owned());
    if app.is_empty() || user.is_empty() || b.email.trim().is_empty() {
        return invalid("Give an application id, a user id and an email.");
    }
    if b.password.chars().count() < 8 {
        return invalid("Choose a password of at least 8 characters.");
    }
    let password = b.password.clone();
    // Hashing costs what a check does (19 MiB), so it shares the checks' bound of one per core.
    let hash = match password_work(move || token::hash_password(&password)).await {
        Some(Ok(h)) => h,
        _ => return invalid("The password could not be hashed."),
    };
    let mut body =
        json!({ "email": b.email.trim(), "email_verified": true, "password_hash": hash });
    if let Some(locale) = b.locale.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        body["locale"] = json!(locale);
    }
    let body = body.to_string();
    let path = format!("/v1/admin/applications/{app}/users/{user}");
    let event = event::api_gateway_v2_event(Incoming {
        method: "PUT",
        path: &path,
        query: "",
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes(),
        source_ip: "127.0.0.1".into(),
        request_id: "local-sign-in".into(),
        authorizer: Authorizer::Iam("local-sign-in".into()),
    });
    let Ok(req) = lambda_http::request::from_str(&event) else {
        return invalid("The sign-in could not be built.");
    };
    let resp = dispatch(Function::PolicyConfig, &st.svc, req).await;
    if !resp.status().is_success() {
        return to_axum(resp);
    }
    match token::issue(&st.jwt_secret, &user, Some(&app), None, TOKEN_TTL) {
        Ok(t) => to_axum(json_response(
            200,
            &json!({ "token": t, "app_id": app, "user_id": user }),
        )),
        Err(e) => invalid(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSignIn {
    app_id: String,
}

/// `POST /_local/admin-sign-in` (local only): a token for the application's administrator,
/// with the operator's scope too, so that one person can play both roles locally.
pub async fn admin_sign_in(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<AdminSignIn>(&body) else {
        return invalid("Send {\"app_id\"}.");
    };
    let app = b.app_id.trim();
    if app.is_empty() {
        return invalid("Give an application id.");
    }
    let actor = format!("admin@{app}");
    match token::issue(
        &st.jwt_secret,
        &actor,
        Some(app),
        Some("mfa:admin mfa:operator"),
        TOKEN_TTL,
    ) {
        Ok(t) => to_axum(json_response(200, &json!({ "token": t }))),
        Err(e) => invalid(&e),
    }
}
