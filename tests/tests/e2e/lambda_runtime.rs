//! A function's release path end to end: its binary, started as Lambda starts it, takes an API
//! Gateway HTTP API (v2) event from a minimal Lambda Runtime API and posts back the v2 answer
//! (`mfa_shared::http::run_lambda`, which makes the answer without `lambda_http::run`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use mfa_tests::{LocalServer, apigw_user_event, lambda_command, moto_url};
use serde_json::{Value, json};

/// Serves one invocation of `event` on a free port, then sends the posted answer on the
/// channel. Later `/next` polls are held open (the process is killed by then).
fn runtime_api(event: Value) -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let (tx, served, event) = (tx.clone(), served.clone(), event.clone());
            std::thread::spawn(move || serve(stream.unwrap(), &tx, &served, &event));
        }
    });
    (addr, rx)
}

/// One request per connection (`Connection: close` on every answer).
fn serve(
    mut stream: std::net::TcpStream,
    tx: &mpsc::Sender<Value>,
    served: &std::sync::atomic::AtomicBool,
    event: &Value,
) {
    use std::sync::atomic::Ordering;
    {
        {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut length = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            if line.starts_with("GET /2018-06-01/runtime/invocation/next") {
                if served.swap(true, Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                }
                let payload = event.to_string();
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
                     Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\n\
                     Lambda-Runtime-Deadline-Ms: 4102444800000\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:code-verify\r\n\
                     Content-Length: {}\r\n\r\n{payload}",
                    payload.len()
                )
                .unwrap();
            } else if line.contains("/response") {
                stream
                    .write_all(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
                    .unwrap();
                tx.send(serde_json::from_slice(&body).unwrap()).unwrap();
            } else {
                // An /error post: report it as the answer, for the assertion message.
                stream
                    .write_all(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
                    .unwrap();
                let text = String::from_utf8_lossy(&body).to_string();
                tx.send(json!({ "runtime_error": line.trim(), "body": text }))
                    .unwrap();
            }
        }
    }
}

#[test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
fn a_function_binary_answers_an_api_gateway_event_through_the_runtime_api() {
    // mfa-local bootstraps a fresh table and the local secrets on moto.
    let local = LocalServer::moto();
    let table = local.table.clone().unwrap();
    let path = "/v1/mfa/enrollments/0123456789abcdef0123456789abcdef/code";
    let event = apigw_user_event("POST", path, r#"{"code":"123456"}"#);
    let answer = invoke(
        "code-verify",
        &table,
        event,
        &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")],
    );

    assert_eq!(answer["statusCode"], 404, "{answer}");
    assert_eq!(
        answer["headers"]["content-type"], "application/json",
        "{answer}"
    );
    assert_eq!(answer["headers"]["cache-control"], "no-store", "{answer}");
    assert_eq!(answer["isBase64Encoded"], false, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "enrollment_not_found", "{body}");
}

/// Runs function `package`'s binary on moto for one `event`, with the table and code key of
/// `table` and `env` on top; returns the posted answer.
fn invoke(package: &str, table: &str, event: Value, env: &[(&str, &str)]) -> Value {
    let (api, answers) = runtime_api(event);
    let moto = moto_url();
    let mut child = lambda_command(package, &api, table, &[("AWS_ENDPOINT_URL", &moto)])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let answer = answers.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    answer.expect("no answer posted within 60 s")
}

/// The phone-edits function verifies step-up proofs with the public keys the signer published
/// in the table, and never reads the signing secret: pointed at a secret that does not exist,
/// it starts and verifies all the same, where the challenge function (which signs) cannot start.
#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn phone_edits_verifies_with_the_published_keys_and_holds_no_signing_key() {
    // mfa-local signs (it reads the signing secret) and publishes the JWKS item.
    let local = LocalServer::moto();
    let table = local.table.clone().unwrap();
    let t = mfa_tests::Tenant::set_up(&local, "optional").await;
    t.enroll(&local, &mfa_tests::unique_number()).await;
    let proof = t.step_up(&local).await;
    let phones = local
        .call("GET", "/v1/mfa/phones", Some(&t.user_token), None)
        .await;
    let path = format!(
        "/v1/mfa/phones/{}",
        phones.json["phones"][0]["phone_id"].as_str().unwrap()
    );
    let event = |proof: Option<&str>| {
        let mut event = apigw_user_event("DELETE", &path, r#"{"password":"not the password"}"#);
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(t.user);
        event["requestContext"]["authorizer"]["jwt"]["claims"]["app_id"] = json!(t.app);
        if let Some(p) = proof {
            event["headers"]["mfa-assertion"] = json!(p);
        }
        event
    };
    let no_secret = [("MFA_SIGNING_SECRET_ID", "no-such-signing-secret")];
    let body = |answer: &Value| -> Value {
        serde_json::from_str(answer["body"].as_str().unwrap_or("{}")).unwrap()
    };

    // With the proof, the request reaches the password check: the proof verified.
    let answer = invoke("phone-edits", &table, event(Some(&proof)), &no_secret);
    assert_eq!(answer["statusCode"], 401, "{answer}");
    assert_eq!(body(&answer)["error"], "invalid_password", "{answer}");
    // Without it, 403.
    let answer = invoke("phone-edits", &table, event(None), &no_secret);
    assert_eq!(answer["statusCode"], 403, "{answer}");
    assert_eq!(body(&answer)["error"], "step_up_required", "{answer}");

    // The signer, given the same missing secret, refuses to start.
    let moto = moto_url();
    let env = [("AWS_ENDPOINT_URL", moto.as_str()), no_secret[0]];
    let status = lambda_command("challenge", "127.0.0.1:9", &table, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the signer cannot start without its key");
}
