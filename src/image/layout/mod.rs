//! podctl's own image builder: turns an in-memory file list plus an image config into an OCI
//! image-layout archive (a tar holding `oci-layout`, `index.json` and `blobs/sha256/…`) that
//! `ctr image import` and podctl's own importer (`super::archive`) accept.
//!
//! Output is a single-layer `linux/amd64` image and is fully deterministic: the same input gives
//! a byte-identical archive (tar entries with mtime/uid/gid 0 in the order given, gzip without a
//! timestamp, JSON with fixed field order and sorted maps), so the image's manifest digest is a
//! stable identity for its content.
//!
//! Here: the image (config, manifest, index) and its archive; `layer` makes each layer's tar
//! and gzip, `oci_json` holds the JSON shapes they are written in.

mod layer;
mod oci_json;

use std::collections::BTreeMap;
use std::io::Write;

use sha2::{Digest, Sha256};

use layer::{append_dir, append_file, gzip};
pub use layer::{layer_tar, with_parent_dirs, Entry};
use oci_json::{ConfigJson, DescriptorJson, Empty, ExecConfigJson, IndexJson, ManifestJson, PlatformJson, RootFsJson};

pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Annotation with the tag part of the reference (OCI image-layout spec).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation with the full image name; what `ctr image import` names the image after.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

const ARCHITECTURE: &str = "amd64";
const OS: &str = "linux";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The image's name and runtime configuration (the `config` object of the OCI image config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    /// e.g. `podctl.local/echoserver:0.1`; without a tag, `:latest` is assumed. Digests are
    /// refused: a built image's digest follows from its content.
    pub reference: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `8080/tcp`, `53/udp`; a bare port number means TCP.
    pub exposed_ports: Vec<String>,
    /// e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The config's architecture (default amd64), for multi-platform test images.
    pub architecture: Option<String>,
    /// The config's os (default linux); `wasi` with architecture `wasm` makes the `wasi/wasm`
    /// platform image that `docker buildx build --platform wasi/wasm` makes.
    pub os: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("invalid path {path:?} in image layer: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("path {0:?} appears more than once in the image layer")]
    DuplicatePath(String),
    #[error("invalid image reference {reference:?} for a built image: {reason}")]
    InvalidReference { reference: String, reason: &'static str },
    #[error("writing OCI image archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding OCI image JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A built image: every blob in memory plus the digests that identify it.
#[derive(Debug, Clone)]
pub struct OciImage {
    /// Full reference with tag, as written to `io.containerd.image.name`.
    name: String,
    manifest_digest: String,
    manifest_size: usize,
    config_digest: String,
    /// Of each layer, in order.
    layer_digests: Vec<String>,
    diff_ids: Vec<String>,
    index: Vec<u8>,
    /// (digest, content) in archive order.
    blobs: Vec<(String, Vec<u8>)>,
}

impl OciImage {
    /// The full image name (`podctl.local/echoserver:0.1`), tag included.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `sha256:…` of the manifest: the image's target digest once imported.
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    pub fn config_digest(&self) -> &str {
        &self.config_digest
    }

    /// Bytes of the manifest (what an index entry's `size` gives).
    pub fn manifest_size(&self) -> usize {
        self.manifest_size
    }

    /// `sha256:…` of the (last) compressed layer blob.
    pub fn layer_digest(&self) -> &str {
        self.layer_digests.last().map(String::as_str).unwrap_or_default()
    }

    /// `sha256:…` of the (last) uncompressed layer tar (the config's last `rootfs.diff_ids`).
    pub fn diff_id(&self) -> &str {
        self.diff_ids.last().map(String::as_str).unwrap_or_default()
    }

    /// Writes the OCI image-layout archive (an uncompressed tar) to `out`.
    pub fn write_archive(&self, out: impl Write) -> Result<(), LayoutError> {
        let mut archive = tar::Builder::new(out);
        append_file(&mut archive, "oci-layout", 0o644, OCI_LAYOUT)?;
        append_file(&mut archive, "index.json", 0o644, &self.index)?;
        append_dir(&mut archive, "blobs/", 0o755)?;
        append_dir(&mut archive, "blobs/sha256/", 0o755)?;
        for (digest, content) in &self.blobs {
            let hex = digest.trim_start_matches("sha256:");
            append_file(&mut archive, &format!("blobs/sha256/{hex}"), 0o644, content)?;
        }
        let mut out = archive.into_inner()?;
        out.flush()?;
        Ok(())
    }
}

/// Builds the image (layer, config, manifest, index) in memory.
pub fn build_image(spec: &ImageSpec, layer: &[Entry]) -> Result<OciImage, LayoutError> {
    build_layered_image(spec, &[layer])
}

/// Builds an image of several layers, the first at the bottom.
pub fn build_layered_image(spec: &ImageSpec, layers: &[&[Entry]]) -> Result<OciImage, LayoutError> {
    let (name, tag) = split_reference(&spec.reference)?;
    let architecture = spec.architecture.as_deref().unwrap_or(ARCHITECTURE);
    let os = spec.os.as_deref().unwrap_or(OS);

    let mut diff_ids = Vec::new();
    let mut compressed = Vec::new();
    for layer in layers {
        let layer_tar = layer_tar(layer)?;
        diff_ids.push(sha256_digest(&layer_tar));
        let layer_gz = gzip(&layer_tar)?;
        compressed.push((sha256_digest(&layer_gz), layer_gz));
    }
    let exposed_ports: BTreeMap<String, Empty> = spec
        .exposed_ports
        .iter()
        .map(|p| {
            let port = if p.contains('/') { p.clone() } else { format!("{p}/tcp") };
            (port, Empty {})
        })
        .collect();
    let config = serde_json::to_vec(&ConfigJson {
        architecture,
        os,
        config: ExecConfigJson {
            user: spec.user.as_deref(),
            exposed_ports,
            env: &spec.env,
            entrypoint: &spec.entrypoint,
            cmd: &spec.cmd,
            working_dir: spec.working_dir.as_deref(),
            labels: &spec.labels,
            stop_signal: spec.stop_signal.as_deref(),
        },
        rootfs: RootFsJson {
            kind: "layers",
            diff_ids: diff_ids.iter().map(String::as_str).collect(),
        },
    })?;
    let config_digest = sha256_digest(&config);

    let manifest = serde_json::to_vec(&ManifestJson {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST,
        config: DescriptorJson::new(MEDIA_TYPE_CONFIG, &config_digest, config.len()),
        layers: compressed
            .iter()
            .map(|(digest, data)| DescriptorJson::new(MEDIA_TYPE_LAYER_GZIP, digest, data.len()))
            .collect(),
    })?;
    let manifest_digest = sha256_digest(&manifest);

    let mut manifest_descriptor = DescriptorJson::new(MEDIA_TYPE_MANIFEST, &manifest_digest, manifest.len());
    manifest_descriptor.annotations = BTreeMap::from([
        (ANNOTATION_CONTAINERD_NAME, name.as_str()),
        (ANNOTATION_REF_NAME, tag.as_str()),
    ]);
    manifest_descriptor.platform = Some(PlatformJson { architecture, os });
    let index = serde_json::to_vec(&IndexJson {
        schema_version: 2,
        media_type: MEDIA_TYPE_INDEX,
        manifests: vec![manifest_descriptor],
    })?;

    let layer_digests: Vec<String> = compressed.iter().map(|(d, _)| d.clone()).collect();
    let mut blobs = vec![(config_digest.clone(), config)];
    blobs.extend(compressed);
    let manifest_size = manifest.len();
    blobs.push((manifest_digest.clone(), manifest));
    Ok(OciImage {
        blobs,
        name,
        manifest_digest,
        manifest_size,
        config_digest,
        layer_digests,
        diff_ids,
        index,
    })
}

/// Builds the image and writes its OCI image-layout archive to `out`.
pub fn write_oci_archive(spec: &ImageSpec, layer: &[Entry], out: impl Write) -> Result<(), LayoutError> {
    build_image(spec, layer)?.write_archive(out)
}

/// `name[:tag]` → (`name:tag`, `tag`), with `latest` when no tag is given.
fn split_reference(reference: &str) -> Result<(String, String), LayoutError> {
    let invalid = |reason| LayoutError::InvalidReference {
        reference: reference.to_string(),
        reason,
    };
    if reference.is_empty() {
        return Err(invalid("it is empty"));
    }
    if reference
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid("it contains whitespace or control characters"));
    }
    if reference.contains('@') {
        return Err(invalid("a digest cannot be chosen, it follows from the content"));
    }
    // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (&reference[..last_slash + i], &reference[last_slash + i + 1..]),
        None => (reference, "latest"),
    };
    if name.is_empty() || name.ends_with('/') {
        return Err(invalid("the repository name is empty"));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !tag_ok {
        return Err(invalid(
            "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
        ));
    }
    Ok((format!("{name}:{tag}"), tag.to_string()))
}

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Read;

    fn spec() -> ImageSpec {
        ImageSpec {
            reference: "podctl.local/test:0.1".into(),
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--flag".into()],
            env: vec!["PORT=8080".into(), "PATH=/bin".into()],
            working_dir: Some("/srv".into()),
            user: Some("65534:65534".into()),
            exposed_ports: vec!["8080/tcp".into(), "53".into()],
            stop_signal: Some("SIGTERM".into()),
            labels: BTreeMap::from([
                ("z".to_string(), "last".to_string()),
                ("a".to_string(), "first".to_string()),
            ]),
            architecture: None,
            os: None,
        }
    }

    fn long_name() -> String {
        format!("deep/{}/file.txt", "d".repeat(120))
    }

    fn layer() -> Vec<Entry> {
        with_parent_dirs([
            Entry::file("/bin/app", 0o755, &b"#!binary"[..]),
            Entry::dir("/tmp", 0o1777),
            Entry::symlink("/usr/bin/app", "/bin/app"),
            Entry::file(long_name(), 0o644, b"long".to_vec()),
        ])
    }

    fn archive_bytes(spec: &ImageSpec, layer: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        write_oci_archive(spec, layer, &mut out).unwrap();
        out
    }

    /// path → (entry type, content) for every entry of a tar.
    fn read_tar(bytes: &[u8]) -> Vec<(String, tar::Header, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((path, header, data));
        }
        out
    }

    fn digest_of(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    #[test]
    fn archive_has_oci_layout_structure() {
        let bytes = archive_bytes(&spec(), &layer());
        let entries = read_tar(&bytes);
        let files: HashMap<&str, &[u8]> = entries
            .iter()
            .filter(|(_, h, _)| h.entry_type() == tar::EntryType::Regular)
            .map(|(p, _, d)| (p.as_str(), d.as_slice()))
            .collect();
        assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);

        // Every blob is named by its own sha256.
        let blobs: HashMap<String, &[u8]> = files
            .iter()
            .filter_map(|(p, d)| {
                let hex = p.strip_prefix("blobs/sha256/")?;
                assert_eq!(digest_of(d), format!("sha256:{hex}"), "blob {p}");
                Some((format!("sha256:{hex}"), *d))
            })
            .collect();
        assert_eq!(blobs.len(), 3);

        let index: oci_spec::image::ImageIndex = serde_json::from_slice(files["index.json"]).unwrap();
        assert_eq!(index.schema_version(), 2);
        let [manifest_desc] = index.manifests().as_slice() else {
            panic!("one manifest expected");
        };
        assert_eq!(manifest_desc.media_type().to_string(), MEDIA_TYPE_MANIFEST);
        let annotations = manifest_desc.annotations().as_ref().unwrap();
        assert_eq!(annotations[ANNOTATION_REF_NAME], "0.1");
        assert_eq!(annotations[ANNOTATION_CONTAINERD_NAME], "podctl.local/test:0.1");
        let platform = manifest_desc.platform().as_ref().unwrap();
        assert_eq!(platform.architecture().to_string(), "amd64");
        assert_eq!(platform.os().to_string(), "linux");

        let manifest_bytes = blobs[&manifest_desc.digest().to_string()];
        assert_eq!(manifest_bytes.len() as u64, manifest_desc.size());
        let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(manifest_bytes).unwrap();
        assert_eq!(manifest.config().media_type().to_string(), MEDIA_TYPE_CONFIG);
        let config_bytes = blobs[&manifest.config().digest().to_string()];
        assert_eq!(config_bytes.len() as u64, manifest.config().size());
        let [layer_desc] = manifest.layers().as_slice() else {
            panic!("one layer expected");
        };
        assert_eq!(layer_desc.media_type().to_string(), MEDIA_TYPE_LAYER_GZIP);
        let layer_gz = blobs[&layer_desc.digest().to_string()];
        assert_eq!(layer_gz.len() as u64, layer_desc.size());

        let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(config_bytes).unwrap();
        assert_eq!(config.architecture().to_string(), "amd64");
        assert_eq!(config.os().to_string(), "linux");
        let exec = config.config().as_ref().unwrap();
        assert_eq!(exec.entrypoint().as_deref(), Some(&["/bin/app".to_string()][..]));
        assert_eq!(exec.cmd().as_deref(), Some(&["--flag".to_string()][..]));
        assert_eq!(exec.env().as_ref().unwrap().len(), 2);
        assert_eq!(exec.working_dir().as_deref(), Some("/srv"));
        assert_eq!(exec.user().as_deref(), Some("65534:65534"));
        assert_eq!(exec.stop_signal().as_deref(), Some("SIGTERM"));
        let mut ports = exec.exposed_ports().clone().unwrap();
        ports.sort();
        assert_eq!(ports, ["53/tcp", "8080/tcp"]);
        assert_eq!(exec.labels().as_ref().unwrap()["a"], "first");
        // The raw JSON uses the OCI field names.
        let raw: serde_json::Value = serde_json::from_slice(config_bytes).unwrap();
        assert_eq!(raw["config"]["Entrypoint"][0], "/bin/app");
        assert_eq!(raw["config"]["ExposedPorts"]["8080/tcp"], serde_json::json!({}));
        assert_eq!(raw["rootfs"]["type"], "layers");

        // diff_ids[0] is the digest of the decompressed layer.
        let mut layer_tar = Vec::new();
        flate2::read::GzDecoder::new(layer_gz)
            .read_to_end(&mut layer_tar)
            .unwrap();
        assert_eq!(config.rootfs().diff_ids().as_slice(), [digest_of(&layer_tar)]);

        let layer_entries = read_tar(&layer_tar);
        let summary: Vec<(&str, tar::EntryType, u32)> = layer_entries
            .iter()
            .map(|(p, h, _)| (p.as_str(), h.entry_type(), h.mode().unwrap()))
            .collect();
        let long = long_name();
        assert_eq!(
            summary,
            [
                ("bin/", tar::EntryType::Directory, 0o755),
                ("bin/app", tar::EntryType::Regular, 0o755),
                ("tmp/", tar::EntryType::Directory, 0o1777),
                ("usr/", tar::EntryType::Directory, 0o755),
                ("usr/bin/", tar::EntryType::Directory, 0o755),
                ("usr/bin/app", tar::EntryType::Symlink, 0o777),
                ("deep/", tar::EntryType::Directory, 0o755),
                (
                    &format!("deep/{}/", "d".repeat(120))[..],
                    tar::EntryType::Directory,
                    0o755
                ),
                (long.as_str(), tar::EntryType::Regular, 0o644),
            ]
        );
        for (path, header, data) in &layer_entries {
            assert_eq!(header.mtime().unwrap(), 0, "{path}");
            assert_eq!(header.uid().unwrap(), 0, "{path}");
            assert_eq!(header.gid().unwrap(), 0, "{path}");
            match path.as_str() {
                "bin/app" => assert_eq!(data, b"#!binary"),
                "usr/bin/app" => assert_eq!(header.link_name().unwrap().unwrap().to_str(), Some("/bin/app")),
                p if p == long => assert_eq!(data, b"long"),
                _ => {}
            }
        }
    }

    #[test]
    fn archive_is_deterministic() {
        let first = archive_bytes(&spec(), &layer());
        let second = archive_bytes(&spec(), &layer());
        assert!(first == second, "two writes of the same image differ");

        let built = build_image(&spec(), &layer()).unwrap();
        let mut third = Vec::new();
        built.write_archive(&mut third).unwrap();
        assert!(first == third);
        assert_eq!(built.name(), "podctl.local/test:0.1");

        let mut other = spec();
        other.env.push("X=1".into());
        let changed = build_image(&other, &layer()).unwrap();
        assert_ne!(changed.manifest_digest(), built.manifest_digest());
        assert_eq!(changed.diff_id(), built.diff_id());
        assert_eq!(changed.layer_digest(), built.layer_digest());
    }

    #[test]
    fn references_get_a_tag() {
        let ok = |r: &str| split_reference(r).unwrap();
        assert_eq!(
            ok("podctl.local/pause:0.1"),
            ("podctl.local/pause:0.1".into(), "0.1".into())
        );
        assert_eq!(
            ok("localhost:5000/x"),
            ("localhost:5000/x:latest".into(), "latest".into())
        );
        assert_eq!(ok("busybox"), ("busybox:latest".into(), "latest".into()));
        for bad in ["", "a b:1", "x@sha256:00", "x:", "x:-bad", "x/:1", ":1"] {
            assert!(split_reference(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bad_layers_are_refused() {
        let spec = spec();
        for path in ["", "/", "../etc/passwd", "a/../../b", "a\0b"] {
            let err = build_image(&spec, &[Entry::file(path, 0o644, &b""[..])]).unwrap_err();
            assert!(matches!(err, LayoutError::InvalidPath { .. }), "{path:?}: {err}");
        }
        let err = build_image(&spec, &[Entry::dir("/etc", 0o755), Entry::dir("etc/", 0o700)]).unwrap_err();
        assert!(matches!(err, LayoutError::DuplicatePath(p) if p == "etc"));
    }
}
