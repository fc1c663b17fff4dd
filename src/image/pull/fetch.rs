//! What the resolved target brings in: an index narrowed to one platform, its manifest, the
//! config, and the layers — downloaded a few at a time and unpacked in order while they stream
//! in (see `feed`) — each stored with the labels containerd's garbage collector follows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};

use super::super::archive::{chain_ids, is_filesystem_layer, ConfigRootfs};
use super::super::feed;
use super::super::pull_events::PullEvent;
use super::super::store::{
    config_labels, is_index, manifest_labels, unpack_layer, Desc, Index, LayerStep, Manifest, Reach,
};
use super::super::{ImageError, ImageKind, Platform};
use super::resolve::Fetched;
use super::session::Session;

impl Session<'_> {
    /// Fetches what `target` needs for `platform`, stores it, and returns the image's kind and
    /// the bytes fetched.
    pub(super) async fn fetch(&self, target: &Fetched, platform: &Platform) -> Result<(ImageKind, u64), ImageError> {
        let data = &target.data;
        if !is_index(&target.media_type) {
            return self.fetch_manifest(target).await;
        }
        let index: Index = self.parse(data, "index")?;
        let available: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref().map(|p| p.text()))
            .collect();
        let chosen = index
            .manifests
            .iter()
            .find(|m| m.platform.is_some() && platform.matches(m.platform.as_ref()))
            .cloned()
            .ok_or_else(|| ImageError::NoPlatform {
                image: self.name.name.clone(),
                platform: platform.to_string(),
                available: available.join(", "),
            })?;
        let (manifest_data, _, _) = self
            .remote
            .manifest(&self.reference.clone_with_digest(chosen.digest.clone()))
            .await?;
        let manifest = Fetched {
            desc: chosen.clone(),
            data: manifest_data,
        };
        let result = self.fetch_manifest(&manifest).await?;
        let labels = HashMap::from([
            ("containerd.io/gc.ref.content.m.0".to_string(), chosen.digest.clone()),
            self.source_label(),
        ]);
        self.client
            .write_blob(&self.lease, &target.digest, data, labels)
            .await?;
        Ok(result)
    }

    async fn fetch_manifest(&self, manifest: &Fetched) -> Result<(ImageKind, u64), ImageError> {
        let parsed: Manifest = self.parse(&manifest.data, "manifest")?;
        let config = self.small_blob(&parsed.config).await?;
        let unpack = !parsed.layers.is_empty() && parsed.layers.iter().all(|l| is_filesystem_layer(&l.media_type));
        let diff_ids = if unpack {
            self.parse::<ConfigRootfs>(&config, "config")?.rootfs.diff_ids
        } else {
            Vec::new()
        };
        if unpack && diff_ids.len() != parsed.layers.len() {
            return Err(ImageError::Invalid {
                image: self.name.name.clone(),
                message: format!(
                    "its config lists {} diff_ids but its manifest {} layers",
                    diff_ids.len(),
                    parsed.layers.len()
                ),
            });
        }
        let chains = chain_ids(&diff_ids);
        let fetched = self.fetch_layers(&parsed.layers, &diff_ids, &chains).await?;
        self.client
            .write_blob(
                &self.lease,
                &parsed.config.digest,
                &config,
                config_labels(chains.last()),
            )
            .await?;
        let layer_digests: Vec<&str> = parsed.layers.iter().map(|l| l.digest.as_str()).collect();
        let mut labels = manifest_labels(&parsed.config.digest, &layer_digests);
        labels.extend([self.source_label()]);
        self.client
            .write_blob(&self.lease, &manifest.digest, &manifest.data, labels)
            .await?;
        let kind = if unpack { ImageKind::Oci } else { ImageKind::Wasm };
        Ok((kind, fetched + config.len() as u64 + manifest.data.len() as u64))
    }

    /// Downloads the layers (a few at a time) while unpacking them in order, each from its
    /// download as it streams in (see `feed`).
    async fn fetch_layers(&self, layers: &[Desc], diff_ids: &[String], chains: &[String]) -> Result<u64, ImageError> {
        let head = Arc::new(AtomicUsize::new(0));
        let (tees, mut lives) = if chains.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            feed::tees(layers.len(), &head)
        };
        let tees = tees.into_iter().map(Some).chain(std::iter::repeat_with(|| None));
        let downloads = futures_util::stream::iter(layers.iter().enumerate().zip(tees))
            .map(move |((i, layer), tee)| async move {
                let labels = match diff_ids.get(i) {
                    Some(diff_id) => HashMap::from([("containerd.io/uncompressed".to_string(), diff_id.clone())]),
                    None => HashMap::new(),
                };
                self.fetch_blob(layer, labels, tee).await
            })
            .buffer_unordered(self.parallel)
            .try_fold(0u64, |total, n| async move { Ok(total + n) });
        let unpacker = async {
            let reach = Reach::default();
            for (next, live) in lives.iter_mut().enumerate() {
                head.store(next, Ordering::Relaxed);
                let parent = if next == 0 { "" } else { chains[next - 1].as_str() };
                let layer = &layers[next];
                let descriptor = layer.descriptor();
                let step = LayerStep {
                    layer: &descriptor,
                    diff_id: &diff_ids[next],
                    parent,
                    chain: &chains[next],
                };
                let by = unpack_layer(self.client, &self.lease, &self.name.name, &step, Some(live), &reach).await?;
                self.progress.event(PullEvent::Unpacked {
                    digest: layer.digest.clone(),
                    by,
                });
            }
            Ok::<(), ImageError>(())
        };
        let (fetched, ()) = tokio::try_join!(downloads, unpacker)?;
        Ok(fetched)
    }
}
