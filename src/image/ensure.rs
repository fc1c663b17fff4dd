//! Making sure a container's image is here before a pod uses it, per `imagePullPolicy` as kubelet
//! applies it: pull when asked to (`Always`, the default for `:latest` and untagged names) or when
//! missing (`IfNotPresent`), never (`Never`). podctl's built-in images are imported, not pulled.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pull::{pull_image, PullOptions};
use super::pull_events::Progress;
use super::reference::parse_name;
use super::{builtin, import_image, ImageError};
use crate::containerd::Client;
use crate::manifest::PullPolicy;

/// How pods obtain images: where registries are configured, where pulls lock, who shows progress.
#[derive(Clone)]
pub struct PullSettings {
    pub hosts_dirs: Vec<PathBuf>,
    pub lock_dir: PathBuf,
    pub progress: Arc<dyn Progress>,
}

/// What ensuring an image did, for the pod's events.
pub enum Obtained {
    Present,
    Pulled {
        fetched: u64,
        elapsed: Duration,
    },
    /// The pull did not reach the registry, and the copy already here was used.
    PresentAfterFailedPull {
        cause: String,
    },
    Builtin,
}

/// kubelet's default: `Always` for `:latest` or no tag (and no digest), else `IfNotPresent`.
pub fn effective_policy(image: &str, policy: Option<PullPolicy>) -> PullPolicy {
    if let Some(policy) = policy {
        return policy;
    }
    match parse_name(image) {
        Ok(name) if name.digest.is_none() && name.tag.as_deref().is_none_or(|t| t == "latest") => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// Pulls, imports or finds `image` (a normalized name) per `policy`.
pub async fn ensure_image(
    client: &Client,
    image: &str,
    policy: PullPolicy,
    settings: &PullSettings,
    pull_secrets: &[super::auth::PullSecret],
) -> Result<Obtained, ImageError> {
    let present = client.get_image(image).await?.is_some();
    if let Some(builtin) = builtin::find(image) {
        if present {
            return Ok(Obtained::Present);
        }
        if policy == PullPolicy::Never {
            return Err(never(client, image));
        }
        let built = builtin.build().map_err(|e| ImageError::Invalid {
            image: image.to_string(),
            message: format!("the built-in image cannot be built: {e}"),
        })?;
        import_image(client, &super::archive::from_built(&built)?).await?;
        return Ok(Obtained::Builtin);
    }
    match policy {
        PullPolicy::Never if present => Ok(Obtained::Present),
        PullPolicy::Never => Err(never(client, image)),
        PullPolicy::IfNotPresent if present => Ok(Obtained::Present),
        PullPolicy::IfNotPresent | PullPolicy::Always => {
            let started = Instant::now();
            let mut options = PullOptions::new(settings.hosts_dirs.clone());
            options.lock_dir = Some(settings.lock_dir.clone());
            options.pull_secrets = pull_secrets.to_vec();
            // A concurrent create may have pulled it while this one waited for the lock.
            options.only_if_missing = policy == PullPolicy::IfNotPresent;
            match pull_image(client, image, &options, settings.progress.as_ref()).await {
                Ok(pulled) if pulled.pulled => Ok(Obtained::Pulled {
                    fetched: pulled.fetched,
                    elapsed: started.elapsed(),
                }),
                Ok(_) => Ok(Obtained::Present),
                // Offline hosts keep working with what they have (a warning says so).
                Err(ImageError::Registry(e)) if present && e.is_unreachable() => {
                    Ok(Obtained::PresentAfterFailedPull { cause: e.to_string() })
                }
                Err(e) => Err(e),
            }
        }
    }
}

fn never(client: &Client, image: &str) -> ImageError {
    ImageError::Invalid {
        image: image.to_string(),
        message: format!(
            "it is not in containerd namespace `{}` and imagePullPolicy is Never; pull it with `podctl image pull {image}`, import it with `podctl image import FILE`, or allow pulls with imagePullPolicy: IfNotPresent",
            client.namespace()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_follows_kubelet() {
        assert_eq!(effective_policy("nginx", None), PullPolicy::Always);
        assert_eq!(effective_policy("nginx:latest", None), PullPolicy::Always);
        assert_eq!(effective_policy("nginx:1.27", None), PullPolicy::IfNotPresent);
        assert_eq!(effective_policy("reg:5000/a/b", None), PullPolicy::Always);
        let digest = format!("nginx@sha256:{}", "a".repeat(64));
        assert_eq!(effective_policy(&digest, None), PullPolicy::IfNotPresent);
        assert_eq!(effective_policy("nginx", Some(PullPolicy::Never)), PullPolicy::Never);
    }
}
