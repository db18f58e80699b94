//! The same flows on `--backend aws` against moto's server: DynamoDB, SNS, SES v2 and
//! Secrets Manager over their real wire APIs. Run by `tests/run.sh`, which starts moto. The
//! seed walk, the races on codes and the bootstrap without SES v2 also run on LocalStack, with
//! DynamoDB on dynoxide (`*_on_localstack`, run by `tests/localstack.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mfa_tests::{Emulators, Launch, LocalServer, Tenant, unique_number};
use serde_json::json;

fn fresh() -> LocalServer {
    LocalServer::moto()
}

/// Every item of the server's table, as `attribute = value` strings.
async fn table_items(s: &LocalServer) -> Vec<Vec<(String, String)>> {
    let conf = mfa_tests::emulator_sdk(s.dynamodb.as_deref().unwrap()).await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let table = s.table.as_deref().unwrap();
    let out = client.scan().table_name(table).send().await.unwrap();
    out.items()
        .iter()
        .map(|item| {
            item.iter()
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect()
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn the_seed_walk_on_dynamodb_sns_and_ses() {
    seed_walk(&fresh()).await;
}

mfa_tests::on_localstack!(seed_walk, the_seed_walk_on_localstack);

async fn seed_walk(s: &LocalServer) {
    let t = Tenant::set_up(s, "optional").await;
    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.json["prompt"], "enroll", "{st:?}");

    let id = t.start(s).await;
    let number = unique_number();
    let r = t.phone(s, &id, &number).await;
    assert_eq!(r.status, 202, "{r:?}");
    let texts = s.texts_to(&number).await;
    assert_eq!(texts.len(), 1, "one text through SNS");
    let code = s.last_code(&number).await;

    // The table holds the code only as a keyed hash.
    let items = table_items(s).await;
    assert!(!items.is_empty());
    for item in &items {
        for (k, v) in item {
            assert!(
                !v.contains(&format!("\"{code}\"")),
                "attribute {k} holds the code in clear"
            );
        }
    }
    assert!(
        items.iter().flatten().any(|(k, _)| k == "code_hash"),
        "the pending code is stored as a hash"
    );

    let r = t.code(s, &id, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["confirmation_email"], "sent");
    let emails = s.emails_to(&t.email).await;
    assert_eq!(emails.len(), 1, "one email through SES");
    assert!(emails[0].0.contains("Two-step verification"));

    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.json["enrolled"], true);
    let again = t.code(s, &id, &code).await;
    assert_eq!(
        (again.status, again.error()),
        (409, "wrong_step"),
        "single use"
    );

    // The enrollment and counters carry a TTL attribute.
    let items = table_items(s).await;
    assert!(items.iter().any(|i| i.iter().any(|(k, _)| k == "ttl")));
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn eight_concurrent_right_codes_give_exactly_one_success() {
    eight_right_codes(Arc::new(fresh())).await;
}

#[tokio::test]
#[ignore = "needs LocalStack, dynoxide and moto: run by tests/localstack.sh"]
async fn eight_concurrent_right_codes_give_exactly_one_success_on_localstack() {
    eight_right_codes(Arc::new(LocalServer::localstack())).await;
}

async fn eight_right_codes(s: Arc<LocalServer>) {
    let t = Arc::new(Tenant::set_up(&s, "optional").await);
    let (id, _, code) = t.at_code(&s).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, t, id, code) = (s.clone(), t.clone(), id.clone(), code.clone());
            tokio::spawn(async move { t.code(&s, &id, &code).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 409, 429].contains(s)),
        "{statuses:?}"
    );
    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.json["phones"].as_array().unwrap().len(), 1);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn concurrent_wrong_codes_never_exceed_the_attempt_limit() {
    twelve_wrong_codes(Arc::new(fresh())).await;
}

#[tokio::test]
#[ignore = "needs LocalStack, dynoxide and moto: run by tests/localstack.sh"]
async fn concurrent_wrong_codes_never_exceed_the_attempt_limit_on_localstack() {
    twelve_wrong_codes(Arc::new(LocalServer::localstack())).await;
}

async fn twelve_wrong_codes(s: Arc<LocalServer>) {
    let t = Arc::new(Tenant::set_up(&s, "optional").await);
    let (id, _, right) = t.at_code(&s).await;
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (s, t, id, wrong) = (s.clone(), t.clone(), id.clone(), wrong.clone());
            tokio::spawn(async move { t.code(&s, &id, &wrong).await })
        })
        .collect();
    let mut invalid = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            400 => invalid += 1,
            429 => assert_eq!(r.error(), "too_many_attempts"),
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert_eq!(
        invalid, 4,
        "four 'wrong, N left' answers, then the code is burned"
    );
    let r = t.code(&s, &id, &right).await;
    assert_eq!(
        (r.status, r.error()),
        (429, "too_many_attempts"),
        "burned until a resend"
    );
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn sns_unreachable_gives_502_and_the_same_enrollment_works_on_retry() {
    let healthy = fresh();
    let t = Tenant::set_up(&healthy, "optional").await;
    let id = t.start(&healthy).await;
    let number = unique_number();

    let broken = LocalServer::aws(Launch {
        table: healthy.table.clone(),
        env: vec![("AWS_ENDPOINT_URL_SNS".into(), "http://127.0.0.1:9".into())],
        ..Launch::default()
    });
    let r = t.phone(&broken, &id, &number).await;
    assert_eq!((r.status, r.error()), (502, "sms_send_failed"), "{r:?}");
    assert!(healthy.texts_to(&number).await.is_empty());

    // The same enrollment, once SNS answers again: not counted, not stuck.
    let r = t.phone(&healthy, &id, &number).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["attempts_remaining"], 5);
    let r = t
        .code(&healthy, &id, &healthy.last_code(&number).await)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn ses_unreachable_still_completes_enrollment() {
    let healthy = fresh();
    let t = Tenant::set_up(&healthy, "optional").await;
    let broken = LocalServer::aws(Launch {
        table: healthy.table.clone(),
        env: vec![("AWS_ENDPOINT_URL_SESV2".into(), "http://127.0.0.1:9".into())],
        ..Launch::default()
    });
    let id = t.start(&broken).await;
    let number = unique_number();
    assert_eq!(t.phone(&broken, &id, &number).await.status, 202);
    let r = t.code(&broken, &id, &broken.last_code(&number).await).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["confirmation_email"], "failed");
    assert!(broken.emails_to(&t.email).await.is_empty());
    let st = healthy
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.json["enrolled"], true);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn dynamodb_unreachable_gives_a_clear_retryable_error() {
    let healthy = fresh();
    let t = Tenant::set_up(&healthy, "optional").await;
    let broken = LocalServer::aws(Launch {
        table: healthy.table.clone(),
        env: vec![(
            "AWS_ENDPOINT_URL_DYNAMODB".into(),
            "http://127.0.0.1:9".into(),
        )],
        ..Launch::default()
    });
    let r = broken
        .call(
            "POST",
            "/v1/mfa/enrollments",
            Some(&t.user_token),
            Some(json!({"password": t.password})),
        )
        .await;
    assert_eq!((r.status, r.error()), (503, "service_unavailable"), "{r:?}");
    assert!(r.headers.get("retry-after").is_some());
    // Nothing was half-written: the healthy path still starts cleanly with full attempts.
    let id = t.start(&healthy).await;
    assert!(id.starts_with("enr_"));
}

#[tokio::test]
#[ignore = "needs LocalStack, dynoxide and moto: run by tests/localstack.sh"]
async fn bootstrap_without_ses_v2_warns_once_and_serves_on_localstack() {
    // SES v2 on LocalStack's community edition too, which lacks it (501).
    let localstack = mfa_tests::localstack_url();
    let log = std::env::temp_dir().join(format!("{}.log", mfa_tests::unique("mfa-no-ses-")));
    let s = LocalServer::aws(Launch {
        bootstrap: true,
        emulators: Emulators::LocalStack,
        env: vec![("AWS_ENDPOINT_URL_SESV2".into(), localstack.clone())],
        log_file: Some(log.clone()),
        ..Launch::default()
    });
    let t = Tenant::set_up(&s, "optional").await;
    let (id, _, code) = t.at_code(&s).await;
    let r = t.code(&s, &id, &code).await;
    assert_eq!(r.status, 200, "enrollment completes without email: {r:?}");
    assert_eq!(r.json["step"], "complete", "{r:?}");
    assert_eq!(r.json["confirmation_email"], "failed", "{r:?}");
    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.json["enrolled"], true, "{st:?}");
    let printed = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let warning = format!("SES v2 is not available at {localstack}: emails will fail");
    assert_eq!(printed.matches(&warning).count(), 1, "{printed}");
}

/// An authenticator app on DynamoDB: set up and used to sign in, and its secret is nowhere
/// in clear afterwards: not in any item of the table (only the sealed value is), not in the
/// server's log (at debug level) or its stdout (EMF metrics), not in the audit log or the
/// emails, and not in any later answer.
#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn an_authenticator_apps_secret_is_only_ever_stored_sealed() {
    use base64::Engine;
    let log = std::env::temp_dir().join(format!("{}.log", mfa_tests::unique("mfa-totp-")));
    let s = LocalServer::aws(Launch {
        bootstrap: true,
        env: vec![("RUST_LOG".into(), "debug".into())],
        log_file: Some(log.clone()),
        ..Launch::default()
    });
    let t = Tenant::with_apps(&s, "optional").await;
    let r = t.begin_app(&s, Some("Phone app")).await;
    let secret_b32 = r.json["secret"].as_str().unwrap().to_owned();
    let id = r.json["enrollment_id"].as_str().unwrap().to_owned();
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .unwrap();
    let secret = mfa_shared::totp::TotpSecret::from_bytes(&bytes).unwrap();
    let now = || mfa_shared::types::UnixTime(time::OffsetDateTime::now_utc().unix_timestamp());
    let code = secret.code_at_step(mfa_shared::totp::step_at(now()));
    let r = t.code(&s, &id, code.expose()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["factor"], "totp", "{r:?}");
    // Sign in with the next step's code (the current one enrolled; each step is used once).
    let r = s
        .call(
            "POST",
            "/v1/mfa/challenges",
            Some(&t.user_token),
            Some(json!({"factor": "totp"})),
        )
        .await;
    assert_eq!(
        (r.status, &r.json["factor"]),
        (201, &json!("totp")),
        "{r:?}"
    );
    let chl = r.json["challenge_id"].as_str().unwrap().to_owned();
    let code = secret.code_at_step(mfa_shared::totp::step_at(now()) + 1);
    let r = t.challenge_code(&s, &chl, code.expose()).await;
    assert_eq!(r.status, 200, "{r:?}");

    // What must never hold the secret, in any of its encodings.
    let forms = [
        secret_b32.clone(),
        secret_b32.to_lowercase(),
        hex::encode(&bytes),
        base64::engine::general_purpose::STANDARD.encode(&bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
    ];
    let items = table_items(&s).await;
    assert!(
        items.iter().flatten().any(|(k, _)| k == "totp_sealed"),
        "the app is stored, sealed"
    );
    for (k, v) in items.iter().flatten() {
        for f in &forms {
            assert!(!v.contains(f.as_str()), "attribute {k} holds the secret");
        }
    }
    let status = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(status.json["totp"]["label"], "Phone app", "{status:?}");
    let audit = s
        .call(
            "GET",
            &format!("/v1/admin/applications/{}/audit-events?limit=100", t.app),
            Some(&t.admin),
            None,
        )
        .await;
    let emails = s.emails_to(&t.email).await;
    assert_eq!(emails.len(), 1, "one email: the app is on");
    let printed = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        printed.contains("authenticator app verified"),
        "the log is read"
    );
    let everything = [
        printed,
        s.stdout_lines().join("\n"),
        status.json.to_string(),
        audit.json.to_string(),
        format!("{emails:?}"),
    ];
    for (what, text) in ["log", "stdout", "status", "audit", "emails"]
        .iter()
        .zip(&everything)
    {
        for f in &forms {
            assert!(!text.contains(f.as_str()), "the {what} holds the secret");
        }
    }
}
