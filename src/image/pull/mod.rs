//! `podctl image pull` and the pulls `create` makes: client-side, since containerd 1.6 has no
//! Transfer service. The tag is resolved at the first endpoint that answers (mirrors from
//! hosts.toml first), an index is narrowed to one platform, and the blobs stream into containerd's
//! content store under a lease — layers in parallel, each verified by size and digest before it is
//! committed, and unpacked while it streams in (see `feed` and `unpack`; its snapshot is committed
//! once the blob and the diff_id are verified). The lease is named after the
//! image and kept when a pull fails, so the next try resumes from the partial writes.
//!
//! Here: the pull from start to end (lock, resolve, fetch under the lease, the image record);
//! `host_lock` serializes pulls of one image, `resolve` finds the endpoint, `session` is what one
//! pull works with, `fetch` walks index, manifest, config and layers, `blob` moves one blob.

mod blob;
mod fetch;
mod host_lock;
mod resolve;
mod session;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::archive::sha256_digest;
use super::auth::{self, Credentials};
use super::pull_events::{Progress, PullEvent};
use super::reference::parse_name;
use super::registry::RegistryError;
use super::{ImageError, ImageKind, Platform};
use crate::containerd::Client;
use host_lock::lock;
use resolve::resolve;
pub(crate) use resolve::{endpoint_credentials, prefer_https_error};
use session::Session;

/// Layers downloaded at once by default. ctr and nerdctl use 3; 2 pulls faster here because
/// layers are unpacked in order: with fewer in flight the first layer is complete sooner and
/// unpacking overlaps more of the download (measured by bench/image-pull.py, where the pull is
/// bound by containerd's hashing on 2 cores). `--max-concurrent-downloads` changes it.
pub const PARALLEL_LAYERS: usize = 2;

#[derive(Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// hosts.toml directories, searched in order.
    pub hosts_dirs: Vec<PathBuf>,
    /// The registry itself speaks HTTP (mirrors say so in their URL).
    pub plain_http: bool,
    /// Credentials for every endpoint, instead of docker's config.
    pub user: Option<Credentials>,
    /// A pod's imagePullSecrets, tried before docker's config (as kubelet tries them before the
    /// node's credentials).
    pub pull_secrets: Vec<auth::PullSecret>,
    /// Where host-wide pull locks live (two pulls of one image run one after the other).
    pub lock_dir: Option<PathBuf>,
    /// Skip the pull when the image is present once the lock is held (a concurrent pull of the
    /// same image may have just finished).
    pub only_if_missing: bool,
    /// Layers downloaded at once (at least 1).
    pub max_concurrent_downloads: usize,
}

impl PullOptions {
    pub fn new(hosts_dirs: Vec<PathBuf>) -> PullOptions {
        PullOptions {
            platform: Platform::host(),
            hosts_dirs,
            plain_http: false,
            user: None,
            pull_secrets: Vec::new(),
            lock_dir: None,
            only_if_missing: false,
            max_concurrent_downloads: PARALLEL_LAYERS,
        }
    }
}

pub struct Pulled {
    pub name: String,
    /// The digest the name now points at (an index, or the manifest).
    pub digest: String,
    /// Bytes that came over the network.
    pub fetched: u64,
    pub kind: ImageKind,
    /// False when `only_if_missing` found the image present.
    pub pulled: bool,
}

/// Pulls `reference` into containerd and points its name at what was pulled.
pub async fn pull_image(
    client: &Client,
    reference: &str,
    options: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled, ImageError> {
    let started = Instant::now();
    let name = parse_name(reference)?;
    let _lock = match &options.lock_dir {
        Some(dir) => Some(lock(dir, &name.name).await?),
        None => None,
    };
    if options.only_if_missing {
        if let Some(record) = client.get_image(&name.name).await? {
            // Only for the kind it reports: an image that does not resolve here fails later, clearly.
            let layers = super::store::image_layers(client, &name.name)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let wasm = layers
                .iter()
                .any(|(media_type, _)| super::WASM_LAYER_MEDIA_TYPES.contains(&media_type.as_str()));
            return Ok(Pulled {
                name: name.name,
                digest: record.target.digest,
                fetched: 0,
                kind: if wasm { ImageKind::Wasm } else { ImageKind::Oci },
                pulled: false,
            });
        }
    }
    let (remote, target) = resolve(&name, options, progress).await?;
    let session = Session {
        client,
        remote: &remote,
        name: &name,
        reference: remote.reference(&name.registry, &name.repository, None, Some(&target.digest)),
        lease: format!("podctl-pull-{}", &sha256_digest(name.name.as_bytes())[7..23]),
        parallel: options.max_concurrent_downloads.max(1),
        progress,
    };
    client.ensure_lease(&session.lease, 24 * 3600).await?;
    let stored = match session.fetch(&target, &options.platform).await {
        Ok(stored) => client
            .put_image_record(&session.lease, &name.name, target.descriptor(), HashMap::new())
            .await
            .map(|()| stored)
            .map_err(ImageError::from),
        Err(e) => Err(e),
    };
    let (kind, fetched) = match stored {
        Ok(stored) => stored,
        // What a broken connection left is kept under the lease for the next try to resume;
        // after any other failure nothing of the pull is worth keeping.
        Err(e @ ImageError::Registry(RegistryError::Unreachable { .. })) => return Err(e),
        Err(e) => {
            client.delete_lease(&session.lease).await.ok();
            return Err(e);
        }
    };
    client.delete_lease(&session.lease).await?;
    progress.event(PullEvent::Done {
        image: name.name.clone(),
        digest: target.digest.clone(),
        fetched,
        elapsed: started.elapsed(),
    });
    Ok(Pulled {
        name: name.name,
        digest: target.digest.clone(),
        fetched,
        kind,
        pulled: true,
    })
}
