//! Blobs from the registry into containerd's content store: a small one (a config) read whole,
//! a layer streamed into an ingest that survives a broken connection, resumed from where it
//! stopped, and verified by containerd (size and digest) before it is committed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::super::archive::sha256_digest;
use super::super::feed::TeeSender;
use super::super::pull_events::PullEvent;
use super::super::registry::RegistryError;
use super::super::store::Desc;
use super::super::ImageError;
use super::session::Session;
use crate::containerd::BlobWriter;

/// Tries per blob when the connection breaks; each resumes where the last stopped.
const BLOB_TRIES: usize = 3;
/// A manifest, index or config larger than this is refused (they are kilobytes in practice).
const MAX_JSON_BLOB: u64 = 8 << 20;

/// How far one stream of a blob got.
struct Streamed {
    /// Where the stored bytes end.
    offset: u64,
    /// Bytes that came over the network.
    fetched: u64,
    /// Why the stream ended before the blob did, when the connection broke.
    broken: Option<RegistryError>,
}

/// The blob is committed without this download: the unpacker reads it from the content store.
fn stored_without_stream(tee: Option<TeeSender>) {
    if let Some(mut tee) = tee {
        tee.detach();
        tee.committed();
    }
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

impl Session<'_> {
    /// A config blob, read whole (it is small) and verified.
    pub(super) async fn small_blob(&self, desc: &Desc) -> Result<Vec<u8>, ImageError> {
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

    /// Streams one blob into the content store, resuming a partial write, verified before commit.
    /// `tee`, when the layer is unpacked, gets its bytes too and hears when the blob is committed.
    pub(super) async fn fetch_blob(
        &self,
        layer: &Desc,
        labels: HashMap<String, String>,
        mut tee: Option<TeeSender>,
    ) -> Result<u64, ImageError> {
        let digest = &layer.digest;
        let size = layer.size.max(0) as u64;
        if self.client.content_exists(digest).await? {
            return Ok(self.present(digest, size, tee));
        }
        let ingest = format!("podctl-pull-{digest}");
        let started = Instant::now();
        let mut fetched = 0u64;
        let mut announced = false;
        for attempt in 1..=BLOB_TRIES {
            let Some(mut writer) = self.open_writer(&ingest, digest, layer.size).await? else {
                stored_without_stream(tee);
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
                    return Ok(self.present(digest, size, tee));
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
                let streamed = self
                    .stream_rest(&mut writer, &ingest, digest, size, offset, &mut tee)
                    .await?;
                offset = streamed.offset;
                fetched += streamed.fetched;
                if offset < size {
                    let cause = streamed
                        .broken
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
            self.commit(writer, &ingest, digest, labels.clone()).await?;
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

    /// The blob was in the content store already: nothing came over the network.
    fn present(&self, digest: &str, size: u64, tee: Option<TeeSender>) -> u64 {
        stored_without_stream(tee);
        self.progress.event(PullEvent::BlobPresent {
            digest: digest.to_string(),
            size,
        });
        0
    }

    /// Streams the blob from `offset` to its end into `writer` (and `tee`): where it stopped, the
    /// bytes that came, and why it stopped short when the connection broke.
    async fn stream_rest(
        &self,
        writer: &mut BlobWriter,
        ingest: &str,
        digest: &str,
        size: u64,
        mut offset: u64,
        tee: &mut Option<TeeSender>,
    ) -> Result<Streamed, ImageError> {
        let (mut stream, partial) = self.remote.blob(&self.reference, digest, offset).await?;
        if !partial && offset > 0 {
            // The registry ignored the range: start over.
            writer.restart().await?;
            offset = 0;
        }
        let mut fetched = 0u64;
        let mut broken = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let error = self.stream_error(digest, e);
                    if matches!(error, RegistryError::DigestMismatch { .. }) {
                        self.client.abort_blob_write(ingest).await.ok();
                        return Err(error.into());
                    }
                    broken = Some(error);
                    break;
                }
            };
            offset += chunk.len() as u64;
            fetched += chunk.len() as u64;
            if offset > size {
                self.client.abort_blob_write(ingest).await.ok();
                return Err(ImageError::Invalid {
                    image: self.name.name.clone(),
                    message: format!(
                        "blob {digest} from {} is longer than the {size} bytes its manifest gives; nothing of it was stored",
                        self.remote.url()
                    ),
                });
            }
            if let Some(tee) = tee {
                tee.send(offset - chunk.len() as u64, &chunk).await;
            }
            writer.write(&chunk).await?;
            self.progress.event(PullEvent::BlobProgress {
                digest: digest.to_string(),
                done: offset,
            });
        }
        Ok(Streamed {
            offset,
            fetched,
            broken,
        })
    }

    /// Commits the complete ingest. containerd hashes what it stored and refuses a commit whose
    /// size or digest differs from the manifest's: a blob that does not verify is never committed.
    async fn commit(
        &self,
        writer: BlobWriter,
        ingest: &str,
        digest: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), ImageError> {
        match writer.commit(labels).await {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("unexpected commit") => {
                self.client.abort_blob_write(ingest).await.ok();
                Err(self.mismatch(digest, committed_digest(&e.to_string())).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the ingest, waiting while another client writes the same blob; None once it exists.
    async fn open_writer(&self, ingest: &str, digest: &str, size: i64) -> Result<Option<BlobWriter>, ImageError> {
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
}
