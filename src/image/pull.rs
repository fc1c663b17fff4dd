//! `podctl image pull` and the pulls `create` makes: client-side, since containerd 1.6 has no
//! Transfer service. The tag is resolved at the first endpoint that answers (mirrors from
//! hosts.toml first), an index is narrowed to one platform, and the blobs stream into containerd's
//! content store under a lease — layers in parallel, each verified by size and digest before it is
//! committed, and unpacked while it streams in (see `feed` and `unpack`; its snapshot is committed
//! once the blob and the diff_id are verified). The lease is named after the
//! image and kept when a pull fails, so the next try resumes from the partial writes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use oci_client::Reference;

use super::archive::{chain_ids, is_filesystem_layer, sha256_digest, ConfigRootfs};
use super::auth::{self, Credentials};
use super::feed::{self, TeeSender};
use super::hosts::{self, Scheme};
use super::progress::{Progress, PullEvent};
use super::reference::{parse_name, ImageName};
use super::registry::{RegistryError, Remote};
use super::store::{config_labels, is_index, manifest_labels, unpack_layer, Desc, Index, LayerStep, Manifest, Reach};
use super::{ImageError, ImageKind, Platform};
use crate::containerd::{Client, Descriptor};

/// Layers downloaded at once by default. ctr and nerdctl use 3; 2 pulls faster here because
/// layers are unpacked in order: with fewer in flight the first layer is complete sooner and
/// unpacking overlaps more of the download (measured by bench/image-pull.py, where the pull is
/// bound by containerd's hashing on 2 cores). `--max-concurrent-downloads` changes it.
pub const PARALLEL_LAYERS: usize = 2;
/// Tries per blob when the connection breaks; each resumes where the last stopped.
const BLOB_TRIES: usize = 3;
/// A manifest, index or config larger than this is refused (they are kilobytes in practice).
const MAX_JSON_BLOB: u64 = 8 << 20;

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

/// An exclusive host-wide lock for one image name; its file goes away with it, so no lock file
/// outlives the pulls that used it.
struct PullLock {
    path: PathBuf,
    _file: nix::fcntl::Flock<std::fs::File>,
}

impl Drop for PullLock {
    fn drop(&mut self) {
        // Removed while still held: a waiter that then gets the lock sees its file is gone and
        // takes a fresh one (below), so two holders can never coexist.
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn lock(dir: &std::path::Path, name: &str) -> Result<PullLock, ImageError> {
    use std::os::unix::fs::MetadataExt;
    let dir = dir.join("locks");
    let path = dir.join(format!("pull-{}", &sha256_digest(name.as_bytes())[7..31]));
    let io = |path: &std::path::Path, e: std::io::Error| ImageError::Invalid {
        image: name.to_string(),
        message: format!("cannot take the pull lock {}: {e}", path.display()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let locked =
            tokio::task::spawn_blocking(move || nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive))
                .await
                .map_err(|e| io(&path, std::io::Error::other(e)))?
                .map_err(|(_, errno)| io(&path, std::io::Error::from(errno)))?;
        let held = locked.metadata().map_err(|e| io(&path, e))?.ino();
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == held) {
            return Ok(PullLock { path, _file: locked });
        }
    }
}

/// A manifest or index fetched and verified: its descriptor and bytes.
struct Fetched {
    desc: Desc,
    data: bytes::Bytes,
}

impl Fetched {
    fn descriptor(&self) -> Descriptor {
        self.desc.descriptor()
    }
}

impl std::ops::Deref for Fetched {
    type Target = Desc;
    fn deref(&self) -> &Desc {
        &self.desc
    }
}

/// The first endpoint that resolves the name: the remote, what the name points at, and that
/// document's bytes.
async fn resolve(
    name: &ImageName,
    options: &PullOptions,
    progress: &dyn Progress,
) -> Result<(Remote, Fetched), ImageError> {
    let endpoints = hosts::endpoints(&name.registry, &options.hosts_dirs, options.plain_http)?;
    let mut last_error: Option<RegistryError> = None;
    for endpoint in endpoints
        .iter()
        .filter(|e| e.resolve || name.digest.is_some() && e.pull)
    {
        let credentials = endpoint_credentials(endpoint, &name.registry, options.user.as_ref(), &options.pull_secrets)?;
        for scheme in endpoint.schemes() {
            let (remote, reference) = Remote::open(name, endpoint, &credentials, scheme, false).await?;
            match remote.manifest(&reference).await {
                Ok((data, digest, media_type)) => {
                    progress.event(PullEvent::Resolved {
                        image: name.name.clone(),
                        digest: digest.clone(),
                        url: remote.url(),
                    });
                    let desc = Desc {
                        media_type,
                        size: data.len() as i64,
                        digest,
                        platform: None,
                    };
                    return Ok((remote, Fetched { desc, data }));
                }
                Err(e) => {
                    let network = e.is_unreachable();
                    // A local registry without TLS is expected to fail HTTPS first: no noise.
                    if !(network && endpoint.http_fallback && scheme == Scheme::Https) {
                        progress.event(PullEvent::EndpointFailed {
                            url: remote.url(),
                            cause: e.to_string(),
                        });
                    }
                    last_error = Some(prefer_https_error(last_error.take(), e, scheme));
                    // Plain HTTP is worth a try only where HTTPS did not connect.
                    if !network {
                        break;
                    }
                }
            }
        }
    }
    Err(last_error.map(ImageError::from).unwrap_or_else(|| ImageError::Invalid {
        image: name.name.clone(),
        message: "no endpoint in its hosts.toml may resolve tags (capabilities lack \"resolve\")".into(),
    }))
}

/// What containerd computed, from its "unexpected commit digest X, expected Y" (or size) message.
fn committed_digest(message: &str) -> String {
    message
        .split("unexpected commit digest ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .map(String::from)
        .unwrap_or_else(|| "another size or digest (computed by containerd)".into())
}

/// `--user`, else the pod's pull secrets', else docker's credentials, for the endpoint, else for
/// the registry it stands in for.
pub(crate) fn endpoint_credentials(
    endpoint: &hosts::Endpoint,
    registry: &str,
    user: Option<&Credentials>,
    pull_secrets: &[auth::PullSecret],
) -> Result<Credentials, ImageError> {
    if let Some(user) = user {
        return Ok(user.clone());
    }
    for host in [endpoint.host.as_str(), registry] {
        if let found @ Credentials::Basic { .. } = auth::lookup_in_secrets(host, pull_secrets)? {
            return Ok(found);
        }
    }
    Ok(match auth::lookup(&endpoint.host)? {
        Credentials::Anonymous => auth::lookup(registry)?,
        found => found,
    })
}

/// After HTTPS failed and the plain-HTTP fallback got an answer that is no verdict on the image
/// (an HTTPS server's "400"), the HTTPS error is the one that explains it.
pub(crate) fn prefer_https_error(https: Option<RegistryError>, error: RegistryError, scheme: Scheme) -> RegistryError {
    match (https, &error) {
        (Some(https @ RegistryError::Tls { .. }), RegistryError::Other { .. }) if scheme == Scheme::Http => https,
        _ => error,
    }
}

struct Session<'a> {
    client: &'a Client,
    remote: &'a Remote,
    name: &'a ImageName,
    /// The repository at this endpoint (blobs and manifests are fetched by digest).
    reference: Reference,
    lease: String,
    /// Layers downloaded at once.
    parallel: usize,
    progress: &'a dyn Progress,
}

impl Session<'_> {
    /// Fetches what `target` needs for `platform`, stores it, and returns the image's kind and
    /// the bytes fetched.
    async fn fetch(&self, target: &Fetched, platform: &Platform) -> Result<(ImageKind, u64), ImageError> {
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

    fn source_label(&self) -> (String, String) {
        // As containerd labels what it pulls: where the content came from (for cross-repo mounts).
        (
            format!("containerd.io/distribution.source.{}", self.name.registry),
            self.name.repository.clone(),
        )
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, data: &[u8], what: &str) -> Result<T, ImageError> {
        serde_json::from_slice(data).map_err(|e| ImageError::Invalid {
            image: self.name.name.clone(),
            message: format!(
                "its {what} from {} is not valid JSON of that kind: {e}",
                self.remote.url()
            ),
        })
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

    /// A config blob, read whole (it is small) and verified.
    async fn small_blob(&self, desc: &Desc) -> Result<Vec<u8>, ImageError> {
        if desc.size as u64 > MAX_JSON_BLOB {
            return Err(ImageError::Invalid {
                image: self.name.name.clone(),
                message: format!(
                    "its config {} claims {} bytes; podctl refuses configs over 8 MiB",
                    desc.digest, desc.size
                ),
            });
        }
        if self.client.content_exists(&desc.digest).await? {
            return Ok(self.client.read_blob(&desc.digest).await?);
        }
        let (mut stream, _) = self.remote.blob(&self.reference, &desc.digest, 0).await?;
        let mut data = Vec::with_capacity(desc.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_error(&desc.digest, e))?;
            data.extend_from_slice(&chunk);
            if data.len() as u64 > desc.size as u64 {
                break;
            }
        }
        let actual = sha256_digest(&data);
        if actual != desc.digest || data.len() as i64 != desc.size {
            return Err(RegistryError::DigestMismatch {
                image: self.name.name.clone(),
                url: self.remote.url(),
                what: "config".into(),
                expected: desc.digest.clone(),
                actual,
            }
            .into());
        }
        Ok(data)
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

    /// Streams one blob into the content store, resuming a partial write, verified before commit.
    /// `tee`, when the layer is unpacked, gets its bytes too and hears when the blob is committed.
    async fn fetch_blob(
        &self,
        layer: &Desc,
        labels: HashMap<String, String>,
        mut tee: Option<TeeSender>,
    ) -> Result<u64, ImageError> {
        let digest = &layer.digest;
        let size = layer.size.max(0) as u64;
        let stored = |tee: Option<TeeSender>| {
            if let Some(mut tee) = tee {
                tee.detach();
                tee.committed();
            }
        };
        if self.client.content_exists(digest).await? {
            stored(tee);
            self.progress.event(PullEvent::BlobPresent {
                digest: digest.clone(),
                size,
            });
            return Ok(0);
        }
        let ingest = format!("podctl-pull-{digest}");
        let started = Instant::now();
        let mut fetched = 0u64;
        let mut announced = false;
        for attempt in 1..=BLOB_TRIES {
            let Some(mut writer) = self.open_writer(&ingest, digest, layer.size).await? else {
                stored(tee);
                return Ok(fetched);
            };
            let mut offset = writer.offset();
            if offset > size {
                writer.restart().await?;
                offset = 0;
            }
            if offset == size && !announced {
                // The store holds every byte already (e.g. the blob is in another namespace);
                // if they do not verify, they are dropped and fetched again.
                if writer.commit(labels.clone()).await.is_ok() {
                    stored(tee);
                    self.progress.event(PullEvent::BlobPresent {
                        digest: digest.clone(),
                        size,
                    });
                    return Ok(0);
                }
                self.client.abort_blob_write(&ingest).await.ok();
                continue;
            }
            if !announced {
                self.progress.event(PullEvent::BlobStart {
                    digest: digest.clone(),
                    size,
                    from: offset,
                });
                announced = true;
            }
            if offset < size {
                let (mut stream, partial) = self.remote.blob(&self.reference, digest, offset).await?;
                if !partial && offset > 0 {
                    // The registry ignored the range: start over.
                    writer.restart().await?;
                    offset = 0;
                }
                let mut broken = None;
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            let error = self.stream_error(digest, e);
                            if matches!(error, RegistryError::DigestMismatch { .. }) {
                                self.client.abort_blob_write(&ingest).await.ok();
                                return Err(error.into());
                            }
                            broken = Some(error);
                            break;
                        }
                    };
                    offset += chunk.len() as u64;
                    fetched += chunk.len() as u64;
                    if offset > size {
                        self.client.abort_blob_write(&ingest).await.ok();
                        return Err(ImageError::Invalid {
                            image: self.name.name.clone(),
                            message: format!(
                                "blob {digest} from {} is longer than the {size} bytes its manifest gives; nothing of it was stored",
                                self.remote.url()
                            ),
                        });
                    }
                    if let Some(tee) = &mut tee {
                        tee.send(offset - chunk.len() as u64, &chunk).await;
                    }
                    writer.write(&chunk).await?;
                    self.progress.event(PullEvent::BlobProgress {
                        digest: digest.clone(),
                        done: offset,
                    });
                }
                if offset < size {
                    let cause = broken
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| format!("the registry sent {offset} of {size} bytes"));
                    // Store what arrived so the next try resumes after it.
                    writer.suspend().await?;
                    if attempt == BLOB_TRIES {
                        return Err(RegistryError::Unreachable {
                            image: self.name.name.clone(),
                            url: self.remote.url(),
                            cause: format!("blob {digest} broke off after {BLOB_TRIES} tries: {cause}; run the pull again to resume"),
                        }
                        .into());
                    }
                    self.progress.event(PullEvent::BlobRetry {
                        digest: digest.clone(),
                        at: offset,
                        cause,
                    });
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    continue;
                }
            }
            // containerd hashes what it stored and refuses a commit whose size or digest differs
            // from the manifest's: a blob that does not verify is never committed.
            match writer.commit(labels.clone()).await {
                Ok(()) => {}
                Err(e) if e.to_string().contains("unexpected commit") => {
                    self.client.abort_blob_write(&ingest).await.ok();
                    return Err(self.mismatch(digest, committed_digest(&e.to_string())).into());
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(tee) = tee.take() {
                tee.committed();
            }
            self.progress.event(PullEvent::BlobDone {
                digest: digest.clone(),
                size,
                fetched,
                elapsed: started.elapsed(),
            });
            return Ok(fetched);
        }
        unreachable!("the last try returns")
    }

    fn mismatch(&self, digest: &str, actual: String) -> RegistryError {
        RegistryError::DigestMismatch {
            image: self.name.name.clone(),
            url: self.remote.url(),
            what: "blob".into(),
            expected: digest.to_string(),
            actual,
        }
    }

    /// Opens the ingest, waiting while another client writes the same blob; None once it exists.
    async fn open_writer(
        &self,
        ingest: &str,
        digest: &str,
        size: i64,
    ) -> Result<Option<crate::containerd::BlobWriter>, ImageError> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match self.client.open_blob_writer(&self.lease, ingest, digest, size).await {
                Err(e) if e.is_locked() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if self.client.content_exists(digest).await? {
                        return Ok(None);
                    }
                }
                other => return Ok(other?),
            }
        }
    }

    fn stream_error(&self, digest: &str, error: std::io::Error) -> RegistryError {
        if let Some(oci_client::errors::DigestError::VerificationError { actual, .. }) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
        {
            return self.mismatch(digest, actual.clone());
        }
        self.remote.network_error(&error)
    }
}
