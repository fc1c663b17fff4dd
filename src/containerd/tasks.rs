//! Tasks: the running processes of containers (create, start, signal, wait, delete, inspect).

use std::collections::HashMap;

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CreateTaskRequest, DeleteTaskRequest, GetRequest, KillRequest, ListTasksRequest, StartRequest, WaitRequest,
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
