//! Which endpoint answers for an image, and with what credentials: the endpoints of hosts.toml
//! (mirrors first) tried in order, HTTPS before a plain-HTTP fallback, until one resolves the
//! tag; push picks its endpoint's credentials the same way.

use super::super::auth::{self, Credentials};
use super::super::hosts::{self, Scheme};
use super::super::pull_events::{Progress, PullEvent};
use super::super::reference::ImageName;
use super::super::registry::{RegistryError, Remote};
use super::super::store::Desc;
use super::super::ImageError;
use super::PullOptions;
use crate::containerd::Descriptor;

/// A manifest or index fetched and verified: its descriptor and bytes.
pub(super) struct Fetched {
    pub(super) desc: Desc,
    pub(super) data: bytes::Bytes,
}

impl Fetched {
    pub(super) fn descriptor(&self) -> Descriptor {
        self.desc.descriptor()
    }
}

impl std::ops::Deref for Fetched {
    type Target = Desc;
    fn deref(&self) -> &Desc {
        &self.desc
    }
}

/// The first endpoint that resolves the name: the remote, what the name points at, and that
/// document's bytes.
pub(super) async fn resolve(
    name: &ImageName,
    options: &PullOptions,
    progress: &dyn Progress,
) -> Result<(Remote, Fetched), ImageError> {
    let endpoints = hosts::endpoints(&name.registry, &options.hosts_dirs, options.plain_http)?;
    let mut last_error: Option<RegistryError> = None;
    for endpoint in endpoints
        .iter()
        .filter(|e| e.resolve || name.digest.is_some() && e.pull)
    {
        let credentials = endpoint_credentials(endpoint, &name.registry, options.user.as_ref(), &options.pull_secrets)?;
        for scheme in endpoint.schemes() {
            let (remote, reference) = Remote::open(name, endpoint, &credentials, scheme, false).await?;
            match remote.manifest(&reference).await {
                Ok((data, digest, media_type)) => {
                    progress.event(PullEvent::Resolved {
                        image: name.name.clone(),
                        digest: digest.clone(),
                        url: remote.url(),
                    });
                    let desc = Desc {
                        media_type,
                        size: data.len() as i64,
                        digest,
                        platform: None,
                    };
                    return Ok((remote, Fetched { desc, data }));
                }
                Err(e) => {
                    let network = e.is_unreachable();
                    // A local registry without TLS is expected to fail HTTPS first: no noise.
                    if !(network && endpoint.http_fallback && scheme == Scheme::Https) {
                        progress.event(PullEvent::EndpointFailed {
                            url: remote.url(),
                            cause: e.to_string(),
                        });
                    }
                    last_error = Some(prefer_https_error(last_error.take(), e, scheme));
                    // Plain HTTP is worth a try only where HTTPS did not connect.
                    if !network {
                        break;
                    }
                }
            }
        }
    }
    Err(last_error.map(ImageError::from).unwrap_or_else(|| ImageError::Invalid {
        image: name.name.clone(),
        message: "no endpoint in its hosts.toml may resolve tags (capabilities lack \"resolve\")".into(),
    }))
}

/// `--user`, else the pod's pull secrets', else docker's credentials, for the endpoint, else for
/// the registry it stands in for.
pub(crate) fn endpoint_credentials(
    endpoint: &hosts::Endpoint,
    registry: &str,
    user: Option<&Credentials>,
    pull_secrets: &[auth::PullSecret],
) -> Result<Credentials, ImageError> {
    if let Some(user) = user {
        return Ok(user.clone());
    }
    for host in [endpoint.host.as_str(), registry] {
        if let found @ Credentials::Basic { .. } = auth::lookup_in_secrets(host, pull_secrets)? {
            return Ok(found);
        }
    }
    Ok(match auth::lookup(&endpoint.host)? {
        Credentials::Anonymous => auth::lookup(registry)?,
        found => found,
    })
}

/// After HTTPS failed and the plain-HTTP fallback got an answer that is no verdict on the image
/// (an HTTPS server's "400"), the HTTPS error is the one that explains it.
pub(crate) fn prefer_https_error(https: Option<RegistryError>, error: RegistryError, scheme: Scheme) -> RegistryError {
    match (https, &error) {
        (Some(https @ RegistryError::Tls { .. }), RegistryError::Other { .. }) if scheme == Scheme::Http => https,
        _ => error,
    }
}
