//! `podctl create configmap|secret NAME ...`: the object from literals and files, validated as a
//! manifest would be, then created as one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;

use super::{create, Sourced};
use crate::app::GlobalArgs;
use crate::cli::{ConfigDataArgs, CreateObject, SecretKind};
use crate::manifest::document_from_json;

/// The keys and values `--from-literal` and `--from-file` give, in kubectl's way.
fn data_of(args: &ConfigDataArgs) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut data = BTreeMap::new();
    let mut add = |key: String, value: Vec<u8>, from: &str| -> Result<()> {
        if data.insert(key.clone(), value).is_some() {
            bail!("key {key:?} is given twice ({from}); each key once");
        }
        Ok(())
    };
    for literal in &args.from_literal {
        let Some((key, value)) = literal.split_once('=') else {
            bail!("--from-literal {literal:?} has no `=`; write --from-literal=KEY=VALUE");
        };
        add(key.to_string(), value.as_bytes().to_vec(), "--from-literal")?;
    }
    for source in &args.from_file {
        let (key, path) = match source.split_once('=') {
            Some((key, path)) => (Some(key.to_string()), PathBuf::from(path)),
            None => (None, PathBuf::from(source)),
        };
        if path.is_dir() {
            if key.is_some() {
                bail!("--from-file {source:?}: a directory takes no KEY=; each file's name is its key");
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                let key = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let value = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
                add(key, value, "--from-file")?;
            }
        } else {
            let value = std::fs::read(&path).with_context(|| format!("cannot read --from-file {}", path.display()))?;
            let key = key.unwrap_or_else(|| path.file_name().unwrap_or_default().to_string_lossy().into_owned());
            add(key, value, "--from-file")?;
        }
    }
    Ok(data)
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `podctl create configmap|secret NAME ...`: the object, validated as a manifest would be.
pub async fn create_from_args(global: &GlobalArgs, object: CreateObject) -> Result<ExitCode> {
    let (json, name) = match object {
        CreateObject::Configmap(args) => {
            let mut data = serde_json::Map::new();
            let mut binary = serde_json::Map::new();
            for (key, value) in data_of(&args)? {
                match String::from_utf8(value) {
                    Ok(text) => data.insert(key, text.into()),
                    Err(bytes) => binary.insert(key, base64(bytes.as_bytes()).into()),
                };
            }
            let json = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": args.name},
                "data": data, "binaryData": binary,
            });
            (json, args.name)
        }
        CreateObject::Secret {
            kind: SecretKind::Generic { data, type_ },
        } => {
            let values: serde_json::Map<String, serde_json::Value> = data_of(&data)?
                .into_iter()
                .map(|(k, v)| (k, base64(&v).into()))
                .collect();
            let json = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": data.name},
                "type": type_, "data": values,
            });
            (json, data.name)
        }
        CreateObject::Secret {
            kind:
                SecretKind::DockerRegistry {
                    name,
                    docker_server,
                    docker_username,
                    docker_password,
                    docker_email,
                },
        } => {
            let mut entry = serde_json::json!({
                "username": docker_username,
                "password": docker_password,
                "auth": base64(format!("{docker_username}:{docker_password}").as_bytes()),
            });
            if let Some(email) = docker_email {
                entry["email"] = email.into();
            }
            let config = serde_json::json!({"auths": {docker_server: entry}}).to_string();
            let json = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": base64(config.as_bytes())},
            });
            (json, name)
        }
    };
    let document = document_from_json(json).map_err(|e| anyhow!("{name}: {e}"))?;
    create(global, vec![Sourced { origin: name, document }]).await
}
