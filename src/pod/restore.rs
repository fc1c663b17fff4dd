//! `podctl system restore`: brings pods back after the host restarted. containerd keeps the
//! records and snapshots, and podctl's state directory (`/var/lib/podctl`) its files; a reboot
//! takes the tasks, the pinned netns and the iptables rules. For each pod whose sandbox task and
//! netns are gone: the stale CNI reservation is released, a new netns is pinned and the pause task
//! started, CNI ADD gives it its network again (with its host ports), the members join the new
//! pause and run again as their restartPolicy says — `Always` and `OnFailure` restart them
//! (RESTARTS counts it), `Never` leaves them terminated with reason `Unknown`, as kubelet does
//! after a node restart — and the agent starts, hosting the plugin members.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::agent::client as agent;
use crate::manifest::{Pod, RestartPolicy};
use crate::member::Registry;
use crate::sandbox::cni::{self, Attachment, CniResult};
use crate::sandbox::netns;

/// What restore did with one pod.
pub struct Restored {
    pub pod: String,
    pub outcome: String,
}

pub async fn restore(client: &Client, settings: &Settings, registry: &Registry) -> Result<Vec<Restored>, PodError> {
    let mut restored = Vec::new();
    for pod in super::list_pods(client, settings, registry).await? {
        if !pod.lost_to_restart {
            continue;
        }
        let name = pod.name.clone();
        let outcome = match restore_pod(client, settings, registry, pod).await {
            Ok(outcome) => outcome,
            Err(e) => format!("not restored: {e}"),
        };
        restored.push(Restored { pod: name, outcome });
    }
    Ok(restored)
}

async fn restore_pod(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: PodView,
) -> Result<String, PodError> {
    let spec = pod.pod.clone().expect("lost_to_restart checked it");
    let id = pod.sandbox_id.clone();
    let record = pod.network.clone().expect("lost_to_restart checked it");
    let oci: Vec<&MemberView> = pod
        .members
        .iter()
        .filter(|m| registry.for_label(&m.runtime).runs_tasks())
        .collect();
    if spec.spec.restart_policy == RestartPolicy::Never {
        return settle_not_restarted(client, &id, &oci, &record).await;
    }

    // The reservation of the address it had: released, so ADD can hand it out again (asked for).
    let old_ip = record.result.as_ref().and_then(CniResult::primary_ip);
    record.teardown(&id).await?;
    // A hostNetwork pod has no netns of its own, nor CNI: the host's address is its IP.
    let netns_path = match record.host_network {
        true => std::path::PathBuf::new(),
        false => netns::create_netns(&netns_name(&id))?.path,
    };
    let state_dir = settings.pod_state_dir(client, &id);
    let pause_pid = start_pause(client, &id, &state_dir).await?;
    let result = attach_network(&id, &netns_path, &record, old_ip.as_deref()).await?;
    super::etc::write_etc_files(&state_dir, &spec, Some(&result))?;
    write_volumes_again(client, &spec, &pod.uid, &state_dir).await?;
    let ip = result.primary_ip();
    let record = NetworkRecord {
        netns: netns_path.clone(),
        result: Some(result),
        ..record
    };
    client
        .set_extensions(
            &id,
            &[(EXT_NETWORK, serde_json::to_vec(&record).expect("records serialize"))],
        )
        .await?;
    restart_members(client, settings, &pod, &spec, &oci, pause_pid).await?;
    restart_agent(&pod.name, &state_dir, pause_pid, ip.clone()).await?;
    let event = PodEvent::normal(
        "Restored",
        "",
        format!(
            "the host restarted: new sandbox (pause pid {pause_pid}), IP {}, {} members restarted",
            ip.as_deref().unwrap_or("none"),
            pod.members.len()
        ),
    );
    let _ = crate::record::events::record(client, &id, event).await;
    Ok(format!(
        "restored: IP {}, {} members restarted",
        ip.as_deref().unwrap_or("none"),
        pod.members.len()
    ))
}

/// As kubelet after a node restart under restartPolicy Never: the pod does not run again; its
/// members and sandbox are marked, and what is left of its network goes.
async fn settle_not_restarted(
    client: &Client,
    id: &str,
    oci: &[&MemberView],
    record: &NetworkRecord,
) -> Result<String, PodError> {
    for member in oci {
        client
            .set_labels(&member.id, &[(LABEL_HOST_RESTARTED, now_secs().to_string())])
            .await?;
    }
    client
        .set_labels(id, &[(LABEL_HOST_RESTARTED, now_secs().to_string())])
        .await?;
    // Its reservation and files of a network that is gone.
    record.teardown(id).await?;
    Ok("restartPolicy Never: not restarted; its members show reason Unknown".into())
}

/// A new pause task on the sandbox's snapshot, started; returns its PID.
async fn start_pause(client: &Client, id: &str, state_dir: &Path) -> Result<u32, PodError> {
    let rootfs = client.snapshot_mounts(id).await?;
    let log = state_dir.join("sandbox.log");
    let pause_pid = client
        .create_task(
            id,
            rootfs,
            &crate::containerd::ExecIo::logged_to(format!("file://{}", log.display())),
        )
        .await?;
    client.start_task(id).await?;
    Ok(pause_pid)
}

/// CNI ADD with the recorded network and host ports, asking for the address the pod had
/// (`hostNetwork`: the host's address).
async fn attach_network(
    id: &str,
    netns_path: &Path,
    record: &NetworkRecord,
    old_ip: Option<&str>,
) -> Result<CniResult, PodError> {
    let network = record.cni_network();
    let attachment = Attachment {
        container_id: id,
        netns: netns_path,
        ifname: "eth0",
        bin_dirs: &record.bin_dirs,
        port_mappings: &record.port_mappings,
        requested_ip: old_ip,
    };
    let added = match record.host_network {
        true => Ok(CniResult::host(&crate::record::host_ip())),
        false => {
            cni::setup_loopback(&attachment).await?;
            cni::add(&network, &attachment).await
        }
    };
    let result = match added {
        Ok(result) => result,
        // Taken meanwhile (or an IPAM without the `IP` argument): any address will do.
        Err(_) if old_ip.is_some() => {
            cni::del(&network, &attachment, None).await.ok();
            cni::add(
                &network,
                &Attachment {
                    requested_ip: None,
                    ..attachment
                },
            )
            .await?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(result)
}

/// Secret volumes were tmpfs: the reboot took them. They and the ConfigMap ones are written
/// again from the objects as they are now (as kubelet remounts them), and memory-backed emptyDirs
/// get a new, empty tmpfs.
async fn write_volumes_again(client: &Client, spec: &Pod, uid: &str, state_dir: &Path) -> Result<(), PodError> {
    let config = super::config_refs::resolve(client, spec, &super::config_refs::pod_facts(uid)).await?;
    super::config_refs::write_volumes(state_dir, &config.volumes)?;
    // emptyDir with medium Memory: a new, empty tmpfs (its files went with the reboot, as on a node).
    for volume in &spec.spec.volumes {
        if let Some(size) = volume.source.memory_size() {
            let dir = state_dir.join("volumes").join(&volume.name);
            crate::volume::prepare_memory_dir(&dir, size, crate::volume::MemoryUse::EmptyDir)?;
            // A new, empty tmpfs: the pod's fsGroup takes it as create gave it the first one.
            if let Some(gid) = spec.spec.security_context.as_ref().and_then(|s| s.fs_group) {
                crate::volume::give_to_group(&dir, gid, true)?;
            }
        }
    }
    Ok(())
}

/// The members join the new pause process (their specs name its namespaces by PID) and run
/// again, their restart counted.
async fn restart_members(
    client: &Client,
    settings: &Settings,
    pod: &PodView,
    spec: &Pod,
    oci: &[&MemberView],
    pause_pid: u32,
) -> Result<(), PodError> {
    for member in oci {
        let spec_json = String::from_utf8_lossy(&member.record.spec_json).into_owned();
        if let Some(old) = pause_pid_in(&spec_json) {
            let moved = spec_json.replace(&format!("/proc/{old}/ns/"), &format!("/proc/{pause_pid}/ns/"));
            client.set_spec(&member.id, moved.into_bytes()).await?;
        }
        let restarts = member
            .record
            .labels
            .get(LABEL_RESTART_COUNT)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        let fallback = settings.pod_log_dir(spec, &pod.uid).join(&member.name);
        crate::member::oci::start_next_run(client, settings, member, &fallback, restarts, &[]).await?;
    }
    Ok(())
}

/// The agent: the same config, with the new pause process and address.
async fn restart_agent(pod: &str, state_dir: &Path, pause_pid: u32, ip: Option<String>) -> Result<(), PodError> {
    let mut config = agent::read_config(state_dir)?;
    config.pause_pid = Some(pause_pid);
    if let Some(supervisor) = config.supervisor.as_mut() {
        supervisor.pod_ip = ip;
    }
    agent::write_config(state_dir, &config)?;
    agent::spawn(pod, state_dir)?;
    if !config.members.is_empty() {
        agent::wait_ready(pod, state_dir, Duration::from_secs(30)).await?;
    }
    Ok(())
}

/// The pause PID a member's spec names in its namespace paths (`/proc/<pid>/ns/...`).
fn pause_pid_in(spec_json: &str) -> Option<u32> {
    let start = spec_json.find("/proc/")? + "/proc/".len();
    let digits: String = spec_json[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pause_pid_is_read_from_a_members_namespace_paths() {
        let spec = r#"{"linux":{"namespaces":[{"type":"network","path":"/run/netns/podctl-x"},{"type":"ipc","path":"/proc/4242/ns/ipc"}]}}"#;
        assert_eq!(super::pause_pid_in(spec), Some(4242));
        assert_eq!(super::pause_pid_in("{}"), None);
    }
}
