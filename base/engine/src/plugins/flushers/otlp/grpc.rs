//! OTLP/gRPC: a chunk body (already an `ExportLogsServiceRequest`) sent through a tonic
//! channel with a codec that passes the bytes through, on a current-thread runtime owned by
//! the output; TLS by our own rustls (ring) connector.

use super::http_flusher::{self, Tls};
use crate::api::prelude::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_rustls::rustls;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder as TonicEncoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::http::Uri;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// The export method.
const EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// `google.rpc.Status`: what gRPC's `grpc-status-details-bin` and OTLP/HTTP error bodies hold.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub(super) code: i32,
    #[prost(string, tag = "2")]
    pub(super) message: String,
    #[prost(message, repeated, tag = "3")]
    pub(super) details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Any {
    #[prost(string, tag = "1")]
    pub(super) type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub(super) retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub(super) seconds: i64,
    #[prost(int32, tag = "2")]
    pub(super) nanos: i32,
}

/// Checks a gRPC `Endpoint`: `http://` or `https://` with a host, or a bare `host:port`
/// (plaintext, as grpc-go dials it).
pub(super) fn endpoint(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("is required".into());
    }
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let uri = Uri::try_from(full.as_str()).map_err(|e| format!("`{text}`: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{text}` is not http://, https:// or host:port")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("`{text}`: a gRPC endpoint has no path"));
    }
    Ok(full)
}

/// One gRPC destination.
pub(super) struct Grpc {
    endpoint: tonic::transport::Endpoint,
    connector: Connector,
    metadata: MetadataMap,
    gzip: bool,
    timeout: Duration,
    /// Made at the first write, on the flush thread.
    rt: Option<tokio::runtime::Runtime>,
    channel: Option<tonic::transport::Channel>,
}

impl Grpc {
    pub(super) fn new(
        endpoint: &str,
        headers: &[(String, String)],
        gzip: bool,
        timeout: Duration,
        tls: &Tls,
    ) -> Result<Self, DetailError> {
        let https = endpoint.starts_with("https://");
        let tls = if https {
            Some(client_config(tls)?)
        } else {
            if tls.ca_file.len() + tls.cert_file.len() + tls.key_file.len() > 0 {
                let why = "TLS files are set but Endpoint is not https://";
                return Err(DetailError::new("Endpoint", why));
            }
            None
        };
        let ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| DetailError::new("Endpoint", e.to_string()))?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("plugin-engine/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| DetailError::new("Endpoint", e.to_string()))?;
        let mut metadata = MetadataMap::new();
        for (k, v) in headers {
            let field = || format!("Headers.{k}");
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| DetailError::new(field(), "not a valid gRPC metadata key"))?;
            let value = MetadataValue::try_from(v.as_str())
                .map_err(|_| DetailError::new(field(), "not a valid gRPC metadata value"))?;
            metadata.insert(key, value);
        }
        Ok(Self {
            endpoint: ep,
            connector: Connector { tls, timeout },
            metadata,
            gzip,
            timeout,
            rt: None,
            channel: None,
        })
    }

    /// Sends one export request; the server's answer and a name for it.
    pub(super) fn send(
        &mut self,
        body: Bytes,
    ) -> Result<(ExportLogsServiceResponse, String), WriteError> {
        let to = self.endpoint.uri().to_string();
        if self.rt.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| WriteError::Exit(format!("gRPC runtime: {e}")))?;
            self.rt = Some(rt);
        }
        let Some(rt) = self.rt.as_ref() else {
            return Err(WriteError::Exit("no gRPC runtime".into()));
        };
        let (endpoint, connector, channel) = (&self.endpoint, &self.connector, &mut self.channel);
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        let (gzip, timeout) = (self.gzip, self.timeout);
        let call = async move {
            let channel = channel
                .get_or_insert_with(|| endpoint.connect_with_connector_lazy(connector.clone()))
                .clone();
            let mut client = tonic::client::Grpc::new(channel);
            if gzip {
                client = client
                    .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
            }
            client
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
            let path = PathAndQuery::from_static(EXPORT);
            client.unary(request, path, PassThrough).await
        };
        let timed = async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "no answer within {timeout:?}"
                ))),
            }
        };
        let answer =
            block_on(rt, timed).ok_or_else(|| WriteError::Exit("the gRPC call panicked".into()))?;
        match answer {
            Ok(resp) => Ok((resp.into_inner(), format!("gRPC {to}"))),
            Err(status) => Err(status_error(&status, &to)),
        }
    }
}

impl Drop for Grpc {
    fn drop(&mut self) {
        self.channel = None;
        // Dropping a runtime may not block inside another runtime: let it go in the
        // background.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `f` on `rt`; on a thread of its own when this one is inside a runtime already (a
/// `Buffer.Mode: none` flusher called from the engine's workers). `None` if `f` panicked.
fn block_on<F>(rt: &tokio::runtime::Runtime, f: F) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return Some(rt.block_on(f));
    }
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join().ok())
}

/// What a gRPC status means for the chunk (see the module docs of `flusher_otlp`).
pub(super) fn status_error(status: &Status, to: &str) -> WriteError {
    let why = format!(
        "gRPC {to}: {:?}: {}",
        status.code(),
        &status.message()[..status.message().len().min(super::QUOTED * 2)]
    );
    // A failure of the connection itself (tonic gives it a source) is always retried.
    let transport = std::error::Error::source(status).is_some();
    match status.code() {
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Cancelled
        | Code::OutOfRange
        | Code::DataLoss => WriteError::Retry {
            why,
            after: retry_delay(status.details()),
        },
        _ if transport => WriteError::retry(why),
        _ => WriteError::Unrecoverable(why),
    }
}

/// The delay of a `google.rpc.RetryInfo` in a status's details, capped as `Retry-After`.
pub(super) fn retry_delay(details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(details).ok()?;
    let info = status
        .details
        .iter()
        .find(|a| a.type_url.ends_with("/google.rpc.RetryInfo"))?;
    let d = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).unwrap_or(0).min(999_999_999);
    Some(Duration::new(secs, nanos).min(http_flusher::MAX_RETRY_AFTER))
}

/// Sends `Bytes` as they are and decodes the `ExportLogsServiceResponse`.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = ExportLogsServiceResponse;
    type Encoder = PassThrough;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

impl TonicEncoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportLogsServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        // An answer we cannot read is still a success: the server said OK.
        Ok(Some(
            ExportLogsServiceResponse::decode(src).unwrap_or_default(),
        ))
    }
}

/// A byte stream the connector hands to hyper.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// Connects TCP (within `timeout`), then TLS with ALPN `h2` when configured.
#[derive(Clone)]
struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<hyper_util::rt::TokioIo<Box<dyn Io>>>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<Box<dyn Io>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            use std::io::{Error, ErrorKind};
            let host = uri.host().unwrap_or("");
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .unwrap_or(if me.tls.is_some() { 443 } else { 80 });
            let late = |what: &str| {
                let why = format!("{what} {host}:{port}: no answer within {:?}", me.timeout);
                Error::new(ErrorKind::TimedOut, why)
            };
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            let tcp = tokio::time::timeout(me.timeout, connect)
                .await
                .map_err(|_| late("connect to"))??;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = match &me.tls {
                None => Box::new(tcp),
                Some(config) => {
                    let name = rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
                    let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
                    let tls = tokio::time::timeout(me.timeout, tls)
                        .await
                        .map_err(|_| late("TLS handshake with"))??;
                    Box::new(tls)
                }
            };
            Ok(hyper_util::rt::TokioIo::new(io))
        })
    }
}

/// The rustls (ring) client configuration of `TLS` (checked as `flusher_http` does first),
/// offering HTTP/2 by ALPN.
fn client_config(t: &Tls) -> Result<Arc<rustls::ClientConfig>, DetailError> {
    http_flusher::tls_config(t)?;
    let mut config = (*crate::plugins::flushers::net::client_config(t, "TLS")?).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
