//! The end-to-end harness: builds and spawns `mfa-local` (memory or aws backend) on a free
//! port, signs tokens with its `token` subcommand, and reads back what was "sent" (the local
//! outbox, or moto's `/moto-api/data.json`).
//!
//! Tests on the aws backend need moto's server. `tests/run.sh` starts one from the project's
//! virtualenv and passes its address as `MFA_TEST_MOTO_URL`; those tests are `#[ignore]`d so
//! that plain `cargo test` (no network, no emulator) lists them as ignored instead of passing.
//!
//! The `*_on_localstack` tests run on a mix instead ([`Emulators::LocalStack`]): LocalStack for
//! SNS and Secrets Manager (`MFA_TEST_LOCALSTACK_URL`), dynoxide for DynamoDB
//! (`MFA_TEST_DYNOXIDE_URL`) and moto for SES v2, each pointed at by its own
//! `AWS_ENDPOINT_URL_<SERVICE>` variable. `tests/localstack.sh` starts all three; `tests/run.sh`
//! skips these tests on its moto run. Without one of the variables they fail, naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod aws_proxy;
pub mod load;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds `mfa-local` once per test binary (offline: dependencies are already compiled) and
/// returns its path.
pub fn mfa_local_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var("MFA_LOCAL_BIN") {
        Ok(p) => PathBuf::from(p),
        Err(_) => function_bin("mfa-local"),
    })
    .clone()
}

/// Builds one of the workspace's binaries (the Lambda functions, `mfa-local`; debug, offline)
/// and returns its path.
pub fn function_bin(package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package])
        .current_dir(root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root().join("target"), PathBuf::from);
    target.join("debug").join(package)
}

/// A Lambda function's binary (built for debug), to be started as Lambda starts it: a clean
/// environment with the Runtime API at `runtime_api`, the region and test credentials, JSON
/// logs, and the table `table` with its code key (`{table}/code-hmac-key`); then `env` (the
/// endpoint, `AWS_ENDPOINT_URL`, and anything else).
pub fn lambda_command(
    package: &str,
    runtime_api: &str,
    table: &str,
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(function_bin(package));
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", package)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("MFA_TABLE_NAME", table)
        .env("MFA_SECRET_ID", format!("{table}/code-hmac-key"))
        .envs(env.iter().copied());
    cmd
}

/// An end user's request as API Gateway (HTTP API, v2) delivers it to a function: the
/// recorded fixture of `shared/tests/fixtures/` (JWT authorizer claims included) with `method`,
/// `path` and a plain `body`.
pub fn apigw_user_event(method: &str, path: &str, body: &str) -> Value {
    let mut ev: Value = serde_json::from_str(include_str!(
        "../../shared/tests/fixtures/apigw-v2-user-jwt.json"
    ))
    .unwrap();
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["method"] = json!(method);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["body"] = json!(body);
    ev["headers"]["content-length"] = json!(body.len().to_string());
    ev
}

/// A random lowercase hex suffix, to keep tests that share one emulator apart.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", getrandom::u64().unwrap())
}

/// A US mobile-format number no other test uses (415-555-xxxx).
pub fn unique_number() -> String {
    format!("+1415555{:04}", getrandom::u32().unwrap() % 10_000)
}

/// The moto server the aws-backend tests run against.
pub fn moto_url() -> String {
    std::env::var("MFA_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("MFA_TEST_MOTO_URL is not set: the aws-backend tests need moto's server; run them with tests/run.sh")
    })
}

/// LocalStack (host mode, SNS and Secrets Manager) for the `*_on_localstack` tests.
pub fn localstack_url() -> String {
    std::env::var("MFA_TEST_LOCALSTACK_URL").unwrap_or_else(|_| {
        panic!("MFA_TEST_LOCALSTACK_URL is not set: the *_on_localstack tests need LocalStack, dynoxide and moto; run them with tests/localstack.sh")
    })
}

/// dynoxide (DynamoDB) for the `*_on_localstack` tests.
pub fn dynoxide_url() -> String {
    std::env::var("MFA_TEST_DYNOXIDE_URL").unwrap_or_else(|_| {
        panic!("MFA_TEST_DYNOXIDE_URL is not set: the *_on_localstack tests need LocalStack, dynoxide and moto; run them with tests/localstack.sh")
    })
}

/// The AWS SDK's configuration for moto's server (test credentials, us-east-1).
pub async fn moto_sdk() -> aws_config::SdkConfig {
    emulator_sdk(&moto_url()).await
}

/// The AWS SDK's configuration for the emulator at `url` (test credentials, us-east-1).
pub async fn emulator_sdk(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .http_client(mfa_shared::adapters::aws::https_client())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// A running `mfa-local`, stopped on drop.
pub struct LocalServer {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    /// For the aws backend: moto (SES v2, and every service on [`Emulators::Moto`]), the
    /// table this server uses and the DynamoDB endpoint it is on.
    pub moto: Option<String>,
    pub table: Option<String>,
    pub dynamodb: Option<String>,
    /// On [`Emulators::LocalStack`]: LocalStack, where the texts are read.
    pub localstack: Option<String>,
    /// Every line the server printed on stdout so far (the console outbox, EMF metrics).
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Which emulators `--backend aws` talks to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Emulators {
    /// moto's server for every service (`AWS_ENDPOINT_URL`).
    #[default]
    Moto,
    /// `AWS_ENDPOINT_URL_SNS` and `AWS_ENDPOINT_URL_SECRETS_MANAGER` on LocalStack,
    /// `AWS_ENDPOINT_URL_DYNAMODB` on dynoxide, `AWS_ENDPOINT_URL_SESV2` on moto (the
    /// community LocalStack has no SES v2, and its DynamoDB downloads a Java server at start).
    /// No shared `AWS_ENDPOINT_URL`: each service goes where its own variable says.
    LocalStack,
}

/// How to start a server.
#[derive(Clone, Default)]
pub struct Launch {
    /// The emulators of `--backend aws`.
    pub emulators: Emulators,
    /// Extra environment (limits, broken endpoints).
    pub env: Vec<(String, String)>,
    /// Use this table (to share state with an earlier server); otherwise a fresh one.
    pub table: Option<String>,
    /// Pass `--bootstrap`.
    pub bootstrap: bool,
    /// Write the server's log (its stderr) to this file instead of the test's stderr.
    pub log_file: Option<PathBuf>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl LocalServer {
    /// The embedded default.
    pub fn memory(env: &[(&str, &str)]) -> LocalServer {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(
            false,
            Launch {
                env,
                ..Launch::default()
            },
        )
    }

    /// `--backend aws` against moto, with a fresh table (bootstrapped) unless one is given.
    pub fn aws(launch: Launch) -> LocalServer {
        Self::spawn(true, launch)
    }

    /// `--backend aws` against moto, on a fresh table that it bootstraps.
    pub fn moto() -> LocalServer {
        Self::aws(Launch {
            bootstrap: true,
            ..Launch::default()
        })
    }

    /// `--backend aws` against LocalStack, dynoxide and moto ([`Emulators::LocalStack`]), on a
    /// fresh table that it bootstraps.
    pub fn localstack() -> LocalServer {
        Self::aws(Launch {
            bootstrap: true,
            emulators: Emulators::LocalStack,
            ..Launch::default()
        })
    }

    /// The memory backend (`aws: false`) or `--backend aws` against the emulators `launch` names.
    pub fn spawn(aws: bool, mut launch: Launch) -> LocalServer {
        let port = free_port();
        let mut cmd = Command::new(mfa_local_bin());
        cmd.args(["--port", &port.to_string()]);
        cmd.env("RUST_LOG", "warn");
        let (mut moto, mut table, mut dynamodb, mut localstack) = (None, None, None, None);
        if aws {
            let url = moto_url();
            let t = launch.table.take().unwrap_or_else(|| unique("mfa-e2e-"));
            cmd.args(["--backend", "aws"]);
            if launch.bootstrap {
                cmd.arg("--bootstrap");
            }
            for service in ["DYNAMODB", "SNS", "SECRETS_MANAGER", "SESV2"] {
                cmd.env_remove(format!("AWS_ENDPOINT_URL_{service}"));
            }
            match launch.emulators {
                Emulators::Moto => {
                    cmd.env("AWS_ENDPOINT_URL", &url);
                    dynamodb = Some(url.clone());
                }
                Emulators::LocalStack => {
                    let (ls, dy) = (localstack_url(), dynoxide_url());
                    cmd.env_remove("AWS_ENDPOINT_URL")
                        .env("AWS_ENDPOINT_URL_DYNAMODB", &dy)
                        .env("AWS_ENDPOINT_URL_SNS", &ls)
                        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &ls)
                        .env("AWS_ENDPOINT_URL_SESV2", &url);
                    dynamodb = Some(dy);
                    localstack = Some(ls);
                }
            }
            cmd.env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("MFA_TABLE_NAME", &t)
                .env("MFA_SECRET_ID", format!("{t}/code-hmac-key"))
                .env("MFA_SIGNING_SECRET_ID", format!("{t}/signing-key"))
                .env("MFA_TOTP_SECRET_ID", format!("{t}/totp-key"));
            moto = Some(url);
            table = Some(t);
        }
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let stderr = match &launch.log_file {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create the log file")),
            None => Stdio::inherit(),
        };
        cmd.stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().expect("spawn mfa-local");
        // Wait for its "listening" line (bootstrap against the emulator can take a while).
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                // Keep draining so the server never blocks on a full pipe.
                kept.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("mfa-local exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "mfa-local did not start within 60 s"
            );
        }
        LocalServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            moto,
            table,
            dynamodb,
            localstack,
            stdout: lines,
        }
    }

    /// The lines printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Runs `mfa-local token ...` and returns the JWT.
    pub fn token(&self, user: &str, app: Option<&str>, scope: Option<&str>) -> String {
        token(user, app, scope, 3600)
    }

    /// Sends a request; returns status, headers and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    /// [`LocalServer::call`] with extra request headers (e.g. `MFA-Assertion`).
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    /// Every text sent to `number` so far, oldest first (outbox, moto or LocalStack).
    pub async fn texts_to(&self, number: &str) -> Vec<String> {
        if self.localstack.is_some() {
            let all = self.all_texts().await.into_iter();
            return all.filter(|(to, _)| to == number).map(|(_, b)| b).collect();
        }
        match &self.moto {
            None => {
                let o = self.call("GET", "/_local/outbox", None, None).await.json;
                o["sms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["to"] == number)
                    .map(|m| m["body"].as_str().unwrap().to_owned())
                    .collect()
            }
            Some(url) => {
                let d = moto_data(url).await;
                d["sns"]["SMS"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter(|m| m["phone_number"] == number)
                    .map(|m| m["message"].as_str().unwrap().to_owned())
                    .collect()
            }
        }
    }

    /// Every text sent so far as `(to, body)`, oldest first (outbox, moto or LocalStack).
    pub async fn all_texts(&self) -> Vec<(String, String)> {
        if let Some(url) = &self.localstack {
            return localstack_sms(url).await;
        }
        let (list, to, body) = match &self.moto {
            None => {
                let o = self.call("GET", "/_local/outbox", None, None).await.json;
                (o["sms"].clone(), "to", "body")
            }
            Some(url) => (
                moto_data(url).await["sns"]["SMS"].clone(),
                "phone_number",
                "message",
            ),
        };
        list.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m[to].as_str().unwrap_or_default().to_owned(),
                    m[body].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The code in the newest text to `number`.
    pub async fn last_code(&self, number: &str) -> String {
        let texts = self.texts_to(number).await;
        let body = texts
            .last()
            .unwrap_or_else(|| panic!("no text was sent to {number}"));
        body[..6].to_owned()
    }

    /// The subjects of the emails sent to `to`, oldest first.
    pub async fn subjects_to(&self, to: &str) -> Vec<String> {
        let emails = self.emails_to(to).await.into_iter();
        emails.map(|(subject, _)| subject).collect()
    }

    /// Every email to `to` so far as (subject, body) pairs.
    pub async fn emails_to(&self, to: &str) -> Vec<(String, String)> {
        match &self.moto {
            None => {
                let o = self.call("GET", "/_local/outbox", None, None).await.json;
                o["email"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["to"] == to)
                    .map(|m| {
                        (
                            m["subject"].as_str().unwrap().to_owned(),
                            m["text"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            }
            Some(url) => {
                let d = moto_data(url).await;
                d["ses"]["Message"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter(|m| {
                        m["destinations"]["ToAddresses"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == to))
                    })
                    .map(|m| {
                        (
                            m["subject"].as_str().unwrap_or_default().to_owned(),
                            m["body"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            }
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mfa-local token --user U [--app A] [--scope S] --ttl T`.
pub fn token(user: &str, app: Option<&str>, scope: Option<&str>, ttl: u64) -> String {
    let mut cmd = Command::new(mfa_local_bin());
    cmd.args(["token", "--user", user, "--ttl", &ttl.to_string()]);
    if let Some(a) = app {
        cmd.args(["--app", a]);
    }
    if let Some(s) = scope {
        cmd.args(["--scope", s]);
    }
    let out = cmd.output().expect("mfa-local token");
    assert!(
        out.status.success(),
        "mfa-local token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `echo -n PW | mfa-local hash-password`.
pub fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(mfa_local_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The texts LocalStack's SNS "sent", as `(to, body)`: `GET /_aws/sns/sms-messages` answers
/// `{"sms_messages": {"+1415...": [{"PhoneNumber", "Message", ...}, ...]}, "region": ...}`,
/// each number's texts oldest first (so is this list, number by number).
pub async fn localstack_sms(url: &str) -> Vec<(String, String)> {
    let d: Value = reqwest::get(format!("{url}/_aws/sns/sms-messages"))
        .await
        .unwrap_or_else(|e| panic!("LocalStack's SMS list at {url}: {e}"))
        .json()
        .await
        .unwrap();
    let by_number = d["sms_messages"].as_object().cloned().unwrap_or_default();
    by_number
        .values()
        .flat_map(|texts| texts.as_array().cloned().unwrap_or_default())
        .map(|m| {
            (
                m["PhoneNumber"].as_str().unwrap_or_default().to_owned(),
                m["Message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// moto's record of everything it was asked to do. Its dump walks every backend while other
/// tests keep writing, and now and then answers 500 (a Python dict changed during the walk,
/// seen once in a full run under load): such an answer is asked again, a few times.
pub async fn moto_data(url: &str) -> Value {
    let mut last = String::new();
    for attempt in 0..5u64 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
        }
        let resp = reqwest::get(format!("{url}/moto-api/data.json"))
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        match serde_json::from_str(&body) {
            Ok(v) if status.is_success() => return v,
            _ => last = format!("{status}: {}", body.chars().take(200).collect::<String>()),
        }
    }
    panic!("moto's data.json did not answer JSON in 5 tries; last: {last}");
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// The `action` of each event of an audit page, newest first.
    pub fn actions(&self) -> Vec<&str> {
        let events = self.json["events"].as_array().unwrap().iter();
        events.map(|e| e["action"].as_str().unwrap()).collect()
    }
}

/// Two tests of one walk over HTTP (`async fn walk(s: &LocalServer)`): `$memory` on the
/// memory backend, and `$moto` on `--backend aws` against moto (ignored without it).
#[macro_export]
macro_rules! on_both_backends {
    ($walk:ident, $memory:ident, $moto:ident) => {
        #[tokio::test]
        async fn $memory() {
            $walk(&$crate::LocalServer::memory(&[])).await;
        }

        #[tokio::test]
        #[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
        async fn $moto() {
            $walk(&$crate::LocalServer::moto()).await;
        }
    };
}

/// One walk over HTTP on the LocalStack mix ([`Emulators::LocalStack`]), as test `$test`:
/// ignored without it; `tests/localstack.sh` runs it (`-- --ignored on_localstack`).
#[macro_export]
macro_rules! on_localstack {
    ($walk:ident, $test:ident) => {
        #[tokio::test]
        #[ignore = "needs LocalStack, dynoxide and moto: run by tests/localstack.sh"]
        async fn $test() {
            $walk(&$crate::LocalServer::localstack()).await;
        }
    };
}

/// An application with MFA made available (operator), enabled with signup (admin), and one
/// provisioned user with a verified email. Returns the user's token.
pub struct Tenant {
    pub app: String,
    pub user: String,
    pub email: String,
    pub password: String,
    pub admin: String,
    pub user_token: String,
    /// The last step-up proof and when it was obtained (see [`Tenant::proof`]).
    proof: std::sync::Mutex<Option<(String, Instant)>>,
}

/// How long the harness reuses a step-up proof: well inside the assertion's 5 minutes.
const PROOF_REUSE: Duration = Duration::from_secs(240);

impl Tenant {
    pub async fn set_up(s: &LocalServer, enforcement: &str) -> Tenant {
        Tenant::set_up_named(s, enforcement, &unique("user-")).await
    }

    /// [`Tenant::set_up`] with a chosen user id (the same id in two applications is two users).
    pub async fn set_up_named(s: &LocalServer, enforcement: &str, user: &str) -> Tenant {
        let app = unique("app-");
        let user = user.to_owned();
        let email = format!("{user}@example.com");
        let password = "correct horse battery staple".to_owned();
        let admin = s.token("admin@example.com", None, Some("mfa:admin"));
        let operator = s.token("cs@example.com", None, Some("mfa:operator"));
        let r = s
            .call(
                "PUT",
                &format!("/v1/admin/applications/{app}/mfa-availability"),
                Some(&operator),
                Some(json!({"available": true})),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let r = s
            .call(
                "PUT",
                &format!("/v1/admin/applications/{app}/mfa-policy"),
                Some(&admin),
                Some(
                    json!({"enabled": true, "include_in_signup": true, "enforcement": enforcement}),
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let r = s
            .call("PUT", &format!("/v1/admin/applications/{app}/users/{user}"), Some(&admin),
                Some(json!({"email": email, "email_verified": true, "password_hash": hash_password(&password)})))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let user_token = s.token(&user, Some(&app), None);
        Tenant {
            app,
            user,
            email,
            password,
            admin,
            user_token,
            proof: std::sync::Mutex::new(None),
        }
    }

    /// A step-up proof, as a user gets one: a sign-in challenge to the primary phone
    /// (`POST /v1/mfa/challenges`), the code read from the texts (outbox or moto), and its
    /// assertion. Costs one text of the user's budgets.
    ///
    /// A user's challenge texts are a resend cooldown apart: when the last one is too recent
    /// (`429 resend_too_soon`), this waits its `Retry-After` once, as a person would.
    pub async fn step_up(&self, s: &LocalServer) -> String {
        let mut r = s
            .call("POST", "/v1/mfa/challenges", Some(&self.user_token), None)
            .await;
        if r.status == 429 && r.error() == "resend_too_soon" {
            let wait = r.json["retry_after"].as_u64().unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            r = s
                .call("POST", "/v1/mfa/challenges", Some(&self.user_token), None)
                .await;
        }
        assert_eq!(r.status, 202, "step-up challenge: {r:?}");
        let id = r.json["challenge_id"].as_str().unwrap().to_owned();
        let masked = r.json["phone"]["masked"].as_str().unwrap().to_owned();
        let last4: String = masked
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let (_, body) = s
            .all_texts()
            .await
            .into_iter()
            .rev()
            .find(|(to, _)| to.ends_with(&last4) && to.chars().count() == masked.chars().count())
            .unwrap_or_else(|| panic!("no challenge text to {masked}"));
        let v = self.challenge_code(s, &id, &body[..6]).await;
        assert_eq!(v.status, 200, "step-up code: {v:?}");
        let assertion = v.json["assertion"].as_str().unwrap().to_owned();
        *self.proof.lock().unwrap() = Some((assertion.clone(), Instant::now()));
        assertion
    }

    /// A step-up proof for a change: the last one while it is fresh, else a new one; `None`
    /// when the user has no phone yet (the first factor needs none).
    pub async fn proof(&self, s: &LocalServer) -> Option<String> {
        if let Some((p, at)) = self.proof.lock().unwrap().clone()
            && at.elapsed() < PROOF_REUSE
        {
            return Some(p);
        }
        let phones = s
            .call("GET", "/v1/mfa/phones", Some(&self.user_token), None)
            .await;
        if phones.json["phones"].as_array().is_none_or(Vec::is_empty) {
            return None;
        }
        Some(self.step_up(s).await)
    }

    /// A change to the user's factors (add, replace, remove a phone; recovery codes), with
    /// the step-up proof the user would send.
    pub async fn change(&self, s: &LocalServer, method: &str, path: &str, body: Value) -> Reply {
        let proof = self.proof(s).await;
        let headers: Vec<(&str, &str)> = proof
            .as_deref()
            .map(|p| vec![("mfa-assertion", p)])
            .unwrap_or_default();
        s.call_with(method, path, Some(&self.user_token), Some(body), &headers)
            .await
    }

    /// [`Tenant::set_up`] in an application whose policy allows authenticator apps beside
    /// texts (`factors: ["sms", "totp"]`).
    pub async fn with_apps(s: &LocalServer, enforcement: &str) -> Tenant {
        let t = Tenant::set_up(s, enforcement).await;
        let r = s
            .call(
                "PUT",
                &format!("/v1/admin/applications/{}/mfa-policy", t.app),
                Some(&t.admin),
                Some(json!({"enabled": true, "include_in_signup": true,
                            "enforcement": enforcement, "factors": ["sms", "totp"]})),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json["factors"], json!(["sms", "totp"]), "{r:?}");
        t
    }

    /// `POST /v1/mfa/totp` with the password (and `label`): the setup's `201`. For a user with
    /// no factor yet, who needs no step-up proof.
    pub async fn begin_app(&self, s: &LocalServer, label: Option<&str>) -> Reply {
        let mut body = json!({"password": self.password});
        if let Some(l) = label {
            body["label"] = json!(l);
        }
        let r = s
            .call("POST", "/v1/mfa/totp", Some(&self.user_token), Some(body))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        r
    }

    /// Start with the password: the new enrollment's id.
    pub async fn start(&self, s: &LocalServer) -> String {
        let r = s
            .call(
                "POST",
                "/v1/mfa/enrollments",
                Some(&self.user_token),
                Some(json!({"password": self.password})),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        r.json["enrollment_id"].as_str().unwrap().to_owned()
    }

    pub async fn phone(&self, s: &LocalServer, id: &str, number: &str) -> Reply {
        s.call(
            "POST",
            &format!("/v1/mfa/enrollments/{id}/phone"),
            Some(&self.user_token),
            Some(json!({"phone_number": number, "label": "Mobile"})),
        )
        .await
    }

    /// An enrollment at the code step: started, and a fresh number texted (`202`). Returns
    /// the enrollment's id, the number and the code texted to it.
    pub async fn at_code(&self, s: &LocalServer) -> (String, String, String) {
        let id = self.start(s).await;
        let number = unique_number();
        let r = self.phone(s, &id, &number).await;
        assert_eq!(r.status, 202, "{r:?}");
        let code = s.last_code(&number).await;
        (id, number, code)
    }

    /// The whole enrollment with `number`: Start, phone, the texted code.
    pub async fn enroll(&self, s: &LocalServer, number: &str) {
        let id = self.start(s).await;
        assert_eq!(self.phone(s, &id, number).await.status, 202);
        let r = self.code(s, &id, &s.last_code(number).await).await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    /// Submits `code` for enrollment `id`.
    pub async fn code(&self, s: &LocalServer, id: &str, code: &str) -> Reply {
        self.submit_code(s, &format!("/v1/mfa/enrollments/{id}/code"), code)
            .await
    }

    /// Submits `code` for sign-in challenge `id`.
    pub async fn challenge_code(&self, s: &LocalServer, id: &str, code: &str) -> Reply {
        self.submit_code(s, &format!("/v1/mfa/challenges/{id}/code"), code)
            .await
    }

    async fn submit_code(&self, s: &LocalServer, path: &str, code: &str) -> Reply {
        let body = json!({ "code": code });
        s.call("POST", path, Some(&self.user_token), Some(body))
            .await
    }

    /// Signs in with recovery code `code`.
    pub async fn redeem(&self, s: &LocalServer, code: &str) -> Reply {
        let body = json!({ "code": code });
        s.call(
            "POST",
            "/v1/mfa/challenges/recovery",
            Some(&self.user_token),
            Some(body),
        )
        .await
    }

    /// Submits the code texted to `number` for the enrollment whose `202` is `sent`.
    pub async fn confirm(&self, s: &LocalServer, sent: &Reply, number: &str) -> Reply {
        let id = sent.json["enrollment_id"].as_str().unwrap();
        self.code(s, id, &s.last_code(number).await).await
    }

    /// New recovery codes (a factor change: with a step-up proof once enrolled).
    pub async fn recovery_codes(&self, s: &LocalServer) -> Vec<String> {
        let body = json!({"password": self.password});
        let r = self.change(s, "POST", "/v1/mfa/recovery-codes", body).await;
        assert_eq!(r.status, 201, "{r:?}");
        let codes = r.json["codes"].as_array().unwrap().iter();
        codes.map(|c| c.as_str().unwrap().to_owned()).collect()
    }

    /// The user's audit events, as the application's admin reads them.
    pub async fn audit(&self, s: &LocalServer) -> Reply {
        let path = format!(
            "/v1/admin/applications/{}/audit-events?user_id={}",
            self.app, self.user
        );
        s.call("GET", &path, Some(&self.admin), None).await
    }
}
