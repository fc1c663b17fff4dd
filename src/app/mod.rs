//! The binary's edge: turns parsed command lines into calls on the library and prints results.
//! `anyhow` lives here only; everything below returns typed errors.

mod attach;
mod cp;
mod exec;
mod format;
mod get;
mod jsonpath;
mod manifests;
mod progress;
mod system;
mod top;
mod version;
mod wait;

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::cli::{
    AgentCommand, Cli, Command, DeleteArgs, GlobalArgs, ImageCommand, LogsArgs, RegistryArgs, RuntimeCommand,
};
use crate::containerd::Client;
use crate::image::{archive, builtin};
use crate::member::Registry;
use crate::pod::{self, DeleteOptions, Settings};

pub fn run(cli: Cli) -> Result<ExitCode> {
    // The agent must enter the pod's netns before any thread exists, so it runs before the runtime.
    if let Command::Agent(AgentCommand::Run { pod_dir }) = &cli.command {
        crate::agent::daemon::run(pod_dir)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Agent(AgentCommand::Monitor { pod_dir }) = &cli.command {
        crate::agent::daemon::monitor::run(pod_dir, &crate::podctl_exe()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // One thread is plenty for a CLI and starts fastest; network namespaces are made on their own
    // short-lived std threads anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(dispatch(cli));
    // A read of our stdin (exec -i) may still block a runtime thread; it must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

/// podctl's member runtimes on this host with the handlers of the runtime config, for a new pod.
fn registry(global: &GlobalArgs) -> Result<Registry> {
    let config = crate::member::config::RuntimeConfig::load(global.runtime_config.as_deref())?;
    Ok(Registry::discover(config, &settings(global))?)
}

/// The member runtimes for pods that exist: their members' labels name them, so neither the
/// handlers nor a broken runtime config get in the way of `get` or `delete`.
fn existing(settings: &Settings) -> Registry {
    Registry::discover(Default::default(), settings).expect("no handlers to check")
}

fn settings(global: &GlobalArgs) -> Settings {
    Settings {
        state_dir: global.state_dir.clone(),
        log_dir: global.log_dir.clone(),
        cni_conf_dir: global.cni_conf_dir.clone(),
        cni_bin_dirs: global.cni_bin_dir.clone(),
        sandbox_image: global.sandbox_image.clone(),
        wasm_cache_dir: global.wasm_cache_dir.clone(),
        backoff_base: std::time::Duration::from_secs_f64(global.backoff_base.max(0.0)),
        init_wait: std::time::Duration::from_secs_f64(global.init_wait.max(0.0)),
        log_rotation: crate::logs::Rotation {
            max_bytes: global.log_max_size,
            max_files: global.log_max_files,
        },
        pull: crate::image::PullSettings {
            hosts_dirs: global.hosts_dir.clone(),
            lock_dir: global.state_dir.clone(),
            progress: progress::for_stderr(false),
        },
        plugin_dirs: global.plugin_dir.clone(),
    }
}

async fn connect(global: &GlobalArgs) -> Result<Client> {
    Ok(Client::connect(&global.address, &global.namespace).await?)
}

fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the manifest from standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read manifest {}", path.display()))
}

/// The names of the objects of a kind whose labels match.
async fn selected<T: crate::pod::config::ConfigObject>(
    client: &Client,
    selector: &crate::manifest::selector::Selector,
) -> Result<Vec<String>> {
    Ok(crate::pod::config::list_objects::<T>(client)
        .await?
        .into_iter()
        .filter(|o| selector.matches(&o.meta().labels))
        .map(|o| o.meta().name.clone())
        .collect())
}

fn is_config_map_resource(resource: &str) -> bool {
    matches!(resource, "configmap" | "configmaps" | "cm")
}

fn is_secret_resource(resource: &str) -> bool {
    matches!(resource, "secret" | "secrets")
}

fn is_runtime_class_resource(resource: &str) -> bool {
    matches!(
        resource,
        "runtimeclass" | "runtimeclasses" | "runtimeclass.node.k8s.io" | "runtimeclasses.node.k8s.io"
    )
}

/// A `.wasm` file, by name or by its `\0asm` magic.
fn is_wasm_file(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "wasm") {
        return true;
    }
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| crate::image::wasm::is_wasm_binary(&head))
}

fn is_pod_resource(resource: &str) -> bool {
    matches!(resource, "pod" | "pods" | "po")
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Create(args) => {
            if let Some(object) = args.object {
                return manifests::create_from_args(global, object).await;
            }
            // Validate every document before touching containerd: bad input must create nothing.
            let documents = manifests::load(&args.filename, args.recursive)?;
            return manifests::create(global, documents).await;
        }
        Command::Apply(args) => {
            let documents = manifests::load(&args.filename, args.recursive)?;
            return manifests::apply(global, documents, args.force).await;
        }
        Command::Get(args) if is_config_map_resource(&args.resource) => {
            let client = connect(global).await?;
            get::config_maps(&client, &args).await?;
        }
        Command::Get(args) if is_secret_resource(&args.resource) => {
            let client = connect(global).await?;
            get::secrets(&client, &args).await?;
        }
        Command::Get(args) if is_runtime_class_resource(&args.resource) => {
            let client = connect(global).await?;
            get::runtime_classes(&client, &args).await?;
        }
        Command::Get(args) => {
            if !is_pod_resource(&args.resource) {
                bail!("podctl knows pods, configmaps, secrets and runtimeclasses; try `podctl get pods`");
            }
            let client = connect(global).await?;
            let settings = settings(global);
            get::get(&client, &settings, &existing(&settings), &args).await?;
        }
        Command::Describe(args) => {
            if !is_pod_resource(&args.resource) {
                bail!(
                    "podctl knows one resource type, pods; try `podctl describe pod {}`",
                    args.name
                );
            }
            let client = connect(global).await?;
            let settings = settings(global);
            let view = find(&client, &settings, &existing(&settings), &args.name).await?;
            print!("{}", format::describe(&view));
        }
        Command::Logs(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            logs(&client, &settings, &existing(&settings), &args).await?;
        }
        Command::Delete(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            return delete(&client, &settings, &existing(&settings), &args).await;
        }
        Command::Events(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            get::events(&client, &settings, &existing(&settings), &args).await?;
        }
        Command::Version(args) => version::version(global, &args).await?,
        Command::Cp(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            cp::cp(&client, &settings, &existing(&settings), &args).await?;
        }
        Command::Top(crate::cli::TopCommand::Pod(args)) => {
            let client = connect(global).await?;
            let settings = settings(global);
            top::top(&client, &settings, &existing(&settings), &args).await?;
        }
        Command::Kube(crate::cli::KubeCommand::Generate { pod, filename }) => {
            let client = connect(global).await?;
            let settings = settings(global);
            let view = find(&client, &settings, &existing(&settings), &pod).await?;
            let text = format::kube_yaml(&view)?;
            match filename {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("pod/{pod} written to {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Completion(args) => {
            std::io::Write::write_all(&mut std::io::stdout(), &crate::cli::complete::script(args.shell))?;
        }
        Command::Man(args) => match &args.dir {
            Some(dir) => {
                for page in crate::cli::complete::write_man_pages(dir)? {
                    println!("{}", page.display());
                }
            }
            None => std::io::Write::write_all(&mut std::io::stdout(), &crate::cli::complete::man_page()?)?,
        },
        Command::CompleteNames(args) => {
            // Quiet on any failure: a <TAB> must never print errors into the command line.
            let Ok(client) = connect(global).await else {
                return Ok(ExitCode::SUCCESS);
            };
            let settings = settings(global);
            let Ok(pods) = pod::list_pods(&client, &settings, &existing(&settings)).await else {
                return Ok(ExitCode::SUCCESS);
            };
            match (args.what.as_str(), &args.pod) {
                ("members", Some(name)) => {
                    for member in pods.iter().filter(|p| &p.name == name).flat_map(|p| &p.members) {
                        println!("{}", member.name);
                    }
                }
                _ => {
                    for pod in &pods {
                        println!("{}", pod.name);
                    }
                }
            }
        }
        Command::Wait(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            wait::wait(&client, &settings, &existing(&settings), &args).await?;
        }
        Command::Exec(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            return exec::exec(&client, &settings, &existing(&settings), &args).await;
        }
        Command::Attach(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            return attach::attach(&client, &settings, &existing(&settings), &args).await;
        }
        Command::Runtime(RuntimeCommand::Ls) => {
            let registry = registry(global)?;
            let settings = settings(global);
            let mut infos = Vec::new();
            for (_, runtime) in registry.runtimes() {
                infos.push(runtime.info(&settings).await);
            }
            print!("{}", format::runtimes(&registry, &infos));
        }
        Command::System(command) => system::system(global, command).await?,
        Command::Gc(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            let found = pod::gc(&client, &settings, &existing(&settings), args.dry_run).await?;
            if found.is_empty() {
                println!("nothing to clean up");
            }
            let verb = if args.dry_run { "would remove" } else { "removed" };
            for item in found {
                println!("{verb}: {}", item.what);
            }
        }
        Command::Stop(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            for name in &args.names {
                pod::stop_pod(&client, &settings, &existing(&settings), name, args.grace_period).await?;
                println!("pod/{name} stopped");
            }
        }
        Command::Start(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            for name in &args.names {
                pod::start_pod(&client, &settings, &existing(&settings), name).await?;
                println!("pod/{name} started");
            }
        }
        Command::Restart(args) => {
            let client = connect(global).await?;
            let settings = settings(global);
            let registry = existing(&settings);
            for name in &args.names {
                pod::stop_pod(&client, &settings, &registry, name, args.grace_period).await?;
                pod::start_pod(&client, &settings, &registry, name).await?;
                println!("pod/{name} restarted");
            }
        }
        Command::Image(command) => return image(global, command).await,
        Command::Agent(command) => {
            let client = connect(global).await?;
            let settings = settings(global);
            let (name, reply) = match command {
                AgentCommand::Status { pod } => {
                    let view = find(&client, &settings, &existing(&settings), &pod).await?;
                    let dir = settings.pod_state_dir(&client, &view.sandbox_id);
                    (pod.clone(), crate::agent::client::status(&pod, &dir).await?)
                }
                AgentCommand::Restart { pod } => {
                    let view = find(&client, &settings, &existing(&settings), &pod).await?;
                    let dir = settings.pod_state_dir(&client, &view.sandbox_id);
                    (pod.clone(), crate::agent::client::restart(&pod, &dir).await?)
                }
                AgentCommand::Run { .. } | AgentCommand::Monitor { .. } => {
                    unreachable!("handled before the runtime starts")
                }
            };
            eprintln!("agent of pod {name}: pid {}", reply.pid);
            println!("{}", serde_json::to_string_pretty(&reply)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn find(client: &Client, settings: &Settings, registry: &Registry, name: &str) -> Result<pod::PodView> {
    Ok(pod::find_pod(client, settings, registry, name)
        .await?
        .ok_or_else(|| pod::PodError::NotFound {
            name: name.to_string(),
            namespace: client.namespace().to_string(),
        })?)
}

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

async fn logs(client: &Client, settings: &Settings, registry: &Registry, args: &LogsArgs) -> Result<()> {
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

async fn delete(client: &Client, settings: &Settings, registry: &Registry, args: &DeleteArgs) -> Result<ExitCode> {
    use crate::manifest::config::{ConfigMap, Secret};
    let mut names: Vec<String> = args.names.clone();
    let mut plan = manifests::to_delete(Vec::new());
    // A leading resource word names the kind (`delete configmap a b`, `delete pods -l app=web`).
    let by_query = args.selector.is_some() || args.all;
    let kind = match names.first() {
        Some(word)
            if (names.len() > 1 || by_query)
                && (is_runtime_class_resource(word)
                    || is_config_map_resource(word)
                    || is_secret_resource(word)
                    || is_pod_resource(word)) =>
        {
            Some(names.remove(0))
        }
        _ => None,
    };
    if by_query {
        if !names.is_empty() {
            bail!("name objects or select them with -l/--all, not both");
        }
        let selector = match &args.selector {
            Some(text) => crate::manifest::selector::Selector::parse(text)?,
            None => Default::default(),
        };
        names = match kind.as_deref() {
            Some(k) if is_config_map_resource(k) => {
                plan.config_maps = selected::<ConfigMap>(client, &selector).await?;
                Vec::new()
            }
            Some(k) if is_secret_resource(k) => {
                plan.secrets = selected::<Secret>(client, &selector).await?;
                Vec::new()
            }
            Some(k) if is_runtime_class_resource(k) => {
                bail!("runtimeclasses have no labels here; name them: `podctl delete runtimeclass NAME`")
            }
            _ => pod::list_pods(client, settings, registry)
                .await?
                .iter()
                .filter(|p| selector.matches(&get::pod_labels(p)))
                .map(|p| p.name.clone())
                .collect(),
        };
        if names.is_empty() && plan.config_maps.is_empty() && plan.secrets.is_empty() {
            eprintln!("No resources found in containerd namespace {}.", client.namespace());
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        match kind.as_deref() {
            Some(k) if is_runtime_class_resource(k) => plan.runtime_classes = std::mem::take(&mut names),
            Some(k) if is_config_map_resource(k) => plan.config_maps = std::mem::take(&mut names),
            Some(k) if is_secret_resource(k) => plan.secrets = std::mem::take(&mut names),
            _ => {}
        }
    }
    if !args.filename.is_empty() {
        plan = manifests::to_delete(manifests::load(&args.filename, args.recursive)?);
    }
    names.append(&mut plan.pods);
    let objects_only = names.is_empty()
        && (!plan.runtime_classes.is_empty() || !plan.config_maps.is_empty() || !plan.secrets.is_empty());
    if names.is_empty() && !objects_only {
        bail!("name the pod(s) to delete: `podctl delete NAME`, `podctl delete -f pod.yaml`, `-l app=web` or `--all`");
    }
    let options = DeleteOptions {
        grace_period: args.grace_period,
    };
    let mut failed = false;
    // Pods first (they read the objects), all at once: N pods take one grace period, not N.
    let options = &options;
    let deletes = names
        .iter()
        .map(|name| async move { (name, pod::delete_pod(client, settings, registry, name, options).await) });
    for (name, result) in futures_util::future::join_all(deletes).await {
        match result {
            Ok(()) => println!("pod \"{name}\" deleted"),
            Err(pod::PodError::NotFound { .. }) if args.ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    failed |= !manifests::delete_objects::<ConfigMap>(client, &plan.config_maps, args.ignore_not_found).await;
    failed |= !manifests::delete_objects::<Secret>(client, &plan.secrets, args.ignore_not_found).await;
    for name in &plan.runtime_classes {
        match pod::delete_runtime_class(client, name).await {
            Ok(()) => println!("runtimeclass.node.k8s.io \"{name}\" deleted"),
            Err(pod::PodError::ObjectNotFound { .. }) if args.ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn credentials(registry: &RegistryArgs) -> Result<Option<crate::image::auth::Credentials>> {
    Ok(match &registry.user {
        Some(user) => Some(crate::image::auth::Credentials::from_user_flag(user)?),
        None => None,
    })
}

async fn image(global: &GlobalArgs, command: ImageCommand) -> Result<ExitCode> {
    match command {
        ImageCommand::Pull {
            reference,
            platform,
            registry,
            max_concurrent_downloads,
            quiet,
        } => {
            let mut options = crate::image::PullOptions::new(global.hosts_dir.clone());
            options.max_concurrent_downloads = usize::from(max_concurrent_downloads);
            if let Some(platform) = &platform {
                options.platform = crate::image::Platform::parse(platform)?;
            }
            options.plain_http = registry.plain_http;
            options.user = credentials(&registry)?;
            options.lock_dir = Some(global.state_dir.clone());
            let client = connect(global).await?;
            let progress = progress::for_stderr(quiet);
            let pulled = crate::image::pull_image(&client, &reference, &options, progress.as_ref()).await?;
            if quiet {
                println!("{}", pulled.digest);
            } else {
                println!("pulled {} ({}, {})", pulled.name, pulled.digest, pulled.kind.as_str());
            }
        }
        ImageCommand::Push { reference, registry } => {
            let options = crate::image::push::PushOptions {
                hosts_dirs: global.hosts_dir.clone(),
                plain_http: registry.plain_http,
                user: credentials(&registry)?,
            };
            let client = connect(global).await?;
            let pushed = crate::image::push::push_image(&client, &reference, &options).await?;
            println!(
                "pushed {} ({}): {} blobs sent, {} already there",
                pushed.name, pushed.digest, pushed.blobs_sent, pushed.blobs_present
            );
        }
        ImageCommand::Import { file, name } if is_wasm_file(&file) => {
            let name = name.with_context(|| {
                format!(
                    "{} is a WebAssembly module: name the image with --name, e.g. --name localhost/app:1",
                    file.display()
                )
            })?;
            let module = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let artifact = crate::image::wasm::artifact(module, &name)?;
            let client = connect(global).await?;
            let info = crate::image::import_image(&client, &artifact).await?;
            println!("imported {} ({}, wasm)", info.name, info.digest);
        }
        ImageCommand::Import { file, name } => {
            let images = if file == Path::new("-") {
                archive::read_archive(std::io::stdin().lock(), name.as_deref())?
            } else {
                let reader = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
                archive::read_archive(std::io::BufReader::new(reader), name.as_deref())?
            };
            let client = connect(global).await?;
            for image in &images {
                let info = crate::image::import_image(&client, image).await?;
                println!("imported {} ({})", info.name, info.digest);
            }
        }
        ImageCommand::Tag { source, target } => {
            let client = connect(global).await?;
            let (source, target) = crate::image::store::tag_image(&client, &source, &target).await?;
            println!("tagged {source} as {target}");
        }
        ImageCommand::Ls => {
            let client = connect(global).await?;
            print!("{}", format::images(&crate::image::list_images(&client).await?));
        }
        ImageCommand::Rm { names } => {
            let client = connect(global).await?;
            for name in names {
                let name = crate::image::reference::normalize(&name);
                crate::image::store::delete_image(&client, &name).await?;
                println!("deleted {name}");
            }
        }
        ImageCommand::Export { reference, output } => {
            let normalized = crate::image::reference::normalize(&reference);
            let Some(image) = builtin::find(&normalized) else {
                let known: Vec<&str> = builtin::all().iter().map(|b| b.reference).collect();
                bail!(
                    "{reference} is not a built-in image; the built-in images are: {}",
                    known.join(", ")
                );
            };
            let file = std::fs::File::create(&output).with_context(|| format!("cannot create {}", output.display()))?;
            image.write_archive(std::io::BufWriter::new(file))?;
            println!("wrote {} to {}", image.reference, output.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
