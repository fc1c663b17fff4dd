//! The WASM member runtime as podctl knows it: the plugin `wasmtime` (`podctl-runtime-wasmtime`),
//! which runs WASI modules and components, one process per pod with WASM members. What podctl
//! knows of it without asking: what it claims, and the environment it needs (its AOT cache).
//! Validating a module at create compiles it once into that shared cache. (The WASM OCI artifact
//! itself is `image::wasm`'s.)

use std::path::Path;

use super::claims::Claims;
use crate::image::WASM_LAYER_MEDIA_TYPES;
use crate::settings::Settings;

/// The plugin that runs WASM members.
pub const PLUGIN: &str = "wasmtime";

/// Whether `plugin` names the wasmtime plugin.
pub fn is(plugin: &str) -> bool {
    plugin == PLUGIN
}

/// What it runs, known without a handshake.
pub fn claims() -> Claims {
    Claims {
        media_types: WASM_LAYER_MEDIA_TYPES.iter().map(|m| m.to_string()).collect(),
        extensions: vec!["wasm".into(), "wat".into()],
        ..Claims::default()
    }
}

/// The environment the plugin needs: its AOT cache.
pub fn plugin_env(settings: &Settings) -> Vec<(String, String)> {
    vec![(
        "PODCTL_WASM_CACHE_DIR".into(),
        settings.wasm_cache_dir.to_string_lossy().into_owned(),
    )]
}

/// Whether a local file holds WebAssembly whatever its name: the binary magic, or WAT text.
pub fn looks_like_wasm(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    if read.is_err() {
        return false;
    }
    if head.starts_with(b"\0asm") {
        return true;
    }
    let text = String::from_utf8_lossy(&head);
    let text = text.trim_start();
    text.starts_with("(module") || text.starts_with("(component") || text.starts_with(";;")
}
