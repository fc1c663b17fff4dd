//! The plugin's side: the gRPC service over the unix socket podctl names, for a [`MemberRuntime`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::proto::member_runtime_server::{MemberRuntime as Service, MemberRuntimeServer};
use crate::proto::{
    Empty, HandshakeReply, HandshakeRequest, Member, MemberRef, MemberStatus, Started, StopRequest, Validated,
};
use crate::{Error, MemberRuntime, PROTOCOL_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("usage: {program} --socket PATH (podctl's agent starts plugins this way)")]
    Usage { program: String },
    #[error("socket {path}: {cause}")]
    Socket { path: PathBuf, cause: std::io::Error },
    #[error("serving the plugin protocol failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The whole `main` of a plugin: parses `--socket PATH`, serves `runtime` there on a tokio runtime
/// until SIGTERM or the agent's death, and exits non-zero with the reason on failure.
pub fn run<R: MemberRuntime>(runtime: R) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)
        .and_then(|tokio| {
            let served = tokio.block_on(serve(runtime));
            // Work still on the runtime (a member's blocking task) must not delay the exit.
            tokio.shutdown_timeout(Duration::from_millis(100));
            served
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `runtime` on the socket of `--socket PATH`.
pub async fn serve<R: MemberRuntime>(runtime: R) -> Result<(), ServeError> {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_else(|| "podctl-runtime-NAME".into());
    let socket = match (args.next().as_deref(), args.next()) {
        (Some("--socket"), Some(path)) => PathBuf::from(path),
        _ => return Err(ServeError::Usage { program }),
    };
    serve_at(runtime, &socket).await
}

/// Serves `runtime` on the unix socket `path` (created, root only) until SIGTERM, or until the
/// process that started this one dies.
pub async fn serve_at<R: MemberRuntime>(runtime: R, path: &Path) -> Result<(), ServeError> {
    // The agent owns this process: when it dies, the members die at once with it, as if they had
    // run inside it (a new agent starts them again; an orphan would hold their ports meanwhile).
    // A graceful stop is the agent's Stop calls, or SIGTERM.
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    }
    let socket_error = |cause| ServeError::Socket {
        path: path.to_path_buf(),
        cause,
    };
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path).map_err(socket_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(socket_error)?;
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(socket_error)?;
    // SIGTERM ends the calls in flight (the agent has a Wait pending per running member, which
    // would otherwise keep a graceful shutdown waiting as long as the members run).
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let service = MemberRuntimeServer::new(Served {
        runtime: Arc::new(runtime),
        stopping: stopped.clone(),
    });
    let mut until_stopped = stopped;
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::UnixListenerStream::new(listener), async move {
            let _ = until_stopped.wait_for(|stopping| *stopping).await;
        });
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        _ = terminate.recv() => {
            let _ = stopping.send(true);
            // Every call answers at once now; a connection that still does not close is dropped.
            tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.unwrap_or(Ok(()))
        }
    };
    let _ = std::fs::remove_file(path);
    Ok(result?)
}

/// How long connections may take to close after SIGTERM, once every call in flight was answered.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

struct Served<R> {
    runtime: Arc<R>,
    /// Becomes true at SIGTERM.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl<R> Served<R> {
    /// The call's answer, or `Unavailable` ([`crate::client::SHUTTING_DOWN`]) once SIGTERM came.
    async fn answer<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<Response<T>, Status> {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            answer = call => answer.map(Response::new).map_err(status),
            _ = stopping.wait_for(|stopping| *stopping) => Err(Status::unavailable(crate::client::SHUTTING_DOWN)),
        }
    }
}

fn status(error: Error) -> Status {
    match error {
        Error::NotFound(_) => Status::not_found(error.to_string()),
        Error::AlreadyExists(_) => Status::already_exists(error.to_string()),
        Error::Invalid(_) => Status::invalid_argument(error.to_string()),
        Error::Failed(_) => Status::internal(error.to_string()),
    }
}

#[tonic::async_trait]
impl<R: MemberRuntime> Service for Served<R> {
    async fn handshake(&self, request: Request<HandshakeRequest>) -> Result<Response<HandshakeReply>, Status> {
        let info = self.runtime.info();
        let theirs = request.into_inner().protocol_version;
        if theirs != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "plugin {} speaks protocol version {PROTOCOL_VERSION}, podctl {theirs}",
                info.name
            )));
        }
        Ok(Response::new(HandshakeReply {
            protocol_version: PROTOCOL_VERSION,
            name: info.name,
            version: info.version,
            media_types: info.media_types,
            file_extensions: info.file_extensions,
            directories: info.directories,
            url_schemes: info.url_schemes,
        }))
    }

    async fn validate(&self, request: Request<Member>) -> Result<Response<Validated>, Status> {
        self.answer(self.runtime.validate(&request.into_inner())).await
    }

    async fn start(&self, request: Request<Member>) -> Result<Response<Started>, Status> {
        self.answer(self.runtime.start(request.into_inner())).await
    }

    async fn stop(&self, request: Request<StopRequest>) -> Result<Response<Empty>, Status> {
        let StopRequest { name, grace_millis } = request.into_inner();
        let grace = Duration::from_millis(grace_millis);
        self.answer(async { self.runtime.stop(&name, grace).await.map(|()| Empty {}) })
            .await
    }

    async fn kill(&self, request: Request<MemberRef>) -> Result<Response<Empty>, Status> {
        let name = request.into_inner().name;
        self.answer(async { self.runtime.kill(&name).await.map(|()| Empty {}) })
            .await
    }

    async fn status(&self, request: Request<MemberRef>) -> Result<Response<MemberStatus>, Status> {
        self.answer(self.runtime.status(&request.into_inner().name)).await
    }

    async fn wait(&self, request: Request<MemberRef>) -> Result<Response<MemberStatus>, Status> {
        self.answer(self.runtime.wait(&request.into_inner().name)).await
    }
}
