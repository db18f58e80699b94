//! `code-verify`: checks an enrollment's code, and sends a new one.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

use super::{CodeBody, parse_body, parse_empty_body, serve_user, with_status};
use crate::error::MfaError;
use crate::flows::enrollment;
use crate::service::Service;
use crate::types::{Code, EnrollmentId};

/// The function's handler.
pub async fn handle(svc: &Service, req: Request) -> Response<Body> {
    serve_user(&req, |req, caller, method, segs| async move {
        match (method, segs.as_slice()) {
            (Method::POST, ["v1", "mfa", "enrollments", id, "code"]) => {
                let body: CodeBody = parse_body(req)?;
                // Not a code at all: refused here, before anything is counted.
                let code = Code::parse(&body.code).map_err(|_| {
                    MfaError::InvalidRequest("`code` must be exactly 6 digits (0-9).".into())
                })?;
                let id = EnrollmentId::parse(id).map_err(|_| MfaError::EnrollmentNotFound)?;
                let done = enrollment::verify_code(svc, &caller, &id, code).await?;
                with_status(200, done)
            }
            (Method::POST, ["v1", "mfa", "enrollments", id, "resend"]) => {
                parse_empty_body(req)?;
                let id = EnrollmentId::parse(id).map_err(|_| MfaError::EnrollmentNotFound)?;
                let sent = enrollment::resend(svc, &caller, &id).await?;
                with_status(202, sent)
            }
            (_, ["v1", "mfa", "enrollments", _, "code" | "resend"]) => {
                Err(MfaError::MethodNotAllowed)
            }
            _ => Err(MfaError::RouteNotFound),
        }
    })
    .await
}
