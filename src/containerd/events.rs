//! containerd's event stream, narrowed to what supervision needs: task exits of one namespace.

use containerd_client::events::TaskExit;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::SubscribeRequest;
use prost::Message;
use tokio_stream::StreamExt;

use super::{Client, ExitStatus, Result};

/// One init-process exit (exec processes are filtered out).
#[derive(Clone, Debug)]
pub struct TaskExited {
    pub container_id: String,
    pub status: ExitStatus,
}

/// A subscription to `/tasks/exit`; `next` yields exits until the stream breaks (containerd
/// restarted), after which the caller subscribes again and reconciles.
pub struct ExitStream {
    inner: containerd_client::tonic::codec::Streaming<containerd_client::types::Envelope>,
}

impl ExitStream {
    pub async fn next(&mut self) -> Option<TaskExited> {
        while let Some(envelope) = self.inner.next().await {
            let Ok(envelope) = envelope else { return None };
            let Some(event) = envelope.event else { continue };
            let Ok(exit) = TaskExit::decode(event.value.as_slice()) else {
                continue;
            };
            if exit.id != exit.container_id {
                continue; // an exec'd process, not the container's init
            }
            return Some(TaskExited {
                status: ExitStatus {
                    code: exit.exit_status,
                    exited_at: super::timestamp_secs(&exit.exited_at),
                },
                container_id: exit.container_id,
            });
        }
        None
    }
}

impl Client {
    pub async fn subscribe_task_exits(&self) -> Result<ExitStream> {
        let mut events = EventsClient::new(self.channel());
        let request = SubscribeRequest {
            filters: vec![format!("namespace=={},topic==\"/tasks/exit\"", self.namespace())],
        };
        let inner = events
            .subscribe(self.request(request, None))
            .await
            .map_err(self.status_error("subscribe", "task exit events"))?
            .into_inner();
        Ok(ExitStream { inner })
    }
}
