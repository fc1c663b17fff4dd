//! Tasks: the running processes of containers (create, start, signal, wait, delete, inspect).

use std::collections::HashMap;

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CloseIoRequest, CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetRequest,
    KillRequest, ListTasksRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use containerd_client::types::v1::{Process, Status};
use containerd_client::types::Mount;

use std::time::Duration;

use super::{Client, ContainerdError, Result};

pub const SIGKILL: u32 = 9;

/// Whether containerd refused a task Create because another Create of the same ID still owns the
/// bundle directory (see `Client::create_task_once`).
fn bundle_in_use(message: &str) -> bool {
    message.starts_with("failed to start shim")
        && ((message.contains("mkdir") && message.contains("file exists"))
            || message.contains("no such file or directory"))
}

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

/// Stdio of a task or an exec'd process: FIFO paths the client created or log URIs ("" = none).
#[derive(Clone, Debug, Default)]
pub struct ExecIo {
    pub stdin: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

impl ExecIo {
    /// No input; stdout and stderr both to `uri` (a log file or a log driver).
    pub fn logged_to(uri: String) -> ExecIo {
        ExecIo {
            stdin: None,
            stdout: uri.clone(),
            stderr: uri,
            terminal: false,
        }
    }
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
    /// Signal, wait up to `grace`, then SIGKILL every process of the container; delete the task.
    pub async fn stop_task(&self, id: &str, signal: u32, grace: Duration) -> Result<Option<ExitStatus>> {
        if !self.end_task(id, signal, grace).await? {
            return Ok(None);
        }
        self.delete_task(id).await
    }

    /// Signal, wait up to `grace`, then SIGKILL every process of the container; the task stays on
    /// record, stopped, with its exit status. False when there is no task.
    pub async fn end_task(&self, id: &str, signal: u32, grace: Duration) -> Result<bool> {
        let Some(task) = self.get_task(id).await? else {
            return Ok(false);
        };
        if task.state == TaskState::Stopped {
            return Ok(true);
        }
        if signal != SIGKILL && !grace.is_zero() {
            self.kill_task(id, signal, false).await?;
            if tokio::time::timeout(grace, self.wait_task(id)).await.is_ok() {
                return Ok(true);
            }
        }
        self.kill_task(id, SIGKILL, true).await?;
        tokio::time::timeout(Duration::from_secs(30), self.wait_task(id))
            .await
            .map_err(|_| ContainerdError::Timeout {
                object: format!("task {id}"),
                what: "it to exit after SIGKILL".into(),
                seconds: 30,
            })??;
        Ok(true)
    }

    /// Creates the task with its stdio where `io` says (`file://PATH` for the shim's own copy,
    /// `binary://DRIVER?ARGS` for a log driver process, FIFOs for a member with stdin or tty). The task is always a new
    /// one: a task of this ID that is still on record (one whose delete was cut short is invisible to
    /// Get but blocks Create) is killed and deleted first.
    pub async fn create_task(&self, id: &str, rootfs: Vec<Mount>, io: &ExecIo) -> Result<u32> {
        match self.create_task_once(id, rootfs.clone(), io).await {
            Err(e) if e.is_already_exists() => {
                // (A task whose process has ended refuses the kill; the delete is what counts.)
                let _ = self.kill_task(id, SIGKILL, true).await;
                self.delete_task(id).await?;
                self.create_task_once(id, rootfs, io).await
            }
            other => other,
        }
    }

    /// containerd 1.6 carries a Create on after its client is gone, and takes no lock per task ID:
    /// while the Create of a killed podctl is still making or undoing the task's bundle directory,
    /// the next Create of that ID fails (`mkdir …: file exists`, or the shim's `getwd: no such file
    /// or directory`, or `fork/exec …: no such file or directory` when the shim's working directory
    /// went). Such a Create is tried again until the earlier one has ended.
    async fn create_task_once(&self, id: &str, rootfs: Vec<Mount>, io: &ExecIo) -> Result<u32> {
        const EARLIER_CREATE_ENDS: Duration = Duration::from_secs(15);
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let mut tasks = TasksClient::new(self.channel());
            let request = CreateTaskRequest {
                container_id: id.to_string(),
                rootfs: rootfs.clone(),
                stdin: io.stdin.clone().unwrap_or_default(),
                stdout: io.stdout.clone(),
                stderr: io.stderr.clone(),
                terminal: io.terminal,
                ..Default::default()
            };
            match tasks.create(self.request(request, None)).await {
                Ok(response) => return Ok(response.into_inner().pid),
                Err(status) if bundle_in_use(status.message()) && started.elapsed() < EARLIER_CREATE_ENDS => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(status) if bundle_in_use(status.message()) => {
                    return Err(ContainerdError::Invalid {
                        object: format!("task {id}"),
                        message: format!(
                            "{}; containerd still holds this task's bundle directory after {}s, from a \
                             create that did not finish; restart containerd (it removes stale bundles at \
                             start), then try again",
                            status.message(),
                            EARLIER_CREATE_ENDS.as_secs()
                        ),
                    })
                }
                Err(status) => return Err(self.status_error("create", format!("task {id}"))(status)),
            }
        }
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

    /// Starts `args` as an extra process in the running container, with the container's process
    /// settings (user, env, cwd) and the given stdio FIFOs. Returns its PID.
    pub async fn exec_start(&self, id: &str, exec_id: &str, args: &[String], io: &ExecIo) -> Result<u32> {
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
        process["terminal"] = serde_json::json!(io.terminal);
        if io.terminal {
            if let Some(env) = process["env"].as_array_mut() {
                env.push(serde_json::json!("TERM=xterm"));
            }
        }
        let mut tasks = TasksClient::new(self.channel());
        let request = ExecProcessRequest {
            container_id: id.to_string(),
            stdin: io.stdin.clone().unwrap_or_default(),
            stdout: io.stdout.clone(),
            stderr: io.stderr.clone(),
            terminal: io.terminal,
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: serde_json::to_vec(&process).expect("JSON values serialize"),
            }),
            exec_id: exec_id.to_string(),
        };
        tasks
            .exec(self.request(request, None))
            .await
            .map_err(self.status_error("exec", format!("process in {id}")))?;
        let start = StartRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        };
        match tasks
            .start(self.request(start, None))
            .await
            .map_err(self.status_error("start", format!("{args:?} in {id}")))
        {
            Ok(reply) => Ok(reply.into_inner().pid),
            Err(e) => {
                self.delete_exec(id, exec_id).await;
                Err(e)
            }
        }
    }

    pub async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<ExitStatus> {
        let mut tasks = TasksClient::new(self.channel());
        let request = WaitRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        };
        let reply = tasks
            .wait(self.request(request, None))
            .await
            .map_err(self.status_error("wait", format!("exec {exec_id} in {id}")))?
            .into_inner();
        Ok(ExitStatus {
            code: reply.exit_status,
            exited_at: super::timestamp_secs(&reply.exited_at),
        })
    }

    pub async fn kill_exec(&self, id: &str, exec_id: &str, signal: u32) {
        let mut tasks = TasksClient::new(self.channel());
        let request = KillRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            signal,
            all: false,
        };
        let _ = tasks.kill(self.request(request, None)).await;
    }

    pub async fn resize_exec(&self, id: &str, exec_id: &str, width: u32, height: u32) {
        let mut tasks = TasksClient::new(self.channel());
        let request = ResizePtyRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            width,
            height,
        };
        let _ = tasks.resize_pty(self.request(request, None)).await;
    }

    /// Closes the process's stdin, so it sees end of input.
    pub async fn close_exec_stdin(&self, id: &str, exec_id: &str) {
        let mut tasks = TasksClient::new(self.channel());
        let request = CloseIoRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            stdin: true,
        };
        let _ = tasks.close_io(self.request(request, None)).await;
    }

    pub async fn delete_exec(&self, id: &str, exec_id: &str) {
        let mut tasks = TasksClient::new(self.channel());
        let request = DeleteProcessRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        };
        let _ = tasks.delete_process(self.request(request, None)).await;
    }

    /// Runs `args` with no stdio and returns its exit code, or None when it outlived `timeout` (it
    /// is then killed). Used by exec probes.
    pub async fn exec_and_wait(&self, id: &str, args: &[String], timeout: std::time::Duration) -> Result<Option<u32>> {
        let exec_id = format!("probe-{}", super::leases::random_hex(6));
        let io = ExecIo::default();
        if self.exec_start(id, &exec_id, args, &io).await.is_err() {
            return Ok(Some(127));
        }
        let code = match tokio::time::timeout(timeout, self.wait_exec(id, &exec_id)).await {
            Ok(Ok(status)) => Some(status.code),
            Ok(Err(_)) => Some(1),
            Err(_) => {
                self.kill_exec(id, &exec_id, 9).await;
                None
            }
        };
        self.delete_exec(id, &exec_id).await;
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

/// `SIGTERM`, `TERM` or `15` -> 15; unknown names fall back to SIGTERM.
pub fn signal_number(name: &str) -> u32 {
    let bare = name.trim().trim_start_matches("SIG");
    if let Ok(n) = bare.parse() {
        return n;
    }
    match bare {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "WINCH" => 28,
        "PWR" => 30,
        _ => 15,
    }
}

impl Client {
    /// Ends the runc shim of a task group (a pod's shim carries its sandbox's ID) that outlives its
    /// tasks: a client killed while containerd created the group's first task can leave the shim
    /// running with no task containerd knows, and nothing would ever stop it. Waits up to a
    /// second for it to exit by itself, then kills it. Only a shim of this containerd (its
    /// `-address`) with exactly this `-id` is touched. Returns whether one had to be killed.
    pub async fn end_orphaned_shim(&self, group_id: &str) -> bool {
        for _ in 0..10 {
            if self.shim_of(group_id).is_none() {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        match self.shim_of(group_id) {
            Some(pid) => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).is_ok()
            }
            None => false,
        }
    }

    fn shim_of(&self, group_id: &str) -> Option<i32> {
        let address = self.address().to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_shim = args.first().is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
            let value = |flag: &[u8]| args.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
            if is_shim && value(b"-id") == Some(group_id.as_bytes()) && value(b"-address") == Some(address.as_bytes()) {
                return Some(pid);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stop_signals_parse() {
        assert_eq!(super::signal_number("SIGTERM"), 15);
        assert_eq!(super::signal_number("QUIT"), 3);
        assert_eq!(super::signal_number("SIGRTMIN+3"), 15);
        assert_eq!(super::signal_number("9"), 9);
    }

    #[test]
    fn a_bundle_held_by_an_earlier_create_is_told_from_other_failures() {
        // What containerd 1.6 answered in tests/crash.rs.
        assert!(super::bundle_in_use(
            "failed to start shim: mkdir /run/containerd/io.containerd.runtime.v2.task/default/p-1-web: file exists"
        ));
        assert!(super::bundle_in_use(
            "failed to start shim: start failed: io.containerd.runc.v2: getwd: no such file or directory: exit status 1"
        ));
        assert!(super::bundle_in_use(
            "failed to start shim: start failed: : fork/exec /usr/bin/containerd-shim-runc-v2: no such file or directory"
        ));
        assert!(!super::bundle_in_use(
            "failed to create shim task: OCI runtime create failed: no such file or directory"
        ));
    }
}
