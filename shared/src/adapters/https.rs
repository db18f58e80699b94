//! The HTTP client every AWS SDK client here sends through: HTTP/1.1 over rustls with ring,
//! with a small keep-alive pool per host.
//!
//! Why not the SDK's default client (`aws-smithy-http-client`): it always links HTTP/2 (`h2`,
//! ~0.65 MB of each function, measured with `bench/size-profile.py`) and its pool, though the
//! AWS endpoints used here (DynamoDB, SNS, SES, Secrets Manager) are answered over HTTP/1.1 and
//! a Lambda sandbox serves one request at a time; and with its default TLS provider, aws-lc
//! (1.9 MB, and CPU-jitter entropy seeded on the first handshake). What the SDK needs of a
//! client is small: send one request, honour the connect timeout, and report connection
//! failures as retryable I/O errors (the SDK's retry strategy and attempt/operation timeouts
//! do the rest).
//!
//! Trust: the operating system's CA certificates (`rustls-native-certs`: `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` are honoured, which is how the benchmark trusts its throwaway CA). No proxy
//! support (`HTTPS_PROXY`): a Lambda reaches AWS directly or through VPC endpoints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use lambda_http::http::{self as http1x, HeaderValue, Uri, header};

/// The client, to set on an `SdkConfig` (`http_client`).
pub fn client() -> SharedHttpClient {
    SharedHttpClient::new(Https1Client::default())
}

/// Idle connections kept per host. A Lambda sandbox has one request in flight; the local
/// server and the load test run several.
const MAX_IDLE_PER_HOST: usize = 16;

#[derive(Debug, Default, Clone)]
struct Https1Client {
    pool: Arc<Pool>,
}

impl HttpClient for Https1Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            pool: Arc::clone(&self.pool),
            connect_timeout: settings.connect_timeout(),
        })
    }
}

#[derive(Debug)]
struct Connector {
    pool: Arc<Pool>,
    connect_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let pool = Arc::clone(&self.pool);
        let connect_timeout = self.connect_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let origin = Origin::of(request.uri())?;
            let request = origin_form(request, &origin)?;
            let mut sender = match pool.checkout(&origin) {
                Some(sender) => sender,
                None => connect(&origin, connect_timeout).await?,
            };
            let response = match sender.try_send_request(request).await {
                Ok(response) => response,
                // A pooled connection the server had already closed (common after a Lambda
                // sandbox was frozen): the request was not sent, so it goes once more on a
                // fresh connection without costing the SDK a retry attempt.
                Err(mut failed) => match failed.take_message() {
                    Some(request) => {
                        sender = connect(&origin, connect_timeout).await?;
                        sender.send_request(request).await.map_err(hyper_error)?
                    }
                    None => return Err(hyper_error(failed.into_error())),
                },
            };
            pool.put_back(origin, sender);
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Scheme, host and port: what a connection is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    tls: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn of(uri: &Uri) -> Result<Origin, ConnectorError> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(user("the endpoint must be an http:// or https:// URL")),
        };
        let host = uri
            .host()
            .ok_or_else(|| user("the endpoint URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(Origin::default_port(tls));
        Ok(Origin { tls, host, port })
    }

    fn default_port(tls: bool) -> u16 {
        if tls { 443 } else { 80 }
    }
}

fn user(message: &'static str) -> ConnectorError {
    ConnectorError::user(message.into())
}

/// An HTTP/1.1 request line carries the path only; the authority goes in `Host`.
fn origin_form(
    request: http1x::Request<SdkBody>,
    origin: &Origin,
) -> Result<http1x::Request<SdkBody>, ConnectorError> {
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(header::HOST) {
        let default_port = Origin::default_port(origin.tls);
        let host = match parts.uri.authority() {
            Some(a) if a.port_u16().is_none_or(|p| p != default_port) => a.as_str().to_owned(),
            Some(a) => a.host().to_owned(),
            None => origin.host.clone(),
        };
        let value = HeaderValue::from_str(&host).map_err(|e| ConnectorError::user(e.into()))?;
        parts.headers.insert(header::HOST, value);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path
        .parse()
        .map_err(|e: http1x::uri::InvalidUri| ConnectorError::user(e.into()))?;
    Ok(http1x::Request::from_parts(parts, body))
}

/// Idle connections by origin. A connection is put back as soon as its response's headers
/// are in; it is handed out again only once hyper reports it ready (that response's body
/// fully read), and dropped once closed.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<HashMap<Origin, Vec<SendRequest<SdkBody>>>>,
}

impl Pool {
    fn checkout(&self, origin: &Origin) -> Option<SendRequest<SdkBody>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(origin)?;
        list.retain(|s| !s.is_closed());
        let ready = list.iter().position(SendRequest::is_ready)?;
        Some(list.swap_remove(ready))
    }

    fn put_back(&self, origin: Origin, sender: SendRequest<SdkBody>) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(origin).or_default();
            list.retain(|s| !s.is_closed());
            if list.len() < MAX_IDLE_PER_HOST {
                list.push(sender);
            }
        }
    }
}

async fn connect(
    origin: &Origin,
    timeout: Option<Duration>,
) -> Result<SendRequest<SdkBody>, ConnectorError> {
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
        // Requests are written in one go; do not let Nagle hold back their tail.
        let _ = tcp.set_nodelay(true);
        if origin.tls {
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|e| ConnectorError::user(e.into()))?;
            let tls = tls_connector()?
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            handshake(TokioIo::new(tls)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    };
    match timeout {
        Some(limit) => tokio::time::timeout(limit, handshake).await.map_err(|_| {
            ConnectorError::timeout("connecting took longer than the connect timeout".into())
        })?,
        None => handshake.await,
    }
}

async fn handshake<T>(io: TokioIo<T>) -> Result<SendRequest<SdkBody>, ConnectorError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(io).await.map_err(hyper_error)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "an AWS connection closed with an error");
        }
    });
    Ok(sender)
}

/// hyper's errors for the SDK: misuse is the caller's; anything else happened on the wire
/// (closed, reset, cut short) and is worth the SDK's bounded retry.
fn hyper_error(e: hyper::Error) -> ConnectorError {
    if e.is_user() {
        ConnectorError::user(e.into())
    } else {
        ConnectorError::io(e.into())
    }
}

/// rustls with ring and the operating system's roots, made once per process.
fn tls_connector() -> Result<&'static tokio_rustls::TlsConnector, ConnectorError> {
    static TLS: OnceLock<Result<tokio_rustls::TlsConnector, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err("no CA certificates found (SSL_CERT_FILE, /etc/ssl/certs)".to_owned());
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    })
    .as_ref()
    .map_err(|e| ConnectorError::other(e.clone().into(), None))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A plain HTTP/1.1 server on a free port that answers `ok` to every request and counts
    /// the connections it accepts; with `close_after_each`, it hangs up after each answer
    /// without saying so (as an idle-timed-out AWS endpoint does).
    async fn server(close_after_each: bool) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if sock.write_all(answer).await.is_err() {
                                return;
                            }
                            if close_after_each {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    async fn get(connector: &Connector, port: u16) -> (u16, String) {
        let request = http1x::Request::builder()
            .uri(format!("http://127.0.0.1:{port}/path?q=1"))
            .body(SdkBody::empty())
            .unwrap();
        let response = connector
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn connector() -> Connector {
        Connector {
            pool: Arc::default(),
            connect_timeout: Some(Duration::from_secs(1)),
        }
    }

    #[tokio::test]
    async fn keeps_one_connection_alive_across_requests() {
        let (port, accepted) = server(false).await;
        let c = connector();
        for _ in 0..5 {
            assert_eq!(get(&c, port).await, (200, "ok".to_owned()));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_without_an_error() {
        let (port, accepted) = server(true).await;
        let c = connector();
        for _ in 0..4 {
            assert_eq!(get(&c, port).await, (200, "ok".to_owned()));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_retryable_io_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let request = http1x::Request::builder()
            .uri(format!("http://127.0.0.1:{port}/"))
            .body(SdkBody::empty())
            .unwrap();
        let err = connector()
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap_err();
        assert!(err.is_io(), "{err:?}");
    }

    #[test]
    fn requests_go_out_in_origin_form_with_a_host_header() {
        let origin = |uri: &str| Origin::of(&uri.parse().unwrap()).unwrap();
        let request = |uri: &str| {
            origin_form(
                http1x::Request::builder()
                    .uri(uri)
                    .body(SdkBody::empty())
                    .unwrap(),
                &origin(uri),
            )
            .unwrap()
        };
        let r = request("https://dynamodb.us-east-1.amazonaws.com/");
        assert_eq!(r.uri().to_string(), "/");
        assert_eq!(r.headers()["host"], "dynamodb.us-east-1.amazonaws.com");
        let r = request("http://127.0.0.1:5000/a/b?c=d");
        assert_eq!(r.uri().to_string(), "/a/b?c=d");
        assert_eq!(r.headers()["host"], "127.0.0.1:5000");
        assert_eq!(origin("https://h.example").port, 443);
        assert!(Origin::of(&"ftp://h.example/".parse().unwrap()).is_err());
    }
}
