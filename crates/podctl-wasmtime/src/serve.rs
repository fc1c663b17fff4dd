//! Serving a wasi:http proxy component on `0.0.0.0:port` like `wasmtime serve`: a hyper 1
//! HTTP/1.1 listener, a fresh store and instance per request from the pre-instantiated
//! `ProxyPre`, and a graceful drain on stop. Guests' own outgoing requests are `outgoing.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView as _;

use crate::control::{requested, Control, Shared};
use crate::error::WasmError;
use crate::exit::{exit_info, ExitInfo, ExitReason};
use crate::store::{ComponentData, StoreFactory};
use crate::usage::timed;

/// Binds the proxy's listener (SO_REUSEADDR, so a restarted member can rebind at once).
pub(crate) fn bind(name: &str, port: u16) -> Result<TcpListener, WasmError> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let err = |source| WasmError::Listen {
        name: name.into(),
        port,
        source,
    };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

/// Counts connections and requests (including guest tasks still streaming a body).
struct InFlight(watch::Sender<usize>);

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0 .0.send_modify(|n| *n -= 1);
    }
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.0.send_modify(|n| *n += 1);
        InFlightGuard(self.clone())
    }

    async fn idle(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

struct Server {
    factory: Arc<StoreFactory>,
    pre: ProxyPre<ComponentData>,
    inflight: Arc<InFlight>,
    /// Set after the grace period: guests still running are dropped.
    abort: watch::Sender<bool>,
    next_id: AtomicU64,
}

/// The proxy member's task: accept until stopped, then drain and end.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    factory: Arc<StoreFactory>,
    pre: ProxyPre<ComponentData>,
    listener: TcpListener,
) -> ExitInfo {
    let server = Arc::new(Server {
        factory,
        pre,
        inflight: Arc::new(InFlight(watch::channel(0).0)),
        abort: watch::channel(false).0,
        next_id: AtomicU64::new(0),
    });
    let drain = watch::channel(false).0;
    let mut control = shared.control.subscribe();

    let request = loop {
        tokio::select! {
            c = requested(&mut control, |c| *c != Control::Run) => break c,
            r = listener.accept() => match r {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let guard = server.inflight.enter();
                    tokio::spawn(connection(server.clone(), stream, drain.subscribe(), guard));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    server.factory.log_line(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    };
    drop(listener);
    shared.ready.store(false, Ordering::SeqCst);
    drain.send_replace(true);

    let drained = match request {
        Control::Stop(grace) => tokio::select! {
            r = tokio::time::timeout(grace, server.inflight.idle()) => r.is_ok(),
            _ = requested(&mut control, |c| *c == Control::Kill) => false,
        },
        _ => *server.inflight.0.borrow() == 0,
    };
    if drained {
        return exit_info(
            0,
            ExitReason::Stopped,
            "stopped by podctl: listener closed, all requests finished".into(),
        );
    }
    // Spinning guests trap at their next epoch tick; guests blocked in WASI calls are dropped.
    shared.interrupt.store(true, Ordering::SeqCst);
    server.abort.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), server.inflight.idle()).await;
    let message = match request {
        Control::Stop(grace) => {
            format!("stopped by podctl: requests still running after the {grace:?} grace period were interrupted")
        }
        _ => "killed by podctl: running requests were interrupted".into(),
    };
    exit_info(137, ExitReason::Stopped, message)
}

async fn connection(server: Arc<Server>, stream: TcpStream, mut drain: watch::Receiver<bool>, _guard: InFlightGuard) {
    let svc_server = server.clone();
    let service = hyper::service::service_fn(move |req| {
        let server = svc_server.clone();
        async move { Ok::<_, Infallible>(server.handle(req).await) }
    });
    let mut conn = pin!(http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service));
    let mut abort = server.abort.subscribe();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = raised(&mut drain) => {
            // Finish the request in progress (if any), then close instead of keeping alive.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = raised(&mut abort) => {
                    // Interrupted guests turn into 500s: give the connection a moment to send
                    // them (and the handler to log them) before it is dropped.
                    let _ = tokio::time::timeout(Duration::from_millis(250), conn.as_mut()).await;
                }
            }
        }
    }
}

/// Resolves once the flag is (or already was) raised, or its sender is gone.
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|f| *f).await;
}

impl Server {
    async fn handle(self: Arc<Self>, req: hyper::Request<Incoming>) -> hyper::Response<HyperOutgoingBody> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let what = format!("request {id} ({} {})", req.method(), req.uri());
        match self.clone().dispatch(req, &what).await {
            Ok(resp) => resp,
            Err(message) => {
                self.factory.log_line(&format!("{what}: {message}"));
                error_response(hyper::StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error\n")
            }
        }
    }

    async fn dispatch(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
        what: &str,
    ) -> Result<hyper::Response<HyperOutgoingBody>, String> {
        let guard = self.inflight.enter();
        let mut store = self.factory.component_store().map_err(|e| e.to_string())?;
        let (tx, rx) = oneshot::channel();
        let (req, out) = {
            let mut http = store.data_mut().http();
            let req = http
                .new_incoming_request(Scheme::Http, req)
                .map_err(|e| format!("{e:#}"))?;
            let out = http.new_response_outparam(tx).map_err(|e| format!("{e:#}"))?;
            (req, out)
        };
        let pre = self.pre.clone();
        let factory = self.factory.clone();
        let mut abort = self.abort.subscribe();
        // The guest runs in its own task: it may keep streaming the body after the response head.
        // Its CPU time is the member's.
        let usage = self.factory.usage.clone();
        let task = tokio::spawn(timed(usage, async move {
            let _guard = guard;
            let result = {
                let run = async {
                    let proxy = pre.instantiate_async(&mut store).await?;
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out)
                        .await
                };
                tokio::select! {
                    r = run => r.map_err(Some),
                    _ = raised(&mut abort) => Err(None),
                }
            };
            match result {
                Ok(()) => Ok(()),
                Err(Some(e)) => {
                    let info = factory.failure(&e, store.data().limit_refused());
                    Err(StoreFactory::log_detail(&info, &e))
                }
                Err(None) => Err("interrupted by podctl stop".to_string()),
            }
        }));

        let log_later =
            |task: tokio::task::JoinHandle<Result<(), String>>, factory: Arc<StoreFactory>, what: String| {
                tokio::spawn(async move {
                    if let Ok(Err(message)) = task.await {
                        factory.log_line(&format!("{what}: {message}"));
                    }
                });
            };
        match rx.await {
            Ok(Ok(resp)) => {
                log_later(task, self.factory.clone(), what.to_string());
                Ok(resp)
            }
            Ok(Err(code)) => {
                log_later(task, self.factory.clone(), what.to_string());
                Err(format!("the component answered with error {code:?}"))
            }
            Err(_) => match task.await {
                Ok(Ok(())) => Err("the component returned without setting a response".into()),
                Ok(Err(message)) => Err(message),
                Err(e) => Err(format!("guest task failed: {e}")),
            },
        }
    }
}

fn error_response(status: hyper::StatusCode, text: &'static str) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
