//! Leases: keep what a multi-step operation creates (blobs, snapshots) alive until the records that
//! reference it exist, then let go so containerd's GC owns the lifetime.

use std::collections::HashMap;

use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest, ListRequest};

use super::{Client, Result};

impl Client {
    /// Creates a lease that expires by itself after 24h should podctl die before deleting it.
    pub async fn create_lease(&self, purpose: &str) -> Result<String> {
        let id = format!("podctl-{purpose}-{}", random_hex(8));
        let labels = HashMap::from([("containerd.io/gc.expire".to_string(), expiry_rfc3339(24 * 3600))]);
        let mut leases = LeasesClient::new(self.channel());
        leases
            .create(self.request(CreateRequest { id: id.clone(), labels }, None))
            .await
            .map_err(self.status_error("create", format!("lease {id}")))?;
        Ok(id)
    }

    /// A lease with a chosen ID (kept if it exists): what a pull writes stays under it across
    /// interrupted tries, so the next try resumes, and expires by itself after `ttl_secs`.
    pub async fn ensure_lease(&self, id: &str, ttl_secs: u64) -> Result<()> {
        let labels = HashMap::from([("containerd.io/gc.expire".to_string(), expiry_rfc3339(ttl_secs))]);
        let mut leases = LeasesClient::new(self.channel());
        match leases
            .create(self.request(
                CreateRequest {
                    id: id.to_string(),
                    labels,
                },
                None,
            ))
            .await
            .map_err(self.status_error("create", format!("lease {id}")))
        {
            Err(e) if e.is_already_exists() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    pub async fn delete_lease(&self, id: &str) -> Result<()> {
        let mut leases = LeasesClient::new(self.channel());
        let request = DeleteRequest {
            id: id.to_string(),
            sync: false,
        };
        match leases
            .delete(self.request(request, None))
            .await
            .map_err(self.status_error("delete", format!("lease {id}")))
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    pub async fn list_leases(&self) -> Result<Vec<String>> {
        let mut leases = LeasesClient::new(self.channel());
        let response = leases
            .list(self.request(ListRequest { filters: vec![] }, None))
            .await
            .map_err(self.status_error("list", "leases"))?;
        Ok(response.into_inner().leases.into_iter().map(|l| l.id).collect())
    }
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the kernel's random source is available");
    hex::encode(buf)
}

fn expiry_rfc3339(seconds_from_now: u64) -> String {
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds_from_now);
    humantime::format_rfc3339_seconds(at).to_string()
}
