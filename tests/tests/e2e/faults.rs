//! Faults over the real wire: DynamoDB and SNS throttling (SNS's answered `503` with
//! `Retry-After`, its refusals `502`) through a fault-injecting proxy in front of moto (the
//! SDK's own retries included), a Lambda function whose secret cannot be read at cold start, and conditional-write races on both backends, whose losers get a 4xx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mfa_tests::aws_proxy::{Fault, FaultProxy};
use mfa_tests::{Launch, LocalServer, Tenant, lambda_command, moto_url, unique, unique_number};
use serde_json::{Value, json};

/// How often the service tries one AWS call (`mfa_shared::adapters::aws::MAX_ATTEMPTS`).
const ATTEMPTS: u32 = mfa_shared::adapters::aws::MAX_ATTEMPTS;

/// A server whose `service` endpoint goes through a fresh proxy to moto; the table is
/// bootstrapped directly on moto first.
fn behind_proxy(service: &str, env: &[(&str, &str)]) -> (LocalServer, FaultProxy) {
    let proxy = FaultProxy::start(&moto_url());
    let table = unique("mfa-faults-");
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push((format!("AWS_ENDPOINT_URL_{service}"), proxy.url.clone()));
    let s = LocalServer::aws(Launch {
        env,
        table: Some(table),
        bootstrap: true,
        ..Launch::default()
    });
    (s, proxy)
}

fn retry_after(r: &mfa_tests::Reply) -> u64 {
    r.headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_throttled_failure_counter_write_answers_503_and_lets_no_guess_through() {
    let (s, proxy) = behind_proxy("DYNAMODB", &[]);
    let t = Tenant::set_up(&s, "optional").await;
    let (id, _, right) = t.at_code(&s).await;

    proxy.fail("UpdateItem", Some("codefail#"), Fault::DynamoThrottled);
    let r = t.code(&s, &id, &right).await;
    assert_eq!((r.status, r.error()), (503, "service_unavailable"), "{r:?}");
    assert!(retry_after(&r) >= 1);
    // Bounded retries with backoff: the SDK tried exactly its attempts, then gave up.
    assert_eq!(proxy.failed("UpdateItem"), ATTEMPTS);

    proxy.heal();
    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(
        st.json["enrolled"], false,
        "the right code did not get through"
    );
    // Nothing was counted: a wrong code still has four left after it, and the code works.
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = t.code(&s, &id, wrong).await;
    assert_eq!(r.json["attempts_remaining"], 4, "{r:?}");
    assert_eq!(t.code(&s, &id, &right).await.status, 200);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_throttled_send_record_sends_nothing_and_gives_every_budget_back() {
    let (s, proxy) = behind_proxy("DYNAMODB", &[("MFA_TEXTS_PER_USER_PER_DAY", "1")]);
    let t = Tenant::set_up(&s, "optional").await;
    let id = t.start(&s).await;
    let number = unique_number();
    // The enrollment's send record (the update that sets `last_sent_at`).
    proxy.fail("UpdateItem", Some("last_sent_at"), Fault::DynamoThrottled);
    for _ in 0..2 {
        let r = t.phone(&s, &id, &number).await;
        assert_eq!((r.status, r.error()), (503, "service_unavailable"), "{r:?}");
    }
    assert!(
        s.texts_to(&number).await.is_empty(),
        "no text without its record"
    );
    proxy.heal();
    // The one-text daily budget came back both times.
    let r = t.phone(&s, &id, &number).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(s.texts_to(&number).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_throttled_completion_is_retryable_with_the_same_code() {
    let (s, proxy) = behind_proxy("DYNAMODB", &[]);
    let t = Tenant::set_up(&s, "optional").await;
    let (id, _, right) = t.at_code(&s).await;
    proxy.fail("TransactWriteItems", None, Fault::DynamoThrottled);
    let r = t.code(&s, &id, &right).await;
    assert_eq!((r.status, r.error()), (503, "service_unavailable"), "{r:?}");
    assert_eq!(proxy.failed("TransactWriteItems"), ATTEMPTS);
    proxy.heal();
    let r = t.code(&s, &id, &right).await;
    assert_eq!(r.status, 200, "{r:?}");
    let phones = s
        .call("GET", "/v1/mfa/phones", Some(&t.user_token), None)
        .await;
    assert_eq!(phones.json["phones"].as_array().unwrap().len(), 1);
}

/// How many EMF documents of `metric` the server printed.
fn emf_count(s: &LocalServer, metric: &str) -> usize {
    s.stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == metric)
        .count()
}

/// SNS throttles every attempt (the account's SMS rate quota): after the SDK's own retries,
/// `503 service_unavailable` with `Retry-After`, not `502` as if the number were bad; the send
/// is undone and the one text of the day given back, and `SmsThrottled` counts it.
#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_throttled_sns_answers_503_with_retry_after_counts_nothing_and_the_retry_works() {
    let (s, proxy) = behind_proxy("SNS", &[("MFA_TEXTS_PER_USER_PER_DAY", "1")]);
    let t = Tenant::set_up(&s, "optional").await;
    let id = t.start(&s).await;
    let number = unique_number();
    proxy.fail("Publish", None, Fault::SnsThrottled);
    let r = t.phone(&s, &id, &number).await;
    assert_eq!((r.status, r.error()), (503, "service_unavailable"), "{r:?}");
    assert_eq!(retry_after(&r), 2);
    assert_eq!(r.json["retry_after"], 2, "{r:?}");
    assert_eq!(proxy.failed("Publish"), ATTEMPTS);
    proxy.heal();
    // Not counted against the one-text budget nor the enrollment's sends.
    let r = t.phone(&s, &id, &number).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["attempts_remaining"], 5);
    let code = s.last_code(&number).await;
    assert_eq!(t.code(&s, &id, &code).await.status, 200);
    assert_eq!(emf_count(&s, "SmsThrottled"), 1);
    assert_eq!(emf_count(&s, "SmsSendErrors"), 0);
}

/// SNS refuses the publish itself (not a throttle): `502 sms_send_failed` after one attempt,
/// the send undone, counted as an SMS send error.
#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn an_sns_refusal_answers_502_counts_nothing_and_the_retry_works() {
    let (s, proxy) = behind_proxy("SNS", &[("MFA_TEXTS_PER_USER_PER_DAY", "1")]);
    let t = Tenant::set_up(&s, "optional").await;
    let id = t.start(&s).await;
    let number = unique_number();
    proxy.fail("Publish", None, Fault::SnsInvalidParameter);
    let r = t.phone(&s, &id, &number).await;
    assert_eq!((r.status, r.error()), (502, "sms_send_failed"), "{r:?}");
    assert!(r.headers.get("retry-after").is_none(), "{r:?}");
    assert_eq!(proxy.failed("Publish"), 1, "a refusal is not retried");
    proxy.heal();
    let r = t.phone(&s, &id, &number).await;
    assert_eq!(r.status, 202, "{r:?}");
    let code = s.last_code(&number).await;
    assert_eq!(t.code(&s, &id, &code).await.status, 200);
    assert_eq!(emf_count(&s, "SmsSendErrors"), 1);
    assert_eq!(emf_count(&s, "SmsThrottled"), 0);
}

/// SNS took the publish, but its answer never came back (every attempt forwarded, then held
/// past the attempt timeout): the text may well have been delivered, so it counts as sent. The
/// code stays pending and works, and the budget unit stays spent (with one text a day, the next
/// send is refused), instead of a 502 that gives everything back and invites a second text.
#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn an_sns_publish_whose_answer_is_lost_counts_as_sent() {
    let (s, proxy) = behind_proxy("SNS", &[("MFA_TEXTS_PER_USER_PER_DAY", "1")]);
    let t = Tenant::set_up(&s, "optional").await;
    let id = t.start(&s).await;
    let number = unique_number();
    proxy.fail_times("Publish", None, Fault::LoseAnswer, ATTEMPTS);
    let r = t.phone(&s, &id, &number).await;
    assert_eq!(r.status, 202, "an unknown outcome answers as sent: {r:?}");
    assert!(proxy.failed("Publish") >= 1);
    proxy.heal();
    // The text reached SNS (moto lists it), and its code completes the enrollment.
    let code = s.last_code(&number).await;
    // The day's one text is spent: another number (the one immediate correction) is refused.
    let other = unique_number();
    let again = t.phone(&s, &id, &other).await;
    assert_eq!(
        (again.status, again.error()),
        (429, "rate_limited"),
        "{again:?}"
    );
    assert_eq!(t.code(&s, &id, &code).await.status, 200);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_failing_ses_leaves_the_change_standing_and_on_record() {
    let (s, proxy) = behind_proxy("SESV2", &[]);
    let t = Tenant::set_up(&s, "optional").await;
    // SES v2 is a REST API: its operation is named by method and path (SendEmail here).
    const SEND_EMAIL: &str = "POST /v2/email/outbound-emails";
    proxy.fail(SEND_EMAIL, None, Fault::ServerError);
    let id = t.start(&s).await;
    let number = unique_number();
    assert_eq!(t.phone(&s, &id, &number).await.status, 202);
    let r = t.code(&s, &id, &s.last_code(&number).await).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["confirmation_email"], "failed");
    assert!(proxy.failed(SEND_EMAIL) >= 1);
    let audit = t.audit(&s).await;
    let actions = audit.actions();
    assert!(actions.contains(&"notification.failed"), "{actions:?}");
    assert!(actions.contains(&"enrollment.completed"), "{actions:?}");
}

/// Runs the `code-verify` Lambda binary with `env` until it exits (it must, within 30 s).
fn cold_start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    // Were init to get this far, the runtime API would be here: nothing listens.
    let secret = [("MFA_SECRET_ID", "mfa/code-hmac-key")];
    let mut child = lambda_command("code-verify", "127.0.0.1:9", "mfa-cold-start", &secret)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the function did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn one_clear_line(text: &str) -> Value {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one log line: {text}");
    let v: Value = serde_json::from_str(lines[0]).expect("a JSON log line");
    assert_eq!(v["level"], "ERROR", "{v}");
    assert_eq!(v["fields"]["message"], "cold start failed", "{v}");
    v
}

#[test]
fn secrets_manager_unreachable_fails_the_cold_start_with_one_line_and_no_fallback() {
    let (code, text) = cold_start(&[("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:9")]);
    assert_eq!(code, Some(1), "{text}");
    let v = one_clear_line(&text);
    let error = v["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("mfa/code-hmac-key") && error.contains("Secrets Manager"),
        "{error}"
    );
}

#[test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
fn a_missing_secret_fails_the_cold_start_with_one_line_naming_it() {
    let url = moto_url();
    let (code, text) = cold_start(&[("AWS_ENDPOINT_URL", &url)]);
    assert_eq!(code, Some(1), "{text}");
    let v = one_clear_line(&text);
    let error = v["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("mfa/code-hmac-key") && error.contains("ResourceNotFoundException"),
        "{error}"
    );
}

/// Sends the requests at once; their statuses, sorted.
async fn concurrently(requests: Vec<reqwest::RequestBuilder>) -> Vec<u16> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| tokio::spawn(async move { r.send().await.unwrap().status().as_u16() }))
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    statuses
}

/// Races on conditional writes: the policy's version, the same recovery code used twice, the
/// same phone removed twice. Each has one winner; every loser gets a clear 4xx.
async fn races(s: &LocalServer) {
    let t = Tenant::set_up(s, "optional").await;
    let policy = format!("{}/v1/admin/applications/{}/mfa-policy", s.base, t.app);
    let version = s
        .http
        .get(&policy)
        .bearer_auth(&t.admin)
        .send()
        .await
        .unwrap();
    let version = version.json::<Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap();
    let body = json!({"enabled": true, "include_in_signup": false, "enforcement": "optional"});
    let puts = (0..6)
        .map(|_| {
            s.http
                .put(&policy)
                .bearer_auth(&t.admin)
                .header("content-type", "application/json")
                .header("if-match", version.to_string())
                .body(body.to_string())
        })
        .collect();
    assert_eq!(concurrently(puts).await, [200, 412, 412, 412, 412, 412]);

    t.enroll(s, &unique_number()).await;
    // Making recovery codes and removing a phone are factor changes: they need a step-up.
    let code = t.recovery_codes(s).await[0].clone();
    let proof = t.proof(s).await.unwrap();
    let uses = (0..4)
        .map(|_| {
            s.http
                .post(format!("{}/v1/mfa/challenges/recovery", s.base))
                .bearer_auth(&t.user_token)
                .header("content-type", "application/json")
                .body(json!({ "code": code }).to_string())
        })
        .collect();
    assert_eq!(
        concurrently(uses).await,
        [200, 400, 400, 400],
        "recovery code"
    );

    let phones = s
        .call("GET", "/v1/mfa/phones", Some(&t.user_token), None)
        .await;
    let phone = phones.json["phones"][0]["phone_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deletes = (0..4)
        .map(|_| {
            s.http
                .delete(format!("{}/v1/mfa/phones/{phone}", s.base))
                .bearer_auth(&t.user_token)
                .header("mfa-assertion", &proof)
                .header("content-type", "application/json")
                .body(json!({"password": t.password}).to_string())
        })
        .collect();
    let statuses = concurrently(deletes).await;
    assert_eq!(statuses[0], 204, "one removal wins: {statuses:?}");
    assert!(
        statuses[1..].iter().all(|s| (400..500).contains(s)),
        "the losers get a 4xx: {statuses:?}"
    );
}

#[tokio::test]
async fn conditional_write_races_give_one_winner_and_4xx_losers_memory() {
    let s = LocalServer::memory(&[]);
    races(&s).await;
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn conditional_write_races_give_one_winner_and_4xx_losers_aws() {
    let s = LocalServer::moto();
    races(&s).await;
}

/// `bench/tls_proxy.py` (a throwaway CA, TLS in front of moto) on the tests' Python, until
/// dropped; the CA's PEM path and the proxy's `https://` URL.
struct TlsProxy {
    child: std::process::Child,
    dir: std::path::PathBuf,
    url: String,
}

impl TlsProxy {
    fn start() -> TlsProxy {
        use std::io::BufRead;
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: tests/run.sh creates it (moto's virtualenv, which has `cryptography`)",
            python.display()
        );
        let dir = std::env::temp_dir().join(unique("mfa-tls-"));
        let upstream = moto_url().trim_start_matches("http://").to_owned();
        let mut child = Command::new(python)
            .arg(root.join("bench/tls_proxy.py"))
            .args(["--upstream", &upstream, "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("tls_proxy.py exited").unwrap();
            if let Some(at) = line.find("https://") {
                break line[at..].trim().to_owned();
            }
        };
        TlsProxy { child, dir, url }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
fn aws_calls_go_over_tls_and_the_certificate_is_verified() {
    let proxy = TlsProxy::start();
    let ca = proxy.dir.join("ca.pem");
    // Trusting the throwaway CA (the standard `SSL_CERT_FILE`), the call reaches moto through
    // TLS: moto's own answer comes back (no such secret).
    let (code, text) = cold_start(&[
        ("AWS_ENDPOINT_URL", &proxy.url),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ]);
    assert_eq!(code, Some(1), "{text}");
    let error = one_clear_line(&text)["fields"]["error"].to_string();
    assert!(error.contains("ResourceNotFoundException"), "{error}");
    // Without it, the handshake fails on the unknown issuer: nothing is sent.
    let (code, text) = cold_start(&[("AWS_ENDPOINT_URL", &proxy.url)]);
    assert_eq!(code, Some(1), "{text}");
    let error = one_clear_line(&text)["fields"]["error"].to_string();
    assert!(
        !error.contains("ResourceNotFoundException")
            && error.to_lowercase().contains("certificate"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// DynamoDB as it really behaves: transaction conflicts on single-item writes, and writes whose
// answer is lost after they were applied (the SDK then retries them).

/// A sign-in challenge for the enrolled `number`: its id. A user's challenge texts are the
/// resend cooldown apart, so a second challenge waits out `Retry-After` (launch the server
/// with a short `MFA_RESEND_COOLDOWN_SECONDS` where a test starts several).
async fn challenge(s: &LocalServer, t: &Tenant) -> String {
    let start = || {
        s.call(
            "POST",
            "/v1/mfa/challenges",
            Some(&t.user_token),
            Some(json!({})),
        )
    };
    let mut r = start().await;
    if r.status == 429 && r.error() == "resend_too_soon" {
        tokio::time::sleep(std::time::Duration::from_secs(retry_after(&r))).await;
        r = start().await;
    }
    assert!(r.status == 202 || r.status == 201, "{r:?}");
    r.json["challenge_id"].as_str().unwrap().to_owned()
}

/// Sign-in challenge `id`'s code submission, as a request to send (concurrently) later.
fn challenge_request(s: &LocalServer, t: &Tenant, id: &str, code: &str) -> reqwest::RequestBuilder {
    s.http
        .post(format!("{}/v1/mfa/challenges/{id}/code", s.base))
        .bearer_auth(&t.user_token)
        .header("content-type", "application/json")
        .body(json!({ "code": code }).to_string())
}

/// A user enrolled with a fresh number, and a recovery code of theirs. The request carries a
/// step-up proof (an SMS assertion), which changes of factors need.
async fn with_recovery_code(s: &LocalServer, t: &Tenant) -> String {
    let number = unique_number();
    t.enroll(s, &number).await;
    let id = challenge(s, t).await;
    let r = t.challenge_code(s, &id, &s.last_code(&number).await).await;
    assert_eq!(r.status, 200, "{r:?}");
    let assertion = r.json["assertion"].as_str().unwrap().to_owned();
    let r = s
        .http
        .post(format!("{}/v1/mfa/recovery-codes", s.base))
        .bearer_auth(&t.user_token)
        .header("mfa-assertion", assertion)
        .header("content-type", "application/json")
        .body(json!({"password": t.password}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    body["codes"][0].as_str().unwrap().to_owned()
}

/// Request body markers of single-item writes (the JSON of the UpdateItem call).
const CODE_ATTEMPT: &str = r#"":max":"#;
const RECOVERY_USE: &str = "used_by";
const FAILURE_COUNTER: &str = "codefail#";
const SEND_RECORD: &str = "last_sent_at";

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn transaction_conflicts_on_single_item_writes_are_retried_not_503() {
    let (s, proxy) = behind_proxy("DYNAMODB", &[]);
    let t = Tenant::set_up(&s, "optional").await;

    // A code attempt and the failure budget, each meeting a transaction twice.
    let id = t.start(&s).await;
    let number = unique_number();
    assert_eq!(t.phone(&s, &id, &number).await.status, 202);
    proxy.fail_times(
        "UpdateItem",
        Some(CODE_ATTEMPT),
        Fault::DynamoTransactionConflict,
        2,
    );
    proxy.fail_times(
        "UpdateItem",
        Some(FAILURE_COUNTER),
        Fault::DynamoTransactionConflict,
        2,
    );
    let r = t.code(&s, &id, &s.last_code(&number).await).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(proxy.failed("UpdateItem"), 4);

    // Using a recovery code.
    let t = Tenant::set_up(&s, "optional").await;
    let code = with_recovery_code(&s, &t).await;
    proxy.fail_times(
        "UpdateItem",
        Some(RECOVERY_USE),
        Fault::DynamoTransactionConflict,
        3,
    );
    let r = t.redeem(&s, &code).await;
    assert_eq!(
        (r.status, r.json["remaining"].as_u64()),
        (200, Some(9)),
        "{r:?}"
    );
    assert_eq!(t.redeem(&s, &code).await.status, 400, "used once");

    // A conditional PutItem (the policy's version guard).
    proxy.fail_times(
        "PutItem",
        Some("POLICY"),
        Fault::DynamoTransactionConflict,
        2,
    );
    let r = s
        .call(
            "PUT",
            &format!("/v1/admin/applications/{}/mfa-policy", t.app),
            Some(&t.admin),
            Some(json!({"enabled": true, "include_in_signup": false, "enforcement": "optional"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(proxy.failed("PutItem"), 2);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn two_right_codes_submitted_together_answer_one_200_and_one_4xx() {
    // Two challenges for one user: their texts need only be a second apart here.
    let (s, proxy) = behind_proxy("DYNAMODB", &[("MFA_RESEND_COOLDOWN_SECONDS", "1")]);
    let t = Tenant::set_up(&s, "optional").await;
    let number = unique_number();
    t.enroll(&s, &number).await;
    let id = challenge(&s, &t).await;
    let right = s.last_code(&number).await;
    // Each write of the pair meets the other's transaction first.
    proxy.fail_times(
        "UpdateItem",
        Some(CODE_ATTEMPT),
        Fault::DynamoTransactionConflict,
        2,
    );
    let submit = || challenge_request(&s, &t, &id, &right);
    let statuses = concurrently(vec![submit(), submit()]).await;
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!((400..500).contains(&statuses[1]), "{statuses:?}");

    // The completing transactions meet each other: cancelled by conflicts, sent again.
    let id = challenge(&s, &t).await;
    let right = s.last_code(&number).await;
    proxy.fail_times(
        "TransactWriteItems",
        Some("write_token"),
        Fault::DynamoTransactionCanceledByConflict,
        3,
    );
    let submit = || challenge_request(&s, &t, &id, &right);
    let statuses = concurrently(vec![submit(), submit()]).await;
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!((400..500).contains(&statuses[1]), "{statuses:?}");
    assert_eq!(proxy.failed("TransactWriteItems"), 3);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_recovery_code_whose_answer_was_lost_still_works_once() {
    let (s, proxy) = behind_proxy("DYNAMODB", &[]);
    let t = Tenant::set_up(&s, "optional").await;
    let code = with_recovery_code(&s, &t).await;
    // moto marks the code used; the answer never arrives; the SDK sends the use again.
    proxy.fail_times("UpdateItem", Some(RECOVERY_USE), Fault::LoseAnswer, 1);
    let r = t.redeem(&s, &code).await;
    assert_eq!(
        (r.status, r.json["remaining"].as_u64()),
        (200, Some(9)),
        "{r:?}"
    );
    assert_eq!(proxy.failed("UpdateItem"), 1);
    assert_eq!(t.redeem(&s, &code).await.status, 400, "used once");
    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.json["recovery_codes_remaining"], 9, "{st:?}");
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn lost_answers_never_charge_a_counter_twice() {
    let (s, proxy) = behind_proxy(
        "DYNAMODB",
        &[
            ("MFA_CODE_FAILURES_PER_USER_PER_HOUR", "2"),
            ("MFA_MAX_SENDS_PER_ENROLLMENT", "2"),
        ],
    );
    let t = Tenant::set_up(&s, "optional").await;
    let id = t.start(&s).await;
    let number = unique_number();
    // The send record's answer is lost: the send counts once, so a second number still goes.
    proxy.fail_times("UpdateItem", Some(SEND_RECORD), Fault::LoseAnswer, 1);
    assert_eq!(t.phone(&s, &id, &number).await.status, 202);
    let number = unique_number();
    let r = t.phone(&s, &id, &number).await;
    assert_eq!(r.status, 202, "the first send was counted twice: {r:?}");
    let right = s.last_code(&number).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // A wrong code whose attempt and failure-budget writes both lose their answers: one
    // attempt and one unit each.
    proxy.fail_times("UpdateItem", Some(CODE_ATTEMPT), Fault::LoseAnswer, 1);
    proxy.fail_times("UpdateItem", Some(FAILURE_COUNTER), Fault::LoseAnswer, 1);
    let r = t.code(&s, &id, wrong).await;
    assert_eq!(
        (r.status, r.json["attempts_remaining"].as_u64()),
        (400, Some(4)),
        "{r:?}"
    );
    // The user's hourly budget of 2 failed codes has one left, not none.
    let r = t.code(&s, &id, wrong).await;
    assert_eq!((r.status, r.error()), (400, "invalid_code"), "{r:?}");
    let r = t.code(&s, &id, wrong).await;
    assert_eq!((r.status, r.error()), (429, "too_many_attempts"), "{r:?}");
    // Every lost answer happened (and was retried by the SDK).
    assert_eq!(proxy.failed("UpdateItem"), 3);
}

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn a_completion_whose_answer_was_lost_is_not_reported_as_failed() {
    let (s, proxy) = behind_proxy("DYNAMODB", &[]);
    let t = Tenant::set_up(&s, "optional").await;
    let number = unique_number();
    t.enroll(&s, &number).await;
    let id = challenge(&s, &t).await;
    // The completing transaction is applied; its answer is lost; the SDK sends it again.
    proxy.fail_times(
        "TransactWriteItems",
        Some("write_token"),
        Fault::LoseAnswer,
        1,
    );
    let r = t.challenge_code(&s, &id, &s.last_code(&number).await).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json["assertion"].is_string(), "{r:?}");
    assert_eq!(proxy.failed("TransactWriteItems"), 1);
}
