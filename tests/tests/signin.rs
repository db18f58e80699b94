//! Sign-in with the second factor over HTTP, on both backends: the platform's login starts a
//! challenge, exchanges the code for an assertion and verifies it with the published JWKS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mfa_tests::{Launch, LocalServer, Reply, Tenant, moto_url, unique_number};
use serde_json::{Value, json};

/// The platform's login: a challenge to the primary phone, then the texted code.
async fn sign_in(s: &LocalServer, t: &Tenant, number: &str) -> Reply {
    let r = s
        .call("POST", "/v1/mfa/challenges", Some(&t.user_token), None)
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.json["challenge_id"].as_str().unwrap();
    let code = s.last_code(number).await;
    let path = format!("/v1/mfa/challenges/{id}/code");
    s.call(
        "POST",
        &path,
        Some(&t.user_token),
        Some(json!({"code": code})),
    )
    .await
}

/// What a platform's login does with an assertion: the key by `kid` from the JWKS, the
/// signature, `exp`.
async fn verify(s: &LocalServer, assertion: &str) -> Result<Value, String> {
    let jwks = s.call("GET", "/v1/mfa/jwks.json", None, None).await;
    assert_eq!(jwks.status, 200, "{jwks:?}");
    let kid = jsonwebtoken::decode_header(assertion)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = jwks.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or("kid not published")?;
    let key =
        DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
    jsonwebtoken::decode::<Value>(assertion, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn sign_in_walk(s: &LocalServer) {
    let t = Tenant::set_up(s, "optional").await;
    let number = unique_number();
    t.enroll(s, &number).await;

    let r = s
        .call("POST", "/v1/mfa/challenges", Some(&t.user_token), None)
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.json["challenge_id"].as_str().unwrap().to_owned();
    let code = s.last_code(&number).await;
    let path = format!("/v1/mfa/challenges/{id}/code");
    let r = s
        .call(
            "POST",
            &path,
            Some(&t.user_token),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let claims = verify(s, r.json["assertion"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (claims["sub"].as_str(), claims["app_id"].as_str()),
        (Some(t.user.as_str()), Some(t.app.as_str()))
    );
    assert_eq!(claims["amr"], json!(["sms"]));

    // Replay: the same code again gives nothing.
    let again = s
        .call(
            "POST",
            &path,
            Some(&t.user_token),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!((again.status, again.error()), (409, "wrong_step"));

    // An enrollment's code never satisfies a challenge.
    let second = unique_number();
    let add = s
        .call(
            "POST",
            "/v1/mfa/phones",
            Some(&t.user_token),
            Some(json!({"password": t.password, "phone_number": second})),
        )
        .await;
    assert_eq!(add.status, 202, "{add:?}");
    let r = s
        .call("POST", "/v1/mfa/challenges", Some(&t.user_token), None)
        .await;
    let chl = r.json["challenge_id"].as_str().unwrap().to_owned();
    let enrollment_code = s.last_code(&second).await;
    let challenge_code = s.last_code(&number).await;
    if enrollment_code != challenge_code {
        let r = s
            .call(
                "POST",
                &format!("/v1/mfa/challenges/{chl}/code"),
                Some(&t.user_token),
                Some(json!({"code": enrollment_code})),
            )
            .await;
        assert_eq!((r.status, r.error()), (400, "invalid_code"), "{r:?}");
    }
    let enrollment_id = add.json["enrollment_id"].as_str().unwrap();
    let r = s
        .call(
            "POST",
            &format!("/v1/mfa/challenges/{enrollment_id}/code"),
            Some(&t.user_token),
            Some(json!({"code": enrollment_code})),
        )
        .await;
    assert_eq!((r.status, r.error()), (404, "challenge_not_found"));

    // Recovery codes: shown once, each works once, status counts them.
    let r = s
        .call(
            "POST",
            "/v1/mfa/recovery-codes",
            Some(&t.user_token),
            Some(json!({"password": t.password})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let codes: Vec<String> = r.json["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let r = s
        .call(
            "POST",
            "/v1/mfa/challenges/recovery",
            Some(&t.user_token),
            Some(json!({"code": codes[0]})),
        )
        .await;
    assert_eq!(
        (r.status, r.json["remaining"].clone()),
        (200, json!(9)),
        "{r:?}"
    );
    assert_eq!(
        verify(s, r.json["assertion"].as_str().unwrap())
            .await
            .unwrap()["amr"],
        json!(["recovery"])
    );
    let r = s
        .call(
            "POST",
            "/v1/mfa/challenges/recovery",
            Some(&t.user_token),
            Some(json!({"code": codes[0]})),
        )
        .await;
    assert_eq!((r.status, r.error()), (400, "invalid_code"));
    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.json["recovery_codes_remaining"], 9);
    let subjects: Vec<String> = s
        .emails_to(&t.email)
        .await
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    assert!(
        subjects.iter().any(|x| x.contains("New recovery codes")),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|x| x.contains("recovery code was used")),
        "{subjects:?}"
    );
}

#[tokio::test]
async fn sign_in_on_memory() {
    sign_in_walk(&LocalServer::memory(&[])).await;
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn sign_in_on_moto() {
    sign_in_walk(&LocalServer::aws(Launch {
        bootstrap: true,
        ..Launch::default()
    }))
    .await;
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn one_recovery_code_used_twice_at_once_succeeds_once_on_moto() {
    let s = Arc::new(LocalServer::aws(Launch {
        bootstrap: true,
        ..Launch::default()
    }));
    let t = Arc::new(Tenant::set_up(&s, "optional").await);
    t.enroll(&s, &unique_number()).await;
    let r = s
        .call(
            "POST",
            "/v1/mfa/recovery-codes",
            Some(&t.user_token),
            Some(json!({"password": t.password})),
        )
        .await;
    let code = r.json["codes"][0].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (s, t, code) = (s.clone(), t.clone(), code.clone());
            tokio::spawn(async move {
                s.call(
                    "POST",
                    "/v1/mfa/challenges/recovery",
                    Some(&t.user_token),
                    Some(json!({"code": code})),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_key_rotation_keeps_old_assertions_verifiable_until_they_expire() {
    let before = LocalServer::aws(Launch {
        bootstrap: true,
        ..Launch::default()
    });
    let t = Tenant::set_up(&before, "optional").await;
    let number = unique_number();
    t.enroll(&before, &number).await;
    let r = sign_in(&before, &t, &number).await;
    let old_assertion = r.json["assertion"].as_str().unwrap().to_owned();

    // Rotate: the old material becomes "previous", fresh material signs from now on.
    let table = before.table.clone().unwrap();
    let secret_id = format!("{table}/signing-key");
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .http_client(mfa_shared::adapters::aws::https_client())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let old = sm
        .get_secret_value()
        .secret_id(&secret_id)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    let rotated = json!({ "current": "n".repeat(64), "previous": [old] }).to_string();
    sm.put_secret_value()
        .secret_id(&secret_id)
        .secret_string(rotated)
        .send()
        .await
        .unwrap();
    drop(before);

    // A new cold start reads the rotated secret: both keys are published, the new one signs.
    let after = LocalServer::aws(Launch {
        table: Some(table.clone()),
        ..Launch::default()
    });
    let claims = verify(&after, &old_assertion)
        .await
        .expect("an assertion of the previous key still verifies");
    assert_eq!(claims["sub"].as_str(), Some(t.user.as_str()));
    let r = sign_in(&after, &t, &number).await;
    assert_eq!(r.status, 200, "{r:?}");
    let new_assertion = r.json["assertion"].as_str().unwrap();
    verify(&after, new_assertion).await.unwrap();
    let kid = |a: &str| jsonwebtoken::decode_header(a).unwrap().kid.unwrap();
    assert_ne!(kid(new_assertion), kid(&old_assertion), "the new key signs");

    // Once the previous key is dropped (after its assertions have expired), it verifies nothing.
    sm.put_secret_value()
        .secret_id(&secret_id)
        .secret_string("n".repeat(64))
        .send()
        .await
        .unwrap();
    drop(after);
    let later = LocalServer::aws(Launch {
        table: Some(table),
        ..Launch::default()
    });
    assert!(verify(&later, &old_assertion).await.is_err());
    assert!(verify(&later, new_assertion).await.is_ok());
}

#[tokio::test]
#[ignore = "needs the project's .venv (Python with cryptography): run by tests/run.sh"]
async fn the_readme_sign_in_script_verifies_its_assertion() {
    let s = LocalServer::memory(&[]);
    let out = std::process::Command::new("bash")
        .arg(mfa_tests::root().join("tests/signin-example.sh"))
        .env("B", &s.base)
        .env("MFA_LOCAL", mfa_tests::mfa_local_bin())
        .env("PY", mfa_tests::root().join(".venv/bin/python"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("assertion verified:"), "{stdout}");
}
