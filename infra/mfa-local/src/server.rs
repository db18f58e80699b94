//! The HTTP server: authenticates like API Gateway would, builds the v2 event, and runs the
//! function that serves the route.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use mfa_shared::adapters::aws;
use mfa_shared::adapters::console::ConsoleOutbox;
use mfa_shared::config::{AwsNames, EnvSource};
use mfa_shared::http::routes::{self, Access};
use mfa_shared::http::{dispatch, error_response, json_response};
use mfa_shared::ports::SystemClock;
use mfa_shared::{MfaError, Service};

use crate::event::{self, Authorizer, Incoming};
use crate::token;
use crate::web;

pub struct Options {
    pub port: u16,
    pub aws: bool,
    pub bootstrap: bool,
    pub jwt_secret: String,
}

pub(crate) struct AppState {
    pub(crate) svc: Service,
    outbox: Option<ConsoleOutbox>,
    pub(crate) jwt_secret: String,
}

/// The table and secret names the aws backend uses locally, unless the environment says.
fn local_aws_names(env: &EnvSource<fn(&str) -> Option<String>>) -> AwsNames {
    AwsNames {
        table_name: env
            .optional("MFA_TABLE_NAME")
            .unwrap_or_else(|| "mfa-local".to_owned()),
        secret_id: env
            .optional("MFA_SECRET_ID")
            .unwrap_or_else(|| "mfa-local/code-hmac-key".to_owned()),
        signing_secret_id: Some(
            env.optional("MFA_SIGNING_SECRET_ID")
                .unwrap_or_else(|| "mfa-local/assertion-signing-key".to_owned()),
        ),
        totp_secret_id: Some(
            env.optional("MFA_TOTP_SECRET_ID")
                .unwrap_or_else(|| "mfa-local/totp-sealing-key".to_owned()),
        ),
    }
}

async fn build_service(o: &Options) -> Result<(Service, Option<ConsoleOutbox>), String> {
    let env = EnvSource::process();
    let limits = env.limits().map_err(|e| e.to_string())?;
    let settings = env.settings();
    if !o.aws {
        if o.bootstrap {
            return Err("--bootstrap only applies to --backend aws".into());
        }
        let (svc, outbox) = Service::in_memory(limits, settings, Arc::new(SystemClock))
            .map_err(|e| format!("no OS randomness: {e}"))?;
        return Ok((svc, Some(outbox)));
    }
    // The region from the environment (or the profile, through the loader), else us-east-1.
    // Not `RegionProviderChain::default_provider()`: its IMDS client is built without the
    // HTTP client set on the loader, and the SDK then refuses to build it.
    let region = aws_config::meta::region::RegionProviderChain::first_try(
        aws_config::environment::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
    .or_else("us-east-1");
    let sdk = mfa_shared::adapters::aws::sdk_config(
        aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region),
    )
    .await;
    let names = local_aws_names(&env);
    if o.bootstrap {
        aws::bootstrap(&sdk, &names, &settings.sender_email)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "bootstrapped table {:?} and secret {:?}",
            names.table_name, names.secret_id
        );
    }
    let svc = aws::service_from_sdk_config::<aws::Sns, aws::Ses>(&sdk, names, limits, settings)
        .await
        .map_err(|e| e.to_string())?;
    Ok((svc, None))
}

/// Serves until Ctrl-C.
pub async fn run(o: Options) -> Result<(), String> {
    let (svc, outbox) = build_service(&o).await?;
    let state = Arc::new(AppState {
        svc,
        outbox,
        jwt_secret: o.jwt_secret.clone(),
    });
    let app = Router::new()
        .route("/", get(web::index))
        .route("/web/app.js", get(web::app_js))
        .route("/web/style.css", get(web::style))
        .route(web::LEAN_QR_PATH, get(web::lean_qr))
        .route("/_local/sign-in", post(web::sign_in))
        .route("/_local/admin-sign-in", post(web::admin_sign_in))
        .route("/_local/outbox", get(outbox_route))
        .fallback(route)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", o.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", o.port))?;
    println!(
        "mfa-local listening on http://127.0.0.1:{} ({} backend)",
        o.port,
        if o.aws { "aws" } else { "memory" }
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| format!("server stopped: {e}"))
}

/// `GET /_local/outbox`: what the console "sent".
async fn outbox_route(State(st): State<Arc<AppState>>) -> axum::response::Response {
    match &st.outbox {
        Some(o) => to_axum(json_response(200, &o.snapshot())),
        None => to_axum(error_response(&MfaError::InvalidRequest(
            "The outbox exists on the memory backend only; with --backend aws read the emulator's messages (moto: /moto-api/data.json).".into(),
        ))),
    }
}

pub(crate) fn to_axum(resp: lambda_http::Response<lambda_http::Body>) -> axum::response::Response {
    let (parts, body) = resp.into_parts();
    let body = match body {
        lambda_http::Body::Text(s) => axum::body::Body::from(s),
        lambda_http::Body::Binary(b) => axum::body::Body::from(b),
        _ => axum::body::Body::empty(),
    };
    axum::response::Response::from_parts(parts, body)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn request_id() -> String {
    let hi = getrandom::u64().unwrap_or(0);
    let lo = getrandom::u64().unwrap_or(0);
    format!("{hi:016x}{lo:016x}")
}

/// What API Gateway's authorizer would pass on for a verified token: the JWT claims on user
/// routes; the caller's identity on admin and operator routes, if the token's scope allows.
fn authorize(access: Access, claims: serde_json::Map<String, serde_json::Value>) -> Authorizer {
    let scope = match access {
        Access::User => return Authorizer::Jwt(claims),
        Access::Public => return Authorizer::None,
        Access::Admin => "mfa:admin",
        Access::Operator => "mfa:operator",
    };
    if !token::has_scope(&claims, scope) {
        return Authorizer::Refused;
    }
    let actor = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .unwrap_or_default();
    Authorizer::Iam(actor.to_owned())
}

/// Every API route: authenticate, build the event, run the function.
async fn route(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    // Read a little past the contract's 16 KiB so the handler itself answers 413.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return to_axum(error_response(&MfaError::PayloadTooLarge));
    };
    let path = parts.uri.path().to_owned();
    let Some((function, access)) = routes::function_for(&path) else {
        return to_axum(error_response(&MfaError::RouteNotFound));
    };
    let claims = bearer(&parts.headers).and_then(|t| token::verify(&st.jwt_secret, t));
    let authorizer = match (access, claims) {
        // The JWKS route has no authorizer, as deployed.
        (Access::Public, _) => Authorizer::None,
        (_, None) => return to_axum(error_response(&MfaError::Unauthenticated)),
        (access, Some(claims)) => authorize(access, claims),
    };
    let authorizer = match authorizer {
        Authorizer::Refused => return to_axum(error_response(&MfaError::Forbidden)),
        a => a,
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != axum::http::header::AUTHORIZATION)
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let event = event::api_gateway_v2_event(Incoming {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or_default(),
        headers,
        body: &bytes,
        source_ip: peer.ip().to_string(),
        request_id: request_id(),
        authorizer,
    });
    match lambda_http::request::from_str(&event) {
        Ok(lambda_req) => to_axum(dispatch(function, &st.svc, lambda_req).await),
        Err(e) => {
            tracing::warn!(error = %e, "could not build the API Gateway event");
            to_axum(error_response(&MfaError::InvalidRequest(
                "The request could not be read.".into(),
            )))
        }
    }
    .into_response()
}
