//! `podctl logs`: a member's (or init container's) CRI log rendered as kubectl shows it, with
//! `--previous`, `--tail`, `--since`, `--timestamps`, `--prefix`, `-l` and `-f` across rotations and
//! restarts.

use std::io::Write;

use anyhow::{bail, Context, Result};

use super::{find, get};
use crate::cli::LogsArgs;
use crate::containerd::Client;
use crate::member::Registry;
use crate::pod::{self, Settings};

/// One log `podctl logs` prints: a container of a pod, at its current run's file.
struct LogStream {
    pod: String,
    container: String,
    path: std::path::PathBuf,
}

/// The streams asked for: one pod's (or each pod `-l` matches), its chosen container or all of
/// them (`--all-containers`: init containers that left a log, then the members).
async fn log_streams(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &LogsArgs,
) -> Result<Vec<LogStream>> {
    let views = match (&args.pod, &args.selector) {
        (Some(name), _) => vec![find(client, settings, registry, name).await?],
        (None, Some(selector)) => {
            let selector = crate::manifest::selector::Selector::parse(selector)?;
            let pods = pod::list_pods(client, settings, registry).await?;
            pods.into_iter()
                .filter(|p| selector.matches(&get::pod_labels(p)))
                .collect()
        }
        (None, None) => bail!("name a pod, or select pods with -l"),
    };
    let mut streams = Vec::new();
    for view in &views {
        let stream = |container: &str, path: std::path::PathBuf| LogStream {
            pod: view.name.clone(),
            container: container.to_string(),
            path,
        };
        if args.all_containers {
            let inits = view.pod.iter().flat_map(|p| &p.spec.init_containers);
            for init in inits.filter(|c| !c.is_sidecar()) {
                if let Some(path) = view.init_container_log(settings, &init.name) {
                    streams.push(stream(&init.name, path));
                }
            }
            for member in &view.members {
                streams.extend(member.log_path.clone().map(|path| stream(&member.name, path)));
            }
            continue;
        }
        let init_log = args
            .container
            .as_deref()
            .and_then(|name| view.init_container_log(settings, name));
        match init_log {
            Some(path) => streams.push(stream(args.container.as_deref().unwrap_or_default(), path)),
            None => {
                let member = view.member_or_default(args.container.as_deref())?;
                let path = member
                    .log_path
                    .clone()
                    .with_context(|| format!("container {} of pod {} records no log file", member.name, view.name))?;
                streams.push(stream(&member.name, path));
            }
        }
    }
    if streams.is_empty() {
        bail!(
            "no pods match {:?} in containerd namespace {}",
            args.selector.as_deref().unwrap_or_default(),
            client.namespace()
        );
    }
    Ok(streams)
}

pub(super) async fn logs(client: &Client, settings: &Settings, registry: &Registry, args: &LogsArgs) -> Result<()> {
    let streams = log_streams(client, settings, registry, args).await?;
    let since = match (args.since, args.since_time) {
        (Some(window), _) => Some(
            std::time::SystemTime::now()
                .checked_sub(window)
                .unwrap_or(std::time::UNIX_EPOCH),
        ),
        (None, at) => at,
    };
    // As kubectl: the last 10 lines of each pod a selector picks, unless --tail says otherwise.
    let tail = args.tail.or(args.selector.as_ref().map(|_| 10));
    let following = args.follow && !args.previous;
    let mut followers = Vec::new();
    for stream in streams {
        let mut path = stream.path.clone();
        if args.previous {
            let previous = crate::logs::other_run(&path, -1).filter(|p| p.exists());
            path = previous.with_context(|| {
                format!(
                    "previous terminated container \"{}\" in pod \"{}\" not found",
                    stream.container, stream.pod
                )
            })?;
        }
        // The run's rotated files first, oldest first, then the current one.
        let mut data = Vec::new();
        let mut current_len = 0;
        for file in crate::logs::rotated_files(&path) {
            match std::fs::read(&file) {
                Ok(bytes) => {
                    current_len = bytes.len();
                    data.extend(bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => current_len = 0,
                Err(e) => return Err(e).with_context(|| format!("reading log {}", file.display())),
            }
        }
        let prefix = args
            .prefix
            .then(|| format!("[pod/{}/{}] ", stream.pod, stream.container));
        let mut renderer = crate::logs::Renderer::new(args.timestamps).since(since).prefix(prefix);
        let mut rendered = Vec::with_capacity(data.len());
        let mut used = renderer.lines(&data, &mut rendered);
        // A follower keeps an unfinished last line until the rest of it is logged.
        if !following && used < data.len() {
            renderer.line(&data[used..], &mut rendered);
            used = data.len();
        }
        let mut shown = match tail {
            Some(n) => crate::logs::tail(&rendered, n),
            None => &rendered,
        };
        if let Some(limit) = args.limit_bytes {
            shown = &shown[..shown.len().min(limit)];
        }
        let mut out = std::io::stdout().lock();
        out.write_all(shown)?;
        out.flush()?;
        drop(out);
        if following {
            // Where in the current file the rendering stopped (it keeps an unfinished last line).
            let offset = (used + current_len).saturating_sub(data.len());
            followers.push(follow(path, offset as u64, renderer));
        }
    }
    // Several streams are followed together, each line whole.
    for result in futures_util::future::join_all(followers).await {
        result?;
    }
    Ok(())
}

/// `logs -f`: prints what the run's log gains, across its rotations (the rest of the file that
/// became `<n>.log.1` first), and moves on to the next run's file after a restart
/// (`<n>.log` -> `<n+1>.log`), until the log goes away with the pod.
pub(super) async fn follow(
    mut path: std::path::PathBuf,
    mut offset: u64,
    mut renderer: crate::logs::Renderer,
) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let mut pending: Vec<u8> = Vec::new();
    let mut inode = std::fs::metadata(&path).map(|m| m.ino()).ok();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let Ok(mut file) = std::fs::File::open(&path) else {
            return Ok(());
        };
        let meta = file.metadata()?;
        if inode.is_some_and(|i| i != meta.ino()) {
            // Rotated: what the old file got after our last read is in `<path>.1` now.
            let rotated = std::path::PathBuf::from(format!("{}.1", path.display()));
            if let Ok(mut old) = std::fs::File::open(&rotated) {
                if old.metadata().is_ok_and(|m| Some(m.ino()) == inode) {
                    old.seek(SeekFrom::Start(offset))?;
                    old.read_to_end(&mut pending)?;
                }
            }
            offset = 0;
        }
        inode = Some(meta.ino());
        let len = meta.len();
        let grew = len > offset;
        if grew {
            file.seek(SeekFrom::Start(offset))?;
            file.take(len - offset).read_to_end(&mut pending)?;
            offset = len;
        }
        if !pending.is_empty() {
            let mut rendered = Vec::new();
            let used = renderer.lines(&pending, &mut rendered);
            pending.drain(..used);
            let mut out = std::io::stdout().lock();
            out.write_all(&rendered)?;
            out.flush()?;
        }
        if grew {
            continue;
        }
        if let Some(next) = crate::logs::other_run(&path, 1).filter(|p| p.exists()) {
            path = next;
            offset = 0;
            inode = None;
            pending.clear();
        }
    }
}
