//! The pod's host ports: the mappings CNI's portmap takes, and their claim under the host-wide
//! port lock, so no two pods (made or being made) and no host process hold the same one.

use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};

use crate::containerd::Client;
use crate::manifest::{Pod, Protocol};
use crate::member::Registry;
use crate::pod::intent::{self, Intent, IntentFile};
use crate::pod::{NetworkRecord, PodError, Settings, LABEL_POD_NAME};
use crate::sandbox::cni::PortMapping;

/// Under the host-wide port lock: the name is still free, no other pod (made or being made) maps
/// the pod's host ports, and the intent is on disk. The leftovers of interrupted operations that
/// map one of those ports are removed first (their stale DNAT rules would shadow ours).
pub(super) async fn claim_name_and_ports(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &Pod,
    intent: &Intent,
) -> Result<IntentFile, PodError> {
    let wanted = port_mappings(pod);
    let _lock = intent::lock_ports().await?;
    let clashes = |other: &Intent| {
        other.pod != pod.metadata.name
            && other
                .network
                .port_mappings
                .iter()
                .any(|theirs| wanted.iter().any(|ours| ports_clash(ours, theirs)))
    };
    for stale in intent::read_all(settings, client)
        .into_iter()
        .filter(|i| !i.owner.alive() && clashes(i))
    {
        eprintln!(
            "pod {}: {}; removing what it left, since it maps a host port of pod {}",
            stale.pod,
            stale.interruption(),
            pod.metadata.name
        );
        crate::pod::delete::finish_interrupted(client, settings, registry, &stale.pod).await?;
    }
    let sandboxes = crate::pod::lookup::list_sandboxes(client).await?;
    if sandboxes
        .iter()
        .any(|s| s.labels.get(LABEL_POD_NAME) == Some(&pod.metadata.name))
    {
        return Err(PodError::Exists {
            name: pod.metadata.name.clone(),
            namespace: client.namespace().to_string(),
        });
    }
    let mut taken: Vec<(String, PortMapping)> = sandboxes
        .iter()
        .filter_map(|s| Some((s.labels.get(LABEL_POD_NAME)?.clone(), NetworkRecord::of(s)?)))
        .flat_map(|(name, n)| n.port_mappings.into_iter().map(move |m| (name.clone(), m)))
        .collect();
    for other in intent::read_all(settings, client)
        .into_iter()
        .filter(|i| i.pod != pod.metadata.name)
    {
        taken.extend(other.network.port_mappings.into_iter().map(|m| (other.pod.clone(), m)));
    }
    check_host_ports(pod, &taken)?;
    intent::claim(settings, client, intent)
}

fn ports_clash(a: &PortMapping, b: &PortMapping) -> bool {
    a.host_port == b.host_port
        && a.protocol == b.protocol
        && (a.host_ip.is_empty() || b.host_ip.is_empty() || a.host_ip == b.host_ip)
}

/// The containers that run while the pod is up, with their field paths: sidecars, then the app
/// containers. Their ports are the pod's.
fn long_running_with_paths(pod: &Pod) -> impl Iterator<Item = (String, &crate::manifest::Container)> {
    let sidecars = pod
        .spec
        .init_containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_sidecar())
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let apps = pod
        .spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c));
    sidecars.chain(apps)
}

/// The pod's hostPort mappings, as CNI's portmap takes them. Under `hostNetwork` every
/// containerPort is a port of the host (recorded so other pods see it taken; nothing maps it).
pub(super) fn port_mappings(pod: &Pod) -> Vec<PortMapping> {
    let host_network = pod.spec.host_network;
    pod.long_running()
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            Some(PortMapping {
                host_port: if host_network { p.container_port } else { p.host_port? },
                container_port: p.container_port,
                protocol: p.protocol.as_str().to_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// portmap does not bind host ports, so a port held by a process or by another pod (`taken`, by
/// pod name) would be silently shadowed: refuse both before anything is made.
fn check_host_ports(pod: &Pod, taken: &[(String, PortMapping)]) -> Result<(), PodError> {
    for (path, container) in long_running_with_paths(pod) {
        for (pi, port) in container.ports.iter().enumerate() {
            // Under hostNetwork the container's own port is the host's.
            let (host_port, field) = match (pod.spec.host_network, port.host_port) {
                (true, _) => (port.container_port, format!("{path}.ports[{pi}].containerPort")),
                (false, Some(host_port)) => (host_port, format!("{path}.ports[{pi}].hostPort")),
                (false, None) => continue,
            };
            let protocol = port.protocol.as_str().to_lowercase();
            let ip_text = port.host_ip.clone().unwrap_or_default();
            let ours = PortMapping {
                host_port,
                container_port: port.container_port,
                protocol: protocol.clone(),
                host_ip: ip_text.clone(),
            };
            let taken_by = taken.iter().find(|(_, theirs)| ports_clash(&ours, theirs));
            let refuse = |cause: String| PodError::PortTaken {
                field: field.clone(),
                port: host_port,
                protocol: protocol.clone(),
                ip: if ip_text.is_empty() {
                    "0.0.0.0".into()
                } else {
                    ip_text.clone()
                },
                cause,
            };
            if let Some((other, _)) = taken_by {
                return Err(refuse(format!("podctl pod {other} maps it")));
            }
            let ip: IpAddr = ip_text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let bound = match port.protocol {
                Protocol::Udp => UdpSocket::bind((ip, host_port)).map(drop),
                _ => TcpListener::bind((ip, host_port)).map(drop),
            };
            bound.map_err(|e| refuse(format!("a host process holds it: {e}")))?;
        }
    }
    Ok(())
}
