//! The content store: blobs addressed by digest, written under a lease, read back whole.

use std::collections::HashMap;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{InfoRequest, ReadContentRequest, WriteAction, WriteContentRequest};
use tokio_stream::StreamExt;

use super::{Client, ContainerdError, Result};

/// gRPC messages stay well below containerd's 16 MiB receive limit.
const CHUNK: usize = 1 << 20;

impl Client {
    pub async fn content_exists(&self, digest: &str) -> Result<bool> {
        let mut content = ContentClient::new(self.channel());
        let request = InfoRequest {
            digest: digest.to_string(),
        };
        match content
            .info(self.request(request, None))
            .await
            .map_err(self.status_error("info", format!("blob {digest}")))
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes one blob (skipped when present) and commits it with its GC labels.
    pub async fn write_blob(
        &self,
        lease: &str,
        digest: &str,
        data: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<()> {
        if self.content_exists(digest).await? {
            return Ok(());
        }
        let reference = format!("podctl-write-{digest}");
        let total = data.len() as i64;
        let mut requests = Vec::new();
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            requests.push(WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: digest.to_string(),
                offset: (i * CHUNK) as i64,
                data: chunk.to_vec(),
                labels: HashMap::new(),
            });
        }
        requests.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            expected: digest.to_string(),
            offset: total,
            data: vec![],
            labels,
        });
        let mut content = ContentClient::new(self.channel());
        let object = format!("blob {digest}");
        let mut responses = content
            .write(self.request(tokio_stream::iter(requests), Some(lease)))
            .await
            .map_err(self.status_error("write", object.clone()))?
            .into_inner();
        while let Some(response) = responses.next().await {
            match response {
                Ok(_) => {}
                // A concurrent writer committed the same digest first: the blob is there.
                Err(status) if status.code() == containerd_client::tonic::Code::AlreadyExists => return Ok(()),
                Err(status) => return Err(self.status_error("write", object)(status)),
            }
        }
        Ok(())
    }

    pub async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut content = ContentClient::new(self.channel());
        let object = format!("blob {digest}");
        let request = ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        };
        let mut stream = content
            .read(self.request(request, None))
            .await
            .map_err(self.status_error("read", object.clone()))?
            .into_inner();
        let mut data = Vec::new();
        while let Some(part) = stream.next().await {
            let part = part.map_err(self.status_error("read", object.clone()))?;
            data.extend_from_slice(&part.data);
        }
        Ok(data)
    }

    pub async fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &str) -> Result<T> {
        let data = self.read_blob(digest).await?;
        serde_json::from_slice(&data).map_err(|e| ContainerdError::Invalid {
            object: format!("blob {digest}"),
            message: format!("not the JSON podctl expected: {e}"),
        })
    }
}
