//! `podctl image push`: a local image (OCI or wasm, a manifest or an index with the platforms
//! stored here) to a registry, blobs streamed from containerd's content store, manifests sent as
//! the exact bytes stored so digests stay what they are locally.

use futures_util::StreamExt;

use super::auth::Credentials;
use super::hosts::{self, Scheme};
use super::pull::{endpoint_credentials, prefer_https_error};
use super::reference::parse_name;
use super::registry::{RegistryError, Remote};
use super::store::{is_index, read_json, Desc, Index, Manifest};
use super::ImageError;
use crate::containerd::Client;

pub struct PushOptions {
    pub hosts_dirs: Vec<std::path::PathBuf>,
    pub plain_http: bool,
    pub user: Option<Credentials>,
}

pub struct Pushed {
    pub name: String,
    pub digest: String,
    pub blobs_sent: usize,
    pub blobs_present: usize,
}

/// Pushes the local image `reference` to the registry its name names.
pub async fn push_image(client: &Client, reference: &str, options: &PushOptions) -> Result<Pushed, ImageError> {
    let name = parse_name(reference)?;
    let record = client
        .get_image(&name.name)
        .await?
        .ok_or_else(|| ImageError::NotFound {
            image: name.name.clone(),
            namespace: client.namespace().to_string(),
        })?;
    let endpoints = hosts::endpoints(&name.registry, &options.hosts_dirs, options.plain_http)?;
    let endpoint = endpoints.iter().find(|e| e.push).ok_or_else(|| ImageError::Invalid {
        image: name.name.clone(),
        message: "no endpoint in its hosts.toml may be pushed to (capabilities lack \"push\")".into(),
    })?;
    let credentials = endpoint_credentials(endpoint, &name.registry, options.user.as_ref(), &[])?;
    let mut last = None;
    for scheme in endpoint.schemes() {
        let (remote, reference) = Remote::open(&name, endpoint, &credentials, scheme, true).await?;
        let mut pushed = Pushed {
            name: name.name.clone(),
            digest: record.target.digest.clone(),
            blobs_sent: 0,
            blobs_present: 0,
        };
        let target = Desc {
            media_type: record.target.media_type.clone(),
            digest: record.target.digest.clone(),
            size: record.target.size,
            platform: None,
        };
        match push_target(client, &remote, &reference, &name.name, &target, &mut pushed).await {
            Ok(()) => return Ok(pushed),
            Err(ImageError::Registry(e)) if e.is_unreachable() && scheme == Scheme::Https => last = Some(e),
            Err(ImageError::Registry(e)) => return Err(prefer_https_error(last.take(), e, scheme).into()),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("one scheme was tried").into())
}

async fn push_target(
    client: &Client,
    remote: &Remote,
    reference: &oci_client::Reference,
    image: &str,
    target: &Desc,
    pushed: &mut Pushed,
) -> Result<(), ImageError> {
    if is_index(&target.media_type) {
        let index: Index = read_json(client, image, &target.digest).await?;
        for entry in &index.manifests {
            // Only the platforms pulled or imported here can be pushed; the index names them all,
            // so a registry would refuse it unless every child is there.
            if !client.content_exists(&entry.digest).await? {
                if !remote.blob_exists(reference, &entry.digest).await.unwrap_or(false) {
                    return Err(ImageError::Invalid {
                        image: image.to_string(),
                        message: format!(
                            "its index names manifest {} ({}), which is not stored here; pull all platforms first",
                            entry.digest,
                            entry.platform.as_ref().map(|p| p.text()).unwrap_or_default()
                        ),
                    });
                }
                continue;
            }
            push_manifest_blobs(client, remote, reference, image, entry, pushed).await?;
            let at = reference.clone_with_digest(entry.digest.clone());
            send_manifest(client, remote, &at, entry).await?;
        }
    } else {
        push_manifest_blobs(client, remote, reference, image, target, pushed).await?;
    }
    let at = match reference.tag() {
        Some(_) if reference.digest().is_none() => reference.clone(),
        _ => reference.clone_with_digest(target.digest.clone()),
    };
    send_manifest(client, remote, &at, target).await
}

/// A manifest or index as stored here, sent unchanged so its digest stays what it is.
async fn send_manifest(
    client: &Client,
    remote: &Remote,
    at: &oci_client::Reference,
    desc: &Desc,
) -> Result<(), ImageError> {
    let data = client.read_blob(&desc.digest).await?;
    Ok(remote.push_manifest(at, data, &desc.media_type).await?)
}

/// The config and layers of one manifest.
async fn push_manifest_blobs(
    client: &Client,
    remote: &Remote,
    reference: &oci_client::Reference,
    image: &str,
    manifest: &Desc,
    pushed: &mut Pushed,
) -> Result<(), ImageError> {
    let parsed: Manifest = read_json(client, image, &manifest.digest).await?;
    for blob in std::iter::once(&parsed.config).chain(&parsed.layers) {
        if remote.blob_exists(reference, &blob.digest).await? {
            pushed.blobs_present += 1;
            continue;
        }
        let info = client
            .blob_info(&blob.digest)
            .await?
            .ok_or_else(|| ImageError::Invalid {
                image: image.to_string(),
                message: format!(
                    "blob {} is not in the content store (pruned?); pull or import the image again",
                    blob.digest
                ),
            })?;
        let stream = client.read_blob_stream(&blob.digest, 0).await?.map(|part| {
            part.map(bytes::Bytes::from)
                .map_err(|e| oci_client::errors::OciDistributionError::GenericError(Some(e.to_string())))
        });
        remote
            .push_blob(reference, &blob.digest, info.size as u64, stream)
            .await
            .map_err(|e: RegistryError| ImageError::from(e))?;
        pushed.blobs_sent += 1;
    }
    Ok(())
}
