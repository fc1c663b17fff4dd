//! A plugin author's test suite: starts the plugin binary as podctl's agent does and checks every
//! call against the protocol's rules with members the author supplies. Call it from a test:
//!
//! ```no_run
//! # async fn t() {
//! use podctl_plugin::conformance::{check, Samples};
//! let dir = std::env::temp_dir().join("my-plugin-conformance");
//! let samples = Samples::new(&dir, "/path/to/long-running", "/path/to/exits-3", 3, "/path/to/not-a-program");
//! let passed = check(std::path::Path::new("target/debug/podctl-runtime-mine"), &samples).await.unwrap();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{plugin_name, Client, ClientError};
use crate::proto::{EnvVar, Limits, Member, Volume};
use crate::{State, PROTOCOL_VERSION};

/// How long a plugin may take to exit on SIGTERM, calls in flight or not.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(2);

/// Whether process `pid` has exited (gone, or a zombie its parent has not reaped).
fn process_exited(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.trim_start().chars().next());
    matches!(state, None | Some('Z' | 'X'))
}

/// Members the suite runs; `runs` and `exits` are programs of the plugin's kind.
pub struct Samples {
    /// Where the suite puts its socket and logs (created).
    pub dir: PathBuf,
    /// Writes at least one line to stdout, then runs until it is stopped.
    pub runs: Member,
    /// Exits by itself soon with `exit_code`.
    pub exits: Member,
    pub exit_code: i32,
    /// Something the plugin must refuse in `validate`.
    pub invalid: Member,
    /// Set by [`Samples::with_port`]: `runs` listens on this TCP port (of the plugin's network
    /// namespace) once started, and the suite connects to it.
    pub port: Option<u16>,
    /// Set by [`Samples::with_exit_trigger`]: makes `exits` exit once started (for a plugin whose
    /// members do not exit by themselves, such as servers that end on a request).
    pub exit_trigger: Option<Box<dyn Fn() + Send + Sync>>,
    /// Set by [`Samples::with_env_and_volume`]: prints the value of the environment variable
    /// `PODCTL_CONFORMANCE_TOKEN` to stdout, writes it into the file `token` of the directory the
    /// variable `PODCTL_CONFORMANCE_DIR` names (a volume's guest path), and exits 0.
    pub sees: Option<Member>,
}

/// The guest path of the volume of [`Samples::with_env_and_volume`]'s member.
pub const CONFORMANCE_DIR_VAR: &str = "PODCTL_CONFORMANCE_DIR";
/// The variable whose value that member prints and writes.
pub const CONFORMANCE_TOKEN_VAR: &str = "PODCTL_CONFORMANCE_TOKEN";

impl Samples {
    /// Samples from three programs with no arguments.
    pub fn new(dir: &Path, runs: &str, exits: &str, exit_code: i32, invalid: &str) -> Samples {
        let member = |name: &str, program: &str| Member {
            name: name.into(),
            program: program.into(),
            log_path: dir.join(format!("{name}.log")).to_string_lossy().into_owned(),
            limits: Some(Limits::default()),
            ..Member::default()
        };
        Samples {
            dir: dir.to_path_buf(),
            runs: member("runs", runs),
            exits: member("exits", exits),
            exit_code,
            invalid: member("invalid", invalid),
            port: None,
            exit_trigger: None,
            sees: None,
        }
    }

    /// `runs` serves TCP `port` once started (it is also its `ports`): the suite checks that it
    /// accepts a connection there, as podctl's probes would.
    pub fn with_port(mut self, port: u16) -> Samples {
        self.runs.ports = vec![u32::from(port)];
        self.port = Some(port);
        self
    }

    /// `exits` exits only when `trigger` is called (the suite calls it once `exits` is started).
    pub fn with_exit_trigger(mut self, trigger: impl Fn() + Send + Sync + 'static) -> Samples {
        self.exit_trigger = Some(Box::new(trigger));
        self
    }

    /// Adds a member of `program` that shows its environment and a volume (see [`Samples::sees`]);
    /// the volume's host directory is `dir/volume`, seen at `guest_path` (`None`: the same path,
    /// for plugins that do not remap paths).
    pub fn with_env_and_volume(mut self, program: &str, guest_path: Option<&str>) -> Samples {
        let host = self.dir.join("volume").to_string_lossy().into_owned();
        let guest = guest_path.map(String::from).unwrap_or_else(|| host.clone());
        self.sees = Some(Member {
            name: "sees".into(),
            program: program.into(),
            env: vec![EnvVar {
                name: CONFORMANCE_DIR_VAR.into(),
                value: guest.clone(),
            }],
            volumes: vec![Volume {
                host_path: host,
                guest_path: guest,
                read_only: false,
            }],
            log_path: self.dir.join("sees.log").to_string_lossy().into_owned(),
            limits: Some(Limits::default()),
            ..Member::default()
        });
        self
    }
}

/// The first rule a plugin broke.
#[derive(Debug, thiserror::Error)]
#[error("conformance check {check:?} failed: {detail}")]
pub struct Failure {
    pub check: &'static str,
    pub detail: String,
}

fn fail(check: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        check,
        detail: detail.into(),
    }
}

fn call(check: &'static str) -> impl Fn(ClientError) -> Failure {
    move |e| fail(check, e.to_string())
}

/// The names of the checks passed so far.
type Passed = Vec<&'static str>;

/// Runs every check against `binary`; returns the names of the checks passed.
pub async fn check(binary: &Path, samples: &Samples) -> Result<Vec<&'static str>, Failure> {
    std::fs::create_dir_all(&samples.dir).map_err(|e| fail("setup", format!("{}: {e}", samples.dir.display())))?;
    for member in [&samples.runs, &samples.exits] {
        let _ = std::fs::remove_file(&member.log_path);
    }
    let socket = samples.dir.join("plugin.sock");
    let mut passed = Vec::new();
    let plugin = Client::launch(binary, &socket).await.map_err(call("handshake"))?;
    check_handshake(&plugin, binary, &mut passed)?;
    check_validate(&plugin, samples, &mut passed).await?;
    check_start(&plugin, samples, &mut passed).await?;
    check_logs(samples, &mut passed).await?;
    check_stop(&plugin, samples, &mut passed).await?;
    check_exit_code(&plugin, samples, &mut passed).await?;
    if let Some(sees) = &samples.sees {
        check_env_and_volumes(&plugin, sees, &mut passed).await?;
    }
    check_restart_and_kill(&plugin, samples, &mut passed).await?;
    check_shutdown(plugin, samples, &socket, &mut passed).await?;
    Ok(passed)
}

/// The plugin speaks this protocol version and names itself as its binary, with a version.
fn check_handshake(plugin: &Client, binary: &Path, passed: &mut Passed) -> Result<(), Failure> {
    let info = plugin.info().clone();
    if info.protocol_version != PROTOCOL_VERSION || info.name != plugin_name(binary) || info.version.is_empty() {
        return Err(fail(
            "handshake",
            format!(
                "expected protocol {PROTOCOL_VERSION}, name {:?} and a version; got {info:?}",
                plugin_name(binary)
            ),
        ));
    }
    passed.push("handshake");
    Ok(())
}

/// `validate` refuses the invalid member and accepts the running one.
async fn check_validate(plugin: &Client, samples: &Samples, passed: &mut Passed) -> Result<(), Failure> {
    if plugin.validate(samples.invalid.clone()).await.is_ok() {
        return Err(fail("validate refuses", "an invalid member was accepted"));
    }
    plugin
        .validate(samples.runs.clone())
        .await
        .map_err(call("validate accepts"))?;
    passed.push("validate");
    Ok(())
}

/// A started member runs (and serves its port); a second start of it and the status of an
/// unknown member are refused.
async fn check_start(plugin: &Client, samples: &Samples, passed: &mut Passed) -> Result<(), Failure> {
    let runs = &samples.runs.name;
    plugin.start(samples.runs.clone()).await.map_err(call("start"))?;
    let status = plugin.status(runs).await.map_err(call("status"))?;
    if status.state() != State::Running || status.started_at <= 0.0 {
        return Err(fail("status after start", format!("{status:?}")));
    }
    passed.push("start");
    if let Some(port) = samples.port {
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                return Err(fail("port", format!("nothing accepts on port {port} 5s after start")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        passed.push("port");
    }
    match plugin.start(samples.runs.clone()).await {
        Err(ClientError::Refused {
            code: tonic::Code::AlreadyExists,
            ..
        }) => passed.push("start twice"),
        other => return Err(fail("start twice", format!("a second start of {runs} gave {other:?}"))),
    }
    match plugin.status("no-such-member").await {
        Err(e) if e.is_not_found() => passed.push("unknown member"),
        other => return Err(fail("unknown member", format!("{other:?}"))),
    }
    Ok(())
}

/// Output reaches the log as CRI records.
async fn check_logs(samples: &Samples, passed: &mut Passed) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&samples.runs.log_path).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            let stamped = fields.first().is_some_and(|t| humantime::parse_rfc3339(t).is_ok());
            if fields.len() < 4 || !stamped || fields[1] != "stdout" || !matches!(fields[2], "F" | "P") {
                return Err(fail("logs", format!("not a CRI record: {line:?}")));
            }
            passed.push("logs");
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(fail("logs", format!("nothing in {} after 5s", samples.runs.log_path)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `stop` ends the member within the grace period, and `wait` reports it exited.
async fn check_stop(plugin: &Client, samples: &Samples, passed: &mut Passed) -> Result<(), Failure> {
    let runs = &samples.runs.name;
    let grace = Duration::from_secs(2);
    let asked = Instant::now();
    plugin.stop(runs, grace).await.map_err(call("stop"))?;
    let stopped = plugin
        .wait(runs, grace + Duration::from_secs(3))
        .await
        .map_err(call("stop ends the member within the grace period"))?;
    if !stopped.is_exited() || stopped.finished_at < stopped.started_at {
        return Err(fail("stop", format!("after stop: {stopped:?}")));
    }
    if asked.elapsed() > grace + Duration::from_secs(3) {
        return Err(fail("stop", format!("took {:?}", asked.elapsed())));
    }
    passed.push("stop");
    Ok(())
}

/// A member that exits by itself is reported with its exit code and reason.
async fn check_exit_code(plugin: &Client, samples: &Samples, passed: &mut Passed) -> Result<(), Failure> {
    plugin.start(samples.exits.clone()).await.map_err(call("start exits"))?;
    if let Some(trigger) = &samples.exit_trigger {
        trigger();
    }
    let exited = plugin
        .wait(&samples.exits.name, Duration::from_secs(10))
        .await
        .map_err(call("wait"))?;
    let reason = if samples.exit_code == 0 { "Completed" } else { "Error" };
    if !exited.is_exited() || exited.exit_code != samples.exit_code || exited.reason != reason {
        return Err(fail(
            "exit code",
            format!("expected exit code {} ({reason}); got {exited:?}", samples.exit_code),
        ));
    }
    passed.push("exit code");
    Ok(())
}

/// Env and volumes reach the member: it shows the token it was given, in its log and its volume.
async fn check_env_and_volumes(plugin: &Client, sees: &Member, passed: &mut Passed) -> Result<(), Failure> {
    let token = format!("token-{}-{}", std::process::id(), crate::now_secs());
    let mut member = sees.clone();
    member.env.push(EnvVar {
        name: CONFORMANCE_TOKEN_VAR.into(),
        value: token.clone(),
    });
    let host = PathBuf::from(&member.volumes[0].host_path);
    let _ = std::fs::remove_dir_all(&host);
    let _ = std::fs::remove_file(&member.log_path);
    std::fs::create_dir_all(&host).map_err(|e| fail("env and volumes", format!("{}: {e}", host.display())))?;
    plugin.start(member.clone()).await.map_err(call("env and volumes"))?;
    let done = plugin
        .wait(&member.name, Duration::from_secs(10))
        .await
        .map_err(call("env and volumes"))?;
    if done.exit_code != 0 {
        return Err(fail("env and volumes", format!("the member exited {done:?}")));
    }
    let log = std::fs::read_to_string(&member.log_path).unwrap_or_default();
    if !log.lines().any(|line| line.ends_with(&format!(" {token}"))) {
        return Err(fail(
            "env and volumes",
            format!("{CONFORMANCE_TOKEN_VAR}'s value not in its log: {log:?}"),
        ));
    }
    let written = std::fs::read_to_string(host.join("token")).unwrap_or_default();
    if written.trim() != token {
        return Err(fail(
            "env and volumes",
            format!("{} holds {written:?}, not the token", host.join("token").display()),
        ));
    }
    passed.push("env and volumes");
    Ok(())
}

/// A name may be started again once its member was waited for; kill ends it at once.
async fn check_restart_and_kill(plugin: &Client, samples: &Samples, passed: &mut Passed) -> Result<(), Failure> {
    let runs = &samples.runs.name;
    plugin.start(samples.runs.clone()).await.map_err(call("restart"))?;
    plugin.kill(runs).await.map_err(call("kill"))?;
    let killed = plugin
        .wait(runs, Duration::from_secs(3))
        .await
        .map_err(call("kill ends the member"))?;
    if !killed.is_exited() {
        return Err(fail("kill", format!("{killed:?}")));
    }
    passed.push("restart and kill");
    Ok(())
}

/// SIGTERM while a call is in flight (the agent always has a Wait pending per running member):
/// the plugin answers it and exits promptly, takes its members with it, and leaves no socket.
async fn check_shutdown(plugin: Client, samples: &Samples, socket: &Path, passed: &mut Passed) -> Result<(), Failure> {
    let runs = &samples.runs.name;
    plugin
        .start(samples.runs.clone())
        .await
        .map_err(call("start before SIGTERM"))?;
    let pid = plugin
        .pid()
        .ok_or_else(|| fail("shutdown", "the plugin's process has no PID"))?;
    let pending = plugin.wait(runs, SHUTDOWN_LIMIT + Duration::from_secs(3));
    let (answer, took) = tokio::join!(pending, terminate(pid));
    if !process_exited(pid) || took > SHUTDOWN_LIMIT {
        return Err(fail(
            "shutdown",
            format!(
                "the plugin took {took:?} to exit on SIGTERM with a Wait in flight (at most {SHUTDOWN_LIMIT:?}); end pending calls"
            ),
        ));
    }
    match answer {
        Err(ClientError::Exited { .. } | ClientError::ShuttingDown { .. }) => {}
        Ok(status) if status.is_exited() => {}
        other => {
            return Err(fail(
                "shutdown",
                format!("the Wait in flight at SIGTERM was answered with {other:?}"),
            ))
        }
    }
    plugin.shutdown(Duration::from_secs(3)).await;
    if Path::new(&format!("/proc/{pid}")).exists() {
        return Err(fail("shutdown", "the plugin did not exit on SIGTERM"));
    }
    if socket.exists() {
        return Err(fail("shutdown", "the plugin left its socket behind"));
    }
    passed.push("shutdown");
    Ok(())
}

/// SIGTERM to the plugin once a Wait has reached it; returns how long it took to exit (waiting
/// at most a little past [`SHUTDOWN_LIMIT`]).
async fn terminate(pid: u32) -> Duration {
    // Let the Wait reach the plugin first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // SAFETY: kill(2) on the plugin process the client started and has not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let asked = Instant::now();
    while !process_exited(pid) && asked.elapsed() < SHUTDOWN_LIMIT + Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    asked.elapsed()
}
