//! `podctl describe pod`: the pod as kubectl describes it, plus what podctl adds (the sandbox, its
//! namespaces, each member's runtime, PID and log).

use std::fmt::Write as _;

use super::format::{age, key_values, probe_line, rfc3339, state_line, tabulate, LOST_TO_RESTART};
use crate::manifest::Pod;
use crate::pod::{node_name, MemberView, PodView};

pub fn describe(pod: &PodView) -> String {
    let mut out = String::new();
    let manifest = pod.pod.as_ref();
    describe_pod(&mut out, pod, manifest);
    let _ = writeln!(out, "Containers:");
    for member in &pod.members {
        describe_member(&mut out, member, manifest);
    }
    describe_events(&mut out, pod);
    out
}

/// The pod's own lines: names, status, IP, sandbox and namespaces.
fn describe_pod(out: &mut String, pod: &PodView, manifest: Option<&Pod>) {
    let labels = manifest.map(|p| p.metadata.labels.clone()).unwrap_or_default();
    let annotations = manifest.map(|p| p.metadata.annotations.clone()).unwrap_or_default();
    let pause_pid = pod.sandbox_task.as_ref().map(|t| t.pid).unwrap_or_default();
    let _ = writeln!(out, "Name:         {}", pod.name);
    let _ = writeln!(out, "Namespace:    {}", pod.namespace);
    let _ = writeln!(out, "UID:          {}", pod.uid);
    let _ = writeln!(out, "Node:         {}", node_name());
    let _ = writeln!(
        out,
        "Start Time:   {}",
        rfc3339(pod.created).as_str().unwrap_or("<unknown>")
    );
    let _ = writeln!(out, "Labels:       {}", key_values(&labels));
    let _ = writeln!(out, "Annotations:  {}", key_values(&annotations));
    let _ = writeln!(out, "Status:       {}", pod.phase());
    if let Some(why) = &pod.interrupted {
        let _ = writeln!(
            out,
            "Reason:       {why}; `podctl delete {}` removes what it left",
            pod.name
        );
    }
    if pod.lost_to_restart {
        let _ = writeln!(out, "Reason:       {}", LOST_TO_RESTART);
    }
    let _ = writeln!(out, "IP:           {}", pod.ip().unwrap_or_else(|| "<none>".into()));
    let _ = writeln!(out, "Sandbox:      {} (pause pid {pause_pid})", pod.sandbox_id);
    let _ = writeln!(out, "Namespaces:");
    if let Some(network) = &pod.network {
        let net = match network.host_network {
            true => "the host's (hostNetwork)".to_string(),
            false => network.netns.display().to_string(),
        };
        let _ = writeln!(out, "  {:<12}{net}", "net:");
    }
    let shared_pid = manifest.is_some_and(|p| p.spec.share_process_namespace);
    let mut shared = vec!["ipc", "uts"];
    if shared_pid {
        shared.push("pid");
    }
    for kind in shared {
        let _ = writeln!(out, "  {:<12}/proc/{pause_pid}/ns/{kind}", format!("{kind}:"));
    }
}

/// One member: its container, runtime, state, probes, environment, mounts and log.
fn describe_member(out: &mut String, member: &MemberView, manifest: Option<&Pod>) {
    let spec = manifest.and_then(|p| p.container(&member.name));
    let _ = writeln!(out, "  {}:", member.name);
    let _ = writeln!(out, "    Container ID:   containerd://{}", member.id);
    let _ = writeln!(out, "    Image:          {}", member.image);
    let runtime = match member.record.labels.get(crate::record::LABEL_RUNTIME_HANDLER) {
        Some(handler) => format!("{} (handler {handler})", member.runtime),
        None => member.runtime.clone(),
    };
    let _ = writeln!(out, "    Runtime:        {runtime}");
    if let Some(pid) = member.pid {
        let label = if member.in_agent && !member.own_process {
            "Agent PID:      "
        } else {
            "PID:            "
        };
        let _ = writeln!(out, "    {label}{pid}");
    }
    for port in spec.map(|c| c.ports.as_slice()).unwrap_or_default() {
        let host = match port.host_port {
            Some(hp) => format!(" -> {}:{hp}", port.host_ip.as_deref().unwrap_or("0.0.0.0")),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "    Port:           {}/{}{host}",
            port.container_port,
            port.protocol.as_str()
        );
    }
    let _ = writeln!(out, "    State:          {}", state_line(&member.state()));
    if let Some(message) = &member.message {
        let _ = writeln!(out, "      Message:      {}", message.trim_end());
    }
    if let Some(last) = member.last_state() {
        let _ = writeln!(
            out,
            "    Last State:     Terminated\n      Reason:       {}\n      Exit Code:    {}\n      Finished:     {}",
            last["reason"].as_str().unwrap_or(""),
            last["exitCode"],
            rfc3339(last["finishedAt"].as_f64()).as_str().unwrap_or("")
        );
        if let Some(message) = last["message"].as_str() {
            let _ = writeln!(out, "      Message:      {}", message.trim_end());
        }
    }
    let _ = writeln!(
        out,
        "    Ready:          {}",
        if member.ready() { "True" } else { "False" }
    );
    let _ = writeln!(out, "    Restart Count:  {}", member.restarts);
    if let Some(container) = spec {
        for (label, probe) in [
            ("Liveness", &container.liveness_probe),
            ("Readiness", &container.readiness_probe),
            ("Startup", &container.startup_probe),
        ] {
            if let Some(probe) = probe {
                let _ = writeln!(
                    out,
                    "    {label}:{:>width$}{}",
                    "",
                    probe_line(probe),
                    width = 15 - label.len()
                );
            }
        }
    }
    if let Some(probe) = &member.probe {
        let _ = writeln!(out, "    Last Probe:     {probe}");
    }
    if let Some(container) = spec {
        if !container.env.is_empty() {
            let _ = writeln!(out, "    Environment:");
            for var in &container.env {
                let _ = writeln!(out, "      {}:  {}", var.name, var.value);
            }
        }
        if !container.volume_mounts.is_empty() {
            let _ = writeln!(out, "    Mounts:");
            for mount in &container.volume_mounts {
                let mode = if mount.read_only { "ro" } else { "rw" };
                let _ = writeln!(out, "      {} from {} ({mode})", mount.mount_path, mount.name);
            }
        }
    }
    if let Some(log) = &member.log_path {
        let _ = writeln!(out, "    Log:            {}", log.display());
    }
}

fn describe_events(out: &mut String, pod: &PodView) {
    let _ = writeln!(out, "Events:");
    if pod.events.is_empty() {
        let _ = writeln!(out, "  <none>");
    } else {
        let mut rows = vec![vec![
            "  Type".to_string(),
            "Reason".into(),
            "Age".into(),
            "From".into(),
            "Message".into(),
        ]];
        for event in &pod.events {
            let object = if event.object.is_empty() {
                "pod".to_string()
            } else {
                event.object.clone()
            };
            rows.push(vec![
                format!("  {}", event.kind),
                event.reason.clone(),
                age(Some(event.time)),
                format!("podctl/{object}"),
                event.message.clone(),
            ]);
        }
        out.push_str(&tabulate(rows));
    }
}
