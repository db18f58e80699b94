//! Local JWTs: HS256 with `MFA_LOCAL_JWT_SECRET`, standing in for the platform's identity
//! provider and API Gateway's JWT authorizer.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};

/// The signing secret (`MFA_LOCAL_JWT_SECRET`, default `local-dev-secret`).
pub fn jwt_secret() -> String {
    std::env::var("MFA_LOCAL_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local-dev-secret".to_owned())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs a token for `user` (and `app`, `scope`), valid for `ttl` seconds.
pub fn issue(
    secret: &str,
    user: &str,
    app: Option<&str>,
    scope: Option<&str>,
    ttl: u64,
) -> Result<String, String> {
    if user.is_empty() {
        return Err("--user must not be empty".into());
    }
    let iat = now();
    let mut claims = json!({ "iss": "mfa-local", "sub": user, "iat": iat, "exp": iat + ttl });
    if let Some(app) = app {
        claims["app_id"] = json!(app);
    }
    if let Some(scope) = scope {
        claims["scope"] = json!(scope);
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("could not sign the token: {e}"))
}

/// Verifies signature and `exp` (no leeway); returns the claims.
pub fn verify(secret: &str, token: &str) -> Option<Map<String, Value>> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .ok()
    .map(|d| d.claims)
}

/// Whether the `scope` claim (space-separated, or a list) holds `wanted`.
pub fn has_scope(claims: &Map<String, Value>, wanted: &str) -> bool {
    match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => s.split_whitespace().any(|x| x == wanted),
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(wanted)),
        _ => false,
    }
}

/// Reads one password from standard input (a trailing newline is dropped) and hashes it with
/// argon2id's defaults (19 MiB, 2 passes), as a platform would store it.
pub fn hash_password_from_stdin() -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("could not read the password: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("give the password on standard input".into());
    }
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("could not hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_signature_and_expiry() {
        let t = issue("s3cret", "u1", Some("app1"), Some("mfa:admin other"), 60).unwrap();
        let c = verify("s3cret", &t).unwrap();
        assert_eq!(c["sub"], "u1");
        assert_eq!(c["app_id"], "app1");
        assert!(has_scope(&c, "mfa:admin"));
        assert!(!has_scope(&c, "mfa:operator"));
        assert!(verify("other", &t).is_none());
        assert!(verify("s3cret", "not.a.jwt").is_none());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let iat = now() - 120;
        let claims = json!({ "sub": "u1", "app_id": "a", "iat": iat, "exp": iat + 60 });
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(verify("k", &t).is_none());
    }

    #[test]
    fn a_token_signed_with_none_is_refused() {
        // header {"alg":"none"} . payload . empty signature
        let t = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(verify("local-dev-secret", t).is_none());
    }
}
