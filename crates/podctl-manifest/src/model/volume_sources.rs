//! `volumes`: a name and exactly one source (hostPath, emptyDir, configMap, secret, downwardAPI,
//! projected), read and written through the Kubernetes shape (`Raw*`) so that a volume prints back
//! as it was written.

use serde::{Deserialize, Serialize};

use super::env::{ObjectFieldSelector, ResourceFieldSelector};
use super::serde_fields::{is_false, optional_quantity};
use crate::quantity::parse_quantity_bytes;

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
    /// `persistentVolumeClaim: {claimName, readOnly}`: a named local volume under podctl's state
    /// directory that outlives the pod.
    Claim { claim_name: String, read_only: bool },
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) persistent_volume_claim: Option<RawClaim>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawClaim {
    pub(crate) claim_name: String,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) read_only: bool,
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
            raw.persistent_volume_claim.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            1 => {}
            0 => {
                return Err(
                    "a volume needs a source; add `hostPath: {path: /dir}`, `emptyDir: {}`, \
                            `configMap: {name: NAME}`, `secret: {secretName: NAME}`, `downwardAPI: {items: [...]}`, \
                            `projected: {sources: [...]}` or `persistentVolumeClaim: {claimName: NAME}`"
                        .into(),
                )
            }
            _ => {
                return Err(
                    "a volume has exactly one source; keep one of hostPath, emptyDir, configMap, secret, downwardAPI, \
                     projected or persistentVolumeClaim"
                        .into(),
                )
            }
        }
        let source = if let Some(c) = raw.persistent_volume_claim {
            if c.claim_name.is_empty() {
                return Err("the volume's claimName is required; name the PersistentVolumeClaim it mounts".into());
            }
            VolumeSource::Claim {
                claim_name: c.claim_name,
                read_only: c.read_only,
            }
        } else if let Some(h) = raw.host_path {
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
            VolumeSource::Claim { claim_name, read_only } => {
                raw.persistent_volume_claim = Some(RawClaim { claim_name, read_only })
            }
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
