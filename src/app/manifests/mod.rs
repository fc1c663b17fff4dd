//! Whole manifests: `create -f` and `delete -f` of files, directories and standard input holding
//! several documents (`---`, `kind: List`), and `create configmap|secret` from literals and
//! files. Everything is read and validated before anything is made; objects are created before
//! the pods that read them, and a failure rolls back what the command made.

mod apply;
mod from_args;

pub use apply::apply;
pub use from_args::create_from_args;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};

use super::workload::{Controller, WorkloadError};
use super::{read_input, settings, GlobalArgs};
use crate::containerd::Client;
use crate::manifest::claim::PersistentVolumeClaim;
use crate::manifest::config_objects::{ConfigMap, Secret};
use crate::manifest::workload::{Workload, WorkloadKind};
use crate::manifest::ObjectKind;
use crate::manifest::{parse_documents, Document};
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

/// Reads and validates every document `-f` names, printing their warnings. Kinds that mean
/// nothing on one host (Services…) are named and left out; with `strict` they are an error.
pub fn load(paths: &[PathBuf], recursive: bool, strict: bool) -> Result<Vec<Sourced>> {
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
            if strict && matches!(document, Document::WithoutMeaning { .. }) {
                bail!(
                    "{origin}: {} (--strict); take it out of the manifests, or leave out --strict to have it \
                     skipped with a warning",
                    document.warnings().join("; ")
                );
            }
            for warning in document.warnings() {
                eprintln!("warning: {origin}: {warning}");
            }
            if !matches!(document, Document::WithoutMeaning { .. }) {
                documents.push(Sourced { origin, document });
            }
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

/// Creation order: what pods read (runtime classes, ConfigMaps, Secrets, claims) before the pods
/// and workloads.
fn rank(document: &Document) -> u8 {
    match document {
        Document::RuntimeClass(_) => 0,
        Document::ConfigMap(_) | Document::Secret(_) | Document::Claim { .. } => 1,
        Document::Pod(_) | Document::Workload { .. } | Document::WithoutMeaning { .. } => 2,
    }
}

/// What this command made (or changed), to roll back if a later document fails.
enum Made {
    RuntimeClass(String),
    ConfigMap(String),
    Secret(String),
    Claim(String),
    Pod(String),
    Workload(WorkloadKind, String),
    /// An apply replaced these: the versions before.
    ConfigMapBefore(ConfigMap),
    SecretBefore(Secret),
    ClaimBefore(PersistentVolumeClaim),
    WorkloadBefore(Box<Workload>),
}

/// The claims that pods and workload templates in these documents mount but no document defines
/// and containerd does not hold: each becomes a ReadWriteOnce claim of its name.
async fn implicit_claims(client: &Client, documents: &[Sourced]) -> Result<Vec<PersistentVolumeClaim>, PodError> {
    let defined: Vec<String> = documents
        .iter()
        .filter_map(|s| match &s.document {
            Document::Claim { claim, .. } => Some(claim.metadata.name.clone()),
            _ => None,
        })
        .collect();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for sourced in documents {
        let names: Vec<String> = match &sourced.document {
            Document::Pod(parsed) => pod::volume_claims::claims_of(&parsed.pod)
                .map(|(_, n)| n.to_string())
                .collect(),
            Document::Workload { workload, .. } => workload
                .pod(&workload.metadata.name, "")
                .map(|p| {
                    pod::volume_claims::claims_of(&p.pod)
                        .map(|(_, n)| n.to_string())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for name in names {
            if !defined.contains(&name) && !wanted.iter().any(|(n, _)| *n == name) {
                wanted.push((name, sourced.document.label()));
            }
        }
    }
    let mut claims = Vec::new();
    for (name, by) in wanted {
        if pod::config_store::get_object::<PersistentVolumeClaim>(client, &name)
            .await?
            .is_none()
        {
            eprintln!("{by}: no PersistentVolumeClaim {name} is given; making one (ReadWriteOnce)");
            claims.push(PersistentVolumeClaim::implicit(&name));
        }
    }
    Ok(claims)
}

/// Makes the claims of [`implicit_claims`], each recorded in `made`.
async fn make_implicit_claims(
    client: &Client,
    settings: &Settings,
    documents: &[Sourced],
    made: &mut Vec<Made>,
) -> Result<(), PodError> {
    for claim in implicit_claims(client, documents).await? {
        let name = claim.metadata.name.clone();
        pod::volume_claims::create_claim(client, settings, &claim).await?;
        println!("persistentvolumeclaim/{name} created");
        made.push(Made::Claim(name));
    }
    Ok(())
}

/// `podctl create -f ...`: every document, objects first; all or nothing.
pub async fn create(global: &GlobalArgs, documents: Vec<Sourced>) -> Result<ExitCode> {
    let mut documents = documents;
    documents.sort_by_key(|s| rank(&s.document));
    let needs_registry = documents.iter().any(|s| {
        matches!(
            s.document,
            Document::Pod(_) | Document::RuntimeClass(_) | Document::Workload { .. }
        )
    });
    let registry = match needs_registry {
        true => Some(super::registry(global)?),
        false => None,
    };
    let client = super::connect(global).await?;
    let settings = settings(global);
    let mut made = Vec::new();
    if let Err(e) = make_implicit_claims(&client, &settings, &documents, &mut made).await {
        roll_back(&client, &settings, registry.as_ref(), made).await;
        return Err(e.into());
    }
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
) -> Result<Made, WorkloadError> {
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
        Document::Claim { claim, .. } => {
            pod::volume_claims::create_claim(client, settings, &claim).await?;
            Ok(Made::Claim(claim.metadata.name))
        }
        Document::Workload { workload, .. } => {
            let ctl = Controller {
                client,
                settings,
                registry: registry(),
            };
            let made = Made::Workload(workload.kind, workload.metadata.name.clone());
            match ctl.create(&workload).await {
                Ok(()) => Ok(made),
                // What it made so far goes with the rest.
                Err(e @ WorkloadError::Exists { .. }) => Err(e),
                Err(e) => {
                    roll_back(client, settings, Some(registry()), vec![made]).await;
                    Err(e)
                }
            }
        }
        Document::WithoutMeaning { .. } => unreachable!("load leaves these out"),
    }
}

/// Removes what this command made and puts back what it changed, newest first; a failure is
/// reported, not fatal.
async fn roll_back(client: &Client, settings: &Settings, registry: Option<&Registry>, made: Vec<Made>) {
    for thing in made.into_iter().rev() {
        let undone = match &thing {
            Made::ConfigMapBefore(_) | Made::SecretBefore(_) | Made::ClaimBefore(_) | Made::WorkloadBefore(_) => {
                "put back as it was"
            }
            _ => "removed again",
        };
        let (label, result) = match thing {
            Made::Workload(kind, name) => {
                let registry = registry.expect("workloads were made with a registry");
                let ctl = Controller {
                    client,
                    settings,
                    registry,
                };
                let result = ctl.delete(kind, &name, Some(0)).await;
                (format!("{}/{name}", kind.resource()), result)
            }
            Made::WorkloadBefore(before) => {
                let registry = registry.expect("workloads were applied with a registry");
                let ctl = Controller {
                    client,
                    settings,
                    registry,
                };
                let result = ctl.put_back(&before).await;
                (super::workload::label(&before), result)
            }
            Made::Claim(name) => {
                let result = pod::volume_claims::delete_claim(client, settings, &[], &name).await;
                (
                    format!("persistentvolumeclaim/{name}"),
                    result.map_err(WorkloadError::from),
                )
            }
            Made::ClaimBefore(claim) => {
                let result = put_object(client, &claim).await;
                (
                    format!("persistentvolumeclaim/{}", claim.metadata.name),
                    result.map_err(WorkloadError::from),
                )
            }
            Made::Pod(name) => {
                let registry = registry.expect("pods were made with a registry");
                let options = DeleteOptions { grace_period: Some(0) };
                let result = pod::delete_pod(client, settings, registry, &name, &options).await;
                (format!("pod/{name}"), result.map_err(WorkloadError::from))
            }
            Made::ConfigMap(name) => (
                format!("configmap/{name}"),
                delete_object::<ConfigMap>(client, &name)
                    .await
                    .map_err(WorkloadError::from),
            ),
            Made::Secret(name) => (
                format!("secret/{name}"),
                delete_object::<Secret>(client, &name)
                    .await
                    .map_err(WorkloadError::from),
            ),
            Made::RuntimeClass(name) => (
                format!("runtimeclass.node.k8s.io/{name}"),
                pod::delete_runtime_class(client, &name)
                    .await
                    .map_err(WorkloadError::from),
            ),
            Made::ConfigMapBefore(map) => {
                let name = map.metadata.name.clone();
                let result = restore_object(client, settings, registry, &map, ObjectKind::ConfigMap).await;
                (format!("configmap/{name}"), result.map_err(WorkloadError::from))
            }
            Made::SecretBefore(secret) => {
                let name = secret.metadata.name.clone();
                let result = restore_object(client, settings, registry, &secret, ObjectKind::Secret).await;
                (format!("secret/{name}"), result.map_err(WorkloadError::from))
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

/// What `delete -f` removes: workloads and pods first, then the objects they read (the reverse
/// of create). Claims only when asked (`--volumes`): their data outlives the pods.
#[derive(Default)]
pub struct ToDelete {
    pub workloads: Vec<(WorkloadKind, String)>,
    pub pods: Vec<String>,
    pub config_maps: Vec<String>,
    pub secrets: Vec<String>,
    pub claims: Vec<String>,
    pub runtime_classes: Vec<String>,
}

impl ToDelete {
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
            && self.pods.is_empty()
            && self.config_maps.is_empty()
            && self.secrets.is_empty()
            && self.claims.is_empty()
            && self.runtime_classes.is_empty()
    }
}

/// What `delete -f` of these documents removes; claims with `volumes`, else they are named as kept.
pub fn to_delete(documents: Vec<Sourced>, volumes: bool) -> ToDelete {
    let mut plan = ToDelete::default();
    for sourced in documents {
        match sourced.document {
            Document::Pod(parsed) => plan.pods.push(parsed.pod.metadata.name),
            Document::ConfigMap(map) => plan.config_maps.push(map.metadata.name),
            Document::Secret(secret) => plan.secrets.push(secret.metadata.name),
            Document::RuntimeClass(class) => plan.runtime_classes.push(class.metadata.name),
            Document::Workload { workload, .. } => plan.workloads.push((workload.kind, workload.metadata.name)),
            Document::Claim { claim, .. } if volumes => plan.claims.push(claim.metadata.name),
            Document::Claim { claim, .. } => eprintln!(
                "persistentvolumeclaim/{} kept with its data (delete it with --volumes, or `podctl delete pvc {}`)",
                claim.metadata.name, claim.metadata.name
            ),
            Document::WithoutMeaning { .. } => {}
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
