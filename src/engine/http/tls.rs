//! The run's TLS client settings, one for every connection acaload opens: the target's
//! requests, watched agents, the edge agents' forwards and WebSockets, the admin WebSocket.
//! Certificates are checked against the system's roots (rustls-native-certs, which reads
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` as OpenSSL does) plus the CA file the plan or the command
//! line names, unless the plan opts out (`insecure_skip_tls_verify`). The crypto provider is
//! ring's, the one rustls is built with. A certificate that does not verify is
//! described in words: unknown issuer, name mismatch, expired.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A connection a WebSocket runs over: plain TCP, or TLS over it.
pub type Stream =
    tokio_util::either::Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// How this run's connections check certificates. The rustls configuration is built on the
/// first TLS connection (loading the system's roots costs time and memory a plain-http run
/// never needs) and shared by every clone.
#[derive(Clone)]
pub struct Tls(Arc<Inner>);

struct Inner {
    insecure: bool,
    ca_file: Option<PathBuf>,
    config: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Tls {
    /// Certificates verified against the system's roots and `ca_file`'s, or not at all
    /// when `insecure`.
    pub fn new(insecure: bool, ca_file: Option<PathBuf>) -> Tls {
        Tls(Arc::new(Inner {
            insecure,
            ca_file,
            config: OnceLock::new(),
        }))
    }

    /// The rustls configuration; an error is one line (a CA file that cannot be read, no
    /// roots at all).
    pub fn config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.0
            .config
            .get_or_init(|| build(self.0.insecure, self.0.ca_file.as_deref()).map(Arc::new))
            .clone()
    }

    /// Opens TCP to `host:port` (no delay), and TLS over it when `secure`, checking the
    /// certificate for `host`. The error is one line, a certificate's problem in words.
    pub async fn connect(&self, host: &str, port: u16, secure: bool) -> Result<Stream, String> {
        let io = |e: std::io::Error| super::root_cause(&e);
        let tcp = TcpStream::connect((host, port)).await.map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        if !secure {
            return Ok(Stream::Left(tcp));
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("`{host}` is not a name a TLS certificate can be for"))?;
        let tls = tokio_rustls::TlsConnector::from(self.config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| certificate_problem(&e).unwrap_or_else(|| io(e)))?;
        Ok(Stream::Right(Box::new(tls)))
    }
}

/// Where a `ws://` or `wss://` URI leads: its host without an IPv6 address's brackets (where
/// TCP goes, and TLS's server name), its port (80 or 443 by default), and whether it is
/// `wss://`.
pub fn websocket_address(uri: &http::Uri) -> Result<(String, u16, bool), String> {
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err("not a ws:// or wss:// URL".into()),
    };
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .ok_or("no host")?;
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    Ok((host, port, secure))
}

/// The client configuration: no verification when `insecure`; else the system's roots and
/// `ca_file`'s certificates.
fn build(insecure: bool, ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("cannot set up TLS: {e}"))?;
    if insecure {
        let provider = builder.crypto_provider().clone();
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(match system.errors.first() {
            Some(e) => format!("no TLS roots: {e}"),
            None => "no TLS roots: the system has none; name a CA file (target.ca_file, \
                     --ca-file or SSL_CERT_FILE)"
                .to_string(),
        });
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The certificates of a PEM file: at least one, else why not (missing, unreadable, no
/// `CERTIFICATE` block).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// What is wrong with the server's certificate, in words, when that is why `e` (or an error
/// under it) failed: `TLS certificate not accepted: unknown issuer (…)`.
pub fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    match rustls_error(e)? {
        rustls::Error::InvalidCertificate(c) => {
            Some(format!("TLS certificate not accepted: {}", describe(c)))
        }
        _ => None,
    }
}

/// The rustls error in `e`'s chain. An io::Error's `source()` skips the error it wraps (and
/// hyper-rustls wraps tokio-rustls' io::Error in another), so each is looked inside too.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| rustls_error(inner));
    wrapped.or_else(|| e.source().and_then(rustls_error))
}

/// A certificate error in words.
fn describe(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let when = |t: &rustls::pki_types::UnixTime| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs());
        humantime::format_rfc3339_seconds(at).to_string()
    };
    match c {
        E::UnknownIssuer => {
            "unknown issuer (name its CA with target.ca_file, --ca-file or SSL_CERT_FILE)".into()
        }
        E::NotValidForName => "name mismatch".into(),
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<&str> = presented.iter().map(|p| bare_name(p)).collect();
            format!(
                "name mismatch: it is for {}, not {}",
                names.join(", "),
                expected.to_str()
            )
        }
        E::Expired => "expired".into(),
        E::ExpiredContext { not_after, .. } => format!("expired on {}", when(not_after)),
        E::NotValidYet => "not valid yet".into(),
        E::NotValidYetContext { not_before, .. } => {
            format!("not valid yet (valid from {})", when(not_before))
        }
        E::Revoked => "revoked".into(),
        E::BadSignature => "bad signature".into(),
        other => format!("{other:?}"),
    }
}

/// A name as webpki presents it (`DnsName("a.example")`, `IpAddress(10.0.0.1)`), bare.
fn bare_name(presented: &str) -> &str {
    let dns = presented
        .strip_prefix("DnsName(\"")
        .and_then(|p| p.strip_suffix("\")"));
    let ip = || presented.strip_prefix("IpAddress(")?.strip_suffix(')');
    dns.or_else(ip).unwrap_or(presented)
}

/// Accepts any certificate; handshake signatures are still checked
/// (`insecure_skip_tls_verify`).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A private CA: its certificate in PEM (in a file of its own) and what signs with it.
    pub(crate) struct Ca {
        pub(crate) file: PathBuf,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    fn pem(der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// A file under the system's temporary folder, unique to this test.
    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("acaload-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn ca(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            file: temp_file(name, &pem(cert.der())),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server's TLS settings with a certificate for `names` signed by `ca`, valid until
    /// `not_after` (rcgen's default when `None`, far ahead).
    pub(crate) fn server_config(
        ca: &Ca,
        names: &[&str],
        not_after: Option<(i32, u8, u8)>,
    ) -> tokio_rustls::TlsAcceptor {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if let Some((y, m, d)) = not_after {
            params.not_before = rcgen::date_time_ymd(y - 1, m, d);
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// A TLS server on loopback (see [`server_config`]): `200 ok` to every request. Its port.
    async fn server(ca: &Ca, names: &[&str], not_after: Option<(i32, u8, u8)>) -> u16 {
        let acceptor = server_config(ca, names, not_after);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    let _ = tls.write_all(ok).await;
                    let _ = tls.flush().await;
                });
            }
        });
        port
    }

    /// What `tls` says of the server on `port`: over a plain TLS connection, and as an
    /// https:// request through the engine's HTTP client.
    async fn verdicts(tls: &Tls, port: u16) -> (Result<(), String>, Result<u16, String>) {
        let direct = tls.connect("127.0.0.1", port, true).await.map(|_| ());
        let pool = super::super::Pool::new(tls, Duration::from_secs(5), None);
        let uri: http::Uri = format!("https://127.0.0.1:{port}/").parse().unwrap();
        let mut req = http::Request::new(http_body_util::Full::new(bytes::Bytes::new()));
        *req.uri_mut() = uri.clone();
        let t = Duration::from_secs(5);
        let https = match pool.exchange(req, &uri, t, t).await {
            Ok((parts, _)) => Ok(parts.status.as_u16()),
            Err(super::super::HttpError::Connect { why, .. }) => Err(why),
            Err(e) => Err(e.to_string()),
        };
        (direct, https)
    }

    #[tokio::test]
    async fn a_certificate_signed_by_the_ca_file_verifies() {
        let ca = ca("ok-ca.pem");
        let port = server(&ca, &["127.0.0.1", "localhost"], None).await;
        let tls = Tls::new(false, Some(ca.file.clone()));
        assert_eq!(verdicts(&tls, port).await, (Ok(()), Ok(200)));
        // By name too: the server name is the URL's host.
        assert!(tls.connect("localhost", port, true).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_issuer_is_named_with_where_to_give_the_ca() {
        let ca = ca("unknown-ca.pem");
        let port = server(&ca, &["127.0.0.1"], None).await;
        let why = "TLS certificate not accepted: unknown issuer (name its CA with \
                   target.ca_file, --ca-file or SSL_CERT_FILE)";
        assert_eq!(
            verdicts(&Tls::new(false, None), port).await,
            (Err(why.into()), Err(why.into()))
        );
        // The opt-out for self-signed labs accepts it.
        let insecure = Tls::new(true, None);
        assert_eq!(verdicts(&insecure, port).await, (Ok(()), Ok(200)));
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_is_a_name_mismatch() {
        let ca = ca("mismatch-ca.pem");
        let port = server(&ca, &["mediator.example", "10.0.0.1"], None).await;
        let why = "TLS certificate not accepted: name mismatch: it is for mediator.example, \
                   10.0.0.1, not 127.0.0.1";
        let tls = Tls::new(false, Some(ca.file.clone()));
        assert_eq!(
            verdicts(&tls, port).await,
            (Err(why.into()), Err(why.into()))
        );
    }

    #[tokio::test]
    async fn an_expired_certificate_is_named_with_its_end() {
        let ca = ca("expired-ca.pem");
        let port = server(&ca, &["127.0.0.1"], Some((2020, 1, 1))).await;
        let why = "TLS certificate not accepted: expired on 2020-01-01T00:00:00Z";
        let tls = Tls::new(false, Some(ca.file.clone()));
        assert_eq!(
            verdicts(&tls, port).await,
            (Err(why.into()), Err(why.into()))
        );
    }

    #[test]
    fn a_ca_file_must_hold_a_pem_certificate() {
        let missing = std::env::temp_dir().join("acaload-tls-no-such-file.pem");
        let e = read_ca_file(&missing).unwrap_err();
        assert!(
            e.starts_with(&format!("cannot read {}: ", missing.display())),
            "{e}"
        );
        let key_only = temp_file(
            "key-only.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert_eq!(
            read_ca_file(&key_only).unwrap_err(),
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                key_only.display()
            )
        );
        let ca = ca("good-ca.pem");
        assert_eq!(read_ca_file(&ca.file).unwrap().len(), 1);
    }
}
