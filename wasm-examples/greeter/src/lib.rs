//! `greeter` — a wasm32-wasip2 component exporting `wasi:http/incoming-handler` (the
//! `wasi:http/proxy` world: what `wasmtime serve` runs, and what podctl serves on the member's
//! `containerPort`).
//!
//! Every request is answered with `200`, `content-type: text/plain` and
//!
//! ```text
//! Hello from the WASM greeter!
//! method=GET path=/x
//! ```
//!
//! For the path `/echo` it also makes an outgoing `wasi:http` request to
//! `http://localhost:8080/from-greeter` (the pod's OCI echo container, reached over the pod's
//! shared loopback) and appends that response's status and body, proving WASM -> OCI traffic
//! through `wasi:http/outgoing-handler`. `$ECHO_ADDR` (`host:port`), when the host passes
//! environment variables to the component, replaces `localhost:8080`.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};

/// The pod's echo container, as seen from inside the pod's network namespace.
const DEFAULT_ECHO_ADDR: &str = "localhost:8080";
const ECHO_PATH: &str = "/from-greeter";
/// Upper bound on how much of the echo container's answer is appended.
const MAX_ECHO_BODY: usize = 256 * 1024;

struct Greeter;

wasi::http::proxy::export!(Greeter);

impl wasi::exports::http::incoming_handler::Guest for Greeter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = method_name(&request.method());
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let path = path_with_query.split('?').next().unwrap_or("/").to_string();
        drop(request);

        let mut body = format!("Hello from the WASM greeter!\nmethod={method} path={path}\n");
        if path == "/echo" {
            let authority = std::env::var("ECHO_ADDR")
                .ok()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| DEFAULT_ECHO_ADDR.to_string());
            let url = format!("http://{authority}{ECHO_PATH}");
            match fetch_echo(&authority) {
                Ok((status, echo)) => {
                    body.push_str(&format!("--- GET {url} -> {status}\n"));
                    body.push_str(&String::from_utf8_lossy(&echo));
                }
                Err(e) => body.push_str(&format!("--- GET {url} failed: {e}\n")),
            }
        }

        respond(response_out, body.as_bytes());
    }
}

fn respond(response_out: ResponseOutparam, body: &[u8]) {
    let headers = match Fields::from_list(&[
        ("content-type".to_string(), b"text/plain".to_vec()),
        ("content-length".to_string(), body.len().to_string().into_bytes()),
    ]) {
        Ok(h) => h,
        Err(e) => {
            ResponseOutparam::set(response_out, Err(ErrorCode::InternalError(Some(format!("{e:?}")))));
            return;
        }
    };
    let response = OutgoingResponse::new(headers);
    // A fresh response's status is already 200; set it explicitly anyway.
    let _ = response.set_status_code(200);
    let Ok(outgoing_body) = response.body() else {
        ResponseOutparam::set(
            response_out,
            Err(ErrorCode::InternalError(Some("no response body".into()))),
        );
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));

    if let Ok(stream) = outgoing_body.write() {
        // blocking-write-and-flush accepts at most 4096 bytes per call.
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}

/// `GET http://<authority>/from-greeter` through `wasi:http/outgoing-handler`.
fn fetch_echo(authority: &str) -> Result<(u16, Vec<u8>), String> {
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "invalid method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "invalid scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "invalid authority")?;
    request
        .set_path_with_query(Some(ECHO_PATH))
        .map_err(|()| "invalid path")?;
    // No request body: finish it right away (it must be taken before the request is sent).
    let request_body = request.body().map_err(|()| "request body already taken")?;
    OutgoingBody::finish(request_body, None).map_err(|e| format!("{e:?}"))?;

    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| "response already taken".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();

    let incoming_body = response.consume().map_err(|()| "response body already taken")?;
    let stream = incoming_body
        .stream()
        .map_err(|()| "response body stream already taken")?;
    let mut body = Vec::new();
    while body.len() < MAX_ECHO_BODY {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the response body: {e:?}")),
        }
    }
    drop(stream);
    drop(incoming_body);
    drop(response);
    Ok((status, body))
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other.as_str(),
    }
    .to_string()
}
