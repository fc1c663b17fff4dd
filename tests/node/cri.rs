//! A Kubernetes node without kubelet: a private containerd with its CRI plugin (the `podctl`
//! handler configured as a node would have it, the shim found on containerd's PATH), a CNI bridge
//! of this test's own, Debian's docker-registry on 127.0.0.1, and a CRI client that makes the calls
//! kubelet makes. Everything lives under one temporary directory and is stopped by PID.

#![allow(dead_code)] // shared with benches/node_cri.rs: each uses a subset

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, KeyValue, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, PullImageRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

/// The CNI network of these tests: its own bridge and subnet, so nothing is shared with a host's
/// or another test's pods.
pub const BRIDGE: &str = "pcnode0";
const SUBNET: &str = "10.93.0.0/24";

/// The directory the test binaries and the shim were built into (`target/debug`).
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

pub fn shim_binary() -> PathBuf {
    let shim = build_dir().join("containerd-shim-podctl-v1");
    assert!(
        shim.exists(),
        "{} is missing: `cargo build -p containerd-shim-podctl` (cargo test --workspace builds it)",
        shim.display()
    );
    shim
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The tests of this binary share the bridge and the subnet: one node at a time.
static ONE_NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Node {
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub registry_port: u16,
    containerd: Child,
    registry: Child,
    pub rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

fn containerd_config(dir: &Path, socket: &Path, log_level: &str) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
# At debug, the shims' own messages (libcontainer's causes among them) reach containerd's log.
[debug]
  level = "{log_level}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # Without it runc fails here with "can't get final child's PID from pipe" (see the brief).
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        sock = socket.display(),
        pause = podctl::image::builtin::PAUSE_IMAGE,
        cni_bin = if Path::new("/usr/lib/cni/bridge").exists() {
            "/usr/lib/cni"
        } else {
            "/opt/cni/bin"
        },
        cni_conf = dir.join("net.d").display(),
        certs = dir.join("certs.d").display(),
    )
}

fn write_cni(dir: &Path) {
    let conf = dir.join("net.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-podctl-node-test.conflist"),
        format!(
            r#"{{"cniVersion": "0.4.0", "name": "podctl-node-test", "plugins": [
  {{"type": "bridge", "bridge": "{BRIDGE}", "isGateway": true, "ipMasq": false,
    "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{SUBNET}"}}]], "dataDir": "{ipam}"}}}},
  {{"type": "portmap", "capabilities": {{"portMappings": true}}}}]}}"#,
            ipam = dir.join("ipam").display()
        ),
    )
    .unwrap();
}

fn start_registry(dir: &Path) -> (Child, u16) {
    assert!(
        Path::new("/usr/bin/docker-registry").exists(),
        "docker-registry is missing: scripts/setup.sh installs it"
    );
    let port = free_port();
    let reg = dir.join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    std::fs::write(
        reg.join("config.yml"),
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            reg.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(reg.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(reg.join("log")).unwrap())
        .spawn()
        .expect("docker-registry starts");
    // Plain HTTP for this registry, for podctl's pushes and containerd's pulls alike.
    let host = format!("127.0.0.1:{port}");
    let hosts = dir.join("certs.d").join(&host);
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!("server = \"http://{host}\"\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n"),
    )
    .unwrap();
    (child, port)
}

async fn connect(socket: PathBuf) -> Result<Channel, tonic::transport::Error> {
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }))
        .await
}

impl Node {
    /// A node whose containerd (and so every shim) logs at debug, for the tests' diagnostics.
    pub fn start(name: &str) -> Node {
        Node::start_with(name, "debug")
    }

    /// A node whose containerd logs at `log_level` (the bench: "info", as on a production node).
    pub fn start_with(name: &str, log_level: &str) -> Node {
        let one_at_a_time = ONE_NODE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = std::env::temp_dir().join(format!("podctl-test-node-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock");
        write_cni(&dir);
        let (registry, registry_port) = start_registry(&dir);
        let config = dir.join("config.toml");
        std::fs::write(&config, containerd_config(&dir, &socket, log_level)).unwrap();
        // As an operator makes a node: `podctl system install-node` puts the shim into
        // <root>/usr/local/bin and the `podctl` handler (and nothing else) into containerd's config.
        let node_root = dir.join("node-root");
        let install = Command::new(env!("CARGO_BIN_EXE_podctl"))
            .args(["system", "install-node", "--root"])
            .arg(&node_root)
            .arg("--containerd-config")
            .arg(&config)
            .arg("--shim")
            .arg(shim_binary())
            .output()
            .expect("podctl runs");
        let said = String::from_utf8_lossy(&install.stdout).into_owned();
        assert!(
            install.status.success(),
            "install-node: {said}{}",
            String::from_utf8_lossy(&install.stderr)
        );
        assert!(
            said.contains("kind: RuntimeClass") && said.contains("handler: podctl"),
            "{said}"
        );
        // containerd finds `containerd-shim-podctl-v1` on its PATH, as on a node.
        let path = format!(
            "{}:{}",
            node_root.join("usr/local/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let containerd = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", path)
            // The shim's AOT cache: this test's own.
            .env("PODCTL_WASM_CACHE_DIR", dir.join("wasm-cache"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd starts");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let start = Instant::now();
        let channel = loop {
            let attempt = rt.block_on(async {
                let channel = connect(socket.clone()).await.ok()?;
                let mut client = RuntimeServiceClient::new(channel.clone());
                client.version(VersionRequest::default()).await.ok()?;
                Some(channel)
            });
            if let Some(channel) = attempt {
                break channel;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "containerd's CRI did not answer; its log: {}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", registry_port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(15), "the registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Node {
            _one_at_a_time: one_at_a_time,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            dir,
            socket,
            registry_port,
            containerd,
            registry,
            rt,
        }
    }

    pub fn registry(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }

    /// podctl against this node's containerd (its own namespace), with this test's registry
    /// configuration.
    pub fn podctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_podctl"))
            .arg("--address")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.dir.join("podctl-run"))
            .arg("--log-dir")
            .arg(self.dir.join("podctl-logs"))
            .args(args)
            .env_remove("CONTAINERD_NAMESPACE")
            .env("PODCTL_HOSTS_DIR", self.dir.join("certs.d"))
            .env("DOCKER_CONFIG", self.dir.join("docker"))
            .env("PODCTL_PLUGIN_DIR", self.dir.join("plugins"))
            .stdin(Stdio::null())
            .output()
            .expect("podctl runs")
    }

    pub fn podctl_ok(&self, args: &[&str]) -> String {
        let out = self.podctl(args);
        assert!(
            out.status.success(),
            "podctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports an OCI archive into the namespace CRI uses, as a node's preloaded images are.
    pub fn ctr_import(&self, archive: &Path) {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io", "images", "import", "--all-platforms"])
            .arg(archive)
            .output()
            .expect("ctr runs");
        assert!(
            out.status.success(),
            "ctr import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Imports a built image into podctl's namespace and pushes it to this node's registry.
    pub fn push_built(&self, reference: &str, image: podctl::image::layout::OciImage) {
        let archive = self.dir.join(format!("{}.tar", reference.replace(['/', ':'], "_")));
        image.write_archive(std::fs::File::create(&archive).unwrap()).unwrap();
        self.podctl_ok(&["image", "import", archive.to_str().unwrap()]);
        self.podctl_ok(&["image", "push", reference]);
    }

    /// A `wasi/wasm` platform image (what `docker buildx build --platform wasi/wasm` makes), built
    /// here independently of podctl's own: one tar layer holding the module, `Entrypoint` naming it.
    pub fn push_wasm(&self, reference: &str, file: &str, module: &[u8]) {
        let spec = podctl::image::layout::ImageSpec {
            reference: reference.into(),
            entrypoint: vec![format!("/{file}")],
            architecture: Some("wasm".into()),
            os: Some("wasi".into()),
            ..Default::default()
        };
        let layer = [podctl::image::layout::Entry::file(file, 0o755, module.to_vec())];
        self.push_built(reference, podctl::image::layout::build_image(&spec, &layer).unwrap());
    }

    /// One of podctl's built-in images under this node's registry as `repository`; returns the
    /// full reference.
    pub fn push_builtin(&self, builtin: &str, repository: &str) -> String {
        let reference = format!("{}/{repository}", self.registry());
        let image = podctl::image::builtin::find(builtin).unwrap();
        let mut spec = image.spec();
        spec.reference = reference.clone();
        self.push_built(
            &reference,
            podctl::image::layout::build_image(&spec, &image.layer()).unwrap(),
        );
        reference
    }

    pub fn import_pause(&self) {
        let archive = self.dir.join("pause.tar");
        let pause = podctl::image::builtin::find(podctl::image::builtin::PAUSE_IMAGE).unwrap();
        pause.write_archive(std::fs::File::create(&archive).unwrap()).unwrap();
        self.ctr_import(&archive);
    }

    pub fn pull(&self, image: &str) -> Result<String, tonic::Status> {
        let mut images = self.images.clone();
        self.rt
            .block_on(images.pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .map(|r| r.into_inner().image_ref)
    }

    pub fn sandbox_config(&self, name: &str) -> PodSandboxConfig {
        let logs = self.dir.join("pod-logs").join(name);
        std::fs::create_dir_all(&logs).unwrap();
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: logs.to_string_lossy().into_owned(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn run_sandbox(&self, config: &PodSandboxConfig, handler: &str) -> Result<String, tonic::Status> {
        let mut runtime = self.runtime.clone();
        self.rt
            .block_on(runtime.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }))
            .map(|r| r.into_inner().pod_sandbox_id)
    }

    pub fn pod_ip(&self, sandbox: &str) -> String {
        let mut runtime = self.runtime.clone();
        let status = self
            .rt
            .block_on(runtime.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.into(),
                verbose: false,
            }))
            .unwrap()
            .into_inner();
        status.status.unwrap().network.unwrap().ip
    }

    /// CreateContainer then StartContainer, as kubelet does; the error of whichever failed.
    pub fn start_container(
        &self,
        sandbox: &str,
        sandbox_config: &PodSandboxConfig,
        container: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let mut runtime = self.runtime.clone();
        self.rt.block_on(async {
            let id = runtime
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: sandbox.into(),
                    config: Some(container),
                    sandbox_config: Some(sandbox_config.clone()),
                })
                .await?
                .into_inner()
                .container_id;
            runtime
                .start_container(StartContainerRequest {
                    container_id: id.clone(),
                })
                .await?;
            Ok(id)
        })
    }

    pub fn status(&self, container: &str) -> ContainerStatus {
        let mut runtime = self.runtime.clone();
        self.rt
            .block_on(runtime.container_status(ContainerStatusRequest {
                container_id: container.into(),
                verbose: false,
            }))
            .unwrap()
            .into_inner()
            .status
            .unwrap()
    }

    /// Waits until the container has exited; returns its status.
    pub fn wait_exited(&self, container: &str, timeout: Duration) -> ContainerStatus {
        let start = Instant::now();
        loop {
            let status = self.status(container);
            if status.state == ContainerState::ContainerExited as i32 {
                return status;
            }
            assert!(start.elapsed() < timeout, "{container} still runs: {status:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// StopPodSandbox then RemovePodSandbox.
    pub fn remove_sandbox(&self, sandbox: &str) {
        let mut runtime = self.runtime.clone();
        self.rt
            .block_on(async {
                runtime
                    .stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: sandbox.into(),
                    })
                    .await?;
                runtime
                    .remove_pod_sandbox(RemovePodSandboxRequest {
                        pod_sandbox_id: sandbox.into(),
                    })
                    .await
            })
            .unwrap();
    }

    /// The shim processes of this node (their command line names this test's socket).
    pub fn shims(&self) -> Vec<u32> {
        let needle = self.socket.to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.starts_with("containerd-shim") || cmdline.contains("/containerd-shim"))
                    .then_some(())
                    .filter(|_| cmdline.contains(&needle))
                    .map(|_| pid)
            })
            .collect()
    }

    /// After RemovePodSandbox: no task, no shim process, no netns, no IP reservation and no
    /// iptables rule of the sandbox is left.
    pub fn assert_nothing_left(&self, sandbox: &str) {
        let start = Instant::now();
        while !self.shims().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(self.shims().is_empty(), "shims left: {:?}", self.shims());
        let netns = self.dir.join("state/io.containerd.grpc.v1.cri/netns");
        let left: Vec<_> = std::fs::read_dir(&netns)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "netns left: {left:?}");
        let ipam: Vec<_> = crate::common::walk(&self.dir.join("ipam"))
            .into_iter()
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|c| c.contains(sandbox)))
            .collect();
        assert!(ipam.is_empty(), "IP reservations left: {ipam:?}");
        let rules = crate::common::iptables_rules();
        let rules: Vec<&str> = rules.lines().filter(|l| l.contains(&sandbox[..12])).collect();
        assert!(rules.is_empty(), "iptables rules left: {rules:?}");
        let tasks = self.tasks();
        assert!(tasks.is_empty(), "tasks left: {tasks:?}");
    }

    /// The IDs of the tasks in CRI's namespace.
    pub fn tasks(&self) -> Vec<String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io", "tasks", "ls", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
    }
}

/// A container as kubelet describes it (its log under the sandbox's log directory).
pub fn container(name: &str, image: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        log_path: format!("{name}/0.log"),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What kubelet asks for a pod without shareProcessNamespace, on the sandbox and on each
/// container: the pod's network and ipc, a pid namespace per container.
fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

pub fn with_env(mut config: ContainerConfig, env: &[(&str, &str)]) -> ContainerConfig {
    config.envs.extend(env.iter().map(|(k, v)| KeyValue {
        key: k.to_string(),
        value: v.to_string(),
    }));
    config
}

pub fn with_memory_limit(mut config: ContainerConfig, bytes: i64) -> ContainerConfig {
    config.linux.get_or_insert_default().resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: bytes,
        ..Default::default()
    });
    config
}

impl Drop for Node {
    fn drop(&mut self) {
        // Sandboxes a failed test left: stop and remove them through CRI first.
        let mut runtime = self.runtime.clone();
        let _ = self.rt.block_on(async {
            let list = runtime
                .list_pod_sandbox(k8s_cri::v1::ListPodSandboxRequest::default())
                .await?
                .into_inner();
            for sandbox in list.items {
                let _ = runtime
                    .stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: sandbox.id.clone(),
                    })
                    .await;
                let _ = runtime
                    .remove_pod_sandbox(RemovePodSandboxRequest {
                        pod_sandbox_id: sandbox.id,
                    })
                    .await;
            }
            Ok::<_, tonic::Status>(())
        });
        let pid = nix::unistd::Pid::from_raw(self.containerd.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.containerd.wait();
        for shim in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(shim as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.registry.kill();
        let _ = self.registry.wait();
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
        // Mounts containerd left under the root (a killed task's rootfs) go before the files.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.to_string_lossy().into_owned();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
        if std::env::var_os("PODCTL_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
