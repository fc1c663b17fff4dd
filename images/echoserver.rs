//! podctl's HTTP echo server (a stand-in for `k8s.gcr.io/echoserver`).
//!
//! Answers every request with `200 OK` and a `text/plain` description of the request (hostname,
//! client address, method, path, query, headers lowercased and sorted, body) in the same shape as
//! the Kubernetes echoserver. Listens on `0.0.0.0:$PORT` (default 8080; `--port N` overrides),
//! one thread per connection, HTTP/1.1 keep-alive, chunked request bodies, HEAD, `Expect:
//! 100-continue`. Exits 0 immediately on SIGTERM/SIGINT so a graceful pod delete is fast.
//!
//! Built by podctl's `build.rs` as a static binary (std only, no crates) with `panic=abort`, so
//! request handling is written not to panic: one bad request must not take the server down.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SERVER_VERSION: &str = "podctl-echoserver/0.1";
const DEFAULT_PORT: u16 = 8080;
/// Request line + headers (and, separately, chunked trailers) may not exceed this.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Larger request bodies are refused with 413.
const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Beyond this many open connections new ones get 503: threads are not free.
const MAX_CONNECTIONS: usize = 1024;
/// A keep-alive connection idle this long (or a client this slow) is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;

extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn gethostname(name: *mut c_char, len: usize) -> c_int;
    fn _exit(status: c_int) -> !;
}

/// SIGTERM/SIGINT: exit 0 right away. Nothing needs draining (access log lines are flushed as
/// they are written) and a pod delete must not wait for its grace period.
extern "C" fn on_shutdown(_sig: c_int) {
    unsafe { _exit(0) }
}

static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Server-wide facts computed once at start.
struct Server {
    hostname: String,
    pod_information: String,
}

fn main() {
    // Handlers are required when running as PID 1 of a PID namespace: default dispositions
    // are ignored there.
    unsafe {
        signal(SIGINT, on_shutdown);
        signal(SIGTERM, on_shutdown);
    }

    let port = match port_from_args_and_env() {
        Ok(port) => port,
        Err(msg) => {
            let _ = writeln!(io::stderr(), "echoserver: {msg}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(err) => {
            let _ = writeln!(
                io::stderr(),
                "echoserver: cannot listen on 0.0.0.0:{port}: {err}"
            );
            std::process::exit(1);
        }
    };
    // Report the bound port, which differs from the requested one for PORT=0.
    let bound = listener.local_addr().map_or(port, |a| a.port());
    let server: &'static Server = Box::leak(Box::new(Server {
        hostname: hostname(),
        pod_information: pod_information(),
    }));
    log_line(&format!("echoserver listening on 0.0.0.0:{bound}"));

    for conn in listener.incoming() {
        let stream = match conn {
            Ok(stream) => stream,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning on accept.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        if OPEN_CONNECTIONS.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            OPEN_CONNECTIONS.fetch_sub(1, Ordering::SeqCst);
            let mut stream = stream;
            send_error(&mut stream, 503, peer, None);
            continue;
        }
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _slot = ConnectionSlot;
                serve_connection(server, stream, peer);
            });
        if spawned.is_err() {
            // The closure (and with it the slot guard) never ran.
            OPEN_CONNECTIONS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Releases a connection's place in `OPEN_CONNECTIONS` however its thread ends.
struct ConnectionSlot;

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::SeqCst);
    }
}

fn port_from_args_and_env() -> Result<u16, String> {
    let mut port = match std::env::var("PORT") {
        Ok(value) if !value.trim().is_empty() => parse_port(&value)?,
        _ => DEFAULT_PORT,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--port" || arg == "-p" {
            let value = args.next().ok_or("--port needs a value")?;
            port = parse_port(&value)?;
        } else if let Some(value) = arg.strip_prefix("--port=") {
            port = parse_port(value)?;
        } else if arg == "--help" || arg == "-h" {
            let _ = writeln!(
                io::stdout(),
                "usage: echoserver [--port N]   (default: $PORT or {DEFAULT_PORT})"
            );
            std::process::exit(0);
        } else {
            return Err(format!(
                "unknown argument {arg:?} (usage: echoserver [--port N])"
            ));
        }
    }
    Ok(port)
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .trim()
        .parse::<u16>()
        .map_err(|_| format!("invalid port {value:?}"))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    let rc = unsafe { gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::from("unknown");
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(buf.get(..len).unwrap_or(&[])).into_owned()
}

/// Like the Kubernetes echoserver: show the downward-API variables if the pod sets them.
fn pod_information() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let fields = [
        ("node name", var("NODE_NAME")),
        ("pod name", var("POD_NAME")),
        ("pod namespace", var("POD_NAMESPACE")),
        ("pod IP", var("POD_IP")),
    ];
    if fields.iter().all(|(_, v)| v.is_none()) {
        return String::from("\t-no pod information available-\n");
    }
    let mut out = String::new();
    for (label, value) in fields {
        let _ = writeln!(out, "\t{label}:\t{}", value.as_deref().unwrap_or(""));
    }
    out
}

/// Writes one line to stdout and flushes it; a closed stdout must not kill the server.
fn log_line(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Why a connection stops being served.
enum Stop {
    /// Peer closed, timed out or broke the connection: nothing more to send.
    Gone,
    /// Protocol error: answer with this status, then close.
    Status(u16),
}

impl From<io::Error> for Stop {
    fn from(_: io::Error) -> Self {
        Stop::Gone
    }
}

struct Request {
    method: String,
    target: String,
    minor_version: u8,
    /// Lowercased names, values with surrounding whitespace trimmed, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Comma-separated tokens of every header with this name, lowercased.
    fn header_tokens(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

fn serve_connection(server: &Server, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let mut reader = BufReader::new(stream);
    loop {
        match read_request(&mut reader) {
            Ok(None) | Err(Stop::Gone) => return,
            Err(Stop::Status(status)) => {
                send_error(reader.get_mut(), status, peer, None);
                return;
            }
            Ok(Some((request, keep_alive))) => {
                let status = respond(server, reader.get_mut(), peer, local, &request, keep_alive);
                match status {
                    Ok(()) if keep_alive => {}
                    Ok(()) => {
                        let _ = reader.get_mut().shutdown(Shutdown::Both);
                        return;
                    }
                    Err(Stop::Status(status)) => {
                        send_error(reader.get_mut(), status, peer, Some(&request));
                        return;
                    }
                    Err(Stop::Gone) => return,
                }
            }
        }
    }
}

/// Reads one request. `Ok(None)`: the peer closed the connection cleanly between requests.
fn read_request(reader: &mut BufReader<TcpStream>) -> Result<Option<(Request, bool)>, Stop> {
    let Some(head) = read_head(reader)? else {
        return Ok(None);
    };
    let mut lines = head.iter();
    let request_line = lines.next().ok_or(Stop::Status(400))?;
    let (method, target, minor_version) = parse_request_line(request_line)?;
    let mut headers = Vec::new();
    for line in lines {
        headers.push(parse_header_line(line)?);
    }
    let mut request = Request {
        method,
        target,
        minor_version,
        headers,
        body: Vec::new(),
    };

    let connection = request.header_tokens("connection");
    let mut keep_alive = if request.minor_version >= 1 {
        !connection.iter().any(|t| t == "close")
    } else {
        connection.iter().any(|t| t == "keep-alive")
    };
    if request.minor_version >= 1 {
        let hosts = request.headers.iter().filter(|(n, _)| n == "host").count();
        if hosts != 1 {
            return Err(Stop::Status(400));
        }
    }

    let transfer_codings = request.header_tokens("transfer-encoding");
    let content_length = content_length(&request)?;
    let expects_continue = request.minor_version >= 1
        && request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !transfer_codings.is_empty() {
        // Only a final `chunked` coding delimits a request body.
        if transfer_codings.last().map(String::as_str) != Some("chunked") {
            return Err(Stop::Status(400));
        }
        if content_length.is_some() {
            // Conflicting framing: serve it by Transfer-Encoding, but never reuse the
            // connection (request smuggling defence, RFC 9112 §6.3).
            keep_alive = false;
        }
        if expects_continue {
            send_continue(reader.get_mut())?;
        }
        request.body = read_chunked_body(reader)?;
    } else if let Some(length) = content_length {
        if length > MAX_BODY_BYTES {
            return Err(Stop::Status(413));
        }
        if length > 0 {
            if expects_continue {
                send_continue(reader.get_mut())?;
            }
            let mut body = Vec::with_capacity(length as usize);
            reader.by_ref().take(length).read_to_end(&mut body)?;
            if body.len() as u64 != length {
                return Err(Stop::Gone);
            }
            request.body = body;
        }
    }
    Ok(Some((request, keep_alive)))
}

/// Reads the request line and header lines (without line endings), at most `MAX_HEADER_BYTES`
/// in total. Empty lines before the request line are skipped (RFC 9112 §2.2).
fn read_head(reader: &mut BufReader<TcpStream>) -> Result<Option<Vec<Vec<u8>>>, Stop> {
    let mut lines = Vec::new();
    let mut used = 0usize;
    loop {
        let line = match read_line(reader, MAX_HEADER_BYTES.saturating_sub(used)) {
            Ok(Some(line)) => line,
            // EOF before anything was sent is a normal keep-alive close.
            Ok(None) if lines.is_empty() && used == 0 => return Ok(None),
            Ok(None) => return Err(Stop::Gone),
            Err(stop) => return Err(stop),
        };
        used += line.len() + 2;
        if line.is_empty() {
            if lines.is_empty() {
                if used > MAX_HEADER_BYTES {
                    return Err(Stop::Status(431));
                }
                continue;
            }
            return Ok(Some(lines));
        }
        if used > MAX_HEADER_BYTES {
            return Err(Stop::Status(431));
        }
        lines.push(line);
    }
}

/// Reads one line ending in LF (a preceding CR is dropped). `Ok(None)` on EOF before any byte.
/// A line longer than `limit` is a 431.
fn read_line(reader: &mut BufReader<TcpStream>, limit: usize) -> Result<Option<Vec<u8>>, Stop> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > limit {
            Stop::Status(431)
        } else {
            Stop::Gone
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, u8), Stop> {
    let line = std::str::from_utf8(line).map_err(|_| Stop::Status(400))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Stop::Status(400));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(Stop::Status(400));
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Stop::Status(400));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.len() == 8 && v.starts_with("HTTP/") && v.as_bytes().get(6) == Some(&b'.') => {
            return Err(Stop::Status(505));
        }
        _ => return Err(Stop::Status(400)),
    };
    Ok((method.to_string(), target.to_string(), minor))
}

fn parse_header_line(line: &[u8]) -> Result<(String, String), Stop> {
    // Obsolete line folding is rejected (RFC 9112 §5.2).
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Stop::Status(400));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(Stop::Status(400))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // A name must be a token: whitespace before the colon is invalid (RFC 9112 §5.1).
    if name.is_empty() || !name.iter().copied().all(is_token_byte) {
        return Err(Stop::Status(400));
    }
    if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(Stop::Status(400));
    }
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let value = String::from_utf8_lossy(value)
        .trim_matches(|c| c == ' ' || c == '\t')
        .to_string();
    Ok((name, value))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The request's Content-Length, if any. Repeated values must agree; anything but digits is a
/// 400; a value too large to represent is a 413.
fn content_length(request: &Request) -> Result<Option<u64>, Stop> {
    let mut length = None;
    for (name, value) in &request.headers {
        if name != "content-length" {
            continue;
        }
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Stop::Status(400));
            }
            let parsed = part.parse::<u64>().map_err(|_| Stop::Status(413))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(Stop::Status(400));
            }
            length = Some(parsed);
        }
    }
    Ok(length)
}

fn read_chunked_body(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, Stop> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, 4096)?.ok_or(Stop::Gone)?;
        let size_field = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let size_field = std::str::from_utf8(size_field)
            .map_err(|_| Stop::Status(400))?
            .trim_matches(|c| c == ' ' || c == '\t');
        if size_field.is_empty() || !size_field.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Stop::Status(400));
        }
        let size = u64::from_str_radix(size_field, 16).map_err(|_| Stop::Status(413))?;
        if size == 0 {
            break;
        }
        if body.len() as u64 + size > MAX_BODY_BYTES {
            return Err(Stop::Status(413));
        }
        let before = body.len();
        reader.by_ref().take(size).read_to_end(&mut body)?;
        if (body.len() - before) as u64 != size {
            return Err(Stop::Gone);
        }
        // Each chunk's data is followed by its own line ending.
        match read_line(reader, 2) {
            Ok(Some(rest)) if rest.is_empty() => {}
            Ok(Some(_)) | Err(Stop::Status(_)) => return Err(Stop::Status(400)),
            Ok(None) | Err(Stop::Gone) => return Err(Stop::Gone),
        }
    }
    // Trailer fields are read and dropped; they are bounded like the header block.
    let mut used = 0usize;
    loop {
        let line = read_line(reader, MAX_HEADER_BYTES.saturating_sub(used))?.ok_or(Stop::Gone)?;
        if line.is_empty() {
            return Ok(body);
        }
        used += line.len() + 2;
        if used > MAX_HEADER_BYTES {
            return Err(Stop::Status(431));
        }
    }
}

fn send_continue(stream: &mut TcpStream) -> Result<(), Stop> {
    stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    Ok(())
}

fn respond(
    server: &Server,
    stream: &mut TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    request: &Request,
    keep_alive: bool,
) -> Result<(), Stop> {
    let body = echo_body(server, peer, local, request);
    let mut response = Vec::with_capacity(body.len() + 256);
    response.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    push_common_headers(&mut response, body.len());
    if !keep_alive {
        response.extend_from_slice(b"Connection: close\r\n");
    } else if request.minor_version == 0 {
        response.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    response.extend_from_slice(b"\r\n");
    if request.method != "HEAD" {
        response.extend_from_slice(&body);
    }
    stream.write_all(&response)?;
    access_log(peer, Some(request), 200, body.len());
    Ok(())
}

fn push_common_headers(response: &mut Vec<u8>, content_length: usize) {
    let date = http_date(unix_now());
    response.extend_from_slice(
        format!(
            "Server: {SERVER_VERSION}\r\nDate: {date}\r\nContent-Type: text/plain\r\n\
             Content-Length: {content_length}\r\n"
        )
        .as_bytes(),
    );
}

fn echo_body(
    server: &Server,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    request: &Request,
) -> Vec<u8> {
    let (authority, path_and_query) = split_target(&request.target);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    // An absolute-form target names the host itself; HTTP/1.0 may omit Host altogether.
    let host = authority
        .map(str::to_string)
        .or_else(|| request.header("host").map(str::to_string))
        .or_else(|| local.map(|a| a.to_string()))
        .unwrap_or_default();
    let mut headers: Vec<&(String, String)> = request.headers.iter().collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));

    let mut header_lines = String::new();
    for (name, value) in headers {
        let _ = writeln!(header_lines, "\t{name}={value}");
    }
    let text = format!(
        "Hostname: {hostname}\n\n\
         Pod Information:\n{pod_information}\n\
         Server values:\n\tserver_version={SERVER_VERSION}\n\n\
         Request Information:\n\
         \tclient_address={client}\n\
         \tmethod={method}\n\
         \treal path={path}\n\
         \tquery={query}\n\
         \trequest_version=1.{minor}\n\
         \trequest_scheme=http\n\
         \trequest_uri=http://{host}{path_and_query}\n\n\
         Request Headers:\n{header_lines}\n\
         Request Body:\n",
        hostname = server.hostname,
        pod_information = server.pod_information,
        client = peer.ip(),
        method = request.method,
        minor = request.minor_version,
    );
    let mut out = text.into_bytes();
    if request.body.is_empty() {
        out.extend_from_slice(b"\t-no body in request-\n");
    } else {
        out.extend_from_slice(&request.body);
        out.push(b'\n');
    }
    out
}

/// Splits an absolute-form target (`http://host/path`) into its authority and the rest;
/// origin-form targets (`/path?query`) come back unchanged with no authority.
fn split_target(target: &str) -> (Option<&str>, &str) {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        target.get(7..)
    } else if lower.starts_with("https://") {
        target.get(8..)
    } else {
        None
    };
    match rest {
        Some(rest) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            (Some(authority), if path.is_empty() { "/" } else { path })
        }
        None => (None, target),
    }
}

/// Sends an error response and closes the connection (a lingering close, so the client gets to
/// read the response even if it is still sending a body we refused).
fn send_error(stream: &mut TcpStream, status: u16, peer: SocketAddr, request: Option<&Request>) {
    let reason = match status {
        400 => "Bad Request",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let body = format!("{status} {reason}\n");
    let mut response = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    push_common_headers(&mut response, body.len());
    response.extend_from_slice(b"Connection: close\r\n\r\n");
    response.extend_from_slice(body.as_bytes());
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(&response);
    access_log(peer, request, status, body.len());
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = io::copy(
        &mut Read::take(&mut *stream, MAX_BODY_BYTES * 2),
        &mut io::sink(),
    );
}

/// One line per request, in the spirit of nginx's combined log format.
fn access_log(peer: SocketAddr, request: Option<&Request>, status: u16, bytes: usize) {
    let date = log_date(unix_now());
    let line = match request {
        Some(r) => format!(
            "{} - - [{date}] \"{} {} HTTP/1.{}\" {status} {bytes} \"{}\" \"{}\"",
            peer.ip(),
            r.method,
            r.target,
            r.minor_version,
            r.header("referer").unwrap_or("-"),
            r.header("user-agent").unwrap_or("-"),
        ),
        None => format!(
            "{} - - [{date}] \"-\" {status} {bytes} \"-\" \"-\"",
            peer.ip()
        ),
    };
    log_line(&line);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down UTC time: (year, month 1-12, day, hour, minute, second, days since epoch).
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        days,
    )
}

/// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(secs: u64) -> String {
    let (year, month, day, h, m, s, days) = civil(secs);
    let weekday = WEEKDAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month = MONTHS.get(month as usize - 1).copied().unwrap_or("Jan");
    format!("{weekday}, {day:02} {month} {year} {h:02}:{m:02}:{s:02} GMT")
}

/// Common log format date, e.g. `06/Nov/1994:08:49:37 +0000`.
fn log_date(secs: u64) -> String {
    let (year, month, day, h, m, s, _) = civil(secs);
    let month = MONTHS.get(month as usize - 1).copied().unwrap_or("Jan");
    format!("{day:02}/{month}/{year}:{h:02}:{m:02}:{s:02} +0000")
}
