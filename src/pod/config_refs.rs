//! What pods read from ConfigMaps and Secrets (env, envFrom, configMap/secret/projected and
//! downwardAPI volumes, imagePullSecrets), resolved at create and restore, and the volumes written
//! again after an apply changed an object they read. The objects are stored by
//! [`super::config_store`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::config_store::{get_object, ConfigObject};
use super::PodError;
use crate::containerd::Client;
use crate::manifest::config_objects::{ConfigMap, Secret};
use crate::manifest::downward::{field_value, resource_value, PodFacts};
use crate::manifest::{EnvVar, ObjectKind, ObjectsForm, Pod, VolumeSource, DEFAULT_OBJECT_FILE_MODE};

/// What a pod reads from ConfigMaps and Secrets, read once at create (and again at restore).
pub struct Resolved {
    /// The pod as its members run it: every env value literal (`envFrom` expanded before `env`,
    /// `valueFrom` filled in). The pod as written is what podctl records.
    pub pod: Pod,
    pub volumes: Vec<ObjectVolume>,
    /// Keys `envFrom` skipped because they are no variable names (kubelet's event).
    pub warnings: Vec<String>,
}

/// The files of one configMap, secret or projected volume.
pub struct ObjectVolume {
    pub name: String,
    pub files: Vec<crate::volume::File>,
    /// It holds a Secret: it lives on tmpfs.
    pub secret: bool,
    /// The pod's fsGroup, which owns its files.
    pub group: Option<u32>,
}

/// The objects a pod names, each read once.
#[derive(Default)]
struct Objects {
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Objects {
    /// The object's keys and values for variables: a ConfigMap's `data` only (its `binaryData`
    /// is for files, as in kubelet).
    async fn env_entries(
        &mut self,
        client: &Client,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, PodError> {
        let mut entries = self.entries(client, kind, name).await?;
        if let (ObjectKind::ConfigMap, Some(entries), Some(Some(map))) =
            (kind, entries.as_mut(), self.config_maps.get(name))
        {
            entries.retain(|key, _| map.data.contains_key(key));
        }
        Ok(entries)
    }

    /// The object's keys and values; None when it does not exist.
    async fn entries(
        &mut self,
        client: &Client,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, PodError> {
        Ok(match kind {
            ObjectKind::ConfigMap => {
                if !self.config_maps.contains_key(name) {
                    let found = get_object::<ConfigMap>(client, name).await?;
                    self.config_maps.insert(name.to_string(), found);
                }
                self.config_maps[name].as_ref().map(ConfigMap::entries)
            }
            ObjectKind::Secret => {
                if !self.secrets.contains_key(name) {
                    let found = get_object::<Secret>(client, name).await?;
                    self.secrets.insert(name.to_string(), found);
                }
                self.secrets[name].as_ref().map(Secret::entries)
            }
        })
    }
}

fn resource(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::ConfigMap => ConfigMap::RESOURCE,
        ObjectKind::Secret => Secret::RESOURCE,
    }
}

/// Whether kubelet takes this as an environment variable name (any printable but `=`).
fn is_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && name.chars().all(|c| c.is_ascii_graphic())
}

/// `$` doubled: a value read from an object is taken literally, never `$(VAR)`-expanded.
fn literal(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('$', "$$")
}

/// The errors of references that cannot be resolved: they name the field, never a value.
struct RefErrors<'a> {
    pod: &'a str,
    namespace: &'a str,
}

impl RefErrors<'_> {
    fn error(&self, field: String, problem: String, fix: String) -> PodError {
        PodError::ConfigRef {
            pod: self.pod.to_string(),
            field,
            problem,
            fix,
        }
    }

    fn missing(&self, field: String, kind: ObjectKind, name: &str) -> PodError {
        self.error(
            field,
            format!("{} {name} not found in containerd namespace `{}`", resource(kind), self.namespace),
            format!(
                "create it first (in the same file, or `podctl create {} {name} ...`), or mark the reference `optional: true`",
                resource(kind)
            ),
        )
    }

    fn no_key(&self, field: String, kind: ObjectKind, name: &str, key: &str) -> PodError {
        self.error(
            field,
            format!("{} {name} has no key {key:?}", resource(kind)),
            format!(
                "add the key to it (`podctl get {} {name}` lists its keys), or mark the reference `optional: true`",
                resource(kind)
            ),
        )
    }

    fn nul(&self, field: String, kind: ObjectKind, name: &str, key: &str) -> PodError {
        self.error(
            field,
            format!(
                "the value of key {key:?} of {} {name} holds a NUL byte, which no environment variable can",
                resource(kind)
            ),
            "mount it as a file through a volume instead".into(),
        )
    }
}

/// What the downward API reads beyond the manifest, for the pod of `uid` (its IPs come later).
pub fn pod_facts(uid: &str) -> PodFacts {
    let (node_cpu_millis, node_memory_bytes) = crate::record::node_capacity();
    PodFacts {
        uid: uid.to_string(),
        node_name: crate::record::node_name(),
        host_ip: crate::record::host_ip(),
        pod_ips: None,
        node_cpu_millis,
        node_memory_bytes,
    }
}

/// Reads every ConfigMap and Secret the pod refers to. A missing object or key that is not
/// `optional` fails with the field that names it; an optional one is skipped, as kubelet does.
pub async fn resolve(client: &Client, pod: &Pod, facts: &PodFacts) -> Result<Resolved, PodError> {
    let mut objects = Objects::default();
    let mut run = pod.clone();
    let mut warnings = Vec::new();
    let errors = RefErrors {
        pod: &pod.metadata.name,
        namespace: client.namespace(),
    };
    let lists = [
        ("initContainers", &mut run.spec.init_containers),
        ("containers", &mut run.spec.containers),
    ];
    for (list, containers) in lists {
        for (i, container) in containers.iter_mut().enumerate() {
            let at = format!("spec.{list}[{i}]");
            let mut env = Vec::new();
            for (j, from) in std::mem::take(&mut container.env_from).into_iter().enumerate() {
                let (kind, field, reference) = match (from.config_map_ref, from.secret_ref) {
                    (Some(r), _) => (ObjectKind::ConfigMap, "configMapRef", r),
                    (None, Some(r)) => (ObjectKind::Secret, "secretRef", r),
                    (None, None) => continue,
                };
                let Some(entries) = objects.env_entries(client, kind, &reference.name).await? else {
                    if reference.optional {
                        continue;
                    }
                    return Err(errors.missing(format!("{at}.envFrom[{j}].{field}"), kind, &reference.name));
                };
                let mut skipped = Vec::new();
                for (key, value) in entries {
                    let name = format!("{}{key}", from.prefix);
                    if value.contains(&0) {
                        return Err(errors.nul(format!("{at}.envFrom[{j}].{field}"), kind, &reference.name, &key));
                    }
                    if !is_env_name(&name) {
                        skipped.push(name);
                        continue;
                    }
                    env.push(EnvVar {
                        name,
                        value: literal(&value),
                        value_from: None,
                    });
                }
                if !skipped.is_empty() {
                    warnings.push(format!(
                        "container {}: keys of {} {} that are no variable names were skipped: {}",
                        container.name,
                        resource(kind),
                        reference.name,
                        skipped.join(", ")
                    ));
                }
            }
            for (j, mut var) in std::mem::take(&mut container.env).into_iter().enumerate() {
                if let Some(mut from) = var.value_from.take() {
                    let (kind, field, selector) = match (from.config_map_key_ref.take(), from.secret_key_ref.take()) {
                        (Some(s), _) => (ObjectKind::ConfigMap, "configMapKeyRef", s),
                        (None, Some(s)) => (ObjectKind::Secret, "secretKeyRef", s),
                        // The downward API: filled in below, from the pod itself.
                        (None, None) => {
                            var.value_from = Some(from);
                            env.push(var);
                            continue;
                        }
                    };
                    let field = format!("{at}.env[{j}].valueFrom.{field}");
                    let Some(entries) = objects.env_entries(client, kind, &selector.name).await? else {
                        if selector.optional {
                            continue;
                        }
                        return Err(errors.missing(field, kind, &selector.name));
                    };
                    match entries.get(&selector.key) {
                        Some(value) if value.contains(&0) => {
                            return Err(errors.nul(field, kind, &selector.name, &selector.key))
                        }
                        Some(value) => var.value = literal(value),
                        None if selector.optional => continue,
                        None => return Err(errors.no_key(field, kind, &selector.name, &selector.key)),
                    }
                }
                env.push(var);
            }
            container.env = env;
            // What reads the pod's IP stays until CNI gave it (see `PodContext::with_pod_ips`).
            crate::manifest::downward::fill_env(pod, container, facts);
        }
    }

    let volumes = volumes_with(client, pod, facts, &mut objects).await?;
    Ok(Resolved {
        pod: run,
        volumes,
        warnings,
    })
}

/// The files of the pod's configMap, secret and projected volumes from the objects as they are now
/// (for an update of a running pod's volumes).
pub async fn resolve_volumes(client: &Client, pod: &Pod, facts: &PodFacts) -> Result<Vec<ObjectVolume>, PodError> {
    volumes_with(client, pod, facts, &mut Objects::default()).await
}

async fn volumes_with(
    client: &Client,
    pod: &Pod,
    facts: &PodFacts,
    objects: &mut Objects,
) -> Result<Vec<ObjectVolume>, PodError> {
    let errors = RefErrors {
        pod: &pod.metadata.name,
        namespace: client.namespace(),
    };
    let mut volumes = Vec::new();
    for (v, volume) in pod.spec.volumes.iter().enumerate() {
        let VolumeSource::Objects {
            sources,
            downward,
            default_mode,
            form,
        } = &volume.source
        else {
            continue;
        };
        let mut files = Vec::new();
        let mut secret = false;
        let fs_group = pod.spec.security_context.as_ref().and_then(|s| s.fs_group);
        // fsGroup makes the files group-readable: written so, they compare equal next time.
        let group_bits = if fs_group.is_some() { 0o040 } else { 0 };
        let mode = default_mode.unwrap_or(DEFAULT_OBJECT_FILE_MODE) | group_bits;
        for file in downward {
            let value = match (&file.field_ref, &file.resource_field_ref) {
                (Some(field), _) => field_value(pod, facts, &field.field_path).unwrap_or_default(),
                (None, Some(selector)) => pod
                    .container(&selector.container_name)
                    .map(|c| resource_value(c, selector, facts))
                    .unwrap_or_default(),
                (None, None) => continue,
            };
            files.push(crate::volume::File {
                path: file.path.clone(),
                data: value.into_bytes(),
                mode: file.mode.map_or(mode, |m| m | group_bits),
            });
        }
        for (s, (kind, wanted)) in sources.iter().enumerate() {
            secret |= *kind == ObjectKind::Secret;
            let field = match form {
                ObjectsForm::ConfigMap => format!("spec.volumes[{v}].configMap"),
                ObjectsForm::Secret => format!("spec.volumes[{v}].secret"),
                ObjectsForm::DownwardApi => format!("spec.volumes[{v}].downwardAPI"),
                ObjectsForm::Projected => format!(
                    "spec.volumes[{v}].projected.sources[{s}].{}",
                    if *kind == ObjectKind::Secret {
                        "secret"
                    } else {
                        "configMap"
                    }
                ),
            };
            let Some(entries) = objects.entries(client, *kind, &wanted.name).await? else {
                if wanted.optional {
                    continue;
                }
                return Err(errors.missing(field, *kind, &wanted.name));
            };
            if wanted.items.is_empty() {
                files.extend(
                    entries
                        .into_iter()
                        .map(|(key, data)| crate::volume::File { path: key, data, mode }),
                );
                continue;
            }
            for (k, item) in wanted.items.iter().enumerate() {
                match entries.get(&item.key) {
                    Some(data) => files.push(crate::volume::File {
                        path: item.path.clone(),
                        data: data.clone(),
                        mode: item.mode.map_or(mode, |m| m | group_bits),
                    }),
                    None if wanted.optional => {}
                    None => {
                        return Err(errors.no_key(format!("{field}.items[{k}].key"), *kind, &wanted.name, &item.key))
                    }
                }
            }
        }
        volumes.push(ObjectVolume {
            name: volume.name.clone(),
            files,
            secret,
            group: fs_group,
        });
    }
    Ok(volumes)
}

/// Writes the pod's configMap, secret and projected volumes under its state directory (Secret
/// ones on a tmpfs each); a volume whose files did not change is left alone. Returns the names of
/// the volumes that changed.
pub fn write_volumes(state_dir: &Path, volumes: &[ObjectVolume]) -> Result<Vec<String>, PodError> {
    let mut changed = Vec::new();
    for volume in volumes {
        let dir = state_dir.join("volumes").join(&volume.name);
        crate::volume::prepare_dir(&dir, volume.secret)?;
        if crate::volume::write_atomically(&dir, &volume.files)? {
            changed.push(volume.name.clone());
        }
        if let Some(gid) = volume.group {
            crate::volume::give_to_group(&dir, gid, false)?;
        }
    }
    Ok(changed)
}

/// The registry credentials of the pod's `imagePullSecrets`. A Secret that is missing or of
/// another type is skipped with a warning event, as kubelet does (the pull may still work).
pub async fn pull_secrets(
    client: &Client,
    pod: &Pod,
    events: &mut Vec<crate::record::PodEvent>,
) -> Result<Vec<crate::image::auth::PullSecret>, PodError> {
    let mut found = Vec::new();
    for reference in &pod.spec.image_pull_secrets {
        let problem = match get_object::<Secret>(client, &reference.name).await? {
            Some(secret) if secret.type_ == "kubernetes.io/dockerconfigjson" => {
                let config = secret.entries().remove(".dockerconfigjson").unwrap_or_default();
                found.push(crate::image::auth::PullSecret {
                    name: reference.name.clone(),
                    config,
                });
                continue;
            }
            Some(secret) => format!(
                "is of type {}, not kubernetes.io/dockerconfigjson; make one with `podctl create secret docker-registry`",
                secret.type_
            ),
            None => format!("not found in containerd namespace `{}`", client.namespace()),
        };
        let message = format!(
            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed: secret {} {problem}",
            reference.name, reference.name
        );
        eprintln!("warning: pod {}: {message}", pod.metadata.name);
        events.push(crate::record::PodEvent::warning(
            "FailedToRetrieveImagePullSecret",
            "",
            message,
        ));
    }
    Ok(found)
}

/// Whether the pod's volumes read the object `kind`/`name`.
pub fn reads_in_volumes(pod: &Pod, kind: ObjectKind, name: &str) -> bool {
    pod.spec.volumes.iter().any(|v| match &v.source {
        VolumeSource::Objects { sources, .. } => sources.iter().any(|(k, files)| *k == kind && files.name == name),
        _ => false,
    })
}

/// After an apply changed the object `kind`/`name`: the volumes of every pod that reads it are
/// written again (one atomic swap each, as kubelet's sync does); returns the pods whose files
/// changed. A pod whose other references no longer resolve keeps its files, with a warning.
pub async fn propagate(
    client: &Client,
    settings: &super::Settings,
    registry: &crate::member::Registry,
    kind: ObjectKind,
    name: &str,
) -> Result<Vec<String>, PodError> {
    let mut updated = Vec::new();
    for view in super::list_pods(client, settings, registry).await? {
        let Some(spec) = &view.pod else { continue };
        let dir = settings.pod_state_dir(client, &view.sandbox_id);
        if !reads_in_volumes(spec, kind, name) || !dir.is_dir() {
            continue;
        }
        match resolve_volumes(client, spec, &pod_facts(&view.uid)).await {
            Ok(volumes) => {
                if !write_volumes(&dir, &volumes)?.is_empty() {
                    updated.push(view.name.clone());
                }
            }
            Err(e) => eprintln!("warning: pod {}: its volumes keep their files: {e}", view.name),
        }
    }
    Ok(updated)
}
