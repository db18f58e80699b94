//! The route table: which function serves which path, and who may call it. The local server
//! dispatches with it; each handler matches its own routes again by method.

use lambda_http::{Request, RequestExt};

/// The five Lambda functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    PolicyConfig,
    EnrollmentStart,
    PhoneSubmit,
    CodeVerify,
    PhoneEdits,
    Challenge,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An end user with a platform JWT.
    User,
    /// An application's admin (IAM; locally the `mfa:admin` scope).
    Admin,
    /// The customer success team (IAM; locally the `mfa:operator` scope).
    Operator,
    /// Anyone (the JWKS).
    Public,
}

/// The request's path as the client sent it, without the stage: an HTTP API on a named stage
/// (not `$default`) puts `/{stage}` in front of `rawPath`.
pub fn path(req: &Request) -> &str {
    let raw = req.raw_http_path();
    let raw = if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    };
    let stage = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => raw
            .strip_prefix('/')
            .and_then(|r| r.strip_prefix(stage))
            .filter(|r| r.starts_with('/'))
            .unwrap_or(raw),
        _ => raw,
    }
}

/// The methods `path` accepts, for the `Allow` header of a 405 (e.g. `GET, PUT`).
pub fn allowed_methods(path: &str) -> String {
    let segs = segments(path);
    let mut methods: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, template)| {
            let t = segments(template);
            t.len() == segs.len()
                && t.iter()
                    .zip(&segs)
                    .all(|(a, b)| a.starts_with('{') || a == b)
        })
        .map(|(m, _)| *m)
        .collect();
    methods.dedup();
    methods.join(", ")
}

/// The path's segments, without empty ones from a trailing slash.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Which function serves `path`, and who may call it; `None` for an unknown path.
pub fn function_for(path: &str) -> Option<(Function, Access)> {
    use Access::*;
    use Function::*;
    match segments(path).as_slice() {
        ["v1", "admin", "applications", _, "mfa-policy"] => Some((PolicyConfig, Admin)),
        ["v1", "admin", "applications", _, "mfa-availability"] => Some((PolicyConfig, Operator)),
        ["v1", "admin", "applications", _, "users", _]
        | ["v1", "admin", "applications", _, "users", _, "mfa"]
        | ["v1", "admin", "applications", _, "audit-events"] => Some((PolicyConfig, Admin)),
        ["v1", "mfa", "status"] | ["v1", "mfa", "skip"] | ["v1", "mfa", "enrollments"] => {
            Some((EnrollmentStart, User))
        }
        ["v1", "mfa", "enrollments", _, "phone"] => Some((PhoneSubmit, User)),
        ["v1", "mfa", "enrollments", _, "code" | "resend"] => Some((CodeVerify, User)),
        ["v1", "mfa", "phones"] | ["v1", "mfa", "phones", _] => Some((PhoneEdits, User)),
        ["v1", "mfa", "jwks.json"] => Some((Challenge, Public)),
        ["v1", "mfa", "challenges"]
        | ["v1", "mfa", "challenges", "recovery"]
        | ["v1", "mfa", "challenges", _, "code" | "resend"]
        | ["v1", "mfa", "recovery-codes"] => Some((Challenge, User)),
        _ => None,
    }
}

/// Every route of this release as `(method, path template)`, for documentation and checks.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/admin/applications/{app_id}/mfa-policy"),
    ("PUT", "/v1/admin/applications/{app_id}/mfa-policy"),
    ("PUT", "/v1/admin/applications/{app_id}/mfa-availability"),
    ("PUT", "/v1/admin/applications/{app_id}/users/{user_id}"),
    (
        "DELETE",
        "/v1/admin/applications/{app_id}/users/{user_id}/mfa",
    ),
    ("GET", "/v1/admin/applications/{app_id}/audit-events"),
    ("GET", "/v1/mfa/status"),
    ("POST", "/v1/mfa/skip"),
    ("POST", "/v1/mfa/enrollments"),
    ("POST", "/v1/mfa/enrollments/{enrollment_id}/phone"),
    ("POST", "/v1/mfa/enrollments/{enrollment_id}/code"),
    ("POST", "/v1/mfa/enrollments/{enrollment_id}/resend"),
    ("GET", "/v1/mfa/phones"),
    ("POST", "/v1/mfa/phones"),
    ("PUT", "/v1/mfa/phones/{phone_id}"),
    ("PATCH", "/v1/mfa/phones/{phone_id}"),
    ("DELETE", "/v1/mfa/phones/{phone_id}"),
    ("POST", "/v1/mfa/challenges"),
    ("POST", "/v1/mfa/challenges/{challenge_id}/code"),
    ("POST", "/v1/mfa/challenges/{challenge_id}/resend"),
    ("POST", "/v1/mfa/challenges/recovery"),
    ("POST", "/v1/mfa/recovery-codes"),
    ("GET", "/v1/mfa/jwks.json"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_has_a_function() {
        for (_, template) in ROUTES {
            let concrete = template
                .replace("{app_id}", "app1")
                .replace("{user_id}", "u1")
                .replace("{enrollment_id}", "enr_x")
                .replace("{phone_id}", "ph_x")
                .replace("{challenge_id}", "chl_x");
            assert!(function_for(&concrete).is_some(), "{template}");
        }
    }

    #[test]
    fn unknown_paths_have_none() {
        for p in [
            "/",
            "/v1",
            "/v1/mfa",
            "/v1/mfa/enrollments/x",
            "/v1/mfa/enrollments/x/other",
            "/v2/mfa/status",
        ] {
            assert_eq!(function_for(p), None, "{p}");
        }
    }

    #[test]
    fn allowed_methods_come_from_the_route_table() {
        assert_eq!(
            allowed_methods("/v1/admin/applications/a/mfa-policy"),
            "GET, PUT"
        );
        assert_eq!(allowed_methods("/v1/mfa/status"), "GET");
        assert_eq!(allowed_methods("/v1/mfa/phones/ph_1"), "PUT, PATCH, DELETE");
    }

    #[test]
    fn availability_is_the_operators() {
        assert_eq!(
            function_for("/v1/admin/applications/a/mfa-availability"),
            Some((Function::PolicyConfig, Access::Operator))
        );
    }
}
