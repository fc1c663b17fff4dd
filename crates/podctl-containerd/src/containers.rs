//! Container records: labels say which pod and member a container is, extensions carry podctl's
//! own JSON (the pod spec on the sandbox), so every command can rebuild its view from containerd.

use std::collections::HashMap;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, DeleteContainerRequest, GetContainerRequest, ListContainersRequest,
    UpdateContainerRequest,
};
use prost_types::{Any, FieldMask};

use super::{Client, Result, TaskRuntime, SNAPSHOTTER};

/// containerd keys OCI runtime specs by this type URL (what `ctr` and the CRI plugin write).
pub const OCI_SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// podctl's extensions are JSON; the type URL says so to anyone decoding the record.
const EXTENSION_TYPE_URL: &str = "podctl.io/json";

pub struct NewContainer {
    pub id: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// [`OCI_SPEC_TYPE_URL`] for tasks run by runc; other member runtimes store their own JSON.
    pub spec_type_url: &'static str,
    pub spec_json: Vec<u8>,
    /// Empty for members that have no rootfs snapshot.
    pub snapshot_key: String,
    pub extensions: HashMap<String, Vec<u8>>,
    /// The shim that runs its tasks (default: runc).
    pub runtime: TaskRuntime,
}

#[derive(Clone, Debug)]
pub struct ContainerRecord {
    pub id: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub snapshot_key: String,
    pub created: Option<f64>,
    pub extensions: HashMap<String, Vec<u8>>,
    pub spec_json: Vec<u8>,
}

impl From<Container> for ContainerRecord {
    fn from(c: Container) -> Self {
        ContainerRecord {
            created: super::timestamp_secs(&c.created_at),
            extensions: c.extensions.into_iter().map(|(k, v)| (k, v.value)).collect(),
            spec_json: c.spec.map(|s| s.value).unwrap_or_default(),
            id: c.id,
            image: c.image,
            labels: c.labels,
            snapshot_key: c.snapshot_key,
        }
    }
}

fn json_any(value: Vec<u8>) -> Any {
    Any {
        type_url: EXTENSION_TYPE_URL.into(),
        value,
    }
}

impl Client {
    pub async fn create_container(&self, lease: &str, new: NewContainer) -> Result<()> {
        let id = new.id.clone();
        let container = Container {
            id: new.id,
            labels: new.labels,
            image: new.image,
            runtime: Some(Runtime {
                name: new.runtime.name().to_string(),
                options: new.runtime.options(),
            }),
            spec: Some(Any {
                type_url: new.spec_type_url.into(),
                value: new.spec_json,
            }),
            snapshotter: if new.snapshot_key.is_empty() {
                String::new()
            } else {
                SNAPSHOTTER.into()
            },
            snapshot_key: new.snapshot_key,
            created_at: None,
            updated_at: None,
            extensions: new.extensions.into_iter().map(|(k, v)| (k, json_any(v))).collect(),
            sandbox: String::new(),
        };
        let mut containers = ContainersClient::new(self.channel());
        containers
            .create(self.request(
                CreateContainerRequest {
                    container: Some(container),
                },
                Some(lease),
            ))
            .await
            .map_err(self.status_error("create", format!("container {id}")))?;
        Ok(())
    }

    pub async fn get_container(&self, id: &str) -> Result<Option<ContainerRecord>> {
        let mut containers = ContainersClient::new(self.channel());
        let request = GetContainerRequest { id: id.to_string() };
        match containers
            .get(self.request(request, None))
            .await
            .map_err(self.status_error("get", format!("container {id}")))
        {
            Ok(response) => Ok(response.into_inner().container.map(Into::into)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists containers matching containerd filters such as `labels."io.kubernetes.pod.name"==echo`.
    pub async fn list_containers(&self, filters: &[String]) -> Result<Vec<ContainerRecord>> {
        let mut containers = ContainersClient::new(self.channel());
        let request = ListContainersRequest {
            filters: filters.to_vec(),
        };
        let response = containers
            .list(self.request(request, None))
            .await
            .map_err(self.status_error("list", "containers"))?;
        Ok(response.into_inner().containers.into_iter().map(Into::into).collect())
    }

    /// Replaces podctl extensions on a container record, in one update.
    pub async fn set_extensions(&self, id: &str, entries: &[(&str, Vec<u8>)]) -> Result<()> {
        let mut containers = ContainersClient::new(self.channel());
        let container = Container {
            id: id.to_string(),
            extensions: entries
                .iter()
                .map(|(key, value)| (key.to_string(), json_any(value.clone())))
                .collect(),
            ..Default::default()
        };
        let request = UpdateContainerRequest {
            container: Some(container),
            update_mask: Some(FieldMask {
                paths: entries.iter().map(|(key, _)| format!("extensions.{key}")).collect(),
            }),
        };
        containers
            .update(self.request(request, None))
            .await
            .map_err(self.status_error("update", format!("container {id}")))?;
        Ok(())
    }

    /// Replaces a container record's OCI spec (its type stays).
    pub async fn set_spec(&self, id: &str, spec_json: Vec<u8>) -> Result<()> {
        self.update_fields(oci_spec_record(id, spec_json), &["spec"]).await
    }

    /// Replaces a container record's OCI spec and the image it names, in one update (after its
    /// snapshot was made from that image).
    pub async fn set_spec_and_image(&self, id: &str, spec_json: Vec<u8>, image: &str) -> Result<()> {
        let container = Container {
            image: image.to_string(),
            ..oci_spec_record(id, spec_json)
        };
        self.update_fields(container, &["spec", "image"]).await
    }

    /// Writes the `paths` fields of `container` onto its record.
    async fn update_fields(&self, container: Container, paths: &[&str]) -> Result<()> {
        let id = container.id.clone();
        let request = UpdateContainerRequest {
            container: Some(container),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        };
        ContainersClient::new(self.channel())
            .update(self.request(request, None))
            .await
            .map_err(self.status_error("update", format!("container {id}")))?;
        Ok(())
    }

    /// Sets (or, with an empty value, removes) labels on a container record.
    pub async fn set_labels(&self, id: &str, labels: &[(&str, String)]) -> Result<()> {
        let mut containers = ContainersClient::new(self.channel());
        let container = Container {
            id: id.to_string(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            ..Default::default()
        };
        let request = UpdateContainerRequest {
            container: Some(container),
            update_mask: Some(FieldMask {
                paths: labels.iter().map(|(k, _)| format!("labels.{k}")).collect(),
            }),
        };
        containers
            .update(self.request(request, None))
            .await
            .map_err(self.status_error("update", format!("container {id}")))?;
        Ok(())
    }

    /// Deletes a container record; one that is already gone is fine.
    pub async fn delete_container(&self, id: &str) -> Result<()> {
        let mut containers = ContainersClient::new(self.channel());
        let request = DeleteContainerRequest { id: id.to_string() };
        match containers
            .delete(self.request(request, None))
            .await
            .map_err(self.status_error("delete", format!("container {id}")))
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }
}

/// A record carrying only its ID and an OCI spec, for an update.
fn oci_spec_record(id: &str, spec_json: Vec<u8>) -> Container {
    Container {
        id: id.to_string(),
        spec: Some(Any {
            type_url: OCI_SPEC_TYPE_URL.into(),
            value: spec_json,
        }),
        ..Default::default()
    }
}
