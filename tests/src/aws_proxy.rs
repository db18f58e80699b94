//! The one forwarding proxy in front of the emulator, for faults and for counting calls. It
//! forwards every AWS call to moto, counts the calls by operation and their failures by error
//! code ([`FaultProxy::calls`]), can pass one call at a time to moto and tell how long moto was
//! answering ([`ProxyOptions`], as the load test asks), and hands every successful call to an
//! observer (the load test's SNS tap). Except for the calls a rule matches, which get the answer AWS gives when it throttles, fails or meets a
//! transaction, or whose answer is lost or late after moto applied them. Pointing one
//! service's endpoint (`AWS_ENDPOINT_URL_DYNAMODB`, `_SNS`, ...) at it shows what the real SDK
//! clients, with their real retry policy and timeouts, make of it.
//!
//! A rule names an operation (the `X-Amz-Target` suffix such as `UpdateItem`, the query
//! `Action` such as `Publish`, or a REST API's method and path such as SES v2's
//! `POST /v2/email/outbound-emails`), optionally text the request body must contain, and optionally
//! how many matching calls it applies to ([`FaultProxy::fail_times`]): a fault on the first
//! call only lets the SDK's retry through.
//!
//! An SNS publish whose outcome is unknown (sent to SNS, the answer never seen):
//!
//! ```ignore
//! let (s, proxy) = behind_proxy("SNS", &[]);          // AWS_ENDPOINT_URL_SNS = proxy.url
//! proxy.fail_times("Publish", None, Fault::LoseAnswer, 1);
//! // The text reaches moto (`/moto-api/data.json` lists it); the SDK's attempt times out
//! // (3 s) and it tries again, so the user may get it twice, as with a real timeout.
//! proxy.fail_times("Publish", None, Fault::LoseAnswer, 3); // every attempt: the call fails
//! ```
//!
//! [`Fault::DelayAnswer`] holds an answer for a chosen time instead (past the attempt timeout
//! is a lost answer; under it, a slow one).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;

/// How long [`Fault::LoseAnswer`] holds an answer: past the service's 3 s attempt timeout
/// (`adapters::aws::sdk_config`), so the SDK gives the attempt up and retries.
pub const LOST_ANSWER_HOLD: Duration = Duration::from_secs(8);

/// What a matched call answers.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// DynamoDB's `ProvisionedThroughputExceededException` (400).
    DynamoThrottled,
    /// DynamoDB's `TransactionConflictException` (400): a single-item write (UpdateItem,
    /// PutItem, DeleteItem) met an item inside another transaction. Nothing is forwarded.
    DynamoTransactionConflict,
    /// A TransactWriteItems cancelled by conflicts alone (`TransactionCanceledException`,
    /// every item's reason `TransactionConflict`), as DynamoDB answers a transaction that met
    /// another one. Nothing is forwarded.
    DynamoTransactionCanceledByConflict,
    /// SNS's `Throttling` (400, query protocol XML).
    SnsThrottled,
    /// SNS's `InvalidParameter` (400, query protocol XML): a refusal of the request itself,
    /// which the SDK does not retry.
    SnsInvalidParameter,
    /// A bare 500 from any service.
    ServerError,
    /// The call is forwarded (moto applies it) and its answer is then held for
    /// [`LOST_ANSWER_HOLD`], past the SDK's attempt timeout: to the caller, the answer is
    /// lost, as with a timeout or a reset connection after the request was sent.
    LoseAnswer,
    /// The call is forwarded and its answer held this long before it is given.
    DelayAnswer(Duration),
}

/// A call to fail: its operation (the `X-Amz-Target` suffix such as `UpdateItem`, or the query
/// `Action` such as `Publish`) and, optionally, text its body must contain.
#[derive(Clone, Debug)]
struct Rule {
    operation: String,
    body_contains: Option<String>,
    fault: Fault,
    /// Matching calls this rule still applies to (`None`: all).
    times: Option<u32>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Calls failed, by operation.
    failed: HashMap<String, u32>,
}

/// Calls by operation (`DynamoDB.UpdateItem`, `SNS.Publish`, ...), and their failures by error
/// code.
pub type AwsCalls = BTreeMap<String, (usize, BTreeMap<String, usize>)>;

/// Called with the operation and the request body of each call that succeeded.
pub type Observer = Box<dyn Fn(&str, &[u8]) + Send + Sync>;

/// How the proxy forwards.
#[derive(Default)]
pub struct ProxyOptions {
    /// Forward one call at a time (moto is not thread-safe under load: see `load`).
    pub one_at_a_time: bool,
    /// Give up on moto's answer after this long (a `502`).
    pub timeout: Option<Duration>,
    /// Sees every successful call.
    pub observer: Option<Observer>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    state: Mutex<State>,
    calls: Mutex<AwsCalls>,
    one_at_a_time: Option<tokio::sync::Mutex<()>>,
    /// Time spent waiting for moto's answers, in microseconds.
    busy_micros: AtomicUsize,
    observer: Option<Observer>,
}

/// A running proxy; it serves, on a thread of its own, until it is dropped.
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (moto's URL) on a free loopback port, forwarding calls as
    /// they come.
    pub fn start(upstream: &str) -> FaultProxy {
        FaultProxy::with(upstream, ProxyOptions::default())
    }

    /// Starts a proxy to `upstream` on a free loopback port, on a thread of its own: the tests
    /// block their own thread while `mfa-local` starts up through it.
    pub fn with(upstream: &str, options: ProxyOptions) -> FaultProxy {
        let mut client = reqwest::Client::builder();
        if let Some(t) = options.timeout {
            client = client.timeout(t);
        }
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: client.build().unwrap(),
            state: Mutex::default(),
            calls: Mutex::default(),
            one_at_a_time: options.one_at_a_time.then(|| tokio::sync::Mutex::new(())),
            busy_micros: AtomicUsize::new(0),
            observer: options.observer,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let shared = Arc::clone(&serving);
                        async move { handle(&shared, method, uri, headers, body).await }
                    },
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let serve = axum::serve(listener, app).into_future();
                // Dropped: stop serving (open connections end with the thread).
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        FaultProxy {
            url,
            shared,
            stop: Some(stop),
        }
    }

    /// The calls so far, by operation.
    pub fn calls(&self) -> AwsCalls {
        self.shared.calls.lock().unwrap().clone()
    }

    /// How long moto has spent answering so far.
    pub fn busy(&self) -> Duration {
        let micros = self.shared.busy_micros.load(Ordering::Relaxed);
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Fails every call of `operation` whose body contains `body_contains` (when given).
    pub fn fail(&self, operation: &str, body_contains: Option<&str>, fault: Fault) {
        self.shared.state.lock().unwrap().rules.push(Rule {
            operation: operation.to_owned(),
            body_contains: body_contains.map(str::to_owned),
            fault,
            times: None,
        });
    }

    /// Applies `fault` to the next `times` calls of `operation` whose body contains
    /// `body_contains` (when given); later ones go through.
    pub fn fail_times(
        &self,
        operation: &str,
        body_contains: Option<&str>,
        fault: Fault,
        times: u32,
    ) {
        self.shared.state.lock().unwrap().rules.push(Rule {
            operation: operation.to_owned(),
            body_contains: body_contains.map(str::to_owned),
            fault,
            times: Some(times),
        });
    }

    /// Lets every call through again.
    pub fn heal(&self) {
        self.shared.state.lock().unwrap().rules.clear();
    }

    /// How many calls of `operation` were failed so far.
    pub fn failed(&self, operation: &str) -> u32 {
        let state = self.shared.state.lock().unwrap();
        state.failed.get(operation).copied().unwrap_or(0)
    }
}

/// The AWS operation a request names: the JSON protocols' `X-Amz-Target` (DynamoDB's as
/// `DynamoDB.UpdateItem`), the query protocol's `Action` (SNS, as `SNS.Publish`), otherwise the
/// REST method and path (SES v2).
pub fn operation(headers: &HeaderMap, method: &str, path: &str, body: &[u8]) -> String {
    if let Some(t) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return match t.split_once('.') {
            Some((service, op)) if service.starts_with("DynamoDB") => format!("DynamoDB.{op}"),
            _ => t.to_owned(),
        };
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form && let Some(action) = form_fields(body).remove("Action") {
        return format!("SNS.{action}");
    }
    let path = path.split('?').next().unwrap_or_default();
    format!("{method} {path}")
}

/// An AWS error answer's code: JSON `__type` (after any `#`), XML `<Code>`, else the status.
pub fn aws_error(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(t) = v["__type"].as_str()
    {
        return t.rsplit('#').next().unwrap_or(t).to_owned();
    }
    if let Some((_, rest)) = text.split_once("<Code>")
        && let Some((code, _)) = rest.split_once("</Code>")
    {
        return code.to_owned();
    }
    status.to_string()
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub fn form_fields(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (form_decode(k), form_decode(v)))
        .collect()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |i: usize| {
        b.get(i)
            .and_then(|c| char::from(*c).to_digit(16))
            .map(|d| d as u8)
    };
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b'%', Some(h), Some(l)) => {
                out.push((h << 4) | l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer of a fault that forwards nothing (to the request `body`): status, content type
/// and body; `None` for those that forward.
fn fault_response(fault: Fault, body: &str) -> Option<(StatusCode, &'static str, String)> {
    let cancelled;
    let (status, content_type, body) = match fault {
        Fault::LoseAnswer | Fault::DelayAnswer(_) => return None,
        Fault::DynamoTransactionCanceledByConflict => {
            let items = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1);
            let reasons: Vec<serde_json::Value> = (0..items)
                .map(|_| serde_json::json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}))
                .collect();
            cancelled = serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                "CancellationReasons": reasons,
            })
            .to_string();
            (
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.0",
                cancelled.as_str(),
            )
        }
        Fault::DynamoThrottled => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#,
        ),
        Fault::DynamoTransactionConflict => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#,
        ),
        Fault::SnsThrottled => (
            StatusCode::BAD_REQUEST,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
        ),
        Fault::SnsInvalidParameter => (
            StatusCode::BAD_REQUEST,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Invalid parameter: PhoneNumber Reason: not a reachable number</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
        ),
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            r#"{"__type":"InternalFailure","message":"injected"}"#,
        ),
    };
    Some((status, content_type, body.to_owned()))
}

impl Shared {
    /// The fault for this call, if a rule matches it (a rule names the operation's last part:
    /// `UpdateItem` for `DynamoDB.UpdateItem`, `Publish` for `SNS.Publish`).
    fn fault_for(&self, op: &str, body: &str) -> Option<Fault> {
        let name = op.rsplit('.').next().unwrap_or(op);
        let mut state = self.state.lock().unwrap();
        let (operation, fault) = state
            .rules
            .iter_mut()
            .find(|r| {
                r.operation == name
                    && r.times != Some(0)
                    && r.body_contains
                        .as_deref()
                        .is_none_or(|needle| body.contains(needle))
            })
            .map(|r| {
                if let Some(n) = &mut r.times {
                    *n -= 1;
                }
                (r.operation.clone(), r.fault)
            })?;
        *state.failed.entry(operation).or_default() += 1;
        Some(fault)
    }

    fn count(&self, op: &str, status: StatusCode, answer: &[u8]) {
        let mut calls = self.calls.lock().unwrap();
        let entry = calls.entry(op.to_owned()).or_default();
        entry.0 += 1;
        if !status.is_success() {
            *entry
                .1
                .entry(aws_error(status.as_u16(), answer))
                .or_default() += 1;
        }
    }
}

fn bad_gateway(why: String) -> Response {
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(Body::from(why))
        .unwrap()
}

async fn handle(
    shared: &Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let op = operation(&headers, method.as_str(), path, &body);
    let text = String::from_utf8_lossy(&body);
    let hold = match shared.fault_for(&op, &text) {
        Some(Fault::LoseAnswer) => Some(LOST_ANSWER_HOLD),
        Some(Fault::DelayAnswer(d)) => Some(d),
        Some(fault) => {
            let (status, content_type, answer) = fault_response(fault, &text).unwrap();
            shared.count(&op, status, answer.as_bytes());
            return Response::builder()
                .status(status)
                .header("content-type", content_type)
                .header("x-amzn-requestid", "fault-proxy")
                .body(Body::from(answer))
                .unwrap();
        }
        None => None,
    };
    let mut req = shared
        .client
        .request(method, format!("{}{path}", shared.upstream));
    for (name, value) in &headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            req = req.header(name, value);
        }
    }
    let one = match &shared.one_at_a_time {
        Some(m) => Some(m.lock().await),
        None => None,
    };
    let t0 = Instant::now();
    let resp = match req.body(body.clone()).send().await {
        Ok(r) => r,
        Err(e) => return bad_gateway(e.to_string()),
    };
    let status = resp.status();
    let answer_headers = resp.headers().clone();
    let Ok(answer) = resp.bytes().await else {
        return bad_gateway("the answer broke off".into());
    };
    let busy = usize::try_from(t0.elapsed().as_micros()).unwrap_or(usize::MAX);
    shared.busy_micros.fetch_add(busy, Ordering::Relaxed);
    drop(one);
    shared.count(&op, status, &answer);
    if status.is_success()
        && let Some(observe) = &shared.observer
    {
        observe(&op, &body);
    }
    let mut out = Response::new(Body::from(answer));
    *out.status_mut() = status;
    for (name, value) in &answer_headers {
        if name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
            && name != header::CONNECTION
        {
            out.headers_mut().append(name, value.clone());
        }
    }
    // Applied upstream; the answer comes late (or, past the caller's timeout, never).
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    out
}
