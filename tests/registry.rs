//! Registries, for real: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a temporary
//! storage dir, plain, with htpasswd, and with a certificate from a CA the test makes. Push, pull,
//! multi-platform indexes, wasm artifacts, pull policies, clear failures that create nothing, a
//! tampered blob, hosts.toml mirrors and CAs, and a pull that resumes after being killed.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_layer, http, TestEnv};
use podctl::image::layout::{build_layered_image, Entry, ImageSpec, OciImage};

/// A docker-registry process of this test, stopped by PID when dropped.
struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// How the registry checks who asks.
enum Auth<'a> {
    Open,
    /// Basic auth against an htpasswd file with this user.
    Htpasswd(&'a str, &'a str),
    /// distribution's token auth: Bearer tokens from this server.
    Token(&'a TokenServer),
}

struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Registry {
    fn start(env: &TestEnv, name: &str, auth: Auth, tls: Option<&Tls>) -> Registry {
        assert!(
            Path::new("/usr/bin/docker-registry").exists(),
            "docker-registry is missing: scripts/setup.sh installs it"
        );
        let dir = env.dir.join(format!("registry-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some(tls) = tls {
            config.push_str(&format!(
                "  tls: {{certificate: {}, key: {}}}\n",
                tls.cert.display(),
                tls.key.display()
            ));
        }
        match auth {
            Auth::Open => {}
            Auth::Htpasswd(user, password) => {
                let line = run("htpasswd", &["-Bbn", user, password]);
                std::fs::write(dir.join("htpasswd"), line).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd: {{realm: podctl-test, path: {}}}\n",
                    dir.join("htpasswd").display()
                ));
            }
            Auth::Token(server) => config.push_str(&format!(
                "auth:\n  token: {{realm: 'http://127.0.0.1:{}/token', service: {TOKEN_SERVICE}, issuer: {TOKEN_ISSUER}, rootcertbundle: {}}}\n",
                server.port,
                server.cert.display()
            )),
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry { child, port, dir };
        env.wait_until(Duration::from_secs(15), "the registry to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it (openssl).
fn make_tls(dir: &Path) -> Tls {
    std::fs::create_dir_all(dir).unwrap();
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=podctl test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &p("server.pem"),
            "-extfile",
            &p("san.ext"),
        ],
    );
    Tls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// busybox plus one small file per extra layer (`/layers/<n>`), named `reference`.
fn layered_image(reference: &str, extra_layers: usize, architecture: Option<&str>) -> OciImage {
    let mut layers = vec![busybox_layer()];
    for n in 0..extra_layers {
        layers.push(vec![
            Entry::dir("layers", 0o755),
            Entry::file(
                format!("layers/{n}"),
                0o644,
                format!("layer {n} of {reference}\n").into_bytes(),
            ),
        ]);
    }
    let refs: Vec<&[Entry]> = layers.iter().map(Vec::as_slice).collect();
    let spec = ImageSpec {
        reference: reference.into(),
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        architecture: architecture.map(String::from),
        ..Default::default()
    };
    build_layered_image(&spec, &refs).unwrap()
}

/// Imports the image into the test's containerd and pushes it to the registry its name names.
fn import_and_push(env: &TestEnv, image: &OciImage, extra: &[&str]) {
    let path = env
        .dir
        .join(format!("{}.tar", image.manifest_digest().trim_start_matches("sha256:")));
    image.write_archive(std::fs::File::create(&path).unwrap()).unwrap();
    env.ok(&["image", "import", path.to_str().unwrap()]);
    let mut args = vec!["image", "push", image.name()];
    args.extend_from_slice(extra);
    let out = env.ok(&args);
    assert!(out.contains("pushed"), "{out}");
}

fn sleeper_pod(name: &str, image: &str, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!("    imagePullPolicy: {p}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: app\n    image: {image}\n{policy}    command: [sleep, '3600']\n"
    )
}

fn image_digest(env: &TestEnv, name: &str) -> Option<String> {
    env.ok(&["image", "ls"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
}

#[test]
fn push_then_pull_a_multi_layer_image_and_run_a_pod_from_it() {
    let env = require_env!("reg-pull");
    let registry = Registry::start(&env, "plain", Auth::Open, None);
    let name = format!("{}/team/app:1.4", registry.host());
    let image = layered_image(&name, 2, None);
    import_and_push(&env, &image, &[]);
    env.ok(&["image", "rm", &name]);
    assert_eq!(image_digest(&env, &name), None);

    // create pulls what is missing (tag 1.4: IfNotPresent), with line-based progress off a TTY.
    let path = env.manifest("app.yaml", &sleeper_pod("app", &name, None));
    let out = env.command(&["create", "-f", &path]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("downloading") && stderr.contains("unpacked"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains("\x1b["),
        "no terminal bars off a TTY: {stderr:?}"
    );
    env.wait_running("app");
    // Each layer's file is there, in order.
    let layers = env.ok(&["exec", "app", "--", "sh", "-c", "cat /layers/0 /layers/1"]);
    assert_eq!(layers, format!("layer 0 of {name}\nlayer 1 of {name}\n"));
    let describe = env.ok(&["describe", "pod", "app"]);
    assert!(describe.contains("Successfully pulled image"), "{describe}");
    // Recorded as ctr records pulls: ctr sees it.
    let ctr = run(
        "ctr",
        &["--address", env.socket.to_str().unwrap(), "images", "ls", "-q"],
    );
    assert!(ctr.lines().any(|l| l == name), "{ctr}");
    let ls = env.ok(&["image", "ls"]);
    let row = ls.lines().find(|l| l.starts_with(&name)).unwrap();
    assert!(row.contains("linux/amd64") && row.contains(" oci "), "{ls}");
    assert_eq!(image_digest(&env, &name).as_deref(), Some(image.manifest_digest()));
    env.delete_leaving_nothing("app");

    // A second pull finds every blob present; -q prints the digest only.
    let again = env.ok(&["image", "pull", "-q", &name]);
    assert_eq!(again.trim(), image.manifest_digest());
}

#[test]
fn a_multi_platform_index_resolves_to_the_host_or_the_asked_platform() {
    let env = require_env!("reg-index");
    let registry = Registry::start(&env, "index", Auth::Open, None);
    let host = registry.host();
    let amd64 = layered_image(&format!("{host}/multi:amd64"), 1, None);
    let arm64 = layered_image(&format!("{host}/multi:arm64"), 1, Some("arm64"));
    import_and_push(&env, &amd64, &[]);
    import_and_push(&env, &arm64, &[]);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64.manifest_digest(),
             "size": arm64.manifest_size(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64.manifest_digest(),
             "size": amd64.manifest_size(), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    });
    let index_file = env.dir.join("index.json");
    std::fs::write(&index_file, serde_json::to_vec(&index).unwrap()).unwrap();
    run(
        "curl",
        &[
            "-sSf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
            &format!("@{}", index_file.display()),
            &format!("http://{host}/v2/multi/manifests/1"),
        ],
    );
    let name = format!("{host}/multi:1");
    // The host's platform, in a namespace that has nothing yet.
    let out = env.ok(&["-n", "fresh", "image", "pull", &name]);
    assert!(out.contains("pulled"), "{out}");
    let ls = env.ok(&["-n", "fresh", "image", "ls"]);
    let row = ls.lines().find(|l| l.starts_with(&name)).unwrap().to_string();
    assert!(row.contains("linux/amd64") && !row.contains("arm64"), "{ls}");
    // The pod runs the amd64 content.
    env.ok(&[
        "-n",
        "fresh",
        "create",
        "-f",
        &env.manifest("m.yaml", &sleeper_pod("m", &name, Some("IfNotPresent"))),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = env.podctl(&["-n", "fresh", "exec", "m", "--", "sh", "-c", "cat /layers/0"]);
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("multi:amd64"));
            break;
        }
        assert!(Instant::now() < deadline, "pod m never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    env.ok(&["-n", "fresh", "delete", "m"]);
    // Another platform on request.
    env.ok(&["-n", "arm", "image", "pull", "--platform", "linux/arm64", &name]);
    let ls = env.ok(&["-n", "arm", "image", "ls"]);
    assert!(
        ls.lines().any(|l| l.starts_with(&name) && l.contains("linux/arm64/v8")),
        "{ls}"
    );
    // A platform the index lacks: a clear error naming what it has, and no record.
    let err = env.fails(&["-n", "s390", "image", "pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("no manifest for linux/s390x") && err.contains("linux/arm64/v8") && err.contains("linux/amd64"),
        "{err}"
    );
    assert!(!env.ok(&["-n", "s390", "image", "ls"]).contains(&name));
    let err = env.fails(&["image", "pull", "--platform", "linux", &name]);
    assert!(err.contains("os/architecture"), "{err}");
}

#[test]
fn a_wasm_artifact_is_pushed_pulled_and_run_as_a_member() {
    let env = require_env!("reg-wasm");
    let registry = Registry::start(&env, "wasm", Auth::Open, None);
    let greeter = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wasm-examples/greeter.wasm");
    assert!(greeter.exists(), "run wasm-examples/build.sh (scripts/test.sh does)");
    let name = format!("{}/wasm/greeter:0.1", registry.host());
    let out = env.ok(&["image", "import", greeter.to_str().unwrap(), "--name", &name]);
    assert!(out.contains("wasm"), "{out}");
    let err = env.fails(&["image", "import", greeter.to_str().unwrap()]);
    assert!(err.contains("--name"), "{err}");
    env.ok(&["image", "push", &name]);
    env.ok(&["image", "rm", &name]);
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: wg}}\nspec:\n  containers:\n  - name: greeter\n    image: {name}\n    ports: [{{containerPort: 8081, hostPort: 19481}}]\n"
    );
    env.create("wg.yaml", &yaml);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http(19481, "GET", "/hello", "") {
            Ok(answer) if answer.contains("Hello from the WASM greeter") => break,
            other => assert!(Instant::now() < deadline, "the greeter never answered: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ls = env.ok(&["image", "ls"]);
    assert!(ls.lines().any(|l| l.starts_with(&name) && l.contains(" wasm ")), "{ls}");
    let json = env.pod_json("wg");
    assert_eq!(json["status"]["containerStatuses"][0]["ready"], true, "{json}");
    env.delete_leaving_nothing("wg");
}

#[test]
fn image_pull_policies_follow_kubelet() {
    let env = require_env!("reg-policy");
    let registry = Registry::start(&env, "policy", Auth::Open, None);
    let name = format!("{}/pol:latest", registry.host());
    let v1 = layered_image(&name, 1, None);
    import_and_push(&env, &v1, &[]);
    // v2 under the same tag (its layer says so), pushed from another namespace.
    let v2 = layered_image(&name, 2, None);
    let path = env.dir.join("v2.tar");
    v2.write_archive(std::fs::File::create(&path).unwrap()).unwrap();
    env.ok(&["-n", "build", "image", "import", path.to_str().unwrap()]);
    env.ok(&["-n", "build", "image", "push", &name]);
    assert_eq!(image_digest(&env, &name).as_deref(), Some(v1.manifest_digest()));

    // IfNotPresent keeps what is here.
    env.create("a.yaml", &sleeper_pod("a", &name, Some("IfNotPresent")));
    assert_eq!(image_digest(&env, &name).as_deref(), Some(v1.manifest_digest()));
    assert!(env.ok(&["describe", "pod", "a"]).contains("already present on machine"));
    // No policy with :latest means Always: v2 is pulled.
    env.create("b.yaml", &sleeper_pod("b", &name, None));
    assert_eq!(image_digest(&env, &name).as_deref(), Some(v2.manifest_digest()));
    assert!(env.ok(&["describe", "pod", "b"]).contains("Successfully pulled image"));
    env.wait_running("b");
    let out = env.ok(&["exec", "b", "--", "sh", "-c", "ls /layers"]);
    assert_eq!(out.split_whitespace().count(), 2, "{out}");
    // Never with a missing image: a clear error and nothing made.
    let missing = format!("{}/absent:1", registry.host());
    let path = env.manifest("c.yaml", &sleeper_pod("c", &missing, Some("Never")));
    let err = env.fails(&["create", "-f", &path]);
    assert!(
        err.contains("imagePullPolicy is Never") && err.contains(&missing),
        "{err}"
    );
    // Never with the image present runs it.
    env.create("d.yaml", &sleeper_pod("d", &name, Some("Never")));
    for pod in ["a", "b", "d"] {
        env.ok(&["delete", pod]);
    }
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

#[test]
fn failed_pulls_say_why_and_create_nothing() {
    let env = require_env!("reg-errors");
    let registry = Registry::start(&env, "auth", Auth::Htpasswd("alice", "wonderland"), None);
    let tls = make_tls(&env.dir.join("tls"));
    let secure = Registry::start(&env, "tls", Auth::Open, Some(&tls));
    let name = format!("{}/private/app:1", registry.host());
    let image = layered_image(&name, 1, None);
    // Pushing needs the credentials too.
    let path = env.dir.join("private.tar");
    image.write_archive(std::fs::File::create(&path).unwrap()).unwrap();
    env.ok(&["image", "import", path.to_str().unwrap()]);
    let err = env.fails(&["image", "push", &name]);
    assert!(err.contains("refused access anonymously"), "{err}");
    env.ok(&["image", "push", "--user", "alice:wonderland", &name]);
    env.ok(&["image", "rm", &name]);

    let expect_failure = |args: &[&str], needles: &[&str]| {
        env.fails_leaving_nothing(args, needles);
        assert!(!env.ok(&["image", "ls"]).contains("private/app"));
    };
    // No credentials, a wrong password, a missing tag: each its own message.
    expect_failure(&["image", "pull", &name], &["refused access anonymously", "--user"]);
    expect_failure(
        &["image", "pull", "--user", "alice:queen", &name],
        &["refused access as alice", "docker login"],
    );
    let missing = format!("{}/private/app:9", registry.host());
    expect_failure(
        &["image", "pull", "--user", "alice:wonderland", &missing],
        &["not found", &missing],
    );
    let pod = env.manifest("p.yaml", &sleeper_pod("p", &name, None));
    expect_failure(
        &["create", "-f", &pod],
        &["container app", "refused access anonymously"],
    );
    // A pull secret the pod names gives the credentials to that pod's pulls; a missing one is a
    // warning (the pull goes on without it), as kubelet has it.
    let with_secret = |secret: &str| {
        sleeper_pod("p", &name, None).replace(
            "spec:
",
            &format!(
                "spec:
  imagePullSecrets: [{{name: {secret}}}]
"
            ),
        )
    };
    let missing_secret = env.manifest("p-missing.yaml", &with_secret("absent"));
    let err = env.fails(&["create", "-f", &missing_secret]);
    assert!(
        err.contains("secret absent not found") && err.contains("refused access anonymously"),
        "{err}"
    );
    env.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.host()),
        "--docker-username=alice",
        "--docker-password=wonderland",
    ]);
    let pulled_with_secret = env.manifest("p-secret.yaml", &with_secret("regcred"));
    env.ok(&["create", "-f", &pulled_with_secret]);
    env.wait_running("p");
    let sandbox = env.sandbox_id("p");
    env.ok(&["delete", "p", "--grace-period", "0"]);
    env.ok(&["delete", "secret", "regcred"]);
    env.ok(&["image", "rm", &name]);
    env.assert_nothing_left(&sandbox);
    // docker's config.json gives the credentials.
    let docker = env.dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_encode(b"alice:wonderland");
    std::fs::write(
        docker.join("config.json"),
        format!("{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}", registry.host()),
    )
    .unwrap();
    env.ok(&["image", "pull", &name]);
    env.ok(&["image", "rm", &name]);

    // TLS with a CA nobody trusts, then trusted through hosts.toml.
    let tls_name = format!("{}/app:1", secure.host());
    let tls_image = layered_image(&tls_name, 0, None);
    let path = env.dir.join("tls.tar");
    tls_image.write_archive(std::fs::File::create(&path).unwrap()).unwrap();
    env.ok(&["image", "import", path.to_str().unwrap()]);
    let err = env.fails(&["image", "push", &tls_name]);
    assert!(err.contains("TLS") && err.contains("ca ="), "{err}");
    let hosts = env.dir.join("certs.d").join(secure.host());
    std::fs::create_dir_all(&hosts).unwrap();
    let trust_ca = || {
        std::fs::write(
            hosts.join("hosts.toml"),
            format!(
                "server = \"https://{}\"\nca = \"{}\"\n",
                secure.host(),
                tls.ca.display()
            ),
        )
        .unwrap()
    };
    trust_ca();
    env.ok(&["image", "push", &tls_name]);
    env.ok(&["image", "rm", &tls_name]);
    std::fs::remove_file(hosts.join("hosts.toml")).unwrap();
    expect_failure(&["image", "pull", &tls_name], &["TLS", "ca ="]);
    trust_ca();
    env.ok(&["image", "pull", &tls_name]);
    // An unreachable registry is named as such.
    expect_failure(
        &["image", "pull", &format!("127.0.0.1:{}/gone:1", free_port())],
        &["cannot reach registry"],
    );
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn a_tampered_blob_is_rejected_by_digest() {
    let env = require_env!("reg-tamper");
    let registry = Registry::start(&env, "tamper", Auth::Open, None);
    let name = format!("{}/tampered:1", registry.host());
    let image = layered_image(&name, 1, None);
    import_and_push(&env, &image, &[]);
    env.ok(&["image", "rm", &name]);
    // Flip one byte of the top layer as stored by the registry.
    let file = registry.blob_file(image.layer_digest());
    let mut data = std::fs::read(&file).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&file, data).unwrap();
    let err = env.fails(&["-n", "clean", "image", "pull", &name]);
    assert!(
        err.contains("does not match its digest") && err.contains(image.layer_digest()),
        "{err}"
    );
    assert!(!env.ok(&["-n", "clean", "image", "ls"]).contains("tampered"));
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

#[test]
fn hosts_toml_mirrors_are_tried_before_the_server() {
    let env = require_env!("reg-mirror");
    let mirror = Registry::start(&env, "mirror", Auth::Open, None);
    // Pushed to the mirror under the upstream's repository name.
    let image = layered_image(&format!("{}/library/tool:2", mirror.host()), 0, None);
    import_and_push(&env, &image, &[]);
    let upstream = "upstream.invalid/library/tool:2";
    let hosts = env.dir.join("certs.d").join("upstream.invalid");
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"https://upstream.invalid\"\n[host.\"http://127.0.0.1:{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            free_port()
        ) + &format!("[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n", mirror.host()),
    )
    .unwrap();
    let out = env.command(&["-n", "m", "image", "pull", upstream]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("at http://{}", mirror.host())), "{stderr}");
    let ls = env.ok(&["-n", "m", "image", "ls"]);
    assert!(ls.lines().any(|l| l.starts_with(upstream)), "{ls}");
}

/// A TCP proxy to `target` that sends the registry's answers at about `bytes_per_sec`.
fn throttling_proxy(target: u16, bytes_per_sec: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                let pause = Duration::from_secs_f64(buf.len() as f64 / bytes_per_sec as f64);
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(pause);
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// The bytes of the largest partial write in containerd's ingest (the big layer's: the small one
/// may be committed, and gone from the ingest, at any moment).
fn ingest_bytes(env: &TestEnv) -> u64 {
    let dir = env.dir.join("root/io.containerd.content.v1.content/ingest");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn an_interrupted_pull_resumes_and_concurrent_creates_pull_once() {
    let env = require_env!("reg-resume");
    let registry = Registry::start(&env, "resume", Auth::Open, None);
    // 12 MiB that gzip cannot shrink.
    let mut noise = vec![0u8; 12 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for byte in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    let name = format!("{}/big:1", registry.host());
    let spec = ImageSpec {
        reference: name.clone(),
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        ..Default::default()
    };
    let busybox = busybox_layer();
    let big = vec![Entry::file("noise", 0o644, noise)];
    let image = build_layered_image(&spec, &[&busybox, &big]).unwrap();
    import_and_push(&env, &image, &[]);
    env.ok(&["image", "rm", &name]);

    // Through a slow link, killed once a few MiB are in containerd's ingest.
    let proxy = throttling_proxy(registry.port, 3 << 20);
    let slow = format!("127.0.0.1:{proxy}/big:1");
    let mut child = env
        .command(&["image", "pull", "--plain-http", &slow])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    env.wait_until(Duration::from_secs(30), "part of the layer to arrive", || {
        ingest_bytes(&env) > 3 << 20
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = ingest_bytes(&env);
    let out = env.command(&["image", "pull", "--plain-http", &slow]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming at"), "{stderr}");
    assert!(partial > 3 << 20 && image_digest(&env, &slow).as_deref() == Some(image.manifest_digest()));
    let fetched_line = stderr.lines().find(|l| l.contains("pulled")).unwrap();
    assert!(
        !fetched_line.contains("12."),
        "the whole layer came again: {fetched_line}"
    );
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());

    // Two creates that need the same missing image at once: one pulls, the other waits and shares.
    env.ok(&["image", "rm", &slow]);
    let pods: Vec<String> = (0..2)
        .map(|i| {
            env.manifest(
                &format!("c{i}.yaml"),
                &sleeper_pod(&format!("c{i}"), &slow, Some("IfNotPresent")),
            )
        })
        .collect();
    let children: Vec<Child> = pods
        .iter()
        .map(|p| {
            env.command(&["create", "-f", p])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let pulled: usize = (0..2)
        .filter(|i| {
            env.ok(&["describe", "pod", &format!("c{i}")])
                .contains("Successfully pulled")
        })
        .count();
    assert_eq!(pulled, 1, "exactly one create pulls");
    env.ok(&["delete", "c0", "c1"]);
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

const TOKEN_SERVICE: &str = "podctl-test-registry";
const TOKEN_ISSUER: &str = "podctl-test-issuer";

/// A token server for distribution's Bearer flow: it checks Basic credentials at its realm and
/// answers with an ES256 JWT (signed by a key whose certificate the registry trusts) granting the
/// scopes asked for; anonymous callers get a token that grants nothing, as Docker Hub's do.
/// Scope parameters of one token request, and as whom it was answered (None: anonymously).
type TokenRequest = (Vec<String>, Option<String>);

struct TokenServer {
    port: u16,
    cert: PathBuf,
    /// Each request's scope parameters and whether its credentials were accepted.
    requests: std::sync::Arc<std::sync::Mutex<Vec<TokenRequest>>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &'static str, password: &'static str) -> TokenServer {
        std::fs::create_dir_all(dir).unwrap();
        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        run(
            "openssl",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &p("key.pem"),
            ],
        );
        run(
            "openssl",
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                &p("key.pem"),
                "-outform",
                "DER",
                "-out",
                &p("key.p8"),
            ],
        );
        run(
            "openssl",
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                &p("key.pem"),
                "-days",
                "2",
                "-subj",
                "/CN=podctl test token issuer",
                "-out",
                &p("cert.pem"),
            ],
        );
        run(
            "openssl",
            &["x509", "-in", &p("cert.pem"), "-outform", "DER", "-out", &p("cert.der")],
        );
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &std::fs::read(dir.join("key.p8")).unwrap(),
            &rng,
        )
        .expect("openssl's P-256 key in PKCS#8");
        let chain = base64_encode(&std::fs::read(dir.join("cert.der")).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            let expected = format!("Basic {}", base64_encode(format!("{user}:{password}").as_bytes()));
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let Some((target, authorization)) = read_request_head(&mut stream) else {
                    continue;
                };
                let scopes: Vec<String> = target
                    .split_once('?')
                    .map(|(_, query)| query)
                    .unwrap_or_default()
                    .split('&')
                    .filter_map(|pair| pair.strip_prefix("scope="))
                    .map(percent_decode)
                    .collect();
                let who = match &authorization {
                    None => None,
                    Some(given) if *given == expected => Some(user.to_string()),
                    Some(_) => {
                        log.lock().unwrap().push((scopes, Some("refused".into())));
                        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                        let _ = write!(
                            stream,
                            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        continue;
                    }
                };
                log.lock().unwrap().push((scopes.clone(), who.clone()));
                let token = jwt(
                    &key,
                    &rng,
                    &chain,
                    who.as_deref(),
                    if who.is_some() { &scopes } else { &[] },
                );
                let body = format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            port,
            cert: dir.join("cert.pem"),
            requests,
        }
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// The request target and Authorization header of an HTTP/1.1 request (its body is ignored).
fn read_request_head(stream: &mut TcpStream) -> Option<(String, Option<String>)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1)?.to_string();
    let authorization = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    });
    Some((target, authorization))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A token as distribution verifies it: ES256, the issuer's certificate in `x5c`, and an `access`
/// claim per scope `repository:NAME:ACTIONS`.
fn jwt(
    key: &ring::signature::EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    chain: &str,
    subject: Option<&str>,
    scopes: &[String],
) -> String {
    use base64::Engine;
    let url = |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [chain]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": subject.unwrap_or(""), "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signed = format!(
        "{}.{}",
        url(header.to_string().as_bytes()),
        url(claims.to_string().as_bytes())
    );
    let signature = key.sign(rng, signed.as_bytes()).expect("ES256 signs");
    format!("{signed}.{}", url(signature.as_ref()))
}

#[test]
fn the_bearer_token_flow_gets_a_token_for_the_pull_and_push_scopes() {
    let env = require_env!("reg-token");
    let tokens = TokenServer::start(&env.dir.join("token"), "bob", "builder");
    let registry = Registry::start(&env, "token", Auth::Token(&tokens), None);
    let name = format!("{}/team/app:1", registry.host());
    import_and_push(&env, &layered_image(&name, 1, None), &["--user", "bob:builder"]);
    assert!(
        tokens
            .requests()
            .iter()
            .any(|(scopes, who)| who.as_deref() == Some("bob")
                && scopes.iter().any(|s| s == "repository:team/app:pull,push")),
        "the push asked for no pull,push token as bob: {:?}",
        tokens.requests()
    );
    env.ok(&["image", "rm", &name]);

    // Anonymous tokens grant nothing here; a wrong password gets no token at all.
    env.fails_leaving_nothing(&["image", "pull", &name], &["refused access anonymously"]);
    env.fails_leaving_nothing(
        &["image", "pull", "--user", "bob:b0b", &name],
        &["refused access as bob"],
    );
    // docker's config.json gives the credentials the token server checks.
    let docker = env.dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{}\"}}}}}}",
            registry.host(),
            base64_encode(b"bob:builder")
        ),
    )
    .unwrap();
    env.create("t.yaml", &sleeper_pod("t", &name, None));
    assert!(
        tokens.requests().iter().any(
            |(scopes, who)| who.as_deref() == Some("bob") && scopes.iter().any(|s| s == "repository:team/app:pull")
        ),
        "the pull asked for no pull token as bob: {:?}",
        tokens.requests()
    );
    env.ok(&["delete", "t"]);
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

/// One entry of a hand-made layer (the types `Entry` has no words for).
enum Raw {
    Dir(&'static str, u32, u64),
    File(&'static str, u32, u64, &'static [u8]),
    /// A file with PAX records (xattrs, a fractional mtime).
    PaxFile(&'static str, &'static [u8], &'static [(&'static str, &'static [u8])]),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    Fifo(&'static str),
    Char(&'static str, u32, u32),
}

fn raw_layer(entries: &[Raw]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_600_000_000);
        header.set_size(0);
        match entry {
            Raw::Dir(path, mode, owner) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_uid(*owner);
                header.set_gid(*owner);
                tar.append_data(&mut header, path, &[][..]).unwrap();
            }
            Raw::File(path, mode, owner, data) => {
                header.set_mode(*mode);
                header.set_uid(*owner);
                header.set_gid(*owner);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, *data).unwrap();
            }
            Raw::PaxFile(path, data, records) => {
                tar.append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
                    .unwrap();
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, *data).unwrap();
            }
            Raw::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                tar.append_link(&mut header, path, target).unwrap();
            }
            Raw::Hardlink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o755);
                tar.append_link(&mut header, path, target).unwrap();
            }
            Raw::Fifo(path) => {
                header.set_entry_type(tar::EntryType::Fifo);
                header.set_mode(0o600);
                tar.append_data(&mut header, path, &[][..]).unwrap();
            }
            Raw::Char(path, major, minor) => {
                header.set_entry_type(tar::EntryType::Char);
                header.set_mode(0o666);
                header.set_device_major(*major).unwrap();
                header.set_device_minor(*minor).unwrap();
                tar.append_data(&mut header, path, &[][..]).unwrap();
            }
        }
    }
    tar.into_inner().unwrap()
}

/// An OCI image-layout tar of `layers` (each gzipped), named `name`; and its top chain ID and the
/// chain ID of every layer.
fn raw_image(name: &str, layers: &[Vec<u8>]) -> (Vec<u8>, Vec<String>) {
    use sha2::Digest;
    let sha = |data: &[u8]| format!("sha256:{:x}", sha2::Sha256::digest(data));
    let mut blobs = Vec::new();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(layer).unwrap();
        let gz = gz.finish().unwrap();
        diff_ids.push(sha(layer));
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&gz), "size": gz.len()}));
        blobs.push(gz);
    }
    let mut chains: Vec<String> = Vec::new();
    for diff_id in &diff_ids {
        chains.push(match chains.last() {
            None => diff_id.clone(),
            Some(parent) => sha(format!("{parent} {diff_id}").as_bytes()),
        });
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": descs})
    .to_string()
    .into_bytes();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha(&manifest), "size": manifest.len(),
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap()}}]})
    .to_string()
    .into_bytes();
    blobs.push(config);
    blobs.push(manifest);
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, data).unwrap();
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), &index);
    for blob in &blobs {
        add(format!("blobs/sha256/{}", &sha(blob)[7..]), blob);
    }
    (tar.into_inner().unwrap(), chains)
}

/// What a tree holds, path by path, as a user of the container sees it: type, mode, owner, size,
/// device, time, symlink target, content digest, xattrs, and which paths share an inode.
fn describe_tree(root: &Path, untimed: &[&str]) -> Vec<String> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let mut lines = Vec::new();
    let mut inodes: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    let mut paths = common::walk(root);
    paths.push(root.to_path_buf());
    paths.sort();
    paths.dedup();
    for path in paths {
        let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        let mut line = format!("{rel} mode={:o} owner={}:{}", meta.mode(), meta.uid(), meta.gid());
        if !(kind.is_dir() && untimed.contains(&rel.as_str())) {
            line += &format!(" mtime={}.{}", meta.mtime(), meta.mtime_nsec());
        }
        if kind.is_symlink() {
            line += &format!(" -> {}", std::fs::read_link(&path).unwrap().display());
        } else if kind.is_file() {
            let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
            line += &format!(" size={} sha={:x}", meta.len(), digest);
            if meta.nlink() > 1 {
                let first = inodes.entry(meta.ino()).or_insert_with(|| rel.clone());
                line += &format!(" inode-of={first}");
            }
        } else if !kind.is_dir() {
            line += &format!(" rdev={}", meta.rdev());
        }
        if !kind.is_symlink() {
            let names = xattr::list(&path).unwrap();
            let mut names: Vec<_> = names.map(|n| n.to_string_lossy().into_owned()).collect();
            names.sort();
            for name in names {
                let value = xattr::get(&path, &name).unwrap().unwrap_or_default();
                line += &format!(" xattr:{name}={}", String::from_utf8_lossy(&value));
            }
        }
        lines.push(line);
    }
    lines
}

/// Mounts a read-only view of `chain` in containerd namespace `namespace`, describes it, unmounts.
fn describe_snapshot(env: &TestEnv, namespace: &str, chain: &str, untimed: &[&str]) -> Vec<String> {
    let address = env.socket.to_str().unwrap();
    let target = env.dir.join(format!("view-{namespace}"));
    std::fs::create_dir_all(&target).unwrap();
    let key = format!("compare-{}", &chain[7..19]);
    let ctr_args = |args: &[&'static str]| {
        let mut all = vec![
            "--address",
            address,
            "-n",
            namespace,
            "snapshots",
            "--snapshotter",
            "overlayfs",
        ];
        all.extend_from_slice(args);
        all
    };
    // The mount command comes with the view: containerd's GC may take a view without a lease
    // at any moment (its layers stay, and so does the mount).
    let mut view = ctr_args(&["view", "--target"]);
    view.extend([target.to_str().unwrap(), key.as_str(), chain]);
    let mount = run("ctr", &view);
    run("sh", &["-c", &mount]);
    let tree = describe_tree(&target, untimed);
    run("umount", &[target.to_str().unwrap()]);
    // containerd's GC may have taken the view already (it has no lease); its layers stay.
    let mut remove = ctr_args(&["rm"]);
    remove.push(&key);
    let _ = Command::new("ctr").args(remove).output();
    tree
}

#[test]
fn layers_unpack_as_containerd_unpacks_them_from_a_pull_and_an_import() {
    let env = require_env!("reg-unpack");
    let registry = Registry::start(&env, "unpack", Auth::Open, None);
    let name = format!("{}/team/tricky:1", registry.host());
    // A hard link to a symlink that points out of the snapshot: its mode must not reach the host.
    let outside = env.dir.join("outside-file");
    std::fs::write(&outside, "host\n").unwrap();
    std::fs::set_permissions(&outside, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let outside_target: &'static str = Box::leak(outside.to_str().unwrap().to_string().into_boxed_str());
    let long = "long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/file";
    let base = raw_layer(&[
        Raw::Dir("etc/", 0o755, 0),
        Raw::File("etc/passwd", 0o644, 0, b"root:x:0:0::/root:/bin/sh\n"),
        Raw::Dir("data/", 0o750, 1000),
        Raw::File("data/keep", 0o640, 1000, b"keep"),
        Raw::File("data/gone", 0o644, 0, b"gone"),
        Raw::Dir("data/sub/", 0o700, 1000),
        Raw::File("data/sub/f", 0o644, 1000, b"f"),
        Raw::Dir("opq/", 0o755, 0),
        Raw::File("opq/a", 0o644, 0, b"a"),
        Raw::File("opq/b", 0o644, 0, b"b"),
        Raw::Dir("bin/", 0o755, 0),
        Raw::File("bin/su", 0o4755, 0, b"setuid"),
        Raw::PaxFile(
            "bin/tool",
            b"tool",
            &[("SCHILY.xattr.user.origin", b"pax"), ("mtime", b"1600000000.25")],
        ),
        Raw::File("bin/plain", 0o644, 0, b"plain"),
        Raw::Hardlink("bin/plain-link", "bin/plain"),
        Raw::Dir("usr/", 0o755, 0),
        Raw::Dir("usr/lib/", 0o755, 0),
        Raw::File("usr/lib/libx.so", 0o755, 0, b"libx"),
        Raw::Symlink("lib", "usr/lib"),
        Raw::Dir("run/", 0o755, 0),
        Raw::Fifo("run/fifo"),
        Raw::Dir("dev/", 0o755, 0),
        Raw::Char("dev/null", 1, 3),
        Raw::File(long, 0o644, 0, b"a long name"),
        Raw::File("swap", 0o644, 0, b"a file first"),
        // trusted.* is the host's (overlayfs's own state): never taken from a layer.
        Raw::PaxFile("bin/trusted", b"t", &[("SCHILY.xattr.trusted.overlay.opaque", b"y")]),
        Raw::Symlink("bin/out", outside_target),
        Raw::Hardlink("bin/out-link", "bin/out"),
    ]);
    let middle = raw_layer(&[
        // The root's own entry: containerd ignores it (the snapshot's root stays as made).
        Raw::Dir("./", 0o700, 1000),
        Raw::File("data/.wh.gone", 0o644, 0, b""),
        Raw::File("opq/.wh..wh..opq", 0o644, 0, b""),
        Raw::File("opq/c", 0o644, 0, b"c"),
        Raw::File("etc/passwd", 0o600, 0, b"root:x:0:0::/root:/bin/ash\n"),
        // Parents the layer does not list: new ones, and one of the layer below (its owner and mode kept).
        Raw::File("newdir/deep/file", 0o644, 0, b"deep"),
        Raw::File("data/sub/g", 0o644, 1000, b"g"),
        // A file of the layer below becomes a directory; within this layer a file becomes one too.
        Raw::Dir("usr/lib/libx.so/", 0o755, 0),
        Raw::File("usr/lib/libx.so/inner", 0o644, 0, b"inner"),
        Raw::File("tmpx", 0o644, 0, b"first a file"),
        Raw::Dir("tmpx/", 0o711, 0),
        Raw::Dir("swap/", 0o755, 0),
    ]);
    let top = raw_layer(&[
        Raw::File("data/.wh.sub", 0o644, 0, b""),
        // Through the lower layer's symlink `lib`.
        Raw::File("lib/libz.so", 0o644, 0, b"libz"),
        Raw::File("bin/.wh.su", 0o644, 0, b""),
        Raw::Dir("opq/", 0o775, 0),
    ]);
    let (archive, chains) = raw_image(&name, &[base, middle, top]);
    let path = env.dir.join("tricky.tar");
    std::fs::write(&path, &archive).unwrap();
    let address = env.socket.to_str().unwrap();
    // containerd's own applier, in a namespace of its own.
    run(
        "ctr",
        &[
            "--address",
            address,
            "-n",
            "reference",
            "images",
            "import",
            path.to_str().unwrap(),
        ],
    );
    // podctl's, from the content store (import) and from the download (pull).
    env.ok(&["image", "import", path.to_str().unwrap()]);
    env.ok(&["image", "push", &name]);
    let pulled = env.podctl(&["--namespace", "pulled", "image", "pull", &name]);
    let stderr = String::from_utf8_lossy(&pulled.stderr);
    assert!(pulled.status.success(), "{stderr}");
    assert_eq!(stderr.matches("unpacked by podctl").count(), 3, "{stderr}");
    // The way back to containerd's applier works too, and says so.
    let forced = env
        .command(&["--namespace", "forced", "image", "pull", &name])
        .env("PODCTL_UNPACK", "containerd")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(forced.status.success(), "{stderr}");
    assert_eq!(stderr.matches("unpacked by containerd").count(), 3, "{stderr}");
    // Directories made for entries whose parents the layers do not list: their time is when they
    // were made.
    let long_dirs = [&long[..4], &long[..long.find("/bbb").unwrap()], &long[..long.len() - 5]];
    let mut untimed = vec![
        "",
        "etc",
        "usr",
        "usr/lib",
        "bin",
        "newdir",
        "newdir/deep",
        "data",
        "data/sub",
        "lib",
        "opq",
        "usr/lib/libx.so",
        "tmpx",
        "swap",
    ];
    untimed.extend(long_dirs);
    for chain in [&chains[0], &chains[1], &chains[2]] {
        let reference = describe_snapshot(&env, "reference", chain, &untimed);
        assert!(reference.iter().any(|l| l.starts_with("bin/tool ")), "{reference:#?}");
        for namespace in ["default", "pulled", "forced"] {
            let ours = describe_snapshot(&env, namespace, chain, &untimed);
            assert_eq!(ours, reference, "namespace {namespace}, snapshot {chain}");
        }
    }
    let host_mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&outside).unwrap().permissions());
    assert_eq!(host_mode & 0o7777, 0o600, "a layer changed a host file's mode");
    let top = describe_snapshot(&env, "pulled", &chains[2], &untimed).join("\n");
    for (needle, present) in [
        ("data/gone", false),
        ("data/sub", false),
        ("opq/a", false),
        ("opq/c mode=100644", true),
        ("bin/su", false),
        // As containerd does: the parent the layer does not list is made a directory, copying the
        // lower layer's `lib` (the symlink's target), which it then hides.
        ("\nlib mode=40755", true),
        ("usr/lib/libz.so", false),
        ("bin/tool mode=100644 owner=0:0 mtime=1600000000.250000000", true),
        ("xattr:user.origin=pax", true),
        ("xattr:trusted", false),
        ("bin/plain-link mode=100755", true),
        ("inode-of=bin/plain", true),
        ("dev/null mode=20666", true),
        ("data mode=40750 owner=1000:1000", true),
    ] {
        assert_eq!(top.contains(needle), present, "{needle} in\n{top}");
    }
}
