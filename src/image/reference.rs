//! Image references: normalization the way containerd's CRI plugin and docker name images, and
//! the parts a registry needs (registry, repository, tag or digest).

use oci_client::Reference;

use super::ImageError;

/// The path when `image` names a local file (`./x.wasm`, `/abs/x.wat`, `file:///x.wasm`, or any
/// name ending in `.wasm`/`.wat`) rather than an image in containerd or a registry.
pub fn local_path(image: &str) -> Option<&str> {
    let path = image.strip_prefix("file://").unwrap_or(image);
    let looks_local =
        image.starts_with("file://") || image.starts_with('/') || image.starts_with("./") || image.starts_with("../");
    let wasm_file = std::path::Path::new(path)
        .extension()
        .is_some_and(|e| e == "wasm" || e == "wat");
    (looks_local || wasm_file).then_some(path)
}

/// `busybox` -> `docker.io/library/busybox:latest`; `localhost/x` -> `localhost/x:latest`;
/// fully qualified references are kept. References with a digest keep it and get no tag.
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let qualified = match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => name.to_string(),
        Some(_) => format!("docker.io/{name}"),
    };
    let last = qualified.rsplit('/').next().unwrap_or_default();
    match digest {
        Some(d) => format!("{qualified}@{d}"),
        None if last.contains(':') => qualified,
        None => format!("{qualified}:latest"),
    }
}

/// Where a name lives: `registry`, `repository`, and a tag or digest.
pub struct ImageName {
    pub name: String,
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Parses a reference after normalizing it as [`normalize`] does.
pub fn parse_name(reference: &str) -> Result<ImageName, ImageError> {
    let name = normalize(reference);
    let parsed: Reference = name
        .parse()
        .map_err(|e: oci_client::ParseError| ImageError::BadReference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })?;
    Ok(ImageName {
        registry: parsed.registry().to_string(),
        repository: parsed.repository().to_string(),
        tag: parsed.tag().map(String::from),
        digest: parsed.digest().map(String::from),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalize("me/app"), "docker.io/me/app:latest");
        assert_eq!(normalize("localhost/app"), "localhost/app:latest");
        assert_eq!(normalize("reg:5000/app"), "reg:5000/app:latest");
        assert_eq!(normalize("podctl.local/pause:0.1"), "podctl.local/pause:0.1");
        assert_eq!(normalize("reg.io/a/b@sha256:ab"), "reg.io/a/b@sha256:ab");
    }
}
