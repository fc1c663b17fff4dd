//! Images: what containers and WASM members run from. Archives read from disk (`podctl image
//! import`), the images podctl builds itself (pause, echoserver), registries (pull and push over
//! the OCI distribution protocol, with containerd's `hosts.toml` and docker's credentials), and
//! the images stored in containerd (import, resolve, list). Reference normalization too.

pub mod archive;
pub mod auth;
pub mod builtin;
pub mod ensure;
pub mod feed;
pub mod hosts;
pub mod layout;
pub mod pull;
pub mod pull_events;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
pub mod wasm;

use std::fmt;

pub use ensure::{effective_policy, ensure_image, Obtained, PullSettings};
pub use pull::{pull_image, PullOptions, Pulled, PARALLEL_LAYERS};
pub use pull_events::{Progress, PullEvent};
pub use store::{image_layers, import_image, list_images, resolve_image, ImageInfo, ImageKind, ResolvedImage};

use crate::containerd::ContainerdError;

/// Layer media types of WebAssembly artifacts (the CNCF wasm OCI artifact layout, wasm-to-oci, and
/// the Bytecode Alliance's component layout).
pub const WASM_LAYER_MEDIA_TYPES: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
];
/// The config media type of a wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error(transparent)]
    Hosts(#[from] hosts::HostsError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("image {image}: {message}")]
    Invalid { image: String, message: String },
    #[error("image {image} has no manifest for {platform} (it has: {available}); pick one of those with --platform")]
    NoPlatform {
        image: String,
        platform: String,
        available: String,
    },
    #[error("image {image} is not in containerd namespace `{namespace}`; pull it with `podctl image pull {image}` or import it with `podctl image import FILE`")]
    NotFound { image: String, namespace: String },
    #[error("invalid image reference {reference:?}: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("invalid platform {text:?}: give os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8")]
    BadPlatform { text: String },
}

/// An OS/architecture pair as image indexes name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this podctl runs on, in OCI's names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    pub fn parse(text: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = || ImageError::BadPlatform { text: text.to_string() };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(bad()),
        }
    }

    /// Whether an index entry's platform is this one; an entry without a platform matches any.
    pub(crate) fn matches(&self, entry: Option<&store::PlatformJson>) -> bool {
        let Some(p) = entry else { return true };
        if p.os != self.os || p.architecture != self.architecture {
            return false;
        }
        match (&self.variant, p.variant.as_deref()) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            // arm64's only variant is v8, often left out.
            (Some(want), None) => want == "v8" && self.architecture == "arm64",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{}/{}/{v}", self.os, self.architecture),
            None => write!(f, "{}/{}", self.os, self.architecture),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let entry = |os: &str, arch: &str, variant: Option<&str>| store::PlatformJson {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(String::from),
        };
        assert!(p.matches(Some(&entry("linux", "arm64", None))));
        assert!(p.matches(Some(&entry("linux", "arm64", Some("v8")))));
        assert!(!p.matches(Some(&entry("linux", "amd64", None))));
        assert!(Platform::parse("linux/amd64")
            .unwrap()
            .matches(Some(&entry("linux", "amd64", None))));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//x").is_err());
        assert_eq!(Platform::host().os, "linux");
    }
}
