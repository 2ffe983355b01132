//! HTTP: hyper's pooled client ([`Pool`]) for the plan's requests ([`Client`]), a watched
//! agent's `/status` and the edge agents' forwards (timeouts set, no proxy from the
//! environment, TLS as the run's [`Tls`] says); request preparation and sending.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use minijinja::Value;

mod connect;
pub(crate) mod tls;

use crate::plan::compile::CompiledRequest;
use crate::plan::resolve::TargetSettings;
use crate::plan::scope::ResponseView;
use crate::plan::template::Templates;
use tls::Tls;

/// The largest response body read (8 MiB): ACA-Py's answers are kilobytes; a runaway
/// response fails its request instead of filling memory.
pub const MAX_RESPONSE_BODY: usize = 8 << 20;

/// Why a request could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {url}: {why}")]
    Connect {
        url: String,
        why: String,
        /// The kind of the innermost I/O error, if any (refused, reset, timed out).
        io: Option<std::io::ErrorKind>,
    },
    #[error("no response from {url} within {}", crate::plan::duration::format(*.timeout))]
    Timeout { url: String, timeout: Duration },
    #[error("request to {url} failed: {why}")]
    Other {
        url: String,
        why: String,
        io: Option<std::io::ErrorKind>,
    },
}

impl HttpError {
    /// A stable reason to group failures by.
    pub fn reason(&self) -> String {
        match self {
            HttpError::Connect { why, .. } => format!("connection error: {why}"),
            HttpError::Timeout { timeout, .. } => {
                format!("timeout after {}", crate::plan::duration::format(*timeout))
            }
            HttpError::Other { why, .. } => format!("request error: {why}"),
        }
    }
}

/// `Accept: */*` and the target's headers (API keys: marked sensitive, so they never print).
fn default_headers(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    map.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("target header `{k}` is not a valid header name"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| format!("target header `{k}` has a value that is not valid in HTTP"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// The client for the plan's requests: a base URL split once, the target's headers, and a
/// [`Pool`] of connections. Requests go straight from the base and a rendered path to an
/// `http::Uri`, with no redirect or retry layers: a 3xx is the response a step checks.
pub struct Client {
    pool: Pool,
    /// Target headers, the start of every request's header map.
    defaults: HeaderMap,
    base: Base,
}

/// hyper's pooled HTTP/1 client over [`connect::Connector`], and the limit on its
/// connections (`target.max_connections`), shared by every task of a run that uses it.
pub struct Pool {
    inner: hyper_util::client::legacy::Client<connect::Connector, Full<Bytes>>,
    /// At most this many requests in flight (`target.max_connections`; the connector holds
    /// the sockets to the same number).
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// `base_url` split once: `scheme://authority` and a path prefix without a trailing `/`.
struct Base {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    prefix: String,
}

impl Client {
    /// A client for `base_url` with the target's connection settings and the run's TLS.
    /// `what` names `base_url` in errors (`base_url`, or `url` for a watched agent).
    pub fn new(
        target: &TargetSettings,
        tls: &Tls,
        what: &str,
        base_url: &str,
        headers: &[(String, String)],
    ) -> Result<Client, String> {
        Ok(Client {
            pool: Pool::new(tls, target.connect_timeout, target.max_connections),
            defaults: default_headers(headers)?,
            base: Base::parse(what, base_url)?,
        })
    }

    /// The URL a request to `path` goes to, as messages show it.
    pub fn url(&self, path: &str) -> String {
        self.base
            .uri(path, None)
            .map_or_else(|_| path.to_string(), |u| u.to_string())
    }

    /// `GET path` (below the base URL) with the target's headers; the status and the whole
    /// body. For the preflight and the `watch:` samplers (an agent's `/status` once a second).
    pub async fn get(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<(http::StatusCode, Bytes), HttpError> {
        let uri = self.base.uri(path, None).map_err(|why| HttpError::Other {
            url: path.to_string(),
            why,
            io: None,
        })?;
        let mut req = http::Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = self.defaults.clone();
        let (parts, body) = self.pool.exchange(req, &uri, timeout, timeout).await?;
        Ok((parts.status, body))
    }

    /// Waits (at most `timeout`) for leave to send when the plan limits connections.
    pub async fn slot(&self, timeout: Duration) -> Slot {
        self.pool.slot(timeout).await
    }
}

impl Pool {
    /// TLS as `tls` says; TCP and TLS together must finish within `connect_timeout`;
    /// `max_connections` bounds the open sockets and the requests in flight.
    pub fn new(tls: &Tls, connect_timeout: Duration, max_connections: Option<usize>) -> Pool {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // Made on the first https connection, when the run's TLS settings are first needed.
        let tls = tls.clone();
        let tls = move |http: HttpConnector| -> Result<connect::Tls, String> {
            Ok(hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(rustls::ClientConfig::clone(&*tls.config()?))
                .https_or_http()
                .enable_http1()
                .wrap_connector(http))
        };
        let connector = connect::Connector::new(
            connect::Lazy::new(http, tls),
            connect_timeout,
            max_connections,
        );
        Pool {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_timer(TokioTimer::new())
                .build(connector),
            slots: max_connections.map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
        }
    }

    /// Sends `req` (to `uri`) and reads the whole response within `budget`; `timeout` is
    /// what a failure reports.
    pub async fn exchange(
        &self,
        req: http::Request<Full<Bytes>>,
        uri: &Uri,
        timeout: Duration,
        budget: Duration,
    ) -> Result<(http::response::Parts, Bytes), HttpError> {
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(|e| {
                let why = crate::engine::http::tls::certificate_problem(&e)
                    .unwrap_or_else(|| root_cause(&e));
                let io = io_kind(&e);
                let url = uri.to_string();
                if e.is_connect() {
                    HttpError::Connect { url, why, io }
                } else {
                    HttpError::Other { url, why, io }
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = http_body_util::Limited::new(body, MAX_RESPONSE_BODY)
                .collect()
                .await
                .map_err(|e| HttpError::Other {
                    url: uri.to_string(),
                    why: if e.is::<http_body_util::LengthLimitError>() {
                        format!("response body over {} MiB", MAX_RESPONSE_BODY >> 20)
                    } else {
                        root_cause(&*e)
                    },
                    io: io_kind(&*e),
                })?
                .to_bytes();
            Ok((parts, body))
        };
        tokio::time::timeout(budget, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                url: uri.to_string(),
                timeout,
            })?
    }

    /// Waits (at most `timeout`) for leave to send when the plan limits connections.
    pub async fn slot(&self, timeout: Duration) -> Slot {
        let Some(s) = &self.slots else {
            return Slot::default();
        };
        if let Ok(p) = s.clone().try_acquire_owned() {
            return Slot {
                _permit: Some(p),
                ..Slot::default()
            };
        }
        let t = std::time::Instant::now();
        let permit = tokio::time::timeout(timeout, s.clone().acquire_owned())
            .await
            .ok()
            .map(|p| p.expect("the semaphore is never closed"));
        Slot {
            granted: permit.is_some(),
            _permit: permit,
            waited: Some(t.elapsed()),
        }
    }
}

/// Leave to send one request under `target.max_connections`, held until the response is read.
pub struct Slot {
    /// False when the timeout passed before a connection was free.
    pub granted: bool,
    /// How long the request waited, when it had to.
    pub waited: Option<Duration>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Default for Slot {
    /// No limit, or a free connection: granted at once.
    fn default() -> Slot {
        Slot {
            granted: true,
            waited: None,
            _permit: None,
        }
    }
}

impl Base {
    /// `what` names the setting in errors (`base_url`, or a watched agent's `url`).
    fn parse(what: &str, base_url: &str) -> Result<Base, String> {
        let uri: Uri = base_url
            .parse()
            .map_err(|e| format!("{what} `{base_url}` is not a valid URL: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(format!("{what} `{base_url}` needs a scheme and a host"));
        };
        let target = what == "base_url";
        if authority.as_str().contains('@') {
            return Err(if target {
                "base_url must not carry a user or password; send credentials with target.headers"
                    .into()
            } else {
                format!("{what} must not carry a user or password; send the key with api_key")
            });
        }
        if uri.query().is_some() {
            return Err(if target {
                format!("base_url `{base_url}` has a query; put it in each step's `query:`")
            } else {
                format!("{what} `{base_url}` has a query")
            });
        }
        Ok(Base {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The request URI: the base joined with a rendered path (or a full URL) and a query.
    fn uri(&self, path: &str, query: Option<String>) -> Result<Uri, String> {
        let absolute = path.starts_with("http://") || path.starts_with("https://");
        let slash = if absolute || path.starts_with('/') {
            ""
        } else {
            "/"
        };
        if plain(path) {
            let mut full = String::with_capacity(self.prefix.len() + path.len() + 1);
            if !absolute {
                full.push_str(&self.prefix);
            }
            full.push_str(slash);
            full.push_str(path);
            if let Some(q) = &query {
                full.push(if full.contains('?') { '&' } else { '?' });
                full.push_str(q);
            }
            let parsed = if absolute {
                Uri::try_from(full).map_err(|e| e.to_string())
            } else {
                http::uri::PathAndQuery::try_from(full)
                    .map_err(|e| e.to_string())
                    .and_then(|pq| {
                        Uri::builder()
                            .scheme(self.scheme.clone())
                            .authority(self.authority.clone())
                            .path_and_query(pq)
                            .build()
                            .map_err(|e| e.to_string())
                    })
            };
            return parsed.map_err(|e| format!("`{path}` is not a valid URL: {e}"));
        }
        // Characters a URI cannot hold as they are (spaces, quotes, braces, non-ASCII):
        // percent-encoded as a browser would; a `#fragment` is never sent.
        let whole = if absolute {
            path.to_string()
        } else {
            format!(
                "{}://{}{}{slash}{path}",
                self.scheme, self.authority, self.prefix
            )
        };
        let mut url =
            url::Url::parse(&whole).map_err(|e| format!("`{whole}` is not a valid URL: {e}"))?;
        if let Some(q) = query {
            let merged = match url.query() {
                Some(existing) if !existing.is_empty() => format!("{existing}&{q}"),
                _ => q,
            };
            url.set_query(Some(&merged));
        }
        url.set_fragment(None);
        Uri::try_from(url.as_str()).map_err(|e| format!("`{whole}` is not a valid URL: {e}"))
    }
}

/// A path that goes into a URI as it is: printable ASCII a browser would not escape.
fn plain(s: &str) -> bool {
    s.bytes().all(|b| {
        b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'#' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
    })
}

/// A request with every template rendered.
pub struct Prepared {
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Renders path, query, headers, bearer and body.
pub fn prepare(
    client: &Client,
    t: &Templates,
    rq: &CompiledRequest,
    scope: &Value,
) -> Result<Prepared, String> {
    let d = |e: minijinja::Error| crate::plan::template::describe(&e);
    let path = t.render(&rq.path, scope).map_err(d)?;
    let query = if rq.query.is_empty() {
        None
    } else {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &rq.query {
            let v = t.render(v, scope).map_err(d)?;
            if !v.is_empty() {
                pairs.append_pair(k, &v);
            }
        }
        Some(pairs.finish()).filter(|q| !q.is_empty())
    };
    let uri = client.base.uri(&path, query)?;
    let mut headers = client.defaults.clone();
    for (k, v) in &rq.headers {
        let v = t.render(v, scope).map_err(d)?;
        if v.is_empty() {
            continue;
        }
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("`{k}` is not a valid header name"))?;
        headers.insert(
            name,
            HeaderValue::from_str(&v)
                .map_err(|_| format!("header `{k}` has a value not valid in HTTP"))?,
        );
    }
    if let Some(b) = &rq.bearer {
        let token = t.render(b, scope).map_err(d)?;
        if !token.is_empty() {
            let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "the bearer token is not valid in an HTTP header".to_string())?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
    }
    let body = match &rq.json {
        Some(j) => {
            let v = t.render_json(j, scope).map_err(d)?;
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(serde_json::to_vec(&v).map_err(|e| e.to_string())?)
        }
        None => Bytes::new(),
    };
    Ok(Prepared { uri, headers, body })
}

/// Sends a prepared request and reads the whole response; also returns when the last
/// byte of the body was read (the end of the request's latency: parsing the body as JSON
/// comes after it).
/// `budget` covers connecting, sending and reading the whole body: the step's timeout less
/// what the request already waited for a connection.
/// `timeout` is the step's (or the target's), as the failure reports it.
pub async fn send(
    client: &Client,
    timeout: Duration,
    p: &Prepared,
    rq: &CompiledRequest,
    budget: Duration,
) -> Result<(ResponseView, std::time::Instant), HttpError> {
    let method = match rq.method {
        crate::plan::Method::Get => http::Method::GET,
        crate::plan::Method::Post => http::Method::POST,
        crate::plan::Method::Put => http::Method::PUT,
        crate::plan::Method::Patch => http::Method::PATCH,
        crate::plan::Method::Delete => http::Method::DELETE,
    };
    let mut req = http::Request::new(Full::new(p.body.clone()));
    *req.method_mut() = method;
    *req.uri_mut() = p.uri.clone();
    *req.headers_mut() = p.headers.clone();
    let (parts, body) = client.pool.exchange(req, &p.uri, timeout, budget).await?;
    let read_at = std::time::Instant::now();
    // The body is parsed only when the step reads it (captures, checks, polls).
    let json = if rq.reads_body() {
        let is_json = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if is_json || body.first().is_some_and(|b| *b == b'{' || *b == b'[') {
            serde_json::from_slice(&body).ok()
        } else {
            None
        }
    } else {
        None
    };
    Ok((
        ResponseView {
            status: parts.status.as_u16(),
            body,
            json,
            headers: parts.headers,
        },
        read_at,
    ))
}

/// The first line of a response body, at most 120 characters: what an error line quotes.
pub fn first_line(body: &str) -> String {
    body.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

/// The kind of the innermost I/O error in `e`'s chain; a connect timeout counts as
/// `TimedOut`.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut kind = None;
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
        } else if e.is::<connect::ConnectTimeout>() {
            kind = Some(std::io::ErrorKind::TimedOut);
        }
        cur = e.source();
    }
    kind
}

/// The innermost error message ("Connection refused (os error 111)").
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(base: &str, path: &str, query: Option<&str>) -> String {
        Base::parse("base_url", base)
            .unwrap()
            .uri(path, query.map(str::to_string))
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn paths_join_the_base() {
        let b = "http://127.0.0.1:3011";
        assert_eq!(join(b, "/status", None), "http://127.0.0.1:3011/status");
        assert_eq!(join(b, "status", None), "http://127.0.0.1:3011/status");
        assert_eq!(
            join(
                "https://agent.example/admin/",
                "/connections",
                Some("state=active")
            ),
            "https://agent.example/admin/connections?state=active"
        );
        assert_eq!(
            join(b, "/connections?alias=m", Some("state=active")),
            "http://127.0.0.1:3011/connections?alias=m&state=active"
        );
        assert_eq!(
            join(b, "http://127.0.0.1:3001/mediation/requests", None),
            "http://127.0.0.1:3001/mediation/requests"
        );
    }

    #[test]
    fn characters_a_uri_cannot_hold_are_percent_encoded() {
        let b = "http://127.0.0.1:3011";
        assert_eq!(
            join(b, "/wallets/my wallet/é", None),
            "http://127.0.0.1:3011/wallets/my%20wallet/%C3%A9"
        );
        assert_eq!(join(b, "/w/é", None), "http://127.0.0.1:3011/w/%C3%A9");
        assert_eq!(
            join(b, "/w/{x}\"", None),
            "http://127.0.0.1:3011/w/%7Bx%7D%22"
        );
        // The query goes before a fragment, which is never sent.
        assert_eq!(
            join(b, "/w?a=1#top", Some("b=2")),
            "http://127.0.0.1:3011/w?a=1&b=2"
        );
        assert_eq!(
            join(b, "http://[::1/x", None),
            "error: `http://[::1/x` is not a valid URL: invalid authority"
        );
    }

    #[test]
    fn a_base_without_a_host_or_with_credentials_or_a_query_is_refused() {
        let refused = |b: &str| Base::parse("base_url", b).err().unwrap();
        assert_eq!(
            refused("/admin"),
            "base_url `/admin` needs a scheme and a host"
        );
        assert_eq!(
            refused("http://admin:secret@127.0.0.1:3011"),
            "base_url must not carry a user or password; send credentials with target.headers"
        );
        assert_eq!(
            refused("http://127.0.0.1:3011/?tenant=1"),
            "base_url `http://127.0.0.1:3011/?tenant=1` has a query; put it in each step's `query:`"
        );
    }

    /// A server that answers every GET on a kept-alive connection with `200 ok`; counts the
    /// connections it accepted.
    async fn counting_server() -> (Uri, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                        while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            got.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if conn.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (uri.parse().unwrap(), accepted)
    }

    fn get(uri: &Uri) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri.clone();
        req
    }

    /// `target.max_connections` is one limit for the whole run, whatever the number of
    /// worker threads: that many requests in flight, and that many sockets ever open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn max_connections_bounds_requests_in_flight_and_sockets_for_the_whole_run() {
        let (uri, accepted) = counting_server().await;
        let tls = Tls::new(false, None);
        let pool = Arc::new(Pool::new(&tls, Duration::from_secs(5), Some(3)));
        // three slots at once; a fourth waits while they are held, and gets one when freed
        let mut held = Vec::new();
        for _ in 0..3 {
            let slot = pool.slot(Duration::from_secs(5)).await;
            assert!(slot.granted && slot.waited.is_none());
            held.push(slot);
        }
        let fourth = pool.slot(Duration::from_millis(50)).await;
        assert!(!fourth.granted && fourth.waited.is_some());
        held.pop();
        assert!(pool.slot(Duration::from_secs(5)).await.granted);
        drop(held);
        // 24 requests at once, from tasks on every worker: all answered on at most 3 sockets
        let sends: Vec<_> = (0..24)
            .map(|_| {
                let (pool, uri) = (pool.clone(), uri.clone());
                tokio::spawn(async move {
                    let t = Duration::from_secs(10);
                    pool.exchange(get(&uri), &uri, t, t)
                        .await
                        .map(|(p, _)| p.status)
                })
            })
            .collect();
        for send in sends {
            assert_eq!(send.await.unwrap().unwrap(), http::StatusCode::OK);
        }
        let sockets = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=3).contains(&sockets), "{sockets} sockets opened");
    }
}
