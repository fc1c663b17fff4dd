//! The pod's agent, started last: its config (the OCI members it supervises, the plugins and
//! members it hosts, the init containers handed over) and, for hosted members, the wait for them.

use super::CreatePlan;
use crate::agent::client as agent;
use crate::agent::protocol::{AgentConfig, OciMemberRef, PluginState, SupervisorConfig};
use crate::member::undo::{Step, Undo};
use crate::member::{self, PodContext};
use crate::pod::PodError;

impl CreatePlan<'_> {
    /// Every pod gets an agent: it supervises the OCI members (restart policy) and hosts the WASM
    /// ones. Only WASM members make `create` wait for it; supervision catches up by itself.
    pub(super) async fn start_agent(
        &self,
        ctx: &PodContext<'_>,
        oci_members: &[OciMemberRef],
        pod_ip: Option<String>,
        undo: &mut Undo,
    ) -> Result<(), PodError> {
        let pod = self.pod.metadata.name.clone();
        let hosted = std::mem::take(&mut *ctx.hosted.lock().expect("not poisoned"));
        let hosts_members = !hosted.members.is_empty();
        let config = AgentConfig {
            pod: pod.clone(),
            sandbox_id: self.sandbox_id.to_string(),
            netns: ctx.namespaces.netns.clone(),
            pause_pid: Some(ctx.namespaces.pause_pid),
            plugins: hosted.plugins,
            legacy_plugin: None,
            legacy_cache_dir: None,
            members: hosted.members,
            supervisor: Some(SupervisorConfig {
                sandbox_id: self.sandbox_id.to_string(),
                address: self.client.address().to_path_buf(),
                namespace: self.client.namespace().to_string(),
                restart_policy: format!("{:?}", self.pod.spec.restart_policy),
                backoff_base_ms: (self.settings.backoff_base.as_secs_f64() * 1000.0) as u64,
                members: oci_members.to_vec(),
                pod_ip,
                log_rotation: self.settings.log_rotation,
                grace_seconds: Some(self.pod.spec.termination_grace_period_seconds),
                state_dir: Some(ctx.state_dir.clone()),
                // Counted from when create began, as kubelet counts from the pod's start.
                deadline: self
                    .pod
                    .spec
                    .active_deadline_seconds
                    .map(|seconds| self.began + seconds as f64),
            }),
            init: std::mem::take(&mut *ctx.init_handover.lock().expect("not poisoned")),
        };
        agent::write_config(&ctx.state_dir, &config)?;
        agent::spawn(&pod, &ctx.state_dir)?;
        undo.push(Step::StopAgent {
            pod: pod.clone(),
            dir: ctx.state_dir.clone(),
        });
        if !hosts_members {
            return Ok(());
        }
        let status = agent::wait_ready(&pod, &ctx.state_dir, std::time::Duration::from_secs(30)).await?;
        for member in &status.members {
            if member.state == PluginState::Failed {
                return Err(PodError::Container {
                    container: member.name.clone(),
                    message: member.message.clone().unwrap_or_else(|| "it failed to start".into()),
                });
            }
        }
        Ok(())
    }
}

/// An OCI member as the agent supervises it (an app container; sidecars set their two fields).
pub(super) fn oci_member_ref(ctx: &PodContext<'_>, id: String, container: &crate::manifest::Container) -> OciMemberRef {
    OciMemberRef {
        name: container.name.clone(),
        id,
        log_dir: ctx.log_dir.join(&container.name),
        probes: member::probe_defs(container),
        sidecar: false,
        stop_signal: None,
        hooks: member::hook_defs(container),
        message_from_logs: container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        stdio: crate::member::oci::interactive_of(container),
    }
}
