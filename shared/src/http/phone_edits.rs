//! `phone-edits`: phones in settings (list, add, replace, relabel, remove).
//!
//! Not built yet: these routes come with the "phones in settings" issue. Until then every one
//! of them answers `501 not_implemented` in the contract's error shape, after authenticating
//! the caller like every user route.

use lambda_http::{Body, Request, Response};
use serde_json::Value;

use super::{context, respond, routes};
use crate::error::MfaError;
use crate::service::Service;

/// The function's handler.
pub async fn handle(_svc: &Service, req: Request) -> Response<Body> {
    let result: Result<Value, MfaError> = (|| {
        context::user_caller(&req)?;
        match routes::function_for(routes::path(&req)) {
            Some((routes::Function::PhoneEdits, _)) => Err(MfaError::NotImplemented),
            _ => Err(MfaError::RouteNotFound),
        }
    })();
    respond(&req, 200, result)
}
