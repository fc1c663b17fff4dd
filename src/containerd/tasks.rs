//! Tasks: the running processes of containers (create, start, signal, wait, delete, inspect).

use std::collections::HashMap;

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetRequest, KillRequest,
    ListTasksRequest, StartRequest, WaitRequest,
};
use containerd_client::types::v1::{Process, Status};
use containerd_client::types::Mount;

use super::{Client, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Unknown,
    Created,
    Running,
    Stopped,
    Paused,
    Pausing,
}

#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub pid: u32,
    pub state: TaskState,
    pub exit_status: u32,
    pub exited_at: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
pub struct ExitStatus {
    pub code: u32,
    pub exited_at: Option<f64>,
}

impl From<Process> for TaskInfo {
    fn from(p: Process) -> Self {
        let state = match Status::try_from(p.status).unwrap_or(Status::Unknown) {
            Status::Unknown => TaskState::Unknown,
            Status::Created => TaskState::Created,
            Status::Running => TaskState::Running,
            Status::Stopped => TaskState::Stopped,
            Status::Paused => TaskState::Paused,
            Status::Pausing => TaskState::Pausing,
        };
        TaskInfo {
            pid: p.pid,
            state,
            exit_status: p.exit_status,
            exited_at: super::timestamp_secs(&p.exited_at),
        }
    }
}

impl Client {
    /// Creates the task with stdout and stderr appended to `log_path` by the shim.
    pub async fn create_task(&self, id: &str, rootfs: Vec<Mount>, log_path: &str) -> Result<u32> {
        let mut tasks = TasksClient::new(self.channel());
        let log_uri = format!("file://{log_path}");
        let request = CreateTaskRequest {
            container_id: id.to_string(),
            rootfs,
            stdout: log_uri.clone(),
            stderr: log_uri,
            ..Default::default()
        };
        let response = tasks
            .create(self.request(request, None))
            .await
            .map_err(self.status_error("create", format!("task {id}")))?;
        Ok(response.into_inner().pid)
    }

    pub async fn start_task(&self, id: &str) -> Result<u32> {
        let mut tasks = TasksClient::new(self.channel());
        let request = StartRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        let response = tasks
            .start(self.request(request, None))
            .await
            .map_err(self.status_error("start", format!("task {id}")))?;
        Ok(response.into_inner().pid)
    }

    /// Signals the task's init process (or, with `all`, every process in the container).
    pub async fn kill_task(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let mut tasks = TasksClient::new(self.channel());
        let request = KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal,
            all,
        };
        match tasks
            .kill(self.request(request, None))
            .await
            .map_err(self.status_error("kill", format!("task {id}")))
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Runs `args` in the running container (its process settings, no stdio) and returns its exit
    /// code, or None when it outlived `timeout` (it is then killed). Used by exec probes.
    pub async fn exec_and_wait(&self, id: &str, args: &[String], timeout: std::time::Duration) -> Result<Option<u32>> {
        let container = self
            .get_container(id)
            .await?
            .ok_or_else(|| super::ContainerdError::NotFound {
                object: format!("container {id}"),
                namespace: self.namespace().to_string(),
            })?;
        let spec: serde_json::Value = serde_json::from_slice(&container.spec_json).unwrap_or_default();
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(args);
        process["terminal"] = serde_json::json!(false);
        let exec_id = format!("probe-{}", super::leases::random_hex(6));
        let mut tasks = TasksClient::new(self.channel());
        let request = ExecProcessRequest {
            container_id: id.to_string(),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: serde_json::to_vec(&process).expect("JSON values serialize"),
            }),
            exec_id: exec_id.clone(),
            ..Default::default()
        };
        tasks
            .exec(self.request(request, None))
            .await
            .map_err(self.status_error("exec", format!("process in {id}")))?;
        let start = StartRequest {
            container_id: id.to_string(),
            exec_id: exec_id.clone(),
        };
        let started = tasks
            .start(self.request(start, None))
            .await
            .map_err(self.status_error("start", format!("exec in {id}")));
        let code = match started {
            Err(_) => Some(127),
            Ok(_) => {
                let wait = WaitRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                };
                let mut waiter = TasksClient::new(self.channel());
                match tokio::time::timeout(timeout, waiter.wait(self.request(wait, None))).await {
                    Ok(Ok(reply)) => Some(reply.into_inner().exit_status),
                    Ok(Err(_)) => Some(1),
                    Err(_) => {
                        let kill = KillRequest {
                            container_id: id.to_string(),
                            exec_id: exec_id.clone(),
                            signal: 9,
                            all: false,
                        };
                        let _ = tasks.kill(self.request(kill, None)).await;
                        None
                    }
                }
            }
        };
        let delete = DeleteProcessRequest {
            container_id: id.to_string(),
            exec_id,
        };
        let _ = tasks.delete_process(self.request(delete, None)).await;
        Ok(code)
    }

    /// Blocks until the task exits.
    pub async fn wait_task(&self, id: &str) -> Result<ExitStatus> {
        let mut tasks = TasksClient::new(self.channel());
        let request = WaitRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        let response = tasks
            .wait(self.request(request, None))
            .await
            .map_err(self.status_error("wait", format!("task {id}")))?
            .into_inner();
        Ok(ExitStatus {
            code: response.exit_status,
            exited_at: super::timestamp_secs(&response.exited_at),
        })
    }

    /// Deletes a stopped task; a task that does not exist is fine.
    pub async fn delete_task(&self, id: &str) -> Result<Option<ExitStatus>> {
        let mut tasks = TasksClient::new(self.channel());
        let request = DeleteTaskRequest {
            container_id: id.to_string(),
        };
        match tasks
            .delete(self.request(request, None))
            .await
            .map_err(self.status_error("delete", format!("task {id}")))
        {
            Ok(response) => {
                let response = response.into_inner();
                Ok(Some(ExitStatus {
                    code: response.exit_status,
                    exited_at: super::timestamp_secs(&response.exited_at),
                }))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_task(&self, id: &str) -> Result<Option<TaskInfo>> {
        let mut tasks = TasksClient::new(self.channel());
        let request = GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        match tasks
            .get(self.request(request, None))
            .await
            .map_err(self.status_error("get", format!("task {id}")))
        {
            Ok(response) => Ok(response.into_inner().process.map(Into::into)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All tasks of the namespace by container ID: one call instead of one per container.
    pub async fn list_tasks(&self) -> Result<HashMap<String, TaskInfo>> {
        let mut tasks = TasksClient::new(self.channel());
        let response = tasks
            .list(self.request(ListTasksRequest { filter: String::new() }, None))
            .await
            .map_err(self.status_error("list", "tasks"))?;
        Ok(response
            .into_inner()
            .tasks
            .into_iter()
            // containerd fills `id` with the container ID here and may leave `container_id` empty.
            .map(|p| {
                let id = if p.container_id.is_empty() {
                    p.id.clone()
                } else {
                    p.container_id.clone()
                };
                (id, p.into())
            })
            .collect())
    }
}
