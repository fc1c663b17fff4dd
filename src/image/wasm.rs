//! A `.wasm` file as an OCI wasm artifact (the CNCF TAG Runtime layout: config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer), so it can be named, listed,
//! pushed and pulled like any image and run as a WASM member. Also the `wasi/wasm` platform image
//! (a tar layer holding the module), the form a Kubernetes node's containerd 1.6 can pull.

use super::archive::{sha256_digest, ArchiveImage, Blob, OCI_MANIFEST};
use super::{reference::normalize, ImageError, WASM_CONFIG_MEDIA_TYPE};

const WASM_LAYER: &str = "application/wasm";

/// Whether the bytes are a WebAssembly binary (a core module or a component).
pub fn is_wasm_binary(data: &[u8]) -> bool {
    data.starts_with(b"\0asm")
}

/// A component's header has layer 1 after the magic; a core module's version is 1.
fn is_component(data: &[u8]) -> bool {
    data.len() >= 8 && data[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// The artifact for a module: its digest depends only on the module's bytes.
pub fn artifact(module: Vec<u8>, name: &str) -> Result<ArchiveImage, ImageError> {
    if !is_wasm_binary(&module) {
        return Err(ImageError::Invalid {
            image: name.to_string(),
            message: "the file is not a WebAssembly binary (it does not start with \\0asm); build it to .wasm first (a .wat file: `wasm-tools parse x.wat -o x.wasm`)".into(),
        });
    }
    let layer_digest = sha256_digest(&module);
    let os = if is_component(&module) { "wasip2" } else { "wasip1" };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "wasm",
        "os": os,
        "layerDigests": [layer_digest],
    }))
    .expect("JSON values serialize");
    let config = Blob {
        media_type: WASM_CONFIG_MEDIA_TYPE.into(),
        digest: sha256_digest(&config),
        data: config,
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG_MEDIA_TYPE, "digest": config.digest, "size": config.data.len()},
        "layers": [{"mediaType": WASM_LAYER, "digest": layer_digest, "size": module.len()}],
    }))
    .expect("JSON values serialize");
    Ok(ArchiveImage {
        name: normalize(name),
        manifest: Blob {
            media_type: OCI_MANIFEST.into(),
            digest: sha256_digest(&manifest),
            data: manifest,
        },
        config,
        layers: vec![Blob {
            media_type: WASM_LAYER.into(),
            digest: layer_digest,
            data: module,
        }],
        diff_ids: Vec::new(),
    })
}

/// A module (binary, or WAT text for `.wat`) as a `wasi/wasm` platform image, the form `docker
/// buildx build --platform wasi/wasm` makes: one ordinary tar layer holding the module at `/<file>`,
/// `Entrypoint` naming it, config os `wasi` and architecture `wasm`. Every containerd 1.6 pulls and
/// unpacks it through CRI (the artifact form above needs 1.6.25+ or 1.7.7+ there), and runwasi's
/// shims and podctl's node shim run it.
pub fn platform_image(module: Vec<u8>, reference: &str, file: &str) -> Result<ArchiveImage, ImageError> {
    let invalid = |message: String| ImageError::Invalid {
        image: reference.to_string(),
        message,
    };
    if !is_wasm_binary(&module) && !file.ends_with(".wat") {
        return Err(invalid(format!(
            "{file} is not a WebAssembly binary (it does not start with \\0asm) nor a .wat file; build it to .wasm first"
        )));
    }
    let spec = super::layout::ImageSpec {
        reference: normalize(reference),
        entrypoint: vec![format!("/{file}")],
        architecture: Some("wasm".into()),
        os: Some("wasi".into()),
        ..Default::default()
    };
    let layer = [super::layout::Entry::file(file, 0o755, module)];
    let built =
        super::layout::build_image(&spec, &layer).map_err(|e| invalid(format!("the image cannot be built: {e}")))?;
    super::archive::from_built(&built)
}

/// The module of a `wasi/wasm` platform image: the file its entrypoint names, out of its layers.
pub struct WasiProgram {
    /// The entrypoint, e.g. `/greeter.wasm`.
    pub path: String,
    pub module: Vec<u8>,
}

/// For the image `name` with this manifest, when its config says os `wasi` or architecture
/// `wasm`: its program. `None` for every other image.
pub(crate) async fn wasi_program(
    client: &crate::containerd::Client,
    name: &str,
    manifest: &super::store::Manifest,
) -> Result<Option<WasiProgram>, ImageError> {
    if manifest.config.media_type == WASM_CONFIG_MEDIA_TYPE {
        return Ok(None);
    }
    let invalid = |message: String| ImageError::Invalid {
        image: name.to_string(),
        message,
    };
    let config: serde_json::Value = serde_json::from_slice(&client.read_blob(&manifest.config.digest).await?)
        .map_err(|e| invalid(format!("its config is not JSON: {e}")))?;
    if config["os"] != "wasi" && config["architecture"] != "wasm" {
        return Ok(None);
    }
    let exec = &config["config"];
    let path = exec["Entrypoint"][0]
        .as_str()
        .or_else(|| exec["Cmd"][0].as_str())
        .ok_or_else(|| invalid("a wasi/wasm image whose config names no Entrypoint or Cmd: its module is the file the entrypoint names; rebuild it with `ENTRYPOINT [\"/app.wasm\"]`".into()))?
        .to_string();
    // The top layer that holds the file wins, as in an unpacked root filesystem.
    for layer in manifest.layers.iter().rev() {
        let blob = client.read_blob(&layer.digest).await?;
        if let Some(module) = file_in_layer(&blob, &layer.media_type, &path).map_err(&invalid)? {
            return Ok(Some(WasiProgram { path, module }));
        }
    }
    Err(invalid(format!("its entrypoint {path} is in none of its layers")))
}

/// The file at `path` in a tar layer (gzip-compressed or not).
fn file_in_layer(blob: &[u8], media_type: &str, path: &str) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> = match media_type {
        m if m.ends_with("+gzip") || m.ends_with(".gzip") => Box::new(flate2::read::GzDecoder::new(blob)),
        m if m.ends_with("+zstd") => {
            return Err(format!(
                "layer type {m}: podctl reads wasi/wasm layers plain or gzip-compressed"
            ))
        }
        _ => Box::new(blob),
    };
    let wanted = path.trim_start_matches('/');
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| format!("a layer is not a tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("a layer is not a tar: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == wanted && entry.header().entry_type().is_file() {
            let mut module = Vec::new();
            entry
                .read_to_end(&mut module)
                .map_err(|e| format!("reading {path}: {e}"))?;
            return Ok(Some(module));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_becomes_a_wasi_wasm_platform_image() {
        let image = platform_image(b"\0asm\x01\0\0\0".to_vec(), "reg.local/app:1", "app.wasm").unwrap();
        assert_eq!(image.name, "reg.local/app:1");
        let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
        assert_eq!(
            (config["os"].as_str(), config["architecture"].as_str()),
            (Some("wasi"), Some("wasm"))
        );
        assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app.wasm"]));
        assert_eq!(image.layers.len(), 1);
        assert!(
            image.layers[0].media_type.contains("tar"),
            "{}",
            image.layers[0].media_type
        );
        assert_eq!(image.diff_ids.len(), 1, "a tar layer the node unpacks");
        let err = platform_image(b"text".to_vec(), "reg.local/app:1", "app.txt")
            .err()
            .expect("refused");
        assert!(err.to_string().contains("not a WebAssembly binary"), "{err}");
    }

    #[test]
    fn modules_and_components_become_artifacts() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let image = artifact(module.clone(), "reg.local/app:1").unwrap();
        assert_eq!(image.name, "reg.local/app:1");
        assert_eq!(image.layers[0].media_type, "application/wasm");
        assert!(String::from_utf8_lossy(&image.config.data).contains("wasip1"));
        let again = artifact(module, "reg.local/app:1").unwrap();
        assert_eq!(image.manifest.digest, again.manifest.digest, "digests are reproducible");
        let component = artifact(b"\0asm\x0d\0\x01\0".to_vec(), "c").unwrap();
        assert!(String::from_utf8_lossy(&component.config.data).contains("wasip2"));
        let err = artifact(b"(module)".to_vec(), "x").err().expect("refused").to_string();
        assert!(err.contains("not a WebAssembly binary"), "{err}");
    }
}
