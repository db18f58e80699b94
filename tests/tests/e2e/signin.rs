//! Sign-in with the second factor over HTTP, on both backends: the platform's login starts a
//! challenge, exchanges the code for an assertion and verifies it with the published JWKS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mfa_tests::{Launch, LocalServer, Reply, Tenant, unique_number};
use serde_json::{Value, json};

/// `POST /v1/mfa/challenges`, waiting out the resend cooldown once if the user's last
/// challenge text is too recent (as a person would; the tests' servers use a 1 s cooldown).
async fn challenge(s: &LocalServer, t: &Tenant) -> Reply {
    let r = s
        .call("POST", "/v1/mfa/challenges", Some(&t.user_token), None)
        .await;
    if r.status != 429 || r.error() != "resend_too_soon" {
        return r;
    }
    let wait = r.json["retry_after"].as_u64().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    s.call("POST", "/v1/mfa/challenges", Some(&t.user_token), None)
        .await
}

/// Servers with a 1 s resend cooldown: sign-in walks start challenge after challenge.
fn quick() -> Vec<(String, String)> {
    vec![("MFA_RESEND_COOLDOWN_SECONDS".into(), "1".into())]
}

/// The platform's login: a challenge to the primary phone, then the texted code.
async fn sign_in(s: &LocalServer, t: &Tenant, number: &str) -> Reply {
    let r = challenge(s, t).await;
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
pub(crate) async fn verify(s: &LocalServer, assertion: &str) -> Result<Value, String> {
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

    let r = challenge(s, &t).await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.json["challenge_id"].as_str().unwrap().to_owned();
    let code = s.last_code(&number).await;
    let r = t.challenge_code(s, &id, &code).await;
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
    let again = t.challenge_code(s, &id, &code).await;
    assert_eq!((again.status, again.error()), (409, "wrong_step"));

    // An enrollment's code never satisfies a challenge.
    let second = unique_number();
    let add = t
        .change(
            s,
            "POST",
            "/v1/mfa/phones",
            json!({"password": t.password, "phone_number": second}),
        )
        .await;
    assert_eq!(add.status, 202, "{add:?}");
    let r = challenge(s, &t).await;
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
    let codes = t.recovery_codes(s).await;
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
    let subjects = s.subjects_to(&t.email).await;
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
    sign_in_walk(&LocalServer::memory(&[(
        "MFA_RESEND_COOLDOWN_SECONDS",
        "1",
    )]))
    .await;
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn sign_in_on_moto() {
    sign_in_walk(&LocalServer::aws(Launch {
        bootstrap: true,
        env: quick(),
        ..Launch::default()
    }))
    .await;
}

#[tokio::test]
#[ignore = "needs LocalStack, dynoxide and moto: run by tests/localstack.sh"]
async fn sign_in_on_localstack() {
    sign_in_walk(&LocalServer::aws(Launch {
        bootstrap: true,
        env: quick(),
        emulators: mfa_tests::Emulators::LocalStack,
        ..Launch::default()
    }))
    .await;
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn one_recovery_code_used_twice_at_once_succeeds_once_on_moto() {
    let s = Arc::new(LocalServer::moto());
    let t = Arc::new(Tenant::set_up(&s, "optional").await);
    t.enroll(&s, &unique_number()).await;
    let r = t
        .change(
            &s,
            "POST",
            "/v1/mfa/recovery-codes",
            json!({"password": t.password}),
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
        env: quick(),
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
    let conf = mfa_tests::moto_sdk().await;
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
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
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
        env: quick(),
        ..Launch::default()
    });
    // The signer published the rotated key set for the verifiers (the table's JWKS item), and
    // an older secret version can never put its set back.
    let published = mfa_shared::adapters::jwks::DynamoJwks::new(
        aws_sdk_dynamodb::Client::new(&conf),
        table.clone(),
    );
    use mfa_shared::adapters::jwks::JwksItem;
    let item = published.fetch().await.unwrap().expect("the JWKS item");
    assert_eq!(item["keys"].as_array().unwrap().len(), 2, "{item}");
    let stale = json!({ "keys": [item["keys"][1].clone()] });
    assert!(!published.publish(&stale, 0).await.unwrap());
    assert_eq!(published.fetch().await.unwrap().unwrap(), item);
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
    // (Versions are ordered by their creation date, which moto keeps in whole seconds; real
    // rotation steps are minutes apart.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sm.put_secret_value()
        .secret_id(&secret_id)
        .secret_string("n".repeat(64))
        .send()
        .await
        .unwrap();
    drop(after);
    let later = LocalServer::aws(Launch {
        table: Some(table),
        env: quick(),
        ..Launch::default()
    });
    let item = published.fetch().await.unwrap().expect("the JWKS item");
    assert_eq!(item["keys"].as_array().unwrap().len(), 1, "{item}");
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

/// A change to the factors with `proof` in `MFA-Assertion` (or none).
async fn with_proof(
    s: &LocalServer,
    t: &Tenant,
    proof: Option<&str>,
    method: &str,
    path: &str,
    body: Value,
) -> Reply {
    let headers: Vec<(&str, &str)> = proof
        .map(|p| vec![("MFA-Assertion", p)])
        .unwrap_or_default();
    s.call_with(method, path, Some(&t.user_token), Some(body), &headers)
        .await
}

async fn first_phone(s: &LocalServer, t: &Tenant) -> String {
    let r = s
        .call("GET", "/v1/mfa/phones", Some(&t.user_token), None)
        .await;
    let id = r.json["phones"][0]["phone_id"].as_str().unwrap();
    format!("/v1/mfa/phones/{id}")
}

/// Contract v2, "Step-up", over HTTP.
async fn step_up_walk(s: &LocalServer) {
    let t = Tenant::set_up(s, "optional").await;
    // The first factor needs no proof: from settings, with the password alone.
    let number = unique_number();
    let r = with_proof(
        s,
        &t,
        None,
        "POST",
        "/v1/mfa/phones",
        json!({"password": t.password, "phone_number": number}),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    let done = t.confirm(s, &r, &number).await;
    assert_eq!(done.status, 200, "{done:?}");
    let phone = first_phone(s, &t).await;

    // Without a proof: 403 for every factor change, and no password attempt is counted.
    let wrong = json!({"password": "not the password"});
    for _ in 0..3 {
        for (method, path, body) in [
            ("DELETE", phone.as_str(), wrong.clone()),
            ("POST", "/v1/mfa/recovery-codes", wrong.clone()),
            (
                "POST",
                "/v1/mfa/phones",
                json!({"password": "x", "phone_number": unique_number()}),
            ),
            (
                "PUT",
                phone.as_str(),
                json!({"password": "x", "phone_number": unique_number()}),
            ),
        ] {
            let r = with_proof(s, &t, None, method, path, body).await;
            assert_eq!(
                (r.status, r.error()),
                (403, "step_up_required"),
                "{method} {path}: {r:?}"
            );
        }
    }

    // Another user's assertion, and the same user id's in another application, are no proof.
    let bob = Tenant::set_up(s, "optional").await;
    bob.enroll(s, &unique_number()).await;
    let bobs = bob.step_up(s).await;
    let twin = Tenant::set_up_named(s, "optional", &t.user).await;
    twin.enroll(s, &unique_number()).await;
    let twins = twin.step_up(s).await;
    let own = t.step_up(s).await;
    let mut forged = own.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (header, _) = own.split_once('.').unwrap();
    let foreign_claims = bobs.split('.').nth(1).unwrap();
    let spliced = format!(
        "{header}.{foreign_claims}.{}",
        own.rsplit_once('.').unwrap().1
    );
    for (what, token) in [
        ("another user's", bobs.as_str()),
        ("another application's", twins.as_str()),
        ("a changed signature", forged.as_str()),
        ("claims spliced under our signature", spliced.as_str()),
    ] {
        let r = with_proof(s, &t, Some(token), "DELETE", &phone, wrong.clone()).await;
        assert_eq!(
            (r.status, r.error()),
            (403, "step_up_required"),
            "{what}: {r:?}"
        );
    }
    // The first real password attempt still has all but one left.
    let r = with_proof(s, &t, Some(&own), "DELETE", &phone, wrong.clone()).await;
    assert_eq!(
        (r.status, r.error(), r.json["attempts_remaining"].as_u64()),
        (401, "invalid_password", Some(4)),
        "{r:?}"
    );

    // One proof serves several changes: recovery codes, then (the phone lost) a recovery code's
    // own assertion replaces the number.
    let r = with_proof(
        s,
        &t,
        Some(&own),
        "POST",
        "/v1/mfa/recovery-codes",
        json!({"password": t.password}),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let code = r.json["codes"][0].as_str().unwrap().to_owned();
    let r = t.redeem(s, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    let recovery = r.json["assertion"].as_str().unwrap().to_owned();
    let new_number = unique_number();
    let r = with_proof(
        s,
        &t,
        Some(&recovery),
        "PUT",
        &phone,
        json!({"password": t.password, "phone_number": new_number}),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    let done = t.confirm(s, &r, &new_number).await;
    assert_eq!(done.status, 200, "{done:?}");
}

mfa_tests::on_both_backends!(step_up_walk, step_up_on_memory, step_up_on_moto);
mfa_tests::on_localstack!(step_up_walk, step_up_on_localstack);

/// Contract v2, "Budgets a stranger cannot spend": five other accounts (two in another
/// tenant) submitting the victim's number spend its hourly budget, yet the victim's sign-in
/// text still goes out.
async fn strangers_cannot_block_sign_in(s: &LocalServer) {
    let victim = Tenant::set_up(s, "optional").await;
    let number = unique_number();
    let other_app = Tenant::set_up(s, "optional").await;
    // Each stranger's Start and phone submission.
    let mut strangers = Vec::new();
    for i in 0..5 {
        let app_of = if i < 3 { &victim } else { &other_app };
        let user = format!("stranger-{i}-{}", &victim.user[5..]);
        let path = format!("/v1/admin/applications/{}/users/{user}", app_of.app);
        let body = json!({"email": format!("{user}@example.com"), "email_verified": true,
                          "password_hash": mfa_tests::hash_password("pw-pw-pw-pw")});
        let r = s.call("PUT", &path, Some(&app_of.admin), Some(body)).await;
        assert_eq!(r.status, 200, "{r:?}");
        strangers.push(s.token(&user, Some(&app_of.app), None));
    }
    // The victim enrolls (one of the number's five texts this hour), then the strangers come.
    victim.enroll(s, &number).await;
    for (i, token) in strangers.iter().enumerate() {
        let r = s
            .call(
                "POST",
                "/v1/mfa/enrollments",
                Some(token),
                Some(json!({"password": "pw-pw-pw-pw"})),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        let id = r.json["enrollment_id"].as_str().unwrap();
        let r = s
            .call(
                "POST",
                &format!("/v1/mfa/enrollments/{id}/phone"),
                Some(token),
                Some(json!({"phone_number": number})),
            )
            .await;
        // Four more fit the hour's five texts to the number; the fifth stranger is refused.
        if i < 4 {
            assert_eq!(r.status, 202, "stranger {i}: {r:?}");
        } else {
            assert_eq!(
                (r.status, r.error()),
                (429, "rate_limited"),
                "stranger {i}: {r:?}"
            );
        }
    }
    let before = s.texts_to(&number).await.len();
    let r = s
        .call("POST", "/v1/mfa/challenges", Some(&victim.user_token), None)
        .await;
    assert_eq!(r.status, 202, "the victim's sign-in is not blocked: {r:?}");
    assert_eq!(s.texts_to(&number).await.len(), before + 1);
}

mfa_tests::on_both_backends!(
    strangers_cannot_block_sign_in,
    strangers_cannot_block_sign_in_on_memory,
    strangers_cannot_block_sign_in_on_moto
);
mfa_tests::on_localstack!(
    strangers_cannot_block_sign_in,
    strangers_cannot_block_sign_in_on_localstack
);
