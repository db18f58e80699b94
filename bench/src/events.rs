//! API Gateway HTTP API (payload 2.0) events, shaped as in `shared/tests/fixtures/`: a JWT
//! authorizer context (claims `sub` and `app_id`) for user routes, an IAM one for admin routes,
//! none for the public JWKS.

use serde_json::{Value, json};

/// Who the request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    User,
    Admin,
    Public,
}

/// One API Gateway v2 event for `method path` with an optional JSON body.
pub fn event(
    auth: Auth,
    method: &str,
    path: &str,
    body: Option<Value>,
    app: &str,
    user: &str,
) -> Vec<u8> {
    let authorizer = match auth {
        Auth::User => json!({
            "jwt": {
                "claims": {
                    "aud": "mfa-api",
                    "app_id": app,
                    "exp": "4102444800",
                    "iat": "1721813400",
                    "iss": "https://auth.platform.example/",
                    "scope": "[openid profile]",
                    "sub": user
                },
                "scopes": null
            }
        }),
        Auth::Admin => json!({
            "iam": {
                "accessKey": "AKIAIOSFODNN7EXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAJQABLZS4A3QDU576Q",
                "cognitoIdentity": null,
                "principalOrgId": "o-a1b2c3d4e5",
                "userArn": "arn:aws:iam::123456789012:user/bench-admin",
                "userId": "AIDAJQABLZS4A3QDU576Q"
            }
        }),
        Auth::Public => Value::Null,
    };
    let mut headers = json!({
        "accept": "application/json",
        "host": "mfa.execute-api.us-east-1.amazonaws.com",
        "user-agent": "mfa-bench",
        "x-forwarded-for": "203.0.113.24",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https"
    });
    let body_text = body.map(|b| b.to_string());
    if let (Some(b), Some(h)) = (&body_text, headers.as_object_mut()) {
        h.insert("content-type".into(), json!("application/json"));
        h.insert("content-length".into(), json!(b.len().to_string()));
    }
    let mut request_context = json!({
        "accountId": "123456789012",
        "apiId": "mfa1a2b3c4",
        "domainName": "mfa.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "mfa",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.24",
            "userAgent": "mfa-bench"
        },
        "requestId": "ZK4m1hQ-IAMEV0w=",
        "routeKey": "$default",
        "stage": "$default",
        "time": "24/Jul/2024:09:30:00 +0000",
        "timeEpoch": 1_721_813_400_000_u64
    });
    if !authorizer.is_null()
        && let Some(rc) = request_context.as_object_mut()
    {
        rc.insert("authorizer".into(), authorizer);
    }
    let mut ev = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": request_context,
        "isBase64Encoded": false
    });
    if let (Some(b), Some(o)) = (body_text, ev.as_object_mut()) {
        o.insert("body".into(), json!(b));
    }
    ev.to_string().into_bytes()
}
