//! podctl: Kubernetes-style pods directly on containerd.
//!
//! A pod is a pause sandbox task that owns the pod's namespaces (network pinned first, then IPC, UTS,
//! PID) plus member containers that join them. Everything is rebuilt from containerd's own records.

pub mod agent;
pub mod app;
pub mod cli;
pub mod containerd;
pub mod image;
pub mod logs;
pub mod manifest;
pub mod member;
pub mod pod;
pub mod sandbox;
pub mod spec;
