//! Reading image archives: an OCI image-layout tar (what `ctr image export` and podctl write) or a
//! docker-archive tar (`docker save`, `podman save`), into blobs ready for the content store.

use std::collections::HashMap;
use std::io::Read;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::reference::normalize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read image archive: {0}; pass an OCI image-layout or docker-archive tar")]
    Io(#[from] std::io::Error),
    #[error("image archive has neither index.json (OCI layout) nor manifest.json (docker archive); pass a tar made by `podman save`, `docker save` or `ctr image export`")]
    UnknownFormat,
    #[error("image archive: {0}")]
    Invalid(String),
    #[error("image archive: image {0} has no name; give it one with --name")]
    Unnamed(String),
}

pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: sha256_digest(&data),
            data,
        }
    }
}

/// One image found in an archive: everything needed to store and unpack it.
pub struct ArchiveImage {
    pub name: String,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub diff_ids: Vec<String>,
}

/// An image podctl built itself (`layout`), in the form `import_image` takes.
pub fn from_built(image: &super::layout::OciImage) -> Result<ArchiveImage, super::ImageError> {
    let invalid = |message: String| super::ImageError::Invalid {
        image: image.name().to_string(),
        message,
    };
    let mut archive = Vec::new();
    image
        .write_archive(&mut archive)
        .map_err(|e| invalid(format!("the built image cannot be written: {e}")))?;
    read_archive(&archive[..], None)?
        .pop()
        .ok_or_else(|| invalid("the built archive holds no image".into()))
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Reads every image in the archive. `name` overrides the name of a single unnamed image.
pub fn read_archive(reader: impl Read, name: Option<&str>) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let mut files = HashMap::new();
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        // The header's size is the archive's word, not a fact: a forged one must not allocate.
        let mut data = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        entry.read_to_end(&mut data)?;
        files.insert(path, data);
    }
    let images = if files.contains_key("index.json") {
        read_oci_layout(&files, name)?
    } else if files.contains_key("manifest.json") {
        read_docker_archive(&files, name)?
    } else {
        return Err(ArchiveError::UnknownFormat);
    };
    if images.is_empty() {
        return Err(ArchiveError::Invalid("it holds no image".into()));
    }
    Ok(images)
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// The part of an image config that names its layers' uncompressed digests.
#[derive(Deserialize)]
pub(crate) struct ConfigRootfs {
    /// Absent in artifacts whose layers are not filesystems (WASM modules).
    #[serde(default)]
    pub rootfs: RootFs,
}

#[derive(Deserialize, Default)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// Layers containerd can unpack into a snapshot (tar, possibly compressed); anything else, such as
/// a WASM module layer, is stored as content only.
pub fn is_filesystem_layer(media_type: &str) -> bool {
    media_type.contains(".tar") || media_type.contains("rootfs.diff")
}

fn parse<'a, T: Deserialize<'a>>(what: &str, data: &'a [u8]) -> Result<T, ArchiveError> {
    serde_json::from_slice(data).map_err(|e| ArchiveError::Invalid(format!("{what} is not valid: {e}")))
}

/// The blob that `digest` names, checked against it: a blob edited in the archive (or named after
/// another) would otherwise be stored under the digest of what it holds, and the image that points
/// to it by its old digest be imported broken.
fn blob_of<'a>(files: &'a HashMap<String, Vec<u8>>, digest: &str) -> Result<&'a Vec<u8>, ArchiveError> {
    let path = format!("blobs/{}", digest.replacen(':', "/", 1));
    let data = files
        .get(&path)
        .ok_or_else(|| ArchiveError::Invalid(format!("blob {digest} is missing ({path})")))?;
    if !digest.starts_with("sha256:") {
        return Err(ArchiveError::Invalid(format!(
            "blob {digest}: only sha256 digests are supported"
        )));
    }
    let actual = sha256_digest(data);
    if actual != digest {
        return Err(ArchiveError::Invalid(format!(
            "blob {path} holds content of digest {actual}, not {digest}: the archive is damaged or was \
             edited; export or save the image again"
        )));
    }
    Ok(data)
}

fn read_oci_layout(files: &HashMap<String, Vec<u8>>, name: Option<&str>) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let index: Index = parse("index.json", &files["index.json"])?;
    let mut images = Vec::new();
    for descriptor in &index.manifests {
        let image_name = descriptor
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| descriptor.annotations.get("org.opencontainers.image.ref.name"))
            .map(|n| n.as_str())
            // A bare tag ("latest") is no image name; only a single image may borrow --name.
            .filter(|n| n.contains('/') || n.contains(':') && !n.starts_with(':'))
            .or(name)
            .ok_or_else(|| ArchiveError::Unnamed(descriptor.digest.clone()))?;
        let manifest_descriptor = match descriptor.media_type.as_str() {
            OCI_INDEX | DOCKER_MANIFEST_LIST => {
                let nested: Index = parse("image index", blob_of(files, &descriptor.digest)?)?;
                pick_platform(nested.manifests)?
            }
            _ => Descriptor {
                media_type: descriptor.media_type.clone(),
                digest: descriptor.digest.clone(),
                annotations: HashMap::new(),
                platform: None,
            },
        };
        let manifest_data = blob_of(files, &manifest_descriptor.digest)?.clone();
        let manifest: Manifest = parse("image manifest", &manifest_data)?;
        let config_data = blob_of(files, &manifest.config.digest)?.clone();
        let config: ConfigRootfs = parse("image config", &config_data)?;
        let mut layers = Vec::new();
        for layer in &manifest.layers {
            layers.push(Blob::new(&layer.media_type, blob_of(files, &layer.digest)?.clone()));
        }
        let media_type = if manifest_descriptor.media_type.is_empty() {
            OCI_MANIFEST
        } else {
            &manifest_descriptor.media_type
        };
        images.push(ArchiveImage {
            name: normalize(image_name),
            manifest: Blob::new(media_type, manifest_data),
            config: Blob::new(&manifest.config.media_type, config_data),
            layers,
            diff_ids: config.rootfs.diff_ids,
        });
    }
    Ok(images)
}

fn pick_platform(manifests: Vec<Descriptor>) -> Result<Descriptor, ArchiveError> {
    let count = manifests.len();
    manifests
        .into_iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_none_or(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .ok_or_else(|| ArchiveError::Invalid(format!("none of the index's {count} manifests is for linux/amd64")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn read_docker_archive(
    files: &HashMap<String, Vec<u8>>,
    name: Option<&str>,
) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let entries: Vec<DockerEntry> = parse("manifest.json", &files["manifest.json"])?;
    let file = |path: &str| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| ArchiveError::Invalid(format!("{path} is listed in manifest.json but missing")))
    };
    let mut images = Vec::new();
    for entry in entries {
        let config = Blob::new(DOCKER_CONFIG, file(&entry.config)?);
        let diff_ids = parse::<ConfigRootfs>("image config", &config.data)?.rootfs.diff_ids;
        let mut layers = Vec::new();
        for path in &entry.layers {
            let data = file(path)?;
            let media_type = if data.starts_with(&[0x1f, 0x8b]) {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            } else {
                "application/vnd.docker.image.rootfs.diff.tar"
            };
            layers.push(Blob::new(media_type, data));
        }
        // A docker archive has no manifest blob: make the schema-2 manifest a registry would serve.
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": config.digest, "size": config.data.len()},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.data.len()
            })).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(
            DOCKER_MANIFEST,
            serde_json::to_vec(&manifest).expect("JSON values serialize"),
        );
        let tags = entry.repo_tags.unwrap_or_default();
        let names: Vec<String> = match (tags.is_empty(), name) {
            (_, Some(n)) => vec![n.to_string()],
            (false, None) => tags,
            (true, None) => return Err(ArchiveError::Unnamed(config.digest)),
        };
        for image_name in names {
            images.push(ArchiveImage {
                name: normalize(&image_name),
                manifest: Blob {
                    media_type: manifest.media_type.clone(),
                    digest: manifest.digest.clone(),
                    data: manifest.data.clone(),
                },
                config: Blob {
                    media_type: config.media_type.clone(),
                    digest: config.digest.clone(),
                    data: config.data.clone(),
                },
                layers: layers
                    .iter()
                    .map(|l| Blob {
                        media_type: l.media_type.clone(),
                        digest: l.digest.clone(),
                        data: l.data.clone(),
                    })
                    .collect(),
                diff_ids: diff_ids.clone(),
            });
        }
    }
    Ok(images)
}

/// The chain ID of each layer prefix, as containerd keys committed snapshots.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let ids = chain_ids(&["sha256:a".into(), "sha256:b".into()]);
        assert_eq!(ids[0], "sha256:a");
        assert_eq!(ids[1], sha256_digest(b"sha256:a sha256:b"));
    }

    #[test]
    fn rejects_an_unknown_tar() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_cksum();
        builder.append_data(&mut header, "hello.txt", &b"hi"[..]).unwrap();
        let data = builder.into_inner().unwrap();
        assert!(matches!(
            read_archive(&data[..], None),
            Err(ArchiveError::UnknownFormat)
        ));
    }

    #[test]
    fn a_forged_entry_size_is_an_error_not_an_allocation() {
        // A header claiming a terabyte, followed by a few bytes.
        let mut header = tar::Header::new_gnu();
        header.set_path("index.json").unwrap();
        header.set_size(1 << 40);
        header.set_cksum();
        let mut data = header.as_bytes().to_vec();
        data.extend_from_slice(&[b'{'; 600]);
        assert!(read_archive(&data[..], None).is_err());
    }

    /// An OCI layout of one image (an empty layer), with its config blob's content replaced by
    /// `config_content` when given (the file keeps the real config's digest as its name).
    fn oci_layout(config_content: Option<&[u8]>) -> Vec<u8> {
        let layer = tar::Builder::new(Vec::new()).into_inner().unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]}
        })
        .to_string()
        .into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256_digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256_digest(&layer), "size": layer.len()}]
        })
        .to_string()
        .into_bytes();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256_digest(&manifest), "size": manifest.len(),
                           "annotations": {"io.containerd.image.name": "podctl.test/layout:1"}}]
        })
        .to_string()
        .into_bytes();
        let blob_path = |data: &[u8]| format!("blobs/sha256/{}", &sha256_digest(data)[7..]);
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, data).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add("index.json", &index);
        add(&blob_path(&manifest), &manifest);
        add(&blob_path(&config), config_content.unwrap_or(&config));
        add(&blob_path(&layer), &layer);
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_blob_whose_content_is_not_its_digest_is_refused() {
        let images = read_archive(&oci_layout(None)[..], None).unwrap();
        assert_eq!(images[0].name, "podctl.test/layout:1");
        let tampered = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let message = match read_archive(&oci_layout(Some(tampered))[..], None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a tampered config was accepted"),
        };
        assert!(
            message.contains("holds content of digest") && message.contains("edited"),
            "{message}"
        );
    }
}

#[cfg(test)]
mod docker_archive_tests {
    use super::*;

    fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, data).unwrap();
    }

    /// The shape `docker save` / `podman save` write: manifest.json, a config file, layer tars.
    #[test]
    fn reads_a_docker_archive() {
        let mut layer = tar::Builder::new(Vec::new());
        append(&mut layer, "hello.txt", b"hi");
        let layer = layer.into_inner().unwrap();
        let diff_id = sha256_digest(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]}
        }))
        .unwrap();
        let manifest = serde_json::json!([{"Config": "abc.json", "RepoTags": ["hello:1"], "Layers": ["l1/layer.tar"]}]);
        let mut archive = tar::Builder::new(Vec::new());
        append(&mut archive, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
        append(&mut archive, "abc.json", &config);
        append(&mut archive, "l1/layer.tar", &layer);
        let data = archive.into_inner().unwrap();

        let images = read_archive(&data[..], None).unwrap();
        assert_eq!(images.len(), 1);
        let image = &images[0];
        assert_eq!(image.name, "docker.io/library/hello:1");
        assert_eq!(image.diff_ids, vec![diff_id.clone()]);
        assert_eq!(
            image.layers[0].digest, diff_id,
            "uncompressed layers are their own diff"
        );
        assert_eq!(
            image.layers[0].media_type,
            "application/vnd.docker.image.rootfs.diff.tar"
        );
        assert_eq!(image.config.digest, sha256_digest(&config));
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.data).unwrap();
        assert_eq!(manifest["config"]["digest"], image.config.digest);
        assert_eq!(manifest["layers"][0]["size"], layer.len());
        // --name renames; an unnamed archive without --name is refused.
        assert_eq!(
            read_archive(&data[..], Some("me/x:2")).unwrap()[0].name,
            "docker.io/me/x:2"
        );
        let unnamed = serde_json::json!([{"Config": "abc.json", "Layers": ["l1/layer.tar"]}]);
        let mut archive = tar::Builder::new(Vec::new());
        append(&mut archive, "manifest.json", &serde_json::to_vec(&unnamed).unwrap());
        append(&mut archive, "abc.json", &config);
        append(&mut archive, "l1/layer.tar", &layer);
        let data = archive.into_inner().unwrap();
        assert!(matches!(read_archive(&data[..], None), Err(ArchiveError::Unnamed(_))));
    }
}
