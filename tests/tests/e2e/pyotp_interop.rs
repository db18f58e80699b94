//! Authenticator apps against an independent TOTP implementation: pyotp (pinned in
//! `tests/requirements.txt`, installed into `.venv` by `tests/run.sh`) reads the `otpauth_uri`
//! that `POST /v1/mfa/totp` answers, as a user's app reads its QR code, and computes the codes
//! that set the app up and sign in with it. Our RFC 6238 code and our URI are thus checked
//! against someone else's reading of the RFC and of the Key Uri Format, not against themselves.
//!
//! Python and pyotp are required: plain `cargo test` lists the tests as ignored (it assumes no
//! virtualenv); `tests/run.sh` runs them, and without pyotp they fail (naming what is missing),
//! never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use mfa_tests::{LocalServer, Tenant, root};
use serde_json::json;

/// The project's virtualenv Python, which `tests/run.sh` fills from `tests/requirements.txt`.
fn python() -> PathBuf {
    let py = root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: tests/run.sh creates it and installs tests/requirements.txt (pyotp) into it",
        py.display()
    );
    py
}

/// Runs `script` with `args` on the virtualenv's Python; its stdout, trimmed.
fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run .venv/bin/python");
    assert!(
        out.status.success(),
        "python failed (is pyotp installed? tests/requirements.txt pins it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The code pyotp computes from `uri` now (`"now"`) or for the next 30-second step (`"next"`).
fn pyotp_code(uri: &str, when: &str) -> String {
    let code = run_python(
        "import sys, time, pyotp\n\
         t = pyotp.parse_uri(sys.argv[1])\n\
         print(t.now() if sys.argv[2] == 'now' else t.at(time.time() + 30))",
        &[uri, when],
    );
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "pyotp gave {code:?}"
    );
    code
}

async fn pyotp_walk(s: &LocalServer) {
    // Fail early, before any request, when pyotp is not there.
    let version = run_python(
        "import importlib.metadata as m, pyotp; print(m.version('pyotp'))",
        &[],
    );
    assert!(!version.is_empty(), "no pyotp version");

    let t = Tenant::with_apps(s, "optional").await;

    // Set up: the user has no factor yet, so the password alone (no step-up).
    let r = t.begin_app(s, Some("Phone")).await;
    assert_eq!(r.json["purpose"], "totp", "{r:?}");
    let id = r.json["enrollment_id"].as_str().unwrap().to_owned();
    let secret = r.json["secret"].as_str().unwrap().to_owned();
    let uri = r.json["otpauth_uri"].as_str().unwrap().to_owned();
    assert!(
        secret.len() == 32
            && secret
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "20 bytes in base32 without padding: {secret}"
    );
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    // pyotp reads the same secret and parameters out of the URI as the answer states.
    let read = run_python(
        "import sys, pyotp\n\
         t = pyotp.parse_uri(sys.argv[1])\n\
         print(t.secret, t.digits, t.interval, t.digest().name, t.issuer is not None, t.name)",
        &[&uri],
    );
    assert_eq!(
        read,
        format!("{secret} 6 30 sha1 True {}", t.email),
        "pyotp's reading of {uri}"
    );

    // The code the app shows now completes the setup.
    let code = pyotp_code(&uri, "now");
    let done = t.code(s, &id, &code).await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json["step"], "complete", "{done:?}");
    assert_eq!(done.json["factor"], "totp", "{done:?}");
    assert_eq!(done.json["totp"]["label"], "Phone", "{done:?}");

    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.status, 200, "{st:?}");
    assert_eq!(st.json["enrolled"], true, "{st:?}");
    assert_eq!(st.json["totp"]["label"], "Phone", "{st:?}");

    // Sign-in with the app. Its current step was used by the setup: the same code again fails,
    // the next step's code (within the ±1 step window) gives an assertion, amr ["otp"].
    let r = s
        .call(
            "POST",
            "/v1/mfa/challenges",
            Some(&t.user_token),
            Some(json!({"factor": "totp"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json["factor"], "totp", "{r:?}");
    let challenge = r.json["challenge_id"].as_str().unwrap().to_owned();
    let replay = t.challenge_code(s, &challenge, &code).await;
    assert_eq!(
        (replay.status, replay.error()),
        (400, "invalid_code"),
        "a used step is refused: {replay:?}"
    );
    let next = pyotp_code(&uri, "next");
    let v = t.challenge_code(s, &challenge, &next).await;
    assert_eq!(v.status, 200, "{v:?}");
    let claims = crate::signin::verify(s, v.json["assertion"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["amr"], json!(["otp"]), "{claims}");
    assert_eq!(
        (claims["sub"].as_str(), claims["app_id"].as_str()),
        (Some(t.user.as_str()), Some(t.app.as_str()))
    );

    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert!(
        st.json["totp"]["last_used_at"].is_string(),
        "the sign-in is the app's last use: {st:?}"
    );
}

// Both need the test virtualenv (pyotp), which plain `cargo test` does not assume: they are
// ignored there and run by tests/run.sh (`--include-ignored`), where a missing pyotp fails.
#[tokio::test]
#[ignore = "needs the test virtualenv's pyotp: run by tests/run.sh"]
async fn pyotp_sets_up_and_signs_in_on_memory() {
    pyotp_walk(&LocalServer::memory(&[])).await;
}

#[tokio::test]
#[ignore = "needs moto_server and the test virtualenv's pyotp: run by tests/run.sh"]
async fn pyotp_sets_up_and_signs_in_on_moto() {
    pyotp_walk(&LocalServer::moto()).await;
}
