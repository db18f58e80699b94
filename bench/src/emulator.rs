//! A local Lambda Runtime API (the 2018-06-01 interface that custom runtimes poll), one per
//! sandbox: `GET /invocation/next` hands out the next event, `POST /invocation/{id}/response`
//! and `/error` answer it, `POST /init/error` reports a failed init. It records when the
//! runtime first polls (the end of init) and, for each event, when it was handed out and when
//! it was answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};

/// How one invocation ended.
#[derive(Debug)]
pub struct Outcome {
    /// `false` when the runtime posted to `/error`.
    pub ok: bool,
    pub body: Bytes,
    pub handed_out: Instant,
    pub answered: Instant,
}

struct Invocation {
    id: String,
    event: Vec<u8>,
    done: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Marks {
    first_poll: Option<Instant>,
    init_error: Option<String>,
}

struct Shared {
    marks: Mutex<Marks>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, (oneshot::Sender<Outcome>, Instant)>>,
    function_arn: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One sandbox's Runtime API, serving on 127.0.0.1 until dropped.
pub struct Emulator {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Invocation>,
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    next_id: u64,
}

impl Emulator {
    pub async fn start(function_name: &str) -> std::io::Result<Emulator> {
        let (tx, rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            marks: Mutex::new(Marks::default()),
            queue: tokio::sync::Mutex::new(rx),
            pending: Mutex::new(HashMap::new()),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Emulator {
            shared,
            tx,
            addr,
            stop: Some(stop),
            next_id: 0,
        })
    }

    /// When the runtime first asked for an event, if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        lock(&self.shared.marks).first_poll
    }

    /// What the runtime reported to `/init/error`, if anything.
    pub fn init_error(&self) -> Option<String> {
        lock(&self.shared.marks).init_error.clone()
    }

    /// Hands `event` to the runtime's next poll and waits (at most `timeout`) for its answer.
    pub async fn invoke(&mut self, event: Vec<u8>, timeout: Duration) -> Result<Outcome, String> {
        self.next_id += 1;
        let id = format!("bench-{:08}", self.next_id);
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Invocation { id, event, done })
            .await
            .map_err(|_| "the emulator stopped".to_owned())?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err("the invocation was dropped".to_owned()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    {
        let mut marks = lock(&s.marks);
        if marks.first_poll.is_none() {
            marks.first_poll = Some(Instant::now());
        }
    }
    let inv = {
        let mut queue = s.queue.lock().await;
        queue.recv().await
    };
    let Some(inv) = inv else {
        // The benchmark is done with this sandbox: the runtime waits until it is killed.
        std::future::pending::<()>().await;
        return StatusCode::GONE.into_response();
    };
    let handed_out = Instant::now();
    lock(&s.pending).insert(inv.id.clone(), (inv.done, handed_out));
    let deadline_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 10_000)
        .unwrap_or(0);
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("lambda-runtime-aws-request-id", inv.id);
    put("lambda-runtime-deadline-ms", deadline_ms.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        s.function_arn.clone(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-66a0c9b1-5f2a3c1d0e9b8a7c6d5e4f30;Parent=53995c3f42cd8ad8;Sampled=0".to_owned(),
    );
    put("content-type", "application/json".to_owned());
    (headers, inv.event).into_response()
}

fn answer(s: &Shared, id: &str, ok: bool, body: Bytes) -> StatusCode {
    let answered = Instant::now();
    match lock(&s.pending).remove(id) {
        Some((done, handed_out)) => {
            let _ = done.send(Outcome {
                ok,
                body,
                handed_out,
                answered,
            });
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, true, body)
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, false, body)
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    lock(&s.marks).init_error = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}
