//! The protocol's Rust code is checked in (`src/generated/`), so the crate builds without
//! `protoc`; this test regenerates it from the proto (needs `protoc`: Debian's protobuf-compiler,
//! which scripts/setup.sh installs) and fails if the checked-in copy differs. To update it after
//! editing the proto: `PODCTL_REGENERATE=1 cargo test -p podctl-plugin --test generated`.

use std::path::Path;

#[test]
fn the_checked_in_protocol_code_is_what_the_proto_generates() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("podctl-plugin-generated-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    tonic_prost_build::configure()
        .out_dir(&out)
        .compile_protos(
            &[crate_dir.join("proto/podctl/plugin/v1/plugin.proto")],
            &[crate_dir.join("proto")],
        )
        .expect("protoc compiles the plugin protocol (install protobuf-compiler)");
    let fresh = std::fs::read_to_string(out.join("podctl.plugin.v1.rs")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let checked_in_path = crate_dir.join("src/generated/podctl.plugin.v1.rs");
    let checked_in = std::fs::read_to_string(&checked_in_path).unwrap_or_default();
    if fresh != checked_in {
        if std::env::var_os("PODCTL_REGENERATE").is_some() {
            std::fs::write(&checked_in_path, fresh).unwrap();
            return;
        }
        panic!(
            "{} is out of date with the proto; regenerate it: PODCTL_REGENERATE=1 cargo test -p podctl-plugin --test generated",
            checked_in_path.display()
        );
    }
}
