//! Builds the API Gateway HTTP API (v2) event that a deployment would deliver, so that the
//! handlers see exactly what they see in Lambda (`lambda_http::request::from_str`).

use base64::Engine;
use serde_json::{Map, Value, json};

/// Who the stand-in authorizer says is calling.
pub enum Authorizer {
    /// The JWT authorizer: claims as API Gateway passes them (every value a string).
    Jwt(Map<String, Value>),
    /// IAM: the caller's identity, recorded as the actor.
    Iam(String),
    /// No authorizer on the route (the JWKS).
    None,
    /// A valid token without the scope the route needs (never reaches a function).
    Refused,
}

/// API Gateway hands claims to the function as strings; lists become `[a b]`.
fn claim_strings(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k.clone(), Value::String(s))
        })
        .collect()
}

pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    pub source_ip: String,
    pub request_id: String,
    pub authorizer: Authorizer,
}

/// The v2 event as JSON text.
pub fn api_gateway_v2_event(i: Incoming<'_>) -> String {
    let mut headers = Map::new();
    for (k, v) in i.headers {
        let k = k.to_ascii_lowercase();
        let merged = match headers.get(&k).and_then(Value::as_str) {
            Some(prev) => format!("{prev},{v}"),
            None => v,
        };
        headers.insert(k, Value::String(merged));
    }
    let authorizer = match i.authorizer {
        Authorizer::Jwt(claims) => {
            json!({ "jwt": { "claims": claim_strings(&claims), "scopes": null } })
        }
        Authorizer::Iam(arn) => {
            json!({ "iam": { "accountId": "000000000000", "callerId": arn, "userArn": arn, "userId": arn } })
        }
        Authorizer::None | Authorizer::Refused => Value::Null,
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let (body, is_b64) = if i.body.is_empty() {
        (Value::Null, false)
    } else {
        match std::str::from_utf8(i.body) {
            Ok(s) => (Value::String(s.to_owned()), false),
            Err(_) => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(i.body)),
                true,
            ),
        }
    };
    let user_agent = headers.get("user-agent").cloned().unwrap_or(Value::Null);
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": i.path,
        "rawQueryString": i.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "mfa-local",
            "authorizer": authorizer,
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {
                "method": i.method,
                "path": i.path,
                "protocol": "HTTP/1.1",
                "sourceIp": i.source_ip,
                "userAgent": user_agent,
            },
            "requestId": i.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": now_ms,
        },
        "body": body,
        "isBase64Encoded": is_b64,
    })
    .to_string()
}
