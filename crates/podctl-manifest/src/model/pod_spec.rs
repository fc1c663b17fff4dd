//! The pod itself: `Pod`, its `metadata` and the pod-level fields of its `spec` (restart policy,
//! host namespaces, DNS, host aliases, pull secrets), and the order its containers run in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::container_spec::Container;
use super::security_context::PodSecurityContext;
use super::serde_fields::is_false;
use super::volume_sources::Volume;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

impl Pod {
    /// Init containers first, then app containers: the order they start in.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.spec.init_containers.iter().chain(self.spec.containers.iter())
    }

    /// The init containers with `restartPolicy: Always`, in their order: they keep running next
    /// to the app containers.
    pub fn sidecars(&self) -> impl Iterator<Item = &Container> {
        self.spec.init_containers.iter().filter(|c| c.is_sidecar())
    }

    /// What runs once the pod is up: sidecars, then the app containers.
    pub fn long_running(&self) -> impl Iterator<Item = &Container> {
        self.sidecars().chain(self.spec.containers.iter())
    }

    /// The container of that name, wherever the pod declares it.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.all_containers().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ObjectMeta {
    fn default() -> Self {
        ObjectMeta {
            name: String::new(),
            namespace: "default".to_string(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub share_process_namespace: bool,
    pub restart_policy: RestartPolicy,
    pub termination_grace_period_seconds: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// A runtime handler of the host's runtime config (see `podctl::member::runtime_handlers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// Secrets of type kubernetes.io/dockerconfigjson whose credentials this pod's pulls use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Read by the downward API (`spec.serviceAccountName`); podctl mounts no token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// The pod lives in the host's network (and UTS) namespace: no CNI, its ports are the host's.
    #[serde(skip_serializing_if = "is_false")]
    pub host_network: bool,
    /// The members see the host's processes (no PID namespace of the pod).
    #[serde(rename = "hostPID", skip_serializing_if = "is_false")]
    pub host_pid: bool,
    /// The members share the host's IPC namespace and /dev/shm.
    #[serde(rename = "hostIPC", skip_serializing_if = "is_false")]
    pub host_ipc: bool,
    /// ClusterFirst (default), Default, ClusterFirstWithHostNet or None.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    /// Extra /etc/hosts entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    /// With `hostname`: the pod's fully qualified name is hostname.subdomain.namespace.svc.cluster.local.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// Seconds after the pod started when its members are stopped and it fails (DeadlineExceeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
    /// The pod's hostname is its FQDN (with a subdomain: hostname.subdomain.namespace.svc.cluster.local).
    #[serde(rename = "setHostnameAsFQDN", skip_serializing_if = "is_false")]
    pub set_hostname_as_fqdn: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDnsConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PodDnsConfigOption>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDnsConfigOption {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalObjectReference {
    pub name: String,
}

impl Default for PodSpec {
    fn default() -> Self {
        PodSpec {
            containers: Vec::new(),
            init_containers: Vec::new(),
            hostname: None,
            share_process_namespace: false,
            restart_policy: RestartPolicy::Always,
            termination_grace_period_seconds: 30,
            volumes: Vec::new(),
            runtime_class_name: None,
            image_pull_secrets: Vec::new(),
            security_context: None,
            service_account_name: None,
            automount_service_account_token: None,
            host_network: false,
            host_pid: false,
            host_ipc: false,
            dns_policy: None,
            dns_config: None,
            host_aliases: Vec::new(),
            subdomain: None,
            active_deadline_seconds: None,
            set_hostname_as_fqdn: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}
