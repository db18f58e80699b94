//! What the people who run the service see: the log lines of a whole flow (JSON, each with the
//! request id and application id, never a password, a code, an assertion or a full phone
//! number) and, on the aws backend, the CloudWatch EMF metrics the functions print.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use mfa_tests::{Launch, LocalServer, Tenant, moto_url, unique, unique_number};
use serde_json::{Value, json};

/// Everything secret that went over the wire in one flow.
struct Secrets {
    values: Vec<String>,
    /// Codes are 6 digits: matched as whole numbers, not inside longer ones.
    codes: Vec<String>,
}

/// Runs enrollment (with a wrong password and a wrong code), a second phone, sign-in, recovery
/// codes and a removal, at debug level with JSON logs; returns the server, its tenant and
/// what must never be logged.
async fn whole_flow(aws: bool, log: &std::path::Path) -> (LocalServer, Tenant, Secrets) {
    let mut launch = Launch {
        env: vec![
            ("RUST_LOG".into(), "debug".into()),
            ("MFA_LOG_FORMAT".into(), "json".into()),
            ("MFA_RESEND_COOLDOWN_SECONDS".into(), "1".into()),
        ],
        log_file: Some(log.to_owned()),
        ..Launch::default()
    };
    if aws {
        moto_url();
        launch.bootstrap = true;
    }
    let s = LocalServer::spawn(aws, launch);
    let t = Tenant::set_up(&s, "optional").await;
    let (first, second) = (unique_number(), unique_number());
    let mut secrets = Secrets {
        values: vec![t.password.clone(), "wrong password 123".into()],
        codes: vec![],
    };
    let tok = Some(t.user_token.as_str());

    let r = s
        .call(
            "POST",
            "/v1/mfa/enrollments",
            tok,
            Some(json!({"password": "wrong password 123"})),
        )
        .await;
    assert_eq!(r.error(), "invalid_password", "{r:?}");
    let id = t.start(&s).await;
    assert_eq!(t.phone(&s, &id, &first).await.status, 202);
    let code = s.last_code(&first).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(t.code(&s, &id, wrong).await.error(), "invalid_code");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = s
        .call(
            "POST",
            &format!("/v1/mfa/enrollments/{id}/resend"),
            tok,
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let code2 = s.last_code(&first).await;
    assert_eq!(t.code(&s, &id, &code2).await.status, 200);
    secrets.codes.extend([code, code2]);

    let r = t
        .change(
            &s,
            "POST",
            "/v1/mfa/phones",
            json!({"password": t.password, "phone_number": second, "label": "Work"}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let add = r.json["enrollment_id"].as_str().unwrap().to_owned();
    let code3 = s.last_code(&second).await;
    assert_eq!(t.code(&s, &add, &code3).await.status, 200);
    secrets.codes.push(code3);

    // The step-up of the add was a challenge text: the next waits the (1 s) resend cooldown.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = s.call("POST", "/v1/mfa/challenges", tok, None).await;
    assert_eq!(r.status, 202, "{r:?}");
    let chl = r.json["challenge_id"].as_str().unwrap().to_owned();
    let code4 = s.last_code(&first).await;
    let r = s
        .call(
            "POST",
            &format!("/v1/mfa/challenges/{chl}/code"),
            tok,
            Some(json!({"code": code4})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    secrets
        .values
        .push(r.json["assertion"].as_str().unwrap().to_owned());
    secrets.codes.push(code4);

    let recovery = t.recovery_codes(&s).await;
    let r = s
        .call(
            "POST",
            "/v1/mfa/challenges/recovery",
            tok,
            Some(json!({"code": recovery[0]})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    secrets
        .values
        .push(r.json["assertion"].as_str().unwrap().to_owned());
    secrets.values.extend(recovery);

    let phones = s.call("GET", "/v1/mfa/phones", tok, None).await;
    let work = phones.json["phones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["label"] == "Work")
        .unwrap()["phone_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = t
        .change(
            &s,
            "DELETE",
            &format!("/v1/mfa/phones/{work}"),
            json!({"password": t.password}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    // The step-up proof those changes carried is a secret too.
    secrets.values.push(t.proof(&s).await.unwrap());
    for n in [&first, &second] {
        secrets.values.push(n.to_string());
        // The national number alone (415555xxxx) is as good as the full one.
        secrets.values.push(n.trim_start_matches("+1").to_owned());
    }
    (s, t, secrets)
}

/// Where `code` stands as a number of its own in `text` (not inside a longer number or a
/// timestamp's fraction).
fn holds_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.' || c == ':')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

fn check_logs(log: &std::path::Path, t: &Tenant, secrets: &Secrets) {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 20, "too few log lines to judge: {text}");
    for s in &secrets.values {
        assert!(!text.contains(s.as_str()), "a secret was logged: {s}");
    }
    for c in &secrets.codes {
        let line = lines.iter().find(|l| holds_code(l, c));
        assert!(line.is_none(), "a code was logged: {line:?}");
    }
    let mut requests = 0;
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "request" {
            requests += 1;
            let span = &v["span"];
            assert_eq!(span["name"], "request", "{line}");
            assert!(
                span["request_id"].as_str().is_some_and(|r| !r.is_empty()),
                "{line}"
            );
            if v["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v1/mfa/"))
            {
                assert_eq!(span["app_id"], t.app.as_str(), "{line}");
            }
        }
    }
    assert!(requests >= 15, "one line per request: saw {requests}");
}

#[tokio::test]
async fn a_whole_flow_logs_json_with_ids_and_never_a_secret_memory() {
    let log = std::env::temp_dir().join(unique("mfa-log-memory-"));
    let (_s, t, secrets) = whole_flow(false, &log).await;
    check_logs(&log, &t, &secrets);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_whole_flow_logs_json_with_ids_and_never_a_secret_and_prints_emf_metrics_aws() {
    let log = std::env::temp_dir().join(unique("mfa-log-aws-"));
    let (s, t, secrets) = whole_flow(true, &log).await;
    check_logs(&log, &t, &secrets);
    let _ = std::fs::remove_file(&log);

    // Every count is one EMF document on stdout, declaring its own metric.
    let mut counts: HashMap<String, u64> = HashMap::new();
    for line in s.stdout_lines() {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(decl) = v["_aws"]["CloudWatchMetrics"].get(0) else {
            continue;
        };
        assert_eq!(decl["Namespace"], "MfaService", "{line}");
        assert_eq!(v["app_id"], t.app.as_str(), "{line}");
        let name = decl["Metrics"][0]["Name"].as_str().unwrap();
        assert_eq!(v[name], 1, "{line}");
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    for c in &secrets.codes {
        assert!(
            !s.stdout_lines().iter().any(|l| holds_code(l, c)),
            "a code reached stdout"
        );
    }
    // Texts: the first number, its resend, the step-up challenge, the second number, the
    // sign-in challenge.
    assert_eq!(counts.get("TextsSent"), Some(&5), "{counts:?}");
    // Right codes: enrollment, the step-up, the added phone, the challenge, the recovery code.
    assert_eq!(counts.get("VerificationsOk"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("VerificationsFailed"), Some(&1), "{counts:?}");
    // Start (wrong, right), add, recovery codes, removal.
    assert_eq!(counts.get("PasswordChecks"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("SmsSendErrors"), None, "{counts:?}");
}
