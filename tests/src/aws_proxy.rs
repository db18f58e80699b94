//! A fault-injecting proxy in front of the emulator: it forwards every AWS call to moto except
//! those a rule matches, which get the answer AWS gives when it throttles, fails or meets a
//! transaction, or whose answer is lost or late after moto applied them. Pointing one
//! service's endpoint (`AWS_ENDPOINT_URL_DYNAMODB`, `_SNS`, ...) at it shows what the real SDK
//! clients, with their real retry policy and timeouts, make of it.
//!
//! A rule names an operation (the `X-Amz-Target` suffix such as `UpdateItem`, or the query
//! `Action` such as `Publish`), optionally text the request body must contain, and optionally
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
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

/// A running proxy; it serves until the test process ends.
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (moto's URL) on a free loopback port, on a thread of its
    /// own: the tests block their own thread while `mfa-local` starts up through it.
    pub fn start(upstream: &str) -> FaultProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_end_matches('/').to_owned();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = reqwest::Client::new();
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let (state, client, upstream) =
                            (Arc::clone(&shared), client.clone(), upstream.clone());
                        async move {
                            handle(&state, &client, &upstream, method, uri, headers, body).await
                        }
                    },
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        FaultProxy { url, state }
    }

    /// Fails every call of `operation` whose body contains `body_contains` (when given).
    pub fn fail(&self, operation: &str, body_contains: Option<&str>, fault: Fault) {
        self.state.lock().unwrap().rules.push(Rule {
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
        self.state.lock().unwrap().rules.push(Rule {
            operation: operation.to_owned(),
            body_contains: body_contains.map(str::to_owned),
            fault,
            times: Some(times),
        });
    }

    /// Lets every call through again.
    pub fn heal(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// How many calls of `operation` were failed so far.
    pub fn failed(&self, operation: &str) -> u32 {
        let state = self.state.lock().unwrap();
        state.failed.get(operation).copied().unwrap_or(0)
    }
}

/// The operation of an AWS call: JSON protocols name it in `X-Amz-Target`, the query protocol
/// (SNS) in the form body's `Action`.
fn operation(headers: &HeaderMap, body: &str) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    body.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("")
        .to_owned()
}

/// The answer of a fault that forwards nothing (to the request `body`); `None` for those that
/// forward.
fn fault_response(fault: Fault, body: &str) -> Option<Response> {
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
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            r#"{"__type":"InternalFailure","message":"injected"}"#,
        ),
    };
    Some(
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("x-amzn-requestid", "fault-proxy")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
}

async fn handle(
    state: &Mutex<State>,
    client: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    let op = operation(&headers, &text);
    let hit = {
        let mut state = state.lock().unwrap();
        let fault = state
            .rules
            .iter_mut()
            .find(|r| {
                r.operation == op
                    && r.times != Some(0)
                    && r.body_contains
                        .as_deref()
                        .is_none_or(|needle| text.contains(needle))
            })
            .map(|r| {
                if let Some(n) = &mut r.times {
                    *n -= 1;
                }
                r.fault
            });
        if fault.is_some() {
            *state.failed.entry(op.clone()).or_default() += 1;
        }
        fault
    };
    let hold = match hit {
        Some(Fault::LoseAnswer) => Some(LOST_ANSWER_HOLD),
        Some(Fault::DelayAnswer(d)) => Some(d),
        Some(fault) => return fault_response(fault, &text).unwrap(),
        None => None,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        format!("{upstream}{path}"),
    );
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name.as_str(), value.as_bytes());
        }
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(_) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::empty())
                .unwrap();
        }
    };
    let mut out = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let body = resp.bytes().await.unwrap_or_default();
    // Applied upstream; the answer comes late (or, past the caller's timeout, never).
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    out.body(Body::from(body)).unwrap()
}
