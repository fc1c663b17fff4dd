//! Images: client-side import (containerd 1.6 has no Transfer service), unpack into snapshots keyed
//! by chain ID, and resolution of an image name to its config and top snapshot.

use std::collections::HashMap;

use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteImageRequest, GetImageRequest, Image, ListImagesRequest, UpdateImageRequest,
};
use containerd_client::types::Descriptor;
use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::leases::random_hex;
use super::{Client, ContainerdError, Result, SNAPSHOTTER};
use crate::image::archive::{chain_ids, is_filesystem_layer, ArchiveImage, DOCKER_MANIFEST_LIST, OCI_INDEX};

/// An image name resolved to what a container needs from it.
pub struct ResolvedImage {
    pub name: String,
    pub digest: String,
    pub config: ImageConfiguration,
    /// The committed snapshot of the whole layer chain: a container's parent.
    pub top_chain_id: String,
}

pub struct ImageInfo {
    pub name: String,
    pub digest: String,
    pub size: u64,
    pub created: Option<f64>,
}

#[derive(Deserialize)]
struct Desc {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    platform: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Desc,
    layers: Vec<Desc>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Desc>,
}

impl Client {
    /// Stores one archive image: blobs with GC labels under a lease, unpacked layers, then the record.
    pub async fn import_image(&self, image: &ArchiveImage) -> Result<ImageInfo> {
        let lease = self.create_lease("import").await?;
        let result = self.import_under_lease(&lease, image).await;
        self.delete_lease(&lease).await?;
        result
    }

    async fn import_under_lease(&self, lease: &str, image: &ArchiveImage) -> Result<ImageInfo> {
        // An artifact (e.g. a WASM module) is content only: nothing to unpack, no snapshot to keep.
        let unpack = image.layers.iter().all(|l| is_filesystem_layer(&l.media_type));
        let chains = if unpack { chain_ids(&image.diff_ids) } else { Vec::new() };
        if unpack && chains.len() != image.layers.len() {
            return Err(ContainerdError::Invalid {
                object: format!("image {}", image.name),
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
            self.write_blob(lease, &layer.digest, &layer.data, labels).await?;
        }
        let mut config_labels = HashMap::new();
        if let Some(top) = chains.last() {
            config_labels.insert(format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"), top.clone());
        }
        self.write_blob(lease, &image.config.digest, &image.config.data, config_labels)
            .await?;
        let mut manifest_labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            image.config.digest.clone(),
        )]);
        for (i, layer) in image.layers.iter().enumerate() {
            manifest_labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), layer.digest.clone());
        }
        self.write_blob(lease, &image.manifest.digest, &image.manifest.data, manifest_labels)
            .await?;
        let layers: Vec<Descriptor> = image
            .layers
            .iter()
            .map(|l| descriptor(&l.media_type, &l.digest, l.data.len() as i64))
            .collect();
        if unpack {
            self.unpack(lease, &image.name, &layers, &image.diff_ids).await?;
        }
        let target = descriptor(
            &image.manifest.media_type,
            &image.manifest.digest,
            image.manifest.data.len() as i64,
        );
        self.put_image_record(lease, &image.name, target).await?;
        let size = image.manifest.data.len()
            + image.config.data.len()
            + image.layers.iter().map(|l| l.data.len()).sum::<usize>();
        Ok(ImageInfo {
            name: image.name.clone(),
            digest: image.manifest.digest.clone(),
            size: size as u64,
            created: None,
        })
    }

    /// Creates the image record, or points an existing name at the new target (like `ctr import`).
    async fn put_image_record(&self, lease: &str, name: &str, target: Descriptor) -> Result<()> {
        let mut images = ImagesClient::new(self.channel());
        let record = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(target),
            created_at: None,
            updated_at: None,
        };
        let create = CreateImageRequest {
            image: Some(record.clone()),
            source_date_epoch: None,
        };
        match images
            .create(self.request(create, Some(lease)))
            .await
            .map_err(self.status_error("create", format!("image {name}")))
        {
            Err(e) if e.is_already_exists() => {
                let update = UpdateImageRequest {
                    image: Some(record),
                    update_mask: None,
                    source_date_epoch: None,
                };
                images
                    .update(self.request(update, Some(lease)))
                    .await
                    .map_err(self.status_error("update", format!("image {name}")))?;
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Applies each layer onto its parent snapshot and commits it under its chain ID; layers already
    /// unpacked (shared with other images) are skipped.
    async fn unpack(&self, lease: &str, image: &str, layers: &[Descriptor], diff_ids: &[String]) -> Result<()> {
        let chains = chain_ids(diff_ids);
        let mut parent = String::new();
        for (layer, chain) in layers.iter().zip(&chains) {
            if !self.snapshot_exists(chain).await? {
                let key = format!("podctl-extract-{}-{chain}", random_hex(6));
                let mounts = self.prepare_snapshot(lease, &key, &parent).await?;
                let mut diff = DiffClient::new(self.channel());
                let apply = ApplyRequest {
                    diff: Some(layer.clone()),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                };
                let applied = diff
                    .apply(self.request(apply, Some(lease)))
                    .await
                    .map_err(self.status_error("apply", format!("layer {} of image {image}", layer.digest)));
                let committed = match applied {
                    Ok(_) => self.commit_snapshot(lease, chain, &key).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = committed {
                    self.remove_snapshot(&key).await.ok();
                    if !(e.is_already_exists() && self.snapshot_exists(chain).await.unwrap_or(false)) {
                        return Err(e);
                    }
                }
            }
            parent = chain.clone();
        }
        Ok(())
    }

    pub async fn get_image(&self, name: &str) -> Result<Option<Image>> {
        let mut images = ImagesClient::new(self.channel());
        let request = GetImageRequest { name: name.to_string() };
        match images
            .get(self.request(request, None))
            .await
            .map_err(self.status_error("get", format!("image {name}")))
        {
            Ok(response) => Ok(response.into_inner().image),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The image's target and its platform manifest (an index resolves to linux/amd64).
    async fn manifest_of(&self, name: &str) -> Result<Option<(Descriptor, Manifest)>> {
        let Some(image) = self.get_image(name).await? else {
            return Ok(None);
        };
        let target = image.target.ok_or_else(|| ContainerdError::Invalid {
            object: format!("image {name}"),
            message: "its record has no target".into(),
        })?;
        let mut manifest_digest = target.digest.clone();
        if target.media_type == OCI_INDEX || target.media_type == DOCKER_MANIFEST_LIST {
            let index: Index = self.read_json(&target.digest).await?;
            let count = index.manifests.len();
            let chosen = index
                .manifests
                .into_iter()
                .find(|m| {
                    m.platform.as_ref().is_none_or(|p| {
                        p.get("os").and_then(|v| v.as_str()) == Some("linux")
                            && p.get("architecture").and_then(|v| v.as_str()) == Some("amd64")
                    })
                })
                .ok_or_else(|| ContainerdError::Invalid {
                    object: format!("image {name}"),
                    message: format!("none of its {count} manifests is for linux/amd64"),
                })?;
            manifest_digest = chosen.digest;
        }
        let manifest: Manifest = self.read_json(&manifest_digest).await?;
        Ok(Some((target, manifest)))
    }

    /// (media type, digest) of each layer of the named image, or None when there is no such image.
    pub async fn image_layers(&self, name: &str) -> Result<Option<Vec<(String, String)>>> {
        Ok(self
            .manifest_of(name)
            .await?
            .map(|(_, m)| m.layers.into_iter().map(|l| (l.media_type, l.digest)).collect()))
    }

    /// Reads the image's manifest and config and makes sure its layers are unpacked (an image
    /// imported with `ctr image import --no-unpack` or unpacked for another snapshotter is not).
    pub async fn resolve_image(&self, name: &str) -> Result<ResolvedImage> {
        let (target, manifest) = self.manifest_of(name).await?.ok_or_else(|| ContainerdError::NotFound {
            object: format!("image {name}"),
            namespace: self.namespace().to_string(),
        })?;
        let config_data = self.read_blob(&manifest.config.digest).await?;
        let config = ImageConfiguration::from_reader(&config_data[..]).map_err(|e| ContainerdError::Invalid {
            object: format!("image {name}"),
            message: format!("its config is not a valid OCI image config: {e}"),
        })?;
        let diff_ids: Vec<String> = config.rootfs().diff_ids().clone();
        let chains = chain_ids(&diff_ids);
        let top_chain_id = chains.last().cloned().ok_or_else(|| ContainerdError::Invalid {
            object: format!("image {name}"),
            message: "it has no layers".into(),
        })?;
        if !self.snapshot_exists(&top_chain_id).await? {
            let layers: Vec<Descriptor> = manifest
                .layers
                .iter()
                .map(|l| descriptor(&l.media_type, &l.digest, l.size))
                .collect();
            let lease = self.create_lease("unpack").await?;
            let result = self.unpack(&lease, name, &layers, &diff_ids).await;
            self.delete_lease(&lease).await?;
            result?;
        }
        Ok(ResolvedImage {
            name: name.to_string(),
            digest: target.digest,
            config,
            top_chain_id,
        })
    }

    pub async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let mut images = ImagesClient::new(self.channel());
        let response = images
            .list(self.request(ListImagesRequest { filters: vec![] }, None))
            .await
            .map_err(self.status_error("list", "images"))?;
        let mut infos = Vec::new();
        for image in response.into_inner().images {
            let Some(target) = image.target else { continue };
            let mut size = target.size as u64;
            // Sizes are best effort: a manifest whose blobs were pruned still lists.
            if let Ok(manifest) = self.read_json::<Manifest>(&target.digest).await {
                size += manifest.config.size as u64 + manifest.layers.iter().map(|l| l.size as u64).sum::<u64>();
            }
            infos.push(ImageInfo {
                name: image.name,
                digest: target.digest,
                size,
                created: super::timestamp_secs(&image.created_at),
            });
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    pub async fn delete_image(&self, name: &str) -> Result<()> {
        let mut images = ImagesClient::new(self.channel());
        let request = DeleteImageRequest {
            name: name.to_string(),
            sync: true,
            target: None,
        };
        images
            .delete(self.request(request, None))
            .await
            .map_err(self.status_error("delete", format!("image {name}")))?;
        Ok(())
    }
}

fn descriptor(media_type: &str, digest: &str, size: i64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: digest.to_string(),
        size,
        annotations: HashMap::new(),
    }
}
