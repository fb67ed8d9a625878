//! Stream connections for the protocol flushers (`flusher_forward`, `flusher_syslog`): TCP
//! or TLS (rustls, ring) to `host:port`, every step bounded by a timeout, and the TLS options
//! named as iLogtail's `pkg/tlscommon.TLSConfig` (shared with `flusher_http`).

use crate::api::DetailError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// TLS options, named as iLogtail's `pkg/tlscommon.TLSConfig`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
pub(crate) struct TlsOptions {
    /// Use TLS (stream flushers; `https://` decides for `flusher_http`).
    #[serde(alias = "Enable")]
    pub(crate) enabled: bool,
    /// PEM file of the roots that verify the server (default: Mozilla's, bundled).
    #[serde(rename = "CAFile")]
    pub(crate) ca_file: String,
    /// PEM client certificate chain (with `KeyFile`).
    pub(crate) cert_file: String,
    /// PEM private key of `CertFile`.
    pub(crate) key_file: String,
    /// Do not verify the server's certificate.
    pub(crate) insecure_skip_verify: bool,
    /// `1.0` to `1.2` (TLS 1.2 is always the least used).
    pub(crate) min_version: String,
    /// `1.3` only.
    pub(crate) max_version: String,
    /// The name the server's certificate is checked against (default: the host).
    pub(crate) server_name: String,
}

/// Reads a PEM file named by option `field`.
pub(crate) fn read_pem(field: &str, path: &str) -> Result<Vec<u8>, DetailError> {
    std::fs::read(path).map_err(|e| DetailError::new(field, format!("{path}: {e}")))
}

/// The rustls client configuration of `t` (whose fields are named under `prefix`, such as
/// `TLS`).
pub(crate) fn client_config(
    t: &TlsOptions,
    prefix: &str,
) -> Result<Arc<ClientConfig>, DetailError> {
    let field = |f: &str| format!("{prefix}.{f}");
    if !matches!(t.min_version.as_str(), "" | "1.0" | "1.1" | "1.2") {
        let why = "only 1.0 to 1.2 (TLS 1.2 and 1.3 are used)";
        return Err(DetailError::new(field("MinVersion"), why));
    }
    if !matches!(t.max_version.as_str(), "" | "1.3") {
        return Err(DetailError::new(field("MaxVersion"), "only 1.3"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DetailError::new(prefix, e.to_string()))?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if t.ca_file.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            let pem = read_pem(&field("CAFile"), &t.ca_file)?;
            for c in CertificateDer::pem_slice_iter(&pem).flatten() {
                roots.add(c).map_err(|e| {
                    DetailError::new(field("CAFile"), format!("{}: {e}", t.ca_file))
                })?;
            }
            if roots.is_empty() {
                let why = format!("no PEM certificate in {}", t.ca_file);
                return Err(DetailError::new(field("CAFile"), why));
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (t.cert_file.is_empty(), t.key_file.is_empty()) {
        (true, true) => builder.with_no_client_auth(),
        (false, false) => {
            let pem = read_pem(&field("CertFile"), &t.cert_file)?;
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&pem).flatten().collect();
            if chain.is_empty() {
                let why = format!("no PEM certificate in {}", t.cert_file);
                return Err(DetailError::new(field("CertFile"), why));
            }
            let key = PrivateKeyDer::from_pem_slice(&read_pem(&field("KeyFile"), &t.key_file)?)
                .map_err(|e| DetailError::new(field("KeyFile"), format!("{}: {e}", t.key_file)))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| DetailError::new(field("KeyFile"), format!("{}: {e}", t.key_file)))?
        }
        (empty_cert, _) => {
            let f = if empty_cert { "CertFile" } else { "KeyFile" };
            return Err(DetailError::new(
                field(f),
                "CertFile and KeyFile go together",
            ));
        }
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate (`InsecureSkipVerify`), still checking the handshake's
/// signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connected stream: plain TCP or TLS over TCP. Reads and writes are bounded by the
/// timeouts given to [`connect`].
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(s) => &s.sock,
        }
    }

    /// Changes the read timeout (`None`: the connect-time one stays).
    pub(crate) fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.tcp()
            .set_read_timeout(Some(t.max(Duration::from_millis(1))))
    }

    /// Changes the write timeout (at least 1 ms).
    pub(crate) fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        self.tcp()
            .set_write_timeout(Some(t.max(Duration::from_millis(1))))
    }

    /// Whether the peer has closed or reset the connection, checked without blocking and
    /// without consuming data (a stream protocol with no answers notices a dead peer only
    /// this way before writing into the void).
    pub(crate) fn peer_closed(&self) -> bool {
        let s = self.tcp();
        if s.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let closed = match s.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = s.set_nonblocking(false);
        closed
    }

    /// [`Stream::peer_closed`] that over TLS first reads and processes what the server sent
    /// unasked (TLS 1.3 session tickets, a `close_notify`): unread, those bytes hide a close
    /// behind them from a peek. Application data the server sends is discarded.
    pub(crate) fn closed_by_peer(&mut self) -> bool {
        let Self::Tls(s) = self else {
            return self.peer_closed();
        };
        if s.sock.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = tls_peer_closed(s);
        let _ = s.sock.set_nonblocking(false);
        closed
    }

    /// Bytes written but not yet acknowledged by the peer's TCP (Linux `SIOCOUTQ`; `None`
    /// elsewhere or when the call fails). TLS records count with their overhead.
    pub(crate) fn unacked(&self) -> Option<usize> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut n: libc::c_int = 0;
            // SAFETY: TIOCOUTQ (= SIOCOUTQ) writes one c_int through the pointer, which
            // points at a live local; the fd is ours and open for the call.
            let rc = unsafe { libc::ioctl(self.tcp().as_raw_fd(), libc::TIOCOUTQ, &mut n) };
            if rc == 0 {
                return usize::try_from(n).ok();
            }
        }
        None
    }

    /// Waits until the peer's TCP acknowledged every byte written ([`Stream::unacked`] is
    /// 0), polling; gives up when no byte was acknowledged for `timeout` (a slow reader
    /// that keeps up is waited for); returns at once where that cannot be told. An
    /// acknowledgement means the peer's kernel has the bytes, not that its program read them.
    ///
    /// # Errors
    /// No progress for `timeout`, or the peer closed meanwhile.
    pub(crate) fn wait_acked(&mut self, timeout: Duration) -> Result<(), String> {
        let mut since = std::time::Instant::now();
        let mut last = usize::MAX;
        let mut pause = Duration::from_micros(50);
        loop {
            match self.unacked() {
                None | Some(0) => return Ok(()),
                Some(n) if n < last => (last, since) = (n, std::time::Instant::now()),
                Some(n) if since.elapsed() >= timeout => {
                    return Err(format!("{n} bytes not acknowledged for {timeout:?}"));
                }
                Some(_) => {}
            }
            if self.closed_by_peer() {
                return Err("the peer closed the connection".into());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Closes both directions (TLS: after a close_notify, best effort).
    pub(crate) fn close(mut self) {
        if let Self::Tls(s) = &mut self {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.write_all(buf),
            Self::Tls(s) => s.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// Reads what a TLS server sent (the socket is non-blocking): whether it closed, reset, sent
/// `close_notify` or garbage.
fn tls_peer_closed(s: &mut rustls::StreamOwned<ClientConnection, TcpStream>) -> bool {
    let mut scratch = [0u8; 4096];
    loop {
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => return true,
            Ok(_) => match s.conn.process_new_packets() {
                Err(_) => return true,
                Ok(state) => {
                    if state.peer_has_closed() {
                        return true;
                    }
                    let mut left = state.plaintext_bytes_to_read();
                    while left > 0 {
                        match s.conn.reader().read(&mut scratch) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => left = left.saturating_sub(n),
                        }
                    }
                }
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Connects to `host:port` (each resolved address in turn, each within `timeout`), then
/// with `tls` does the handshake (checking the certificate against `server_name`, else the
/// host). Reads and writes time out after `timeout`.
///
/// # Errors
/// Resolution, connection, handshake or certificate errors, as text naming the address.
pub(crate) fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
    server_name: &str,
) -> Result<Stream, String> {
    let timeout = timeout.max(Duration::from_millis(1));
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let mut last = format!("{host}:{port}: no address");
    let mut sock = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last = format!("{host}:{port} ({a}): {e}"),
        }
    }
    let sock = sock.ok_or(last)?;
    let io = |e: io::Error| format!("{host}:{port}: {e}");
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    sock.set_write_timeout(Some(timeout)).map_err(io)?;
    sock.set_nodelay(true).map_err(io)?;
    let Some(config) = tls else {
        return Ok(Stream::Tcp(sock));
    };
    let name = if server_name.is_empty() {
        host
    } else {
        server_name
    };
    let name = ServerName::try_from(name.to_string()).map_err(|e| format!("{name}: {e}"))?;
    let conn =
        ClientConnection::new(config.clone(), name).map_err(|e| format!("{host}:{port}: {e}"))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| format!("{host}:{port}: TLS handshake: {e}"))?;
    }
    Ok(Stream::Tls(Box::new(s)))
}

/// Splits `host:port` (`[v6]:port` too); `default_port` when there is no port.
pub(crate) fn host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed ["))?;
        (h, tail.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{s:?}: the port is not a number from 1 to 65535"))?,
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn host_port_splits_names_v4_and_v6() {
        assert_eq!(host_port("a.b:24224", 1).unwrap(), ("a.b".into(), 24224));
        assert_eq!(host_port("a.b", 514).unwrap(), ("a.b".into(), 514));
        assert_eq!(host_port("[::1]:9", 1).unwrap(), ("::1".into(), 9));
        assert_eq!(host_port("::1", 7).unwrap(), ("::1".into(), 7));
        assert!(host_port(":9", 1).is_err());
        assert!(host_port("h:0", 1).is_err());
        assert!(host_port("h:x", 1).is_err());
    }

    #[test]
    fn connect_is_bounded_and_notices_a_closed_peer() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut s = connect("127.0.0.1", port, Duration::from_secs(2), None, "").unwrap();
        let (peer, _) = l.accept().unwrap();
        s.write_all(b"x").unwrap();
        assert!(!s.peer_closed());
        drop(peer);
        let t0 = std::time::Instant::now();
        while !s.peer_closed() {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "the close was not noticed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // A read with nothing coming ends at the timeout.
        drop(l);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut s = connect("127.0.0.1", port, Duration::from_millis(50), None, "").unwrap();
        let mut b = [0u8; 1];
        assert!(s.read(&mut b).is_err());
        drop(l);
        // Nobody listening: an error naming the address.
        let e = connect("127.0.0.1", port, Duration::from_millis(200), None, "")
            .err()
            .unwrap();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[test]
    fn tls_options_are_checked_naming_the_field() {
        let t = TlsOptions {
            cert_file: "/nonexistent.pem".into(),
            ..TlsOptions::default()
        };
        assert_eq!(client_config(&t, "TLS").err().unwrap().field, "TLS.KeyFile");
        let t = TlsOptions {
            ca_file: "/nonexistent.pem".into(),
            ..TlsOptions::default()
        };
        assert_eq!(client_config(&t, "TLS").err().unwrap().field, "TLS.CAFile");
        assert!(client_config(&TlsOptions::default(), "TLS").is_ok());
        let t = TlsOptions {
            insecure_skip_verify: true,
            ..TlsOptions::default()
        };
        assert!(client_config(&t, "TLS").is_ok());
    }
}
