//! What is known about a container's image before anything is created ([`ImageProbe`]): the local
//! file or directory it names, its URL scheme, the layers of the OCI image of that name in
//! containerd, and the annotation that forces a runtime. Runtimes claim containers by it.

use std::path::PathBuf;

use super::{io_error, MemberError};
use crate::containerd::Client;
use crate::manifest::{Container, Pod};

/// Per-container override: `podctl.io/runtime.<container-name>: oci|wasmtime|HANDLER`.
pub const RUNTIME_ANNOTATION_PREFIX: &str = "podctl.io/runtime.";

/// What is known about a container's image before anything is created.
pub struct ImageProbe {
    pub reference: String,
    /// A local file the image names (`./x.wasm`, `/abs/x.wat`, `file:///x.wasm`), if it exists.
    pub local_file: Option<PathBuf>,
    /// A local directory the image names, likewise (only a plugin that claims directories runs it).
    pub local_dir: Option<PathBuf>,
    /// The scheme of an image that is a URL a plugin fetches itself (`SCHEME:REST`, see
    /// [`crate::image::reference::url_scheme`]); the URL is `reference`.
    pub url_scheme: Option<String>,
    /// (media type, digest) of the layers of the OCI image of that name in containerd, if there is one.
    pub layers: Option<Vec<(String, String)>>,
    /// The `podctl.io/runtime.<name>` annotation, if set.
    pub forced: Option<String>,
    /// The image is a `wasi/wasm` platform image (a tar layer holding the module, its config's
    /// os `wasi`): its module, which a WASM runtime runs.
    pub wasi_program: Option<crate::image::wasm::WasiProgram>,
}

/// Looks at a container's image without creating anything: a local file, or an image in containerd.
pub async fn probe(client: &Client, pod: &Pod, container: &Container) -> Result<ImageProbe, MemberError> {
    let forced = pod
        .metadata
        .annotations
        .get(&format!("{RUNTIME_ANNOTATION_PREFIX}{}", container.name))
        .cloned();
    let image = container.image.as_str();
    let (mut local_file, mut local_dir) = (None, None);
    if let Some(path) = crate::image::reference::local_path(image) {
        let path = PathBuf::from(path);
        if !path.is_file() && !path.is_dir() {
            return Err(MemberError::Io {
                cause: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "container {}: image names a local file or directory that does not exist",
                        container.name
                    ),
                ),
                path,
            });
        }
        let canonical = std::fs::canonicalize(&path).map_err(io_error(&path))?;
        match canonical.is_dir() {
            true => local_dir = Some(canonical),
            false => local_file = Some(canonical),
        }
    }
    let url_scheme = crate::image::reference::url_scheme(image);
    let (layers, wasi_program) = match (&local_file, &local_dir, &url_scheme) {
        (None, None, None) => {
            let name = crate::image::reference::normalize(image);
            match crate::image::store::image_manifest(client, &name).await? {
                Some(manifest) => {
                    let program = crate::image::wasm::wasi_program(client, &name, &manifest).await?;
                    let layers = manifest.layers.into_iter().map(|l| (l.media_type, l.digest)).collect();
                    (Some(layers), program)
                }
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    Ok(ImageProbe {
        reference: image.to_string(),
        local_file,
        local_dir,
        url_scheme,
        layers,
        forced,
        wasi_program,
    })
}
