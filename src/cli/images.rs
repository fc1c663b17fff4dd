//! The arguments of `podctl image` and `podctl runtime`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// The registry speaks plain HTTP (mirrors in hosts.toml say so in their URL)
    #[arg(long)]
    pub plain_http: bool,
    /// Credentials for the registry, instead of ~/.docker/config.json
    #[arg(long, short = 'u', value_name = "NAME:PASSWORD")]
    pub user: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RuntimeCommand {
    /// List podctl's member runtimes and the handlers of the runtime config, with what they run
    #[command(alias = "list")]
    Ls,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry into containerd (OCI images and wasm artifacts)
    Pull {
        /// Image reference, e.g. nginx, registry.example:5000/team/app:1.4, name@sha256:...
        reference: String,
        /// Platform to pull from a multi-platform index (default: this host's)
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Layers downloaded at once
        #[arg(long, value_name = "N", default_value_t = crate::image::PARALLEL_LAYERS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
        max_concurrent_downloads: u16,
        /// Print only the image's digest, no progress
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Push a local image (OCI or wasm) to the registry its name names
    Push {
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Import an OCI image-layout or docker-archive tar (`-` for standard input), or a `.wasm`
    /// file as an OCI wasm artifact (give it a name with --name)
    Import {
        file: PathBuf,
        /// Name for an image the archive does not name (required for a .wasm file)
        #[arg(long)]
        name: Option<String>,
    },
    /// Give a local image another name (as `ctr image tag`, `podman tag`)
    Tag { source: String, target: String },
    /// List images
    #[command(alias = "list")]
    Ls,
    /// Remove images
    Rm { names: Vec<String> },
    /// Write one of podctl's built-in images (pause, echoserver) as an OCI archive
    Export {
        /// Built-in image reference, e.g. podctl.local/echoserver:0.1
        reference: String,
        /// Output file
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}
