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
    // jsonwebtoken refuses only `exp < now`; RFC 7519 (4.1.4) wants now *before* `exp`, so a
    // token is refused in the second it expires too.
    .filter(|c| {
        c.get("exp")
            .and_then(Value::as_f64)
            .is_some_and(|exp| exp > now() as f64)
    })
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
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("could not read the password: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("give the password on standard input".into());
    }
    hash_password(password)
}

/// argon2id with its defaults (19 MiB, 2 passes), as a platform would store a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
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

    /// Property tests of [`verify`]: whatever the string, no panic, and nothing is accepted
    /// unless it is HS256-signed with the secret, carries a string `sub` and an `exp` still ahead.
    mod properties {
        use super::*;
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;
        use proptest::test_runner::Config;

        const SECRET: &str = "s3cret";

        fn b64(bytes: &[u8]) -> String {
            B64.encode(bytes)
        }

        /// `header.claims.signature`, the signature an HMAC of `alg` under `key` (or none).
        fn token(header: &Value, claims: &Value, sig: Option<(&str, Algorithm)>) -> String {
            let message = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = match sig {
                Some((key, alg)) => jsonwebtoken::crypto::sign(
                    message.as_bytes(),
                    &EncodingKey::from_secret(key.as_bytes()),
                    alg,
                )
                .unwrap(),
                None => String::new(),
            };
            format!("{message}.{sig}")
        }

        fn good_claims(sub: &str, ttl: u64) -> Value {
            json!({ "sub": sub, "app_id": "acme", "exp": now() + ttl })
        }

        fn any_chars(max: usize) -> impl Strategy<Value = String> {
            vec(any::<char>(), 0..max).prop_map(String::from_iter)
        }

        /// Anything a client could put after `Bearer `.
        fn junk() -> impl Strategy<Value = String> {
            prop_oneof![
                any_chars(64),
                "[A-Za-z0-9_\\-.=+/ ]{0,300}",
                "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,80}",
                "(eyJ[A-Za-z0-9_-]{0,40}\\.){1,6}[A-Za-z0-9_-]{0,43}",
                (any::<char>(), 0..300_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
                (0..100_000usize).prop_map(|n| ".".repeat(n)),
            ]
        }

        /// Base64url's alphabet, the dot, padding and a few strangers.
        fn token_char() -> impl Strategy<Value = char> {
            prop_oneof![
                8 => proptest::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9'].into()),
                1 => select(vec!['-', '_', '.', '=', '+', '/', ' ', '\0', 'é']),
            ]
        }

        proptest! {
            #![proptest_config(Config {
                cases: 256,
                failure_persistence: None,
                ..Config::default()
            })]

            #[test]
            fn arbitrary_strings_are_refused(s in junk()) {
                prop_assert!(verify(SECRET, &s).is_none(), "{s:?}");
            }

            /// Any header (`alg: none`, other algorithms, odd spellings) with any signature but
            /// the one HS256 gives under the secret: refused.
            #[test]
            fn a_token_not_hs256_signed_with_the_secret_is_refused(
                alg in prop_oneof![
                    select(vec!["HS256", "none", "None", "NONE", "", "HS384", "HS512", "RS256",
                                "ES256", "EdDSA", "PS256", "hs256", "HS256 ", "HS256\u{0}"])
                        .prop_map(str::to_owned),
                    any_chars(8),
                ],
                extra in select(vec![json!({}), json!({"typ": "JWT"}), json!({"kid": "k"}),
                                     json!({"crit": ["exp"]}), json!({"jku": "https://x"})]),
                sig in 0..6u8,
                other_key in "[a-z0-9]{0,12}",
                ttl in 60..1_000_000u64,
            ) {
                let mut header = extra;
                header["alg"] = json!(alg);
                let claims = good_claims("u1", ttl);
                let t = match sig {
                    0 => token(&header, &claims, None),
                    1 => token(&header, &claims, Some((other_key.as_str(), Algorithm::HS256)))
                        + if other_key == SECRET { "x" } else { "" },
                    2 => token(&header, &claims, Some((SECRET, Algorithm::HS384))),
                    3 => token(&header, &claims, Some((SECRET, Algorithm::HS512))),
                    // Signed over other claims, then the claims swapped in.
                    4 => {
                        let other = good_claims("u2", ttl);
                        let signed = token(&header, &other, Some((SECRET, Algorithm::HS256)));
                        let parts: Vec<&str> = signed.split('.').collect();
                        let swapped = b64(claims.to_string().as_bytes());
                        format!("{}.{swapped}.{}", parts[0], parts[2])
                    }
                    _ => format!("{}.{}", token(&header, &claims, None), b64(other_key.as_bytes())),
                };
                prop_assert!(verify(SECRET, &t).is_none(), "{header} {t}");
            }

            /// A valid token changed anywhere (a character replaced, inserted or removed) is
            /// refused; the token itself is accepted.
            #[test]
            fn a_tampered_token_is_refused(
                sub in "[a-z0-9|@.-]{1,40}",
                scope in proptest::option::of("[a-z: ]{0,30}"),
                ttl in 60..10_000_000u64,
                at in any::<prop::sample::Index>(),
                op in 0..3u8,
                c in token_char(),
            ) {
                let t = issue(SECRET, &sub, Some("acme"), scope.as_deref(), ttl).unwrap();
                prop_assert!(verify(SECRET, &t).is_some(), "{t}");
                let mut chars: Vec<char> = t.chars().collect();
                let i = at.index(chars.len());
                match op {
                    0 => chars[i] = c,
                    1 => chars.insert(i, c),
                    _ => { chars.remove(i); }
                }
                let tampered: String = chars.into_iter().collect();
                prop_assume!(tampered != t);
                prop_assert!(verify(SECRET, &tampered).is_none(), "{t} → {tampered}");
            }

            /// Correctly signed, `exp` decides: a number still ahead is accepted; missing,
            /// `null`, a string, negative, past or now is refused. `sub` must be a string.
            #[test]
            fn exp_and_sub_decide_a_signed_token(
                exp_kind in 0..8u8,
                delta in 0..2_000_000_000u64,
                sub in prop_oneof![Just(json!("u1")), Just(Value::Null), Just(json!(5)),
                                   Just(json!(["u1"])), Just(json!(""))],
                drop_sub in any::<bool>(),
            ) {
                let n = now();
                let (exp, ahead) = match exp_kind {
                    0 => (None, false),
                    1 => (Some(Value::Null), false),
                    2 => (Some(json!((n + 5 + delta).to_string())), false),
                    3 => (Some(json!(-1 - i64::try_from(delta).unwrap())), false),
                    4 => (Some(json!(n.saturating_sub(delta))), false),
                    5 => (Some(json!(n)), false),
                    6 => (Some(json!((n + 5 + delta) as f64 + 0.25)), true),
                    _ => (Some(json!(n + 5 + delta)), true),
                };
                let mut claims = json!({ "app_id": "acme" });
                if !drop_sub {
                    claims["sub"] = sub.clone();
                }
                if let Some(exp) = exp {
                    claims["exp"] = exp;
                }
                let header = json!({ "alg": "HS256", "typ": "JWT" });
                let t = token(&header, &claims, Some((SECRET, Algorithm::HS256)));
                let valid = ahead && !drop_sub && sub.is_string();
                prop_assert_eq!(verify(SECRET, &t).is_some(), valid, "{}", claims);
            }
        }

        #[test]
        fn a_token_is_refused_in_the_second_it_expires() {
            let t = issue(SECRET, "u1", Some("acme"), None, 0).unwrap();
            assert!(verify(SECRET, &t).is_none(), "exp = now was accepted");
        }

        #[test]
        fn a_huge_valid_token_is_still_just_checked() {
            let mut claims = good_claims("u1", 60);
            claims["pad"] = json!("x".repeat(1 << 20));
            let header = json!({ "alg": "HS256" });
            let t = token(&header, &claims, Some((SECRET, Algorithm::HS256)));
            assert!(verify(SECRET, &t).is_some());
            assert!(verify("other", &t).is_none());
        }
    }
}
