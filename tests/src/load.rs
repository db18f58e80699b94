//! A bounded load test: `users` simulated users run the whole enrollment concurrently for a
//! fixed time against `mfa-local` (memory backend, or `--backend aws` against moto), then the
//! run is checked for correctness and reported.
//!
//! Each iteration of a user is one fresh end user of one tenant: the admin provisions it (one
//! argon2 hash, made once, for everyone), the user reads its status, starts with the password,
//! submits a phone number no other iteration uses, reads the texted code and submits it. Every
//! HTTP request is timed (reading the code is not: it is the test's stand-in for a phone).
//! When the time is up no iteration starts; those in flight finish.
//!
//! Where the codes come from, without reading everything per code:
//! - memory: `GET /_local/outbox`, fetched by one waiter at a time for everyone waiting (at most
//!   every [`OUTBOX_MIN_INTERVAL`]), with a cursor over the append-only list of texts;
//! - moto: `/moto-api/data.json` serialises every object moto ever made (seconds, holding
//!   moto's interpreter lock, once it holds a few thousand items), so the server's AWS endpoint
//!   (`AWS_ENDPOINT_URL`) is a small tap in this process that forwards every request to moto
//!   unchanged, counts the AWS calls by operation (reported per enrollment), and notes each
//!   successful SNS `Publish` to a phone number. moto stays the record: `data.json` is read
//!   once before and once after the run.
//!
//! The tap forwards one request at a time. moto's server runs each request on a thread but is
//! not thread-safe: its `TransactWriteItems` deep-copies the whole table (for a rollback) while
//! other threads write to it, and then answers 500 (`RuntimeError: dictionary changed size
//! during iteration`; moto 5.2.5, `dynamodb/models/__init__.py`). Real DynamoDB has no such
//! fault, and Python's interpreter lock runs moto's requests one at a time anyway; the
//! service's own requests still interleave, call by call, as they would against DynamoDB.
//!
//! Checked afterwards (each failure is a problem of the [`Report`]): no 5xx and no other
//! unexpected answer; every completed enrollment is there (status: enrolled, with exactly that
//! phone, masked); for every number, the texts sent to it equal its accepted sends (`202`s).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::aws_proxy::{AwsCalls, FaultProxy, ProxyOptions, form_fields};
use crate::{Launch, LocalServer, Tenant, hash_password, mfa_local_bin, moto_data, root};

/// Every load user's password (one argon2 hash of it is provisioned for all of them).
pub const PASSWORD: &str = "correct horse battery staple";

/// The outbox is fetched at most this often (each fetch serves every waiting user).
pub const OUTBOX_MIN_INTERVAL: Duration = Duration::from_millis(25);

/// How long a user waits for its text before that is a problem.
const TEXT_TIMEOUT: Duration = Duration::from_secs(30);

/// One request's answer may take this long before it is a problem.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The server's limits for the load run: every client is 127.0.0.1 and every user belongs to
/// one application, so the per-IP and per-application text budgets are raised out of the way.
/// (The per-user and per-number limits stay at their defaults: each iteration is a fresh user
/// with a fresh number, texted once.)
pub const SERVER_ENV: &[(&str, &str)] = &[
    ("MFA_TEXTS_PER_IP_PER_HOUR", "10000000"),
    ("MFA_TEXTS_PER_APP_PER_DAY", "10000000"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `mfa-local` on its in-process store and console outbox.
    Memory,
    /// `mfa-local --backend aws --bootstrap` against moto at `MFA_TEST_MOTO_URL`.
    Moto,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Moto => "moto",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub backend: Backend,
    /// Simulated users running at once.
    pub users: usize,
    /// No iteration starts after this.
    pub duration: Duration,
}

/// The outcome: a printable report and the problems found (none when the run is correct).
#[derive(Debug)]
pub struct Report {
    pub text: String,
    pub problems: Vec<String>,
    pub enrollments: usize,
    pub requests: usize,
}

impl Report {
    /// Writes the report to `target/load-report-{name}.txt`, prints it, and returns the path.
    pub fn save(&self, name: &str) -> PathBuf {
        let path = target_dir().join(format!("load-report-{name}.txt"));
        let _ = std::fs::create_dir_all(target_dir());
        std::fs::write(&path, &self.text).unwrap();
        println!("{}\n(report written to {})", self.text, path.display());
        path
    }

    /// For tests: saves the report, then fails with it if the run found a problem.
    pub fn assert_correct(&self, name: &str) {
        let path = self.save(name);
        assert!(
            self.problems.is_empty(),
            "the load run found {} problem(s) (report: {}):\n{}",
            self.problems.len(),
            path.display(),
            self.text
        );
    }
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, or `target/` at the workspace root).
pub fn target_dir() -> PathBuf {
    let dir =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root().join("target"), PathBuf::from);
    dir.canonicalize().unwrap_or(dir)
}

// ---------------------------------------------------------------------------------------------
// Routes and tallies

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    PutUser,
    Status,
    Start,
    Phone,
    Code,
}

const ROUTES: [Route; 5] = [
    Route::PutUser,
    Route::Status,
    Route::Start,
    Route::Phone,
    Route::Code,
];

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::PutUser => "PUT  /v1/admin/applications/{app}/users/{user}",
            Route::Status => "GET  /v1/mfa/status",
            Route::Start => "POST /v1/mfa/enrollments",
            Route::Phone => "POST /v1/mfa/enrollments/{id}/phone",
            Route::Code => "POST /v1/mfa/enrollments/{id}/code",
        }
    }

    fn expected(self) -> u16 {
        match self {
            Route::Start => 201,
            Route::Phone => 202,
            _ => 200,
        }
    }
}

/// A user who completed an enrollment: checked again after the run.
struct Enrolled {
    user: String,
    token: String,
    number: String,
}

/// What one simulated user saw; merged at the end.
#[derive(Default)]
struct Tally {
    latencies: BTreeMap<Route, Vec<Duration>>,
    statuses: BTreeMap<Route, BTreeMap<u16, usize>>,
    /// Answers other than the step's success, and requests without an answer.
    unexpected: Vec<String>,
    server_errors: usize,
    /// Every phone submitted, with whether it was accepted (`None`: no answer).
    sends: Vec<(String, Option<bool>)>,
    completed: Vec<Enrolled>,
    /// From the `202` of the phone step to the code in hand (not part of any latency).
    text_waits: Vec<Duration>,
    iterations: usize,
    confirmation_failed: usize,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        for (r, v) in o.latencies {
            self.latencies.entry(r).or_default().extend(v);
        }
        for (r, m) in o.statuses {
            let e = self.statuses.entry(r).or_default();
            for (s, n) in m {
                *e.entry(s).or_default() += n;
            }
        }
        self.unexpected.extend(o.unexpected);
        self.server_errors += o.server_errors;
        self.sends.extend(o.sends);
        self.completed.extend(o.completed);
        self.text_waits.extend(o.text_waits);
        self.iterations += o.iterations;
        self.confirmation_failed += o.confirmation_failed;
    }
}

// ---------------------------------------------------------------------------------------------
// Phone numbers: unique within a run, and apart from the other tests' +1 415 555 xxxx

/// `+1 415 XXX NNNN` for exchanges 200–999 except N11 and 555, from a random block per run, so
/// that runs against one long-lived moto rarely meet (and the cursor tells them apart anyway).
struct Numbers {
    exchanges: Vec<u32>,
    start: usize,
}

impl Numbers {
    fn new() -> Numbers {
        let exchanges: Vec<u32> = (200..1000).filter(|e| e % 100 != 11 && *e != 555).collect();
        let start = (getrandom::u64().unwrap() % exchanges.len() as u64) as usize;
        Numbers { exchanges, start }
    }

    fn get(&self, n: usize) -> String {
        let exchange = self.exchanges[(self.start + n / 10_000) % self.exchanges.len()];
        format!("+1415{exchange:03}{:04}", n % 10_000)
    }
}

/// The contract's mask: `+`, the calling code, a `•` for each hidden digit, the last four.
fn masked_us(e164: &str) -> String {
    format!("+1{}{}", "•".repeat(6), &e164[e164.len() - 4..])
}

// ---------------------------------------------------------------------------------------------
// Texts: where each user's code comes from

/// Texts seen so far, by number, with waiters woken on each arrival.
struct Texts {
    book: Mutex<Book>,
    arrived: Notify,
    /// Memory backend: the outbox to fetch from; moto: `None` (the tap pushes).
    outbox: Option<(String, reqwest::Client)>,
}

#[derive(Default)]
struct Book {
    by_number: HashMap<String, Vec<String>>,
    /// Texts of the outbox already read (it only grows).
    cursor: usize,
    fetching: bool,
    last_fetch: Option<Instant>,
    fetches: usize,
    fetch_errors: Vec<String>,
}

impl Texts {
    fn new(outbox: Option<(String, reqwest::Client)>) -> Texts {
        Texts {
            book: Mutex::default(),
            arrived: Notify::new(),
            outbox,
        }
    }

    fn record(&self, number: &str, body: &str) {
        self.book
            .lock()
            .unwrap()
            .by_number
            .entry(number.to_owned())
            .or_default()
            .push(body.to_owned());
        self.arrived.notify_waiters();
    }

    /// The `nth` text (0-based) to `number`, waiting for it at most `timeout`.
    async fn wait(&self, number: &str, nth: usize, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            // Registered before the book is read, so no arrival in between is missed.
            let arrived = self.arrived.notified();
            let now = Instant::now();
            let fetch = {
                let mut b = self.book.lock().unwrap();
                if let Some(t) = b.by_number.get(number).and_then(|v| v.get(nth)) {
                    return Ok(t.clone());
                }
                if now >= deadline {
                    return Err(format!(
                        "no text to {number} within {timeout:?} (outbox errors: {})",
                        b.fetch_errors.join("; ")
                    ));
                }
                // At most one outbox read at a time; the others wait for its result.
                let fetch = self.outbox.is_some() && !b.fetching;
                if fetch {
                    b.fetching = true;
                }
                fetch
            };
            if fetch {
                self.fetch_outbox().await;
            } else {
                let _ = tokio::time::timeout(deadline - now, arrived).await;
            }
        }
    }

    /// One outbox read for everyone waiting; only the texts past the cursor are new.
    async fn fetch_outbox(&self) {
        let Some((url, http)) = &self.outbox else {
            return;
        };
        let last = self.book.lock().unwrap().last_fetch;
        if let Some(last) = last {
            tokio::time::sleep_until((last + OUTBOX_MIN_INTERVAL).into()).await;
        }
        let got = async {
            let r = http.get(url).send().await.map_err(|e| e.to_string())?;
            r.json::<Value>().await.map_err(|e| e.to_string())
        }
        .await;
        {
            let mut b = self.book.lock().unwrap();
            b.fetching = false;
            b.last_fetch = Some(Instant::now());
            b.fetches += 1;
            match got {
                Ok(o) => {
                    let sms = o["sms"].as_array().map_or(&[][..], Vec::as_slice);
                    for m in sms.iter().skip(b.cursor) {
                        let to = m["to"].as_str().unwrap_or_default().to_owned();
                        let body = m["body"].as_str().unwrap_or_default().to_owned();
                        b.by_number.entry(to).or_default().push(body);
                    }
                    b.cursor = b.cursor.max(sms.len());
                }
                Err(e) => b.fetch_errors.push(e),
            }
        }
        self.arrived.notify_waiters();
    }
}

// ---------------------------------------------------------------------------------------------
// The SNS tap (moto backend): the AWS proxy (`aws_proxy`) in front of moto, whose observer
// notes each successful SNS `Publish` to a phone number.

/// `Action=Publish&PhoneNumber=...&Message=...` (SNS's query protocol): the number and text.
fn published_sms(body: &[u8]) -> Option<(String, String)> {
    let fields = form_fields(body);
    if fields.get("Action").map(String::as_str) != Some("Publish") {
        return None;
    }
    Some((
        fields.get("PhoneNumber")?.clone(),
        fields.get("Message")?.clone(),
    ))
}

// ---------------------------------------------------------------------------------------------
// The simulated users

struct Ctx {
    base: String,
    http: reqwest::Client,
    app: String,
    admin: String,
    hash: String,
    jwt_secret: String,
    run: String,
    next: AtomicUsize,
    numbers: Numbers,
    texts: Arc<Texts>,
    deadline: Instant,
}

/// A local end-user token, signed as `mfa-local token` signs it (HS256 with
/// `MFA_LOCAL_JWT_SECRET`), without a process per user.
fn user_token(secret: &str, user: &str, app: &str) -> String {
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({"iss": "mfa-local", "sub": user, "app_id": app, "iat": iat, "exp": iat + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The secret `mfa-local` verifies tokens with (as it reads it).
fn jwt_secret() -> String {
    std::env::var("MFA_LOCAL_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local-dev-secret".to_owned())
}

impl Ctx {
    /// One timed request: its status and JSON body, or why there was no answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value, Duration), String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let t0 = Instant::now();
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let took = t0.elapsed();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, json, took))
    }

    /// A step of the flow: timed and tallied; `Some(body)` when it answered its success.
    async fn step(
        &self,
        tally: &mut Tally,
        route: Route,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        match self.call(method, path, token, body).await {
            Err(e) => {
                tally
                    .unexpected
                    .push(format!("{}: no answer: {e}", route.label()));
                None
            }
            Ok((status, json, took)) => {
                tally.latencies.entry(route).or_default().push(took);
                *tally
                    .statuses
                    .entry(route)
                    .or_default()
                    .entry(status)
                    .or_default() += 1;
                if status >= 500 {
                    tally.server_errors += 1;
                }
                if status != route.expected() {
                    tally
                        .unexpected
                        .push(format!("{} answered {status}: {json}", route.label()));
                }
                Some((status, json))
            }
        }
    }

    /// One whole enrollment of a fresh user; `None` as soon as a step goes wrong.
    async fn iteration(&self, tally: &mut Tally) -> Option<()> {
        use reqwest::Method;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let user = format!("load-{}-{n}", self.run);
        let number = self.numbers.get(n);
        let token = user_token(&self.jwt_secret, &user, &self.app);
        tally.iterations += 1;

        let body = json!({"email": format!("{user}@example.com"), "email_verified": true, "password_hash": self.hash});
        let path = format!("/v1/admin/applications/{}/users/{user}", self.app);
        let (s, _) = self
            .step(
                tally,
                Route::PutUser,
                Method::PUT,
                &path,
                &self.admin,
                Some(body),
            )
            .await?;
        (s == 200).then_some(())?;

        let (s, st) = self
            .step(
                tally,
                Route::Status,
                Method::GET,
                "/v1/mfa/status",
                &token,
                None,
            )
            .await?;
        (s == 200).then_some(())?;
        if st["prompt"] != "enroll" {
            tally
                .unexpected
                .push(format!("{user}: status before enrolling: {st}"));
            return None;
        }

        let body = json!({"password": PASSWORD});
        let (s, started) = self
            .step(
                tally,
                Route::Start,
                Method::POST,
                "/v1/mfa/enrollments",
                &token,
                Some(body),
            )
            .await?;
        (s == 201).then_some(())?;
        let id = started["enrollment_id"].as_str().unwrap_or_default();

        let body = json!({"phone_number": number, "label": "Mobile"});
        let path = format!("/v1/mfa/enrollments/{id}/phone");
        let sent = self
            .step(tally, Route::Phone, Method::POST, &path, &token, Some(body))
            .await;
        tally
            .sends
            .push((number.clone(), sent.as_ref().map(|(s, _)| *s == 202)));
        (sent?.0 == 202).then_some(())?;

        let t0 = Instant::now();
        let text = match self.texts.wait(&number, 0, TEXT_TIMEOUT).await {
            Ok(t) => t,
            Err(e) => {
                tally.unexpected.push(format!("{user}: {e}"));
                return None;
            }
        };
        tally.text_waits.push(t0.elapsed());
        let code = text.get(..6).unwrap_or_default();
        if code.len() != 6 || !code.bytes().all(|c| c.is_ascii_digit()) {
            tally
                .unexpected
                .push(format!("{user}: a text without a code first: {text:?}"));
            return None;
        }

        let path = format!("/v1/mfa/enrollments/{id}/code");
        let (s, done) = self
            .step(
                tally,
                Route::Code,
                Method::POST,
                &path,
                &token,
                Some(json!({"code": code})),
            )
            .await?;
        (s == 200).then_some(())?;
        if done["step"] != "complete" {
            tally
                .unexpected
                .push(format!("{user}: code accepted without completing: {done}"));
            return None;
        }
        if done["confirmation_email"] != "sent" {
            tally.confirmation_failed += 1;
        }
        tally.completed.push(Enrolled {
            user,
            token,
            number,
        });
        Some(())
    }

    /// One simulated user: iterations until the time is up.
    async fn user(self: Arc<Self>) -> Tally {
        let mut tally = Tally::default();
        while Instant::now() < self.deadline {
            let _ = self.iteration(&mut tally).await;
        }
        tally
    }

    /// After the run: the user's status shows it enrolled with exactly that phone.
    async fn check_enrolled(&self, e: &Enrolled) -> Result<(), String> {
        let (status, st, _) = self
            .call(reqwest::Method::GET, "/v1/mfa/status", &e.token, None)
            .await?;
        let phones = st["phones"].as_array().cloned().unwrap_or_default();
        let ok = status == 200
            && st["enrolled"] == true
            && phones.len() == 1
            && phones[0]["masked"] == masked_us(&e.number).as_str()
            && phones[0]["primary"] == true;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} completed an enrollment with {} but its status is {status} {st}",
                e.user,
                masked_us(&e.number)
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// Starts the server, runs the users for the duration, checks and reports.
pub async fn run(o: &Options) -> Report {
    assert!(o.users > 0, "at least one user");
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(o.users * 2)
        .build()
        .unwrap();

    // The server (and, on moto, the SNS tap in front of moto).
    let mut env: Vec<(String, String)> = SERVER_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (s, texts, proxy, moto_cursor) = match o.backend {
        Backend::Memory => {
            let s = LocalServer::memory(SERVER_ENV);
            let texts = Arc::new(Texts::new(Some((
                format!("{}/_local/outbox", s.base),
                http.clone(),
            ))));
            (s, texts, None, 0)
        }
        Backend::Moto => {
            let moto = crate::moto_url();
            let texts = Arc::new(Texts::new(None));
            let tap = texts.clone();
            let proxy = FaultProxy::with(
                &moto,
                ProxyOptions {
                    one_at_a_time: true,
                    timeout: Some(REQUEST_TIMEOUT),
                    observer: Some(Box::new(move |op, body| {
                        if op == "SNS.Publish"
                            && let Some((to, message)) = published_sms(body)
                        {
                            tap.record(&to, &message);
                        }
                    })),
                },
            );
            // Every AWS service through the tap (this overrides the harness's moto URL).
            env.push(("AWS_ENDPOINT_URL".into(), proxy.url.clone()));
            let cursor = moto_sms(&moto).await.len();
            let s = LocalServer::aws(Launch {
                env,
                bootstrap: true,
                ..Launch::default()
            });
            (s, texts, Some(proxy), cursor)
        }
    };

    let tenant = Tenant::set_up(&s, "optional").await;
    let ctx = Arc::new(Ctx {
        base: s.base.clone(),
        http,
        app: tenant.app.clone(),
        admin: tenant.admin.clone(),
        hash: hash_password(PASSWORD),
        jwt_secret: jwt_secret(),
        run: crate::unique(""),
        next: AtomicUsize::new(0),
        numbers: Numbers::new(),
        texts: texts.clone(),
        deadline: Instant::now() + o.duration,
    });

    // The load.
    let aws_calls = || proxy.as_ref().map(FaultProxy::calls).unwrap_or_default();
    let moto_busy = || proxy.as_ref().map(FaultProxy::busy).unwrap_or_default();
    let calls_before = aws_calls();
    let busy_before = moto_busy();
    let started = Instant::now();
    let users: Vec<_> = (0..o.users)
        .map(|_| tokio::spawn(ctx.clone().user()))
        .collect();
    let mut tally = Tally::default();
    for u in users {
        tally.merge(u.await.unwrap());
    }
    let elapsed = started.elapsed();
    let aws = proxy
        .is_some()
        .then(|| calls_since(&calls_before, aws_calls()));
    let moto_busy = moto_busy() - busy_before;

    // Every completed enrollment is there.
    let completed = Arc::new(std::mem::take(&mut tally.completed));
    let next = Arc::new(AtomicUsize::new(0));
    let checkers: Vec<_> = (0..o.users)
        .map(|_| {
            let (ctx, completed, next) = (ctx.clone(), completed.clone(), next.clone());
            tokio::spawn(async move {
                let mut missing = Vec::new();
                while let Some(e) = completed.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(m) = ctx.check_enrolled(e).await {
                        missing.push(m);
                    }
                }
                missing
            })
        })
        .collect();
    let mut missing = Vec::new();
    for c in checkers {
        missing.extend(c.await.unwrap());
    }

    // No text sent twice for one send: per number, texts == accepted sends.
    let submitted: HashSet<&str> = tally.sends.iter().map(|(n, _)| n.as_str()).collect();
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    for (n, ok) in &tally.sends {
        *accepted.entry(n.as_str()).or_default() += usize::from(*ok == Some(true));
    }
    let (record, recorded): (&str, Vec<(String, String)>) = match &s.moto {
        None => {
            let o = s.call("GET", "/_local/outbox", None, None).await.json;
            let sms = o["sms"].as_array().cloned().unwrap_or_default();
            let texts = sms
                .iter()
                .map(|m| (str_of(&m["to"]), str_of(&m["body"])))
                .collect();
            ("the outbox", texts)
        }
        Some(moto) => {
            let all = moto_sms(moto).await;
            (
                "moto's SNS record",
                all.into_iter().skip(moto_cursor).collect(),
            )
        }
    };
    let mut texted: HashMap<&str, usize> = HashMap::new();
    for (to, _) in &recorded {
        if submitted.contains(to.as_str()) {
            *texted.entry(to.as_str()).or_default() += 1;
        }
    }
    let mut send_problems = Vec::new();
    let mut numbers_ok = 0;
    for n in &submitted {
        let (sent, ok) = (
            texted.get(n).copied().unwrap_or(0),
            accepted.get(n).copied().unwrap_or(0),
        );
        if sent == ok {
            numbers_ok += 1;
        } else {
            send_problems.push(format!(
                "{n}: {sent} text(s) in {record} for {ok} accepted send(s)"
            ));
        }
    }
    if s.moto.is_none() {
        // The outbox is this run's alone: every text in it went to a number submitted here.
        let stray = recorded
            .iter()
            .filter(|(to, _)| !submitted.contains(to.as_str()))
            .count();
        if stray > 0 {
            send_problems.push(format!(
                "{stray} text(s) in the outbox to numbers never submitted"
            ));
        }
    }
    if proxy.is_some() {
        // The tap saw exactly what moto recorded.
        let book = texts.book.lock().unwrap();
        for n in &submitted {
            let tapped = book.by_number.get(*n).map_or(0, Vec::len);
            let sent = texted.get(n).copied().unwrap_or(0);
            if tapped != sent {
                send_problems.push(format!(
                    "{n}: the SNS tap saw {tapped} publish(es), moto recorded {sent}"
                ));
            }
        }
    }
    drop(proxy);
    send_problems.sort();
    missing.sort();

    // The verdict.
    let mut problems = Vec::new();
    if tally.server_errors > 0 {
        problems.push(format!("{} answer(s) were 5xx", tally.server_errors));
    }
    if !tally.unexpected.is_empty() {
        problems.push(format!(
            "{} unexpected answer(s) or failed step(s)",
            tally.unexpected.len()
        ));
    }
    if completed.is_empty() {
        problems.push("no enrollment completed".into());
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} completed enrollment(s) missing afterwards",
            missing.len()
        ));
    }
    if !send_problems.is_empty() {
        problems.push(format!(
            "{} number(s) whose texts differ from their accepted sends",
            send_problems.len()
        ));
    }
    if tally.confirmation_failed > 0 {
        problems.push(format!(
            "{} enrollment(s) answered confirmation_email: failed",
            tally.confirmation_failed
        ));
    }

    let requests: usize = tally.latencies.values().map(Vec::len).sum();
    let fetches = texts.book.lock().unwrap().fetches;
    let text = render(&RenderInput {
        o,
        elapsed,
        tally: &tally,
        completed: completed.len(),
        requests,
        missing: &missing,
        submitted: submitted.len(),
        numbers_ok,
        send_problems: &send_problems,
        record,
        problems: &problems,
        fetches,
        aws: aws.as_ref(),
        moto_busy,
    });
    Report {
        text,
        problems,
        enrollments: completed.len(),
        requests,
    }
}

/// `after` less `before`, operation by operation.
fn calls_since(before: &AwsCalls, mut after: AwsCalls) -> AwsCalls {
    for (op, (n, failures)) in before {
        if let Some((m, f)) = after.get_mut(op) {
            *m -= n;
            for (code, k) in failures {
                if let Some(x) = f.get_mut(code) {
                    *x -= k;
                }
            }
            f.retain(|_, k| *k > 0);
        }
    }
    after.retain(|_, (n, _)| *n > 0);
    after
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// moto's texts so far (`sns.SMS`, in the order sent) as (number, message).
async fn moto_sms(moto: &str) -> Vec<(String, String)> {
    let d = moto_data(moto).await;
    d["sns"]["SMS"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| (str_of(&m["phone_number"]), str_of(&m["message"])))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report

struct RenderInput<'a> {
    o: &'a Options,
    elapsed: Duration,
    tally: &'a Tally,
    completed: usize,
    requests: usize,
    missing: &'a [String],
    submitted: usize,
    numbers_ok: usize,
    send_problems: &'a [String],
    record: &'a str,
    problems: &'a [String],
    fetches: usize,
    /// moto: the AWS calls made during the load (not the set-up or the checks).
    aws: Option<&'a AwsCalls>,
    /// moto: how long it was answering the tap during the load.
    moto_busy: Duration,
}

/// Nearest-rank percentile of sorted durations, in milliseconds.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn latency_row(out: &mut String, label: &str, v: &[Duration], secs: f64, statuses: &str) {
    let mut v = v.to_vec();
    v.sort();
    let _ = writeln!(
        out,
        "  {label:<48} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {statuses}",
        v.len(),
        v.len() as f64 / secs,
        pct(&v, 50.0),
        pct(&v, 99.0),
        ms(v.last().copied().unwrap_or_default()),
    );
}

/// Up to `max` lines of a list, then how many more.
fn list(out: &mut String, items: &[String], max: usize) {
    for i in items.iter().take(max) {
        let _ = writeln!(out, "    - {i}");
    }
    if items.len() > max {
        let _ = writeln!(out, "    … and {} more", items.len() - max);
    }
}

fn render(r: &RenderInput<'_>) -> String {
    let (o, t) = (r.o, r.tally);
    let secs = r.elapsed.as_secs_f64().max(f64::EPSILON);
    let server = mfa_local_bin();
    let profile = if server.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "debug"
    };
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mfa load test: {} backend, {} users, {} s (ran {secs:.1} s: in-flight iterations finish)",
        o.backend.name(),
        o.users,
        o.duration.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "  server: {} ({profile} build), {} cores; driver: {} build; server env: {}",
        server.display(),
        cores,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        SERVER_ENV
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let _ = writeln!(
        out,
        "  enrollments completed: {} of {} started ({:.1}/s); requests: {} ({:.1} req/s)",
        r.completed,
        t.iterations,
        r.completed as f64 / secs,
        r.requests,
        r.requests as f64 / secs,
    );
    let _ = writeln!(
        out,
        "\n  {:<48} {:>7} {:>8} {:>8} {:>8} {:>8}  statuses",
        "route (latency in ms)", "count", "req/s", "p50", "p99", "max"
    );
    let mut all = Vec::new();
    for route in ROUTES {
        let v = t.latencies.get(&route).cloned().unwrap_or_default();
        let statuses = t
            .statuses
            .get(&route)
            .map(|m| {
                m.iter()
                    .map(|(s, n)| format!("{s}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        latency_row(&mut out, route.label(), &v, secs, &statuses);
        all.extend(v);
    }
    latency_row(&mut out, "all requests", &all, secs, "");
    let mut waits = t.text_waits.clone();
    waits.sort();
    let _ = writeln!(
        out,
        "  (not in the latencies: 202 → code in hand p50 {:.1} ms, p99 {:.1} ms; {})",
        pct(&waits, 50.0),
        pct(&waits, 99.0),
        if r.fetches > 0 {
            format!("{} outbox reads", r.fetches)
        } else {
            "texts from the SNS tap in front of moto".to_owned()
        },
    );
    if let Some(aws) = r.aws {
        let total: usize = aws.values().map(|(n, _)| n).sum();
        let per = |n: usize| n as f64 / (r.completed.max(1)) as f64;
        let _ = writeln!(
            out,
            "\n  AWS calls during the load (through the tap in front of moto): {total}, {:.1} per completed enrollment;\n  moto was answering {:.0}% of the time ({:.1} ms per call)",
            per(total),
            100.0 * r.moto_busy.as_secs_f64() / secs,
            ms(r.moto_busy) / total.max(1) as f64,
        );
        for (op, (n, failures)) in aws {
            let failures = failures
                .iter()
                .map(|(c, k)| format!("{c}×{k}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                out,
                "    {op:<46} {n:>7} {:>6.2}/enrollment  {failures}",
                per(*n)
            );
        }
    }

    let _ = writeln!(out, "\n  checks:");
    let _ = writeln!(out, "    5xx answers: {}", t.server_errors);
    let _ = writeln!(
        out,
        "    unexpected answers or failed steps: {}",
        t.unexpected.len()
    );
    list(&mut out, &t.unexpected, 20);
    let _ = writeln!(
        out,
        "    completed enrollments present afterwards (enrolled, that phone, masked): {} of {}",
        r.completed - r.missing.len(),
        r.completed
    );
    list(&mut out, r.missing, 20);
    let _ = writeln!(
        out,
        "    numbers whose texts in {} equal their accepted sends: {} of {}",
        r.record, r.numbers_ok, r.submitted
    );
    list(&mut out, r.send_problems, 20);
    let _ = writeln!(
        out,
        "    confirmation emails not sent: {}",
        t.confirmation_failed
    );
    if r.problems.is_empty() {
        let _ = writeln!(out, "  verdict: correct");
    } else {
        let _ = writeln!(out, "  verdict: {} problem(s)", r.problems.len());
        list(&mut out, r.problems, 20);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_proxy::{aws_error, operation as aws_operation};

    #[test]
    fn numbers_are_unique_valid_looking_and_apart_from_415_555() {
        let n = Numbers::new();
        let all: HashSet<String> = (0..30_000).map(|i| n.get(i)).collect();
        assert_eq!(all.len(), 30_000);
        for x in &all {
            assert_eq!(x.len(), 12, "{x}");
            assert!(!x.starts_with("+1415555"), "{x}");
            assert!(matches!(x.as_bytes()[5], b'2'..=b'9'), "{x}");
        }
        assert_eq!(masked_us("+14152220123"), "+1••••••0123");
    }

    #[test]
    fn an_sns_publish_is_read_from_its_form_body() {
        let body = b"Action=Publish&Version=2010-03-31&PhoneNumber=%2B14152220123&Message=123456+is+your+code%3A+%E2%80%A2";
        assert_eq!(
            published_sms(body),
            Some(("+14152220123".into(), "123456 is your code: •".into()))
        );
        assert_eq!(published_sms(b"Action=ListTopics"), None);
    }

    #[test]
    fn aws_calls_are_named_by_operation_and_failures_by_code() {
        use axum::http::{HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.UpdateItem"),
        );
        assert_eq!(aws_operation(&h, "POST", "/", b"{}"), "DynamoDB.UpdateItem");
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert_eq!(
            aws_operation(&h, "POST", "/", b"Action=Publish&Message=x"),
            "SNS.Publish"
        );
        assert_eq!(
            aws_operation(
                &HeaderMap::new(),
                "POST",
                "/v2/email/outbound-emails?x=1",
                b"{}"
            ),
            "POST /v2/email/outbound-emails"
        );
        let ccf =
            br#"{"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#;
        assert_eq!(aws_error(400, ccf), "ConditionalCheckFailedException");
        assert_eq!(
            aws_error(400, b"<Error><Code>Throttling</Code></Error>"),
            "Throttling"
        );
        assert_eq!(aws_error(500, b"oops"), "500");

        let before: AwsCalls = [("A".to_owned(), (2, [("x".to_owned(), 1)].into()))].into();
        let after: AwsCalls = [
            ("A".to_owned(), (5, [("x".to_owned(), 1)].into())),
            ("B".to_owned(), (1, BTreeMap::new())),
        ]
        .into();
        let since = calls_since(&before, after);
        assert_eq!(since["A"], (3, BTreeMap::new()));
        assert_eq!(since["B"].0, 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct(&v, 50.0), 50.0);
        assert_eq!(pct(&v, 99.0), 99.0);
        assert_eq!(pct(&v[..1], 99.0), 1.0);
    }
}
