//! The trait podctl drives each member runtime through, [`RuntimeDriver`] (the OCI runtime and
//! every plugin implement it), and what crosses it: a runtime's claim on a container, its prepared
//! members, its observations and its `runtime ls` line. Not to be confused with
//! `podctl_plugin::MemberRuntime`, the gRPC trait a plugin process implements: podctl's
//! [`super::plugin::PluginRuntime`] drives one of those through the pod's agent.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::image_probe::ImageProbe;
use super::pod_context::PodContext;
use super::runtime_handlers::NamedRuntime;
use super::undo::Undo;
use super::MemberError;
use crate::containerd::{Client, TaskInfo};
use crate::manifest::Container;
use crate::record::{MemberState, MemberView, PodEvent, PodView};
use crate::settings::Settings;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub enum Claim {
    Accept,
    /// Not this runtime's: why, for the error when no runtime accepts.
    Decline(String),
}

/// A runtime's own result of `prepare`, handed back to it in `start`.
pub type Payload = Box<dyn Any + Send + Sync>;

pub struct PreparedMember<'a> {
    pub index: usize,
    pub container: &'a Container,
    pub payload: Payload,
    /// The containerd handler that runs its tasks, when not runc (see [`Registry::select`]).
    pub handler: Option<NamedRuntime>,
}

/// How a runtime sees one of its members now.
#[derive(Clone, Debug)]
pub struct Observation {
    pub state: MemberState,
    pub ready: bool,
    pub restarts: u32,
    pub pid: Option<u32>,
    /// `pid` is the member's own process, not the agent's that hosts it.
    pub own_process: bool,
    /// The last probe result worth showing (`readiness probe failed: ...`), from the agent.
    pub probe: Option<String>,
    /// Why its run ended, as it said (its termination message), while it is terminated.
    pub message: Option<String>,
}

/// What observing needs: containerd, and the namespace's tasks listed once for all pods.
pub struct ObserveContext<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    pub tasks: &'a HashMap<String, TaskInfo>,
}

/// What `podctl runtime ls` shows of a runtime.
pub struct RuntimeInfo {
    /// What it runs (image kinds, media types).
    pub claims: String,
    pub version: String,
}

/// podctl's side of one member runtime: how create, get, start, stop and delete drive its members.
pub trait RuntimeDriver: Send + Sync {
    /// The name in `podctl.io/runtime` labels and annotations.
    fn name(&self) -> &str;
    /// Whether its members are OCI containers whose tasks a containerd shim runs (so a
    /// RuntimeClass's containerd handler applies to them).
    fn runs_tasks(&self) -> bool {
        false
    }
    /// What it runs and its version (a plugin is asked).
    fn info<'a>(&'a self, settings: &'a Settings) -> BoxFuture<'a, RuntimeInfo>;
    /// Whether this runtime runs the container's image; nothing may be created here.
    fn claim<'a>(
        &'a self,
        settings: &'a Settings,
        container: &'a Container,
        probe: &'a ImageProbe,
    ) -> BoxFuture<'a, Claim>;
    /// Resolves what the member needs (image, module) before anything of the pod exists, so a bad
    /// image fails the create with nothing to roll back.
    fn prepare<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        container: &'a Container,
        probe: &'a ImageProbe,
        events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<Payload, MemberError>>;
    /// Creates and starts this runtime's members of the pod, recording an undo step for each thing made.
    fn start<'a>(
        &'a self,
        ctx: &'a PodContext<'a>,
        members: Vec<PreparedMember<'a>>,
        undo: &'a mut Undo,
        events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<(), MemberError>>;
    /// The state of this runtime's members of one pod, by member container ID.
    fn observe<'a>(
        &'a self,
        ctx: &'a ObserveContext<'a>,
        pod: &'a PodView,
    ) -> BoxFuture<'a, HashMap<String, Observation>>;
    /// Whether its members run inside the pod's agent (no process of their own: no `exec`; the
    /// agent starts them, so `podctl start` waits for it).
    fn in_agent(&self) -> bool {
        false
    }
    /// `podctl stop`: stops the members gracefully but keeps their records. Members the agent
    /// hosts were stopped with it already.
    fn halt<'a>(
        &'a self,
        _client: &'a Client,
        _members: Vec<&'a MemberView>,
        _grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Ok(()) })
    }
    /// `podctl start`: runs halted members again; `now` is false while init containers are still
    /// the agent's to finish (it starts the members then).
    fn resume<'a>(
        &'a self,
        _client: &'a Client,
        _settings: &'a Settings,
        _pod: &'a PodView,
        _members: Vec<&'a MemberView>,
        _now: bool,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Ok(()) })
    }
    /// Waits until the members' processes have exited (`delete` then tears the network down).
    fn wait_exited<'a>(&'a self, _client: &'a Client, _members: Vec<&'a MemberView>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// Stops the members gracefully (stop signal, `grace`, then kill) and removes their records.
    fn stop<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        pod: &'a PodView,
        members: Vec<&'a MemberView>,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>>;
}
