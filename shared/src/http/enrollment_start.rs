//! `enrollment-start`: the user's status, Skip, and Start (password → a new enrollment).

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::{PasswordBody, parse_body, parse_empty_body, serve_user, with_status};
use crate::error::MfaError;
use crate::flows::{enrollment, status};
use crate::service::Service;

/// The function's handler.
pub async fn handle(svc: &Service, req: Request) -> Response<Body> {
    serve_user(&req, |req, caller, method, segs| async move {
        match (method, segs.as_slice()) {
            (Method::GET, ["v1", "mfa", "status"]) => {
                let s = status::status(svc, &caller).await?;
                with_status(200, s)
            }
            (Method::POST, ["v1", "mfa", "skip"]) => {
                parse_empty_body(req)?;
                let until = status::skip(svc, &caller).await?;
                Ok((200, json!({ "skipped_until": until })))
            }
            (Method::POST, ["v1", "mfa", "enrollments"]) => {
                let body: PasswordBody = parse_body(req)?;
                let started = enrollment::start(svc, &caller, body.password).await?;
                with_status(201, started)
            }
            (_, ["v1", "mfa", "status" | "skip" | "enrollments"]) => {
                Err(MfaError::MethodNotAllowed)
            }
            _ => Err(MfaError::RouteNotFound),
        }
    })
    .await
}
