//! Image references: normalization the way containerd's CRI plugin and docker name images, and
//! the parts a registry needs (registry, repository, tag or digest).

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

/// The scheme (lower-cased) of an image that is a URL for a plugin to fetch: `SCHEME:REST` with
/// SCHEME as RFC 3986 spells one, that is neither a local path nor an image reference
/// (`busybox:1.36` and `localhost:5000/x` are references; `demo:/x`, `demo://x` are not).
pub fn url_scheme(image: &str) -> Option<String> {
    if local_path(image).is_some() {
        return None;
    }
    let (scheme, _) = image.split_once(':')?;
    let mut chars = scheme.chars();
    let scheme_like =
        chars.next()?.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (scheme_like && parse_name(image).is_err()).then(|| scheme.to_ascii_lowercase())
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

/// Parses a reference after normalizing it as [`normalize`] does, checked against the grammar of
/// distribution's `reference` package. By hand rather than with oci-spec's parser: that one builds
/// a large regex on first use, some 25 ms of CPU in every `pull` and `create`.
pub fn parse_name(reference: &str) -> Result<ImageName, ImageError> {
    let name = normalize(reference);
    let bad = |reason: String| ImageError::BadReference {
        reference: reference.to_string(),
        reason,
    };
    let (named, digest) = match name.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (name.as_str(), None),
    };
    // normalize() puts a registry in front of every name.
    let (registry, path) = named.split_once('/').unwrap_or(("docker.io", named));
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
        _ => (path, None),
    };
    check_registry(registry).map_err(bad)?;
    if named.len() > NAME_MAX {
        return Err(bad(format!("the name is longer than {NAME_MAX} characters")));
    }
    for component in repository.split('/') {
        check_path_component(component).map_err(bad)?;
    }
    if let Some(tag) = tag {
        check_tag(tag).map_err(bad)?;
    }
    if let Some(digest) = digest {
        check_digest(digest).map_err(bad)?;
    }
    Ok(ImageName {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag: tag.map(String::from),
        digest: digest.map(String::from),
        name,
    })
}

/// distribution's limit on a name (registry and repository).
const NAME_MAX: usize = 255;

/// `host[:port]`: dot-separated components of letters, digits and inner dashes, or `[IPv6]`.
fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry {registry:?} has a port that is not a number"));
        }
    }
    if let Some(ipv6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return ipv6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("registry {registry:?} is not a valid IPv6 address"));
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if host.split('.').all(component_ok) {
        Ok(())
    } else {
        Err(format!(
            "registry {registry:?} must be a host name (letters, digits, dots and inner dashes) with an optional :port"
        ))
    }
}

/// Lowercase letters and digits, joined by single separators `.`, `_`, `__` or runs of `-`.
fn check_path_component(component: &str) -> Result<(), String> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut ok = !bytes.is_empty() && alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    let mut i = 0;
    while ok && i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|b| !alnum(**b)).count();
        let separator = &component[i..i + run];
        ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        i += run;
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "repository component {component:?} must be lowercase letters and digits joined by '.', '_', '__' or '-'"
        ))
    }
}

/// A word character, then up to 127 word characters, dots and dashes.
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    if !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
    {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1 to 128 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'"
        ))
    }
}

/// `algorithm:hex`, e.g. `sha256:` and 64 hex digits (at least 32).
fn check_digest(digest: &str) -> Result<(), String> {
    let fail = || format!("digest {digest:?} must be algorithm:hex, e.g. sha256: and 64 hex digits");
    let (algorithm, hex) = digest.split_once(':').ok_or_else(fail)?;
    let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|part| {
        let mut bytes = part.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphabetic()) && bytes.all(|b| b.is_ascii_alphanumeric())
    });
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let length_ok = algorithm != "sha256" || hex.len() == 64;
    if algorithm_ok && hex_ok && length_ok {
        Ok(())
    } else {
        Err(fail())
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize, parse_name, url_scheme};

    #[test]
    fn parses_names_like_distribution() {
        let name = parse_name("127.0.0.1:5000/team/app:1.4").unwrap();
        assert_eq!(name.registry, "127.0.0.1:5000");
        assert_eq!(name.repository, "team/app");
        assert_eq!(name.tag.as_deref(), Some("1.4"));
        assert_eq!(name.digest, None);
        let digest = format!("sha256:{}", "ab".repeat(32));
        let name = parse_name(&format!("busybox@{digest}")).unwrap();
        assert_eq!(
            (
                name.registry.as_str(),
                name.repository.as_str(),
                name.tag,
                name.digest.as_deref()
            ),
            ("docker.io", "library/busybox", None, Some(digest.as_str()))
        );
        let name = parse_name(&format!("[::1]:5000/a/b_c__d--e.f:v1@{digest}")).unwrap();
        assert_eq!(
            (name.registry.as_str(), name.tag.as_deref()),
            ("[::1]:5000", Some("v1"))
        );
        assert_eq!(parse_name("localhost/app").unwrap().tag.as_deref(), Some("latest"));
        for bad in [
            "Team/App",
            "reg.io/a//b",
            "reg.io/a/-b",
            "reg.io/a/b.",
            "reg.io/a/b:.tag",
            "reg-.io/a",
            "reg.io:port/a",
            "reg.io/a@sha256:abc",
            "reg.io/a@md5",
        ] {
            let error = parse_name(bad).err().map(|e| e.to_string());
            assert!(error.as_deref().is_some_and(|e| e.contains(bad)), "{bad}: {error:?}");
        }
        let long = format!("reg.io/{}", "a".repeat(300));
        assert!(parse_name(&long).is_err());
        let long_tag = format!("reg.io/a:{}", "t".repeat(129));
        assert!(parse_name(&long_tag).is_err());
    }

    #[test]
    fn urls_for_plugins_are_not_references() {
        assert_eq!(url_scheme("demo:/srv/site").as_deref(), Some("demo"));
        assert_eq!(url_scheme("S3://bucket/key").as_deref(), Some("s3"));
        assert_eq!(url_scheme("git+https://example.com/x").as_deref(), Some("git+https"));
        for reference in [
            "busybox:1.36",
            "busybox",
            "localhost:5000/x:1",
            "demo:thing",
            "/srv/x",
            "file:///x",
            "./a:b",
        ] {
            assert_eq!(url_scheme(reference), None, "{reference}");
        }
    }

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
