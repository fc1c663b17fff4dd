//! What a plugin runs ([`Claims`]): the OCI layer media types, local file extensions, directories
//! and URL schemes its handshake names (or podctl knows, for wasmtime), and how they read in a
//! message.

/// What a plugin runs.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    pub media_types: Vec<String>,
    pub extensions: Vec<String>,
    /// Local directories (the directory is the program).
    pub directories: bool,
    /// URL schemes, lower case (the image as written is the program).
    pub schemes: Vec<String>,
}

impl Claims {
    pub(super) fn of(info: &podctl_plugin::proto::HandshakeReply) -> Claims {
        Claims {
            media_types: info.media_types.clone(),
            extensions: info.file_extensions.clone(),
            directories: info.directories,
            schemes: info.url_schemes.iter().map(|s| s.to_ascii_lowercase()).collect(),
        }
    }
}

/// Whether an image layer is an ordinary root filesystem layer, which only an OCI runtime runs.
pub(super) fn is_rootfs_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

pub(super) fn describe_claims(claims: &Claims) -> String {
    let mut parts = Vec::new();
    if !claims.extensions.is_empty() {
        let extensions: Vec<String> = claims.extensions.iter().map(|e| format!(".{e}")).collect();
        parts.push(format!("local {} files", extensions.join("/")));
    }
    if claims.directories {
        parts.push("local directories".into());
    }
    if !claims.schemes.is_empty() {
        let schemes: Vec<String> = claims.schemes.iter().map(|s| format!("{s}:")).collect();
        parts.push(format!("{} URLs", schemes.join("/")));
    }
    if !claims.media_types.is_empty() {
        parts.push(format!("OCI images with a layer of {}", claims.media_types.join(", ")));
    }
    match parts.is_empty() {
        true => "what runtimeClassName or the podctl.io/runtime.<container> annotation gives it".into(),
        false => parts.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_layers_are_not_a_plugins_to_claim() {
        assert!(is_rootfs_layer("application/vnd.oci.image.layer.v1.tar+gzip"));
        assert!(is_rootfs_layer("application/vnd.docker.image.rootfs.diff.tar.gzip"));
        assert!(!is_rootfs_layer("application/wasm"));
        assert!(!is_rootfs_layer("application/vnd.example.script.v1"));
    }

    #[test]
    fn claims_read_as_a_user_would_say_them() {
        let claims = Claims {
            media_types: vec!["application/x-demo".into()],
            extensions: vec!["sh".into(), "py".into()],
            directories: true,
            schemes: vec!["demo".into(), "s3".into()],
        };
        assert_eq!(
            describe_claims(&claims),
            "local .sh/.py files; local directories; demo:/s3: URLs; OCI images with a layer of application/x-demo"
        );
        assert!(describe_claims(&Claims::default()).contains("runtimeClassName"));
    }
}
