//! One registry endpoint spoken to over the OCI distribution protocol (`oci-client`): manifests by
//! tag or digest, blobs as byte streams from an offset, pushes. Errors are sorted into what a user
//! can act on: not found, unauthorized, unreachable, TLS, digest mismatch.

use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;

use super::auth::Credentials;
use super::hosts::{Endpoint, Scheme};
use super::reference::ImageName;

/// What a manifest GET may answer with, most preferred first.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("image {image}: not found at {url} ({detail}); check the repository and tag, or push it first")]
    NotFound { image: String, url: String, detail: String },
    #[error("image {image}: {url} refused access {who} ({detail}); log in with `docker login` (podctl reads ~/.docker/config.json and credential helpers) or pass --user NAME:PASSWORD")]
    Unauthorized {
        image: String,
        url: String,
        who: String,
        detail: String,
    },
    #[error("image {image}: cannot reach registry {url}: {cause}; check the address and that the registry runs")]
    Unreachable { image: String, url: String, cause: String },
    #[error("image {image}: TLS with {url} failed: {cause}; trust the registry's CA with `ca = \"/path/ca.pem\"` in <hosts-dir>/{host}/hosts.toml (hosts-dir: --hosts-dir, default /etc/containerd/certs.d), or, for a registry that speaks plain HTTP, pass --plain-http")]
    Tls {
        image: String,
        url: String,
        host: String,
        cause: String,
    },
    #[error("image {image}: {what} {expected} from {url} does not match its digest (the bytes hash to {actual}); the registry's copy is damaged or was tampered with, so nothing of it was stored")]
    DigestMismatch {
        image: String,
        url: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("image {image}: {url}: {detail}")]
    Other { image: String, url: String, detail: String },
}

impl RegistryError {
    /// A network-level failure, worth trying the next endpoint (or the local copy) for.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. } | RegistryError::Tls { .. })
    }
}

/// rustls needs a process-wide crypto provider before the first TLS client exists.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client for one endpoint of one image's registry, with the credentials to use there.
pub struct Remote {
    pub endpoint: Endpoint,
    /// The image's name, for messages.
    image: String,
    client: oci_client::Client,
    auth: RegistryAuth,
    who: String,
}

impl Remote {
    pub fn new(
        image: &str,
        endpoint: &Endpoint,
        credentials: &Credentials,
        scheme: Scheme,
    ) -> Result<Remote, RegistryError> {
        install_crypto_provider();
        let mut roots = Vec::new();
        for path in &endpoint.ca_files {
            let data = std::fs::read(path).map_err(|e| RegistryError::Tls {
                image: image.to_string(),
                url: endpoint.url(),
                host: endpoint.host.clone(),
                cause: format!("its CA file {} cannot be read: {e}", path.display()),
            })?;
            roots.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: match scheme {
                Scheme::Http => ClientProtocol::Http,
                Scheme::Https => ClientProtocol::Https,
            },
            accept_invalid_certificates: endpoint.skip_verify,
            extra_root_certificates: roots,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            // One streamed PUT per blob instead of a PATCH per chunk.
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| RegistryError::Other {
            image: image.to_string(),
            url: endpoint.url(),
            detail: format!("cannot set up an HTTP client: {e}"),
        })?;
        let auth = match credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
        };
        let mut endpoint = endpoint.clone();
        endpoint.scheme = scheme;
        Ok(Remote {
            endpoint,
            image: image.to_string(),
            client,
            auth,
            who: credentials.describe(),
        })
    }

    /// A remote for `name` at this endpoint, the name's reference there, authenticated for a
    /// pull or a push.
    pub async fn open(
        name: &ImageName,
        endpoint: &Endpoint,
        credentials: &Credentials,
        scheme: Scheme,
        push: bool,
    ) -> Result<(Remote, Reference), RegistryError> {
        let remote = Remote::new(&name.name, endpoint, credentials, scheme)?;
        let reference = remote.reference(
            &name.registry,
            &name.repository,
            name.tag.as_deref(),
            name.digest.as_deref(),
        );
        remote.authenticate(&reference, push).await;
        Ok((remote, reference))
    }

    pub fn url(&self) -> String {
        self.endpoint.url()
    }

    /// The reference as this endpoint serves it (a mirror gets `?ns=<registry>`, as containerd sends).
    pub fn reference(&self, registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Reference {
        let mut reference = match (tag, digest) {
            (_, Some(d)) => Reference::with_digest(registry.to_string(), repository.to_string(), d.to_string()),
            (Some(t), None) => Reference::with_tag(registry.to_string(), repository.to_string(), t.to_string()),
            (None, None) => Reference::with_tag(registry.to_string(), repository.to_string(), "latest".into()),
        };
        if self.endpoint.host != reference.resolve_registry() {
            reference.set_mirror_registry(self.endpoint.host.clone());
        }
        reference
    }

    pub async fn authenticate(&self, reference: &Reference, push: bool) {
        let operation = if push {
            oci_client::RegistryOperation::Push
        } else {
            oci_client::RegistryOperation::Pull
        };
        // Anonymous pulls still need a token from registries that use the Bearer flow; a
        // failure here shows up, classified, on the first real request.
        let _ = self.client.auth(reference, &self.auth, operation).await;
    }

    /// The manifest or index bytes, their digest (verified against a digest reference) and media type.
    pub async fn manifest(&self, reference: &Reference) -> Result<(bytes::Bytes, String, String), RegistryError> {
        let (data, digest) = self
            .client
            .pull_manifest_raw(reference, &self.auth, MANIFEST_MEDIA_TYPES)
            .await
            .map_err(|e| self.classify(e, "manifest", reference.digest().unwrap_or_default()))?;
        let media_type = media_type_of(&data);
        Ok((data, digest, media_type))
    }

    /// The blob's bytes from `offset` on; `true` when the registry answered with that range.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &str,
        offset: u64,
    ) -> Result<(oci_client::client::SizedStream, bool), RegistryError> {
        // A range from byte 0 too: the answer (206) is then not hashed here, since containerd hashes
        // every blob at commit anyway; one pass over the bytes instead of two.
        let response = self
            .client
            .pull_blob_stream_partial(reference, digest, offset, None)
            .await
            .map_err(|e| self.classify(e, "blob", digest))?;
        Ok(match response {
            oci_client::client::BlobResponse::Full(stream) => (stream, false),
            oci_client::client::BlobResponse::Partial(stream) => (stream, true),
        })
    }

    pub async fn blob_exists(&self, reference: &Reference, digest: &str) -> Result<bool, RegistryError> {
        self.client
            .blob_exists(reference, digest)
            .await
            .map_err(|e| self.classify(e, "blob", digest))
    }

    pub async fn push_blob<S>(
        &self,
        reference: &Reference,
        digest: &str,
        size: u64,
        data: S,
    ) -> Result<(), RegistryError>
    where
        S: futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static,
    {
        self.client
            .push_blob_stream(reference, data, digest, Some(size))
            .await
            .map_err(|e| self.classify(e, "blob", digest))?;
        Ok(())
    }

    pub async fn push_manifest(
        &self,
        reference: &Reference,
        data: Vec<u8>,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let content_type = media_type.parse().map_err(|_| RegistryError::Other {
            image: self.image.clone(),
            url: self.url(),
            detail: format!("media type {media_type:?} is not a valid header value"),
        })?;
        self.client
            .push_manifest_raw(reference, data, content_type)
            .await
            .map_err(|e| self.classify(e, "manifest", ""))?;
        Ok(())
    }

    /// Sorts an oci-client error into what the user can act on.
    pub fn classify(&self, error: OciDistributionError, what: &str, digest: &str) -> RegistryError {
        let image = self.image.clone();
        let url = self.url();
        let not_found = |detail: String| RegistryError::NotFound {
            image: image.clone(),
            url: url.clone(),
            detail,
        };
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            image: image.clone(),
            url: url.clone(),
            who: self.who.clone(),
            detail,
        };
        match error {
            OciDistributionError::ImageManifestNotFoundError(m) => not_found(m),
            OciDistributionError::UnauthorizedError { .. } => unauthorized("HTTP 401".into()),
            OciDistributionError::AuthenticationFailure(m) => unauthorized(m.trim().to_string()),
            OciDistributionError::RegistryError { envelope, .. } => {
                let text = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                match envelope.errors.first().map(|e| &e.code) {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound,
                    ) => not_found(text),
                    Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => unauthorized(text),
                    _ => RegistryError::Other {
                        image,
                        url,
                        detail: format!("the registry answered {text}"),
                    },
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => not_found(format!("HTTP 404 {}", message.trim())),
                401 | 403 => unauthorized(format!("HTTP {code}")),
                _ => RegistryError::Other {
                    image,
                    url,
                    detail: format!("the registry answered HTTP {code}: {}", message.trim()),
                },
            },
            OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
                expected,
                actual,
            }) => RegistryError::DigestMismatch {
                image,
                url,
                what: what.to_string(),
                expected: if digest.is_empty() {
                    expected
                } else {
                    digest.to_string()
                },
                actual,
            },
            OciDistributionError::RequestError(e) => match e.status().map(|s| s.as_u16()) {
                Some(404) => not_found("HTTP 404".into()),
                Some(code @ (401 | 403)) => unauthorized(format!("HTTP {code}")),
                Some(code) => RegistryError::Other {
                    image,
                    url,
                    detail: format!("the registry answered HTTP {code}"),
                },
                None => self.network_error(&e),
            },
            other => RegistryError::Other {
                image,
                url,
                detail: error_chain(&other),
            },
        }
    }

    pub fn network_error(&self, error: &(dyn std::error::Error + 'static)) -> RegistryError {
        let cause = error_chain(error);
        let lower = cause.to_lowercase();
        if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
            || lower.contains("corrupt message")
        {
            RegistryError::Tls {
                image: self.image.clone(),
                url: self.url(),
                host: self.endpoint.host.clone(),
                cause,
            }
        } else {
            RegistryError::Unreachable {
                image: self.image.clone(),
                url: self.url(),
                cause,
            }
        }
    }
}

/// A manifest's media type from its own `mediaType`, else from its shape (both OCI).
pub fn media_type_of(data: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Head>(data) {
        Ok(head) if !head.media_type.is_empty() => head.media_type,
        Ok(head) if head.manifests.is_some() => MANIFEST_MEDIA_TYPES[0].into(),
        _ => MANIFEST_MEDIA_TYPES[2].into(),
    }
}

pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
