//! What one pull works with: the containerd client, the endpoint that resolved the image, the
//! lease its content is written under and where events go; `fetch` and `blob` add what it does.

use oci_client::Reference;

use super::super::pull_events::Progress;
use super::super::reference::ImageName;
use super::super::registry::{RegistryError, Remote};
use super::super::ImageError;
use crate::containerd::Client;

pub(super) struct Session<'a> {
    pub(super) client: &'a Client,
    pub(super) remote: &'a Remote,
    pub(super) name: &'a ImageName,
    /// The repository at this endpoint (blobs and manifests are fetched by digest).
    pub(super) reference: Reference,
    pub(super) lease: String,
    /// Layers downloaded at once.
    pub(super) parallel: usize,
    pub(super) progress: &'a dyn Progress,
}

impl Session<'_> {
    pub(super) fn source_label(&self) -> (String, String) {
        // As containerd labels what it pulls: where the content came from (for cross-repo mounts).
        (
            format!("containerd.io/distribution.source.{}", self.name.registry),
            self.name.repository.clone(),
        )
    }

    pub(super) fn parse<T: serde::de::DeserializeOwned>(&self, data: &[u8], what: &str) -> Result<T, ImageError> {
        serde_json::from_slice(data).map_err(|e| ImageError::Invalid {
            image: self.name.name.clone(),
            message: format!(
                "its {what} from {} is not valid JSON of that kind: {e}",
                self.remote.url()
            ),
        })
    }

    pub(super) fn mismatch(&self, digest: &str, actual: String) -> RegistryError {
        RegistryError::DigestMismatch {
            image: self.name.name.clone(),
            url: self.remote.url(),
            what: "blob".into(),
            expected: digest.to_string(),
            actual,
        }
    }

    pub(super) fn stream_error(&self, digest: &str, error: std::io::Error) -> RegistryError {
        if let Some(oci_client::errors::DigestError::VerificationError { actual, .. }) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
        {
            return self.mismatch(digest, actual.clone());
        }
        self.remote.network_error(&error)
    }
}
