//! `phone-submit`: the phone step of an enrollment. Texts a code to the number.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use super::{parse_body, serve_user, with_status};
use crate::error::MfaError;
use crate::flows::enrollment;
use crate::service::Service;
use crate::types::phone::PhoneError;
use crate::types::{EnrollmentId, PhoneNumber};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhoneBody {
    phone_number: String,
    #[serde(default)]
    label: Option<String>,
}

/// Maps a phone parse failure to the contract's answer.
pub fn phone_error(e: PhoneError) -> MfaError {
    match e {
        PhoneError::Invalid(msg) => MfaError::InvalidPhoneNumber(msg),
        PhoneError::UnsupportedType(kind) => MfaError::UnsupportedNumberType { kind },
    }
}

/// The function's handler.
pub async fn handle(svc: &Service, req: Request) -> Response<Body> {
    serve_user(&req, |req, caller, method, segs| async move {
        match (method, segs.as_slice()) {
            (Method::POST, ["v1", "mfa", "enrollments", id, "phone"]) => {
                let body: PhoneBody = parse_body(req)?;
                let number = PhoneNumber::parse(&body.phone_number).map_err(phone_error)?;
                let label = enrollment::clean_label(body.label)?;
                let id = EnrollmentId::parse(id).map_err(|_| MfaError::EnrollmentNotFound)?;
                let sent = enrollment::submit_phone(svc, &caller, &id, number, label).await?;
                with_status(202, sent)
            }
            (_, ["v1", "mfa", "enrollments", _, "phone"]) => Err(MfaError::MethodNotAllowed),
            _ => Err(MfaError::RouteNotFound),
        }
    })
    .await
}
