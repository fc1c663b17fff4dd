//! A layer's bytes on their way to podctl's applier: live from its download (a tee of what goes
//! into the content store), or read back from the content store. A download tees its layer while
//! the applier keeps up (the layer being unpacked waits for it, holding at most `TEE_BUDGET`
//! bytes). The layers not being unpacked yet share one more `TEE_BUDGET`: once it is full, a
//! layer detaches, and the applier reads the rest from the store once the blob is committed. So
//! memory stays at two budgets whatever the image, and downloads never wait for a layer further
//! down the chain.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::containerd::{Client, ContainerdError};

/// Bytes the layer being unpacked may hold for the applier before its download waits; and bytes
/// all the other layers together may hold before they detach.
pub const TEE_BUDGET: usize = 16 << 20;

enum Tee {
    Data(Bytes, OwnedSemaphorePermit),
    /// The tee stopped here: the rest is in the content store once the blob is committed.
    Detached(u64),
    End,
}

/// The download's end of a layer's tee.
pub struct TeeSender {
    index: usize,
    /// The layer being unpacked now: its download waits for the applier instead of detaching.
    head: Arc<AtomicUsize>,
    chunks: mpsc::UnboundedSender<Tee>,
    /// This layer's, used while it is the head.
    own_budget: Arc<Semaphore>,
    /// Shared by every layer that is not the head.
    shared_budget: Arc<Semaphore>,
    sent: u64,
    detached: bool,
    committed: Option<oneshot::Sender<()>>,
}

/// The applier's end of a layer's tee.
pub struct LiveLayer {
    chunks: mpsc::UnboundedReceiver<Tee>,
    budget: Arc<Semaphore>,
    committed: Option<oneshot::Receiver<()>>,
    verified: bool,
}

/// A tee for each of `layers` layers; `head` says which one is being unpacked.
pub fn tees(layers: usize, head: &Arc<AtomicUsize>) -> (Vec<TeeSender>, Vec<LiveLayer>) {
    let shared_budget = Arc::new(Semaphore::new(TEE_BUDGET));
    (0..layers)
        .map(|index| {
            let (chunks_tx, chunks) = mpsc::unbounded_channel();
            let (committed_tx, committed) = oneshot::channel();
            let budget = Arc::new(Semaphore::new(TEE_BUDGET));
            (
                TeeSender {
                    index,
                    head: head.clone(),
                    chunks: chunks_tx,
                    own_budget: budget.clone(),
                    shared_budget: shared_budget.clone(),
                    sent: 0,
                    detached: false,
                    committed: Some(committed_tx),
                },
                LiveLayer {
                    chunks,
                    budget,
                    committed: Some(committed),
                    verified: false,
                },
            )
        })
        .unzip()
}

impl TeeSender {
    /// Passes on `chunk`, which starts at `offset` of the blob. A gap (a resumed or restarted
    /// download) detaches the tee: the applier then reads the blob from the store.
    pub async fn send(&mut self, offset: u64, chunk: &Bytes) {
        if self.detached {
            return;
        }
        if offset != self.sent {
            return self.detach();
        }
        let permits = chunk.len().min(TEE_BUDGET) as u32;
        let permit = if self.head.load(Ordering::Relaxed) == self.index {
            self.own_budget.clone().acquire_many_owned(permits).await.ok()
        } else {
            self.shared_budget.clone().try_acquire_many_owned(permits).ok()
        };
        let Some(permit) = permit else { return self.detach() };
        if self.chunks.send(Tee::Data(chunk.clone(), permit)).is_err() {
            // The applier does not want this layer (it is unpacked already, or by containerd).
            self.detached = true;
            return;
        }
        self.sent += chunk.len() as u64;
    }

    pub fn detach(&mut self) {
        if !self.detached {
            self.detached = true;
            let _ = self.chunks.send(Tee::Detached(self.sent));
        }
    }

    /// The blob is committed in the content store (containerd verified its size and digest).
    pub fn committed(mut self) {
        if !self.detached {
            let _ = self.chunks.send(Tee::End);
        }
        if let Some(committed) = self.committed.take() {
            let _ = committed.send(());
        }
    }
}

impl LiveLayer {
    /// Nobody will read the tee: the download stops waiting for the applier and only stores (and
    /// what it buffered goes back to the shared budget).
    pub fn abandon(&mut self) {
        self.budget.close();
        self.chunks.close();
        while self.chunks.try_recv().is_ok() {}
    }

    /// Whether the blob got committed; false once its download failed.
    pub async fn committed(&mut self) -> bool {
        if let Some(committed) = self.committed.take() {
            self.verified = committed.await.is_ok();
        }
        self.verified
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("its download ended before the blob was stored")]
    DownloadFailed,
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
}

/// Sends the layer's bytes to the applier: live ones first, then (after a detach, or for a blob
/// already stored) the rest from the content store. Stops quietly once the applier is gone.
pub async fn feed(
    client: &Client,
    digest: &str,
    live: Option<&mut LiveLayer>,
    applier: mpsc::Sender<Bytes>,
) -> Result<(), FeedError> {
    let offset = match live {
        None => 0,
        Some(live) => match relay(live, &applier).await? {
            Relayed::All => return Ok(()),
            Relayed::Until(offset) if live.committed().await => offset,
            Relayed::Until(_) => return Err(FeedError::DownloadFailed),
        },
    };
    let mut stream = std::pin::pin!(client.read_blob_stream(digest, offset).await?);
    while let Some(part) = stream.next().await {
        if applier.send(Bytes::from(part?)).await.is_err() {
            break;
        }
    }
    Ok(())
}

enum Relayed {
    /// Everything the applier wants (the whole blob, or as much as it read before it stopped).
    All,
    /// The tee detached here: the rest is in the content store.
    Until(u64),
}

/// Passes the download's live bytes on to the applier.
async fn relay(live: &mut LiveLayer, applier: &mpsc::Sender<Bytes>) -> Result<Relayed, FeedError> {
    loop {
        match live.chunks.recv().await {
            Some(Tee::Data(chunk, permit)) => {
                let sent = applier.send(chunk).await;
                drop(permit);
                if sent.is_err() {
                    return Ok(Relayed::All);
                }
            }
            Some(Tee::Detached(at)) => return Ok(Relayed::Until(at)),
            Some(Tee::End) => return Ok(Relayed::All),
            None => return Err(FeedError::DownloadFailed),
        }
    }
}

/// The applier's (blocking) reader over the chunks `feed` sends.
pub struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    pub fn new(chunks: mpsc::Receiver<Bytes>) -> ChunkReader {
        ChunkReader {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A download that tees more than the budget while nobody reads.
    async fn download(mut tee: TeeSender, chunks: usize) {
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        for i in 0..chunks {
            tee.send((i << 20) as u64, &chunk).await;
        }
        tee.committed();
    }

    #[tokio::test]
    async fn an_abandoned_tee_never_holds_up_the_download() {
        let head = Arc::new(AtomicUsize::new(0));
        let (mut senders, mut lives) = tees(1, &head);
        let downloading = tokio::spawn(download(senders.remove(0), (TEE_BUDGET >> 20) * 2));
        tokio::task::yield_now().await;
        let live = &mut lives[0];
        live.abandon();
        let committed = tokio::time::timeout(std::time::Duration::from_secs(10), live.committed()).await;
        assert_eq!(committed.ok(), Some(true));
        downloading.await.unwrap();
    }

    #[tokio::test]
    async fn a_layer_not_yet_unpacked_detaches_at_the_budget_and_the_head_waits() {
        let head = Arc::new(AtomicUsize::new(0));
        let (mut senders, mut lives) = tees(3, &head);
        let third = senders.pop().unwrap();
        let second = senders.pop().unwrap();
        // Layer 1 is not the head: it buffers up to the budget, then detaches and goes on.
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            download(second, (TEE_BUDGET >> 20) + 4),
        )
        .await
        .expect("a layer that is not unpacked yet never waits");
        // Layer 2 finds the shared budget taken by layer 1's bytes: it detaches at once.
        download(third, 2).await;
        assert!(matches!(lives[2].chunks.recv().await, Some(Tee::Detached(0))));
        let mut buffered = 0;
        let detached_at = loop {
            match lives[1].chunks.recv().await {
                Some(Tee::Data(chunk, _)) => buffered += chunk.len(),
                Some(Tee::Detached(at)) => break at,
                _ => panic!("the tee ended without detaching"),
            }
        };
        assert_eq!((buffered, detached_at), (TEE_BUDGET, TEE_BUDGET as u64));
        // Layer 0 is the head: it waits for the applier instead of detaching.
        let first = senders.pop().unwrap();
        let downloading = tokio::spawn(download(first, (TEE_BUDGET >> 20) + 4));
        let mut received = 0;
        loop {
            match lives[0].chunks.recv().await {
                Some(Tee::Data(chunk, permit)) => {
                    received += chunk.len();
                    drop(permit);
                }
                Some(Tee::End) => break,
                Some(Tee::Detached(_)) => panic!("the head detached"),
                None => panic!("the tee closed"),
            }
        }
        assert_eq!(received, TEE_BUDGET + (4 << 20));
        downloading.await.unwrap();
    }
}
