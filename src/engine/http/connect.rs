//! The connector under an HTTP [`super::Pool`]: TCP and TLS under one deadline
//! (`target.connect_timeout`), and with `target.max_connections` one permit per open socket,
//! held until the socket closes, so the limit holds for sockets and not only for requests in
//! flight (the pool may otherwise open a socket for a waiter while another is on its way back).
//! TLS is set up on the first https connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// The TLS-capable connector.
pub type Tls = hyper_rustls::HttpsConnector<HttpConnector>;
type Stream = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Plain TCP, and TLS built by `make` when an https URL first asks for it (shared by clones).
#[derive(Clone)]
pub struct Lazy {
    http: HttpConnector,
    tls: Arc<std::sync::OnceLock<Result<Tls, String>>>,
    make: Arc<dyn Fn(HttpConnector) -> Result<Tls, String> + Send + Sync>,
}

impl Lazy {
    pub fn new(
        http: HttpConnector,
        make: impl Fn(HttpConnector) -> Result<Tls, String> + Send + Sync + 'static,
    ) -> Lazy {
        Lazy {
            http,
            tls: Arc::default(),
            make: Arc::new(make),
        }
    }

    fn connect(&self, uri: Uri) -> Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>> {
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            let tls = self.tls.get_or_init(|| (self.make)(self.http.clone()));
            match tls {
                Ok(t) => {
                    let mut t = t.clone();
                    Box::pin(async move { t.call(uri).await })
                }
                Err(e) => {
                    let e = e.clone();
                    Box::pin(async move { Err(e.into()) })
                }
            }
        } else {
            let mut http = self.http.clone();
            Box::pin(async move {
                let io = http.call(uri).await?;
                Ok(hyper_rustls::MaybeHttpsStream::Http(io))
            })
        }
    }
}

#[derive(Clone)]
pub struct Connector {
    inner: Lazy,
    timeout: Duration,
    sockets: Option<Arc<Semaphore>>,
}

impl Connector {
    pub fn new(inner: Lazy, timeout: Duration, max_sockets: Option<usize>) -> Connector {
        Connector {
            inner,
            timeout,
            sockets: max_sockets.map(|n| Arc::new(Semaphore::new(n))),
        }
    }
}

/// TCP (and TLS) did not finish within `target.connect_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {}", crate::plan::duration::format(*.0))]
pub struct ConnectTimeout(Duration);

impl Service<Uri> for Connector {
    type Response = Socket;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Socket, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both connectors are always ready (HttpConnector's poll_ready is).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let inner = self.inner.clone();
        let (timeout, sockets) = (self.timeout, self.sockets.clone());
        Box::pin(async move {
            let permit = match sockets {
                Some(s) => Some(s.acquire_owned().await?),
                None => None,
            };
            let io = tokio::time::timeout(timeout, inner.connect(uri))
                .await
                .map_err(|_| ConnectTimeout(timeout))??;
            Ok(Socket {
                io,
                _permit: permit,
            })
        })
    }
}

/// An open connection; its permit (if any) returns when it closes.
pub struct Socket {
    io: Stream,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Connection for Socket {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
