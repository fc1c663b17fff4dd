//! `podctl-plugin`: write a member runtime for podctl without forking it.
//!
//! A plugin is an executable named `podctl-runtime-NAME` in podctl's plugin directory. The pod's
//! agent starts one process of it per pod (inside the pod's network, IPC and UTS namespaces) with
//! `--socket PATH`, and speaks the gRPC protocol of `proto/podctl/plugin/v1/plugin.proto` to it over
//! that unix socket. The process hosts all of the pod's members of its kind.
//!
//! A plugin implements [`MemberRuntime`] and hands it to [`run`] (or [`serve`] on a tokio runtime
//! of its own):
//!
//! ```no_run
//! use std::time::Duration;
//! use podctl_plugin::{Error, Member, MemberRuntime, MemberStatus, PluginInfo, Started, Validated};
//!
//! struct Mine;
//!
//! impl MemberRuntime for Mine {
//!     fn info(&self) -> PluginInfo {
//!         PluginInfo::new("mine", env!("CARGO_PKG_VERSION"))
//!     }
//!     async fn validate(&self, member: &Member) -> Result<Validated, Error> { Ok(Validated::default()) }
//!     async fn start(&self, member: Member) -> Result<Started, Error> { todo!() }
//!     async fn stop(&self, name: &str, grace: Duration) -> Result<(), Error> { todo!() }
//!     async fn kill(&self, name: &str) -> Result<(), Error> { todo!() }
//!     async fn status(&self, name: &str) -> Result<MemberStatus, Error> { todo!() }
//!     async fn wait(&self, name: &str) -> Result<MemberStatus, Error> { todo!() }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     podctl_plugin::run(Mine)
//! }
//! ```
//!
//! The conventions beyond the calls: a member's output goes into its `log_path` as CRI records
//! ([`cri_log`]); `ports` are where it serves (probes connect there); `limits` are its
//! `resources.limits`; `volumes` are host paths it may see. [`Client`] is podctl's side of the
//! protocol, and [`conformance`] checks a plugin binary against it — run it from your tests.

pub mod child;
pub mod client;
pub mod conformance;
pub mod cri_log;
mod serve;

use std::future::Future;
use std::time::Duration;

/// The generated protocol types and gRPC service (`podctl.plugin.v1`), checked in so that the
/// crate builds without `protoc` (`tests/generated.rs` keeps the copy up to date).
pub mod proto {
    include!("generated/podctl.plugin.v1.rs");
}

pub use client::{Client, ClientError};
pub use proto::member_status::State;
pub use proto::{EnvVar, Limits, Member, MemberStatus, Started, Validated, Volume};
pub use serve::{run, serve, serve_at, ServeError};

/// The protocol version this crate speaks; podctl and a plugin must speak the same.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a plugin tells podctl about itself in the handshake.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginInfo {
    /// NAME of `podctl-runtime-NAME`.
    pub name: String,
    pub version: String,
    /// OCI layer media types whose images it runs.
    pub media_types: Vec<String>,
    /// Extensions (without the dot) of local program files it runs.
    pub file_extensions: Vec<String>,
    /// Whether it runs local directories (`program` is then the directory's absolute path).
    pub directories: bool,
    /// URL schemes (without the colon) of images it fetches itself (`program` is then the image as
    /// written, `SCHEME:REST`).
    pub url_schemes: Vec<String>,
}

impl PluginInfo {
    pub fn new(name: &str, version: &str) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            ..PluginInfo::default()
        }
    }
}

/// Why a call failed, as the plugin reports it; podctl shows the message with the member's name.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// No member of that name (never started, or already removed).
    #[error("no member {0}")]
    NotFound(String),
    /// A member of that name exists already.
    #[error("member {0} exists already")]
    AlreadyExists(String),
    /// The member cannot run as given (its program does not load, a setting makes no sense).
    #[error("{0}")]
    Invalid(String),
    /// Anything else that went wrong.
    #[error("{0}")]
    Failed(String),
}

/// A member runtime, as a plugin implements it. Every method may be called concurrently for
/// different members; podctl calls `start` at most once per name until the member was waited for.
pub trait MemberRuntime: Send + Sync + 'static {
    fn info(&self) -> PluginInfo;
    /// Checks the member without starting anything (loading its program may warm a cache).
    fn validate(&self, member: &Member) -> impl Future<Output = Result<Validated, Error>> + Send;
    fn start(&self, member: Member) -> impl Future<Output = Result<Started, Error>> + Send;
    /// Asks the member to stop; kills it after `grace`. Returns once asked (not once exited).
    fn stop(&self, name: &str, grace: Duration) -> impl Future<Output = Result<(), Error>> + Send;
    fn kill(&self, name: &str) -> impl Future<Output = Result<(), Error>> + Send;
    fn status(&self, name: &str) -> impl Future<Output = Result<MemberStatus, Error>> + Send;
    /// Returns once the member has exited, with its final status.
    fn wait(&self, name: &str) -> impl Future<Output = Result<MemberStatus, Error>> + Send;
}

impl MemberStatus {
    pub fn running(started_at: f64) -> MemberStatus {
        MemberStatus {
            state: State::Running as i32,
            started_at,
            ready: true,
            ..MemberStatus::default()
        }
    }

    /// Exited with `exit_code`; the reason is Kubernetes' `Completed` or `Error` unless given.
    pub fn exited(
        started_at: f64,
        finished_at: f64,
        exit_code: i32,
        reason: Option<&str>,
        message: &str,
    ) -> MemberStatus {
        let reason = reason.unwrap_or(if exit_code == 0 { "Completed" } else { "Error" });
        MemberStatus {
            state: State::Exited as i32,
            started_at,
            finished_at,
            exit_code,
            reason: reason.into(),
            message: message.into(),
            ready: false,
            ..MemberStatus::default()
        }
    }

    pub fn is_exited(&self) -> bool {
        self.state() == State::Exited
    }
}

/// Now, in Unix seconds (the protocol's timestamps).
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
