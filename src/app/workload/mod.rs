//! The workload controller, run by the commands instead of a resident process: `create`, `apply`,
//! `scale`, `delete` and `system restore` bring a Deployment's, ReplicaSet's or DaemonSet's pods
//! to what its record in containerd asks (how many, which template), rolling them over as its
//! strategy says. The record is written before the pods change, so an interrupted rollout resumes
//! on the next `apply` (or `system restore`): the pods' template hash says which are done.

pub mod show;

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::containerd::Client;
use crate::manifest::workload::{Rollout, Workload, WorkloadKind, CONTROLLER_REVISION_HASH, POD_TEMPLATE_HASH};
use crate::manifest::ManifestError;
use crate::member::Registry;
use crate::pod::workload_store::{
    controlled_by, delete_workload_record, get_workload, owner_of, put_workload, ANNOTATION_CONTROLLED_BY,
    ANNOTATION_REVISION,
};
use crate::pod::{self, DeleteOptions, PodError, PodView, Settings};

/// How many pods are made at once. One for now: a CI run saw a replica of two made side by side
/// never become ready, which one process's concurrent creates have not been proven free of.
const MAKE_AT_ONCE: usize = 1;
/// How often a rollout looks at its pods while it waits for them to become ready.
const POLL: Duration = Duration::from_millis(200);
/// Kubernetes' default progressDeadlineSeconds.
const DEFAULT_PROGRESS_DEADLINE: u32 = 600;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error("{label}: its pod template is refused now: {error}; fix the template and apply it again")]
    Template { label: String, error: ManifestError },
    #[error("{label} not found in containerd namespace `{namespace}`; `podctl get {plural}` lists them")]
    NotFound {
        label: String,
        namespace: String,
        plural: String,
    },
    #[error("{label} already exists; apply it (`podctl apply -f`) to change it, or delete it first")]
    Exists { label: String },
    #[error("{label}: spec.selector is immutable; delete the {kind} and create it again to select other pods")]
    SelectorChanged { label: String, kind: &'static str },
    #[error("{label}: a DaemonSet runs one pod on this host and does not scale; use a Deployment to run several")]
    CannotScale { label: String },
    #[error(
        "{label}: no progress for {seconds}s ({ready} of {replicas} updated pods ready); `podctl describe pod` on its \
         pods tells why; the next `podctl apply` goes on from here"
    )]
    Stalled {
        label: String,
        seconds: u32,
        ready: usize,
        replicas: u32,
    },
}

/// What the controller works with: one containerd connection, the settings and member runtimes.
pub struct Controller<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    pub registry: &'a Registry,
}

/// Whether a pod counts as available: running, every member ready.
pub fn is_ready(view: &PodView) -> bool {
    view.status() == "Running" && view.ready_count() == view.expected_members()
}

/// A pod that can no longer run and is replaced: half made, or finished for good.
fn is_broken(view: &PodView) -> bool {
    view.interrupted.is_some() || matches!(view.phase(), "Failed" | "Succeeded")
}

/// The label a workload's pods carry its template hash in (none on a ReplicaSet's: Kubernetes'
/// ReplicaSet never updates its pods).
fn hash_label(kind: WorkloadKind) -> Option<&'static str> {
    match kind {
        WorkloadKind::Deployment => Some(POD_TEMPLATE_HASH),
        WorkloadKind::DaemonSet => Some(CONTROLLER_REVISION_HASH),
        WorkloadKind::ReplicaSet => None,
    }
}

/// `deployment.apps/web`.
pub fn label(workload: &Workload) -> String {
    format!("{}/{}", workload.kind.resource(), workload.metadata.name)
}

/// A workload's pods as they stand, the newest first.
pub struct Owned {
    /// Made from the workload's template as it is now.
    pub current: Vec<PodView>,
    /// Made from an earlier template.
    pub old: Vec<PodView>,
}

impl Owned {
    fn all(&self) -> impl Iterator<Item = &PodView> {
        self.current.iter().chain(&self.old)
    }
}

/// Five characters of the API server's generateName alphabet.
fn random_suffix() -> String {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the kernel's random source is available");
    crate::manifest::workload::safe_encode(&bytes)
}

/// The pods among `pods` that `workload` made, the newest first, split by template.
pub fn owned_among(pods: &[PodView], workload: &Workload) -> Owned {
    let owner = owner_of(workload.kind, &workload.metadata.name);
    let hash = workload.template_hash();
    let mut pods: Vec<PodView> = pods
        .iter()
        .filter(|view| controlled_by(view) == Some(owner.as_str()))
        .cloned()
        .collect();
    pods.sort_by(|a, b| b.created.unwrap_or_default().total_cmp(&a.created.unwrap_or_default()));
    let (current, old) = pods.into_iter().partition(|view| match hash_label(workload.kind) {
        Some(key) => view.pod.as_ref().and_then(|p| p.metadata.labels.get(key)) == Some(&hash),
        None => true,
    });
    Owned { current, old }
}

impl Controller<'_> {
    /// The pods of `workload`, split by whether they come from its current template.
    pub async fn owned(&self, workload: &Workload) -> Result<Owned, PodError> {
        let pods = pod::list_pods(self.client, self.settings, self.registry).await?;
        Ok(owned_among(&pods, workload))
    }

    /// Makes `count` pods of the current template, a few at once.
    async fn make_pods(&self, workload: &Workload, taken: &[String], count: usize) -> Result<(), WorkloadError> {
        let hash = workload.template_hash();
        let prefix = workload.pod_name_prefix(&hash);
        let mut names: Vec<String> = Vec::new();
        while names.len() < count {
            let name = format!("{prefix}{}", random_suffix());
            if !taken.contains(&name) && !names.contains(&name) {
                names.push(name);
            }
        }
        let mut pods = Vec::new();
        for name in names {
            let mut parsed = workload.pod(&name, &hash).map_err(|error| WorkloadError::Template {
                label: label(workload),
                error,
            })?;
            parsed.pod.metadata.annotations.insert(
                ANNOTATION_CONTROLLED_BY.into(),
                owner_of(workload.kind, &workload.metadata.name),
            );
            pods.push(parsed.pod);
        }
        let mut made = futures_util::stream::iter(pods)
            .map(|pod| pod::create_pod(self.client, self.settings, self.registry, pod))
            .buffer_unordered(MAKE_AT_ONCE);
        let mut first_error = None;
        while let Some(result) = made.next().await {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Deletes these pods at once (one grace period for all).
    async fn remove_pods(&self, pods: &[&PodView], grace_period: Option<u64>) -> Result<(), PodError> {
        let options = DeleteOptions { grace_period };
        let options = &options;
        let deletes = pods
            .iter()
            .map(|view| pod::delete_pod(self.client, self.settings, self.registry, &view.name, options));
        for result in futures_util::future::join_all(deletes).await {
            match result {
                Ok(()) | Err(PodError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Brings the workload's pods to its record: broken ones replaced, the count met, old ones
    /// rolled over to the current template as its strategy says (waiting for new pods to become
    /// ready when it must). Returns, when nothing is left to do, how many pods it made and removed.
    pub async fn reconcile(&self, workload: &Workload) -> Result<Changes, WorkloadError> {
        let mut changes = Changes::default();
        let replicas = workload.replicas() as usize;
        let patience = workload
            .spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
        let mut last_progress = Instant::now();
        let mut reported = None;
        loop {
            let owned = self.owned(workload).await?;
            let taken: Vec<String> = owned.all().map(|v| v.name.clone()).collect();
            let broken: Vec<&PodView> = owned.all().filter(|v| is_broken(v)).collect();
            if !broken.is_empty() {
                for view in &broken {
                    eprintln!(
                        "{}: pod/{} can no longer run ({}); replacing it",
                        label(workload),
                        view.name,
                        view.status()
                    );
                }
                self.remove_pods(&broken, Some(0)).await?;
                changes.removed += broken.len();
                continue;
            }
            let step = plan(workload.rollout(), replicas, &seen(&owned.current), &seen(&owned.old));
            if step.make == 0 && step.remove.is_empty() {
                if !step.waiting {
                    return Ok(changes);
                }
                let ready = owned.current.iter().filter(|v| is_ready(v)).count();
                if reported != Some(ready) {
                    eprintln!(
                        "{}: {ready} of {replicas} updated pods ready, {} old left",
                        label(workload),
                        owned.old.len()
                    );
                    reported = Some(ready);
                }
                if last_progress.elapsed() > Duration::from_secs(u64::from(patience)) {
                    return Err(WorkloadError::Stalled {
                        label: label(workload),
                        seconds: patience,
                        ready,
                        replicas: workload.replicas(),
                    });
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            if !step.remove.is_empty() {
                let remove: Vec<&PodView> = owned.all().filter(|v| step.remove.contains(&v.name)).collect();
                self.remove_pods(&remove, None).await?;
                changes.removed += remove.len();
            }
            if step.make > 0 {
                self.make_pods(workload, &taken, step.make).await?;
                changes.made += step.make;
            }
            last_progress = Instant::now();
        }
    }

    /// `create`: the record (it must not exist), then its pods.
    pub async fn create(&self, workload: &Workload) -> Result<(), WorkloadError> {
        if get_workload(self.client, workload.kind, &workload.metadata.name)
            .await?
            .is_some()
        {
            return Err(WorkloadError::Exists { label: label(workload) });
        }
        let mut stored = workload.clone();
        stored.metadata.creation_timestamp =
            Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
        stored.metadata.uid = Some(crate::record::new_uid());
        stored
            .metadata
            .annotations
            .insert(ANNOTATION_REVISION.into(), "1".into());
        put_workload(self.client, &stored).await?;
        self.reconcile(&stored).await.map(drop)
    }

    /// `apply`: made when missing, else the record updated (a new template is a new revision) and
    /// the pods brought to it. Returns kubectl's verb and the record as it was before.
    pub async fn apply(&self, workload: &Workload) -> Result<(&'static str, Option<Workload>), WorkloadError> {
        let Some(stored) = get_workload(self.client, workload.kind, &workload.metadata.name).await? else {
            self.create(workload).await?;
            return Ok(("created", None));
        };
        if stored.spec.selector != workload.spec.selector {
            return Err(WorkloadError::SelectorChanged {
                label: label(workload),
                kind: workload.kind.kind(),
            });
        }
        let revision: u64 = stored
            .metadata
            .annotations
            .get(ANNOTATION_REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        let mut next = workload.clone();
        next.metadata.creation_timestamp = stored.metadata.creation_timestamp.clone();
        next.metadata.uid = stored.metadata.uid.clone();
        let revision = match next.template_hash() == stored.template_hash() {
            true => revision,
            false => revision + 1,
        };
        next.metadata
            .annotations
            .insert(ANNOTATION_REVISION.into(), revision.to_string());
        if next == stored {
            let changes = self.reconcile(&stored).await?;
            if changes.made > 0 {
                eprintln!("{}: {} missing pod(s) made again", label(&stored), changes.made);
            }
            return Ok(("unchanged", None));
        }
        put_workload(self.client, &next).await?;
        self.reconcile(&next).await?;
        Ok(("configured", Some(stored)))
    }

    /// Puts back the record an apply replaced, and the pods with it (a rollback).
    pub async fn put_back(&self, before: &Workload) -> Result<(), WorkloadError> {
        put_workload(self.client, before).await?;
        self.reconcile(before).await.map(drop)
    }

    /// `scale`: the new count recorded, then met.
    pub async fn scale(&self, kind: WorkloadKind, name: &str, replicas: u32) -> Result<(), WorkloadError> {
        let mut workload = self.find(kind, name).await?;
        if kind == WorkloadKind::DaemonSet {
            return Err(WorkloadError::CannotScale {
                label: label(&workload),
            });
        }
        workload.spec.replicas = Some(replicas);
        put_workload(self.client, &workload).await?;
        self.reconcile(&workload).await.map(drop)
    }

    /// `delete`: its pods (gracefully, all at once), then its record.
    pub async fn delete(&self, kind: WorkloadKind, name: &str, grace_period: Option<u64>) -> Result<(), WorkloadError> {
        let workload = self.find(kind, name).await?;
        let owned = self.owned(&workload).await?;
        let pods: Vec<&PodView> = owned.all().collect();
        self.remove_pods(&pods, grace_period).await?;
        delete_workload_record(self.client, kind, name).await?;
        Ok(())
    }

    pub async fn find(&self, kind: WorkloadKind, name: &str) -> Result<Workload, WorkloadError> {
        get_workload(self.client, kind, name)
            .await?
            .ok_or_else(|| WorkloadError::NotFound {
                label: format!("{}/{name}", kind.resource()),
                namespace: self.client.namespace().to_string(),
                plural: format!("{}s", kind.kind().to_ascii_lowercase()),
            })
    }
}

/// What a reconcile did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub made: usize,
    pub removed: usize,
}

/// One step of a rollout: pods to make, pods to remove, or nothing but waiting for readiness.
#[derive(Debug, Default, PartialEq)]
struct Step {
    make: usize,
    remove: Vec<String>,
    waiting: bool,
}

/// A pod as a rollout step sees it: its name and whether it is ready.
type Seen = (String, bool);

fn seen(pods: &[PodView]) -> Vec<Seen> {
    pods.iter().map(|v| (v.name.clone(), is_ready(v))).collect()
}

/// What to do next, from the pods as they stand (newest first), as the Deployment controller
/// counts: at most `surge` pods over the count, at least count − `unavailable` ready.
fn plan(rollout: Rollout, replicas: usize, current: &[Seen], old: &[Seen]) -> Step {
    let ready = |pods: &[Seen]| pods.iter().filter(|(_, ready)| *ready).count();
    // The unready go first, then the oldest.
    let removal_order = |pods: &[Seen]| -> Vec<String> {
        let mut order: Vec<&Seen> = pods.iter().rev().collect();
        order.sort_by_key(|(_, ready)| *ready);
        order.iter().map(|(name, _)| name.clone()).collect()
    };
    if old.is_empty() || rollout == Rollout::OnDelete {
        let total = current.len() + old.len();
        return match total.cmp(&replicas) {
            std::cmp::Ordering::Less => Step {
                make: replicas - total,
                ..Step::default()
            },
            std::cmp::Ordering::Greater => {
                let mut order = removal_order(old);
                order.extend(removal_order(current));
                order.truncate(total - replicas);
                Step {
                    remove: order,
                    ..Step::default()
                }
            }
            std::cmp::Ordering::Equal => Step::default(),
        };
    }
    match rollout {
        Rollout::Recreate => Step {
            remove: old.iter().map(|(name, _)| name.clone()).collect(),
            ..Step::default()
        },
        Rollout::Rolling { surge, unavailable } => {
            let (surge, unavailable) = (surge as usize, unavailable as usize);
            let make = (replicas + surge)
                .saturating_sub(current.len() + old.len())
                .min(replicas.saturating_sub(current.len()));
            let min_available = replicas.saturating_sub(unavailable);
            let old_unready = old.len() - ready(old);
            let removable = (ready(current) + ready(old)).saturating_sub(min_available) + old_unready;
            let mut remove = removal_order(old);
            remove.truncate(removable.min(old.len()));
            let waiting = make == 0 && remove.is_empty();
            Step { make, remove, waiting }
        }
        Rollout::OnDelete => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests;
