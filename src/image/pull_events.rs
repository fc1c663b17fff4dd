//! What a pull reports while it runs, for whoever shows it (bars on a terminal, plain lines in a
//! log, nothing with `-q`): the image layer by layer, without the pull knowing how it is shown.

use std::time::Duration;

#[derive(Debug, Clone)]
pub enum PullEvent {
    /// The tag was resolved to a manifest at this endpoint.
    Resolved { image: String, digest: String, url: String },
    /// An endpoint failed; the next one is tried.
    EndpointFailed { url: String, cause: String },
    /// A blob starts downloading (`from` > 0: resuming what an interrupted pull stored).
    BlobStart { digest: String, size: u64, from: u64 },
    /// Bytes of the blob stored so far (counting what a resumed pull had).
    BlobProgress { digest: String, done: u64 },
    /// The blob is in the content store, verified; `fetched` bytes came over the network.
    BlobDone {
        digest: String,
        size: u64,
        fetched: u64,
        elapsed: Duration,
    },
    /// The blob was in the content store already.
    BlobPresent { digest: String, size: u64 },
    /// A download broke off and starts again from where it stopped.
    BlobRetry { digest: String, at: u64, cause: String },
    /// The layer is unpacked into the snapshotter.
    Unpacked { digest: String, by: Unpacked },
    /// The image record exists.
    Done {
        image: String,
        digest: String,
        fetched: u64,
        elapsed: Duration,
    },
}

/// Who unpacked a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpacked {
    /// podctl's applier, while the layer downloaded (or from the content store).
    Podctl,
    /// containerd's diff service (a snapshot or compression podctl's applier does not take).
    Containerd,
    /// Nobody: the layer's snapshot was there already (shared with another image).
    AlreadyThere,
}

impl Unpacked {
    pub fn message(self) -> &'static str {
        match self {
            Unpacked::Podctl => "unpacked by podctl",
            Unpacked::Containerd => "unpacked by containerd",
            Unpacked::AlreadyThere => "already unpacked",
        }
    }
}

/// Receives a pull's events; implementations must be cheap (they run on the pull's task).
pub trait Progress: Send + Sync {
    fn event(&self, event: PullEvent);
}

/// Shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: PullEvent) {}
}

/// `sha256:0123456789ab` of a digest, for one line per blob.
pub fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map(|i| i + 13).unwrap_or(12).min(digest.len());
    &digest[..end]
}
