//! `challenge`: the second factor at sign-in (challenge, code, resend), recovery codes, and the
//! JWKS that verifies the assertions.

use lambda_http::http::{HeaderValue, Method, header};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use super::{
    CodeBody, PasswordBody, json_response, log_outcome, parse_body, parse_empty_body,
    parse_optional_body, respond, routes, serve_user, step_up, with_status,
};
use crate::error::MfaError;
use crate::flows::{challenge, recovery};
use crate::service::Service;
use crate::types::ids::ChallengeId;
use crate::types::{Code, Factor, PhoneId};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default, deserialize_with = "super::present")]
    phone_id: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    factor: Option<String>,
}

fn challenge_id(seg: &str) -> Result<ChallengeId, MfaError> {
    ChallengeId::parse(seg).map_err(|_| MfaError::ChallengeNotFound)
}

/// The public keys; cacheable for a few minutes (rotation publishes a key before it signs).
fn jwks(svc: &Service, req: &Request) -> Response<Body> {
    let Some(keys) = svc.signing.as_ref() else {
        tracing::error!("no assertion signing key is configured (MFA_SIGNING_SECRET_ID)");
        return respond(req, Err(MfaError::Internal));
    };
    let mut resp = json_response(200, &keys.jwks());
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    log_outcome(req, 200);
    resp
}

/// The function's handler.
pub async fn handle(svc: &Service, req: Request) -> Response<Body> {
    if let ["v1", "mfa", "jwks.json"] = routes::segments(routes::path(&req)).as_slice() {
        return if req.method() == Method::GET {
            jwks(svc, &req)
        } else {
            respond(&req, Err(MfaError::MethodNotAllowed))
        };
    }
    serve_user(&req, |req, caller, method, segs| async move {
        match (method, segs.as_slice()) {
            (Method::POST, ["v1", "mfa", "challenges"]) => {
                let body: StartBody = parse_optional_body(req)?;
                let factor = body
                    .factor
                    .map(|f| {
                        Factor::parse(&f).ok_or_else(|| {
                            MfaError::InvalidRequest("`factor` must be \"sms\" or \"totp\".".into())
                        })
                    })
                    .transpose()?;
                let phone = body
                    .phone_id
                    .map(|p| PhoneId::parse(&p).map_err(|_| MfaError::PhoneNotFound))
                    .transpose()?;
                match challenge::begin(svc, &caller, phone, factor).await? {
                    challenge::Started::Sms(sent) => with_status(202, sent),
                    challenge::Started::App(waiting) => with_status(201, waiting),
                }
            }
            (Method::POST, ["v1", "mfa", "challenges", "recovery"]) => {
                let body: CodeBody = parse_body(req)?;
                with_status(200, recovery::redeem(svc, &caller, &body.code).await?)
            }
            (Method::POST, ["v1", "mfa", "challenges", id, "code"]) => {
                let body: CodeBody = parse_body(req)?;
                let code = Code::parse(&body.code).map_err(|_| {
                    MfaError::InvalidRequest("`code` must be exactly 6 digits (0-9).".into())
                })?;
                let id = challenge_id(id)?;
                with_status(200, challenge::verify(svc, &caller, &id, code).await?)
            }
            (Method::POST, ["v1", "mfa", "challenges", id, "resend"]) => {
                parse_empty_body(req)?;
                let id = challenge_id(id)?;
                with_status(202, challenge::resend(svc, &caller, &id).await?)
            }
            (Method::POST, ["v1", "mfa", "recovery-codes"]) => {
                let body: PasswordBody = parse_body(req)?;
                step_up(svc, &caller, req).await?;
                with_status(201, recovery::create(svc, &caller, body.password).await?)
            }
            (
                _,
                ["v1", "mfa", "challenges"]
                | ["v1", "mfa", "challenges", _]
                | ["v1", "mfa", "challenges", _, _],
            )
            | (_, ["v1", "mfa", "recovery-codes"]) => Err(MfaError::MethodNotAllowed),
            _ => Err(MfaError::RouteNotFound),
        }
    })
    .await
}
