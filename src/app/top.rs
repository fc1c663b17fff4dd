//! `podctl top pod`: kubectl's CPU(cores) and MEMORY(bytes) of each pod (or member), without a
//! metrics daemon: an OCI member's cgroup is read twice over a short window (its CPU time, its
//! working set = usage minus inactive file pages, as kubelet reports it), cgroup v1 or v2, found
//! through /proc/PID/cgroup whatever the cgroup driver. A member a plugin runs (WASM) reports what
//! the plugin counts, through the pod's agent: its linear memory in use and its CPU time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::format;
use crate::cli::TopArgs;
use crate::containerd::Client;
use crate::manifest::selector::Selector;
use crate::member::Registry;
use crate::pod::{self, PodView, Settings};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Where a process's CPU time and memory are counted.
#[derive(Debug, Clone, PartialEq)]
enum Cgroup {
    /// cgroup v2: one directory.
    Unified(PathBuf),
    /// cgroup v1: the cpuacct and memory hierarchies' directories.
    Legacy { cpuacct: PathBuf, memory: PathBuf },
}

/// The cgroup of `pid`, from its /proc/PID/cgroup lines (`0::/path`, `4:cpu,cpuacct:/path`).
fn cgroup_of(proc_cgroup: &str) -> Option<Cgroup> {
    let mut cpuacct = None;
    let mut memory = None;
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            unified = Some(Path::new(CGROUP_ROOT).join(path));
        }
        for controller in controllers.split(',') {
            match controller {
                "cpuacct" => cpuacct = Some(Path::new(CGROUP_ROOT).join(controllers).join(path)),
                "memory" => memory = Some(Path::new(CGROUP_ROOT).join("memory").join(path)),
                _ => {}
            }
        }
    }
    match (cpuacct, memory, unified) {
        (Some(cpuacct), Some(memory), _) => Some(Cgroup::Legacy { cpuacct, memory }),
        (_, _, Some(dir)) => Some(Cgroup::Unified(dir)),
        _ => None,
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `key value` line of a stat file.
fn stat_value(path: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Cgroup {
    /// CPU time used so far, in nanoseconds.
    fn cpu_nanos(&self) -> Option<u64> {
        match self {
            Cgroup::Unified(dir) => stat_value(&dir.join("cpu.stat"), "usage_usec").map(|us| us * 1000),
            Cgroup::Legacy { cpuacct, .. } => read_u64(&cpuacct.join("cpuacct.usage")),
        }
    }

    /// The working set: memory in use minus what the kernel may drop at once (inactive file pages).
    fn working_set(&self) -> Option<u64> {
        let (usage, inactive) = match self {
            Cgroup::Unified(dir) => (
                read_u64(&dir.join("memory.current"))?,
                stat_value(&dir.join("memory.stat"), "inactive_file").unwrap_or(0),
            ),
            Cgroup::Legacy { memory, .. } => (
                read_u64(&memory.join("memory.usage_in_bytes"))?,
                stat_value(&memory.join("memory.stat"), "total_inactive_file").unwrap_or(0),
            ),
        };
        Some(usage.saturating_sub(inactive))
    }
}

/// One measured member.
struct Usage {
    pod: String,
    member: String,
    /// None: not measurable here (not running, or run inside a plugin).
    millicores: Option<u64>,
    bytes: Option<u64>,
}

/// What a pod's plugins count for their members, by member name: (memory bytes, CPU nanoseconds).
type PluginUsage = std::collections::HashMap<String, (Option<u64>, Option<u64>)>;

async fn plugin_usage(client: &Client, settings: &Settings, pod: &PodView) -> PluginUsage {
    let dir = settings.pod_state_dir(client, &pod.sandbox_id);
    match crate::agent::client::status(&pod.name, &dir).await {
        Ok(reply) => reply
            .members
            .into_iter()
            .map(|m| (m.name, (m.memory_bytes, m.cpu_nanos)))
            .collect(),
        Err(_) => PluginUsage::new(),
    }
}

pub async fn top(client: &Client, settings: &Settings, registry: &Registry, args: &TopArgs) -> Result<()> {
    let pods = pods_to_measure(client, settings, registry, args).await?;
    let mut usages = measure(client, settings, &pods, args.window).await;
    let rows = if args.containers {
        member_rows(&mut usages, args)
    } else {
        pod_rows(&pods, &usages, args)
    };
    let text = format::tabulate(rows);
    for line in text.lines().skip(usize::from(args.no_headers)) {
        println!("{line}");
    }
    if usages.iter().any(|u| u.millicores.is_none()) {
        eprintln!("note: `<unknown>` is a member that is not running, or one whose plugin does not count what it uses");
    }
    Ok(())
}

/// The pods named or selected; at least one.
async fn pods_to_measure(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &TopArgs,
) -> Result<Vec<PodView>> {
    let mut pods: Vec<PodView> = pod::list_pods(client, settings, registry).await?;
    if let Some(name) = &args.name {
        pods.retain(|p| &p.name == name);
        if pods.is_empty() {
            return Err(pod::PodError::NotFound {
                name: name.clone(),
                namespace: client.namespace().to_string(),
            }
            .into());
        }
    }
    if let Some(selector) = &args.selector {
        let selector = Selector::parse(selector)?;
        pods.retain(|p| selector.matches(&super::get::pod_labels(p)));
    }
    if pods.is_empty() {
        bail!("no pods to measure in containerd namespace {}", client.namespace());
    }
    Ok(pods)
}

/// Each measurable member sampled twice over the window: an OCI member's cgroup, a member a
/// plugin runs through what the plugin counts (asked of the pod's agent).
async fn measure(client: &Client, settings: &Settings, pods: &[PodView], window: Duration) -> Vec<Usage> {
    let mut measured = Vec::new();
    for pod in pods {
        for member in &pod.members {
            let cgroup = match (member.in_agent && !member.own_process, member.pid) {
                (false, Some(pid)) => std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .ok()
                    .as_deref()
                    .and_then(cgroup_of),
                _ => None,
            };
            let first = cgroup.as_ref().and_then(Cgroup::cpu_nanos);
            measured.push((pod, member, cgroup, first));
        }
    }
    let hosted: Vec<&PodView> = pods.iter().filter(|p| p.members.iter().any(|m| m.in_agent)).collect();
    let mut before = Vec::new();
    for pod in &hosted {
        before.push(plugin_usage(client, settings, pod).await);
    }
    let began = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = began.elapsed().max(Duration::from_millis(1));
    let mut after = Vec::new();
    for pod in &hosted {
        after.push(plugin_usage(client, settings, pod).await);
    }
    let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 / elapsed.as_nanos() as f64 * 1000.0).round() as u64;
    measured
        .into_iter()
        .map(|(pod, member, cgroup, first)| {
            if member.in_agent && cgroup.is_none() {
                let index = hosted.iter().position(|p| p.sandbox_id == pod.sandbox_id);
                let sample = |samples: &[PluginUsage]| index.and_then(|i| samples[i].get(&member.name).copied());
                let (first, last) = (sample(&before), sample(&after));
                return Usage {
                    pod: pod.name.clone(),
                    member: member.name.clone(),
                    millicores: match (first.and_then(|f| f.1), last.and_then(|l| l.1)) {
                        (Some(a), Some(b)) => Some(rate(a, b)),
                        _ => None,
                    },
                    bytes: last.and_then(|l| l.0),
                };
            }
            let last = cgroup.as_ref().and_then(Cgroup::cpu_nanos);
            Usage {
                pod: pod.name.clone(),
                member: member.name.clone(),
                millicores: match (first, last) {
                    (Some(a), Some(b)) => Some(rate(a, b)),
                    _ => None,
                },
                bytes: cgroup.as_ref().and_then(Cgroup::working_set),
            }
        })
        .collect()
}

/// `--containers`: a row per member.
fn member_rows(usages: &mut [Usage], args: &TopArgs) -> Vec<Vec<String>> {
    if let Some(key) = &args.sort_by {
        sort(usages, key, |u| (u.millicores, u.bytes));
    }
    let mut rows = vec![vec![
        "POD".into(),
        "NAME".into(),
        "CPU(cores)".into(),
        "MEMORY(bytes)".into(),
    ]];
    rows.extend(
        usages
            .iter()
            .map(|u| vec![u.pod.clone(), u.member.clone(), cores(u.millicores), mebibytes(u.bytes)]),
    );
    rows
}

/// A row per pod: its members' usage summed.
fn pod_rows(pods: &[PodView], usages: &[Usage], args: &TopArgs) -> Vec<Vec<String>> {
    let mut per_pod: Vec<(String, Option<u64>, Option<u64>)> = Vec::new();
    for pod in pods {
        let mine: Vec<&Usage> = usages.iter().filter(|u| u.pod == pod.name).collect();
        // What could be measured, summed; unknown only when nothing could.
        let sum = |f: fn(&Usage) -> Option<u64>| mine.iter().filter_map(|u| f(u)).reduce(|a, b| a + b);
        per_pod.push((pod.name.clone(), sum(|u| u.millicores), sum(|u| u.bytes)));
    }
    if let Some(key) = &args.sort_by {
        sort(&mut per_pod, key, |p| (p.1, p.2));
    }
    let mut rows = vec![vec!["NAME".into(), "CPU(cores)".into(), "MEMORY(bytes)".into()]];
    rows.extend(
        per_pod
            .iter()
            .map(|(name, cpu, mem)| vec![name.clone(), cores(*cpu), mebibytes(*mem)]),
    );
    rows
}

/// Highest first by `cpu` or `memory`.
fn sort<T>(items: &mut [T], key: &str, values: impl Fn(&T) -> (Option<u64>, Option<u64>)) {
    items.sort_by_key(|item| {
        let (cpu, memory) = values(item);
        std::cmp::Reverse(if key == "memory" { memory } else { cpu })
    });
}

fn cores(millicores: Option<u64>) -> String {
    millicores.map_or_else(|| "<unknown>".into(), |m| format!("{m}m"))
}

fn mebibytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "<unknown>".into(), |b| format!("{}Mi", b.div_ceil(1 << 20)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_are_found_from_proc_self_cgroup() {
        let v1 = "12:memory:/podctl/p-1-web\n4:cpu,cpuacct:/podctl/p-1-web\n0::/\n";
        assert_eq!(
            cgroup_of(v1),
            Some(Cgroup::Legacy {
                cpuacct: "/sys/fs/cgroup/cpu,cpuacct/podctl/p-1-web".into(),
                memory: "/sys/fs/cgroup/memory/podctl/p-1-web".into(),
            })
        );
        assert_eq!(
            cgroup_of("0::/podctl/p-1-web\n"),
            Some(Cgroup::Unified("/sys/fs/cgroup/podctl/p-1-web".into()))
        );
        assert_eq!(mebibytes(Some(3 << 20)), "3Mi");
        assert_eq!(cores(Some(250)), "250m");
    }
}
