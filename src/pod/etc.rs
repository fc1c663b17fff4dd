//! The files a pod's members share, as kubelet writes them: /etc/hosts (the pod's own name, its
//! FQDN under a `subdomain`, `hostAliases`), /etc/hostname, /etc/resolv.conf (the host's for the
//! default policies, merged with `dnsConfig`; only `dnsConfig` under `dnsPolicy: None`), and the
//! pod's one /dev/shm (the host's under `hostIPC`).

use std::path::Path;

use oci_spec::runtime::Mount;

use super::{io_error, PodError};
use crate::manifest::Pod;
use crate::sandbox::cni::CniResult;
use crate::spec;

/// kubelet's cluster domain; podctl has no cluster, but names under a subdomain keep its shape.
const CLUSTER_DOMAIN: &str = "cluster.local";

/// resolv.conf limits glibc honours (and the API server enforces for dnsConfig).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The pod's short hostname: `hostname`, else its name.
fn short_hostname(pod: &Pod) -> String {
    pod.spec.hostname.clone().unwrap_or_else(|| pod.metadata.name.clone())
}

/// Its fully qualified name under a subdomain, as cluster DNS would serve it.
fn fqdn(pod: &Pod) -> Option<String> {
    let subdomain = pod.spec.subdomain.as_ref()?;
    Some(format!(
        "{}.{subdomain}.{}.svc.{CLUSTER_DOMAIN}",
        short_hostname(pod),
        pod.metadata.namespace
    ))
}

/// The hostname its members see: the short one, or the FQDN under `setHostnameAsFQDN`; the
/// host's own under `hostNetwork` (its UTS namespace comes with its network).
pub(crate) fn hostname(pod: &Pod) -> String {
    if pod.spec.host_network {
        return crate::record::node_name();
    }
    match (pod.spec.set_hostname_as_fqdn, fqdn(pod)) {
        (true, Some(fqdn)) => fqdn,
        _ => short_hostname(pod),
    }
}

/// `/etc/hosts`: localhost, the pod's address under its names once it has one, then its aliases.
fn hosts(pod: &Pod, ip: Option<&str>) -> String {
    let mut hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
    let name = short_hostname(pod);
    if pod.spec.host_network {
        // In the host's network the host's names hold, as kubelet leaves them.
        hosts = std::fs::read_to_string("/etc/hosts").unwrap_or(hosts);
        if !hosts.ends_with('\n') {
            hosts.push('\n');
        }
    } else if let Some(ip) = ip {
        match fqdn(pod) {
            Some(fqdn) => hosts.push_str(&format!("{ip}\t{fqdn}\t{name}\n")),
            None => hosts.push_str(&format!("{ip}\t{name}\n")),
        }
    }
    if !pod.spec.host_aliases.is_empty() {
        hosts.push_str("\n# Entries added by HostAliases.\n");
        for alias in &pod.spec.host_aliases {
            hosts.push_str(&format!("{}\t{}\n", alias.ip, alias.hostnames.join("\t")));
        }
    }
    hosts
}

/// `/etc/resolv.conf` from the host's (`host`) and the pod's dnsPolicy and dnsConfig. There is no
/// cluster DNS, so ClusterFirst falls back to the host's, as kubelet does without one.
fn resolv_conf(pod: &Pod, host: &str) -> String {
    let (mut servers, mut searches, mut options) = (Vec::<String>::new(), Vec::<String>::new(), Vec::<String>::new());
    if pod.spec.dns_policy.as_deref() != Some("None") {
        for line in host.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => servers.extend(words.next().map(str::to_string)),
                Some("search" | "domain") => searches.extend(words.map(str::to_string)),
                Some("options") => options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
    }
    if let Some(config) = &pod.spec.dns_config {
        servers.extend(config.nameservers.iter().cloned());
        searches.extend(config.searches.iter().cloned());
        for option in &config.options {
            // The pod's option replaces the host's of the same name.
            options.retain(|o| o.split(':').next() != Some(option.name.as_str()));
            options.push(match &option.value {
                Some(value) => format!("{}:{value}", option.name),
                None => option.name.clone(),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    servers.retain(|s| seen.insert(s.clone()));
    servers.truncate(MAX_NAMESERVERS);
    let mut seen = std::collections::HashSet::new();
    searches.retain(|s| seen.insert(s.clone()));
    searches.truncate(MAX_SEARCHES);
    let mut out = String::new();
    for server in &servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// /etc/hosts, /etc/hostname and /etc/resolv.conf of a pod (rewritten in place: the members bind
/// mount these very files), and its one /dev/shm (mounted once; after a reboot again).
pub(crate) fn write_etc_files(state_dir: &Path, pod: &Pod, result: Option<&CniResult>) -> Result<Vec<Mount>, PodError> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let ip = result.and_then(CniResult::primary_ip);
    let mut mounts = Vec::new();
    for (file, content) in [
        ("hosts", hosts(pod, ip.as_deref())),
        ("hostname", format!("{}\n", hostname(pod))),
        ("resolv.conf", resolv_conf(pod, &host_resolv)),
    ] {
        let path = state_dir.join(file);
        std::fs::write(&path, content).map_err(io_error(&path))?;
        mounts.push(spec::bind_mount(&path, &format!("/etc/{file}"), false)?);
    }
    if pod.spec.host_ipc {
        // The host's IPC namespace comes with the host's POSIX shared memory.
        mounts.push(spec::bind_mount(Path::new("/dev/shm"), "/dev/shm", false)?);
    } else {
        let shm = state_dir.join("shm");
        crate::volume::prepare_shm(&shm)?;
        mounts.push(spec::bind_mount(&shm, "/dev/shm", false)?);
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{HostAlias, PodDnsConfig, PodDnsConfigOption};

    #[test]
    fn hosts_and_resolv_conf_follow_kubelet() {
        let mut pod = Pod::default();
        pod.metadata.name = "web".into();
        pod.spec.hostname = Some("box".into());
        pod.spec.subdomain = Some("team".into());
        pod.spec.host_aliases = vec![HostAlias {
            ip: "10.1.2.3".into(),
            hostnames: vec!["db".into(), "db.local".into()],
        }];
        let hosts = hosts(&pod, Some("10.89.0.9"));
        assert!(
            hosts.contains("10.89.0.9\tbox.team.default.svc.cluster.local\tbox\n"),
            "{hosts}"
        );
        assert!(
            hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tdb\tdb.local\n"),
            "{hosts}"
        );

        let host = "nameserver 192.0.2.53\nsearch example.com\noptions ndots:2 edns0\n";
        pod.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec!["192.0.2.99".into(), "192.0.2.53".into()],
            searches: vec!["svc.example".into()],
            options: vec![PodDnsConfigOption {
                name: "ndots".into(),
                value: Some("5".into()),
            }],
        });
        assert_eq!(
            resolv_conf(&pod, host),
            "nameserver 192.0.2.53\nnameserver 192.0.2.99\nsearch example.com svc.example\noptions edns0 ndots:5\n"
        );
        pod.spec.dns_policy = Some("None".into());
        assert_eq!(
            resolv_conf(&pod, host),
            "nameserver 192.0.2.99\nnameserver 192.0.2.53\nsearch svc.example\noptions ndots:5\n"
        );
    }
}
