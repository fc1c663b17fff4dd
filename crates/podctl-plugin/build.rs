// The protocol's Rust types and gRPC service from proto/ (needs `protoc`, which scripts/setup.sh
// installs: Debian's protobuf-compiler).
fn main() {
    println!("cargo:rerun-if-changed=proto/podctl/plugin/v1/plugin.proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/podctl/plugin/v1/plugin.proto"], &["proto"])
        .expect("protoc compiles the plugin protocol");
}
