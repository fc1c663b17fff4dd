//! The images podctl carries inside itself, so a pod needs no registry: the sandbox's `pause`
//! image and an HTTP `echoserver` for examples and tests.
//!
//! Their programs (`images/pause.rs`, `images/echoserver.rs`) are compiled by `build.rs` into
//! static x86_64 binaries and embedded here; `Builtin::write_archive` wraps one in a
//! single-layer OCI image archive (`super::layout`) ready for import into containerd.

use std::collections::BTreeMap;
use std::io::Write;

use super::layout::{self, Entry, ImageSpec, LayoutError, OciImage};

/// The pod sandbox image: `/pause`, reaps zombies, exits 0 on SIGTERM.
pub const PAUSE_IMAGE: &str = "podctl.local/pause:0.1";
/// The HTTP echo server image: `/echoserver` on `$PORT` (8080).
pub const ECHO_IMAGE: &str = "podctl.local/echoserver:0.1";

static PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));
static ECHOSERVER_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/echoserver"));

/// One built-in image: a single static binary plus its image config.
#[derive(Debug)]
pub struct Builtin {
    /// Full reference, e.g. [`PAUSE_IMAGE`].
    pub reference: &'static str,
    /// Absolute path of the binary inside the image; also the entrypoint.
    pub binary_path: &'static str,
    /// The embedded static ELF binary.
    pub binary: &'static [u8],
    pub env: &'static [&'static str],
    pub exposed_ports: &'static [&'static str],
    pub stop_signal: Option<&'static str>,
    /// One line for `org.opencontainers.image.description` and listings.
    pub description: &'static str,
}

static BUILTINS: [Builtin; 2] = [
    Builtin {
        reference: PAUSE_IMAGE,
        binary_path: "/pause",
        binary: PAUSE_BINARY,
        env: &[],
        exposed_ports: &[],
        stop_signal: None,
        description: "podctl pod sandbox: holds the pod's namespaces, reaps zombies",
    },
    Builtin {
        reference: ECHO_IMAGE,
        binary_path: "/echoserver",
        binary: ECHOSERVER_BINARY,
        env: &["PORT=8080"],
        exposed_ports: &["8080/tcp"],
        stop_signal: Some("SIGTERM"),
        description: "podctl HTTP echo server: answers every request with a description of it",
    },
];

/// Every built-in image.
pub fn all() -> &'static [Builtin] {
    &BUILTINS
}

/// The built-in image with exactly this (normalized) reference, e.g. [`PAUSE_IMAGE`].
pub fn find(reference: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.reference == reference)
}

impl Builtin {
    /// The image config: entrypoint is the binary, plus env, ports and stop signal.
    pub fn spec(&self) -> ImageSpec {
        let (_, version) = self.reference.rsplit_once(':').unwrap_or(("", "latest"));
        ImageSpec {
            reference: self.reference.to_string(),
            entrypoint: vec![self.binary_path.to_string()],
            cmd: Vec::new(),
            env: self.env.iter().map(|e| e.to_string()).collect(),
            working_dir: None,
            user: None,
            exposed_ports: self.exposed_ports.iter().map(|p| p.to_string()).collect(),
            stop_signal: self.stop_signal.map(str::to_string),
            labels: BTreeMap::from([
                (
                    "org.opencontainers.image.description".to_string(),
                    self.description.to_string(),
                ),
                ("org.opencontainers.image.version".to_string(), version.to_string()),
            ]),
            architecture: None,
            os: None,
        }
    }

    /// The layer: the binary plus empty mount-point directories, which runc would otherwise
    /// have to create (impossible with a read-only rootfs).
    pub fn layer(&self) -> Vec<Entry> {
        vec![
            Entry::dir("dev", 0o755),
            Entry::dir("etc", 0o755),
            Entry::dir("proc", 0o555),
            Entry::dir("sys", 0o555),
            Entry::dir("tmp", 0o1777),
            Entry::file(self.binary_path, 0o755, self.binary),
        ]
    }

    /// Builds the image in memory (for its digests, or to write it more than once).
    pub fn build(&self) -> Result<OciImage, LayoutError> {
        layout::build_image(&self.spec(), &self.layer())
    }

    /// Writes the image as an OCI image-layout archive (`ctr image import` accepts it).
    pub fn write_archive(&self, out: impl Write) -> Result<(), LayoutError> {
        self.build()?.write_archive(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpStream;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGTERM: i32 = 15;

    /// A scratch directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("podctl-builtin-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Kills the child (if it is still running) when a test fails half-way.
    struct Running(Child);

    impl Drop for Running {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    fn install(dir: &TempDir, image: &str) -> PathBuf {
        let builtin = find(image).unwrap();
        let name = builtin.binary_path.trim_start_matches('/');
        let path = dir.0.join(name);
        std::fs::write(&path, builtin.binary).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Spawns, retrying ETXTBSY: another test thread forking while we held the binary open
    /// for writing keeps a write descriptor alive in its child until that child execs.
    fn spawn(cmd: &mut Command) -> Running {
        for _ in 0..50 {
            match cmd.spawn() {
                Ok(child) => return Running(child),
                Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("spawn {cmd:?}: {e}"),
            }
        }
        panic!("spawn {cmd:?}: text file busy");
    }

    fn terminate_and_wait(child: &mut Running, within: Duration) -> std::process::ExitStatus {
        assert_eq!(unsafe { kill(child.0.id() as i32, SIGTERM) }, 0);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A 64-bit x86-64 ELF executable without a PT_INTERP program header: it needs no dynamic
    /// loader, so it runs as the only file of an empty rootfs.
    fn assert_static_elf(path: &Path) {
        let elf = std::fs::read(path).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF", "{path:?} is no ELF");
        assert_eq!(elf[4], 2, "not ELFCLASS64");
        assert_eq!(u16::from_le_bytes([elf[0x12], elf[0x13]]), 0x3e, "not x86-64");
        let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes([elf[0x36], elf[0x37]]) as usize;
        let phnum = u16::from_le_bytes([elf[0x38], elf[0x39]]) as usize;
        assert!(phnum > 0);
        for i in 0..phnum {
            let at = phoff + i * phentsize;
            let p_type = u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
            assert_ne!(p_type, 3, "{path:?} has PT_INTERP: dynamically linked");
        }
    }

    #[test]
    fn registry_of_builtins() {
        assert_eq!(all().len(), 2);
        assert_eq!(find(PAUSE_IMAGE).unwrap().binary_path, "/pause");
        assert_eq!(find(ECHO_IMAGE).unwrap().binary_path, "/echoserver");
        assert!(find("podctl.local/pause:latest").is_none());
        assert!(find("pause").is_none());
        for builtin in all() {
            let image = builtin.build().unwrap();
            assert_eq!(image.name(), builtin.reference);
            let mut first = Vec::new();
            builtin.write_archive(&mut first).unwrap();
            let mut second = Vec::new();
            image.write_archive(&mut second).unwrap();
            assert!(first == second, "{} archive not reproducible", builtin.reference);
        }
        let echo = find(ECHO_IMAGE).unwrap().spec();
        assert_eq!(echo.entrypoint, ["/echoserver"]);
        assert_eq!(echo.env, ["PORT=8080"]);
        assert_eq!(echo.exposed_ports, ["8080/tcp"]);
        assert_eq!(echo.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(find(PAUSE_IMAGE).unwrap().spec().entrypoint, ["/pause"]);
    }

    #[test]
    fn embedded_binaries_are_static_elf() {
        let dir = TempDir::new("elf");
        for builtin in all() {
            assert_static_elf(&install(&dir, builtin.reference));
        }
    }

    #[test]
    fn pause_exits_zero_on_sigterm() {
        let dir = TempDir::new("pause");
        let pause = install(&dir, PAUSE_IMAGE);
        let mut child = spawn(Command::new(&pause).stdin(Stdio::null()).stdout(Stdio::null()));
        // Still sleeping after a while: pause must not exit on its own.
        std::thread::sleep(Duration::from_millis(200));
        assert!(child.0.try_wait().unwrap().is_none(), "pause exited by itself");
        let status = terminate_and_wait(&mut child, Duration::from_secs(2));
        assert_eq!(status.code(), Some(0), "{status:?} (signal {:?})", status.signal());
    }

    /// Sends one raw HTTP request and reads the response: status line + headers, then
    /// `Content-Length` bytes of body (none for HEAD).
    fn exchange(conn: &mut BufReader<TcpStream>, request: &[u8], head: bool) -> (String, String) {
        use std::io::Write as _;
        conn.get_mut().write_all(request).unwrap();
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            headers.push_str(&line);
        }
        let length: usize = headers
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; if head { 0 } else { length }];
        conn.read_exact(&mut body).unwrap();
        (headers, String::from_utf8(body).unwrap())
    }

    #[test]
    fn echoserver_echoes_and_exits_zero_on_sigterm() {
        let dir = TempDir::new("echo");
        let echo = install(&dir, ECHO_IMAGE);
        // PORT=0: the kernel picks a free port, which the server reports in its first line.
        let mut child = spawn(
            Command::new(&echo)
                .env("PORT", "0")
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        );
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let port: u16 = first
            .trim()
            .strip_prefix("echoserver listening on 0.0.0.0:")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        assert_ne!(port, 0);

        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = BufReader::new(stream);
        let (headers, body) = exchange(
            &mut conn,
            b"POST /path?a=1 HTTP/1.1\r\nHost: example.test:9\r\nUser-Agent: podctl-test\r\n\
              Accept: */*\r\nContent-Length: 5\r\n\r\nhello",
            false,
        );
        assert!(headers.starts_with("HTTP/1.1 200 OK\r\n"), "{headers}");
        assert!(headers.contains("Content-Type: text/plain\r\n"), "{headers}");
        assert!(body.starts_with("Hostname: "), "{body}");
        for expected in [
            "\n\nPod Information:\n\t-no pod information available-\n",
            "\n\nServer values:\n\tserver_version=podctl-echoserver/0.1\n",
            "\tclient_address=127.0.0.1\n",
            "\tmethod=POST\n",
            "\treal path=/path\n",
            "\tquery=a=1\n",
            "\trequest_version=1.1\n",
            "\trequest_scheme=http\n",
            "\trequest_uri=http://example.test:9/path?a=1\n",
            "\n\nRequest Headers:\n\taccept=*/*\n\tcontent-length=5\n\thost=example.test:9\n\
             \tuser-agent=podctl-test\n\nRequest Body:\nhello\n",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in:\n{body}");
        }

        // Same connection (keep-alive): a chunked body, then HEAD, then an empty GET.
        let (_, body) = exchange(
            &mut conn,
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
              3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: x\r\n\r\n",
            false,
        );
        assert!(body.contains("\tmethod=PUT\n"), "{body}");
        assert!(body.ends_with("Request Body:\nhello\n"), "{body}");
        let (headers, body) = exchange(&mut conn, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", true);
        assert!(headers.starts_with("HTTP/1.1 200 OK\r\n") && body.is_empty());
        let (_, body) = exchange(
            &mut conn,
            b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            false,
        );
        assert!(body.ends_with("Request Body:\n\t-no body in request-\n"), "{body}");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "connection not closed after Connection: close");

        // Malformed: 400 and the connection closed.
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = BufReader::new(stream);
        let (headers, _) = exchange(&mut conn, b"NOT HTTP\r\n\r\n", false);
        assert!(headers.starts_with("HTTP/1.1 400 "), "{headers}");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());

        // Too large a body: 413 without reading it.
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = BufReader::new(stream);
        let (headers, _) = exchange(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\n",
            false,
        );
        assert!(headers.starts_with("HTTP/1.1 413 "), "{headers}");

        // One access-log line per request went to stdout.
        let mut log = String::new();
        stdout.read_line(&mut log).unwrap();
        assert!(log.contains("\"POST /path?a=1 HTTP/1.1\" 200"), "{log}");

        let status = terminate_and_wait(&mut child, Duration::from_secs(2));
        assert_eq!(status.code(), Some(0), "{status:?} (signal {:?})", status.signal());
    }
}
