//! Images in containerd as podctl reads and writes them: importing archive images (blobs with GC
//! labels under a lease, layers unpacked by chain ID, then the record), resolving a name to the
//! host platform's manifest, config and top snapshot, and listing what is stored.

use std::collections::HashMap;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::archive::{chain_ids, is_filesystem_layer, ArchiveImage, DOCKER_MANIFEST_LIST, OCI_INDEX};
use super::feed::{feed, ChunkReader, FeedError, LiveLayer};
use super::pull_events::Unpacked;
use super::unpack::{self, Target, UnpackError};
use super::{ImageError, Platform, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPES};
use crate::containerd::{descriptor, random_hex, Client, Descriptor, ImageRecord, SNAPSHOTTER};

/// An image name resolved to what a container needs from it.
pub struct ResolvedImage {
    pub name: String,
    pub digest: String,
    pub config: ImageConfiguration,
    /// The committed snapshot of the whole layer chain: a container's parent.
    pub top_chain_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Oci,
    Wasm,
}

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Oci => "oci",
            ImageKind::Wasm => "wasm",
        }
    }
}

pub struct ImageInfo {
    pub name: String,
    pub digest: String,
    pub size: u64,
    pub created: Option<f64>,
    /// `os/arch[/variant]` of each platform whose content is stored.
    pub platforms: Vec<String>,
    pub kind: ImageKind,
}

#[derive(Deserialize, Clone)]
pub(crate) struct Desc {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
}

#[derive(Deserialize, Clone)]
pub(crate) struct PlatformJson {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl PlatformJson {
    pub fn text(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Manifest {
    pub config: Desc,
    pub layers: Vec<Desc>,
}

#[derive(Deserialize)]
pub(crate) struct Index {
    pub manifests: Vec<Desc>,
}

#[derive(Deserialize, Default)]
struct ConfigHead {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

impl Desc {
    pub fn descriptor(&self) -> Descriptor {
        descriptor(&self.media_type, &self.digest, self.size)
    }
}

/// GC labels of a manifest blob: it keeps its config and layers.
pub(crate) fn manifest_labels(config: &str, layers: &[&str]) -> HashMap<String, String> {
    let mut labels = HashMap::from([("containerd.io/gc.ref.content.config".to_string(), config.to_string())]);
    for (i, layer) in layers.iter().enumerate() {
        labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), layer.to_string());
    }
    labels
}

/// GC label of a config blob: it keeps the unpacked snapshot chain.
pub(crate) fn config_labels(top_chain_id: Option<&String>) -> HashMap<String, String> {
    top_chain_id
        .map(|top| HashMap::from([(format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"), top.clone())]))
        .unwrap_or_default()
}

/// Stores one archive image: blobs with GC labels under a lease, unpacked layers, then the record.
pub async fn import_image(client: &Client, image: &ArchiveImage) -> Result<ImageInfo, ImageError> {
    let lease = client.create_lease("import").await?;
    let result = import_under_lease(client, &lease, image).await;
    client.delete_lease(&lease).await?;
    result
}

async fn import_under_lease(client: &Client, lease: &str, image: &ArchiveImage) -> Result<ImageInfo, ImageError> {
    // An artifact (e.g. a WASM module) is content only: nothing to unpack, no snapshot to keep.
    let unpack = image.layers.iter().all(|l| is_filesystem_layer(&l.media_type));
    let chains = if unpack { chain_ids(&image.diff_ids) } else { Vec::new() };
    if unpack && chains.len() != image.layers.len() {
        return Err(ImageError::Invalid {
            image: image.name.clone(),
            message: format!(
                "its config lists {} diff_ids but its manifest {} layers",
                chains.len(),
                image.layers.len()
            ),
        });
    }
    for (i, layer) in image.layers.iter().enumerate() {
        let labels = match chains.get(i).and(image.diff_ids.get(i)) {
            Some(diff_id) => HashMap::from([("containerd.io/uncompressed".to_string(), diff_id.clone())]),
            None => HashMap::new(),
        };
        client.write_blob(lease, &layer.digest, &layer.data, labels).await?;
    }
    client
        .write_blob(
            lease,
            &image.config.digest,
            &image.config.data,
            config_labels(chains.last()),
        )
        .await?;
    let layer_digests: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
    client
        .write_blob(
            lease,
            &image.manifest.digest,
            &image.manifest.data,
            manifest_labels(&image.config.digest, &layer_digests),
        )
        .await?;
    if unpack {
        let layers: Vec<Descriptor> = image
            .layers
            .iter()
            .map(|l| descriptor(&l.media_type, &l.digest, l.data.len() as i64))
            .collect();
        unpack_layers(client, lease, &image.name, &layers, &image.diff_ids).await?;
    }
    let target = descriptor(
        &image.manifest.media_type,
        &image.manifest.digest,
        image.manifest.data.len() as i64,
    );
    client
        .put_image_record(lease, &image.name, target, HashMap::new())
        .await?;
    let size =
        image.manifest.data.len() + image.config.data.len() + image.layers.iter().map(|l| l.data.len()).sum::<usize>();
    Ok(ImageInfo {
        name: image.name.clone(),
        digest: image.manifest.digest.clone(),
        size: size as u64,
        created: None,
        platforms: vec![Platform::host().to_string()],
        kind: if unpack { ImageKind::Oci } else { ImageKind::Wasm },
    })
}

/// Applies each layer onto its parent snapshot and commits it under its chain ID.
pub(crate) async fn unpack_layers(
    client: &Client,
    lease: &str,
    image: &str,
    layers: &[Descriptor],
    diff_ids: &[String],
) -> Result<(), ImageError> {
    let chains = chain_ids(diff_ids);
    let reach = Reach::default();
    let mut parent = String::new();
    for ((layer, chain), diff_id) in layers.iter().zip(&chains).zip(diff_ids) {
        let step = LayerStep {
            layer,
            diff_id,
            parent: &parent,
            chain,
        };
        unpack_layer(client, lease, image, &step, None, &reach).await?;
        parent = chain.clone();
    }
    Ok(())
}

/// Whether podctl's applier can write this containerd's snapshots: found on the first layer that
/// asks, then kept for the image's other layers (they share one snapshotter root).
#[derive(Default)]
pub(crate) struct Reach(tokio::sync::OnceCell<bool>);

/// One step of a layer chain: the layer, its uncompressed digest, and the chain IDs below and of it.
#[derive(Clone, Copy)]
pub(crate) struct LayerStep<'a> {
    pub layer: &'a Descriptor,
    pub diff_id: &'a str,
    /// Empty for the first layer.
    pub parent: &'a str,
    pub chain: &'a str,
}

/// Applies one layer onto `parent` (a chain ID; empty for the first layer) and commits it as
/// `chain`. A layer already unpacked (shared with another image) is skipped. A layer whose
/// content is not what the config's `diff_id` names is refused: its snapshot would be filed under
/// a chain ID that lies about it (and shared with images whose layer is the real one).
///
/// podctl's applier unpacks it (from `live`, its download, or from the content store) where the
/// snapshot is an overlay this process can reach; containerd's diff service does otherwise. With
/// `live`, the snapshot is committed only once the blob is (containerd verified its digest).
pub(crate) async fn unpack_layer(
    client: &Client,
    lease: &str,
    image: &str,
    step: &LayerStep<'_>,
    mut live: Option<&mut LiveLayer>,
    reach: &Reach,
) -> Result<Unpacked, ImageError> {
    let LayerStep {
        layer,
        diff_id,
        parent,
        chain,
    } = *step;
    if client.snapshot_exists(chain).await? {
        if let Some(live) = live {
            // Its download must not wait for an applier that will not come.
            live.abandon();
        }
        return Ok(Unpacked::AlreadyThere);
    }
    // Named after the lease: a pull that broke off keeps its lease (to resume) and with it this
    // snapshot, which the next try then replaces instead of leaving another beside it.
    let key = format!(
        "podctl-extract-{}-{chain}",
        &super::archive::sha256_digest(lease.as_bytes())[7..19]
    );
    let mounts = match client.prepare_snapshot(lease, &key, parent).await {
        Err(e) if e.is_already_exists() => {
            client.remove_snapshot(&key).await?;
            client.prepare_snapshot(lease, &key, parent).await?
        }
        other => other?,
    };
    let failed = |message: String| ImageError::Invalid {
        image: image.to_string(),
        message: format!("layer {} could not be unpacked: {message}", layer.digest),
    };
    let mut by = Unpacked::Podctl;
    let applied = match apply_here(client, &key, layer, &mounts, live.as_deref_mut(), reach).await {
        Ok(Some(applied)) => Ok(applied),
        // Not for this applier: containerd's, from the stored blob.
        Ok(None) if !blob_stored(live.as_deref_mut()).await => Err(failed(FeedError::DownloadFailed.to_string())),
        Ok(None) => {
            by = Unpacked::Containerd;
            client
                .apply_layer(lease, layer, mounts)
                .await
                .map_err(|e| failed(e.to_string()))
        }
        Err(message) => Err(failed(message)),
    };
    let verified = match applied {
        Ok(applied) if applied != diff_id => Err(failed(format!(
            "its content is {applied}, but the image config's diff_id says {diff_id}; the image is \
             damaged or forged: build or pull it again"
        ))),
        Ok(_) if !blob_stored(live).await => Err(failed(FeedError::DownloadFailed.to_string())),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    let committed = match verified {
        Ok(()) => client.commit_snapshot(lease, chain, &key).await,
        Err(e) => {
            client.remove_snapshot(&key).await.ok();
            return Err(e);
        }
    };
    if let Err(e) = committed {
        client.remove_snapshot(&key).await.ok();
        // Another unpack of the same layer won the race: its snapshot serves.
        if !(e.is_already_exists() && client.snapshot_exists(chain).await.unwrap_or(false)) {
            return Err(failed(e.to_string()));
        }
    }
    Ok(by)
}

/// `PODCTL_UNPACK=containerd` leaves every layer to containerd's diff service (to compare, or
/// where podctl's applier should not write).
pub const UNPACK_ENV: &str = "PODCTL_UNPACK";

/// Whether the layer's blob is in the content store (waiting for its download, if it has one).
/// Whatever it tees is not read any more: a download waiting for the applier would wait forever.
async fn blob_stored(live: Option<&mut LiveLayer>) -> bool {
    match live {
        Some(live) => {
            live.abandon();
            live.committed().await
        }
        None => true,
    }
}

/// Unpacks the layer with podctl's applier; the diff ID it computed, or None when the snapshot or
/// the layer's compression is not for it (nothing was written then).
async fn apply_here(
    client: &Client,
    key: &str,
    layer: &Descriptor,
    mounts: &[crate::containerd::RootfsMount],
    live: Option<&mut LiveLayer>,
    reach: &Reach,
) -> Result<Option<String>, String> {
    if std::env::var_os(UNPACK_ENV).is_some_and(|v| v == "containerd") {
        return Ok(None);
    }
    let Some(target) = Target::open(mounts) else {
        return Ok(None);
    };
    if !*reach.0.get_or_init(|| shares_filesystem(client, key, &target)).await {
        return Ok(None);
    }
    let (chunks, reader) = tokio::sync::mpsc::channel(8);
    let applier = tokio::task::spawn_blocking(move || unpack::apply(&target, ChunkReader::new(reader)));
    let fed = feed(client, &layer.digest, live, chunks).await;
    let applied = applier.await.map_err(|e| e.to_string())?;
    // A failed download explains a broken stream better than the stream does.
    fed.map_err(|e| e.to_string())?;
    match applied {
        Ok(diff_id) => Ok(Some(diff_id)),
        Err(UnpackError::Unsupported(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether the snapshot's directory that this process opened is the one containerd made: a
/// client in another mount namespace could see another directory at that path. containerd counts
/// the inodes of a fresh snapshot: its root, and the probe file made here.
async fn shares_filesystem(client: &Client, key: &str, target: &Target) -> bool {
    let probe = target.root_path().join(format!(".podctl-probe-{}", random_hex(6)));
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_err()
    {
        return false;
    }
    let inodes = client.snapshot_inodes(key).await;
    let _ = std::fs::remove_file(&probe);
    matches!(inodes, Ok(2))
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    image: &str,
    digest: &str,
) -> Result<T, ImageError> {
    let data = client.read_blob(digest).await?;
    serde_json::from_slice(&data).map_err(|e| ImageError::Invalid {
        image: image.to_string(),
        message: format!("blob {digest} is not the JSON podctl expected: {e}"),
    })
}

/// The record's manifest for `platform` (an index resolves to the entry whose content is stored).
async fn platform_manifest(
    client: &Client,
    record: &ImageRecord,
    platform: &Platform,
) -> Result<(Desc, Manifest), ImageError> {
    let target = &record.target;
    let chosen = if is_index(&target.media_type) {
        let index: Index = read_json(client, &record.name, &target.digest).await?;
        let available: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref().map(PlatformJson::text))
            .collect();
        let mut candidates = index
            .manifests
            .into_iter()
            .filter(|m| platform.matches(m.platform.as_ref()));
        let mut found = None;
        for candidate in candidates.by_ref() {
            if client.content_exists(&candidate.digest).await? {
                found = Some(candidate);
                break;
            }
        }
        found.ok_or_else(|| ImageError::NoPlatform {
            image: record.name.clone(),
            platform: platform.to_string(),
            available: available.join(", "),
        })?
    } else {
        Desc {
            media_type: target.media_type.clone(),
            digest: target.digest.clone(),
            size: target.size,
            platform: None,
        }
    };
    let manifest: Manifest = read_json(client, &record.name, &chosen.digest).await?;
    Ok((chosen, manifest))
}

/// (media type, digest) of each layer of the named image, or None when there is no such image.
pub async fn image_layers(client: &Client, name: &str) -> Result<Option<Vec<(String, String)>>, ImageError> {
    Ok(image_manifest(client, name)
        .await?
        .map(|manifest| manifest.layers.into_iter().map(|l| (l.media_type, l.digest)).collect()))
}

/// The manifest of the image of that name (for this host's platform), if there is such an image.
pub(crate) async fn image_manifest(client: &Client, name: &str) -> Result<Option<Manifest>, ImageError> {
    let Some(record) = client.get_image(name).await? else {
        return Ok(None);
    };
    Ok(Some(platform_manifest(client, &record, &Platform::host()).await?.1))
}

/// Reads the image's manifest and config and makes sure its layers are unpacked (an image
/// imported with `ctr image import --no-unpack` or unpacked for another snapshotter is not).
pub async fn resolve_image(client: &Client, name: &str) -> Result<ResolvedImage, ImageError> {
    let record = client.get_image(name).await?.ok_or_else(|| ImageError::NotFound {
        image: name.to_string(),
        namespace: client.namespace().to_string(),
    })?;
    let (_, manifest) = platform_manifest(client, &record, &Platform::host()).await?;
    let config_data = client.read_blob(&manifest.config.digest).await?;
    let config = ImageConfiguration::from_reader(&config_data[..]).map_err(|e| ImageError::Invalid {
        image: name.to_string(),
        message: format!("its config is not a valid OCI image config: {e}"),
    })?;
    let diff_ids: Vec<String> = config.rootfs().diff_ids().clone();
    let chains = chain_ids(&diff_ids);
    let top_chain_id = chains.last().cloned().ok_or_else(|| ImageError::Invalid {
        image: name.to_string(),
        message: "it has no layers".into(),
    })?;
    if !client.snapshot_exists(&top_chain_id).await? {
        let layers: Vec<Descriptor> = manifest.layers.iter().map(Desc::descriptor).collect();
        let lease = client.create_lease("unpack").await?;
        let result = unpack_layers(client, &lease, name, &layers, &diff_ids).await;
        client.delete_lease(&lease).await?;
        result?;
    }
    Ok(ResolvedImage {
        name: name.to_string(),
        digest: record.target.digest,
        config,
        top_chain_id,
    })
}

/// Every image record with its stored size, platforms and kind. Sizes are best effort: a record
/// whose blobs were pruned still lists.
pub async fn list_images(client: &Client) -> Result<Vec<ImageInfo>, ImageError> {
    let mut infos = Vec::new();
    for record in client.list_image_records().await? {
        let mut size = record.target.size as u64;
        let mut manifests = Vec::new();
        if is_index(&record.target.media_type) {
            if let Ok(index) = read_json::<Index>(client, &record.name, &record.target.digest).await {
                for entry in index.manifests {
                    if client.content_exists(&entry.digest).await.unwrap_or(false) {
                        size += entry.size as u64;
                        manifests.push(entry);
                    }
                }
            }
        } else {
            manifests.push(Desc {
                media_type: record.target.media_type.clone(),
                digest: record.target.digest.clone(),
                size: record.target.size,
                platform: None,
            });
        }
        let mut platforms = Vec::new();
        let mut kind = ImageKind::Oci;
        for entry in manifests {
            let Ok(manifest) = read_json::<Manifest>(client, &record.name, &entry.digest).await else {
                continue;
            };
            size += manifest.config.size as u64 + manifest.layers.iter().map(|l| l.size as u64).sum::<u64>();
            if manifest.config.media_type == WASM_CONFIG_MEDIA_TYPE
                || manifest
                    .layers
                    .iter()
                    .any(|l| WASM_LAYER_MEDIA_TYPES.contains(&l.media_type.as_str()))
            {
                kind = ImageKind::Wasm;
            }
            let platform = match entry.platform {
                Some(p) => p.text(),
                None => match read_json::<ConfigHead>(client, &record.name, &manifest.config.digest).await {
                    Ok(head) if !head.os.is_empty() => PlatformJson {
                        os: head.os,
                        architecture: head.architecture,
                        variant: head.variant,
                    }
                    .text(),
                    _ => continue,
                },
            };
            platforms.push(platform);
        }
        infos.push(ImageInfo {
            name: record.name,
            digest: record.target.digest,
            size,
            created: record.created,
            platforms,
            kind,
        });
    }
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(infos)
}

/// Points a second name at the image `source` names; returns both names normalized.
pub async fn tag_image(client: &Client, source: &str, target: &str) -> Result<(String, String), ImageError> {
    let (source, target) = (super::reference::normalize(source), super::reference::normalize(target));
    let record = client.get_image(&source).await?.ok_or_else(|| ImageError::NotFound {
        image: source.clone(),
        namespace: client.namespace().to_string(),
    })?;
    let lease = client.create_lease("tag").await?;
    let result = client
        .put_image_record(&lease, &target, record.target, record.labels)
        .await;
    client.delete_lease(&lease).await?;
    result?;
    Ok((source, target))
}

pub async fn delete_image(client: &Client, name: &str) -> Result<(), ImageError> {
    Ok(client.delete_image(name).await?)
}
