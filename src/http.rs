//! HTTP: one shared reqwest client (timeouts set, no proxy from the environment, TLS
//! verified unless the plan opts out), request preparation and sending.

use std::sync::Arc;
use std::time::Duration;

use minijinja::Value;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::compile::{CompiledRequest, CompiledTarget};
use crate::run::RunContext;
use crate::template::ResponseView;

/// Why a request could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {url}: {why}")]
    Connect { url: String, why: String },
    #[error("no response from {url} within {}", crate::duration::format(*.timeout))]
    Timeout { url: String, timeout: Duration },
    #[error("request to {url} failed: {why}")]
    Other { url: String, why: String },
}

impl HttpError {
    /// A stable reason to group failures by.
    pub fn reason(&self) -> String {
        match self {
            HttpError::Connect { why, .. } => format!("connection error: {why}"),
            HttpError::Timeout { timeout, .. } => {
                format!("timeout after {}", crate::duration::format(*timeout))
            }
            HttpError::Other { why, .. } => format!("request error: {why}"),
        }
    }
}

/// Builds the shared client.
pub fn client(
    target: &CompiledTarget,
    headers: &[(String, String)],
) -> Result<reqwest::Client, String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("target header `{k}` is not a valid header name"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| format!("target header `{k}` has a value that is not valid in HTTP"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(map)
        .timeout(target.timeout)
        .connect_timeout(target.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .tls_danger_accept_invalid_certs(target.insecure)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A request with every template rendered.
pub struct Prepared {
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

/// Renders path, query, headers, bearer and body.
pub fn prepare(ctx: &RunContext, rq: &CompiledRequest, scope: &Value) -> Result<Prepared, String> {
    let t = &ctx.plan.templates;
    let d = |e: minijinja::Error| crate::template::describe(&e);
    let path = t.render(&rq.path, scope).map_err(d)?;
    let full = if path.starts_with("http://") || path.starts_with("https://") {
        path
    } else {
        format!("{}{}", ctx.base_url, path)
    };
    let mut url =
        reqwest::Url::parse(&full).map_err(|e| format!("`{full}` is not a valid URL: {e}"))?;
    if !rq.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &rq.query {
            let v = t.render(v, scope).map_err(d)?;
            if !v.is_empty() {
                pairs.append_pair(k, &v);
            }
        }
    }
    let mut headers = HeaderMap::new();
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
            Some(serde_json::to_vec(&v).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    Ok(Prepared { url, headers, body })
}

/// Sends a prepared request and reads the whole response.
pub async fn send(
    ctx: &RunContext,
    p: &Prepared,
    rq: &CompiledRequest,
) -> Result<ResponseView, HttpError> {
    let method = match rq.method {
        crate::plan::Method::Get => reqwest::Method::GET,
        crate::plan::Method::Post => reqwest::Method::POST,
        crate::plan::Method::Put => reqwest::Method::PUT,
        crate::plan::Method::Patch => reqwest::Method::PATCH,
        crate::plan::Method::Delete => reqwest::Method::DELETE,
    };
    let timeout = rq.timeout.unwrap_or(ctx.plan.target.timeout);
    let mut req = ctx
        .client
        .request(method, p.url.clone())
        .headers(p.headers.clone())
        .timeout(timeout);
    if let Some(b) = &p.body {
        req = req.body(b.clone());
    }
    let url = p.url.as_str().to_string();
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            HttpError::Timeout {
                url: url.clone(),
                timeout,
            }
        } else if e.is_connect() {
            HttpError::Connect {
                url: url.clone(),
                why: root_cause(&e),
            }
        } else {
            HttpError::Other {
                url: url.clone(),
                why: root_cause(&e),
            }
        }
    };
    let resp = req.send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let bytes = resp.bytes().await.map_err(classify)?;
    // The body is parsed only when the step reads it (captures, checks, polls).
    let json = if rq.reads_body()
        && (is_json || bytes.first().is_some_and(|b| *b == b'{' || *b == b'['))
    {
        serde_json::from_slice(&bytes).ok()
    } else {
        None
    };
    let text: Arc<str> = Arc::from(String::from_utf8_lossy(&bytes).as_ref());
    Ok(ResponseView {
        status,
        text,
        json,
        headers,
    })
}

/// The innermost error message ("Connection refused (os error 111)").
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
