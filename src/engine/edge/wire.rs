//! An agent's WebSocket to the mediator, lean enough for thousands per process: an idle socket
//! holds no buffer. tungstenite (through tokio-tungstenite) keeps a read buffer per socket that
//! grows to the largest frame seen and never shrinks, and a write buffer likewise: ~10 KiB per
//! agent, the largest part of an edge agent's memory. Here bytes are read into one scratch
//! buffer per thread; only a frame that arrives in pieces is kept (and freed once whole), and
//! each frame written is built, sent and dropped. The protocol itself stays tungstenite's: the
//! handshake request, the accept key, frame headers. `wss://` goes over the run's TLS
//! ([`Tls`]), which keeps its own record buffers.

use std::cell::RefCell;
use std::io::Cursor;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::generate_request;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use crate::engine::http::tls::{Stream, Tls};

/// The largest message accepted (tungstenite's default is 64 MiB; DIDComm messages to a phone
/// are a few KiB).
const MAX_MESSAGE: usize = 16 << 20;
/// The largest handshake response accepted.
const MAX_RESPONSE_HEAD: usize = 16 << 10;
/// One read's worth: what the socket has, up to this, is taken at each wake-up.
const SCRATCH: usize = 64 << 10;

thread_local! {
    /// Read buffer shared by the sockets of a thread: a socket reads into it and parses its
    /// bytes out of it within one borrow, with no await between.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// What a read brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole text or binary message.
    Message(Vec<u8>),
    /// A ping: answer it with [`Wire::pong`].
    Ping(Vec<u8>),
    /// The peer closed the socket: its code and reason, when it gave them.
    Close(Option<(u16, String)>),
}

/// An open client WebSocket (`ws://`, or `wss://`).
pub struct Wire {
    stream: Stream,
    /// Bytes of a frame not yet whole (empty, with no capacity, almost always).
    partial: Vec<u8>,
    /// A fragmented message being put together.
    assembling: Option<Vec<u8>>,
    /// The instance a proxy says answered the upgrade (the value of the header the run names,
    /// `target.instance_header`), when it says.
    pub instance: Option<String>,
}

impl Wire {
    /// Opens `url` (`ws://` or `wss://host[:port]/path`): TCP, TLS for `wss://` (its server
    /// name and the `Host` header from the URL's host), then the HTTP upgrade; the value of
    /// `instance_header` in the upgrade's response is kept. Errors are one line.
    pub async fn connect(
        url: &str,
        tls: &Tls,
        instance_header: Option<&http::HeaderName>,
    ) -> Result<Wire, String> {
        let to = endpoint(url)?;
        let (head, key) =
            generate_request(to.request).map_err(|e| format!("WebSocket {url}: {e}"))?;
        let io =
            |e: std::io::Error| format!("WebSocket {url}: {}", crate::engine::http::root_cause(&e));
        let mut stream = tls
            .connect(&to.host, to.port, to.secure)
            .await
            .map_err(|why| format!("WebSocket {url}: {why}"))?;
        stream.write_all(&head).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut got = Vec::with_capacity(512);
        let (status, accept, instance, used) = loop {
            if got.len() >= MAX_RESPONSE_HEAD {
                return Err(format!(
                    "WebSocket {url}: the upgrade response's head passed {MAX_RESPONSE_HEAD} bytes"
                ));
            }
            if stream.read_buf(&mut got).await.map_err(io)? == 0 {
                return Err(format!(
                    "WebSocket {url}: the server closed the connection during the upgrade"
                ));
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&got) {
                Ok(httparse::Status::Complete(used)) => {
                    let value = |name: &str| {
                        response
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| h.value.to_vec())
                    };
                    let accept = value("sec-websocket-accept");
                    let instance = instance_header
                        .and_then(|h| value(h.as_str()))
                        .map(|v| String::from_utf8_lossy(&v).trim().to_string());
                    break (response.code.unwrap_or(0), accept, instance, used);
                }
                Ok(httparse::Status::Partial) => continue,
                Err(e) => return Err(format!("WebSocket {url}: bad upgrade response: {e}")),
            }
        };
        if status != 101 {
            return Err(format!(
                "WebSocket {url}: HTTP error: {status} (expected 101 Switching Protocols)"
            ));
        }
        if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
            return Err(format!(
                "WebSocket {url}: the upgrade response's Sec-WebSocket-Accept does not match the key"
            ));
        }
        let partial = got.split_off(used);
        Ok(Wire {
            stream,
            partial,
            assembling: None,
            instance,
        })
    }

    /// Opens TCP and TLS to a `wss://` URL's host and closes them again, sending nothing over
    /// them: whether its certificate verifies. A `ws://` URL passes unopened.
    pub async fn check_tls(url: &str, tls: &Tls) -> Result<(), String> {
        let to = endpoint(url)?;
        if to.secure {
            let mut stream = tls.connect(&to.host, to.port, true).await?;
            let _ = stream.shutdown().await;
        }
        Ok(())
    }

    /// Waits for the next frames and returns what they brought, at least one item. Cancel-safe
    /// (its only wait is for readability; what is read is parsed before it returns). `Err`:
    /// the socket ended or failed, in a line.
    pub async fn read(&mut self) -> Result<Vec<Incoming>, String> {
        let mut out = Vec::new();
        if !self.partial.is_empty() {
            let used = parse(&self.partial, &mut self.assembling, &mut out)?;
            self.consume_partial(used);
            if !out.is_empty() {
                return Ok(out);
            }
        }
        std::future::poll_fn(|cx| self.poll_frames(cx, &mut out)).await?;
        Ok(out)
    }

    /// Reads what the socket has into the thread's scratch buffer and parses it, until at least
    /// one item came (`Ready`) or the socket has nothing more (`Pending`: woken when it has).
    /// Bytes of a frame not yet whole are kept in `partial`, so nothing read is lost if the
    /// caller stops waiting.
    fn poll_frames(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Incoming>,
    ) -> Poll<Result<(), String>> {
        loop {
            let read = SCRATCH_BUF.with_borrow_mut(|buf| {
                let mut filled = tokio::io::ReadBuf::new(&mut buf[..]);
                match Pin::new(&mut self.stream).poll_read(cx, &mut filled) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(socket_error(e))),
                    Poll::Ready(Ok(())) if filled.filled().is_empty() => {
                        Poll::Ready(Err("the socket ended".to_string()))
                    }
                    Poll::Ready(Ok(())) => Poll::Ready(self.take(filled.filled(), out)),
                }
            });
            match read {
                Poll::Ready(Ok(())) if out.is_empty() => continue,
                other => return other,
            }
        }
    }

    /// Parses newly read `bytes` after what `partial` holds; keeps the rest of a frame not yet
    /// whole.
    fn take(&mut self, bytes: &[u8], out: &mut Vec<Incoming>) -> Result<(), String> {
        if self.partial.is_empty() {
            let used = parse(bytes, &mut self.assembling, out)?;
            self.partial.extend_from_slice(&bytes[used..]);
        } else {
            self.partial.extend_from_slice(bytes);
            let used = parse(&self.partial, &mut self.assembling, out)?;
            self.consume_partial(used);
        }
        Ok(())
    }

    /// Drops the first `used` bytes of `partial`, freeing it when nothing is left.
    fn consume_partial(&mut self, used: usize) {
        if used == self.partial.len() {
            self.partial = Vec::new();
        } else {
            self.partial.drain(..used);
        }
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(OpCode::Data(Data::Text), text.as_bytes()).await
    }

    /// Answers a ping.
    pub async fn pong(&mut self, payload: &[u8]) -> Result<(), String> {
        self.send(OpCode::Control(Control::Pong), payload).await
    }

    /// Closes the socket cleanly (code 1000) and drops it.
    pub async fn close(mut self) {
        let code: u16 = CloseCode::Normal.into();
        let _ = self
            .send(OpCode::Control(Control::Close), &code.to_be_bytes())
            .await;
        let _ = self.stream.shutdown().await;
    }

    /// One frame, masked as a client's must be, built, written and dropped.
    async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), String> {
        let mask = fastrand::u32(..).to_ne_bytes();
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: Some(mask),
        };
        let length = payload.len() as u64;
        let mut frame = Vec::with_capacity(header.len(length) + payload.len());
        header
            .format(length, &mut frame)
            .map_err(|e| format!("socket error: {e}"))?;
        let start = frame.len();
        frame.extend_from_slice(payload);
        apply_mask(&mut frame[start..], mask);
        self.stream.write_all(&frame).await.map_err(socket_error)?;
        // TLS may hold records back until flushed; plain TCP flushes at once.
        self.stream.flush().await.map_err(socket_error)
    }
}

/// Where a WebSocket URL leads.
struct Endpoint {
    /// The upgrade request (its `Host` header from the URL).
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    host: String,
    port: u16,
    /// `wss://`.
    secure: bool,
}

fn endpoint(url: &str) -> Result<Endpoint, String> {
    let request = url
        .into_client_request()
        .map_err(|e| format!("WebSocket {url}: {e}"))?;
    let (host, port, secure) = crate::engine::http::tls::websocket_address(request.uri())
        .map_err(|why| format!("WebSocket {url}: {why}"))?;
    Ok(Endpoint {
        request,
        host,
        port,
        secure,
    })
}

/// Masks or unmasks a payload (RFC 6455 §5.3; tungstenite keeps its own private).
fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

fn socket_error(e: std::io::Error) -> String {
    format!("socket error: {}", crate::engine::http::root_cause(&e))
}

/// Parses the whole frames at the start of `bytes` into `out` (a fragmented message is put
/// together in `assembling`); returns how many bytes they took. Stops after a close frame.
fn parse(
    bytes: &[u8],
    assembling: &mut Option<Vec<u8>>,
    out: &mut Vec<Incoming>,
) -> Result<usize, String> {
    let protocol = |what: String| format!("socket error: WebSocket protocol error: {what}");
    let mut at = 0;
    loop {
        let mut cursor = Cursor::new(&bytes[at..]);
        let Some((header, length)) =
            FrameHeader::parse(&mut cursor).map_err(|e| protocol(e.to_string()))?
        else {
            return Ok(at);
        };
        if length > MAX_MESSAGE as u64 {
            return Err(protocol(format!(
                "a frame of {length} bytes (the limit is {MAX_MESSAGE})"
            )));
        }
        let start = at + cursor.position() as usize;
        let end = start + length as usize;
        if end > bytes.len() {
            return Ok(at);
        }
        at = end;
        let mut payload = bytes[start..end].to_vec();
        if let Some(mask) = header.mask {
            apply_mask(&mut payload, mask);
        }
        match header.opcode {
            OpCode::Data(Data::Text | Data::Binary) if assembling.is_some() => {
                return Err(protocol("a new message inside a fragmented one".into()));
            }
            OpCode::Data(Data::Text | Data::Binary) if header.is_final => {
                out.push(Incoming::Message(payload))
            }
            OpCode::Data(Data::Text | Data::Binary) => *assembling = Some(payload),
            OpCode::Data(Data::Continue) => {
                let Some(message) = assembling.as_mut() else {
                    return Err(protocol("a continuation frame with no message".into()));
                };
                if message.len() + payload.len() > MAX_MESSAGE {
                    return Err(protocol(format!("a message over {MAX_MESSAGE} bytes")));
                }
                message.extend_from_slice(&payload);
                if header.is_final {
                    out.push(Incoming::Message(assembling.take().unwrap_or_default()));
                }
            }
            OpCode::Control(Control::Ping) => out.push(Incoming::Ping(payload)),
            OpCode::Control(Control::Pong) => {}
            OpCode::Control(Control::Close) => {
                let close = (payload.len() >= 2).then(|| {
                    (
                        u16::from_be_bytes([payload[0], payload[1]]),
                        String::from_utf8_lossy(&payload[2..]).into_owned(),
                    )
                });
                out.push(Incoming::Close(close));
                return Ok(at);
            }
            other => return Err(protocol(format!("opcode {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    /// A tungstenite server on loopback; `serve` gets its side of the one socket.
    async fn pair<F, Fut>(serve: F) -> (Wire, tokio::task::JoinHandle<()>)
    where
        F: FnOnce(tokio_tungstenite::WebSocketStream<TcpStream>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            serve(tokio_tungstenite::accept_async(s).await.unwrap()).await;
        });
        (
            Wire::connect(&url, &Tls::new(false, None), None)
                .await
                .unwrap(),
            server,
        )
    }

    #[tokio::test]
    async fn messages_both_ways_with_a_server_that_checks_the_protocol() {
        let (mut wire, server) = pair(|mut ws| async move {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                panic!("no text")
            };
            assert_eq!(t.as_str(), "hello");
            ws.send(Message::text("x".repeat(70_000))).await.unwrap();
            ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
            let Some(Ok(Message::Close(Some(c)))) = ws.next().await else {
                panic!("no close")
            };
            assert_eq!(u16::from(c.code), 1000);
        })
        .await;
        wire.send_text("hello").await.unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(wire.read().await.unwrap());
        }
        assert_eq!(got[0], Incoming::Message("x".repeat(70_000).into_bytes()));
        assert_eq!(got[1], Incoming::Message(vec![1, 2, 3]));
        assert!(wire.partial.capacity() == 0, "no buffer kept while idle");
        wire.close().await;
        server.await.unwrap();
    }

    #[tokio::test]
    async fn pings_fragments_and_close_are_read() {
        let (mut wire, server) = pair(|mut ws| async move {
            ws.send(Message::Ping(b"beat".to_vec().into()))
                .await
                .unwrap();
            let Some(Ok(Message::Pong(p))) = ws.next().await else {
                panic!("no pong")
            };
            assert_eq!(&p[..], b"beat");
            ws.send(Message::Frame(Frame::message(
                &b"frag"[..],
                OpCode::Data(Data::Text),
                false,
            )))
            .await
            .unwrap();
            ws.send(Message::Frame(Frame::message(
                &b"ment"[..],
                OpCode::Data(Data::Continue),
                true,
            )))
            .await
            .unwrap();
            ws.send(Message::Close(Some(
                tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: CloseCode::Away,
                    reason: "restart".into(),
                },
            )))
            .await
            .unwrap();
        })
        .await;
        let first = wire.read().await.unwrap();
        assert_eq!(first, vec![Incoming::Ping(b"beat".to_vec())]);
        wire.pong(b"beat").await.unwrap();
        let mut got = Vec::new();
        while !matches!(got.last(), Some(Incoming::Close(_))) {
            got.extend(wire.read().await.unwrap());
        }
        assert_eq!(
            got,
            vec![
                Incoming::Message(b"fragment".to_vec()),
                Incoming::Close(Some((1001, "restart".into())))
            ]
        );
        server.await.unwrap();
        assert_eq!(wire.read().await, Err("the socket ended".to_string()));
    }

    #[tokio::test]
    async fn wss_carries_messages_both_ways_over_tls_with_the_host_header_of_the_url() {
        let ca = crate::engine::http::tls::tests::ca("wss-ca.pem");
        let acceptor = crate::engine::http::tls::tests::server_config(&ca, &["localhost"], None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            // The first client refuses the certificate; the second speaks.
            let tls = loop {
                let (tcp, _) = listener.accept().await.unwrap();
                if let Ok(tls) = acceptor.accept(tcp).await {
                    break tls;
                }
            };
            let mut host = None;
            #[allow(clippy::result_large_err)] // the signature tungstenite's callback has
            let check = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                host = req.headers().get("host").cloned();
                Ok(resp)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tls, check)
                .await
                .unwrap();
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                panic!("no text")
            };
            ws.send(Message::text(format!("{t} back").repeat(2_000)))
                .await
                .unwrap();
            let Some(Ok(Message::Close(_))) = ws.next().await else {
                panic!("no close")
            };
            host
        });
        let url = format!("wss://localhost:{port}/");
        // Without the CA: one line, the URL and why.
        let e = Wire::connect(&url, &Tls::new(false, None), None)
            .await
            .err()
            .unwrap();
        assert!(
            e.starts_with(&format!(
                "WebSocket {url}: TLS certificate not accepted: unknown issuer"
            )),
            "{e}"
        );
        let tls = Tls::new(false, Some(ca.file.clone()));
        let mut wire = Wire::connect(&url, &tls, None).await.unwrap();
        wire.send_text("hello").await.unwrap();
        let mut got = Vec::new();
        while got.is_empty() {
            got.extend(wire.read().await.unwrap());
        }
        let expected = "hello back".repeat(2_000).into_bytes();
        assert_eq!(got, vec![Incoming::Message(expected)]);
        assert!(wire.partial.capacity() == 0, "no buffer kept while idle");
        wire.close().await;
        let host = server.await.unwrap();
        assert_eq!(host.unwrap(), format!("localhost:{port}").as_str());
    }

    #[tokio::test]
    async fn a_refused_or_non_websocket_server_is_one_line() {
        let tls = Tls::new(false, None);
        let e = Wire::connect("ws://127.0.0.1:1/ws", &tls, None)
            .await
            .err()
            .unwrap();
        assert!(e.starts_with("WebSocket ws://127.0.0.1:1/ws: "), "{e}");
        assert!(e.contains("refused"), "{e}");
        let e = Wire::connect("http://127.0.0.1:1/ws", &tls, None)
            .await
            .err()
            .unwrap();
        assert!(e.starts_with("WebSocket http://127.0.0.1:1/ws: "), "{e}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut b = [0; 1024];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let e = Wire::connect(&url, &tls, None).await.err().unwrap();
        assert_eq!(
            e,
            format!("WebSocket {url}: HTTP error: 404 (expected 101 Switching Protocols)")
        );
    }

    #[test]
    fn a_frame_split_across_reads_waits_for_its_rest() {
        let mut frame = Vec::new();
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Data(Data::Text),
            mask: None,
        };
        header.format(300, &mut frame).unwrap();
        frame.extend(std::iter::repeat_n(b'a', 300));
        let (mut assembling, mut out) = (None, Vec::new());
        assert_eq!(parse(&frame[..1], &mut assembling, &mut out), Ok(0));
        assert_eq!(parse(&frame[..200], &mut assembling, &mut out), Ok(0));
        assert!(out.is_empty());
        let mut two = frame.clone();
        two.extend_from_slice(&frame[..10]);
        assert_eq!(parse(&two, &mut assembling, &mut out), Ok(frame.len()));
        assert_eq!(out, vec![Incoming::Message(vec![b'a'; 300])]);
    }
}
