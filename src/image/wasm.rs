//! A `.wasm` file as an OCI wasm artifact (the CNCF TAG Runtime layout: config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer), so it can be named, listed,
//! pushed and pulled like any image and run as a WASM member.

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

#[cfg(test)]
mod tests {
    use super::*;

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
