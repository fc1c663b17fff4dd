//! Images that do not come from a registry: archives read from disk (`podctl image import`), the
//! images podctl builds itself (pause, echoserver), and reference normalization.

pub mod archive;
pub mod builtin;
pub mod layout;
pub mod reference;
