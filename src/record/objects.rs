//! Named API objects that are not pods (RuntimeClasses today), kept in containerd itself: each
//! object is one content blob (its JSON, which names it, so two objects never share a digest)
//! labelled with its kind and name and rooted for containerd's GC. They live in the containerd
//! namespace like pods, survive containerd restarts and reboots, and the content store is
//! root-only.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::containerd::{Client, Result};

pub const LABEL_OBJECT_KIND: &str = "podctl.io/object.kind";
pub const LABEL_OBJECT_NAME: &str = "podctl.io/object.name";
/// containerd's GC keeps a blob with this label (any value) without a lease or image.
const LABEL_GC_ROOT: &str = "containerd.io/gc.root";

fn filter(kind: &str, name: Option<&str>) -> String {
    let mut filter = format!("labels.\"{LABEL_OBJECT_KIND}\"=={kind:?}");
    if let Some(name) = name {
        filter.push_str(&format!(",labels.\"{LABEL_OBJECT_NAME}\"=={name:?}"));
    }
    filter
}

/// Stores `json` as the object `kind`/`name`, replacing an earlier version; returns whether it
/// changed (false: the same bytes were stored already).
pub async fn put(client: &Client, kind: &str, name: &str, json: &[u8]) -> Result<bool> {
    let digest = format!("sha256:{:x}", Sha256::digest(json));
    let earlier = client.list_blobs(&[filter(kind, Some(name))]).await?;
    if earlier.iter().any(|blob| blob.digest == digest) && earlier.len() == 1 {
        return Ok(false);
    }
    let labels = HashMap::from([
        (LABEL_OBJECT_KIND.to_string(), kind.to_string()),
        (LABEL_OBJECT_NAME.to_string(), name.to_string()),
        (LABEL_GC_ROOT.to_string(), crate::record::now_secs().to_string()),
    ]);
    // Committed with its labels, or (already there from before) labelled again.
    client.write_blob("", &digest, json, labels.clone()).await?;
    client.set_blob_labels(&digest, labels).await?;
    for blob in earlier.iter().filter(|blob| blob.digest != digest) {
        client.delete_blob(&blob.digest).await?;
    }
    Ok(true)
}

/// The stored objects of `kind`, by name.
pub async fn list(client: &Client, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut objects = Vec::new();
    for blob in client.list_blobs(&[filter(kind, None)]).await? {
        let Some(name) = blob.labels.get(LABEL_OBJECT_NAME) else {
            continue;
        };
        objects.push((name.clone(), client.read_blob(&blob.digest).await?));
    }
    objects.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(objects)
}

pub async fn get(client: &Client, kind: &str, name: &str) -> Result<Option<Vec<u8>>> {
    match client.list_blobs(&[filter(kind, Some(name))]).await?.first() {
        Some(blob) => Ok(Some(client.read_blob(&blob.digest).await?)),
        None => Ok(None),
    }
}

/// Removes the object; false if there was none.
pub async fn delete(client: &Client, kind: &str, name: &str) -> Result<bool> {
    let blobs = client.list_blobs(&[filter(kind, Some(name))]).await?;
    for blob in &blobs {
        client.delete_blob(&blob.digest).await?;
    }
    Ok(!blobs.is_empty())
}
