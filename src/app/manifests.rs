//! Whole manifests: `create -f` and `delete -f` of files, directories and standard input holding
//! several documents (`---`, `kind: List`), and `create configmap|secret` from literals and
//! files. Everything is read and validated before anything is made; objects are created before
//! the pods that read them, and a failure rolls back what the command made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;

use super::{read_input, settings, GlobalArgs};
use crate::cli::{ConfigDataArgs, CreateObject, SecretKind};
use crate::containerd::Client;
use crate::manifest::config_objects::{ConfigMap, Secret};
use crate::manifest::ObjectKind;
use crate::manifest::{document_from_json, parse_documents, Document};
use crate::member::Registry;
use crate::pod::config_refs::propagate;
use crate::pod::config_store::{apply_object, create_object, delete_object, put_object, Applied, ConfigObject};
use crate::pod::{self, DeleteOptions, PodError, Settings};

/// One document and where it came from, for messages: `stack.yaml: document 3 (pod/web)`.
pub struct Sourced {
    pub origin: String,
    pub document: Document,
}

/// The manifest files `-f` names: files as given, directories' `.yaml`, `.yml` and `.json` files
/// in name order (their subdirectories with `recursive`), `-` for standard input.
fn manifest_files(paths: &[PathBuf], recursive: bool) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                if recursive {
                    walk(&path, recursive, out)?;
                }
            } else if path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            walk(path, recursive, &mut files)?;
            if files.len() == before {
                bail!(
                    "{} holds no .yaml, .yml or .json manifests{}",
                    path.display(),
                    if recursive {
                        ""
                    } else {
                        " (add -R to read its subdirectories)"
                    }
                );
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Reads and validates every document `-f` names, printing the pods' warnings.
pub fn load(paths: &[PathBuf], recursive: bool) -> Result<Vec<Sourced>> {
    if paths.is_empty() {
        bail!("name the manifest with -f FILE (a directory, or - for standard input)");
    }
    let mut documents = Vec::new();
    for file in manifest_files(paths, recursive)? {
        let text = read_input(&file)?;
        let shown = match file.as_os_str() == "-" {
            true => "<stdin>".to_string(),
            false => file.display().to_string(),
        };
        let parsed = parse_documents(&text).map_err(|e| anyhow!("{shown}: {e}"))?;
        let several = parsed.len() > 1;
        for (i, document) in parsed.into_iter().enumerate() {
            let origin = match several {
                true => format!("{shown}: document {} ({})", i + 1, document.label()),
                false => shown.clone(),
            };
            if let Document::Pod(parsed) = &document {
                for warning in &parsed.warnings {
                    eprintln!("warning: {origin}: {warning}");
                }
            }
            documents.push(Sourced { origin, document });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for sourced in &documents {
        if !seen.insert(sourced.document.label()) {
            bail!(
                "{}: {} is named twice in these manifests; give each object its own metadata.name",
                sourced.origin,
                sourced.document.label()
            );
        }
    }
    Ok(documents)
}

/// Creation order: what pods read (runtime classes, ConfigMaps, Secrets) before the pods.
fn rank(document: &Document) -> u8 {
    match document {
        Document::RuntimeClass(_) => 0,
        Document::ConfigMap(_) | Document::Secret(_) => 1,
        Document::Pod(_) => 2,
    }
}

/// What this command made (or changed), to roll back if a later document fails.
enum Made {
    RuntimeClass(String),
    ConfigMap(String),
    Secret(String),
    Pod(String),
    /// An apply replaced these: the versions before.
    ConfigMapBefore(ConfigMap),
    SecretBefore(Secret),
}

/// `podctl create -f ...`: every document, objects first; all or nothing.
pub async fn create(global: &GlobalArgs, documents: Vec<Sourced>) -> Result<ExitCode> {
    let mut documents = documents;
    documents.sort_by_key(|s| rank(&s.document));
    let needs_registry = documents
        .iter()
        .any(|s| matches!(s.document, Document::Pod(_) | Document::RuntimeClass(_)));
    let registry = match needs_registry {
        true => Some(super::registry(global)?),
        false => None,
    };
    let client = super::connect(global).await?;
    let settings = settings(global);
    let mut made = Vec::new();
    for sourced in documents {
        let label = sourced.document.label();
        let result = create_one(&client, &settings, registry.as_ref(), sourced.document).await;
        match result {
            Ok(thing) => {
                println!("{label} created");
                made.push(thing);
            }
            Err(e) => {
                roll_back(&client, &settings, registry.as_ref(), made).await;
                return Err(anyhow!("{}: {e}", sourced.origin));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_one(
    client: &Client,
    settings: &Settings,
    registry: Option<&Registry>,
    document: Document,
) -> Result<Made, PodError> {
    let registry = || registry.expect("a registry is made for pods and runtime classes");
    match document {
        Document::RuntimeClass(class) => {
            if !registry().config().handlers.contains_key(&class.handler) {
                eprintln!(
                    "warning: runtimeclass {}: handler {:?} is not in {}; pods of this class fail until it is",
                    class.metadata.name,
                    class.handler,
                    registry().config().describe_path()
                );
            }
            pod::create_runtime_class(client, &class).await?;
            Ok(Made::RuntimeClass(class.metadata.name))
        }
        Document::ConfigMap(map) => {
            create_object(client, &map).await?;
            Ok(Made::ConfigMap(map.metadata.name))
        }
        Document::Secret(secret) => {
            create_object(client, &secret).await?;
            Ok(Made::Secret(secret.metadata.name))
        }
        Document::Pod(parsed) => {
            let name = parsed.pod.metadata.name.clone();
            pod::create_pod(client, settings, registry(), parsed.pod).await?;
            Ok(Made::Pod(name))
        }
    }
}

/// Removes what this command made and puts back what it changed, newest first; a failure is
/// reported, not fatal.
async fn roll_back(client: &Client, settings: &Settings, registry: Option<&Registry>, made: Vec<Made>) {
    for thing in made.into_iter().rev() {
        let undone = match &thing {
            Made::ConfigMapBefore(_) | Made::SecretBefore(_) => "put back as it was",
            _ => "removed again",
        };
        let (label, result) = match thing {
            Made::Pod(name) => {
                let registry = registry.expect("pods were made with a registry");
                let options = DeleteOptions { grace_period: Some(0) };
                let result = pod::delete_pod(client, settings, registry, &name, &options).await;
                (format!("pod/{name}"), result)
            }
            Made::ConfigMap(name) => (
                format!("configmap/{name}"),
                delete_object::<ConfigMap>(client, &name).await,
            ),
            Made::Secret(name) => (format!("secret/{name}"), delete_object::<Secret>(client, &name).await),
            Made::RuntimeClass(name) => (
                format!("runtimeclass.node.k8s.io/{name}"),
                pod::delete_runtime_class(client, &name).await,
            ),
            Made::ConfigMapBefore(map) => {
                let name = map.metadata.name.clone();
                let result = restore_object(client, settings, registry, &map, ObjectKind::ConfigMap).await;
                (format!("configmap/{name}"), result)
            }
            Made::SecretBefore(secret) => {
                let name = secret.metadata.name.clone();
                let result = restore_object(client, settings, registry, &secret, ObjectKind::Secret).await;
                (format!("secret/{name}"), result)
            }
        };
        match result {
            Ok(()) => eprintln!("{label} {undone} (rolled back)"),
            Err(e) => eprintln!("warning: rolling back {label}: {e}"),
        }
    }
}

/// Puts back the version of an object that an apply replaced, and the files of pods reading it.
async fn restore_object<T: ConfigObject>(
    client: &Client,
    settings: &Settings,
    registry: Option<&Registry>,
    object: &T,
    kind: ObjectKind,
) -> Result<(), PodError> {
    put_object(client, object).await?;
    if let Some(registry) = registry {
        propagate(client, settings, registry, kind, &object.meta().name).await?;
    }
    Ok(())
}

/// `podctl apply -f ...`: what is missing is created, what changed is updated (a ConfigMap's or
/// Secret's new data reaches the volumes of running pods at once), the rest is left; objects
/// first, and a failure rolls back what this command made or changed.
pub async fn apply(global: &GlobalArgs, documents: Vec<Sourced>, force: bool) -> Result<ExitCode> {
    let mut documents = documents;
    documents.sort_by_key(|s| rank(&s.document));
    let registry = super::registry(global)?;
    let client = super::connect(global).await?;
    let settings = settings(global);
    let mut made = Vec::new();
    for sourced in documents {
        let label = sourced.document.label();
        match apply_one(&client, &settings, &registry, sourced.document, force).await {
            Ok((verb, thing)) => {
                println!("{label} {verb}");
                made.extend(thing);
            }
            Err(e) => {
                roll_back(&client, &settings, Some(&registry), made).await;
                return Err(anyhow!("{}: {e}", sourced.origin));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies one document: kubectl's verb for it and what to undo.
async fn apply_one(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    document: Document,
    force: bool,
) -> Result<(&'static str, Option<Made>), PodError> {
    match document {
        Document::ConfigMap(map) => {
            apply_config(
                client,
                settings,
                registry,
                map,
                ObjectKind::ConfigMap,
                Made::ConfigMap,
                Made::ConfigMapBefore,
            )
            .await
        }
        Document::Secret(secret) => {
            apply_config(
                client,
                settings,
                registry,
                secret,
                ObjectKind::Secret,
                Made::Secret,
                Made::SecretBefore,
            )
            .await
        }
        Document::RuntimeClass(class) => {
            let existing = pod::list_runtime_classes(client).await?;
            match existing.iter().find(|c| c.metadata.name == class.metadata.name) {
                Some(same) if *same == class => Ok(("unchanged", None)),
                Some(_) => {
                    pod::delete_runtime_class(client, &class.metadata.name).await?;
                    pod::create_runtime_class(client, &class).await?;
                    Ok(("configured", None))
                }
                None => {
                    let name = class.metadata.name.clone();
                    create_one(client, settings, Some(registry), Document::RuntimeClass(class)).await?;
                    Ok(("created", Some(Made::RuntimeClass(name))))
                }
            }
        }
        Document::Pod(parsed) => {
            let name = parsed.pod.metadata.name.clone();
            let Some(view) = pod::find_pod(client, settings, registry, &name).await? else {
                pod::create_pod(client, settings, registry, parsed.pod).await?;
                return Ok(("created", Some(Made::Pod(name))));
            };
            let stored = view.pod.clone().unwrap_or_default();
            let differ = differences(
                &serde_json::to_value(&stored).expect("pods serialize"),
                &serde_json::to_value(&parsed.pod).expect("pods serialize"),
            );
            if differ.is_empty() {
                return Ok(("unchanged", None));
            }
            // The one change the API server allows on a pod: its containers' images.
            let images_only = differ.iter().all(|field| {
                field
                    .strip_prefix("spec.containers[")
                    .and_then(|rest| rest.split_once("].image"))
                    .is_some_and(|(index, tail)| tail.is_empty() && index.parse::<usize>().is_ok())
            });
            if images_only && !force {
                for member in pod::update::set_images(client, settings, registry, &view, &parsed.pod).await? {
                    eprintln!("pod/{name}: container {member} restarted on its new image");
                }
                return Ok(("configured", None));
            }
            if !force {
                return Err(PodError::SpecChanged {
                    pod: name,
                    fields: differ.join(", "),
                });
            }
            pod::delete_pod(client, settings, registry, &name, &DeleteOptions { grace_period: None }).await?;
            pod::create_pod(client, settings, registry, parsed.pod).await?;
            Ok(("replaced", None))
        }
    }
}

/// Applies a ConfigMap or Secret; a changed one reaches the volumes of the pods reading it.
async fn apply_config<T: ConfigObject>(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    object: T,
    kind: ObjectKind,
    created: fn(String) -> Made,
    replaced: fn(T) -> Made,
) -> Result<(&'static str, Option<Made>), PodError> {
    let name = object.meta().name.clone();
    Ok(match apply_object(client, &object).await? {
        Applied::Created => ("created", Some(created(name))),
        Applied::Unchanged => ("unchanged", None),
        Applied::Configured(before) => {
            report_propagated(propagate(client, settings, registry, kind, &name).await?);
            ("configured", Some(replaced(before)))
        }
    })
}

fn report_propagated(pods: Vec<String>) {
    for pod in pods {
        eprintln!("pod/{pod}: volume files updated");
    }
}

/// The field paths where two JSON values differ (`spec.containers[0].image`), in order.
fn differences(before: &serde_json::Value, after: &serde_json::Value) -> Vec<String> {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        use serde_json::Value;
        let join = |key: &str| match path.is_empty() {
            true => key.to_string(),
            false => format!("{path}.{key}"),
        };
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    let null = Value::Null;
                    walk(
                        x.get(key).unwrap_or(&null),
                        y.get(key).unwrap_or(&null),
                        &join(key),
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    walk(p, q, &format!("{path}[{i}]"), out);
                }
            }
            _ if a == b => {}
            _ => out.push(path.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(before, after, "", &mut out);
    out
}

/// What `delete -f` removes: pods first, then the objects they read (the reverse of create).
pub struct ToDelete {
    pub pods: Vec<String>,
    pub config_maps: Vec<String>,
    pub secrets: Vec<String>,
    pub runtime_classes: Vec<String>,
}

pub fn to_delete(documents: Vec<Sourced>) -> ToDelete {
    let mut plan = ToDelete {
        pods: Vec::new(),
        config_maps: Vec::new(),
        secrets: Vec::new(),
        runtime_classes: Vec::new(),
    };
    for sourced in documents {
        match sourced.document {
            Document::Pod(parsed) => plan.pods.push(parsed.pod.metadata.name),
            Document::ConfigMap(map) => plan.config_maps.push(map.metadata.name),
            Document::Secret(secret) => plan.secrets.push(secret.metadata.name),
            Document::RuntimeClass(class) => plan.runtime_classes.push(class.metadata.name),
        }
    }
    plan
}

/// Deletes ConfigMaps or Secrets by name, printing kubectl's lines; whether all went.
pub async fn delete_objects<T: ConfigObject>(client: &Client, names: &[String], ignore_not_found: bool) -> bool {
    let mut ok = true;
    for name in names {
        match delete_object::<T>(client, name).await {
            Ok(()) => println!("{} \"{name}\" deleted", T::RESOURCE),
            Err(PodError::ObjectNotFound { .. }) if ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    }
    ok
}

/// The keys and values `--from-literal` and `--from-file` give, in kubectl's way.
fn data_of(args: &ConfigDataArgs) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut data = BTreeMap::new();
    let mut add = |key: String, value: Vec<u8>, from: &str| -> Result<()> {
        if data.insert(key.clone(), value).is_some() {
            bail!("key {key:?} is given twice ({from}); each key once");
        }
        Ok(())
    };
    for literal in &args.from_literal {
        let Some((key, value)) = literal.split_once('=') else {
            bail!("--from-literal {literal:?} has no `=`; write --from-literal=KEY=VALUE");
        };
        add(key.to_string(), value.as_bytes().to_vec(), "--from-literal")?;
    }
    for source in &args.from_file {
        let (key, path) = match source.split_once('=') {
            Some((key, path)) => (Some(key.to_string()), PathBuf::from(path)),
            None => (None, PathBuf::from(source)),
        };
        if path.is_dir() {
            if key.is_some() {
                bail!("--from-file {source:?}: a directory takes no KEY=; each file's name is its key");
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                let key = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let value = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
                add(key, value, "--from-file")?;
            }
        } else {
            let value = std::fs::read(&path).with_context(|| format!("cannot read --from-file {}", path.display()))?;
            let key = key.unwrap_or_else(|| path.file_name().unwrap_or_default().to_string_lossy().into_owned());
            add(key, value, "--from-file")?;
        }
    }
    Ok(data)
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `podctl create configmap|secret NAME ...`: the object, validated as a manifest would be.
pub async fn create_from_args(global: &GlobalArgs, object: CreateObject) -> Result<ExitCode> {
    let (json, name) = match object {
        CreateObject::Configmap(args) => {
            let mut data = serde_json::Map::new();
            let mut binary = serde_json::Map::new();
            for (key, value) in data_of(&args)? {
                match String::from_utf8(value) {
                    Ok(text) => data.insert(key, text.into()),
                    Err(bytes) => binary.insert(key, base64(bytes.as_bytes()).into()),
                };
            }
            let json = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": args.name},
                "data": data, "binaryData": binary,
            });
            (json, args.name)
        }
        CreateObject::Secret {
            kind: SecretKind::Generic { data, type_ },
        } => {
            let values: serde_json::Map<String, serde_json::Value> = data_of(&data)?
                .into_iter()
                .map(|(k, v)| (k, base64(&v).into()))
                .collect();
            let json = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": data.name},
                "type": type_, "data": values,
            });
            (json, data.name)
        }
        CreateObject::Secret {
            kind:
                SecretKind::DockerRegistry {
                    name,
                    docker_server,
                    docker_username,
                    docker_password,
                    docker_email,
                },
        } => {
            let mut entry = serde_json::json!({
                "username": docker_username,
                "password": docker_password,
                "auth": base64(format!("{docker_username}:{docker_password}").as_bytes()),
            });
            if let Some(email) = docker_email {
                entry["email"] = email.into();
            }
            let config = serde_json::json!({"auths": {docker_server: entry}}).to_string();
            let json = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": base64(config.as_bytes())},
            });
            (json, name)
        }
    };
    let document = document_from_json(json).map_err(|e| anyhow!("{name}: {e}"))?;
    create(global, vec![Sourced { origin: name, document }]).await
}
