//! `phone-edits`: factors in settings — phones (list, add another, replace a number, relabel or
//! make primary, remove) and the authenticator app (set up, remove). Codes for adds, replaces
//! and app setups go through the enrollment code routes.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::phone_submit::phone_error;
use super::{PasswordBody, double_option, parse_body, present, serve_user, step_up, with_status};
use crate::error::MfaError;
use crate::flows::{phones, totp};
use crate::service::Service;
use crate::types::{PhoneId, PhoneNumber};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    password: String,
    phone_number: String,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceBody {
    password: String,
    phone_number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TotpBody {
    password: String,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, deserialize_with = "double_option")]
    label: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    primary: Option<bool>,
}

fn phone_id(seg: &str) -> Result<PhoneId, MfaError> {
    // Anything not shaped like our ids is simply not one of the user's phones.
    PhoneId::parse(seg).map_err(|_| MfaError::PhoneNotFound)
}

/// The function's handler.
pub async fn handle(svc: &Service, req: Request) -> Response<Body> {
    serve_user(&req, |req, caller, method, segs| async move {
        match (method, segs.as_slice()) {
            (Method::GET, ["v1", "mfa", "phones"]) => {
                Ok((200, json!({ "phones": phones::list(svc, &caller).await? })))
            }
            (Method::POST, ["v1", "mfa", "phones"]) => {
                let body: AddBody = parse_body(req)?;
                let number = PhoneNumber::parse(&body.phone_number).map_err(phone_error)?;
                step_up(svc, &caller, req).await?;
                let sent = phones::add(svc, &caller, body.password, number, body.label).await?;
                with_status(202, sent)
            }
            (Method::PUT, ["v1", "mfa", "phones", id]) => {
                let body: ReplaceBody = parse_body(req)?;
                let number = PhoneNumber::parse(&body.phone_number).map_err(phone_error)?;
                let id = phone_id(id)?;
                step_up(svc, &caller, req).await?;
                let sent = phones::replace(svc, &caller, &id, body.password, number).await?;
                with_status(202, sent)
            }
            (Method::PATCH, ["v1", "mfa", "phones", id]) => {
                let body: PatchBody = parse_body(req)?;
                let make_primary = match body.primary {
                    None => false,
                    Some(true) => true,
                    Some(false) => {
                        return Err(MfaError::InvalidRequest(
                            "`primary` can only be true: make another phone primary instead."
                                .into(),
                        ));
                    }
                };
                if body.label.is_none() && !make_primary {
                    return Err(MfaError::InvalidRequest(
                        "Send `label`, `primary` or both.".into(),
                    ));
                }
                let id = phone_id(id)?;
                let phone = phones::update(svc, &caller, &id, body.label, make_primary).await?;
                with_status(200, phone)
            }
            (Method::DELETE, ["v1", "mfa", "phones", id]) => {
                let body: PasswordBody = parse_body(req)?;
                let id = phone_id(id)?;
                step_up(svc, &caller, req).await?;
                phones::remove(svc, &caller, &id, body.password).await?;
                Ok((204, Value::Null))
            }
            (Method::POST, ["v1", "mfa", "totp"]) => {
                let body: TotpBody = parse_body(req)?;
                step_up(svc, &caller, req).await?;
                let started = totp::begin(svc, &caller, body.password, body.label).await?;
                with_status(201, started)
            }
            (Method::DELETE, ["v1", "mfa", "totp"]) => {
                let body: PasswordBody = parse_body(req)?;
                step_up(svc, &caller, req).await?;
                totp::remove(svc, &caller, body.password).await?;
                Ok((204, Value::Null))
            }
            (_, ["v1", "mfa", "phones"] | ["v1", "mfa", "phones", _] | ["v1", "mfa", "totp"]) => {
                Err(MfaError::MethodNotAllowed)
            }
            _ => Err(MfaError::RouteNotFound),
        }
    })
    .await
}
