//! The runtimes podctl knows on this host, in claim order ([`Registry`]): which one runs a container
//! (the annotation, the pod's runtime class, else the first that claims it), what a pod's
//! `spec.runtimeClassName` means here, and a pod's members grouped by the runtime that runs them.

use std::sync::Arc;

use super::image_probe::{ImageProbe, RUNTIME_ANNOTATION_PREFIX};
use super::runtime_driver::{Claim, RuntimeDriver};
use super::runtime_handlers::{Handler, NamedRuntime, RuntimeClass, RuntimeConfig};
use super::{oci, plugin, MemberError};
use crate::manifest::{Container, Pod};
use crate::record::{MemberView, PodView};
use crate::settings::Settings;

/// The runtime chosen for a container, and the containerd handler of its tasks (if not runc).
pub struct Selected {
    pub runtime: usize,
    pub handler: Option<NamedRuntime>,
}

/// A pod's members grouped by the runtime that runs them, in the registry's order.
pub type RuntimeGroups<'p> = Vec<(Arc<dyn RuntimeDriver>, Vec<&'p MemberView>)>;

/// The runtimes podctl knows, in claim order, and the host's runtime handlers.
pub struct Registry {
    runtimes: Vec<Arc<dyn RuntimeDriver>>,
    config: RuntimeConfig,
}

impl Registry {
    /// `runtimes` in claim order (the last should claim what nobody else does); `config`'s plugin
    /// handlers must name one of them.
    pub fn new(runtimes: Vec<Arc<dyn RuntimeDriver>>, config: RuntimeConfig) -> Result<Registry, MemberError> {
        let registry = Registry { runtimes, config };
        for (name, handler) in &registry.config.handlers {
            if let Handler::Plugin(plugin) = handler {
                if registry.by_name(plugin).is_none_or(|r| !r.in_agent()) {
                    return Err(MemberError::UnknownPlugin {
                        config: registry.config.describe_path(),
                        field: format!("runtimes.{name}.plugin"),
                        plugin: plugin.clone(),
                        known: registry
                            .runtimes
                            .iter()
                            .filter(|r| r.in_agent())
                            .map(|r| r.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Ok(registry)
    }

    /// podctl's runtimes on this host, in claim order: WASM, the plugins installed in the plugin
    /// directories (by name), then OCI; with the handlers of `config`, whose plugins must be
    /// among them.
    pub fn discover(config: RuntimeConfig, settings: &Settings) -> Result<Registry, MemberError> {
        let mut runtimes: Vec<Arc<dyn RuntimeDriver>> = vec![Arc::new(plugin::PluginRuntime::wasmtime())];
        for name in settings
            .installed_plugins()
            .iter()
            .filter(|p| *p != plugin::wasmtime::PLUGIN && *p != oci::NAME)
        {
            runtimes.push(Arc::new(plugin::PluginRuntime::installed(name)));
        }
        runtimes.push(Arc::new(oci::OciRuntime));
        Registry::new(runtimes, config)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn runtimes(&self) -> impl Iterator<Item = (usize, &dyn RuntimeDriver)> {
        self.runtimes.iter().map(|r| r.as_ref()).enumerate()
    }

    /// The runtime of a member's `podctl.io/runtime` label. A plugin this host no longer has or
    /// config no longer names still gets one: its members live in the pod's agent, which is asked
    /// about them and stops them like any plugin's.
    pub fn for_label(&self, name: &str) -> Arc<dyn RuntimeDriver> {
        match self.runtimes.iter().find(|r| r.name() == name) {
            Some(runtime) => runtime.clone(),
            None => Arc::new(plugin::PluginRuntime::installed(name)),
        }
    }

    pub fn get(&self, index: usize) -> &dyn RuntimeDriver {
        self.runtimes[index].as_ref()
    }

    pub fn by_name(&self, name: &str) -> Option<&dyn RuntimeDriver> {
        self.runtimes.iter().find(|r| r.name() == name).map(|r| r.as_ref())
    }

    /// The pod's members grouped by the runtime that runs them, in claim order.
    pub fn members_by_runtime<'p>(&self, pod: &'p PodView) -> RuntimeGroups<'p> {
        self.group_by_runtime(pod.members.iter().collect())
    }

    /// The order a pod's members stop in, each step grouped by runtime: the app containers
    /// together, then the sidecars one by one, the last started first (as kubelet stops them).
    pub fn stop_order<'p>(&self, pod: &'p PodView) -> Vec<RuntimeGroups<'p>> {
        let apps = pod.app_members().collect();
        let sidecars = pod.members.iter().filter(|m| m.sidecar).rev().map(|m| vec![m]);
        std::iter::once(apps)
            .chain(sidecars)
            .map(|members| self.group_by_runtime(members))
            .filter(|groups| !groups.is_empty())
            .collect()
    }

    fn group_by_runtime<'p>(&self, members: Vec<&'p MemberView>) -> RuntimeGroups<'p> {
        let mut labels: Vec<&str> = members.iter().map(|m| m.runtime.as_str()).collect();
        labels.sort_by_key(|label| (self.index_of(label).unwrap_or(usize::MAX), *label));
        labels.dedup();
        labels
            .into_iter()
            .map(|label| {
                let of_label = members.iter().copied().filter(|m| m.runtime == label).collect();
                (self.for_label(label), of_label)
            })
            .collect()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.runtimes.iter().position(|r| r.name() == name)
    }

    fn names(&self) -> Vec<&str> {
        self.runtimes.iter().map(|r| r.name()).collect()
    }

    /// The runtime whose members are OCI containers run by a containerd shim.
    fn oci_index(&self) -> Option<usize> {
        self.runtimes.iter().position(|r| r.runs_tasks())
    }

    /// What the pod's `spec.runtimeClassName` means here, given the handler it names (its
    /// RuntimeClass object's, or the class name itself); an unknown handler fails before anything
    /// is created.
    pub fn runtime_class(&self, pod: &Pod, handler: Option<&str>) -> Result<RuntimeClass, MemberError> {
        let Some(class) = &pod.spec.runtime_class_name else {
            return Ok(RuntimeClass::default());
        };
        let handler = handler.unwrap_or(class);
        match self.config.handlers.get(handler) {
            Some(Handler::Containerd(runtime)) => Ok(RuntimeClass {
                containerd: Some(NamedRuntime {
                    handler: handler.to_string(),
                    runtime: runtime.clone(),
                }),
                runtime: None,
            }),
            Some(Handler::Plugin(plugin)) => Ok(RuntimeClass {
                containerd: None,
                runtime: self.index_of(plugin),
            }),
            None => Err(MemberError::UnknownRuntimeClass {
                class: match handler == class {
                    true => format!("{class:?}"),
                    false => format!("{class:?} (a RuntimeClass with handler {handler:?})"),
                },
                handler: handler.to_string(),
                config: self.config.describe_path(),
                known: match self.config.handlers.keys().map(String::as_str).collect::<Vec<_>>() {
                    names if names.is_empty() => "none".into(),
                    names => names.join(", "),
                },
            }),
        }
    }

    /// The runtime for a container: the annotation override (a runtime or a handler), else the
    /// pod's plugin handler, else the first runtime that accepts. OCI members run with the pod's
    /// containerd handler unless the annotation names another.
    pub async fn select(
        &self,
        settings: &Settings,
        container: &Container,
        probe: &ImageProbe,
        class: &RuntimeClass,
    ) -> Result<Selected, MemberError> {
        let pod_handler = |runtime: usize| Selected {
            runtime,
            handler: if self.runtimes[runtime].runs_tasks() {
                class.containerd.clone()
            } else {
                None
            },
        };
        if let Some(forced) = &probe.forced {
            if let Some(index) = self.index_of(forced) {
                return Ok(pod_handler(index));
            }
            return match self.config.handlers.get(forced) {
                Some(Handler::Plugin(plugin)) => Ok(pod_handler(self.index_of(plugin).expect("checked in new"))),
                Some(Handler::Containerd(runtime)) => {
                    let sandbox = class.task_runtime();
                    if runtime.name() != sandbox.name() {
                        return Err(MemberError::ShimMismatch {
                            container: container.name.clone(),
                            handler: forced.clone(),
                            runtime: runtime.name().to_string(),
                            sandbox: sandbox.name().to_string(),
                        });
                    }
                    let oci = self.oci_index().ok_or_else(|| self.unknown(container, forced))?;
                    Ok(Selected {
                        runtime: oci,
                        handler: Some(NamedRuntime {
                            handler: forced.clone(),
                            runtime: runtime.clone(),
                        }),
                    })
                }
                None => Err(self.unknown(container, forced)),
            };
        }
        // The pod's plugin handler runs every member, as a RuntimeClass does on a node; its
        // validation, not its claims, decides what it can run.
        if let Some(index) = class.runtime {
            return Ok(pod_handler(index));
        }
        let mut reasons = Vec::new();
        for index in 0..self.runtimes.len() {
            let runtime = self.get(index);
            match runtime.claim(settings, container, probe).await {
                Claim::Accept => return Ok(pod_handler(index)),
                Claim::Decline(why) => reasons.push(format!("{}: {why}", runtime.name())),
            }
        }
        Err(MemberError::NoRuntime {
            container: container.name.clone(),
            image: container.image.clone(),
            reasons: reasons.join("; "),
        })
    }

    fn unknown(&self, container: &Container, forced: &str) -> MemberError {
        let mut known: Vec<String> = self.names().into_iter().map(String::from).collect();
        known.extend(self.config.handlers.keys().cloned());
        MemberError::UnknownRuntime {
            container: container.name.clone(),
            key: format!("{RUNTIME_ANNOTATION_PREFIX}{}", container.name),
            runtime: forced.to_string(),
            known: known.join(", "),
            config: self.config.describe_path(),
        }
    }
}
