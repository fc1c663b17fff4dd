//! Checks of the pod's volumes: their sources (hostPath, emptyDir, configMap, secret, projected,
//! downwardAPI), file paths and modes.

use super::*;

/// Kubernetes volume types podctl cannot run, named so the error can say which one was seen.
pub(super) const OTHER_VOLUME_TYPES: &[&str] = &[
    "nfs",
    "csi",
    "ephemeral",
    "image",
    "gitRepo",
    "iscsi",
    "rbd",
    "cephfs",
    "glusterfs",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "azureDisk",
    "azureFile",
    "fc",
    "flexVolume",
    "flocker",
    "cinder",
    "vsphereVolume",
    "quobyte",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

pub(super) const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

pub(super) fn check_mode(c: &mut Checker<'_>, path: &FieldPath, mode: Option<u32>) {
    if let Some(mode) = mode {
        if mode > 0o777 {
            c.fail(
                path,
                format!("{mode} is not a file mode; use 0 to 0777 (octal, e.g. 0644, or decimal 420)"),
            );
        }
    }
}

/// A file path inside a volume: relative, without `..`, each path written once.
pub(super) fn check_volume_file_path(
    c: &mut Checker<'_>,
    at: &FieldPath,
    path: &str,
    paths: &mut HashMap<String, FieldPath>,
) {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|part| part == ".." || part.is_empty())
        || path.starts_with("..");
    if bad {
        c.fail(
            at,
            format!(
                "{path:?} is not a relative path inside the volume; write e.g. `path: conf/app.properties` \
                 (no leading `/`, no `..`)"
            ),
        );
    } else if let Some(first) = paths.get(path) {
        c.fail(
            at,
            format!("path {path:?} is also written by {first}; give each file its own path"),
        );
    } else {
        paths.insert(path.to_string(), at.clone());
    }
}

/// One source of a downward-API value: a field, or a container's resource (`container_name`
/// required, as in volumes, when `in_volume`).
pub(super) fn check_downward_source(
    c: &mut Checker<'_>,
    at: &FieldPath,
    field: Option<&crate::ObjectFieldSelector>,
    resource: Option<&crate::ResourceFieldSelector>,
    in_volume: bool,
    containers: &[&str],
) {
    use crate::downward::{check_field_path, check_resource};
    match (field, resource) {
        (Some(f), None) => {
            if let Err(problem) = check_field_path(&f.field_path, in_volume) {
                c.fail(&at.key("fieldRef").key("fieldPath"), problem);
            }
            if !f.api_version.is_empty() && f.api_version != "v1" {
                c.fail(
                    &at.key("fieldRef").key("apiVersion"),
                    format!("apiVersion {:?} is not served; write v1 or leave it out", f.api_version),
                );
            }
        }
        (None, Some(r)) => {
            let rp = at.key("resourceFieldRef");
            if let Err(problem) = check_resource(&r.resource, r.divisor.as_deref()) {
                let key = if r.divisor.is_some() && crate::downward::RESOURCES.contains(&r.resource.as_str()) {
                    "divisor"
                } else {
                    "resource"
                };
                c.fail(&rp.key(key), problem);
            }
            if r.container_name.is_empty() && in_volume {
                c.fail(
                    &rp.key("containerName"),
                    "containerName is required in a volume; name the container whose resources the file shows",
                );
            } else if !r.container_name.is_empty() && !containers.contains(&r.container_name.as_str()) {
                c.fail(
                    &rp.key("containerName"),
                    format!(
                        "the pod has no container {:?}; name one of {}",
                        r.container_name,
                        containers.join(", ")
                    ),
                );
            }
        }
        _ => c.fail(
            at,
            "give exactly one of fieldRef and resourceFieldRef; e.g. `fieldRef: {fieldPath: metadata.name}`",
        ),
    }
}

pub(super) fn check_object_volume(
    c: &mut Checker<'_>,
    vp: &FieldPath,
    sources: &[(crate::ObjectKind, crate::ObjectFiles)],
    downward: &[crate::DownwardFile],
    default_mode: Option<u32>,
    form: crate::ObjectsForm,
    containers: &[&str],
) {
    use crate::{ObjectKind, ObjectsForm};
    let base = match form {
        ObjectsForm::ConfigMap => vp.key("configMap"),
        ObjectsForm::Secret => vp.key("secret"),
        ObjectsForm::Projected => vp.key("projected"),
        ObjectsForm::DownwardApi => vp.key("downwardAPI"),
    };
    check_mode(c, &base.key("defaultMode"), default_mode);
    let mut paths: HashMap<String, FieldPath> = HashMap::new();
    // A projected volume's downwardAPI source is taken to follow its configMap and secret ones.
    let downward_base = match form {
        ObjectsForm::Projected => base.key("sources").idx(sources.len()).key("downwardAPI"),
        _ => base.clone(),
    };
    for (j, file) in downward.iter().enumerate() {
        let ip = downward_base.key("items").idx(j);
        check_mode(c, &ip.key("mode"), file.mode);
        check_volume_file_path(c, &ip.key("path"), &file.path, &mut paths);
        check_downward_source(
            c,
            &ip,
            file.field_ref.as_ref(),
            file.resource_field_ref.as_ref(),
            true,
            containers,
        );
    }
    for (i, (kind, files)) in sources.iter().enumerate() {
        let sp = match (form, kind) {
            (ObjectsForm::Projected, ObjectKind::ConfigMap) => base.key("sources").idx(i).key("configMap"),
            (ObjectsForm::Projected, ObjectKind::Secret) => base.key("sources").idx(i).key("secret"),
            _ => base.clone(),
        };
        let name_key = if form == ObjectsForm::Secret {
            "secretName"
        } else {
            "name"
        };
        check_object_name(c, &sp.key(name_key), &files.name);
        for (j, item) in files.items.iter().enumerate() {
            let ip = sp.key("items").idx(j);
            check_data_key(c, &ip.key("key"), &item.key);
            check_mode(c, &ip.key("mode"), item.mode);
            check_volume_file_path(c, &ip.key("path"), &item.path, &mut paths);
        }
    }
}

/// Each volume's name (a DNS label, unique) and source; returns where each name is declared.
pub(super) fn check_volumes<'a>(
    c: &mut Checker<'_>,
    spec: &FieldPath,
    pod: &'a Pod,
    container_names: &[&str],
) -> HashMap<&'a str, FieldPath> {
    let mut volume_names: HashMap<&str, FieldPath> = HashMap::new();
    for (i, volume) in pod.spec.volumes.iter().enumerate() {
        let vp = spec.key("volumes").idx(i);
        if let Err(problem) = dns_label(&volume.name) {
            c.fail(
                &vp.key("name"),
                format!(
                    "{problem}; a volume name is a DNS label, e.g. {:?}",
                    suggest(&volume.name)
                ),
            );
        }
        if let Some(first) = volume_names.get(volume.name.as_str()) {
            c.fail(
                &vp.key("name"),
                format!(
                    "duplicate volume name {:?} (also used at {first}); give each volume its own name",
                    volume.name
                ),
            );
        } else {
            volume_names.insert(&volume.name, vp.key("name"));
        }
        match &volume.source {
            VolumeSource::HostPath { path, type_ } => {
                let hp = vp.key("hostPath");
                if !path.starts_with('/') {
                    c.fail(
                        &hp.key("path"),
                        format!("hostPath.path {path:?} is not absolute; use a full path such as \"/srv/data\""),
                    );
                }
                if let Some(t) = type_ {
                    if !HOST_PATH_TYPES.contains(&t.as_str()) {
                        c.fail(
                            &hp.key("type"),
                            format!(
                                "unknown hostPath type {t:?}; use one of {} (or leave it out)",
                                HOST_PATH_TYPES[1..].join(", ")
                            ),
                        );
                    }
                }
            }
            VolumeSource::EmptyDir { medium, size_limit } => {
                let ep = vp.key("emptyDir");
                if let Some(m) = medium {
                    if !(m.is_empty() || m == "Memory") {
                        c.fail(
                            &ep.key("medium"),
                            format!(
                                "unsupported emptyDir medium {m:?}; use \"Memory\" for tmpfs or leave it out for disk"
                            ),
                        );
                    }
                }
                if let Some(q) = size_limit {
                    if parse_quantity_bytes(q).is_none() {
                        c.fail(
                            &ep.key("sizeLimit"),
                            format!("{q:?} is not a size; write a quantity such as \"64Mi\" or \"1Gi\""),
                        );
                    }
                }
            }
            VolumeSource::Objects {
                sources,
                downward,
                default_mode,
                form,
            } => check_object_volume(c, &vp, sources, downward, *default_mode, *form, container_names),
            VolumeSource::Claim { claim_name, .. } => {
                if let Err(problem) = dns_subdomain(claim_name) {
                    c.fail(
                        &vp.key("persistentVolumeClaim").key("claimName"),
                        format!("{problem}; a claim name is a DNS subdomain such as \"data\""),
                    );
                }
            }
        }
    }

    volume_names
}
