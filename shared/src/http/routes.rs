//! The route table: which function serves which path, and who may call it. The local server
//! dispatches with it; each handler matches its own routes again by method.

use lambda_http::{Request, RequestExt};

/// The six Lambda functions.
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

/// One route: `method` on paths shaped like `template` (`{name}` stands for any one segment)
/// is served by `function`, for callers with `access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
    pub function: Function,
    pub access: Access,
}

const fn route(
    method: &'static str,
    template: &'static str,
    function: Function,
    access: Access,
) -> Route {
    Route {
        method,
        template,
        function,
        access,
    }
}

/// Every route of this release: the one table that [`function_for`] and [`allowed_methods`]
/// read (and the tests compare with `template.yaml` and `openapi.yaml`). Routes of one path
/// stay together, in the order a 405's `Allow` header lists their methods.
#[rustfmt::skip]
pub const ROUTES: &[Route] = {
    use Access::*;
    use Function::*;
    &[
        route("GET",    "/v1/admin/applications/{app_id}/mfa-policy",          PolicyConfig,    Admin),
        route("PUT",    "/v1/admin/applications/{app_id}/mfa-policy",          PolicyConfig,    Admin),
        route("PUT",    "/v1/admin/applications/{app_id}/mfa-availability",    PolicyConfig,    Operator),
        route("PUT",    "/v1/admin/applications/{app_id}/users/{user_id}",     PolicyConfig,    Admin),
        route("DELETE", "/v1/admin/applications/{app_id}/users/{user_id}/mfa", PolicyConfig,    Admin),
        route("GET",    "/v1/admin/applications/{app_id}/audit-events",        PolicyConfig,    Admin),
        route("GET",    "/v1/admin/applications/{app_id}/mfa-stats",           PolicyConfig,    Admin),
        route("GET",    "/v1/mfa/status",                                      EnrollmentStart, User),
        route("POST",   "/v1/mfa/skip",                                        EnrollmentStart, User),
        route("POST",   "/v1/mfa/enrollments",                                 EnrollmentStart, User),
        route("POST",   "/v1/mfa/enrollments/{enrollment_id}/phone",           PhoneSubmit,     User),
        route("POST",   "/v1/mfa/enrollments/{enrollment_id}/code",            CodeVerify,      User),
        route("POST",   "/v1/mfa/enrollments/{enrollment_id}/resend",          CodeVerify,      User),
        route("GET",    "/v1/mfa/phones",                                      PhoneEdits,      User),
        route("POST",   "/v1/mfa/phones",                                      PhoneEdits,      User),
        route("PUT",    "/v1/mfa/phones/{phone_id}",                           PhoneEdits,      User),
        route("PATCH",  "/v1/mfa/phones/{phone_id}",                           PhoneEdits,      User),
        route("DELETE", "/v1/mfa/phones/{phone_id}",                           PhoneEdits,      User),
        route("POST",   "/v1/mfa/totp",                                        PhoneEdits,      User),
        route("DELETE", "/v1/mfa/totp",                                        PhoneEdits,      User),
        route("POST",   "/v1/mfa/challenges",                                  Challenge,       User),
        route("POST",   "/v1/mfa/challenges/{challenge_id}/code",              Challenge,       User),
        route("POST",   "/v1/mfa/challenges/{challenge_id}/resend",            Challenge,       User),
        route("POST",   "/v1/mfa/challenges/recovery",                         Challenge,       User),
        route("POST",   "/v1/mfa/recovery-codes",                              Challenge,       User),
        route("GET",    "/v1/mfa/jwks.json",                                   Challenge,       Public),
    ]
};

impl Route {
    /// Whether a path of `segments` has this route's shape (whatever its method).
    fn matches(&self, segments: &[&str]) -> bool {
        let t = self::segments(self.template);
        t.len() == segments.len()
            && t.iter()
                .zip(segments)
                .all(|(a, b)| a.starts_with('{') || a == b)
    }
}

/// The routes shaped like `path`, whatever their method.
fn routes_of(path: &str) -> impl Iterator<Item = &'static Route> {
    let segs = segments(path);
    ROUTES.iter().filter(move |r| r.matches(&segs))
}

/// The methods `path` accepts, for the `Allow` header of a 405 (e.g. `GET, PUT`).
pub fn allowed_methods(path: &str) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for r in routes_of(path) {
        if !methods.contains(&r.method) {
            methods.push(r.method);
        }
    }
    methods.join(", ")
}

/// The path's segments, without empty ones from a trailing slash.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Which function serves `path`, and who may call it; `None` for an unknown path.
pub fn function_for(path: &str) -> Option<(Function, Access)> {
    routes_of(path).next().map(|r| (r.function, r.access))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_has_a_function() {
        for Route { template, .. } in ROUTES {
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

    /// A path's routes agree on who serves it and who may call it, so the first match is
    /// the answer; and no route is listed twice.
    #[test]
    fn the_routes_of_one_path_agree() {
        for r in ROUTES {
            for other in ROUTES.iter().filter(|o| o.matches(&segments(r.template))) {
                assert_eq!(
                    (other.function, other.access),
                    (r.function, r.access),
                    "{} {}",
                    r.template,
                    other.template
                );
                assert!(
                    other == r || other.method != r.method,
                    "{} {} twice",
                    r.method,
                    r.template
                );
            }
        }
    }

    #[test]
    fn availability_is_the_operators() {
        assert_eq!(
            function_for("/v1/admin/applications/a/mfa-availability"),
            Some((Function::PolicyConfig, Access::Operator))
        );
    }
}
