//! The subset of the Kubernetes core/v1 Pod that podctl runs.
//!
//! Field names and defaults follow Kubernetes, so the same JSON serves as the user's manifest
//! and as the record podctl stores on containerd; everything empty is skipped when serializing
//! to keep that record compact.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::quantity::{parse_quantity_bytes, parse_quantity_millicpu};

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
    /// A runtime handler of the host's runtime config (see `member::config`).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Only `Always`, only on an init container: a native sidecar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Where the process writes why it ended (default /dev/termination-log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_message_path: Option<String>,
    /// `File` (default) or `FallbackToLogsOnError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_message_policy: Option<String>,
    /// Refused at validation: podctl has no attach, so a process waiting on stdin would end.
    #[serde(skip_serializing_if = "is_false")]
    pub stdin: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_once: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
}

/// `lifecycle`: hooks run right after the container starts and before it is stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lifecycle {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_start: Option<LifecycleHandler>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHandler>,
}

/// One hook: exactly one of these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LifecycleHandler {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// Deprecated in Kubernetes, accepted: a TCP connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep: Option<SleepAction>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SleepAction {
    pub seconds: i64,
}

impl Container {
    /// An init container that keeps running (`restartPolicy: Always`): kubelet's native sidecar.
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }
}

/// Every Linux capability in the kernel's order (what `privileged` and `add: [ALL]` give).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A container's `securityContext` (what podctl applies; the rest is warned about).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

/// `seccompProfile`: RuntimeDefault (containerd's default set of denied system calls),
/// Unconfined, or Localhost (a profile file under the host's seccomp directory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// A namespaced kernel parameter of the pod (`securityContext.sysctls`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sysctl {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Capabilities {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// The pod's `securityContext`: defaults for its containers, and the groups of every process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<u32>,
    /// Owns the pod's emptyDir, configMap, secret and downwardAPI volumes, and is a group of every
    /// process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<Sysctl>,
    /// The containers' default (their own wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

/// A Kubernetes probe: exactly one handler plus timing, with Kubernetes' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcAction>,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            http_get: None,
            tcp_socket: None,
            exec: None,
            grpc: None,
            initial_delay_seconds: 0,
            period_seconds: 10,
            timeout_seconds: 1,
            failure_threshold: 3,
            success_threshold: 1,
        }
    }
}

/// A port by number or by the name of one of the container's ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl Default for PortRef {
    fn default() -> Self {
        PortRef::Number(0)
    }
}

impl PortRef {
    /// The port number, resolving a name against the container's ports.
    pub fn resolve(&self, container: &Container) -> Option<u16> {
        match self {
            PortRef::Number(0) => None,
            PortRef::Number(n) => Some(*n),
            PortRef::Name(name) => container
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpGetAction {
    pub path: String,
    pub port: PortRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// A gRPC probe: the standard health protocol (`grpc.health.v1.Health/Check`) without TLS, as kubelet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpcAction {
    /// A number only: Kubernetes does not take a port name here.
    pub port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpSocketAction {
    pub port: PortRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecAction {
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Where an env value comes from (the references podctl resolves at create).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
    /// The downward API: a field of the pod (`metadata.name`, `status.podIP`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    /// The downward API: a container's resource limit or request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectFieldSelector {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    pub field_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceFieldSelector {
    /// Required in volumes; in env, the container itself when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "optional_quantity")]
    pub divisor: Option<String>,
}

/// One file of a `downwardAPI` volume (or projected source): a pod field or a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownwardFile {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// One key of a ConfigMap or Secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// `envFrom`: every key of a ConfigMap or Secret as a variable, with an optional prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromSource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ObjectRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectRef {
    pub name: String,
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// `items` of a configMap/secret volume: which key becomes which file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// The files of one ConfigMap or Secret, as a volume or as one source of a projected volume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectFiles {
    pub name: String,
    /// Empty: every key, as a file of its name.
    pub items: Vec<KeyToPath>,
    pub optional: bool,
}

/// Which kind of object an [`ObjectFiles`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 0 only when the manifest left it out; validation rejects that.
    pub container_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// Quantities stay the strings the user wrote (`64Mi`, `500m`); bare YAML numbers (`cpu: 1`)
/// are accepted as Kubernetes does and kept in their decimal form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resources {
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "quantity_map")]
    pub limits: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "quantity_map")]
    pub requests: BTreeMap<String, String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.requests.is_empty()
    }

    /// `limits.memory` in bytes (rounded up, as Kubernetes does).
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        self.limits.get("memory").and_then(|q| parse_quantity_bytes(q))
    }

    /// `limits.cpu` in millicores (rounded up).
    pub fn cpu_limit_millis(&self) -> Option<u64> {
        self.limits.get("cpu").and_then(|q| parse_quantity_millicpu(q))
    }

    pub fn memory_request_bytes(&self) -> Option<u64> {
        self.requests.get("memory").and_then(|q| parse_quantity_bytes(q))
    }

    pub fn cpu_request_millis(&self) -> Option<u64> {
        self.requests.get("cpu").and_then(|q| parse_quantity_millicpu(q))
    }
}

/// A volume is its name plus exactly one source, written the Kubernetes way as a sibling key
/// (`hostPath: {...}` or `emptyDir: {}`). The `RawVolume` detour (rather than `#[serde(flatten)]`)
/// keeps serde_ignored and serde_path_to_error able to see inside volumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawVolume", into = "RawVolume")]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    HostPath {
        path: String,
        /// YAML key `type`: "", DirectoryOrCreate, Directory, FileOrCreate, File, Socket,
        /// CharDevice, BlockDevice.
        type_: Option<String>,
    },
    EmptyDir {
        /// "" (node disk) or "Memory" (tmpfs).
        medium: Option<String>,
        size_limit: Option<String>,
    },
    /// Files of ConfigMaps and Secrets: `configMap`, `secret` (one source) or `projected`
    /// (several). Any Secret among them puts the volume on tmpfs.
    Objects {
        sources: Vec<(ObjectKind, ObjectFiles)>,
        /// Files of the downward API (`downwardAPI`, or its projected sources' items).
        downward: Vec<DownwardFile>,
        default_mode: Option<u32>,
        /// Which key it was written under, so the pod's manifest prints back as it came.
        form: ObjectsForm,
    },
}

impl VolumeSource {
    /// For an `emptyDir` with `medium: Memory`: the size of its tmpfs (sizeLimit, else 1 GiB).
    pub fn memory_size(&self) -> Option<u64> {
        match self {
            VolumeSource::EmptyDir { medium, size_limit } if medium.as_deref() == Some("Memory") => {
                Some(size_limit.as_deref().and_then(parse_quantity_bytes).unwrap_or(1 << 30))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectsForm {
    ConfigMap,
    Secret,
    Projected,
    DownwardApi,
}

/// kubelet's default file mode for configMap, secret and projected volumes.
pub const DEFAULT_OBJECT_FILE_MODE: u32 = 0o644;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawVolume {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) host_path: Option<RawHostPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) empty_dir: Option<RawEmptyDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) config_map: Option<RawObjectVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<RawObjectVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) projected: Option<RawProjected>,
    #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
    pub(crate) downward_api: Option<RawDownwardApi>,
}

/// `downwardAPI: {items, defaultMode}` (a projected source has no defaultMode).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawDownwardApi {
    pub(crate) items: Vec<DownwardFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) default_mode: Option<u32>,
}

/// `configMap: {name, items, defaultMode, optional}`, and a Secret's with `secretName`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawObjectVolume {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) items: Vec<KeyToPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) default_mode: Option<u32>,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) optional: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawProjected {
    pub(crate) sources: Vec<RawProjection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) default_mode: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawProjection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) config_map: Option<RawObjectVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<RawObjectVolume>,
    #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
    pub(crate) downward_api: Option<RawDownwardApi>,
}

impl RawObjectVolume {
    fn files(self, name_key: &str) -> Result<ObjectFiles, String> {
        let name = match name_key {
            "secretName" => self.secret_name,
            _ => self.name,
        };
        Ok(ObjectFiles {
            name: name.filter(|n| !n.is_empty()).ok_or_else(|| {
                format!("the volume's {name_key} is required; name the object whose keys become its files")
            })?,
            items: self.items,
            optional: self.optional,
        })
    }

    fn of(files: ObjectFiles, kind: ObjectKind, default_mode: Option<u32>) -> RawObjectVolume {
        let (name, secret_name) = match kind {
            ObjectKind::ConfigMap => (Some(files.name), None),
            ObjectKind::Secret => (None, Some(files.name)),
        };
        RawObjectVolume {
            name,
            secret_name,
            items: files.items,
            default_mode,
            optional: files.optional,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawHostPath {
    pub(crate) path: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) type_: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawEmptyDir {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "optional_quantity")]
    pub(crate) size_limit: Option<String>,
}

impl TryFrom<RawVolume> for Volume {
    type Error = String;

    fn try_from(raw: RawVolume) -> Result<Self, String> {
        let given = [
            raw.host_path.is_some(),
            raw.empty_dir.is_some(),
            raw.config_map.is_some(),
            raw.secret.is_some(),
            raw.projected.is_some(),
            raw.downward_api.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            1 => {}
            0 => {
                return Err(
                    "a volume needs a source; add `hostPath: {path: /dir}`, `emptyDir: {}`, \
                            `configMap: {name: NAME}`, `secret: {secretName: NAME}`, `downwardAPI: {items: [...]}` \
                            or `projected: {sources: [...]}`"
                        .into(),
                )
            }
            _ => {
                return Err(
                    "a volume has exactly one source; keep one of hostPath, emptyDir, configMap, secret, downwardAPI \
                     or projected"
                        .into(),
                )
            }
        }
        let source = if let Some(h) = raw.host_path {
            VolumeSource::HostPath {
                path: h.path,
                type_: h.type_,
            }
        } else if let Some(e) = raw.empty_dir {
            VolumeSource::EmptyDir {
                medium: e.medium,
                size_limit: e.size_limit,
            }
        } else if let Some(c) = raw.config_map {
            let default_mode = c.default_mode;
            VolumeSource::Objects {
                sources: vec![(ObjectKind::ConfigMap, c.files("name")?)],
                downward: Vec::new(),
                default_mode,
                form: ObjectsForm::ConfigMap,
            }
        } else if let Some(c) = raw.secret {
            let default_mode = c.default_mode;
            VolumeSource::Objects {
                sources: vec![(ObjectKind::Secret, c.files("secretName")?)],
                downward: Vec::new(),
                default_mode,
                form: ObjectsForm::Secret,
            }
        } else if let Some(d) = raw.downward_api {
            VolumeSource::Objects {
                sources: Vec::new(),
                downward: d.items,
                default_mode: d.default_mode,
                form: ObjectsForm::DownwardApi,
            }
        } else {
            let projected = raw.projected.expect("one source is given");
            let mut sources = Vec::new();
            let mut downward = Vec::new();
            for source in projected.sources {
                match (source.config_map, source.secret, source.downward_api) {
                    (Some(c), None, None) => sources.push((ObjectKind::ConfigMap, c.files("name")?)),
                    (None, Some(c), None) => sources.push((ObjectKind::Secret, c.files("name")?)),
                    (None, None, Some(d)) => downward.extend(d.items),
                    _ => {
                        return Err(
                            "each projected source is one of configMap, secret or downwardAPI (podctl \
                                    projects no serviceAccountToken or clusterTrustBundle: it mounts no token)"
                                .into(),
                        )
                    }
                }
            }
            VolumeSource::Objects {
                sources,
                downward,
                default_mode: projected.default_mode,
                form: ObjectsForm::Projected,
            }
        };
        Ok(Volume { name: raw.name, source })
    }
}

impl From<Volume> for RawVolume {
    fn from(v: Volume) -> Self {
        let mut raw = RawVolume {
            name: v.name,
            ..Default::default()
        };
        match v.source {
            VolumeSource::HostPath { path, type_ } => raw.host_path = Some(RawHostPath { path, type_ }),
            VolumeSource::EmptyDir { medium, size_limit } => raw.empty_dir = Some(RawEmptyDir { medium, size_limit }),
            VolumeSource::Objects {
                sources,
                downward,
                default_mode,
                form: ObjectsForm::Projected,
            } => {
                let downward = (!downward.is_empty()).then(|| RawProjection {
                    downward_api: Some(RawDownwardApi {
                        items: downward,
                        default_mode: None,
                    }),
                    ..Default::default()
                });
                let sources = sources
                    .into_iter()
                    .map(|(kind, files)| {
                        let mut one = RawObjectVolume::of(files, ObjectKind::ConfigMap, None);
                        match kind {
                            ObjectKind::ConfigMap => RawProjection {
                                config_map: Some(one),
                                ..Default::default()
                            },
                            ObjectKind::Secret => {
                                // (A projected secret is named by `name`, not `secretName`.)
                                one.secret_name = None;
                                RawProjection {
                                    secret: Some(one),
                                    ..Default::default()
                                }
                            }
                        }
                    })
                    .chain(downward)
                    .collect();
                raw.projected = Some(RawProjected { sources, default_mode });
            }
            VolumeSource::Objects {
                downward,
                default_mode,
                form: ObjectsForm::DownwardApi,
                ..
            } => {
                raw.downward_api = Some(RawDownwardApi {
                    items: downward,
                    default_mode,
                })
            }
            VolumeSource::Objects {
                mut sources,
                default_mode,
                form,
                ..
            } => {
                let (kind, files) = sources.remove(0);
                let one = RawObjectVolume::of(files, kind, default_mode);
                match form {
                    ObjectsForm::Secret => raw.secret = Some(one),
                    _ => raw.config_map = Some(one),
                }
            }
        }
        raw
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A quantity as the user wrote it: a string, or a bare YAML number.
struct QuantityText(String);

impl<'de> Deserialize<'de> for QuantityText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = QuantityText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as \"64Mi\" or \"500m\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<QuantityText, E> {
                Ok(QuantityText(s.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<QuantityText, E> {
                Ok(QuantityText(n.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<QuantityText, E> {
                Ok(QuantityText(n.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<QuantityText, E> {
                // Rust prints 1e3 as "1000" and 0.5 as "0.5": both valid quantity strings.
                Ok(QuantityText(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

fn quantity_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, QuantityText>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

fn optional_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<QuantityText>::deserialize(d)?.map(|q| q.0))
}
