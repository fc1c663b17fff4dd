//! The JSON shapes of the OCI image spec that a built image is written in (config, manifest,
//! index, descriptors). oci-spec's types keep maps in HashMaps, whose order would make the config
//! and index bytes (and so the digests) vary between runs; these use BTreeMaps and a fixed field
//! order instead.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Serialize)]
pub(super) struct Empty {}

#[derive(Serialize)]
pub(super) struct ConfigJson<'a> {
    pub(super) architecture: &'a str,
    pub(super) os: &'a str,
    pub(super) config: ExecConfigJson<'a>,
    pub(super) rootfs: RootFsJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ExecConfigJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) exposed_ports: BTreeMap<String, Empty>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) env: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stop_signal: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct RootFsJson<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ManifestJson<'a> {
    pub(super) schema_version: u32,
    pub(super) media_type: &'a str,
    pub(super) config: DescriptorJson<'a>,
    pub(super) layers: Vec<DescriptorJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexJson<'a> {
    pub(super) schema_version: u32,
    pub(super) media_type: &'a str,
    pub(super) manifests: Vec<DescriptorJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescriptorJson<'a> {
    pub(super) media_type: &'a str,
    pub(super) digest: &'a str,
    pub(super) size: usize,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) annotations: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) platform: Option<PlatformJson<'a>>,
}

impl<'a> DescriptorJson<'a> {
    pub(super) fn new(media_type: &'a str, digest: &'a str, size: usize) -> Self {
        DescriptorJson {
            media_type,
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

#[derive(Serialize)]
pub(super) struct PlatformJson<'a> {
    pub(super) architecture: &'a str,
    pub(super) os: &'a str,
}
