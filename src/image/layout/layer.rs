//! One layer of a built image: its entries, the tar they become (in the order given, mtime, uid
//! and gid 0, no user names) and that tar gzipped without a timestamp, so the same entries give
//! the same bytes. The tar header helpers serve the image-layout archive too.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

use super::LayoutError;

/// One entry of the image's single layer. Paths are relative to the image root (a leading `/`
/// is accepted and dropped); `mode` holds permission bits (including setuid/setgid/sticky).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        path: String,
        mode: u32,
        data: Cow<'static, [u8]>,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    pub fn file(path: impl Into<String>, mode: u32, data: impl Into<Cow<'static, [u8]>>) -> Self {
        Entry::File {
            path: path.into(),
            mode,
            data: data.into(),
        }
    }

    pub fn dir(path: impl Into<String>, mode: u32) -> Self {
        Entry::Dir {
            path: path.into(),
            mode,
        }
    }

    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }

    /// The path as given.
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path, .. } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// Returns `entries` with a `Dir` (mode 0755) inserted before the first entry under each
/// parent directory that the list does not already contain. Explicit `Dir` entries are kept
/// as given (and where given); invalid paths are left for `layer_tar` to report.
pub fn with_parent_dirs(entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
    let entries: Vec<Entry> = entries.into_iter().collect();
    let explicit: BTreeSet<String> = entries.iter().filter_map(|e| normalize_path(e.path()).ok()).collect();
    let mut added = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Ok(path) = normalize_path(entry.path()) {
            let mut parent = String::new();
            let components: Vec<&str> = path.split('/').collect();
            for component in components.iter().take(components.len().saturating_sub(1)) {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(component);
                if !explicit.contains(&parent) && added.insert(parent.clone()) {
                    out.push(Entry::dir(parent.clone(), 0o755));
                }
            }
        }
        out.push(entry);
    }
    out
}

/// The uncompressed layer tar: entries in the order given, mtime/uid/gid 0, no user names.
pub fn layer_tar(layer: &[Entry]) -> Result<Vec<u8>, LayoutError> {
    let mut seen = BTreeSet::new();
    let mut builder = tar::Builder::new(Vec::new());
    for entry in layer {
        let path = normalize_path(entry.path())?;
        if !seen.insert(path.clone()) {
            return Err(LayoutError::DuplicatePath(path));
        }
        match entry {
            Entry::File { mode, data, .. } => append_file(&mut builder, &path, *mode, data)?,
            Entry::Dir { mode, .. } => append_dir(&mut builder, &format!("{path}/"), *mode)?,
            Entry::Symlink { target, .. } => {
                if target.is_empty() || target.contains('\0') {
                    return Err(LayoutError::InvalidPath {
                        path: target.clone(),
                        reason: "symlink target must be non-empty and free of NUL",
                    });
                }
                let mut header = base_header(tar::EntryType::Symlink, 0o777, 0);
                builder.append_link(&mut header, &path, target)?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

/// `/usr//bin/./x` → `usr/bin/x`; refuses empty paths, `..`, and NUL bytes.
fn normalize_path(path: &str) -> Result<String, LayoutError> {
    let invalid = |reason| LayoutError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(invalid("`..` is not allowed")),
            c => components.push(c),
        }
    }
    if components.is_empty() {
        return Err(invalid("names no file below the image root"));
    }
    Ok(components.join("/"))
}

fn base_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

pub(super) fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = base_header(tar::EntryType::Regular, mode, data.len() as u64);
    builder.append_data(&mut header, path, data)
}

pub(super) fn append_dir<W: Write>(builder: &mut tar::Builder<W>, path: &str, mode: u32) -> std::io::Result<()> {
    let mut header = base_header(tar::EntryType::Directory, mode, 0);
    builder.append_data(&mut header, path, std::io::empty())
}

/// gzip with no timestamp and a fixed OS byte, so the compressed blob is reproducible.
pub(super) fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2), Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_dirs_are_added_once() {
        let entries = with_parent_dirs([
            Entry::file("a/b/c", 0o644, &b""[..]),
            Entry::file("a/b/d", 0o644, &b""[..]),
            Entry::file("/x/y", 0o644, &b""[..]),
            Entry::dir("x", 0o700),
            Entry::file("top", 0o644, &b""[..]),
        ]);
        let paths: Vec<&str> = entries.iter().map(Entry::path).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c", "a/b/d", "/x/y", "x", "top"]);
        assert!(layer_tar(&entries).is_ok());
    }
}
