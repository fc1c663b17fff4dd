//! Changes `apply` makes to a running pod in place: a container whose `image` changed is
//! restarted on the new image in the same sandbox (same IP, same volumes), as kubelet does for
//! the one Pod field the API server lets change. Its restart count goes up by one.

use std::time::Duration;

use super::*;
use crate::manifest::downward::PodFacts;
use crate::manifest::{Container, Pod};
use crate::member::Registry;

/// Restarts the members whose image differs between the pod as recorded and `wanted`, on their
/// new images, then records `wanted` as the pod. Only OCI members can change images in place.
pub async fn set_images(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    view: &PodView,
    wanted: &Pod,
) -> Result<Vec<String>, PodError> {
    let stored = view.pod.clone().unwrap_or_default();
    let facts = PodFacts {
        pod_ips: view.ip().map(|ip| vec![ip]),
        ..super::config_refs::pod_facts(&view.uid)
    };
    let config = super::config_refs::resolve(client, wanted, &facts).await?;
    let mut events = Vec::new();
    let pull_secrets = super::config_refs::pull_secrets(client, wanted, &mut events).await?;
    let mut changed = Vec::new();
    for (index, (before, after)) in stored.spec.containers.iter().zip(&wanted.spec.containers).enumerate() {
        if before.image == after.image {
            continue;
        }
        let member = view
            .members
            .iter()
            .find(|m| m.name == after.name)
            .ok_or_else(|| PodError::Damaged {
                pod: view.name.clone(),
                message: format!("member {} has no record", after.name),
            })?;
        if !registry.for_label(&member.runtime).runs_tasks() {
            return Err(PodError::Container {
                container: after.name.clone(),
                message: format!(
                    "its runtime ({}) cannot change a member's image in place; apply with --force to create the pod again",
                    member.runtime
                ),
            });
        }
        let resolved = &config.pod.spec.containers[index];
        restart_on_image(client, settings, view, member, resolved, &pull_secrets).await?;
        changed.push(after.name.clone());
    }
    // The record says what runs now: the next apply of the same file is `unchanged`.
    client
        .set_extensions(
            &view.sandbox_id,
            &[(EXT_POD, serde_json::to_vec(wanted).expect("pods serialize"))],
        )
        .await?;
    Ok(changed)
}

async fn restart_on_image(
    client: &Client,
    settings: &Settings,
    view: &PodView,
    member: &crate::record::MemberView,
    container: &Container,
    pull_secrets: &[crate::image::auth::PullSecret],
) -> Result<(), PodError> {
    let name = crate::image::reference::normalize(&container.image);
    let policy = crate::image::effective_policy(&name, container.image_pull_policy);
    crate::image::ensure_image(client, &name, policy, &settings.pull, pull_secrets)
        .await
        .map_err(|error| PodError::Image {
            container: container.name.clone(),
            error: Box::new(error),
        })?;
    let image = super::create::resolve_present(client, &name).await?;
    // The process as the new image defines it; namespaces, mounts and limits stay the member's.
    let hostname = view
        .pod
        .as_ref()
        .and_then(|p| p.spec.hostname.clone())
        .unwrap_or_else(|| view.name.clone());
    let pod_security = view.pod.as_ref().and_then(|p| p.spec.security_context.as_ref());
    // A new root filesystem from the new image, under the member's ID; a lease holds it until the
    // container record (which roots it for GC) names it again. A look at the new image's
    // /etc/passwd first (for USER names), before the member is stopped.
    let lease = format!("podctl-update-{}", member.id);
    client.ensure_lease(&lease, 3600).await?;
    let look = format!("{}-accounts", member.id);
    let rootfs = client.prepare_snapshot(&lease, &look, &image.top_chain_id).await?;
    let accounts = crate::member::oci::image_accounts(&rootfs);
    client.remove_snapshot(&look).await?;
    let plan = match crate::spec::plan_process(container, &image.config, &hostname, pod_security, &accounts) {
        Ok(plan) => plan,
        Err(e) => {
            client.delete_lease(&lease).await?;
            return Err(e.into());
        }
    };
    let mut spec: serde_json::Value =
        serde_json::from_slice(&member.record.spec_json).map_err(|e| PodError::Damaged {
            pod: view.name.clone(),
            message: format!("member {} has an unreadable spec: {e}", member.name),
        })?;
    spec["process"]["args"] = serde_json::json!(plan.args);
    spec["process"]["env"] = serde_json::json!(plan.env);
    spec["process"]["cwd"] = serde_json::json!(plan.cwd);
    spec["process"]["user"]["uid"] = serde_json::json!(plan.uid);
    spec["process"]["user"]["gid"] = serde_json::json!(plan.gid);
    spec["process"]["user"]["additionalGids"] = serde_json::json!(plan.additional_gids);

    let grace = Duration::from_secs(
        view.pod
            .as_ref()
            .map_or(30, |p| p.spec.termination_grace_period_seconds),
    );
    let signal = crate::containerd::signal_number(&member.stop_signal);
    client.stop_task(&member.id, signal, grace).await?;
    let swapped = async {
        client.remove_snapshot(&member.id).await?;
        client.prepare_snapshot(&lease, &member.id, &image.top_chain_id).await?;
        client
            .set_spec_and_image(
                &member.id,
                serde_json::to_vec(&spec).expect("specs serialize"),
                &image.name,
            )
            .await?;
        Ok::<_, crate::containerd::ContainerdError>(())
    }
    .await;
    client.delete_lease(&lease).await?;
    swapped?;
    let fallback = settings.pod_log_dir(stored_pod(view)?, &view.uid).join(&member.name);
    let stop_signal = crate::member::oci::image_stop_signal(&image);
    crate::member::oci::start_next_run(
        client,
        settings,
        member,
        &fallback,
        member.restarts + 1,
        &[(LABEL_STOP_SIGNAL, stop_signal)],
    )
    .await?;
    Ok(())
}

fn stored_pod(view: &PodView) -> Result<&Pod, PodError> {
    view.pod.as_ref().ok_or_else(|| PodError::Damaged {
        pod: view.name.clone(),
        message: "its sandbox records no pod spec".into(),
    })
}
