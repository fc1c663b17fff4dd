//! Network probes and hooks, run from inside the pod's network namespace as kubelet runs them from
//! the node: a TCP connect, an HTTP(S) GET with the manifest's headers, and the standard gRPC health
//! check. No curl or grpc_health_probe is needed in the image, and they work for WASM members too.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Sent unless the manifest sets its own; apps that look for kubelet's prefix still find it.
const USER_AGENT: &str = "kube-probe/podctl";

pub(super) async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("no connection to {host}:{port} within {timeout:?}"))?
        .map(drop)
        .map_err(|e| format!("{host}:{port}: {e}"))
}

/// One httpGet: a status from 200 to 399 passes, as in kubelet.
pub(super) struct HttpGet<'a> {
    pub host: &'a str,
    pub port: u16,
    pub path: &'a str,
    pub https: bool,
    pub headers: &'a [(String, String)],
}

impl HttpGet<'_> {
    pub(super) async fn run(&self, timeout: Duration) -> Result<(), String> {
        let what = format!(
            "HTTP{} GET {} on port {}",
            if self.https { "S" } else { "" },
            self.path,
            self.port
        );
        let exchange = async {
            let tcp = TcpStream::connect((self.host, self.port))
                .await
                .map_err(|e| format!("{}:{}: {e}", self.host, self.port))?;
            if self.https {
                let name = server_name(self.host)?;
                let tls = tokio_rustls::TlsConnector::from(tls_config())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {}:{}: {e}", self.host, self.port))?;
                status_of(tls, &self.request()).await
            } else {
                status_of(tcp, &self.request()).await
            }
        };
        let code = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{what} timed out after {timeout:?}"))??;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("{what} answered {code}"))
        }
    }

    /// The request kubelet would send: its defaults for Host, User-Agent and Accept unless the
    /// manifest names them, then the manifest's headers in their order.
    fn request(&self) -> String {
        let given = |name: &str| self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut request = format!("GET {} HTTP/1.1\r\n", self.path);
        if !given("Host") {
            let host = if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.to_string()
            };
            request.push_str(&format!("Host: {host}:{}\r\n", self.port));
        }
        if !given("User-Agent") {
            request.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
        }
        if !given("Accept") {
            request.push_str("Accept: */*\r\n");
        }
        for (name, value) in self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        request
    }
}

/// Sends the request and reads the status code of the answer's first line.
async fn status_of(mut stream: impl AsyncRead + AsyncWrite + Unpin, request: &str) -> Result<u16, String> {
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    // The status line is short; stop at its end or at a bound, whichever comes first.
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    code.ok_or_else(|| format!("the answer is not HTTP: {:?}", line.lines().next().unwrap_or("")))
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is neither an IP address nor a DNS name: {e}"))
}

/// TLS that does not verify the server's certificate, as kubelet's HTTPS probes; the handshake's
/// signatures are still checked, so the answer comes from whoever holds the certificate's key.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `grpc.health.v1.Health/Check` over plain HTTP/2; only SERVING passes, as in kubelet.
pub(super) async fn grpc(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| format!("{authority}: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("gRPC connection to {authority}: {e}"))?;
        let request = HealthCheckRequest {
            service: service.to_string(),
        };
        let answer = HealthClient::new(channel)
            .check(request)
            .await
            .map_err(|status| format!("gRPC health check on {authority}: {}", status.message()))?;
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!(
                "gRPC service {service:?} on port {port} answered {}",
                other.as_str_name()
            )),
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| format!("gRPC health check on {authority} timed out after {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each connection with `status` and sends back what it was asked.
    async fn recording_server(status: &'static str) -> (u16, tokio::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 256];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = conn.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let _ = conn
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
                let _ = tx.send(String::from_utf8(request).unwrap()).await;
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn http_get_sends_the_manifests_headers_in_order_and_honours_a_host_header() {
        let (port, mut requests) = recording_server("204 No Content").await;
        let headers = [
            ("X-Second".to_string(), "2".to_string()),
            ("Host".to_string(), "probe.example".to_string()),
            ("X-First".to_string(), "a b".to_string()),
        ];
        let get = HttpGet {
            host: "127.0.0.1",
            port,
            path: "/healthz?x=1",
            https: false,
            headers: &headers,
        };
        get.run(Duration::from_secs(5)).await.unwrap();
        let request = requests.recv().await.unwrap();
        let lines: Vec<&str> = request.lines().collect();
        assert_eq!(
            lines,
            [
                "GET /healthz?x=1 HTTP/1.1",
                "User-Agent: kube-probe/podctl",
                "Accept: */*",
                "X-Second: 2",
                "Host: probe.example",
                "X-First: a b",
                "Connection: close",
                ""
            ]
        );
    }

    #[tokio::test]
    async fn http_get_fails_on_a_status_from_400_and_names_it() {
        let (port, _requests) = recording_server("503 Service Unavailable").await;
        let get = HttpGet {
            host: "127.0.0.1",
            port,
            path: "/",
            https: false,
            headers: &[],
        };
        let why = get.run(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(why, format!("HTTP GET / on port {port} answered 503"));
    }

    #[tokio::test]
    async fn https_get_takes_a_self_signed_certificate() {
        use rustls::pki_types::pem::PemObject;
        let certs =
            rustls::pki_types::CertificateDer::pem_slice_iter(include_bytes!("../../tests/data/probe-tls/cert.pem"))
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(include_bytes!("../../tests/data/probe-tls/key.pem"))
                .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.ends_with(b"\r\n\r\n") {
                let n = tls.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            tls.shutdown().await.unwrap();
            String::from_utf8(request).unwrap()
        });
        let headers = [("X-Over".to_string(), "tls".to_string())];
        let get = HttpGet {
            host: "127.0.0.1",
            port,
            path: "/secure",
            https: true,
            headers: &headers,
        };
        get.run(Duration::from_secs(5)).await.unwrap();
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /secure HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nX-Over: tls\r\n"), "{request}");

        // Plain HTTP against the TLS port is no answer at all.
        let plain = HttpGet { https: false, ..get };
        assert!(plain.run(Duration::from_secs(2)).await.is_err());
    }

    #[tokio::test]
    async fn grpc_passes_only_for_a_serving_service() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("ready", tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("draining", tonic_health::ServingStatus::NotServing)
            .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let timeout = Duration::from_secs(5);
        grpc("127.0.0.1", port, "ready", timeout).await.unwrap();
        // The empty name is the server as a whole, which the reporter marks SERVING.
        grpc("127.0.0.1", port, "", timeout).await.unwrap();
        let why = grpc("127.0.0.1", port, "draining", timeout).await.unwrap_err();
        assert_eq!(
            why,
            format!("gRPC service \"draining\" on port {port} answered NOT_SERVING")
        );
        let why = grpc("127.0.0.1", port, "unknown", timeout).await.unwrap_err();
        assert!(why.contains("gRPC health check"), "{why}");
    }
}
