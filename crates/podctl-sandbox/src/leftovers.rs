//! Host-side traces of pods, found without any record: pinned netns under `/run/netns`
//! (`podctl-<sandbox ID>`), host-local IPAM reservations of a CNI network (a file per address
//! holding the container ID), and the nat-table rules CNI's bridge and portmap plugins comment
//! with the network's name and the container ID. `podctl gc` removes those of pods that no
//! longer exist.

use std::path::{Path, PathBuf};

use super::netns::NETNS_RUN_DIR;
use super::SandboxError;

/// Where host-local keeps a network's reservations.
const IPAM_DIR: &str = "/var/lib/cni/networks";

/// Sandbox IDs that have a pinned netns of podctl's.
pub fn netns_ids() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("podctl-").map(String::from))
        .collect()
}

/// (container ID, reservation file) of network `network`'s host-local reservations.
pub fn ipam_reservations(network: &str) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(Path::new(IPAM_DIR).join(network)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|f| f.parse::<std::net::IpAddr>().is_ok())
        })
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((text.lines().next()?.trim().to_string(), e.path()))
        })
        .collect()
}

/// A nat-table rule of a CNI plugin, as `iptables-save` prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct NatRule {
    pub container_id: String,
    /// `-A CHAIN ...` split into arguments.
    pub args: Vec<String>,
}

/// The nat rules that CNI plugins commented with network `network` and a container ID.
pub async fn nat_rules(network: &str) -> Result<Vec<NatRule>, SandboxError> {
    let output = run("iptables-save", &["-t", "nat"]).await?;
    Ok(parse_nat_rules(&output, network))
}

fn parse_nat_rules(save: &str, network: &str) -> Vec<NatRule> {
    let marker = format!("name: \\\"{network}\\\" id: \\\"");
    save.lines()
        .filter(|line| line.starts_with("-A "))
        .filter_map(|line| {
            let start = line.find(&marker)? + marker.len();
            let id = &line[start..start + line[start..].find('\\')?];
            Some(NatRule {
                container_id: id.to_string(),
                args: shell_words::split(line).ok()?,
            })
        })
        .collect()
}

/// Deletes the rules, then the `CNI-` chains they jumped to once nothing else refers to them.
pub async fn remove_nat_rules(rules: &[NatRule]) -> Result<(), SandboxError> {
    let mut chains = Vec::new();
    for rule in rules {
        let mut args: Vec<&str> = vec!["-t", "nat"];
        let mut spec = rule.args.iter().map(String::as_str);
        if spec.next() != Some("-A") {
            continue;
        }
        args.push("-D");
        args.extend(spec);
        if let Some(target) = rule.args.windows(2).find(|w| w[0] == "-j").map(|w| w[1].clone()) {
            if target.starts_with("CNI-") && !chains.contains(&target) {
                chains.push(target);
            }
        }
        // Gone already (another cleanup ran) is fine.
        let _ = run("iptables", &args).await;
    }
    let save = run("iptables-save", &["-t", "nat"]).await?;
    for chain in chains {
        let referenced = save.lines().any(|l| {
            l.starts_with("-A ")
                && l.split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| w == ["-j", chain.as_str()])
        });
        if !referenced {
            let _ = run("iptables", &["-t", "nat", "-F", &chain]).await;
            let _ = run("iptables", &["-t", "nat", "-X", &chain]).await;
        }
    }
    Ok(())
}

/// The first of portmap's DNAT rules for each of `mappings`' host ports must be the pod's own;
/// returns ((port, network), container) of a rule of another container that comes first.
pub async fn shadowed_host_port(
    mappings: &[super::cni::PortMapping],
    container_id: &str,
) -> Result<Option<((u16, String), String)>, SandboxError> {
    if mappings.is_empty() {
        return Ok(None);
    }
    let save = run("iptables-save", &["-t", "nat"]).await?;
    for mapping in mappings {
        if let Some((network, owner)) = first_dnat(&save, mapping.host_port, &mapping.protocol) {
            if owner != container_id {
                return Ok(Some(((mapping.host_port, network), owner)));
            }
        }
    }
    Ok(None)
}

/// (network, container) of the first rule of portmap's CNI-HOSTPORT-DNAT chain for the port.
fn first_dnat(save: &str, port: u16, protocol: &str) -> Option<(String, String)> {
    save.lines()
        .filter(|l| l.starts_with("-A CNI-HOSTPORT-DNAT "))
        .filter_map(|l| shell_words::split(l).ok())
        .find(|args| {
            let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
            let ports = value("--dports").or_else(|| value("--dport")).unwrap_or_default();
            value("-p").is_none_or(|p| p == protocol) && ports.split(',').any(|p| p == port.to_string())
        })
        .and_then(|args| {
            let comment = args.windows(2).find(|w| w[0] == "--comment").map(|w| w[1].clone())?;
            let field = |key: &str| {
                let start = comment.find(&format!("{key}: \""))? + key.len() + 3;
                Some(comment[start..start + comment[start..].find('"')?].to_string())
            };
            Some((field("name")?, field("id")?))
        })
}

async fn run(program: &str, args: &[&str]) -> Result<String, SandboxError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|source| SandboxError::Tool {
            tool: program.to_string(),
            message: source.to_string(),
        })?;
    if !output.status.success() {
        return Err(SandboxError::Tool {
            tool: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_dnat_rule_of_a_port_names_its_container() {
        let save = r#"-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"other\" id: \"ghost\"" -m multiport --dports 19483,80 -j CNI-DN-1
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podctl\" id: \"web-1\"" -m multiport --dports 19483 -j CNI-DN-2
"#;
        assert_eq!(first_dnat(save, 19483, "tcp"), Some(("other".into(), "ghost".into())));
        assert_eq!(first_dnat(save, 19483, "udp"), None);
        assert_eq!(first_dnat(save, 8080, "tcp"), None);
    }

    #[test]
    fn rules_are_found_by_the_network_and_container_in_their_comment() {
        let save = r#"*nat
:CNI-abc - [0:0]
-A POSTROUTING -s 10.89.0.5/32 -m comment --comment "name: \"podctl\" id: \"web-1234abcd\"" -j CNI-abc
-A CNI-abc -d 10.89.0.0/16 -m comment --comment "name: \"podctl\" id: \"web-1234abcd\"" -j ACCEPT
-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"other\" id: \"x\"" -j CNI-def
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podctl\" id: \"web-1234abcd\"" -m multiport --dports 8080 -j CNI-DN-123
COMMIT
"#;
        let rules = parse_nat_rules(save, "podctl");
        assert_eq!(rules.len(), 3);
        assert!(rules.iter().all(|r| r.container_id == "web-1234abcd"));
        assert_eq!(rules[0].args[..2], ["-A", "POSTROUTING"]);
        assert!(rules[0]
            .args
            .contains(&"name: \"podctl\" id: \"web-1234abcd\"".to_string()));
    }
}
