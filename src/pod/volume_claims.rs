//! PersistentVolumeClaims as podctl keeps them: the object in containerd (as ConfigMaps are kept,
//! [`super::config_store`]), its data in a directory under the state directory
//! (`<state>/<namespace>/claims/<name>`) that outlives the pods mounting it. A claim is bound when
//! it is made; deleting it deletes its data, and is refused while a pod uses it.

use std::path::PathBuf;

use super::config_store::{self, Applied, ConfigObject};
use super::{io_error, PodError, PodView, Settings};
use crate::containerd::Client;
use crate::manifest::claim::PersistentVolumeClaim;
use crate::manifest::config_objects::ConfigMeta;
use crate::manifest::{Pod, VolumeSource};

impl ConfigObject for PersistentVolumeClaim {
    const KIND: &'static str = "PersistentVolumeClaim";
    const RESOURCE: &'static str = "persistentvolumeclaim";
    fn meta(&self) -> &ConfigMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ConfigMeta {
        &mut self.metadata
    }
}

/// The directory holding a claim's data.
pub fn claim_dir(settings: &Settings, client: &Client, name: &str) -> PathBuf {
    settings.claims_dir(client).join(name)
}

/// Makes the claim and its (empty) directory, writable by any user as kubelet makes a volume.
pub async fn create_claim(
    client: &Client,
    settings: &Settings,
    claim: &PersistentVolumeClaim,
) -> Result<PersistentVolumeClaim, PodError> {
    let dir = claim_dir(settings, client, &claim.metadata.name);
    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).map_err(io_error(&dir))?;
    config_store::create_object(client, claim).await
}

/// `apply` of a claim: made when missing; of one that exists only `resources` may change (as the
/// API server allows), and its data stays.
pub async fn apply_claim(
    client: &Client,
    settings: &Settings,
    claim: &PersistentVolumeClaim,
) -> Result<Applied<PersistentVolumeClaim>, PodError> {
    let name = &claim.metadata.name;
    let Some(stored) = config_store::get_object::<PersistentVolumeClaim>(client, name).await? else {
        create_claim(client, settings, claim).await?;
        return Ok(Applied::Created);
    };
    let mut resources_apart = claim.spec.clone();
    resources_apart.resources = stored.spec.resources.clone();
    if resources_apart != stored.spec {
        return Err(PodError::ClaimSpecChanged { claim: name.clone() });
    }
    config_store::apply_object(client, claim).await
}

/// The pods (by name) that mount the claim.
pub fn users<'a>(pods: &'a [PodView], claim: &str) -> Vec<&'a str> {
    pods.iter()
        .filter(|view| {
            view.pod
                .as_ref()
                .is_some_and(|pod| claims_of(pod).any(|(_, name)| name == claim))
        })
        .map(|view| view.name.as_str())
        .collect()
}

/// The claims a pod mounts: (volume index, claim name).
pub fn claims_of(pod: &Pod) -> impl Iterator<Item = (usize, &str)> {
    pod.spec
        .volumes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match &v.source {
            VolumeSource::Claim { claim_name, .. } => Some((i, claim_name.as_str())),
            _ => None,
        })
}

/// Deletes the claim and its data; refused while a pod mounts it.
pub async fn delete_claim(client: &Client, settings: &Settings, pods: &[PodView], name: &str) -> Result<(), PodError> {
    let using = users(pods, name);
    if !using.is_empty() {
        return Err(PodError::ClaimInUse {
            claim: name.to_string(),
            pods: using.join(", "),
        });
    }
    config_store::delete_object::<PersistentVolumeClaim>(client, name).await?;
    let dir = claim_dir(settings, client, name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&dir)(e)),
        _ => Ok(()),
    }
}

/// Before a pod is made: every claim it mounts exists, and a ReadWriteOncePod one is not mounted
/// by another pod.
pub async fn check_claims(
    client: &Client,
    settings: &Settings,
    registry: &crate::member::Registry,
    pod: &Pod,
) -> Result<(), PodError> {
    let mut single_pod = Vec::new();
    for (i, name) in claims_of(pod) {
        let Some(claim) = config_store::get_object::<PersistentVolumeClaim>(client, name).await? else {
            return Err(PodError::ConfigRef {
                pod: pod.metadata.name.clone(),
                field: format!("spec.volumes[{i}].persistentVolumeClaim.claimName"),
                problem: format!("persistentvolumeclaim {name} not found"),
                fix: "put a PersistentVolumeClaim of that name in the manifests (podctl makes one for a claimName \
                      no file defines), or `podctl get pvc` for the claims there are"
                    .into(),
            });
        };
        let dir = claim_dir(settings, client, name);
        if !dir.is_dir() {
            return Err(PodError::ConfigRef {
                pod: pod.metadata.name.clone(),
                field: format!("spec.volumes[{i}].persistentVolumeClaim.claimName"),
                problem: format!(
                    "the data directory {} of persistentvolumeclaim {name} is gone",
                    dir.display()
                ),
                fix: format!("delete the claim (`podctl delete pvc {name}`) and make it again"),
            });
        }
        if claim.single_pod() {
            single_pod.push(name.to_string());
        }
    }
    if single_pod.is_empty() {
        return Ok(());
    }
    let pods = super::list_pods(client, settings, registry).await?;
    for name in single_pod {
        if let Some(holder) = users(&pods, &name).first() {
            return Err(PodError::ClaimBusy {
                pod: pod.metadata.name.clone(),
                claim: name,
                holder: holder.to_string(),
            });
        }
    }
    Ok(())
}
