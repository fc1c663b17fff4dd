//! What ADD leaves: the pod's addresses, read from the last plugin's result (only those on the
//! pod's side; 0.2.0's `ip4`/`ip6` shape too), kept with the raw result DEL must get back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What ADD produced: the pod's addresses, plus the raw final result that DEL must get back as
/// `prevResult` (store it with the pod).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CniResult {
    /// Addresses on the pod's interface(s) in CIDR form, e.g. "10.89.0.5/16".
    pub ips: Vec<String>,
    pub raw: Value,
}

impl CniResult {
    /// The first IPv4 address (else the first address), without the prefix length.
    pub fn primary_ip(&self) -> Option<String> {
        let ip = self
            .ips
            .iter()
            .find(|ip| !ip.contains(':'))
            .or_else(|| self.ips.first())?;
        Some(ip.split('/').next().unwrap_or(ip).to_string())
    }

    /// A `hostNetwork` pod's "result": the host's address, as the pod's IP.
    pub fn host(ip: &str) -> CniResult {
        CniResult {
            ips: vec![ip.to_string()],
            raw: serde_json::json!({ "hostNetwork": true }),
        }
    }

    /// Every address of the pod, the primary first, without prefix lengths.
    pub fn all_ips(&self) -> Vec<String> {
        let bare = |ip: &String| ip.split('/').next().unwrap_or(ip).to_string();
        let primary = self.primary_ip();
        primary
            .iter()
            .cloned()
            .chain(self.ips.iter().map(bare).filter(|ip| Some(ip) != primary.as_ref()))
            .collect()
    }

    pub(super) fn from_raw(raw: Value) -> CniResult {
        let interfaces = raw["interfaces"].as_array();
        // Only addresses on sandbox-side interfaces are the pod's; bridge also reports the
        // host-side veth and the bridge itself in `interfaces`.
        let in_sandbox = |ip: &Value| match (ip["interface"].as_u64(), interfaces) {
            (Some(i), Some(ifs)) => ifs
                .get(i as usize)
                .and_then(|iface| iface["sandbox"].as_str())
                .is_some_and(|s| !s.is_empty()),
            _ => true,
        };
        let entries = raw["ips"].as_array().map_or(&[][..], Vec::as_slice);
        let address = |ip: &Value| ip["address"].as_str().map(str::to_string);
        let mut ips: Vec<String> = entries.iter().filter(|ip| in_sandbox(ip)).filter_map(address).collect();
        if ips.is_empty() {
            ips = entries.iter().filter_map(address).collect();
        }
        // cniVersion 0.2.0 results carry `ip4`/`ip6` instead of `ips`.
        for key in ["ip4", "ip6"] {
            if let Some(ip) = raw[key]["ip"].as_str() {
                ips.push(ip.to_string());
            }
        }
        CniResult { ips, raw }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_ips_are_sandbox_side_and_primary_is_ipv4() {
        let raw = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "podctl0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:00"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"address": "10.89.0.1/16", "interface": 0},
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.89.0.5/16", "gateway": "10.89.0.1", "interface": 2}
            ]
        });
        let r = CniResult::from_raw(raw);
        assert_eq!(r.ips, ["fd00::5/64", "10.89.0.5/16"]);
        assert_eq!(r.primary_ip().as_deref(), Some("10.89.0.5"));
        // Old 0.2.0 shape.
        let r = CniResult::from_raw(json!({"ip4": {"ip": "10.1.2.3/24"}}));
        assert_eq!(r.primary_ip().as_deref(), Some("10.1.2.3"));
        assert_eq!(CniResult::from_raw(json!({})).primary_ip(), None);
        // Round-trips through serde, as the pod store will keep it.
        let r2: CniResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(r2.ips, r.ips);
    }
}
