//! Guests' outgoing HTTP (`wasi:http/outgoing-handler`): plain HTTP/1.1 over TCP to what the
//! pod's network namespace reaches. HTTPS is refused because this build carries no TLS stack.

use std::time::Duration;

use http::uri::Scheme as UriScheme;
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// `wasi:http/outgoing-handler` for pod members: plain HTTP/1.1 to any address the pod's network
/// namespace can reach (e.g. a sibling container on `localhost:8080`). `https` is reported to the
/// guest as an unsupported scheme.
pub(crate) struct PlainHttpHooks;

type IoFuture = Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>;

impl WasiHttpHooks for PlainHttpHooks {
    fn is_supported_scheme(&mut self, scheme: &UriScheme) -> bool {
        *scheme == UriScheme::HTTP
    }

    fn default_scheme(&mut self) -> Option<UriScheme> {
        Some(UriScheme::HTTP)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn std::future::Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send> {
        Box::new(send_plain(request, options))
    }
}

async fn send_plain(
    mut req: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    let authority = req.uri().authority().ok_or(HttpError::HttpRequestUriInvalid)?;
    let addr = if authority.port().is_some() {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_TIMEOUT);

    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Connect)?;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    let conn = tokio::spawn(conn);

    // Origin-form request target: the authority travels in the Host header.
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let resp = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    let resp = resp.map(|body| body.map_err(HttpError::from).boxed_unsync());
    let io: IoFuture = Box::new(async move {
        match conn.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HttpError::from(e)),
            Err(_) => Err(HttpError::ConnectionTerminated),
        }
    });
    Ok((resp, io))
}
