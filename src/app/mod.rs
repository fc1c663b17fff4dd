//! The binary's edge: turns parsed command lines into calls on the library and prints results.
//! `anyhow` lives here only; everything below returns typed errors.

mod attach;
mod cp;
mod delete;
mod describe;
mod exec;
mod format;
mod get;
mod jsonpath;
mod kube;
mod logs;
mod manifests;
mod node;
mod progress;
mod system;
mod top;
mod version;
mod wait;
mod workload;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::cli::{AgentCommand, Cli, Command, GlobalArgs, ImageCommand, RegistryArgs, RuntimeCommand};
use crate::containerd::Client;
use crate::image::{archive, builtin};
use crate::manifest::workload::WorkloadKind;
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
    let config = crate::member::runtime_handlers::RuntimeConfig::load(global.runtime_config.as_deref())?;
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
async fn selected<T: crate::pod::config_store::ConfigObject>(
    client: &Client,
    selector: &crate::manifest::selector::Selector,
) -> Result<Vec<String>> {
    Ok(crate::pod::config_store::list_objects::<T>(client)
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

fn is_claim_resource(resource: &str) -> bool {
    matches!(resource, "persistentvolumeclaim" | "persistentvolumeclaims" | "pvc")
}

/// An object named as kubectl names it, `deployment/web` or `deployment web`: (type, name), the
/// name empty when none is given.
fn type_and_name(words: &[String]) -> (&str, &str) {
    match words {
        [one] => one.split_once('/').unwrap_or((one.as_str(), "")),
        [kind, name] => (kind.as_str(), name.as_str()),
        _ => ("", ""),
    }
}

/// A workload named as kubectl names it: `deployment/web`, or `deployment web`.
fn workload_target(words: &[String]) -> Result<(WorkloadKind, String)> {
    let (kind, name) = type_and_name(words);
    match WorkloadKind::from_resource(kind) {
        Some(kind) if !name.is_empty() => Ok((kind, name.to_string())),
        _ => bail!(
            "{:?}: name a workload as deployment/NAME (or replicaset/NAME, daemonset/NAME)",
            words.join(" ")
        ),
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Create(args) => {
            if let Some(object) = args.object {
                return manifests::create_from_args(global, object).await;
            }
            // Validate every document before touching containerd: bad input must create nothing.
            let documents = manifests::load(&args.filename, args.recursive, args.strict)?;
            manifests::create(global, documents).await
        }
        Command::Apply(args) => {
            let documents = manifests::load(&args.filename, args.recursive, args.strict)?;
            manifests::apply(global, documents, args.force).await
        }
        Command::Version(args) => version::version(global, &args).await.map(|()| ExitCode::SUCCESS),
        Command::Completion(args) => {
            std::io::Write::write_all(&mut std::io::stdout(), &crate::cli::complete::script(args.shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => {
            match &args.dir {
                Some(dir) => {
                    for page in crate::cli::complete::write_man_pages(dir)? {
                        println!("{}", page.display());
                    }
                }
                None => std::io::Write::write_all(&mut std::io::stdout(), &crate::cli::complete::man_page()?)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CompleteNames(args) => {
            // Quiet on any failure: a <TAB> must never print errors into the command line.
            if let Ok(session) = Session::open(global).await {
                complete_names(&session, &args).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runtime(RuntimeCommand::Ls) => {
            let registry = registry(global)?;
            let settings = settings(global);
            let mut infos = Vec::new();
            for (_, runtime) in registry.runtimes() {
                infos.push(runtime.info(&settings).await);
            }
            print!("{}", format::runtimes(&registry, &infos));
            Ok(ExitCode::SUCCESS)
        }
        Command::System(command) => system::system(global, command).await.map(|()| ExitCode::SUCCESS),
        Command::Scale(args) => {
            let (kind, name) = workload_target(&args.target)?;
            // New pods need the runtime config and plugins, as `create` does.
            let session = Session {
                client: connect(global).await?,
                settings: settings(global),
                registry: registry(global)?,
            };
            session.controller().scale(kind, &name, args.replicas).await?;
            println!("{}/{name} scaled", kind.resource());
            Ok(ExitCode::SUCCESS)
        }
        Command::Image(command) => image(global, command).await,
        command => {
            let session = Session::open(global).await?;
            on_pods(&session, command).await
        }
    }
}

/// What the commands on existing pods share: one containerd connection, the settings, and the
/// member runtimes of pods that exist.
struct Session {
    client: Client,
    settings: Settings,
    registry: Registry,
}

impl Session {
    async fn open(global: &GlobalArgs) -> Result<Session> {
        let settings = settings(global);
        Ok(Session {
            client: connect(global).await?,
            registry: existing(&settings),
            settings,
        })
    }

    async fn find(&self, name: &str) -> Result<pod::PodView> {
        find(&self.client, &self.settings, &self.registry, name).await
    }

    fn controller(&self) -> workload::Controller<'_> {
        workload::Controller {
            client: &self.client,
            settings: &self.settings,
            registry: &self.registry,
        }
    }
}

/// The commands that work on the pods (and objects) in containerd.
async fn on_pods(session: &Session, command: Command) -> Result<ExitCode> {
    let Session {
        client,
        settings,
        registry,
    } = session;
    match command {
        Command::Get(args) if is_config_map_resource(&args.resource) => get::config_maps(client, &args).await?,
        Command::Get(args) if is_secret_resource(&args.resource) => get::secrets(client, &args).await?,
        Command::Get(args) if is_runtime_class_resource(&args.resource) => get::runtime_classes(client, &args).await?,
        Command::Get(args) if is_claim_resource(&args.resource) => {
            workload::show::claims(&session.controller(), &args).await?
        }
        Command::Get(args) if WorkloadKind::from_resource(&args.resource).is_some() => {
            let kind = WorkloadKind::from_resource(&args.resource).expect("matched above");
            workload::show::get(&session.controller(), kind, &args).await?
        }
        Command::Get(args) => {
            if !is_pod_resource(&args.resource) {
                bail!(
                    "podctl knows pods, deployments, replicasets, daemonsets, persistentvolumeclaims, configmaps, \
                     secrets and runtimeclasses; try `podctl get pods`"
                );
            }
            get::get(client, settings, registry, &args).await?;
        }
        Command::Describe(args) => print!("{}", describe_any(session, &args).await?),
        Command::Rollout(crate::cli::RolloutCommand::Status { target, timeout }) => {
            let (kind, name) = workload_target(&target)?;
            workload::show::rollout_status(&session.controller(), kind, &name, timeout).await?;
        }
        Command::Logs(args) => logs::logs(client, settings, registry, &args).await?,
        Command::Delete(args) => return delete::delete(client, settings, registry, &args).await,
        Command::Events(args) => get::events(client, settings, registry, &args).await?,
        Command::Cp(args) => cp::cp(client, settings, registry, &args).await?,
        Command::Top(crate::cli::TopCommand::Pod(args)) => top::top(client, settings, registry, &args).await?,
        Command::Kube(crate::cli::KubeCommand::Generate(args)) => {
            let view = session.find(&args.pod).await?;
            let text = kube::generate(client, settings.pull.hosts_dirs.clone(), &view, &args).await?;
            match &args.filename {
                Some(path) => {
                    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("pod/{} written to {}", args.pod, path.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Wait(args) => wait::wait(client, settings, registry, &args).await?,
        Command::Exec(args) => return exec::exec(client, settings, registry, &args).await,
        Command::Attach(args) => return attach::attach(client, settings, registry, &args).await,
        Command::Gc(args) => {
            let found = pod::gc(client, settings, registry, args.dry_run).await?;
            if found.is_empty() {
                println!("nothing to clean up");
            }
            let verb = if args.dry_run { "would remove" } else { "removed" };
            for item in found {
                println!("{verb}: {}", item.what);
            }
        }
        Command::Stop(args) => {
            for name in &args.names {
                pod::stop_pod(client, settings, registry, name, args.grace_period).await?;
                println!("pod/{name} stopped");
            }
        }
        Command::Start(args) => {
            for name in &args.names {
                pod::start_pod(client, settings, registry, name).await?;
                println!("pod/{name} started");
            }
        }
        Command::Restart(args) => {
            for name in &args.names {
                pod::stop_pod(client, settings, registry, name, args.grace_period).await?;
                pod::start_pod(client, settings, registry, name).await?;
                println!("pod/{name} restarted");
            }
        }
        Command::Agent(command) => agent(session, command).await?,
        _ => unreachable!("dispatch handles the commands that need no session"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `podctl describe pod NAME`, `describe deployment/NAME` and the other workloads.
async fn describe_any(session: &Session, args: &crate::cli::DescribeArgs) -> Result<String> {
    let words: Vec<String> = std::iter::once(args.resource.clone())
        .chain(args.name.clone())
        .collect();
    let (resource, name) = match words.as_slice() {
        [one] => one.split_once('/').unwrap_or((one.as_str(), "")),
        [kind, name] => (kind.as_str(), name.as_str()),
        _ => ("", ""),
    };
    if name.is_empty() {
        bail!("name what to describe: `podctl describe pod NAME` or `podctl describe deployment/NAME`");
    }
    if let Some(kind) = WorkloadKind::from_resource(resource) {
        return workload::show::describe(&session.controller(), kind, name).await;
    }
    if !is_pod_resource(resource) {
        bail!("podctl describes pods, deployments, replicasets and daemonsets; try `podctl describe pod {name}`");
    }
    Ok(describe::describe(&session.find(name).await?))
}

/// `podctl agent status|restart POD`.
async fn agent(session: &Session, command: AgentCommand) -> Result<()> {
    let (AgentCommand::Status { pod } | AgentCommand::Restart { pod }) = &command else {
        unreachable!("agent run and monitor are handled before the runtime starts")
    };
    let view = session.find(pod).await?;
    let dir = session.settings.pod_state_dir(&session.client, &view.sandbox_id);
    let reply = match command {
        AgentCommand::Restart { .. } => crate::agent::client::restart(pod, &dir).await?,
        _ => crate::agent::client::status(pod, &dir).await?,
    };
    eprintln!("agent of pod {pod}: pid {}", reply.pid);
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(())
}

/// Pod names, or a pod's member names, for shell completion; nothing on any failure.
async fn complete_names(session: &Session, args: &crate::cli::CompleteNamesArgs) {
    let Ok(pods) = pod::list_pods(&session.client, &session.settings, &session.registry).await else {
        return;
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

pub(super) async fn find(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
) -> Result<pod::PodView> {
    Ok(pod::find_pod(client, settings, registry, name)
        .await?
        .ok_or_else(|| pod::PodError::NotFound {
            name: name.to_string(),
            namespace: client.namespace().to_string(),
        })?)
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
