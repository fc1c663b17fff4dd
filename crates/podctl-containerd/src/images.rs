//! Image records and layer application: the raw RPCs. What an image *is* (manifests, platforms,
//! chain IDs, unpacking order) is podctl's `image` module's business; this one only stores and
//! applies.

use std::collections::HashMap;

use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteImageRequest, GetImageRequest, Image, ListImagesRequest, UpdateImageRequest,
};

use super::{Client, Descriptor, Result, RootfsMount};

/// An image record: a name pointing at a manifest or index in the content store.
pub struct ImageRecord {
    pub name: String,
    pub target: Descriptor,
    pub labels: HashMap<String, String>,
    pub created: Option<f64>,
}

impl ImageRecord {
    fn from_image(image: Image) -> Option<ImageRecord> {
        Some(ImageRecord {
            created: super::timestamp_secs(&image.created_at),
            target: image.target?,
            name: image.name,
            labels: image.labels,
        })
    }
}

impl Client {
    /// Creates the image record, or points an existing name at the new target (like `ctr import`
    /// and `ctr pull`).
    pub async fn put_image_record(
        &self,
        lease: &str,
        name: &str,
        target: Descriptor,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let mut images = ImagesClient::new(self.channel());
        let record = Image {
            name: name.to_string(),
            labels,
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

    /// Applies a layer blob (from the content store) onto the given snapshot mounts.
    /// Unpacks `layer` onto `mounts`; returns the digest of the uncompressed layer that containerd
    /// computed while applying it (what the image config's `diff_ids` must name).
    pub async fn apply_layer(&self, lease: &str, layer: &Descriptor, mounts: Vec<RootfsMount>) -> Result<String> {
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
            .map_err(self.status_error("apply", format!("layer {}", layer.digest)))?;
        Ok(applied.into_inner().applied.map(|d| d.digest).unwrap_or_default())
    }

    pub async fn get_image(&self, name: &str) -> Result<Option<ImageRecord>> {
        let mut images = ImagesClient::new(self.channel());
        let request = GetImageRequest { name: name.to_string() };
        match images
            .get(self.request(request, None))
            .await
            .map_err(self.status_error("get", format!("image {name}")))
        {
            Ok(response) => Ok(response.into_inner().image.and_then(ImageRecord::from_image)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list_image_records(&self) -> Result<Vec<ImageRecord>> {
        let mut images = ImagesClient::new(self.channel());
        let response = images
            .list(self.request(ListImagesRequest { filters: vec![] }, None))
            .await
            .map_err(self.status_error("list", "images"))?;
        Ok(response
            .into_inner()
            .images
            .into_iter()
            .filter_map(ImageRecord::from_image)
            .collect())
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

pub fn descriptor(media_type: &str, digest: &str, size: i64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: digest.to_string(),
        size,
        annotations: HashMap::new(),
    }
}
