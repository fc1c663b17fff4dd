//! The pod's sandbox: the pause container (its snapshot, container record with the pod on it, and
//! task), whose namespaces the members join.

use std::collections::HashMap;
use std::path::Path;

use super::CreatePlan;
use crate::containerd::{NewContainer, OCI_SPEC_TYPE_URL};
use crate::manifest::Pod;
use crate::member::undo::{Step, Undo};
use crate::pod::{
    PodError, EXT_POD, LABEL_CONTAINER_NAME, LABEL_KIND, LABEL_MANAGED_BY, LABEL_POD_NAME, LABEL_POD_NAMESPACE,
    LABEL_POD_UID, LABEL_RUNTIME_HANDLER, LABEL_SANDBOX_ID,
};
use crate::spec;

impl CreatePlan<'_> {
    pub(super) fn hostname(&self) -> String {
        crate::pod::etc::hostname(self.pod)
    }

    /// The pause container and its task, created (started later, see `plan`); returns its PID.
    pub(super) async fn create_sandbox(
        &self,
        lease: &str,
        undo: &mut Undo,
        netns: &Path,
        state_dir: &Path,
    ) -> Result<u32, PodError> {
        let client = self.client;
        let id = self.sandbox_id;
        let config = self.pause.config.config().clone().unwrap_or_default();
        let args = [
            config.entrypoint().clone().unwrap_or_default(),
            config.cmd().clone().unwrap_or_default(),
        ]
        .concat();
        let spec = spec::sandbox_spec(spec::SandboxSpecInput {
            sandbox_id: id,
            hostname: &self.hostname(),
            netns,
            args,
            etc_mounts: vec![],
            host_pid: self.pod.spec.host_pid,
            host_ipc: self.pod.spec.host_ipc,
            host_network: self.pod.spec.host_network,
            sysctls: self
                .pod
                .spec
                .security_context
                .iter()
                .flat_map(|s| &s.sysctls)
                .map(|s| (crate::manifest::sysctl_dotted(&s.name), s.value.clone()))
                .collect(),
        })?;
        let mut labels = self.pod.metadata.labels.clone().into_iter().collect::<HashMap<_, _>>();
        labels.extend(sandbox_labels(self.pod, self.uid, id));
        if let Some(class) = &self.runtime_class.containerd {
            labels.insert(LABEL_RUNTIME_HANDLER.into(), class.handler.clone());
        }
        // The network record follows once CNI is done (see the plan).
        let extensions = HashMap::from([(
            EXT_POD.to_string(),
            serde_json::to_vec(self.pod).expect("pods serialize"),
        )]);
        let rootfs = client.prepare_snapshot(lease, id, &self.pause.top_chain_id).await?;
        undo.push(Step::RemoveSnapshot(id.to_string()));
        client
            .create_container(
                lease,
                NewContainer {
                    id: id.to_string(),
                    image: self.pause.name.clone(),
                    labels,
                    spec_type_url: OCI_SPEC_TYPE_URL,
                    spec_json: spec::to_json(&spec)?,
                    snapshot_key: id.to_string(),
                    extensions,
                    runtime: self.runtime_class.task_runtime(),
                },
            )
            .await?;
        undo.push(Step::DeleteContainer(id.to_string()));
        let log = state_dir.join("sandbox.log");
        let pid = client
            .create_task(
                id,
                rootfs,
                &crate::containerd::ExecIo::logged_to(format!("file://{}", log.display())),
            )
            .await?;
        undo.push(Step::DeleteTask(id.to_string()));
        // Its PID is known now; members join its namespaces while it starts (see the plan).
        Ok(pid)
    }
}

fn sandbox_labels(pod: &Pod, uid: &str, sandbox_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_POD_NAME.into(), pod.metadata.name.clone()),
        (LABEL_POD_NAMESPACE.into(), pod.metadata.namespace.clone()),
        (LABEL_POD_UID.into(), uid.to_string()),
        (LABEL_CONTAINER_NAME.into(), "POD".into()),
        (LABEL_KIND.into(), "sandbox".into()),
        (LABEL_MANAGED_BY.into(), "podctl".into()),
        (LABEL_SANDBOX_ID.into(), sandbox_id.to_string()),
    ])
}
