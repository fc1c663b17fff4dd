//! The images a pod needs, made sure of before anything of the pod exists: pulled or imported per
//! imagePullPolicy, once per image, with kubelet's events for each.

use crate::containerd::Client;
use crate::image::{reference::normalize, Obtained, ResolvedImage};
use crate::manifest::{Pod, PullPolicy};
use crate::pod::{PodError, Settings};
use crate::record::PodEvent;

/// Pulls or imports what the pod's sandbox, init containers and members need, once per image, and
/// records kubelet's events for it. Nothing of the pod exists yet, so a failed pull leaves nothing.
pub(super) async fn obtain_images(
    client: &Client,
    settings: &Settings,
    pod: &Pod,
    events: &mut Vec<PodEvent>,
) -> Result<(), PodError> {
    let mut wanted: Vec<(String, &str, Option<PullPolicy>)> = vec![(
        normalize(&settings.sandbox_image),
        "POD",
        Some(PullPolicy::IfNotPresent),
    )];
    for container in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
        // A local file or directory, or a URL a plugin fetches itself: nothing to pull.
        if crate::image::reference::local_path(&container.image).is_some()
            || crate::image::reference::url_scheme(&container.image).is_some()
        {
            continue;
        }
        let name = normalize(&container.image);
        match wanted.iter_mut().find(|(n, _, _)| *n == name) {
            // The same image twice: the stricter policy (Always) wins, and it is pulled once.
            Some(entry) => {
                if container.image_pull_policy == Some(PullPolicy::Always) {
                    entry.2 = Some(PullPolicy::Always);
                }
            }
            None => wanted.push((name, &container.name, container.image_pull_policy)),
        }
    }
    let pull_secrets = crate::pod::config_refs::pull_secrets(client, pod, events).await?;
    for (name, container, policy) in wanted {
        let policy = crate::image::effective_policy(&name, policy);
        if policy != PullPolicy::Never && crate::image::builtin::find(&name).is_none() {
            events.push(PodEvent::normal(
                "Pulling",
                container,
                format!("Pulling image \"{name}\""),
            ));
        }
        let obtained = crate::image::ensure_image(client, &name, policy, &settings.pull, &pull_secrets)
            .await
            .map_err(|error| PodError::Image {
                container: container.to_string(),
                error: Box::new(error),
            })?;
        events.push(match obtained {
            Obtained::Present => PodEvent::normal(
                "Pulled",
                container,
                format!("Container image \"{name}\" already present on machine"),
            ),
            Obtained::Builtin => PodEvent::normal("Pulled", container, format!("Imported built-in image \"{name}\"")),
            Obtained::Pulled { fetched, elapsed } => PodEvent::normal(
                "Pulled",
                container,
                format!(
                    "Successfully pulled image \"{name}\" in {:.3}s. Bytes fetched: {fetched}",
                    elapsed.as_secs_f64()
                ),
            ),
            Obtained::PresentAfterFailedPull { cause } => {
                eprintln!("warning: {cause}; using the image already present");
                PodEvent::warning(
                    "Failed",
                    container,
                    format!("Failed to pull image \"{name}\": {cause}; using the image already present"),
                )
            }
        });
    }
    Ok(())
}

/// An image `obtain_images` made sure of, resolved to its config and top snapshot.
pub(crate) async fn resolve_present(client: &Client, image: &str) -> Result<ResolvedImage, PodError> {
    Ok(crate::image::resolve_image(client, &normalize(image)).await?)
}
