//! Who is calling, as API Gateway's authorizers (or the local server standing in for them)
//! put it in the request context.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::error::MfaError;
use crate::flows::Caller;
use crate::types::{AppId, UserId};

fn v2(
    req: &Request,
) -> Option<&lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => Some(ctx),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The end user: the JWT authorizer's `sub` and `app_id` claims, and the client's source IP.
pub fn user_caller(req: &Request) -> Result<Caller, MfaError> {
    let ctx = v2(req).ok_or(MfaError::Unauthenticated)?;
    let claims = &ctx
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .ok_or(MfaError::Unauthenticated)?
        .claims;
    let user = claims
        .get("sub")
        .and_then(|s| UserId::parse(s).ok())
        .ok_or(MfaError::Unauthenticated)?;
    let app = claims
        .get("app_id")
        .and_then(|s| AppId::parse(s).ok())
        .ok_or(MfaError::Unauthenticated)?;
    let source_ip = ctx
        .http
        .source_ip
        .clone()
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(Caller {
        app,
        user,
        source_ip,
    })
}

/// The admin or operator: the IAM authorizer's caller ARN, recorded as the actor.
pub fn admin_actor(req: &Request) -> Result<String, MfaError> {
    v2(req)
        .and_then(|ctx| ctx.authorizer.as_ref())
        .and_then(|a| a.iam.as_ref())
        .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone()))
        .filter(|arn| !arn.is_empty())
        .ok_or(MfaError::Unauthenticated)
}

/// API Gateway's request id, for log lines.
pub fn request_id(req: &Request) -> String {
    v2(req)
        .and_then(|ctx| ctx.request_id.clone())
        .unwrap_or_default()
}

/// The application a request is about, for log lines: the user's `app_id` claim, or the
/// `{app_id}` of an admin path. Empty when there is none (or it is not a valid id: a log line
/// never repeats arbitrary input).
pub fn app_id_for_logs(req: &Request) -> String {
    let from_claims = v2(req)
        .and_then(|ctx| ctx.authorizer.as_ref())
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get("app_id"))
        .and_then(|s| AppId::parse(s).ok());
    let from_path = || {
        let path = super::routes::path(req);
        let rest = path.strip_prefix("/v1/admin/applications/")?;
        AppId::parse(rest.split('/').next()?).ok()
    };
    from_claims
        .or_else(from_path)
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default()
}
