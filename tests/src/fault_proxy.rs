//! A fault-injecting proxy in front of the emulator: it forwards every AWS call to moto except
//! those a rule matches, which get the answer AWS gives when it throttles (or fails). Pointing
//! one service's endpoint (`AWS_ENDPOINT_URL_DYNAMODB`, `_SNS`, ...) at it shows what the
//! real SDK clients, with their real retry policy, make of a throttled DynamoDB or SNS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

/// What a matched call answers.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// DynamoDB's `ProvisionedThroughputExceededException` (400).
    DynamoThrottled,
    /// SNS's `Throttling` (400, query protocol XML).
    SnsThrottled,
    /// A bare 500 from any service.
    ServerError,
}

/// A call to fail: its operation (the `X-Amz-Target` suffix such as `UpdateItem`, or the query
/// `Action` such as `Publish`) and, optionally, text its body must contain.
#[derive(Clone, Debug)]
struct Rule {
    operation: String,
    body_contains: Option<String>,
    fault: Fault,
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

fn fault_response(fault: Fault) -> Response {
    let (status, content_type, body) = match fault {
        Fault::DynamoThrottled => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#,
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
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", "fault-proxy")
        .body(Body::from(body))
        .unwrap()
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
            .iter()
            .find(|r| {
                r.operation == op
                    && r.body_contains
                        .as_deref()
                        .is_none_or(|needle| text.contains(needle))
            })
            .map(|r| r.fault);
        if fault.is_some() {
            *state.failed.entry(op.clone()).or_default() += 1;
        }
        fault
    };
    if let Some(fault) = hit {
        return fault_response(fault);
    }
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
    out.body(Body::from(resp.bytes().await.unwrap_or_default()))
        .unwrap()
}
