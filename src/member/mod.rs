//! Which runtime runs a pod member. Today the built-in OCI runtime (containerd + runc) is the only
//! one; WASI members will plug in here behind the same selection, so create/delete never branch on
//! image kinds themselves.

use crate::manifest::{Container, Pod};

/// Per-container override: `podctl.io/runtime.<container-name>: oci`.
pub const RUNTIME_ANNOTATION_PREFIX: &str = "podctl.io/runtime.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// An OCI image run by containerd's runc shim inside the sandbox's namespaces.
    Oci,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Oci => "oci",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("container {container}: no member runtime can run image {image}: {reason}")]
    NoRuntime {
        container: String,
        image: String,
        reason: String,
    },
}

/// Picks the runtime for one container: the annotation override first, then the image reference.
pub fn select_runtime(pod: &Pod, container: &Container) -> Result<RuntimeKind, MemberError> {
    let key = format!("{RUNTIME_ANNOTATION_PREFIX}{}", container.name);
    let no_runtime = |reason: String| MemberError::NoRuntime {
        container: container.name.clone(),
        image: container.image.clone(),
        reason,
    };
    if let Some(choice) = pod.metadata.annotations.get(&key) {
        return match choice.as_str() {
            "oci" => Ok(RuntimeKind::Oci),
            other => Err(no_runtime(format!(
                "annotation {key}: `{other}` is not a runtime this build has (it has: oci)"
            ))),
        };
    }
    let image = container.image.as_str();
    if image.starts_with("file://") || image.ends_with(".wasm") || image.ends_with(".wat") {
        return Err(no_runtime(
            "it is a WebAssembly module and this build has no WASM member runtime yet".into(),
        ));
    }
    Ok(RuntimeKind::Oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(image: &str, annotation: Option<&str>) -> Pod {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap();
        if let Some(a) = annotation {
            pod.metadata.annotations.insert("podctl.io/runtime.c".into(), a.into());
        }
        pod
    }

    #[test]
    fn selects_oci_and_refuses_wasm_with_a_reason() {
        let p = pod("busybox", None);
        assert_eq!(select_runtime(&p, &p.spec.containers[0]).unwrap(), RuntimeKind::Oci);
        let p = pod("./greeter.wasm", None);
        let err = select_runtime(&p, &p.spec.containers[0]).unwrap_err().to_string();
        assert!(err.contains("WebAssembly"), "{err}");
        let p = pod("busybox", Some("crun"));
        let err = select_runtime(&p, &p.spec.containers[0]).unwrap_err().to_string();
        assert!(err.contains("podctl.io/runtime.c"), "{err}");
    }
}
