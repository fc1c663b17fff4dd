//! containerd's event stream, narrowed to what supervision needs: task exits and OOM kills of one
//! namespace.

use containerd_client::events::{TaskExit, TaskOom};
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::SubscribeRequest;
use prost::Message;
use tokio_stream::StreamExt;

use super::{Client, ExitStatus, Result};

/// What happened to a container's init process.
#[derive(Clone, Debug)]
pub enum TaskEvent {
    /// It exited (exec'd processes are filtered out).
    Exited { container_id: String, status: ExitStatus },
    /// The kernel's OOM killer hit the container's cgroup; the exit follows.
    OomKilled { container_id: String },
}

/// A subscription to `/tasks/exit` and `/tasks/oom`; `next` yields events until the stream breaks
/// (containerd restarted), after which the caller subscribes again and reconciles.
pub struct TaskEvents {
    inner: containerd_client::tonic::codec::Streaming<containerd_client::types::Envelope>,
}

impl TaskEvents {
    pub async fn next(&mut self) -> Option<TaskEvent> {
        while let Some(envelope) = self.inner.next().await {
            let Ok(envelope) = envelope else { return None };
            let Some(event) = envelope.event else { continue };
            match envelope.topic.as_str() {
                "/tasks/oom" => {
                    let Ok(oom) = TaskOom::decode(event.value.as_slice()) else {
                        continue;
                    };
                    return Some(TaskEvent::OomKilled {
                        container_id: oom.container_id,
                    });
                }
                _ => {
                    let Ok(exit) = TaskExit::decode(event.value.as_slice()) else {
                        continue;
                    };
                    if exit.id != exit.container_id {
                        continue; // an exec'd process, not the container's init
                    }
                    return Some(TaskEvent::Exited {
                        status: ExitStatus {
                            code: exit.exit_status,
                            exited_at: super::timestamp_secs(&exit.exited_at),
                        },
                        container_id: exit.container_id,
                    });
                }
            }
        }
        None
    }
}

impl Client {
    pub async fn subscribe_task_events(&self) -> Result<TaskEvents> {
        let mut events = EventsClient::new(self.channel());
        let namespace = self.namespace();
        // Separate filters are OR'ed by containerd.
        let request = SubscribeRequest {
            filters: vec![
                format!("namespace=={namespace},topic==\"/tasks/exit\""),
                format!("namespace=={namespace},topic==\"/tasks/oom\""),
            ],
        };
        let inner = events
            .subscribe(self.request(request, None))
            .await
            .map_err(self.status_error("subscribe", "task events"))?
            .into_inner();
        Ok(TaskEvents { inner })
    }
}
