//! `kind: PersistentVolumeClaim` (v1): a named volume that outlives its pods. On one host a claim
//! is bound at once to a local directory; what it asks for (storage, access modes, class) is
//! recorded and checked as the API server checks it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config_objects::ConfigMeta;
use super::path::{FieldPath, LineMap};
use super::ManifestError;

/// The access modes the API knows, with kubectl's short forms.
pub const ACCESS_MODES: &[(&str, &str)] = &[
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaim {
    pub api_version: String,
    pub kind: String,
    pub metadata: ConfigMeta,
    pub spec: ClaimSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSpec {
    #[serde(default)]
    pub access_modes: Vec<String>,
    #[serde(default)]
    pub resources: ClaimResources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

impl PersistentVolumeClaim {
    /// The claim a pod's `claimName` makes when no PersistentVolumeClaim names it: one host's
    /// ReadWriteOnce volume with no size asked for.
    pub fn implicit(name: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            metadata: ConfigMeta {
                name: name.into(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                creation_timestamp: None,
                uid: None,
            },
            spec: ClaimSpec {
                access_modes: vec!["ReadWriteOnce".into()],
                ..Default::default()
            },
        }
    }

    pub fn storage(&self) -> Option<&str> {
        self.spec.resources.requests.get("storage").map(String::as_str)
    }

    /// `RWO,ROX`, as `get pvc` prints them.
    pub fn short_access_modes(&self) -> String {
        let short: Vec<&str> = self
            .spec
            .access_modes
            .iter()
            .filter_map(|m| ACCESS_MODES.iter().find(|(long, _)| long == m).map(|(_, s)| *s))
            .collect();
        short.join(",")
    }

    /// ReadWriteOncePod: one pod at a time.
    pub fn single_pod(&self) -> bool {
        self.spec.access_modes.iter().any(|m| m == "ReadWriteOncePod")
    }
}

/// Reads a PersistentVolumeClaim; fields podctl does not use come back as one warning.
pub(crate) fn parse(doc: Value, lines: &LineMap) -> Result<(PersistentVolumeClaim, Vec<String>), ManifestError> {
    let root = FieldPath::root();
    if doc.get("apiVersion").and_then(Value::as_str) != Some("v1") {
        return Err(ManifestError::at(
            lines,
            &root.key("apiVersion"),
            "a PersistentVolumeClaim's apiVersion is v1; write `apiVersion: v1`",
        ));
    }
    let mut ignored = Vec::new();
    let claim: PersistentVolumeClaim = super::deserialize(doc, lines, &mut ignored)?;
    let name_path = root.key("metadata").key("name");
    super::validate::dns_subdomain(&claim.metadata.name).map_err(|problem| {
        ManifestError::at(
            lines,
            &name_path,
            format!("{problem}; a claim name is a DNS subdomain such as \"data\""),
        )
    })?;
    let spec = root.key("spec");
    let modes = &claim.spec.access_modes;
    if modes.is_empty() {
        return Err(ManifestError::at(
            lines,
            &spec.key("accessModes"),
            "at least 1 access mode is required; write e.g. `accessModes: [ReadWriteOnce]`",
        ));
    }
    for (i, mode) in modes.iter().enumerate() {
        if !ACCESS_MODES.iter().any(|(long, _)| long == mode) {
            let known: Vec<&str> = ACCESS_MODES.iter().map(|(long, _)| *long).collect();
            return Err(ManifestError::at(
                lines,
                &spec.key("accessModes").idx(i),
                format!("Unsupported value {mode:?}: supported values: {}", known.join(", ")),
            ));
        }
    }
    if claim.single_pod() && modes.len() > 1 {
        return Err(ManifestError::at(
            lines,
            &spec.key("accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    let storage_path = spec.key("resources").key("requests").key("storage");
    match claim.storage() {
        None => {
            return Err(ManifestError::at(
                lines,
                &storage_path,
                "Required value; write the size the claim asks for, e.g. `storage: 1Gi`",
            ))
        }
        Some(q) if super::parse_quantity_bytes(q).is_none() => {
            return Err(ManifestError::at(
                lines,
                &storage_path,
                format!("{q:?} is not a size; write a quantity such as \"1Gi\""),
            ))
        }
        Some(_) => {}
    }
    if let Some(mode) = claim.spec.volume_mode.as_deref().filter(|m| *m != "Filesystem") {
        return Err(ManifestError::at(
            lines,
            &spec.key("volumeMode"),
            format!("{mode:?}: podctl's claims are directories on this host; use `volumeMode: Filesystem`"),
        ));
    }
    let warnings = super::unsupported_warning(ignored, lines).into_iter().collect();
    Ok((claim, warnings))
}
