//! The store of RuntimeClass objects: kept in containerd ([`crate::record::objects`]), named by
//! pods' `spec.runtimeClassName`, each naming a handler of the runtime config. (The kind's model
//! is [`crate::manifest::runtime_class`].)

use super::PodError;
use crate::containerd::Client;
use crate::manifest::runtime_class::RuntimeClass;
use crate::record::objects;

const KIND: &str = "RuntimeClass";

/// Stores a new RuntimeClass; one of that name must not exist (as `kubectl create`).
pub async fn create_runtime_class(client: &Client, class: &RuntimeClass) -> Result<(), PodError> {
    let name = &class.metadata.name;
    if objects::get(client, KIND, name).await?.is_some() {
        return Err(PodError::ObjectExists {
            kind: "runtimeclass".into(),
            name: name.clone(),
        });
    }
    let json = serde_json::to_vec(class).expect("runtime classes serialize");
    objects::put(client, KIND, name, &json).await?;
    Ok(())
}

pub async fn list_runtime_classes(client: &Client) -> Result<Vec<RuntimeClass>, PodError> {
    let mut classes = Vec::new();
    for (name, json) in objects::list(client, KIND).await? {
        classes.push(parse(&name, &json)?);
    }
    Ok(classes)
}

/// Removes it; NotFound if there is none.
pub async fn delete_runtime_class(client: &Client, name: &str) -> Result<(), PodError> {
    match objects::delete(client, KIND, name).await? {
        true => Ok(()),
        false => Err(PodError::ObjectNotFound {
            kind: "runtimeclass".into(),
            name: name.to_string(),
        }),
    }
}

/// The handler a pod's `runtimeClassName` means: the RuntimeClass of that name's, else (podctl's
/// shortcut, there being no cluster) the runtime config's handler of that name.
pub async fn handler_of(client: &Client, class_name: &str) -> Result<String, PodError> {
    match objects::get(client, KIND, class_name).await? {
        Some(json) => Ok(parse(class_name, &json)?.handler),
        None => Ok(class_name.to_string()),
    }
}

fn parse(name: &str, json: &[u8]) -> Result<RuntimeClass, PodError> {
    serde_json::from_slice(json).map_err(|e| PodError::ObjectDamaged {
        kind: "runtimeclass".into(),
        name: name.to_string(),
        message: e.to_string(),
    })
}
