//! ConfigMap and Secret objects as podctl keeps them: in containerd ([`crate::record::objects`]), in
//! the pod's containerd namespace (containerd's root directory is root-only, so Secrets are too);
//! created, applied, replaced, listed and removed here. What pods read from them is
//! [`super::config_refs`].

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::PodError;
use crate::containerd::Client;
use crate::manifest::config_objects::{ConfigMap, ConfigMeta, Secret};
use crate::record::objects;

/// A ConfigMap or a Secret.
pub trait ConfigObject: Serialize + DeserializeOwned + Clone + PartialEq {
    /// The kind in containerd's labels and in the manifest.
    const KIND: &'static str;
    /// How commands and messages name the kind (`configmap`).
    const RESOURCE: &'static str;
    fn meta(&self) -> &ConfigMeta;
    fn meta_mut(&mut self) -> &mut ConfigMeta;
}

impl ConfigObject for ConfigMap {
    const KIND: &'static str = "ConfigMap";
    const RESOURCE: &'static str = "configmap";
    fn meta(&self) -> &ConfigMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ConfigMeta {
        &mut self.metadata
    }
}

impl ConfigObject for Secret {
    const KIND: &'static str = "Secret";
    const RESOURCE: &'static str = "secret";
    fn meta(&self) -> &ConfigMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ConfigMeta {
        &mut self.metadata
    }
}

fn damaged<T: ConfigObject>(name: &str, message: String) -> PodError {
    PodError::ObjectDamaged {
        kind: T::RESOURCE.into(),
        name: name.to_string(),
        message,
    }
}

fn parse<T: ConfigObject>(name: &str, json: &[u8]) -> Result<T, PodError> {
    // (serde's message names a field or a position, never the value.)
    serde_json::from_slice(json).map_err(|e| damaged::<T>(name, e.to_string()))
}

/// Stores a new object; one of that name must not exist (as `kubectl create`). Returns it as
/// stored, with its creation time and UID.
pub async fn create_object<T: ConfigObject>(client: &Client, object: &T) -> Result<T, PodError> {
    let name = &object.meta().name;
    if objects::get(client, T::KIND, name).await?.is_some() {
        return Err(PodError::ObjectExists {
            kind: T::RESOURCE.into(),
            name: name.clone(),
        });
    }
    let mut stored = object.clone();
    let meta = stored.meta_mut();
    meta.creation_timestamp = Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    meta.uid = Some(crate::record::new_uid());
    objects::put(
        client,
        T::KIND,
        name,
        &serde_json::to_vec(&stored).expect("objects serialize"),
    )
    .await?;
    Ok(stored)
}

pub async fn get_object<T: ConfigObject>(client: &Client, name: &str) -> Result<Option<T>, PodError> {
    match objects::get(client, T::KIND, name).await? {
        Some(json) => Ok(Some(parse(name, &json)?)),
        None => Ok(None),
    }
}

pub async fn list_objects<T: ConfigObject>(client: &Client) -> Result<Vec<T>, PodError> {
    let mut found = Vec::new();
    for (name, json) in objects::list(client, T::KIND).await? {
        found.push(parse(&name, &json)?);
    }
    Ok(found)
}

/// Removes it; ObjectNotFound if there is none.
pub async fn delete_object<T: ConfigObject>(client: &Client, name: &str) -> Result<(), PodError> {
    match objects::delete(client, T::KIND, name).await? {
        true => Ok(()),
        false => Err(PodError::ObjectNotFound {
            kind: T::RESOURCE.into(),
            name: name.to_string(),
        }),
    }
}

/// What `apply` did to an object.
pub enum Applied<T> {
    Created,
    /// Replaced; the version before, for a rollback.
    Configured(T),
    Unchanged,
}

/// The object as the user means it, without what podctl stamps on when storing it.
fn as_written<T: ConfigObject>(object: &T) -> T {
    let mut plain = object.clone();
    let meta = plain.meta_mut();
    meta.creation_timestamp = None;
    meta.uid = None;
    plain
}

/// `kubectl apply` for a ConfigMap or Secret: created when missing, replaced when it differs
/// (keeping its creation time and UID), left alone when it is the same. An immutable one refuses
/// a change, as the API server does.
pub async fn apply_object<T: ConfigObject>(client: &Client, object: &T) -> Result<Applied<T>, PodError> {
    let name = &object.meta().name;
    let Some(stored) = get_object::<T>(client, name).await? else {
        create_object(client, object).await?;
        return Ok(Applied::Created);
    };
    if as_written(&stored) == as_written(object) {
        return Ok(Applied::Unchanged);
    }
    if stored_immutable(&stored)? {
        return Err(PodError::ObjectImmutable {
            kind: T::RESOURCE.into(),
            name: name.clone(),
        });
    }
    let mut next = object.clone();
    let meta = next.meta_mut();
    meta.creation_timestamp = stored.meta().creation_timestamp.clone();
    meta.uid = stored.meta().uid.clone();
    put_object(client, &next).await?;
    Ok(Applied::Configured(stored))
}

/// Whether a stored object says `immutable: true`.
fn stored_immutable<T: ConfigObject>(stored: &T) -> Result<bool, PodError> {
    let json = serde_json::to_value(stored).expect("objects serialize");
    Ok(json.get("immutable").and_then(serde_json::Value::as_bool) == Some(true))
}

/// Stores this version of the object, replacing the one there (an apply, or its rollback).
pub async fn put_object<T: ConfigObject>(client: &Client, object: &T) -> Result<(), PodError> {
    let json = serde_json::to_vec(object).expect("objects serialize");
    objects::put(client, T::KIND, &object.meta().name, &json).await?;
    Ok(())
}
