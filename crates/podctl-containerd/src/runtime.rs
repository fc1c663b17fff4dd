//! Which shim runs a container's tasks, and with which options: containerd's `runtime` field of a
//! container record, as the CRI plugin fills it from a RuntimeClass handler.

use prost_types::Any;

/// The runtime containerd uses when nothing else is asked for.
pub const DEFAULT_RUNTIME_TYPE: &str = "io.containerd.runc.v2";
const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";

/// A shim (`io.containerd.runc.v2`, `io.containerd.runsc.v1`, …) and its options.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskRuntime {
    /// Empty: [`DEFAULT_RUNTIME_TYPE`].
    pub runtime_type: String,
    pub runc: Option<RuncOptions>,
}

/// The runc shim's options (`containerd.runc.v1.Options`), the fields containerd's CRI config
/// takes under `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.NAME.options]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuncOptions {
    #[prost(bool, tag = "1")]
    pub no_pivot_root: bool,
    #[prost(bool, tag = "2")]
    pub no_new_keyring: bool,
    #[prost(string, tag = "3")]
    pub shim_cgroup: String,
    #[prost(uint32, tag = "4")]
    pub io_uid: u32,
    #[prost(uint32, tag = "5")]
    pub io_gid: u32,
    /// The OCI runtime binary the shim runs instead of `runc` (crun, a wrapper, …).
    #[prost(string, tag = "6")]
    pub binary_name: String,
    #[prost(string, tag = "7")]
    pub root: String,
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
    #[prost(string, tag = "10")]
    pub criu_image_path: String,
    #[prost(string, tag = "11")]
    pub criu_work_path: String,
}

impl TaskRuntime {
    pub fn name(&self) -> &str {
        if self.runtime_type.is_empty() {
            DEFAULT_RUNTIME_TYPE
        } else {
            &self.runtime_type
        }
    }

    /// Whether the shim is containerd's runc shim, whose options are [`RuncOptions`].
    pub fn is_runc(runtime_type: &str) -> bool {
        matches!(runtime_type, "io.containerd.runc.v1" | "io.containerd.runc.v2")
    }

    pub(super) fn options(&self) -> Option<Any> {
        self.runc.as_ref().map(|options| Any {
            type_url: RUNC_OPTIONS_TYPE_URL.into(),
            value: prost::Message::encode_to_vec(options),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_options_encode_as_containerd_reads_them() {
        let runtime = TaskRuntime {
            runtime_type: String::new(),
            runc: Some(RuncOptions {
                binary_name: "crun".into(),
                ..Default::default()
            }),
        };
        assert_eq!(runtime.name(), DEFAULT_RUNTIME_TYPE);
        let any = runtime.options().unwrap();
        assert_eq!(any.type_url, "containerd.runc.v1.Options");
        // field 6, wire type 2 (length-delimited), 4 bytes: "crun"
        assert_eq!(any.value, b"\x32\x04crun");
    }
}
