//! `policy-config` (admin API, IAM-authorized): the application's MFA policy, the operator's
//! availability switch, user provisioning, the admin reset, the audit log and the adoption
//! figures.

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{context, double_option, parse_body, serve, with_status};
use crate::error::MfaError;
use crate::flows::{admin, audit, policy, stats, users};
use crate::messages::Locale;
use crate::service::Service;
use crate::types::{
    AppId, CountryCode, DisplayName, Enforcement, Factor, Policy, UserId, WebOtpDomain,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    enabled: bool,
    include_in_signup: bool,
    enforcement: String,
    #[serde(default, deserialize_with = "double_option")]
    allowed_countries: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "super::present")]
    factors: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    webotp_domain: Option<Option<String>>,
    /// Absent keeps the current value; `null` is refused like any other non-number.
    #[serde(default, deserialize_with = "super::present")]
    grace_period_days: Option<GraceDays>,
}

/// `grace_period_days`: a whole number from 0 to 90. Anything else is refused with a message
/// that names the rule and never repeats the value (serde's own would quote it).
struct GraceDays(u16);

impl<'de> Deserialize<'de> for GraceDays {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Days;
        impl serde::de::Visitor<'_> for Days {
            type Value = GraceDays;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number of days from 0 to 90")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GraceDays, E> {
                u16::try_from(v)
                    .ok()
                    .filter(|d| *d <= Policy::MAX_GRACE_PERIOD_DAYS)
                    .map(GraceDays)
                    .ok_or_else(|| E::custom(RULE))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<GraceDays, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(RULE))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<GraceDays, E> {
                Err(E::custom(RULE))
            }

            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<GraceDays, E> {
                Err(E::custom(RULE))
            }
        }
        const RULE: &str = "must be a whole number of days from 0 to 90";
        // Not `deserialize_u16`: serde_json would quote a string it refuses.
        de.deserialize_any(Days)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailabilityBody {
    available: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    email: String,
    email_verified: bool,
    password_hash: String,
    /// BCP 47 (`es`, `pt-BR`); absent or `null`: English.
    #[serde(default)]
    locale: Option<String>,
}

/// The policy as the admin API shows it.
pub fn policy_json(p: &Policy) -> Value {
    let mut json = policy::settings_json(p);
    if let Some(fields) = json.as_object_mut() {
        fields.insert("app_id".into(), json!(p.app_id));
        fields.insert("updated_at".into(), json!(p.updated_at));
        fields.insert("updated_by".into(), json!(p.updated_by));
    }
    json
}

fn user_from_path(seg: &str) -> Result<UserId, MfaError> {
    UserId::parse(seg)
        .map_err(|_| MfaError::InvalidRequest("The user id in the path is not valid.".into()))
}

fn user_from_query(s: &str) -> Result<UserId, MfaError> {
    UserId::parse(s)
        .map_err(|_| MfaError::InvalidRequest("`user_id` is not a valid user id.".into()))
}

fn app_from_path(seg: &str) -> Result<AppId, MfaError> {
    AppId::parse(seg).map_err(|_| {
        MfaError::InvalidRequest("The application id in the path is not valid.".into())
    })
}

/// `If-Match: <version>` (quotes and a weak `W/` prefix tolerated).
fn if_match(req: &Request) -> Result<Option<u64>, MfaError> {
    let Some(v) = req.headers().get("if-match") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or_default().trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse::<u64>().map(Some).map_err(|_| {
        MfaError::InvalidRequest("`If-Match` must be the policy's version number.".into())
    })
}

fn parse_countries(
    list: Option<Option<Vec<String>>>,
) -> Result<Option<Option<Vec<CountryCode>>>, MfaError> {
    let Some(inner) = list else { return Ok(None) };
    let Some(list) = inner else {
        return Ok(Some(None));
    };
    if list.is_empty() {
        return Err(MfaError::InvalidRequest(
            "`allowed_countries` must name at least one country, or be null for every country."
                .into(),
        ));
    }
    let mut out: Vec<CountryCode> = Vec::with_capacity(list.len());
    for c in &list {
        let code = CountryCode::parse(c).ok_or_else(|| {
            MfaError::InvalidRequest(format!(
                "`allowed_countries`: {:?} is not an ISO 3166-1 alpha-2 country code such as \"US\".",
                c.chars().take(8).collect::<String>()
            ))
        })?;
        if !out.contains(&code) {
            out.push(code);
        }
    }
    Ok(Some(Some(out)))
}

/// An optional, nullable field: absent (`None`), `null` (`Some(None)`) or a value `parse`
/// accepts; a refusal names the field and says why.
fn parse_nullable<T>(
    value: Option<Option<String>>,
    field: &str,
    parse: impl Fn(&str) -> Result<T, &'static str>,
) -> Result<Option<Option<T>>, MfaError> {
    match value {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(v)) => parse(&v)
            .map(|t| Some(Some(t)))
            .map_err(|why| MfaError::InvalidRequest(format!("`{field}` {why}."))),
    }
}

/// `factors`: a non-empty subset of `["sms", "totp"]` (repeats are one), kept in that order.
fn parse_factors(list: Vec<String>) -> Result<Vec<Factor>, MfaError> {
    let mut out = Vec::new();
    for f in &list {
        let factor = Factor::parse(f).ok_or_else(|| {
            MfaError::InvalidRequest(format!(
                "`factors`: {:?} is not a factor; use \"sms\" and/or \"totp\".",
                f.chars().take(8).collect::<String>()
            ))
        })?;
        if !out.contains(&factor) {
            out.push(factor);
        }
    }
    if out.is_empty() {
        return Err(MfaError::InvalidRequest(
            "`factors` must name at least one factor (\"sms\", \"totp\").".into(),
        ));
    }
    out.sort();
    Ok(out)
}

async fn put_policy(
    svc: &Service,
    req: &Request,
    app: &AppId,
    actor: &str,
) -> Result<Value, MfaError> {
    let body: PolicyBody = parse_body(req)?;
    let enforcement = Enforcement::parse(&body.enforcement).ok_or_else(|| {
        MfaError::InvalidRequest("`enforcement` must be \"optional\" or \"required\".".into())
    })?;
    let change = policy::PolicyChange {
        enabled: body.enabled,
        include_in_signup: body.include_in_signup,
        enforcement,
        allowed_countries: parse_countries(body.allowed_countries)?,
        factors: body.factors.map(parse_factors).transpose()?,
        display_name: parse_nullable(body.display_name, "display_name", DisplayName::parse)?,
        webotp_domain: parse_nullable(body.webotp_domain, "webotp_domain", WebOtpDomain::parse)?,
        grace_period_days: body.grace_period_days.map(|d| d.0),
    };
    let p = policy::update(svc, app, change, if_match(req)?, actor).await?;
    Ok(policy_json(&p))
}

/// The function's handler.
pub async fn handle(svc: &Service, req: Request) -> Response<Body> {
    serve(
        &req,
        context::admin_actor,
        |req, actor, method, segs| async move {
            match (method, segs.as_slice()) {
                (Method::GET, ["v1", "admin", "applications", app, "mfa-policy"]) => {
                    let app = app_from_path(app)?;
                    Ok((200, policy_json(&policy::get_fresh(svc, &app).await?)))
                }
                (Method::PUT, ["v1", "admin", "applications", app, "mfa-policy"]) => {
                    let app = app_from_path(app)?;
                    Ok((200, put_policy(svc, req, &app, &actor).await?))
                }
                (Method::GET, ["v1", "admin", "applications", app, "mfa-stats"]) => {
                    let app = app_from_path(app)?;
                    Ok((200, json!(stats::adoption(svc, &app).await?)))
                }
                (Method::PUT, ["v1", "admin", "applications", app, "mfa-availability"]) => {
                    let app = app_from_path(app)?;
                    let body: AvailabilityBody = parse_body(req)?;
                    let p = policy::set_availability(svc, &app, body.available, &actor).await?;
                    Ok((200, policy_json(&p)))
                }
                (Method::PUT, ["v1", "admin", "applications", app, "users", user]) => {
                    let app = app_from_path(app)?;
                    let user = UserId::parse(user).map_err(|_| {
                        MfaError::InvalidRequest("The user id in the path is not valid.".into())
                    })?;
                    let body: UserBody = parse_body(req)?;
                    let locale = body
                        .locale
                        .map(|l| {
                            Locale::parse(&l).map_err(|_| {
                                MfaError::InvalidRequest(
                                    "`locale` must be a BCP 47 language tag such as \"es\" or \"pt-BR\"."
                                        .into(),
                                )
                            })
                        })
                        .transpose()?;
                    let u = users::put(
                        svc,
                        &app,
                        &user,
                        body.email,
                        body.email_verified,
                        body.password_hash,
                        locale,
                    )
                    .await?;
                    Ok((
                        200,
                        json!({
                            "app_id": u.app_id,
                            "user_id": u.user_id,
                            "email": u.email,
                            "email_verified": u.email_verified,
                            "locale": u.locale,
                            "updated_at": u.updated_at,
                        }),
                    ))
                }
                (Method::DELETE, ["v1", "admin", "applications", app, "users", user, "mfa"]) => {
                    let app = app_from_path(app)?;
                    let user = user_from_path(user)?;
                    admin::reset(svc, &app, &user, &actor).await?;
                    Ok((204, Value::Null))
                }
                (Method::GET, ["v1", "admin", "applications", app, "audit-events"]) => {
                    let app = app_from_path(app)?;
                    let q = req.query_string_parameters();
                    let user = q
                        .first("user_id")
                        .filter(|u| !u.is_empty())
                        .map(user_from_query)
                        .transpose()?;
                    let limit = match q.first("limit") {
                        None | Some("") => 50,
                        Some(l) => l
                            .parse::<u32>()
                            .ok()
                            .filter(|n| (1..=audit::MAX_PAGE).contains(n))
                            .ok_or_else(|| {
                                MfaError::InvalidRequest(format!(
                                    "`limit` must be a whole number from 1 to {}.",
                                    audit::MAX_PAGE
                                ))
                            })?,
                    };
                    let cursor = q.first("cursor").filter(|c| !c.is_empty());
                    let page = audit::list(svc, &app, user.as_ref(), limit, cursor).await?;
                    with_status(200, page)
                }
                (
                    _,
                    [
                        "v1",
                        "admin",
                        "applications",
                        _,
                        "mfa-policy" | "mfa-availability" | "audit-events" | "mfa-stats",
                    ],
                )
                | (_, ["v1", "admin", "applications", _, "users", _])
                | (_, ["v1", "admin", "applications", _, "users", _, "mfa"]) => {
                    Err(MfaError::MethodNotAllowed)
                }
                _ => Err(MfaError::RouteNotFound),
            }
        },
    )
    .await
}
