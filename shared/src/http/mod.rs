//! The Lambda handlers: an API Gateway HTTP API (v2) request in, a JSON answer out.
//!
//! Each function's `main.rs` runs one of [`policy_config`], [`enrollment_start`],
//! [`phone_submit`], [`code_verify`] or [`phone_edits`]; the local server runs the very same
//! functions. [`error_response`] is the one place a domain error becomes an HTTP answer.

pub mod challenge;
pub mod code_verify;
pub mod context;
pub mod enrollment_start;
pub mod phone_edits;
pub mod phone_submit;
pub mod policy_config;
pub mod routes;

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::MfaError;

/// The largest body accepted (`413 payload_too_large` above it).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON answer with the headers every answer carries.
pub fn json_response(status: u16, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Answers can carry one-time state (enrollment ids, masked numbers): never cache them.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An empty answer (`204`).
pub fn empty_response(status: u16) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The contract's error answer: `{"error", "message"}` plus `attempts_remaining` or
/// `retry_after` where they apply, and `Retry-After` on every 429 and 503.
pub fn error_response(err: &MfaError) -> Response<Body> {
    let mut body = json!({ "error": err.code(), "message": err.to_string() });
    if let Some(n) = err.attempts_remaining() {
        body["attempts_remaining"] = json!(n);
    }
    if let Some(secs) = err.retry_after() {
        body["retry_after"] = json!(secs);
    }
    let mut resp = json_response(err.status(), &body);
    if let Some(secs) = err.retry_after()
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Turns a handler's result, `(status, body)` or an error, into the answer (`204` has no
/// body; a 405 names the allowed methods), logging the outcome (never a body).
pub fn respond(req: &Request, result: Result<(u16, Value), MfaError>) -> Response<Body> {
    let resp = match result {
        Ok((204, _)) => empty_response(204),
        Ok((status, v)) => json_response(status, &v),
        Err(MfaError::MethodNotAllowed) => {
            let mut resp = error_response(&MfaError::MethodNotAllowed);
            if let Ok(allow) = HeaderValue::from_str(&routes::allowed_methods(routes::path(req))) {
                resp.headers_mut().insert(header::ALLOW, allow);
            }
            resp
        }
        Err(e) => error_response(&e),
    };
    log_outcome(req, resp.status().as_u16());
    resp
}

/// What every handler does around its routes: finds who is calling (`who`: the end user or
/// the admin, `401` when the authorizer vouched for nobody), splits the path, runs `route` with
/// the request, the caller, the method and the path's segments, and answers with [`respond`].
pub async fn serve<'r, C, Fut>(
    req: &'r Request,
    who: fn(&Request) -> Result<C, MfaError>,
    route: impl FnOnce(&'r Request, C, Method, Vec<&'r str>) -> Fut,
) -> Response<Body>
where
    Fut: Future<Output = Result<(u16, Value), MfaError>>,
{
    let result = match who(req) {
        Ok(caller) => {
            let segs = routes::segments(routes::path(req));
            route(req, caller, req.method().clone(), segs).await
        }
        Err(e) => Err(e),
    };
    respond(req, result)
}

/// [`serve`] for the end-user functions: the caller is the user the JWT authorizer vouched for.
pub async fn serve_user<'r, Fut>(
    req: &'r Request,
    route: impl FnOnce(&'r Request, crate::flows::Caller, Method, Vec<&'r str>) -> Fut,
) -> Response<Body>
where
    Fut: Future<Output = Result<(u16, Value), MfaError>>,
{
    serve(req, context::user_caller, route).await
}

/// A flow's value as a JSON body with `status`.
pub fn with_status<T: Serialize>(status: u16, value: T) -> Result<(u16, Value), MfaError> {
    serde_json::to_value(value)
        .map(|v| (status, v))
        .map_err(|_| MfaError::Internal)
}

/// One line per request: method, path shape and status. Paths hold only ids, never secrets.
pub fn log_outcome(req: &Request, status: u16) {
    let request_id = context::request_id(req);
    if status >= 500 {
        tracing::error!(method = %req.method(), path = %routes::path(req), status, request_id, "request failed");
    } else {
        tracing::info!(method = %req.method(), path = %routes::path(req), status, request_id, "request");
    }
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b.as_slice(),
        _ => &[],
    }
}

/// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return. A body of nothing
/// else is no body; a form feed or a Unicode space is not JSON at all.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().copied().all(is_json_space)
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `{"password": …}`: the body of each route that checks the user's password again.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub password: String,
}

/// `{"code": …}`: a code the user was texted.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    pub code: String,
}

/// Parses a JSON body into `T` (which should `deny_unknown_fields`): `413` when too large,
/// `400 invalid_request` naming the offending field otherwise.
pub fn parse_body<T: DeserializeOwned>(req: &Request) -> Result<T, MfaError> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY_BYTES {
        return Err(MfaError::PayloadTooLarge);
    }
    let has_body = !is_blank(bytes);
    let content_type = req.headers().get(header::CONTENT_TYPE);
    // A body must say it is JSON; a missing header counts as wrong.
    if has_body || content_type.is_some() {
        let ct = content_type
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence != "application/json" {
            return Err(MfaError::InvalidRequest(
                "Send the body as JSON with `Content-Type: application/json`.".into(),
            ));
        }
    }
    // Every body of the contract is an object; serde's derive would also take a struct from an
    // array of its fields in order (`["pw"]`), which the contract does not allow.
    if bytes.iter().copied().find(|b| !is_json_space(*b)) != Some(b'{') {
        return Err(MfaError::InvalidRequest(
            "The request body must be a JSON object.".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = strip_position(&inner.to_string());
        if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            MfaError::InvalidRequest(format!("The body is not valid JSON: {detail}."))
        } else if path == "." || path.is_empty() || path.contains('?') {
            MfaError::InvalidRequest(format!("Invalid request body: {detail}."))
        } else {
            MfaError::InvalidRequest(format!("Field `{path}`: {detail}."))
        }
    })?;
    de.end().map_err(|_| {
        MfaError::InvalidRequest(
            "Invalid request body: unexpected data after the JSON value.".into(),
        )
    })?;
    Ok(value)
}

/// Accepts an absent or empty body, or `{}`: for routes that take no fields.
pub fn parse_empty_body(req: &Request) -> Result<(), MfaError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}
    parse_optional_body::<Nothing>(req).map(|_| ())
}

/// A body that may be absent (or only whitespace): then `T::default()`; otherwise as
/// [`parse_body`], the size limit included.
pub fn parse_optional_body<T: DeserializeOwned + Default>(req: &Request) -> Result<T, MfaError> {
    let bytes = body_bytes(req);
    if bytes.len() <= MAX_BODY_BYTES && is_blank(bytes) {
        return Ok(T::default());
    }
    parse_body(req)
}

/// serde_json appends " at line 1 column 12"; a person does not need it. A wrong type or value
/// is quoted by serde (`invalid type: integer `14155550123``, or a string in Rust's debug quotes:
/// `invalid type: string "+14155550123"`): the quote goes, since an answer never repeats what
/// could be a phone number, a code or a password.
fn strip_position(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        let mut out = String::with_capacity(msg.len());
        let mut quoted = false;
        let mut chars = msg.chars();
        while let Some(ch) = chars.next() {
            if ch == '`' {
                quoted = !quoted;
            } else if ch == '"' && !quoted && out.ends_with("string ") {
                // Skip the debug-quoted string, escapes (`\"`) included.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            } else if !quoted {
                out.push(ch);
            }
        }
        return out.replace("  ", " ").replace(" ,", ",");
    }
    msg.to_owned()
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

/// Deserializes an optional field that, when present, must hold a value: `null` is refused
/// as a wrong type (`400 invalid_request` naming the field), not taken for "absent".
pub fn present<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(de).map(Some)
}

/// The step-up proof of a change to the caller's factors (contract v2, "Step-up"): the
/// `MFA-Assertion` header checked by [`crate::flows::stepup::require`]. Handlers call it after
/// the body parsed and before the flow runs, so that a request without a valid proof never
/// reaches the password check.
pub async fn step_up(
    svc: &crate::Service,
    caller: &crate::flows::Caller,
    req: &Request,
) -> Result<(), MfaError> {
    let header = req
        .headers()
        .get(crate::flows::stepup::HEADER)
        .and_then(|v| v.to_str().ok());
    crate::flows::stepup::require(svc, caller, header).await
}

/// A JSON object from parts, for answers assembled by hand.
pub fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Runs the handler of function `f`: what the local server calls for each request.
pub async fn dispatch(f: routes::Function, svc: &crate::Service, req: Request) -> Response<Body> {
    use routes::Function::*;
    match f {
        PolicyConfig => run::<functions::PolicyConfig>(svc, req).await,
        EnrollmentStart => run::<functions::EnrollmentStart>(svc, req).await,
        PhoneSubmit => run::<functions::PhoneSubmit>(svc, req).await,
        CodeVerify => run::<functions::CodeVerify>(svc, req).await,
        PhoneEdits => run::<functions::PhoneEdits>(svc, req).await,
        Challenge => run::<functions::Challenge>(svc, req).await,
    }
}

/// Runs function `H`'s handler: what its Lambda runs for each request.
///
/// Everything logged while it runs carries the request id and the application id (the
/// `request` span), so that one request's lines can be found together.
pub async fn run<H: functions::Handler>(svc: &crate::Service, req: Request) -> Response<Body> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "request",
        request_id = %context::request_id(&req),
        app_id = %context::app_id_for_logs(&req),
    );
    H::handle(svc, req).instrument(span).await
}

/// Runs function `H` as a Lambda over a service built once per cold start: the runtime's
/// loop, each API Gateway HTTP API (v2) event made a [`Request`] (as `lambda_http` does), and
/// the answer made the v2 response directly.
///
/// Not `lambda_http::run`: its response path converts any body by its content type through
/// `encoding_rs`, which links every legacy text encoding (~0.3 MB of tables and code in each
/// binary) to re-encode answers that are already UTF-8 JSON. `H` is a type, not a value, so
/// that each binary links its own handler and the flows it reaches, and none of the others'.
pub async fn run_lambda<H: functions::Handler>(
    svc: std::sync::Arc<crate::Service>,
) -> Result<(), lambda_http::Error> {
    use lambda_http::request::LambdaRequest;
    use lambda_http::{LambdaEvent, RequestExt};
    let handler = lambda_http::service_fn(move |event: LambdaEvent<LambdaRequest>| {
        let svc = std::sync::Arc::clone(&svc);
        async move {
            let LambdaEvent { payload, context } = event;
            let req = Request::from(payload).with_lambda_context(context);
            Ok::<_, lambda_http::Error>(v2_response(run::<H>(&svc, req).await))
        }
    });
    lambda_http::lambda_runtime::run(handler).await
}

/// An answer as API Gateway's HTTP API (v2) payload: status, headers, and the body as text
/// (or base64 for bytes). No answer here sets cookies.
pub fn v2_response(
    resp: Response<Body>,
) -> lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let mut out = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    (out.is_base64_encoded, out.body) = match body {
        Body::Empty => (false, None),
        b @ Body::Text(_) => (false, Some(b)),
        b @ Body::Binary(_) => (true, Some(b)),
        _ => (false, None),
    };
    out
}

/// Each Lambda function as a type, for [`run_lambda`].
pub mod functions {
    use std::future::Future;

    use lambda_http::{Body, Request, Response};

    use crate::Service;

    /// A function's handler.
    pub trait Handler {
        fn handle(svc: &Service, req: Request) -> impl Future<Output = Response<Body>> + Send + '_;
    }

    macro_rules! function {
        ($name:ident, $module:ident) => {
            #[doc = concat!("The `", stringify!($module), "` function.")]
            pub struct $name;
            impl Handler for $name {
                fn handle(
                    svc: &Service,
                    req: Request,
                ) -> impl Future<Output = Response<Body>> + Send + '_ {
                    super::$module::handle(svc, req)
                }
            }
        };
    }

    function!(PolicyConfig, policy_config);
    function!(EnrollmentStart, enrollment_start);
    function!(PhoneSubmit, phone_submit);
    function!(CodeVerify, code_verify);
    function!(PhoneEdits, phone_edits);
    function!(Challenge, challenge);
}
