//! What a create or a delete is about to do, written to disk before it acts, so that whatever
//! kills podctl (SIGKILL, a crash, power loss) nothing it made is left that no record names: the
//! netns, the CNI reservation and hostPort rules, the lease, the pod's directories. One file per
//! pod name in `<state dir>/<containerd namespace>/intents/` (root-only), removed when the
//! operation ends; a file whose owner is gone is an interrupted operation, which the pod's view
//! shows (STATUS `Unknown`), `podctl delete` finishes and `podctl gc` cleans up.
//!
//! Creating the file with `O_EXCL` is also the claim on the pod's name: of two creates of one
//! name, one gets it. Host ports are checked against the intents too, under a host-wide lock.
//! Stops and starts claim the name as well (one operation per pod at a time); an interrupted one
//! leaves the pod's records whole, so the next stop, start or delete simply takes it over.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_error as io, now_secs, NetworkRecord, PodError, Settings};
use crate::containerd::Client;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Delete,
    Stop,
    Start,
}

impl Op {
    fn noun(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Delete => "delete",
            Op::Stop => "stop",
            Op::Start => "start",
        }
    }

    /// Whether an interruption of this operation leaves a pod that only a delete can finish (a
    /// stop or start leaves the pod's records whole: the next stop or start goes on from them).
    pub fn leaves_a_teardown(self) -> bool {
        matches!(self, Op::Create | Op::Delete)
    }
}

/// How long calls of a podctl that was just killed may still land in containerd: containerd
/// carries an RPC on after its client is gone (a task create, a record written after the death).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The podctl process doing it: a PID and its start time, since PIDs are reused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub start_ticks: u64,
}

impl Owner {
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
        }
    }

    pub fn alive(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Intent {
    pub op: Op,
    pub pod: String,
    pub namespace: String,
    pub uid: String,
    pub sandbox_id: String,
    /// The create's lease (what it wrote before the records owned it).
    #[serde(default)]
    pub lease: Option<String>,
    /// How to tear the network down: the netns pin, the CNI config and its port mappings.
    pub network: NetworkRecord,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub owner: Owner,
    pub started_at: f64,
}

impl Intent {
    /// An intent of this process, now.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        op: Op,
        pod: &str,
        namespace: &str,
        uid: &str,
        sandbox_id: &str,
        lease: Option<String>,
        network: NetworkRecord,
        state_dir: PathBuf,
        log_dir: PathBuf,
    ) -> Intent {
        Intent {
            op,
            pod: pod.to_string(),
            namespace: namespace.to_string(),
            uid: uid.to_string(),
            sandbox_id: sandbox_id.to_string(),
            lease,
            network,
            state_dir,
            log_dir,
            owner: Owner::current(),
            started_at: now_secs(),
        }
    }

    /// Why this pod is in this state, for `get`, `describe` and errors.
    pub fn interruption(&self) -> String {
        format!(
            "its {} was interrupted (podctl pid {} is gone)",
            self.op.noun(),
            self.owner.pid
        )
    }

    /// What the interrupted operation may have left, for the user.
    pub fn leftovers(&self) -> String {
        let mut left = vec![
            format!("sandbox {}", self.sandbox_id),
            format!("netns {}", self.network.netns.display()),
            "its CNI address".to_string(),
        ];
        if !self.network.port_mappings.is_empty() {
            let ports: Vec<String> = self
                .network
                .port_mappings
                .iter()
                .map(|p| p.host_port.to_string())
                .collect();
            left.push(format!("hostPort rules ({})", ports.join(", ")));
        }
        if let Some(lease) = &self.lease {
            left.push(format!("lease {lease}"));
        }
        left.push(format!("{} and {}", self.state_dir.display(), self.log_dir.display()));
        left.join(", ")
    }
}

/// The intents of a containerd namespace.
fn dir(settings: &Settings, client: &Client) -> PathBuf {
    settings.state_dir.join(client.namespace()).join("intents")
}

fn path_of(settings: &Settings, client: &Client, pod: &str) -> PathBuf {
    dir(settings, client).join(format!("{pod}.json"))
}

/// The intent file of a running operation; [`IntentFile::done`] removes it (an operation that
/// fails leaves it, and the next delete finishes the teardown).
pub struct IntentFile {
    path: PathBuf,
    /// As written: a delete that took over an interrupted create has its lease.
    pub intent: Intent,
}

impl IntentFile {
    /// Whether this claim took over an interrupted operation whose podctl may have died so lately
    /// that its calls still land; if so, waits until they have (then look at the pod again).
    pub async fn settle(&self, ours: &Intent) -> bool {
        if self.intent.started_at == ours.started_at {
            return false;
        }
        let age = std::time::Duration::from_secs_f64((now_secs() - self.intent.started_at).max(0.0));
        match SETTLE.checked_sub(age) {
            Some(left) => {
                tokio::time::sleep(left).await;
                true
            }
            None => false,
        }
    }

    pub fn done(self) {
        let _ = std::fs::remove_file(&self.path);
        sync_dir(self.path.parent());
    }
}

fn sync_dir(dir: Option<&Path>) {
    if let Some(dir) = dir {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

fn write_synced(file: &mut std::fs::File, intent: &Intent) -> std::io::Result<()> {
    file.write_all(&serde_json::to_vec(intent).expect("intents serialize"))?;
    file.sync_all()
}

/// Claims the pod's name for `intent` and writes it durably. Another live operation on the name
/// is `Busy`; an interrupted create or delete is `Interrupted` for all but a delete, which takes
/// it over (and finishes its teardown); an interrupted stop or start is taken over by the next.
pub fn claim(settings: &Settings, client: &Client, intent: &Intent) -> Result<IntentFile, PodError> {
    let dir = dir(settings, client);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    remove_stale_temporaries(&dir);
    let path = path_of(settings, client, &intent.pod);
    // Written whole to a temporary file first, then linked into place: an intent file is never
    // seen half written, and linking fails if the name is taken (the claim).
    let temporary = write_temporary(&dir, intent)?;
    let linked = std::fs::hard_link(&temporary, &path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            sync_dir(Some(&dir));
            return Ok(IntentFile {
                path,
                intent: intent.clone(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(&path)(e)),
    }
    let existing = read(&path).ok_or_else(|| PodError::Damaged {
        pod: intent.pod.clone(),
        message: format!(
            "{} cannot be read; remove it if no podctl works on the pod",
            path.display()
        ),
    })?;
    if let Some(conflict) = conflict(&existing, intent.op) {
        return Err(conflict);
    }
    // The interrupted operation is taken over: the file becomes this one's, atomically.
    let taken = Intent {
        op: intent.op,
        owner: Owner::current(),
        lease: existing.lease.clone().or_else(|| intent.lease.clone()),
        ..existing
    };
    let temporary = write_temporary(&dir, &taken)?;
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    sync_dir(Some(&dir));
    Ok(IntentFile { path, intent: taken })
}

/// `.<pid>.<n>.tmp` in the intents directory, written and synced.
fn write_temporary(dir: &Path, intent: &Intent) -> Result<PathBuf, PodError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    write_synced(&mut file, intent).map_err(io(&path))?;
    Ok(path)
}

/// Temporary files of podctl processes that died before linking them.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Why an operation `op` cannot start while `existing` is on record (None: `op` takes the
/// interrupted operation over).
fn conflict(existing: &Intent, op: Op) -> Option<PodError> {
    if existing.owner.alive() {
        return Some(PodError::Busy {
            pod: existing.pod.clone(),
            op: existing.op.noun().into(),
            pid: existing.owner.pid,
        });
    }
    match (existing.op.leaves_a_teardown(), op) {
        (_, Op::Delete) | (false, Op::Stop | Op::Start) => None,
        (true, _) => Some(PodError::Interrupted {
            pod: existing.pod.clone(),
            what: existing.interruption(),
            left: existing.leftovers(),
        }),
        // A stop or start was interrupted: the pod is whole, so it simply exists.
        (false, _) => Some(PodError::Exists {
            name: existing.pod.clone(),
            namespace: existing.namespace.clone(),
        }),
    }
}

/// Whether a create of `pod` may start: no other operation on it is running or was interrupted.
pub fn check_free(settings: &Settings, client: &Client, pod: &str) -> Result<(), PodError> {
    match find(settings, client, pod).and_then(|existing| conflict(&existing, Op::Create)) {
        Some(conflict) => Err(conflict),
        None => Ok(()),
    }
}

fn read(path: &Path) -> Option<Intent> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Every intent on record in the namespace (live and interrupted). Temporary files that dead
/// podctl processes did not get to link go on the way.
pub fn read_all(settings: &Settings, client: &Client) -> Vec<Intent> {
    remove_stale_temporaries(&dir(settings, client));
    let Ok(entries) = std::fs::read_dir(dir(settings, client)) else {
        return Vec::new();
    };
    let mut intents: Vec<Intent> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read(&e.path()))
        .collect();
    intents.sort_by(|a, b| a.pod.cmp(&b.pod));
    intents
}

/// The intent on record for a pod, if any.
pub fn find(settings: &Settings, client: &Client, pod: &str) -> Option<Intent> {
    remove_stale_temporaries(&dir(settings, client));
    read(&path_of(settings, client, pod))
}

/// A host-wide lock around checking host ports and claiming a name, so two creates never both
/// get one port (host ports are the host's, whatever podctl's state directory).
pub struct PortLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
    _in_process: tokio::sync::MutexGuard<'static, ()>,
}

const PORT_LOCK: &str = "/run/lock/podctl-ports.lock";

/// The creates of one podctl (a Deployment's replicas) take turns before the flock: two open
/// files of one process exclude each other too, and a blocking flock would stall the runtime
/// thread that the holder needs to finish.
static IN_PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn lock_ports() -> Result<PortLock, PodError> {
    let in_process = IN_PROCESS.lock().await;
    let path = Path::new(PORT_LOCK);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| io(path)(std::io::Error::from(errno)))?;
    Ok(PortLock {
        _lock: lock,
        _in_process: in_process,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Owner::current();
        assert!(me.start_ticks > 0);
        assert!(me.alive());
        let reused = Owner {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!reused.alive());
        assert!(!Owner {
            pid: u32::MAX,
            start_ticks: 1
        }
        .alive());
    }

    fn interrupted(op: Op) -> Intent {
        let network = NetworkRecord {
            netns: "/run/netns/podctl-p-1".into(),
            network: serde_json::Value::Null,
            bin_dirs: Vec::new(),
            result: None,
            port_mappings: Vec::new(),
            host_network: false,
        };
        let mut intent = Intent::new(op, "p", "default", "u", "p-1", None, network, "/s".into(), "/l".into());
        intent.owner = Owner {
            pid: u32::MAX,
            start_ticks: 1,
        };
        intent
    }

    #[test]
    fn an_interrupted_stop_or_start_is_taken_over_and_a_create_or_delete_needs_a_delete() {
        for op in [Op::Stop, Op::Start] {
            assert!(conflict(&interrupted(op), Op::Start).is_none());
            assert!(conflict(&interrupted(op), Op::Stop).is_none());
            assert!(conflict(&interrupted(op), Op::Delete).is_none());
            assert!(matches!(
                conflict(&interrupted(op), Op::Create),
                Some(PodError::Exists { .. })
            ));
        }
        for op in [Op::Create, Op::Delete] {
            assert!(conflict(&interrupted(op), Op::Delete).is_none());
            for next in [Op::Create, Op::Stop, Op::Start] {
                let refused = conflict(&interrupted(op), next)
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(refused.contains("`podctl delete p`"), "{op:?} then {next:?}: {refused}");
            }
        }
        let live = Intent {
            owner: Owner::current(),
            ..interrupted(Op::Stop)
        };
        assert!(matches!(conflict(&live, Op::Delete), Some(PodError::Busy { .. })));
    }
}
