//! podctl's side of the protocol: starts a plugin binary, checks its protocol version, and makes
//! each call with a deadline, so a plugin that crashes or hangs is an error that names it, never
//! a hang of the caller.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use crate::proto::member_runtime_client::MemberRuntimeClient;
use crate::proto::{
    HandshakeReply, HandshakeRequest, Member, MemberRef, MemberStatus, Started, StopRequest, Validated,
};
use crate::PROTOCOL_VERSION;

/// The message of the `Unavailable` status with which `serve` ends the calls in flight at SIGTERM.
pub const SHUTTING_DOWN: &str = "the plugin is shutting down (SIGTERM)";
/// How long a plugin may take to create its socket after it was started.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take (`wait` excepted: it lasts as long as the member runs).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// `validate` and `start` may compile a program first (a large component takes seconds).
pub const VALIDATE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("plugin {plugin}: cannot start {binary}: {cause}")]
    Launch {
        plugin: String,
        binary: PathBuf,
        cause: std::io::Error,
    },
    #[error("plugin {plugin} exited {status} before it served its socket{stderr}")]
    ExitedEarly {
        plugin: String,
        status: String,
        stderr: String,
    },
    #[error("plugin {plugin} did not create its socket {socket} within {seconds}s of starting")]
    NoSocket {
        plugin: String,
        socket: PathBuf,
        seconds: u64,
    },
    #[error("plugin {plugin} speaks protocol version {theirs}, podctl speaks {ours}; install a {plugin} built against podctl-plugin with protocol {ours}")]
    Version { plugin: String, theirs: u32, ours: u32 },
    #[error("plugin {plugin} did not answer {call} within {seconds}s; it hangs")]
    Timeout {
        plugin: String,
        call: &'static str,
        seconds: u64,
    },
    #[error("plugin {plugin} is gone ({status}); its members ended with it")]
    Exited { plugin: String, status: String },
    /// The plugin got SIGTERM and ended this call (its members end with it).
    #[error("plugin {plugin} is shutting down; its members end with it")]
    ShuttingDown { plugin: String, call: &'static str },
    /// The plugin answered the call with an error.
    #[error("plugin {plugin}: {call}: {message}")]
    Refused {
        plugin: String,
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("plugin {plugin}: {call}: the connection failed: {cause}")]
    Transport {
        plugin: String,
        call: &'static str,
        cause: String,
    },
}

impl ClientError {
    /// The plugin refused the call because the member is unknown to it.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ClientError::Refused {
                code: tonic::Code::NotFound,
                ..
            }
        )
    }
}

/// A connection to one plugin process (started by [`Client::launch`], or already running).
pub struct Client {
    name: String,
    rpc: MemberRuntimeClient<Channel>,
    child: Option<tokio::process::Child>,
    info: HandshakeReply,
}

impl Client {
    /// Starts `binary --socket SOCKET` (it inherits this process's namespaces), waits for the
    /// socket, connects and shakes hands.
    pub async fn launch(binary: &Path, socket: &Path) -> Result<Client, ClientError> {
        Client::launch_with_env(binary, socket, &[]).await
    }

    /// [`Client::launch`] with these variables added to the plugin's environment.
    pub async fn launch_with_env(
        binary: &Path,
        socket: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Client, ClientError> {
        let plugin = plugin_name(binary);
        let _ = std::fs::remove_file(socket);
        let mut child = tokio::process::Command::new(binary)
            .envs(env.iter().copied())
            .arg("--socket")
            .arg(socket)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|cause| ClientError::Launch {
                plugin: plugin.clone(),
                binary: binary.to_path_buf(),
                cause,
            })?;
        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let stderr = match child.stderr.take() {
                    Some(mut pipe) => {
                        let mut text = String::new();
                        let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text).await;
                        if text.trim().is_empty() {
                            String::new()
                        } else {
                            format!(": {}", text.trim())
                        }
                    }
                    None => String::new(),
                };
                return Err(ClientError::ExitedEarly {
                    plugin,
                    status: status.to_string(),
                    stderr,
                });
            }
            if Instant::now() > deadline {
                return Err(ClientError::NoSocket {
                    plugin,
                    socket: socket.to_path_buf(),
                    seconds: LAUNCH_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The socket exists once bound, a moment before it listens: retry a refused connection.
        let mut client = loop {
            match Client::connect(&plugin, socket).await {
                Ok(client) => break client,
                Err(ClientError::Transport { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => return Err(e),
            }
        };
        // Once it serves, what it writes to stderr goes to ours (the agent's: the pod's agent.log),
        // so a chatty plugin never blocks on a full pipe.
        if let Some(mut stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stderr, &mut tokio::io::stderr()).await;
            });
        }
        client.child = Some(child);
        client.handshake().await?;
        Ok(client)
    }

    /// Connects to a plugin serving `socket` (no handshake yet: see [`Client::handshake`]).
    pub async fn connect(plugin: &str, socket: &Path) -> Result<Client, ClientError> {
        let path = socket.to_path_buf();
        // The URI is required by the API and unused: the connector dials the socket.
        let endpoint = Endpoint::from_static("http://[::]:50051");
        let connecting = endpoint.connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }));
        let channel = match tokio::time::timeout(CALL_TIMEOUT, connecting).await {
            Ok(connected) => connected.map_err(|e| ClientError::Transport {
                plugin: plugin.to_string(),
                call: "connect",
                cause: e.to_string(),
            })?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    plugin: plugin.to_string(),
                    call: "connect",
                    seconds: CALL_TIMEOUT.as_secs(),
                })
            }
        };
        Ok(Client {
            name: plugin.to_string(),
            rpc: MemberRuntimeClient::new(channel),
            child: None,
            info: HandshakeReply::default(),
        })
    }

    /// Agrees on the protocol version; the reply says what the plugin runs.
    pub async fn handshake(&mut self) -> Result<&HandshakeReply, ClientError> {
        let request = HandshakeRequest {
            protocol_version: PROTOCOL_VERSION,
        };
        let mut rpc = self.rpc.clone();
        let reply = match self.call("Handshake", CALL_TIMEOUT, rpc.handshake(request)).await {
            Err(ClientError::Refused {
                code: tonic::Code::FailedPrecondition,
                message,
                ..
            }) => {
                let theirs = message
                    .split("protocol version ")
                    .nth(1)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                return Err(self.version_error(theirs));
            }
            other => other?,
        };
        if reply.protocol_version != PROTOCOL_VERSION {
            return Err(self.version_error(reply.protocol_version));
        }
        self.info = reply;
        Ok(&self.info)
    }

    fn version_error(&self, theirs: u32) -> ClientError {
        ClientError::Version {
            plugin: self.name.clone(),
            theirs,
            ours: PROTOCOL_VERSION,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the handshake said.
    pub fn info(&self) -> &HandshakeReply {
        &self.info
    }

    /// The plugin's process, if this client started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Validation may compile the program: it gets longer than other calls.
    pub async fn validate(&self, member: Member) -> Result<Validated, ClientError> {
        let mut rpc = self.rpc.clone();
        self.call("Validate", VALIDATE_TIMEOUT, rpc.validate(member)).await
    }

    pub async fn start(&self, member: Member) -> Result<Started, ClientError> {
        let mut rpc = self.rpc.clone();
        self.call("Start", VALIDATE_TIMEOUT, rpc.start(member)).await
    }

    pub async fn stop(&self, name: &str, grace: Duration) -> Result<(), ClientError> {
        let mut rpc = self.rpc.clone();
        let request = StopRequest {
            name: name.into(),
            grace_millis: grace.as_millis() as u64,
        };
        self.call("Stop", CALL_TIMEOUT, rpc.stop(request)).await.map(drop)
    }

    pub async fn kill(&self, name: &str) -> Result<(), ClientError> {
        let mut rpc = self.rpc.clone();
        self.call("Kill", CALL_TIMEOUT, rpc.kill(MemberRef { name: name.into() }))
            .await
            .map(drop)
    }

    pub async fn status(&self, name: &str) -> Result<MemberStatus, ClientError> {
        let mut rpc = self.rpc.clone();
        self.call("Status", CALL_TIMEOUT, rpc.status(MemberRef { name: name.into() }))
            .await
    }

    /// Waits up to `limit` for the member to exit.
    pub async fn wait(&self, name: &str, limit: Duration) -> Result<MemberStatus, ClientError> {
        let mut rpc = self.rpc.clone();
        self.call("Wait", limit, rpc.wait(MemberRef { name: name.into() }))
            .await
    }

    /// Ends the plugin process this client started (SIGTERM, then SIGKILL after `grace`).
    pub async fn shutdown(mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    async fn call<T>(
        &self,
        call: &'static str,
        limit: Duration,
        request: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(limit, request).await {
            Err(_) => Err(self.gone().await.unwrap_or(ClientError::Timeout {
                plugin: self.name.clone(),
                call,
                seconds: limit.as_secs(),
            })),
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable && status.message() == SHUTTING_DOWN => {
                Err(self.gone().await.unwrap_or(ClientError::ShuttingDown {
                    plugin: self.name.clone(),
                    call,
                }))
            }
            Ok(Err(status)) if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown) => {
                Err(self.gone().await.unwrap_or(ClientError::Transport {
                    plugin: self.name.clone(),
                    call,
                    cause: status.message().to_string(),
                }))
            }
            Ok(Err(status)) => Err(ClientError::Refused {
                plugin: self.name.clone(),
                call,
                code: status.code(),
                message: status.message().to_string(),
            }),
        }
    }

    /// The plugin process has exited (or is exiting: a broken connection comes a moment before
    /// the process is a zombie, so this looks for up to 250 ms).
    async fn gone(&self) -> Option<ClientError> {
        let pid = self.child.as_ref()?.id()?;
        let deadline = Instant::now() + Duration::from_millis(250);
        loop {
            // The child is not reaped here (that needs `&mut`): /proc tells whether it is a zombie.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            let state = stat
                .as_deref()
                .and_then(|s| s.rsplit(')').next())
                .map(|rest| rest.trim_start().chars().next());
            if matches!(state, None | Some(Some('Z' | 'X'))) {
                return Some(ClientError::Exited {
                    plugin: self.name.clone(),
                    status: "it exited".into(),
                });
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// NAME of `podctl-runtime-NAME` (the file name otherwise).
pub fn plugin_name(binary: &Path) -> String {
    let file = binary.file_name().and_then(|f| f.to_str()).unwrap_or("plugin");
    file.strip_prefix("podctl-runtime-").unwrap_or(file).to_string()
}
